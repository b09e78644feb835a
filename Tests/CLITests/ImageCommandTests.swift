import Foundation
import ImageModels
import Testing
import Tensors

@Suite struct ImageCommandTests {
    /// A bare `train made --data bars` converges near the true entropy; evaluate, sample, complete and inspect work on it.
    @Test func madeOnBarsEndToEnd() throws {
        let directory = temporaryDirectory("made")
        let run = directory + "/run"
        let trained = try Tool.run(["train", "made", "--data", "bars", "--out", run, "--json"])
        #expect(trained.status == 0, "\(trained.error)")
        let summary = try JSONSerialization.jsonObject(with: Data(trained.output.utf8)) as! [String: Any]
        let entropy = summary["true_entropy_nats"] as! Double
        #expect(abs((summary["test_nats"] as! Double) - entropy) < 0.05, "\(summary)")

        let evaluated = try Tool.run(["evaluate", "--checkpoint", run, "--json"])
        let result = try JSONSerialization.jsonObject(with: Data(evaluated.output.utf8)) as! [String: Any]
        for key in ["nll_nats", "nll_nats_stderr", "bits_per_dim", "examples"] { #expect(result[key] != nil, "\(key)") }
        #expect(result["examples"] as? Int == 2000)
        #expect(abs((result["bits_per_dim"] as! Double) - (result["nll_nats"] as! Double) / 16 / log(2)) < 1e-9)

        let grid = directory + "/grid.png"
        let sampled = try Tool.run(["sample", "--checkpoint", run, "--count", "8", "--out", grid, "--seed", "2"])
        #expect(sampled.status == 0, "\(sampled.error)")
        let picture = try PNG.read(grid)
        #expect(picture.channels == 1 && picture.width > 16)

        // Completion: keep the top half of a horizontal-bars image; samples keep those rows.
        let image: [UInt8] = [255, 255, 255, 255, 0, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0]
        try PNG.write(image, width: 4, height: 4, channels: 1, to: directory + "/partial.png")
        let completed = try Tool.run(["sample", "--checkpoint", run, "--count", "4", "--out", directory + "/completed.png",
                                      "--complete", directory + "/partial.png", "--keep", "top-half", "--columns", "4"])
        #expect(completed.status == 0, "\(completed.error)")

        for flag in ["--masks", "--receptive-field"] {
            let inspected = try Tool.run(["inspect", "--checkpoint", run, flag, "--out", directory + "/inspect\(flag).png"])
            #expect(inspected.status == 0, "\(inspected.error)")
            #expect(try PNG.read(directory + "/inspect\(flag).png").width > 0)
        }
        let info = try Tool.run(["inspect", "--checkpoint", run, "--receptive-field", "--pixel", "2,1", "--out", directory + "/rf.png"])
        #expect(info.output.contains("depends on"))
    }

    @Test(arguments: ["fvsbn", "nade", "pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm"])
    func everyModelTrainsResumesAndSamples(kind: String) throws {
        let directory = temporaryDirectory(kind)
        let run = directory + "/run"
        let first = try Tool.run(["train", kind, "--data", "bars:3", "--out", run, "--steps", "20", "--json"])
        #expect(first.status == 0, "\(first.error)")
        let resumed = try Tool.run(["train", kind, "--out", run, "--resume", "--steps", "30", "--json"])
        #expect(resumed.status == 0, "\(resumed.error)")
        #expect((try JSONSerialization.jsonObject(with: Data(resumed.output.utf8)) as! [String: Any])["steps"] as? Int == 30)
        let sampled = try Tool.run(["sample", "--checkpoint", run, "--count", "4", "--out", directory + "/s.png"])
        #expect(sampled.status == 0, "\(sampled.error)")
    }

    /// PixelRNN states narrower than the features (the paper's h and 2h) from a config file; a bad width is a one-line error.
    @Test func pixelRNNStateWidthFromConfig() throws {
        let directory = temporaryDirectory("state-width")
        try #"{"model": {"blocks": 2, "filters": 4, "stateFilters": 2}}"#.write(toFile: directory + "/h.json", atomically: true, encoding: .utf8)
        let trained = try Tool.run(["train", "diagonal-bilstm", "--data", "bars:3", "--out", directory + "/run", "--config", directory + "/h.json",
                                    "--steps", "5", "--json"])
        #expect(trained.status == 0, "\(trained.error)")
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/run/run.json"))) as? [String: Any]
        #expect((stored?["model"] as? [String: Any])?["stateFilters"] as? Int == 2)
        try #"{"model": {"stateFilters": 0}}"#.write(toFile: directory + "/bad.json", atomically: true, encoding: .utf8)
        let bad = try Tool.run(["train", "row-lstm", "--data", "bars:3", "--out", directory + "/bad", "--config", directory + "/bad.json", "--steps", "5"])
        #expect(bad.status != 0 && bad.error.contains("stateFilters") && bad.error.split(separator: "\n").count == 1, "\(bad.error)")
    }

    /// `averageDecay` in the training section: the run trains, resumes and samples with the average
    /// (kept as `model.`, the weights as `raw.`); a decay outside [0, 1) is a one-line error.
    @Test func weightAverageFromConfig() throws {
        let directory = temporaryDirectory("average")
        try #"{"training": {"averageDecay": 0.99, "evaluateEvery": 10}}"#.write(toFile: directory + "/a.json", atomically: true, encoding: .utf8)
        let run = directory + "/run"
        let trained = try Tool.run(["train", "made", "--data", "bars:3", "--out", run, "--config", directory + "/a.json", "--steps", "20", "--json"])
        #expect(trained.status == 0, "\(trained.error)")
        let resumed = try Tool.run(["train", "made", "--out", run, "--resume", "--steps", "30", "--json"])
        #expect(resumed.status == 0, "\(resumed.error)")
        let summary = try JSONSerialization.jsonObject(with: Data(resumed.output.utf8)) as! [String: Any]
        let evaluated = try Tool.run(["evaluate", "--checkpoint", run, "--json"])
        let result = try JSONSerialization.jsonObject(with: Data(evaluated.output.utf8)) as! [String: Any]
        #expect(abs((result["nll_nats"] as! Double) - (summary["test_nats"] as! Double)) < 1e-6, "\(result) \(summary)")
        let header = try safetensorsHeader(run + "/latest.safetensors")
        #expect(header.contains("\"raw.") && header.contains("\"model.") && header.contains("average.updates"))
        // --raw-weights scores the weights themselves: another number; a run without averages has none.
        let raw = try Tool.run(["evaluate", "--checkpoint", run + "/latest.safetensors", "--raw-weights", "--json"])
        #expect(raw.status == 0, "\(raw.error)")
        let rawNats = (try JSONSerialization.jsonObject(with: Data(raw.output.utf8)) as! [String: Any])["nll_nats"] as! Double
        let averaged = try Tool.run(["evaluate", "--checkpoint", run + "/latest.safetensors", "--json"])
        let averagedNats = (try JSONSerialization.jsonObject(with: Data(averaged.output.utf8)) as! [String: Any])["nll_nats"] as! Double
        #expect(rawNats != averagedNats)
        let plain = directory + "/plain"
        #expect(try Tool.run(["train", "fvsbn", "--data", "bars:3", "--out", plain, "--steps", "5"]).status == 0)
        let none = try Tool.run(["evaluate", "--checkpoint", plain, "--raw-weights"])
        #expect(none.status == 1 && none.error.contains("--raw-weights") && none.error.split(separator: "\n").count == 1, "\(none.error)")
        try #"{"training": {"averageDecay": 1.5}}"#.write(toFile: directory + "/bad.json", atomically: true, encoding: .utf8)
        let bad = try Tool.run(["train", "made", "--data", "bars:3", "--out", directory + "/bad", "--config", directory + "/bad.json"])
        #expect(bad.status == 1 && bad.error.contains("averageDecay") && bad.error.split(separator: "\n").count == 1, "\(bad.error)")
    }

    /// `"optimizer"` and `"schedule"` in the training section: Adagrad at a constant rate trains, keeps its
    /// accumulators in the checkpoint and resumes exactly (20 + 10 steps equal 30 straight); bad names are one-line errors.
    @Test func optimizerAndScheduleFromConfig() throws {
        let directory = temporaryDirectory("optimizer")
        let config = directory + "/adagrad.json"
        try #"{"training": {"optimizer": "adagrad", "schedule": "constant", "learningRate": 0.05, "evaluateEvery": 10}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        func testNats(_ result: Tool.Result) throws -> Double {
            #expect(result.status == 0, "\(result.error)")
            return (try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as! [String: Any])["test_nats"] as! Double
        }
        let straight = try testNats(Tool.run(["train", "made", "--data", "bars:3", "--out", directory + "/straight", "--config", config,
                                              "--steps", "30", "--json"]))
        let run = directory + "/run"
        _ = try testNats(Tool.run(["train", "made", "--data", "bars:3", "--out", run, "--config", config, "--steps", "20", "--json"]))
        #expect(try safetensorsHeader(run + "/latest.safetensors").contains("adagrad_sum."))
        let resumed = try testNats(Tool.run(["train", "made", "--out", run, "--resume", "--steps", "30", "--json"]))
        #expect(resumed == straight, "resumed \(resumed), straight \(straight)")
        let rates = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line in
            (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["learning_rate"] as? Double
        }
        #expect(!rates.isEmpty && rates.allSatisfy { abs($0 - 0.05) < 1e-7 }, "\(rates)")
        let cases = [(#"{"training": {"optimizer": "lbfgs"}}"#, "unknown optimizer"),
                     (#"{"training": {"optimizer": "rmsprop", "weightDecay": 0.001}}"#, "weightDecay"),
                     (#"{"training": {"schedule": "linear"}}"#, "unknown schedule")]
        for (index, (text, message)) in cases.enumerated() {
            try text.write(toFile: directory + "/bad\(index).json", atomically: true, encoding: .utf8)
            let bad = try Tool.run(["train", "made", "--data", "bars:3", "--out", directory + "/bad\(index)", "--config", directory + "/bad\(index).json"])
            #expect(bad.status == 1 && bad.error.contains(message) && bad.error.split(separator: "\n").count == 1, "\(bad.error)")
        }
    }

    /// `"validateEnsemble"`: a 3-mask MADE run validates, keeps its best checkpoint and reports its test score
    /// with the mask ensemble, so the summary equals `evaluate`'s ensemble number, not its one-mask number.
    @Test func ensembleValidationFromConfig() throws {
        let directory = temporaryDirectory("ensemble-validation")
        try #"{"model": {"maskSets": 3}, "training": {"validateEnsemble": true, "evaluateEvery": 10}}"#
            .write(toFile: directory + "/e.json", atomically: true, encoding: .utf8)
        let run = directory + "/run"
        let trained = try Tool.run(["train", "made", "--data", "bars:3", "--out", run, "--config", directory + "/e.json", "--steps", "30", "--json"])
        #expect(trained.status == 0, "\(trained.error)")
        let summary = try JSONSerialization.jsonObject(with: Data(trained.output.utf8)) as! [String: Any]
        let evaluated = try Tool.run(["evaluate", "--checkpoint", run, "--json"])
        let result = try JSONSerialization.jsonObject(with: Data(evaluated.output.utf8)) as! [String: Any]
        let (test, ensemble, one) = (summary["test_nats"] as! Double, result["ensemble_nll_nats"] as! Double, result["nll_nats"] as! Double)
        #expect(abs(test - ensemble) < 1e-6 && abs(ensemble - one) > 1e-3, "summary \(test), ensemble \(ensemble), one mask \(one)")
        try #"{"training": {"validateEnsemble": true}}"#.write(toFile: directory + "/bad.json", atomically: true, encoding: .utf8)
        let bad = try Tool.run(["train", "made", "--data", "bars:3", "--out", directory + "/bad", "--config", directory + "/bad.json"])
        #expect(bad.status == 1 && bad.error.contains("maskSets") && bad.error.split(separator: "\n").count == 1, "\(bad.error)")
    }

    /// The MADE benchmark with other hidden sizes and order-agnostic mask sets runs and reports a rate.
    @Test func madeBenchmarkOptions() throws {
        let result = try Tool.run(["bench", "made", "--hidden", "16,16", "--mask-sets", "3", "--steps", "2", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        #expect((object?["train_examples_per_s"] as? Double ?? 0) > 0, "\(result.output)")
        #expect((object?["parameters"] as? Int ?? 0) > 2 * 784 * 16, "\(result.output)")
        let bad = try Tool.run(["bench", "made", "--hidden", "16,x"])
        #expect(bad.status != 0 && bad.error.contains("--hidden"), "\(bad.error)")
    }

    @Test func imageErrorsAreOneLine() throws {
        let directory = temporaryDirectory("image-errors")
        // An IDX file the project makes itself trains as grey-level data.
        var bytes: [UInt8] = []
        for i in 0..<40 { for p in 0..<16 { bytes.append(UInt8((i * 7 + p * 13) % 256)) } }
        try IDX.write(bytes, shape: [40, 4, 4], to: directory + "/tiny.idx")
        let grey = try Tool.run(["train", "made", "--data", directory + "/tiny.idx", "--out", directory + "/grey", "--steps", "5",
                                 "--binarization", "static", "--json"])
        #expect(grey.status == 0, "\(grey.error)")
        let cases: [([String], String)] = [
            (["train", "made", "--data", "nonsense", "--out", directory + "/x"], "unknown data set"),
            (["train", "made", "--data", "bars", "--out", directory + "/grey", "--steps", "5"], "--resume"),
            (["sample", "--checkpoint", directory + "/grey", "--out", directory + "/s.png", "--class", "1"], "not class-conditional"),
            (["sample", "--checkpoint", directory + "/grey", "--out", directory + "/s.png", "--complete", directory + "/missing.png"], "cannot read"),
            (["evaluate", "--checkpoint", directory + "/grey", "--split", "everything"], "unknown split"),
            (["train", "fvsbn", "--data", "bars", "--out", directory + "/cc", "--class-conditional"], "gated-pixelcnn"),
        ]
        for (arguments, text) in cases {
            let result = try Tool.run(arguments)
            #expect(result.status == 1, "\(arguments): \(result.error)")
            let lines = result.error.split(separator: "\n").filter { !$0.hasPrefix("data:") && !$0.hasPrefix("model:") }
            #expect(lines.count == 1 && lines[0].hasPrefix("error: ") && result.error.contains(text), "\(arguments): \(result.error)")
        }
        // A WaveNet command on an image checkpoint.
        let wrong = try Tool.run(["generate", "--checkpoint", directory + "/grey", "--seconds", "0.1", "--out", directory + "/x.wav"])
        #expect(wrong.status == 1 && wrong.error.contains("not a WaveNet"))
    }
}
