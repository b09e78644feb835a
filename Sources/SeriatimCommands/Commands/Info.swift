import ArgumentParser
import AudioModels
import Foundation
import NeuralNetworks
import Tensors

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a trained model: receptive field, parameters, memory (WaveNet) or image shape and parameters.")

    @Option(help: "A run directory or checkpoint file.") var checkpoint: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let file = try checkpointFile(checkpoint)
        if let kind = (try? Checkpoint.read(from: file))?.metadata["seriatim.model"], kind != "wavenet" {
            try imageInfo(); return
        }
        let model: WaveNet
        do { model = try WaveNet.load(from: file) } catch { throw UserError("\(error)") }
        let c = model.configuration
        let checkpointData: Checkpoint
        do { checkpointData = try Checkpoint.read(from: file) } catch { throw UserError("\(error)") }
        // Training window from the run file when there is one, else the defaults.
        var batch = 4, window = 4096
        let runFile = ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent("run.json")
        if let data = FileManager.default.contents(atPath: runFile), let run = try? JSONDecoder().decode(WaveNetRun.self, from: data) {
            batch = run.training.batchSize
            window = run.training.window
        }
        let length = c.receptiveField + window
        let bytes = WaveNet.activationBytes(c, batch: batch, length: length)
        let step = checkpointData.metadata["trainer"].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["step"] as? Int
        let info: [String: Any] = [
            "model": "wavenet", "checkpoint": file, "sample_rate": c.sampleRate, "receptive_field_samples": c.receptiveField,
            "receptive_field_ms": Double(c.receptiveField) / Double(c.sampleRate) * 1000, "parameters": model.parameterCount,
            "layers": c.dilations.count, "dilations": c.dilations, "kernel_width": c.kernelWidth,
            "training_batch": batch, "training_window_samples": length, "activation_bytes": bytes,
            "speakers": c.speakers, "local_bands": c.localBands, "mu": c.mu, "step": step ?? 0,
            "output": { if case .logisticMixture(let k) = c.output { return "logistic mixture (\(k) components, 16-bit)" }; return "softmax (\(c.mu + 1) mu-law classes)" }(),
        ]
        if json { printJSONValue(info); return }
        print("WaveNet \(file)" + (step.map { " (step \($0))" } ?? ""))
        print(String(format: "receptive field: %d samples = %.1f ms at %d Hz", c.receptiveField, Double(c.receptiveField) / Double(c.sampleRate) * 1000, c.sampleRate))
        print("parameters: \(model.parameterCount)")
        print("layers: \(c.dilations.count), kernel width \(c.kernelWidth), dilations \(c.dilations)")
        print("channels: residual \(c.residualChannels), gate \(c.gateChannels), skip \(c.skipChannels), head \(c.headChannels)")
        print("output: \(info["output"]!)")
        if !c.speakers.isEmpty { print("speakers: \(c.speakers.joined(separator: ", "))") }
        if let f = c.localFeatures { print("local conditioning: \(f.bands) log-mel bands every \(f.hop) samples") }
        if let f = c.featureFiles { print("local conditioning: \(f.bands) features per line of NAME\(f.suffix), every \(f.hop) samples") }
        print(String(format: "training batch %d × %d samples: %.1f MiB of activations (about twice that during the backward pass)",
                     batch, length, Double(bytes) / 1_048_576))
    }

    func imageInfo() throws {
        let (model, run, file) = try loadImageModel(checkpoint)
        let c = model.configuration
        let info: [String: Any] = ["model": c.kind, "checkpoint": file, "parameters": model.parameterCount, "channels": c.channels,
                                   "height": c.height, "width": c.width, "levels": c.levels, "dimensions": c.dimensions,
                                   "data": run?.data ?? "", "protocol": run.map { "\($0.binarization)" } ?? ""]
        if json { printJSONValue(info); return }
        print("\(c.kind) \(file)")
        print("images: \(c.channels)×\(c.height)×\(c.width), \(c.levels) levels (\(c.dimensions) dimensions)")
        print("parameters: \(model.parameterCount)")
        if let run { print("trained on \(run.data), binarisation \(run.binarization)") }
    }
}
