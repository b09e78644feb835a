import AudioFiles
import Foundation
import NeuralNetworks
import Testing
import Tensors

/// Runs the built `seriatim` binary.
struct Tool {
    static let path: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        #if DEBUG
        let configuration = "debug"
        #else
        let configuration = "release"
        #endif
        return root.appendingPathComponent(".build/\(configuration)/seriatim").path
    }()

    struct Result { let status: Int32; let output: String; let error: String }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes to the end before waiting, so that a full pipe cannot block the child.
        nonisolated(unsafe) var errorData = Data()
        let reader = Thread { errorData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outputData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return Result(status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
                      error: String(decoding: errorData, as: UTF8.self))
    }
}

/// The JSON header of a safetensors file (after its 8-byte little-endian length), as text.
func safetensorsHeader(_ path: String) throws -> String {
    let file = try Data(contentsOf: URL(fileURLWithPath: path))
    let length = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    return String(decoding: file.dropFirst(8).prefix(length), as: UTF8.self)
}

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "seriatim-cli-\(name)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func writeTone(_ path: String, frequencies: [Double], seconds: Double, rate: Int, amplitude: Double = 0.3) throws {
    let samples = (0..<Int(seconds * Double(rate))).map { i in
        Float(frequencies.reduce(0.0) { $0 + amplitude * sin(2 * Double.pi * $1 * Double(i) / Double(rate)) })
    }
    try AudioFile.write(Audio(samples: samples, sampleRate: rate), to: path)
}

let tinyConfiguration = """
{"model": {"dilations": [1, 2, 4, 8], "residualChannels": 8, "gateChannels": 8, "skipChannels": 16, "headChannels": 16},
 "training": {"window": 256, "batchSize": 2, "evaluateEvery": 2, "sampleSeconds": 0.05, "validationLimit": 4}}
"""

@Suite struct CommandLineTests {
    @Test func helpOnEveryCommand() throws {
        for command in [[], ["train"], ["train", "wavenet"], ["generate"], ["info"], ["bench"], ["bench", "wavenet"], ["bench", "kernels"], ["bench", "made"], ["bench", "pixelcnn"], ["bench", "pixelrnn"]] {
            let result = try Tool.run(command + ["--help"])
            #expect(result.status == 0, "\(command)")
            #expect(result.output.contains("USAGE"), "\(command)")
        }
    }

    /// Train a few steps on generated audio (with averaged weights), resume, generate 0.1 s, read it back.
    @Test func trainResumeGenerateInfo() throws {
        let directory = temporaryDirectory("e2e")
        let data = directory + "/data"
        try FileManager.default.createDirectory(atPath: data + "/sub", withIntermediateDirectories: true)
        try writeTone(data + "/a.wav", frequencies: [220, 330], seconds: 0.6, rate: 8000)
        try writeTone(data + "/sub/b.flac", frequencies: [440], seconds: 0.6, rate: 8000)
        try writeTone(data + "/c.wav", frequencies: [300, 500], seconds: 0.6, rate: 16000)  // resampled to 8 kHz
        try writeTone(data + "/d.wav", frequencies: [250], seconds: 0.6, rate: 8000)
        let averaging = tinyConfiguration.replacingOccurrences(of: "\"validationLimit\": 4}", with: "\"validationLimit\": 4, \"averageDecay\": 0.9}")
        #expect(averaging != tinyConfiguration)
        try averaging.write(toFile: directory + "/tiny.json", atomically: true, encoding: .utf8)
        let run = directory + "/run"

        let first = try Tool.run(["train", "wavenet", "--data", data, "--out", run, "--sample-rate", "8000",
                                  "--config", directory + "/tiny.json", "--steps", "4", "--json"])
        #expect(first.status == 0, "\(first.error)")
        let summary = try JSONSerialization.jsonObject(with: Data(first.output.utf8)) as! [String: Any]
        #expect(summary["steps"] as? Int == 4)
        #expect((summary["validation_bits_per_sample"] as? Double ?? 0) > 0)
        #expect(first.error.contains("receptive field"))
        for file in ["latest.safetensors", "best.safetensors", "metrics.jsonl", "run.json", "corpus.safetensors", "samples/step-4.wav"] {
            #expect(FileManager.default.fileExists(atPath: run + "/" + file), "\(file)")
        }
        // The average is the model; the weights training resumes from sit beside it.
        let header = try safetensorsHeader(run + "/latest.safetensors")
        #expect(header.contains("\"raw.") && header.contains("average.updates"))

        // A second run into the same directory without --resume is refused.
        let again = try Tool.run(["train", "wavenet", "--data", data, "--out", run])
        #expect(again.status == 1 && again.error.contains("--resume"))

        let resumed = try Tool.run(["train", "wavenet", "--out", run, "--resume", "--steps", "6", "--json"])
        #expect(resumed.status == 0, "\(resumed.error)")
        #expect(resumed.error.contains("using the cache"))
        #expect((try JSONSerialization.jsonObject(with: Data(resumed.output.utf8)) as! [String: Any])["steps"] as? Int == 6)

        let clip = directory + "/clip.wav"
        let generated = try Tool.run(["generate", "--checkpoint", run, "--seconds", "0.1", "--out", clip, "--count", "2", "--seed", "3"])
        #expect(generated.status == 0, "\(generated.error)")
        #expect(generated.output.contains("real time"))
        for n in [1, 2] {
            let (audio, info) = try AudioFile.read(directory + "/clip-\(n).wav")
            #expect(audio.samples.count == 800 && info.sampleRate == 8000 && info.encoding == "PCM_16")
        }

        let info = try Tool.run(["info", "--checkpoint", run, "--json"])
        #expect(info.status == 0)
        let facts = try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as! [String: Any]
        #expect(facts["receptive_field_samples"] as? Int == 2 + 1 + 2 + 4 + 8)
        #expect(facts["parameters"] as? Int ?? 0 > 0)
        #expect(facts["activation_bytes"] as? Int ?? 0 > 0)
    }

    /// Files that cannot be used are skipped with one warning line each; --strict makes them errors.
    @Test func badInputIsReportedInOneLine() throws {
        let directory = temporaryDirectory("bad")
        let data = directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: data + "/empty.wav", contents: Data())
        try Data("not audio at all".utf8).write(to: URL(fileURLWithPath: data + "/text.wav"))
        try AudioFile.write(Audio(samples: [Float](repeating: 0, count: 4000), sampleRate: 8000), to: data + "/silent.wav")
        try writeTone(data + "/good.wav", frequencies: [220], seconds: 0.6, rate: 8000)
        try writeTone(data + "/good2.wav", frequencies: [330], seconds: 0.6, rate: 8000)
        try "{}".write(toFile: directory + "/notes.txt", atomically: true, encoding: .utf8)
        try tinyConfiguration.write(toFile: directory + "/tiny.json", atomically: true, encoding: .utf8)

        let lenient = try Tool.run(["train", "wavenet", "--data", data, "--out", directory + "/run", "--sample-rate", "8000",
                                    "--config", directory + "/tiny.json", "--steps", "2"])
        #expect(lenient.status == 0, "\(lenient.error)")
        let warnings = lenient.error.split(separator: "\n").filter { $0.hasPrefix("skipping") }
        #expect(warnings.count == 3, "\(warnings)")
        #expect(warnings.contains { $0.contains("silent.wav") && $0.contains("silent") })

        let strict = try Tool.run(["train", "wavenet", "--data", data, "--out", directory + "/strict", "--sample-rate", "8000",
                                   "--config", directory + "/tiny.json", "--steps", "2", "--strict"])
        expectOneLineError(strict, mentioning: "--strict")

        // Only unusable files: an error that says what was found.
        let bad = directory + "/bad"
        try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: bad + "/x.wav"))
        try Data("y".utf8).write(to: URL(fileURLWithPath: bad + "/readme.md"))
        let none = try Tool.run(["train", "wavenet", "--data", bad, "--out", directory + "/none"])
        expectOneLineError(none, mentioning: "no usable audio")
        expectOneLineError(try Tool.run(["train", "wavenet", "--data", directory + "/missing", "--out", directory + "/m"]), mentioning: "--data")

        // Trimming that removes too much stops before training and names the option: a short
        // beep followed by a long, 50 dB quieter tail.
        let quietData = directory + "/quiet"
        try FileManager.default.createDirectory(atPath: quietData, withIntermediateDirectories: true)
        for name in ["q1.wav", "q2.wav"] {
            let samples = (0..<8000).map { i in Float(sin(Double(i) * 0.3)) * (i < 400 ? 0.5 : 0.0015) }
            try AudioFile.write(Audio(samples: samples, sampleRate: 8000), to: quietData + "/" + name)
        }
        let quiet = try Tool.run(["train", "wavenet", "--data", quietData, "--out", directory + "/trim", "--sample-rate", "8000",
                                  "--config", directory + "/tiny.json", "--trim-db", "20", "--steps", "2"])
        expectOneLineError(quiet, mentioning: "--trim-db")

        // A checkpoint of another model.
        var other = Checkpoint(tensors: ["model.w": .zeros([2])], metadata: ["seriatim.model": "made", "config": "{}"])
        other.metadata["x"] = "y"
        try other.write(to: directory + "/made.safetensors")
        expectOneLineError(try Tool.run(["generate", "--checkpoint", directory + "/made.safetensors", "--seconds", "0.1",
                                         "--out", directory + "/o.wav"]), mentioning: "not a WaveNet")
        expectOneLineError(try Tool.run(["generate", "--checkpoint", directory + "/nothing", "--seconds", "0.1",
                                         "--out", directory + "/o.wav"]), mentioning: "no checkpoint")
        // A corrupt checkpoint.
        try Data("garbage!garbage!".utf8).write(to: URL(fileURLWithPath: directory + "/corrupt.safetensors"))
        expectOneLineError(try Tool.run(["info", "--checkpoint", directory + "/corrupt.safetensors"]), mentioning: "corrupt")
    }

    /// Local conditioning from user feature files: training reads NAME.features.csv beside each
    /// recording; generation takes one with --features.
    @Test func featureFileConditioning() throws {
        let directory = temporaryDirectory("features")
        let data = directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        for (name, frequency) in [("a", 220.0), ("b", 330.0), ("c", 440.0)] {
            try writeTone(data + "/\(name).wav", frequencies: [frequency], seconds: 0.6, rate: 8000)
            let lines = (0..<61).map { _ in "\(frequency / 1000),0.5" }.joined(separator: "\n")
            try lines.write(toFile: data + "/\(name).features.csv", atomically: true, encoding: .utf8)
        }
        try tinyConfiguration.write(toFile: directory + "/tiny.json", atomically: true, encoding: .utf8)
        let run = directory + "/run"
        let trained = try Tool.run(["train", "wavenet", "--data", data, "--out", run, "--sample-rate", "8000", "--config", directory + "/tiny.json",
                                    "--steps", "2", "--feature-bands", "2", "--feature-hop", "80"])
        #expect(trained.status == 0, "\(trained.error)")
        let info = try Tool.run(["info", "--checkpoint", run, "--json"])
        #expect((try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as! [String: Any])["local_bands"] as? Int == 2)
        expectOneLineError(try Tool.run(["generate", "--checkpoint", run, "--seconds", "0.05", "--out", directory + "/x.wav"]),
                           mentioning: "--features")
        let generated = try Tool.run(["generate", "--checkpoint", run, "--seconds", "0.05", "--out", directory + "/x.wav",
                                      "--features", data + "/a.features.csv"])
        #expect(generated.status == 0, "\(generated.error)")
        try "1,2,3\n".write(toFile: directory + "/bad.csv", atomically: true, encoding: .utf8)
        expectOneLineError(try Tool.run(["generate", "--checkpoint", run, "--seconds", "0.05", "--out", directory + "/x.wav",
                                         "--features", directory + "/bad.csv"]), mentioning: "line 1")
    }

    func expectOneLineError(_ result: Tool.Result, mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 1, "exit \(result.status): \(result.error)", sourceLocation: sourceLocation)
        let lines = result.error.split(separator: "\n").filter { !$0.hasPrefix("skipping") && !$0.hasPrefix("corpus") }
        #expect(lines.count == 1, "stderr: \(result.error)", sourceLocation: sourceLocation)
        #expect(lines.first?.hasPrefix("error: ") == true && result.error.contains(text), "stderr: \(result.error)", sourceLocation: sourceLocation)
    }
}
