import AudioFiles
import AudioModels
import Foundation
import Testing

/// The committed clips in Audio/fixtures are made by these functions; the test regenerates them
/// and checks the files (run with SERIATIM_WRITE_FIXTURES=1 to write them anew).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Audio/fixtures").path

    /// 0.25 s of 250 Hz + 375 Hz at 8 kHz.
    static func twoTone() -> Audio {
        Audio(samples: (0..<2000).map { i in Float(0.3 * sin(2 * Double.pi * 250 * Double(i) / 8000) + 0.2 * sin(2 * Double.pi * 375 * Double(i) / 8000)) },
              sampleRate: 8000)
    }

    /// 0.25 s linear chirp from 100 Hz to 2 kHz at 8 kHz, with a 20 ms fade at both ends.
    static func chirp() -> Audio {
        Audio(samples: (0..<2000).map { i in
            let t = Double(i) / 8000
            let phase = 2 * Double.pi * (100 * t + 0.5 * (1900 / 0.25) * t * t)
            let fade = min(1, min(Double(i), Double(1999 - i)) / 160)
            return Float(0.4 * fade * sin(phase))
        }, sampleRate: 8000)
    }

    static let all: [(String, @Sendable () -> Audio)] = [("two-tone.wav", twoTone), ("chirp.wav", chirp)]
}

@Suite struct FixtureTests {
    @Test func committedFixturesAreTheGeneratedOnes() throws {
        for (name, make) in Fixtures.all {
            let path = Fixtures.directory + "/" + name
            if ProcessInfo.processInfo.environment["SERIATIM_WRITE_FIXTURES"] == "1" { try AudioFile.write(make(), to: path) }
            let (audio, info) = try AudioFile.read(path)
            #expect(info.encoding == "PCM_16" && audio.sampleRate == 8000)
            let expected = make().samples
            #expect(audio.samples.count == expected.count)
            #expect(zip(audio.samples, expected).allSatisfy { abs($0 - $1) <= 1.0 / 32768 + 1e-6 }, "\(name)")
        }
    }

    /// Speakers from a path pattern or a manifest; the split is by file and fixed by the seed.
    @Test func speakersAndSplit() throws {
        let root = NSTemporaryDirectory() + "seriatim-speakers-\(UUID().uuidString)"
        for speaker in ["alice", "bob"] {
            try FileManager.default.createDirectory(atPath: root + "/" + speaker, withIntermediateDirectories: true)
            for n in 0..<3 { try AudioFile.write(Fixtures.twoTone(), to: root + "/\(speaker)/\(n).wav") }
        }
        var options = CorpusOptions(sampleRate: 8000)
        options.speakerPattern = "^([^/]+)/"
        options.validationFraction = 0.34
        let corpus = try Corpus.load(root, options: options, warn: { _ in })
        #expect(Set(corpus.speakers) == ["alice", "bob"])
        #expect(corpus.train.count == 4 && corpus.validation.count == 2)
        for clip in corpus.train + corpus.validation {
            #expect(corpus.speakers[clip.speaker] == (clip.path.contains("/alice/") ? "alice" : "bob"))
        }
        let again = try Corpus.load(root, options: options, warn: { _ in })
        #expect(again.validation.map(\.path) == corpus.validation.map(\.path))

        try "path,speaker\nalice/0.wav,x\nalice/1.wav,x\nalice/2.wav,y\nbob/0.wav,y\nbob/1.wav,y\nbob/2.wav,z\n"
            .write(toFile: root + "/manifest.csv", atomically: true, encoding: .utf8)
        var manifest = CorpusOptions(sampleRate: 8000)
        manifest.manifest = root + "/manifest.csv"
        let listed = try Corpus.load(root, options: manifest, warn: { _ in })
        #expect(Set(listed.speakers) == ["x", "y", "z"])
        try "alice/0.wav\n".write(toFile: root + "/bad.csv", atomically: true, encoding: .utf8)
        manifest.manifest = root + "/bad.csv"
        #expect(throws: CorpusError.badManifest(path: root + "/bad.csv", line: 1, reason: "expected 2 fields, got 1")) {
            try Corpus.load(root, options: manifest, warn: { _ in })
        }
        var badPattern = CorpusOptions(sampleRate: 8000)
        badPattern.speakerPattern = "no groups"
        #expect(throws: CorpusError.self) { try Corpus.load(root, options: badPattern, warn: { _ in }) }
    }

    @Test func trimmingRemovesQuietEnds() {
        let loud = (0..<800).map { Float(sin(Double($0) * 0.2)) * 0.5 }
        let quiet = [Float](repeating: 0.0001, count: 800)
        let trimmed = Corpus.trim(quiet + loud + quiet, sampleRate: 8000, decibels: 40)
        #expect(trimmed.count == 800)
        #expect(Corpus.trim([Float](repeating: 0, count: 100), sampleRate: 8000, decibels: 40).isEmpty)
    }
}
