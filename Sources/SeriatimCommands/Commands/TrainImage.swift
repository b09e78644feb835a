import ArgumentParser
import Autodiff
import Autoregressive
import Foundation
import ImageModels
import NeuralNetworks
import Tensors

/// How an image run trains (the `training` section of a configuration file).
struct ImageTrainingOptions: Codable, Equatable {
    var batchSize = 100
    var steps = 2000
    var learningRate: Float = 1e-3
    /// L2 weight decay added to the gradient by Adam (0: none).
    var weightDecay: Float = 0
    /// "adam" (nil: the default), "rmsprop" or "adagrad".
    var optimizer: String? = nil
    /// "cosine" (nil: the default, down to a twentieth of the rate at the last step) or "constant".
    var schedule: String? = nil
    /// MADE with several mask sets: validation, the best checkpoint and the final test score use the
    /// k-mask ensemble instead of mask set 0 (nil: false).
    var validateEnsemble: Bool? = nil
    var evaluateEvery = 250
    var patience: Int? = nil
    var clipNorm: Float? = nil
    var validationLimit: Int? = nil
    /// Evaluate, keep and sample with a moving average of the weights of this decay, e.g. 0.999 (nil: none).
    var averageDecay: Float? = nil
    /// Images drawn into `samples/` after each evaluation (0: none).
    var sampleCount = 16
}

/// An image run: saved as `run.json` so that `--resume`, `evaluate` and `sample` need nothing else.
struct ImageRun: Codable {
    var model: ImageModelConfiguration
    var training: ImageTrainingOptions
    var data: String
    var binarization: Binarization
    var seed: UInt64
}

/// Defaults per model and data set, chosen so that small data trains to convergence in about a minute.
func defaultImageRun(kind: String, data: String, dataset: ImageDataset, seed: UInt64) -> ImageRun {
    var model = ImageModelConfiguration(kind: kind, channels: dataset.channels, height: dataset.height, width: dataset.width, levels: dataset.levels)
    model.seed = seed
    var training = ImageTrainingOptions()
    let small = dataset.channels * dataset.height * dataset.width <= 64
    switch kind {
    case "nade": model.hiddenSizes = [small ? 64 : 500]
    case "made":
        model.hiddenSizes = small ? [128, 128] : [500]
    case "pixelcnn":
        model.filters = small ? 32 * dataset.channels : 64 * dataset.channels
        model.blocks = small ? 4 : 6
        model.firstKernel = small ? 5 : 7
    case "row-lstm", "diagonal-bilstm":
        model.filters = small ? 16 * dataset.channels : 32 * dataset.channels
        model.blocks = small ? 2 : 4
        model.firstKernel = small ? 3 : 7
    case "gated-pixelcnn":
        model.filters = small ? 32 * dataset.channels : 64 * dataset.channels
        model.blocks = small ? 4 : 8
        model.firstKernel = small ? 3 : 7
    default: break
    }
    if small {
        training.steps = 3000
        training.learningRate = 3e-3
        training.evaluateEvery = 500
    } else {
        training.steps = 20_000
        training.evaluateEvery = 1000
        training.validationLimit = 2000
        if ["fvsbn", "nade", "made"].contains(kind) { training.learningRate = 3e-3 }
    }
    return ImageRun(model: model, training: training, data: data, binarization: dataset.binarization, seed: seed)
}

/// Options every image model's `train` subcommand shares.
struct ImageTrainingArguments: ParsableArguments {
    @Option(help: "digits, mnist, fashion-mnist, bars (4×4), bars:N, or a path to an IDX image file.") var data: String?
    @Option(help: "The run directory.") var out: String
    @Option(help: "A JSON file with \"model\" and \"training\" objects (only what changes).") var config: String?
    @Option(help: "Training steps.") var steps: Int?
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "none, static or dynamic (default: static for MNIST-style data, none otherwise).") var binarization: Binarization?
    @Flag(help: "Condition on the data's class labels (gated-pixelcnn).") var classConditional = false
    @Flag(help: "Continue the run in --out exactly where it stopped.") var resume = false
    @Flag(help: "Print the final summary as JSON.") var json = false
}

extension Binarization: ExpressibleByArgument {}

/// Trains an image model of the given kind.
func trainImageModel(kind: String, arguments a: ImageTrainingArguments) throws {
    let runFile = (a.out as NSString).appendingPathComponent("run.json")
    var run: ImageRun
    let dataset: ImageDataset
    if a.resume {
        guard let data = FileManager.default.contents(atPath: runFile), let saved = try? JSONDecoder().decode(ImageRun.self, from: data) else {
            throw UserError("\(a.out) holds no run to resume (no readable run.json); start it without --resume")
        }
        guard saved.model.kind == kind else { throw UserError("\(a.out) holds a \(saved.model.kind) run; resume it with 'seriatim train \(saved.model.kind)'") }
        run = saved
        if let steps = a.steps { run.training.steps = steps }
        dataset = try loadImages(run.data, binarization: run.binarization, seed: run.seed)
    } else {
        guard let data = a.data else { throw UserError("--data is required: digits, mnist, fashion-mnist, bars, bars:N or an IDX file") }
        dataset = try loadImages(data, binarization: a.binarization, seed: a.seed)
        run = defaultImageRun(kind: kind, data: data, dataset: dataset, seed: a.seed)
        if let config = a.config {
            let object = try readJSONObject(config)
            for key in object.keys where !["model", "training"].contains(key) {
                throw UserError("\(config): unknown section '\(key)'; use \"model\" and \"training\"")
            }
            if let model = object["model"] as? [String: Any] { run.model = try merged(run.model, with: model, context: "\(config) model") }
            if let training = object["training"] as? [String: Any] { run.training = try merged(run.training, with: training, context: "\(config) training") }
        }
        if let steps = a.steps { run.training.steps = steps }
        if a.classConditional {
            guard kind == "gated-pixelcnn" else { throw UserError("--class-conditional needs gated-pixelcnn") }
            guard dataset.classes > 1 else { throw UserError("\(data) has no class labels to condition on") }
            run.model.conditionalClasses = dataset.classes
        }
        if FileManager.default.fileExists(atPath: (a.out as NSString).appendingPathComponent("latest.safetensors")) {
            throw UserError("\(a.out) already holds a run; add --resume to continue it or choose another --out")
        }
    }
    if let problem = run.model.validationError() { throw UserError("invalid model configuration: \(problem)") }
    guard run.model.channels == dataset.channels, run.model.height == dataset.height, run.model.width == dataset.width,
          run.model.levels == dataset.levels else {
        throw UserError("the model is for \(run.model.channels)×\(run.model.height)×\(run.model.width) images with \(run.model.levels) levels but the data has \(dataset.channels)×\(dataset.height)×\(dataset.width) with \(dataset.levels); drop those settings from the configuration")
    }
    guard run.training.batchSize >= 1, run.training.steps >= 1, run.training.evaluateEvery >= 1 else {
        throw UserError("batchSize, steps and evaluateEvery must be at least 1")
    }
    try checkAverageDecay(run.training.averageDecay)
    let optimizer = try makeOptimizer(run.training.optimizer, learningRate: run.training.learningRate, weightDecay: run.training.weightDecay)
    let schedule = try learningRateSchedule(run.training.schedule, base: run.training.learningRate, steps: run.training.steps)
    if run.training.validateEnsemble == true && (kind != "made" || run.model.maskSets < 2) {
        throw UserError("validateEnsemble needs made with maskSets of 2 or more; drop it or set \"maskSets\"")
    }
    try FileManager.default.createDirectory(atPath: a.out, withIntermediateDirectories: true)
    try JSONEncoder.pretty.encode(run).write(to: URL(fileURLWithPath: runFile))

    var generator = RandomGenerator(seed: run.seed)
    let model = makeImageModel(run.model, generator: &generator)
    var task = ImageTask(model: model, dataset: dataset)
    task.ensembleEvaluation = run.training.validateEnsemble ?? false
    warn("data: \(dataset.name), \(dataset.train.count)/\(dataset.validation.count)/\(dataset.test.count) train/validation/test images of \(dataset.channels)×\(dataset.height)×\(dataset.width), \(dataset.protocolDescription)")
    warn("model: \(kind), \(model.parameterCount) parameters")

    var trainer = TrainerConfiguration()
    trainer.batchSize = run.training.batchSize
    trainer.steps = run.training.steps
    trainer.evaluateEvery = run.training.evaluateEvery
    trainer.patience = run.training.patience
    trainer.seed = run.seed
    trainer.schedule = schedule
    trainer.clipNorm = run.training.clipNorm
    trainer.validationLimit = run.training.validationLimit
    trainer.averageDecay = run.training.averageDecay
    trainer.logEvery = max(1, run.training.evaluateEvery / 5)
    let training = try Trainer(task: task, optimizer: optimizer, configuration: trainer, runDirectory: a.out)
    if a.resume { try training.resume() }
    Interruption.install()
    training.shouldStop = { Interruption.isRequested }
    if run.training.sampleCount > 0 {
        let directory = (a.out as NSString).appendingPathComponent("samples")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        training.sampleHook = { step in
            var sampler = RandomGenerator(seed: run.seed &+ UInt64(step))
            let images = model.sample(count: run.training.sampleCount, temperature: 1, generator: &sampler)
                .reshaped([run.training.sampleCount, run.model.channels, run.model.height, run.model.width])
            let grid = PNG.grid(images, levels: run.model.levels, columns: 4, scale: max(1, 64 / run.model.width))
            try? PNG.write(grid.pixels, width: grid.width, height: grid.height, channels: grid.channels,
                           to: (directory as NSString).appendingPathComponent("step-\(step).png"))
        }
    }
    let summary: TrainingSummary
    do { summary = try training.train() } catch let error as TrainingError { throw UserError(error.description) }
    if Interruption.isRequested { warn("interrupted: the run is saved in \(a.out); continue it with --resume") }
    var result: [String: Any] = ["steps": summary.state.step, "seconds": summary.seconds, "run_directory": a.out,
                                 "parameters": model.parameterCount, "protocol": dataset.protocolDescription]
    if let v = summary.finalValidation { result["validation_nats"] = v.nats; result["validation_bits_per_dim"] = v.bitsPerDimension }
    if let t = summary.test { result["test_nats"] = t.nats; result["test_nats_stderr"] = t.standardError; result["test_bits_per_dim"] = t.bitsPerDimension }
    if let entropy = dataset.entropy { result["true_entropy_nats"] = entropy }
    if a.json { printJSONValue(result); return }
    print(String(format: "trained %d steps in %.0f s; checkpoints in %@", summary.state.step, summary.seconds, a.out))
    if let v = summary.finalValidation { print(String(format: "validation: %.4f nats (%.4f bits/dim)", v.nats, v.bitsPerDimension)) }
    if let t = summary.test {
        print(String(format: "test: %.4f ± %.4f nats (%.4f bits/dim), %d images, %@", t.nats, 2 * t.standardError, t.bitsPerDimension, t.examples, dataset.protocolDescription))
    }
    if let entropy = dataset.entropy { print(String(format: "true entropy of the data: %.4f nats", entropy)) }
}

func loadImages(_ name: String, binarization: Binarization?, seed: UInt64) throws -> ImageDataset {
    do { return try ImageDatasets.load(name, binarization: binarization, seed: seed) } catch let error as ImageDataError {
        throw UserError(error.description)
    }
}

struct TrainFVSBN: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fvsbn", abstract: "Train a fully visible sigmoid belief net (one logistic regression per pixel).")
    @OptionGroup var arguments: ImageTrainingArguments
    func run() throws { try trainImageModel(kind: "fvsbn", arguments: arguments) }
}

struct TrainNADE: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nade", abstract: "Train NADE (tied one-hidden-layer autoregressive network).")
    @OptionGroup var arguments: ImageTrainingArguments
    func run() throws { try trainImageModel(kind: "nade", arguments: arguments) }
}

struct TrainMADE: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "made", abstract: "Train MADE (masked autoencoder; several mask sets with \"maskSets\").")
    @OptionGroup var arguments: ImageTrainingArguments
    func run() throws { try trainImageModel(kind: "made", arguments: arguments) }
}

struct TrainGatedPixelCNN: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gated-pixelcnn", abstract: "Train a Gated PixelCNN (vertical and horizontal stacks, optional class conditioning).")
    @OptionGroup var arguments: ImageTrainingArguments
    func run() throws { try trainImageModel(kind: "gated-pixelcnn", arguments: arguments) }
}

struct TrainRowLSTM: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "row-lstm", abstract: "Train a PixelRNN Row LSTM.")
    @OptionGroup var arguments: ImageTrainingArguments
    func run() throws { try trainImageModel(kind: "row-lstm", arguments: arguments) }
}

struct TrainDiagonalBiLSTM: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diagonal-bilstm", abstract: "Train a PixelRNN Diagonal BiLSTM.")
    @OptionGroup var arguments: ImageTrainingArguments
    func run() throws { try trainImageModel(kind: "diagonal-bilstm", arguments: arguments) }
}

struct TrainPixelCNN: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pixelcnn", abstract: "Train a PixelCNN (masked convolutions, residual blocks).")
    @OptionGroup var arguments: ImageTrainingArguments
    func run() throws { try trainImageModel(kind: "pixelcnn", arguments: arguments) }
}

/// Loads an image model from a checkpoint, with its run when the checkpoint sits in a run directory.
/// - Parameter rawWeights: in a run that averages its weights, load the weights training goes on from
///   (`raw.`) instead of the average (`model.`).
func loadImageModel(_ path: String, rawWeights: Bool = false) throws -> (model: any ImageModel, run: ImageRun?, file: String) {
    let file = try checkpointFile(path)
    let checkpoint: Checkpoint
    do { checkpoint = try Checkpoint.read(from: file) } catch { throw UserError("\(error)") }
    let kind = checkpoint.metadata["seriatim.model"] ?? "unknown"
    guard ImageModelConfiguration.kinds.contains(kind) else {
        throw UserError("checkpoint \(file) holds a \(kind) model, not an image model; pass a run directory made by 'seriatim train \(ImageModelConfiguration.kinds.joined(separator: "|"))'")
    }
    guard let json = checkpoint.metadata["config"], let configuration = try? JSONDecoder().decode(ImageModelConfiguration.self, from: Data(json.utf8)),
          configuration.validationError() == nil else {
        throw UserError("checkpoint \(file) has an unusable configuration; it may come from another version of Seriatim")
    }
    var generator = RandomGenerator(seed: 0)
    let model = makeImageModel(configuration, generator: &generator)
    if rawWeights && checkpoint.metadata["average.updates"] == nil {
        throw UserError("checkpoint \(file) holds no averaged weights, so there are no raw ones apart from them; drop --raw-weights")
    }
    do { try checkpoint.load(into: model.parameters, prefix: rawWeights ? "raw." : "model.", path: file) } catch { throw UserError("\(error)") }
    let runFile = ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent("run.json")
    let run = FileManager.default.contents(atPath: runFile).flatMap { try? JSONDecoder().decode(ImageRun.self, from: $0) }
    return (model, run, file)
}
