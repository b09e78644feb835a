import ArgumentParser
import Autodiff
import Autoregressive
import Foundation
import ImageModels
import NeuralNetworks
import Tensors

/// `seriatim bench made`: MADE 784–500–500–784 training examples/s at batch 100 with Adam (other
/// hidden sizes, and order-agnostic mask sets drawn per step, on request).
struct MADEBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "made", abstract: "Benchmark MADE 784–500–500–784 training.")
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Steps to time at least (the median step is reported).") var steps = 30
    @Option(help: "Hidden layer sizes, comma-separated.") var hidden = "500,500"
    @Option(help: "Mask sets; more than one are order-agnostic and one is drawn per step.") var maskSets = 1

    func validate() throws {
        let sizes = hidden.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("--hidden '\(hidden)' must be positive sizes separated by commas, e.g. 500,500")
        }
        guard maskSets >= 1 else { throw ValidationError("--mask-sets must be at least 1") }
    }

    func run() throws {
        var config = ImageModelConfiguration(kind: "made", channels: 1, height: 28, width: 28, levels: 2)
        config.hiddenSizes = hidden.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
        config.maskSets = maskSets
        config.orderAgnostic = maskSets > 1
        config.directConnection = false  // the architecture the issue's PyTorch figure is for
        var rng = RandomGenerator(seed: 1)
        let model = makeImageModel(config, generator: &rng)
        let data = ImageSet(images: Tensor(shape: [1000, 1, 28, 28], scalars: (0..<784_000).map { _ in rng.bernoulli(0.2) }),
                            labels: [Int](repeating: 0, count: 1000), levels: 2)
        let adam = Adam(learningRate: 1e-3)
        func step(_ i: Int) {
            let rows = (0..<100).map { ($0 + i * 100) % 1000 }
            let batch = data.rows(rows)
            model.prepareStep(&rng)
            let loss = -mean(sum(model.conditionalLogProbabilities(batch), axes: [1]))
            loss.backward()
            adam.update(model.parameters)
            for p in model.parameters { p.variable.zeroGradient() }
        }
        var i = 0
        // The median step: a shared machine's slow moments do not move it.
        let seconds = measure(minimumRuns: steps, minimum: 2) { i += 1; step(i) }
        let rate = 100 / seconds
        if json { printJSON(["train_examples_per_s": rate, "parameters": model.parameterCount]) } else {
            let shape = ([784] + config.hiddenSizes + [784]).map(String.init).joined(separator: "–")
            let masks = maskSets > 1 ? ", \(maskSets) order-agnostic mask sets" : ""
            print("MADE \(shape)\(masks) (\(model.parameterCount) parameters), batch 100, Adam: \(String(format: "%.0f", rate)) examples/s")
        }
    }
}

/// Training images/s (median Adam step on random binary 28×28 images), the time to sample 16 images
/// with the model's sampler, and the naive sampler's time for 16 estimated from its first row.
struct ImageModelTiming {
    let parameters: Int, imagesPerSecond: Double, sampleSeconds: Double, naiveSeconds: Double

    init(_ config: ImageModelConfiguration, batch: Int, steps: Int) {
        var rng = RandomGenerator(seed: 1)
        let model = makeImageModel(config, generator: &rng)
        let d = config.dimensions
        let images = Tensor(shape: [batch, d], scalars: (0..<(batch * d)).map { _ in rng.bernoulli(0.2) })
        let adam = Adam(learningRate: 1e-3)
        func step() {
            let loss = -mean(sum(model.conditionalLogProbabilities(images), axes: [1]))
            loss.backward()
            adam.update(model.parameters)
            for p in model.parameters { p.variable.zeroGradient() }
        }
        parameters = model.parameterCount
        imagesPerSecond = Double(batch) / measure(minimumRuns: steps, minimum: 2, step)
        var sampler = RandomGenerator(seed: 2)
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = model.sample(count: 16, generator: &sampler)
        sampleSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let t1 = DispatchTime.now().uptimeNanoseconds
        _ = model.genericSample(count: 16, conditionedOn: PartialObservation(values: .zeros([d]), observed: (0..<d).map { $0 >= config.width }),
                                generator: &sampler)
        naiveSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9 * Double(config.height)
    }

    var json: [String: Any] {
        ["train_images_per_s": imagesPerSecond, "sample_16_seconds": sampleSeconds, "naive_sample_16_seconds_estimated": naiveSeconds,
         "parameters": parameters]
    }

    func printLines(batch: Int, sampler: String) {
        print(String(format: "training, batch %d, Adam:   %8.1f images/s", batch, imagesPerSecond))
        print(String(format: "sampling 16 images, %@: %8.3f s", sampler, sampleSeconds))
        print(String(format: "sampling 16 images, naive:  %8.1f s (estimated from the first row: one forward pass per pixel)", naiveSeconds))
    }
}

/// `seriatim bench pixelcnn`: 28×28 binary PixelCNN (7×7 type A, 6 residual 3×3 type-B blocks of
/// 64 channels, 1×1 head): training images/s at batch 32 and the time to sample 16 images.
struct PixelCNNBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pixelcnn", abstract: "Benchmark PixelCNN training and cached sampling.")
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Steps to time at least (the median step is reported).") var steps = 10

    func run() throws {
        var config = ImageModelConfiguration(kind: "pixelcnn", channels: 1, height: 28, width: 28, levels: 2)
        config.filters = 64; config.blocks = 6; config.firstKernel = 7; config.blockKernel = 3
        let timing = ImageModelTiming(config, batch: 32, steps: steps)
        if json {
            printJSON(timing.json)
        } else {
            print("PixelCNN 28×28 binary, 7×7 A + 6 residual 3×3 B blocks of 64 + 1×1 head (\(timing.parameters) parameters)")
            timing.printLines(batch: 32, sampler: "cached")
        }
    }
}

/// `seriatim bench pixelrnn`: the MNIST Row LSTM (batch 32) and Diagonal BiLSTM (batch 16) of
/// `seriatim train` (7×7 type A, 4 residual LSTM layers of 32, 1×1 head) on 28×28 binary images:
/// training images/s and the time to sample 16 images with the row-cached samplers. Other depths and
/// widths on request (`--layers 7 --filters 32 --state-filters 16` is the paper's MNIST network).
struct PixelRNNBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pixelrnn", abstract: "Benchmark Row LSTM and Diagonal BiLSTM training and sampling.")
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Steps to time at least (the median step is reported).") var steps = 5
    @Option(help: "Residual LSTM layers.") var layers = 4
    @Option(help: "Feature maps (the paper's 2h).") var filters = 32
    @Option(help: "LSTM state channels (the paper's h; default: as many as --filters).") var stateFilters: Int?

    func validate() throws {
        guard layers >= 1, filters >= 1, (stateFilters ?? 1) >= 1 else {
            throw ValidationError("--layers, --filters and --state-filters must be at least 1")
        }
    }

    func run() throws {
        var results: [String: Any] = [:]
        let states = stateFilters.map { " with states of \($0)" } ?? ""
        for (kind, batch) in [("row-lstm", 32), ("diagonal-bilstm", 16)] {
            var config = ImageModelConfiguration(kind: kind, channels: 1, height: 28, width: 28, levels: 2)
            config.filters = filters; config.blocks = layers; config.firstKernel = 7; config.stateFilters = stateFilters
            let timing = ImageModelTiming(config, batch: batch, steps: steps)
            if json {
                results[kind] = timing.json.merging(["batch": batch]) { a, _ in a }
            } else {
                print("\(kind) 28×28 binary, 7×7 A + \(layers) LSTM layers of \(filters)\(states) + 1×1 head (\(timing.parameters) parameters)")
                timing.printLines(batch: batch, sampler: "cached by rows")
            }
        }
        if json { printJSON(results) }
    }
}
