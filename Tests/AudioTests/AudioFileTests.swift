import AudioFiles
import CSndFile
import Foundation
import Testing

/// Writes interleaved frames with libsndfile in any format (for fixtures the project's writer does not make).
func writeFixture(_ path: String, format: Int32, channels: Int, sampleRate: Int, frames: [Float]) {
    var info = SF_INFO(frames: 0, samplerate: Int32(sampleRate), channels: Int32(channels), format: format, sections: 0, seekable: 0)
    let file = sf_open(path, Int32(SFM_WRITE), &info)!
    _ = frames.withUnsafeBufferPointer { sf_writef_float(file, $0.baseAddress!, sf_count_t(frames.count / channels)) }
    sf_close(file)
}

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "seriatim-\(name)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func tone(_ frequencies: [Double], seconds: Double, rate: Int, amplitude: Double = 0.3) -> [Float] {
    (0..<Int(seconds * Double(rate))).map { i in
        Float(frequencies.reduce(0.0) { $0 + amplitude * sin(2 * Double.pi * $1 * Double(i) / Double(rate)) })
    }
}

@Suite struct AudioFileTests {
    let directory = temporaryDirectory("audio")

    @Test func muLawRoundTripIsWithinHalfAStep() {
        for mu in [255, 15] {
            let law = MuLaw(mu: mu)
            #expect(law.classes == mu + 1)
            #expect(law.encode(-1) == 0 && law.encode(1) == mu && law.encode(0) == (mu + 1) / 2)
            for k in 0..<law.classes { #expect(law.encode(law.decode(k)) == k) }
            // Encoding rounds to the nearest class in the companded domain: within half a step (1/μ).
            func compand(_ x: Float) -> Float { (x < 0 ? -1 : 1) * log1p(Float(mu) * abs(x)) / log1p(Float(mu)) }
            for i in 0...2000 {
                let x = Float(i) / 1000 - 1
                #expect(abs(compand(law.decode(law.encode(x))) - compand(x)) <= 1 / Float(mu) + 1e-5)
            }
        }
        // Round-trip error for μ = 255: at most ~0.022 near full scale, far finer near zero.
        let standard = MuLaw()
        for i in 0...2000 {
            let x = Float(i) / 1000 - 1
            #expect(abs(standard.decode(standard.encode(x)) - x) <= 0.0225 * max(abs(x), 0.01) / 1 + 1e-4)
        }
        // Quiet samples get fine steps: near zero the error is far below the linear step 2/255.
        #expect(abs(standard.decode(standard.encode(0.001)) - 0.001) < 1e-4)
    }

    @Test func readsEveryFormatAsMonoInRange() throws {
        let rate = 8000
        let mono = tone([440], seconds: 0.2, rate: rate, amplitude: 0.5)
        let stereo = mono.flatMap { [$0, -$0 * 0.5] }
        let cases: [(String, Int32, Int, [Float], String)] = [
            ("pcm8.wav", Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_U8), 1, mono, "PCM_8"),
            ("pcm16.wav", Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16), 1, mono, "PCM_16"),
            ("pcm24.wav", Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_24), 1, mono, "PCM_24"),
            ("pcm32.wav", Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_32), 1, mono, "PCM_32"),
            ("float.wav", Int32(SF_FORMAT_WAV | SF_FORMAT_FLOAT), 1, mono, "FLOAT"),
            ("stereo.wav", Int32(SF_FORMAT_WAV | SF_FORMAT_PCM_16), 2, stereo, "PCM_16"),
            ("clip.flac", Int32(SF_FORMAT_FLAC | SF_FORMAT_PCM_16), 1, mono, "PCM_16"),
            ("clip.aiff", Int32(SF_FORMAT_AIFF | SF_FORMAT_PCM_24), 1, mono, "PCM_24"),
            ("clip.ogg", Int32(SF_FORMAT_OGG | SF_FORMAT_VORBIS), 1, mono, "VORBIS"),
        ]
        for (name, format, channels, frames, encoding) in cases {
            let path = directory + "/" + name
            writeFixture(path, format: format, channels: channels, sampleRate: rate, frames: frames)
            let (audio, info) = try AudioFile.read(path)
            #expect(info.encoding == encoding && info.channels == channels && audio.sampleRate == rate, "\(name): \(info)")
            #expect(audio.samples.allSatisfy { abs($0) <= 1 })
            let expected = channels == 2 ? mono.map { $0 * 0.25 } : mono
            let tolerance: Float = name == "clip.ogg" ? 0.05 : (name == "pcm8.wav" ? 0.01 : 1e-3)
            let error = zip(audio.samples, expected).map { abs($0 - $1) }.max()!
            #expect(audio.samples.count == expected.count && error < tolerance, "\(name): max error \(error)")
        }
    }

    @Test func writesWavAndFlacThatReadBack() throws {
        let audio = Audio(samples: tone([300, 500], seconds: 0.1, rate: 16000) + [1.5, -1.5], sampleRate: 16000)
        for name in ["out.wav", "out.flac"] {
            let path = directory + "/" + name
            try AudioFile.write(audio, to: path)
            let (back, info) = try AudioFile.read(path)
            #expect(info.encoding == "PCM_16" && info.container == (name.hasSuffix("wav") ? "WAV" : "FLAC"))
            #expect(back.samples.count == audio.samples.count)
            #expect(abs(back.samples.last! + 1) < 1e-3)  // clipped, not wrapped
            #expect(zip(back.samples.dropLast(2), audio.samples).allSatisfy { abs($0 - $1) < 1e-4 })
        }
        #expect(throws: AudioError.self) { try AudioFile.write(audio, to: directory + "/out.mp3") }
    }

    @Test func badFilesGiveClearErrors() throws {
        let fake = directory + "/fake.wav"
        try Data("this is not audio".utf8).write(to: URL(fileURLWithPath: fake))
        #expect(throws: AudioError.self) { try AudioFile.read(fake) }
        let empty = directory + "/empty.wav"
        FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(throws: AudioError.self) { try AudioFile.read(empty) }
        do { _ = try AudioFile.read(directory + "/missing.wav") } catch let error as AudioError {
            #expect(error.description.contains("missing.wav") && error.description.contains("no such file"))
        }
    }

    @Test func resamplingKeepsTheToneAndTheLength() throws {
        let audio = Audio(samples: tone([440], seconds: 1, rate: 8000, amplitude: 0.5), sampleRate: 8000)
        let up = try Resampler.resample(audio, to: 16000)
        #expect(abs(up.samples.count - 16000) <= 2)
        // The resampled signal is the same sine at the new rate (away from the edges).
        let expected = tone([440], seconds: 1, rate: 16000, amplitude: 0.5)
        let error = (1000..<15000).map { abs(up.samples[$0] - expected[$0]) }.max()!
        #expect(error < 0.01, "max error \(error)")
        let down = try Resampler.resample(up, to: 8000)
        #expect(abs(down.samples.count - 8000) <= 2)
    }
}
