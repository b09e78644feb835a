import ArgumentParser
import AudioModels
import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

/// The reference WaveNet: 2 × (1…512) dilations, kernel 2, 32 residual, 32 gate, 256 skip and head
/// channels, 256 mu-law classes.
struct WaveNetBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wavenet", abstract: "Benchmark WaveNet training and generation.")

    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Training steps to time (after one warm-up step).") var trainingSteps = 3
    @Option(help: "Samples per stream to generate for the cached timings.") var generateSamples = 16000
    @Option(help: "Samples to generate naively.") var naiveSamples = 8

    func run() throws {
        var config = WaveNetConfiguration()
        config.sampleRate = 16000
        var rng = RandomGenerator(seed: 1)
        let model = WaveNet(config, generator: &rng)
        var results: [String: Any] = ["parameters": model.parameterCount, "receptive_field": config.receptiveField]

        // Training: batch 4 × 8192 samples of input per step, Adam; every position is computed,
        // the loss counts those with a full receptive field.
        let length = 8192, batch = 4
        let audio = (0..<(length * 8)).map { i in Float(0.4 * sin(Double(i) * 0.05) + 0.1 * sin(Double(i) * 0.31)) }
        let corpus = Corpus(train: [CorpusClip(path: "synthetic", samples: audio, speaker: 0)], validation: [], speakers: [],
                            sampleRate: 16000, totalSeconds: 0, keptSeconds: 0, skipped: [])
        let task = WaveNetTask(model: model, corpus: corpus, window: length - config.receptiveField, batchSize: batch)
        let adam = Adam(learningRate: 1e-3)
        func step() {
            let b = task.makeBatch(.train, indices: Array(0..<batch), generator: &rng)
            let loss = task.loss(b, generator: &rng)
            loss.backward()
            adam.update(model.parameters)
            model.zeroGradients()
        }
        step()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<trainingSteps { step() }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(trainingSteps)
        results["train_samples_per_s"] = Double(batch * length) / seconds
        results["train_step_seconds"] = seconds

        // Generation with the per-layer queues, 1 and 8 streams.
        for streams in [1, 8] {
            let generator = WaveNetGenerator(model: model, streams: streams)
            var sampler = RandomGenerator(seed: 2)
            _ = generator.generate(count: 200, generator: &sampler)
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = generator.generate(count: generateSamples, generator: &sampler)
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            results["generate_samples_per_s_\(streams)"] = Double(generateSamples * streams) / s
        }
        // Naive: a full forward pass over the receptive field for every sample.
        var sampler = RandomGenerator(seed: 3)
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = WaveNetGenerator.generateNaive(model: model, streams: 1, count: naiveSamples,
                                           conditions: GenerationConditions(prime: [Float](repeating: 0, count: config.receptiveField)),
                                           generator: &sampler)
        results["naive_generate_samples_per_s_1"] = Double(naiveSamples) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)

        if json {
            printJSON(results)
        } else {
            print("WaveNet reference: \(config.dilations.count) layers (2 × 1…512), kernel 2, 32/32/256/256 channels, 256 classes, \(model.parameterCount) parameters")
            print(String(format: "training (batch 4 × 8192, Adam):        %9.0f samples/s  (%.2f s per step)", results["train_samples_per_s"] as! Double, seconds))
            print(String(format: "generation, cached, 1 stream:           %9.0f samples/s", results["generate_samples_per_s_1"] as! Double))
            print(String(format: "generation, cached, 8 streams:          %9.0f samples/s in all", results["generate_samples_per_s_8"] as! Double))
            print(String(format: "generation, naive, 1 stream:            %9.1f samples/s", results["naive_generate_samples_per_s_1"] as! Double))
        }
    }
}
