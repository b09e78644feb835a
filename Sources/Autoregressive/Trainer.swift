import Autodiff
import Foundation
import NeuralNetworks
import Tensors

/// The three parts of a data set. The test split is scored once, at the end of training.
public enum DataSplit: String, Sendable, CaseIterable {
    case train, validation, test
}

/// What the trainer needs from a model and its data.
public protocol TrainingTask {
    associatedtype Batch
    var parameters: [NamedParameter] { get }
    /// Examples in a split (0 when the split is absent).
    func exampleCount(_ split: DataSplit) -> Int
    /// D for bits per dimension.
    var dimensionsPerExample: Int { get }
    /// Assembles the examples at `indices` of `split` (random crops, dynamic binarisation … draw from `generator`).
    func makeBatch(_ split: DataSplit, indices: [Int], generator: inout RandomGenerator) -> Batch
    /// The training objective as a recorded scalar: mean NLL in nats per example (or per dimension).
    /// `generator` serves per-step randomness such as MADE mask choice.
    func loss(_ batch: Batch, generator: inout RandomGenerator) -> Variable
    /// NLL in nats of each example of the batch (no graph).
    func evaluate(_ batch: Batch) -> [Double]
    /// The model configuration stored in checkpoints, as JSON.
    var configurationJSON: String { get }
    /// Whether a checkpoint whose configuration is `json` can resume this task.
    func acceptsCheckpointConfiguration(_ json: String) -> Bool
    /// Further metadata for checkpoints (e.g. which model the file holds).
    var checkpointMetadata: [String: String] { get }
}

extension TrainingTask {
    public var checkpointMetadata: [String: String] { [:] }
    /// By default the JSON must be the same string.
    public func acceptsCheckpointConfiguration(_ json: String) -> Bool { json == configurationJSON }
}

/// A task whose model configuration is a `Codable` value: checkpoints store it as canonical JSON, and a
/// checkpoint resumes when its JSON decodes to the same value. A configuration written by an older version
/// lacks the keys added since, which decode to defaults that keep the old behaviour, so its runs still resume.
public protocol ConfiguredTrainingTask: TrainingTask {
    associatedtype ModelConfiguration: Codable & Equatable
    var modelConfiguration: ModelConfiguration { get }
}

extension ConfiguredTrainingTask {
    public var configurationJSON: String { canonicalJSON(modelConfiguration) }
    public func acceptsCheckpointConfiguration(_ json: String) -> Bool {
        (try? JSONDecoder().decode(ModelConfiguration.self, from: Data(json.utf8))) == modelConfiguration
    }
}

/// JSON with sorted keys, so that equal configurations give equal strings.
public func canonicalJSON<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try! encoder.encode(value), as: UTF8.self)
}

/// How to train.
public struct TrainerConfiguration: Sendable, Codable, Equatable {
    public var batchSize = 32
    /// Total optimisation steps (learning-rate schedules are defined over these).
    public var steps = 1000
    public var evaluateEvery = 100
    /// Evaluations without a new best validation NLL before stopping (nil: never stop early).
    public var patience: Int? = nil
    public var seed: UInt64 = 0
    public var schedule = LearningRateSchedule(base: 1e-3)
    /// Global gradient-norm clip (nil: none).
    public var clipNorm: Float? = nil
    /// Skip batches whose loss is not finite (counted) instead of stopping.
    public var skipNonFiniteBatches = false
    /// Examples per evaluation batch.
    public var evaluationBatchSize = 256
    /// At most this many validation examples per evaluation (nil: all).
    public var validationLimit: Int? = nil
    /// Print a plain progress line every this many steps when not on a terminal.
    public var logEvery = 50
    /// Evaluate, checkpoint for use and sample with an exponential moving average of the weights
    /// with this decay (nil: the weights themselves); see `WeightAverage`.
    public var averageDecay: Float? = nil

    public init() {}
}

/// Why training stopped early with an error.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFiniteLoss(step: Int, value: Float, checkpoint: String?)
    case emptyTrainingSet
    case incompatibleCheckpoint(path: String, reason: String)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(step, value, checkpoint):
            "the loss became \(value) at step \(step); "
                + (checkpoint.map { "the last good checkpoint \($0) is intact; " } ?? "")
                + "lower the learning rate, set a gradient clip, or allow skipping bad batches"
        case .emptyTrainingSet:
            "the training split is empty; give more data or a smaller validation fraction"
        case let .incompatibleCheckpoint(path, reason):
            "cannot resume from \(path): \(reason); start a new run directory or drop --resume"
        }
    }
}

/// The trainer's position, saved with every checkpoint so that a resumed run continues exactly.
public struct TrainerState: Codable, Sendable, Equatable {
    public var step = 0
    public var epoch = 0
    /// Examples of the current epoch's order already used.
    public var position = 0
    public var bestValidationNats: Double? = nil
    public var bestStep: Int? = nil
    public var evaluationsWithoutImprovement = 0
    public var skippedBatches = 0
}

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public var state: TrainerState
    public var finalValidation: LikelihoodSummary?
    public var test: LikelihoodSummary?
    public var stoppedEarly: Bool
    public var seconds: Double
}

/// Minibatch maximum-likelihood training with checkpoints, exact resume, early stopping,
/// progress display and a JSON-lines metrics log.
///
/// Run directory: `latest.safetensors` (every evaluation and at the end), `best.safetensors`
/// (best validation NLL), `metrics.jsonl`. With `averageDecay` set, validation, the best checkpoint,
/// the test score and samples use the moving average of the weights; checkpoints hold it as `model.`
/// and the weights training continues from as `raw.`.
public final class Trainer<Task: TrainingTask> {
    public let task: Task
    public let optimizer: any Optimizer
    public let configuration: TrainerConfiguration
    public let runDirectory: String
    public private(set) var state = TrainerState()
    /// The per-step generator handed to the task (crops, masks, binarisation); saved in checkpoints.
    public private(set) var generator: RandomGenerator
    /// Called after each evaluation with the step (e.g. to write sample clips or images).
    public var sampleHook: ((Int) -> Void)? = nil
    /// Checked before every step; returning true stops after saving the latest checkpoint (Ctrl-C).
    public var shouldStop: () -> Bool = { false }
    /// Where progress goes (stderr by default).
    public var progress: ProgressDisplay
    /// The moving average of the weights (when `configuration.averageDecay` is set); saved in checkpoints.
    public let average: WeightAverage?

    public var latestPath: String { runDirectory + "/latest.safetensors" }
    public var bestPath: String { runDirectory + "/best.safetensors" }
    public var metricsPath: String { runDirectory + "/metrics.jsonl" }

    public init(task: Task, optimizer: any Optimizer, configuration: TrainerConfiguration, runDirectory: String,
                progress: ProgressDisplay = ProgressDisplay()) throws {
        self.task = task
        self.optimizer = optimizer
        self.configuration = configuration
        self.runDirectory = runDirectory
        self.generator = RandomGenerator(seed: configuration.seed ^ 0x5EED_5EED)
        self.progress = progress
        self.average = configuration.averageDecay.map(WeightAverage.init(decay:))
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
    }

    /// Restores parameters, optimizer moments, trainer position and generator from `latest.safetensors`.
    public func resume() throws {
        let checkpoint = try Checkpoint.read(from: latestPath)
        guard let config = checkpoint.metadata["config"], task.acceptsCheckpointConfiguration(config) else {
            throw TrainingError.incompatibleCheckpoint(path: latestPath, reason: "it was written for a different model configuration")
        }
        guard let json = checkpoint.metadata["trainer"], let saved = try? JSONDecoder().decode(TrainerState.self, from: Data(json.utf8)) else {
            throw TrainingError.incompatibleCheckpoint(path: latestPath, reason: "it holds no trainer state")
        }
        try checkpoint.restore(task.parameters, average: average, path: latestPath)
        try checkpoint.restore(optimizer, path: latestPath)
        generator = try checkpoint.generator("rng", path: latestPath)
        state = saved
    }

    /// The checkpoint for the current state.
    func checkpoint() -> Checkpoint {
        var checkpoint = Checkpoint(metadata: ["config": task.configurationJSON, "seriatim.format": "training-state-1"])
        for (key, value) in task.checkpointMetadata { checkpoint.metadata[key] = value }
        checkpoint.store(task.parameters, average: average)
        checkpoint.store(optimizer)
        checkpoint.store(generator, key: "rng")
        checkpoint.metadata["trainer"] = String(decoding: try! JSONEncoder().encode(state), as: UTF8.self)
        return checkpoint
    }

    /// Deterministic order of the training examples for an epoch.
    func order(epoch: Int) -> [Int] {
        var shuffler = RandomGenerator(seed: configuration.seed &+ 0x9E37_79B9 &* UInt64(epoch + 1))
        return shuffler.permutation(task.exampleCount(.train))
    }

    /// Mean NLL over a split (all of it, or the first `limit` examples).
    public func evaluate(_ split: DataSplit, limit: Int? = nil) -> LikelihoodSummary? {
        let total = min(task.exampleCount(split), limit ?? .max)
        guard total > 0 else { return nil }
        var evaluationGenerator = RandomGenerator(seed: configuration.seed ^ 0xE7A1)
        var nats: [Double] = []
        var start = 0
        while start < total {
            let indices = Array(start..<min(total, start + configuration.evaluationBatchSize))
            let batch = task.makeBatch(split, indices: indices, generator: &evaluationGenerator)
            nats += GradientMode.withoutGradients { task.evaluate(batch) }
            start += indices.count
        }
        return LikelihoodSummary(perExampleNats: nats, dimensions: task.dimensionsPerExample)
    }

    /// Trains until `configuration.steps`, early stopping, or `shouldStop`, then scores the test split
    /// once with the best weights (when the run finished).
    /// - Parameter stopAfter: stop (with a checkpoint) after this step even if more are configured.
    @discardableResult
    public func train(stopAfter: Int? = nil) throws -> TrainingSummary {
        let count = task.exampleCount(.train)
        guard count > 0 else { throw TrainingError.emptyTrainingSet }
        let batchSize = min(configuration.batchSize, count)
        let started = DispatchTime.now().uptimeNanoseconds
        var lastValidation: LikelihoodSummary? = nil
        var stoppedEarly = false
        var interrupted = false
        var currentOrder = order(epoch: state.epoch)
        var windowLoss = 0.0, windowSteps = 0
        var windowStart = DispatchTime.now().uptimeNanoseconds
        let end = min(configuration.steps, stopAfter ?? .max)
        progress.begin(totalSteps: configuration.steps, startStep: state.step)

        while state.step < end {
            if shouldStop() { interrupted = true; break }
            if state.position + batchSize > count {
                state.epoch += 1
                state.position = 0
                currentOrder = order(epoch: state.epoch)
            }
            let indices = Array(currentOrder[state.position..<(state.position + batchSize)])
            let batch = task.makeBatch(.train, indices: indices, generator: &generator)
            optimizer.learningRate = configuration.schedule.rate(at: state.step + 1)
            let loss = task.loss(batch, generator: &generator)
            let value = loss.value.scalar
            guard value.isFinite else {
                if configuration.skipNonFiniteBatches {
                    state.skippedBatches += 1
                    state.position += batchSize
                    state.step += 1
                    continue
                }
                progress.finish()
                let good = FileManager.default.fileExists(atPath: latestPath) ? latestPath : nil
                throw TrainingError.nonFiniteLoss(step: state.step + 1, value: value, checkpoint: good)
            }
            loss.backward()
            if let clip = configuration.clipNorm { clipGradientNorm(task.parameters, maxNorm: clip) }
            optimizer.update(task.parameters)
            average?.update(task.parameters)
            for p in task.parameters { p.variable.zeroGradient() }
            state.step += 1
            state.position += batchSize
            windowLoss += Double(value)
            windowSteps += 1

            let now = DispatchTime.now().uptimeNanoseconds
            let itemsPerSecond = Double(windowSteps * batchSize) / max(Double(now - windowStart) / 1e9, 1e-9)
            progress.update(step: state.step, loss: Double(value), validation: lastValidation?.bitsPerDimension,
                            itemsPerSecond: itemsPerSecond, elapsed: Double(now - started) / 1e9,
                            logEvery: configuration.logEvery)

            if state.step % configuration.evaluateEvery == 0 || state.step == end {
                lastValidation = withEvaluationWeights { evaluate(.validation, limit: configuration.validationLimit) }
                var record: [String: Any] = [
                    "step": state.step, "epoch": state.epoch, "train_loss": windowLoss / Double(max(windowSteps, 1)),
                    "learning_rate": Double(optimizer.learningRate), "items_per_second": itemsPerSecond,
                    "elapsed_s": Double(now - started) / 1e9, "skipped_batches": state.skippedBatches,
                ]
                if let v = lastValidation {
                    record["validation_nats"] = v.nats
                    record["validation_bits_per_dim"] = v.bitsPerDimension
                    if state.bestValidationNats.map({ v.nats < $0 }) ?? true {
                        state.bestValidationNats = v.nats
                        state.bestStep = state.step
                        state.evaluationsWithoutImprovement = 0
                        try checkpoint().write(to: bestPath)
                    } else {
                        state.evaluationsWithoutImprovement += 1
                    }
                } else {
                    state.bestStep = state.step
                    try checkpoint().write(to: bestPath)
                }
                try checkpoint().write(to: latestPath)
                try appendMetrics(record)
                windowLoss = 0; windowSteps = 0; windowStart = DispatchTime.now().uptimeNanoseconds
                if let sampleHook { withEvaluationWeights { sampleHook(state.step) } }
                if let patience = configuration.patience, state.evaluationsWithoutImprovement >= patience {
                    stoppedEarly = true
                    break
                }
            }
        }
        if interrupted { try checkpoint().write(to: latestPath) }
        progress.finish()

        var test: LikelihoodSummary? = nil
        let finished = !interrupted && (stoppedEarly || state.step >= configuration.steps)
        if finished && task.exampleCount(.test) > 0 {
            // The test split is used once, with the best weights.
            let trained = task.parameters.map(\.variable.value)
            if FileManager.default.fileExists(atPath: bestPath) {
                try Checkpoint.read(from: bestPath).load(into: task.parameters, prefix: "model.", path: bestPath)
            }
            test = evaluate(.test)
            for (p, v) in zip(task.parameters, trained) { p.variable.value = v }
            if let test {
                try appendMetrics(["step": state.step, "test_nats": test.nats, "test_nats_stderr": test.standardError,
                                   "test_bits_per_dim": test.bitsPerDimension, "test_examples": test.examples])
            }
        }
        return TrainingSummary(state: state, finalValidation: lastValidation, test: test, stoppedEarly: stoppedEarly,
                               seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
    }

    /// Runs `body` with the weights evaluation uses: the averages when averaging, else the weights.
    public func withEvaluationWeights<R>(_ body: () throws -> R) rethrows -> R {
        guard let average else { return try body() }
        return try average.withAverages(in: task.parameters, body)
    }

    private func appendMetrics(_ record: [String: Any]) throws {
        var line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
        line.append(0x0A)
        if let handle = FileHandle(forWritingAtPath: metricsPath) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
        } else {
            try line.write(to: URL(fileURLWithPath: metricsPath))
        }
    }
}

/// Training progress: a one-line bar on a terminal, plain periodic lines otherwise, or nothing.
public struct ProgressDisplay {
    public enum Mode { case automatic, bar, lines, silent }
    public var mode: Mode
    private var total = 0
    private var isTerminal: Bool
    private var pace = RecentPace()

    public init(mode: Mode = .automatic) {
        self.mode = mode
        isTerminal = isatty(STDERR_FILENO) == 1
    }

    mutating func begin(totalSteps: Int, startStep: Int) {
        total = totalSteps
        pace = RecentPace()
        pace.record(step: startStep, seconds: 0)
    }

    /// - Parameter validation: the latest validation NLL in bits per dimension.
    mutating func update(step: Int, loss: Double, validation: Double?, itemsPerSecond: Double, elapsed: Double, logEvery: Int) {
        let useBar = mode == .bar || (mode == .automatic && isTerminal)
        pace.record(step: step, seconds: elapsed)
        let remaining = pace.remainingSeconds(until: total)
        let validationText = validation.map { String(format: " val %.4f bits/dim", $0) } ?? ""
        let stats = String(format: "step %d/%d loss %.4f%@ %.0f items/s ETA %@", step, total, loss, validationText,
                           itemsPerSecond, ProgressDisplay.duration(remaining))
        switch mode {
        case .silent: return
        case _ where useBar:
            let width = 24
            let filled = total > 0 ? min(width, step * width / total) : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\(bar) \(stats)\u{1B}[K".utf8))
        default:
            if step % max(logEvery, 1) == 0 || step == total { FileHandle.standardError.write(Data((stats + "\n").utf8)) }
        }
    }

    func finish() {
        if mode == .bar || (mode == .automatic && isTerminal) { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// The pace of the last `capacity` steps, so that a resumed run counts only its own steps and a
    /// pause (Ctrl-Z, SIGSTOP) or a slow stretch stops weighing on the ETA once it has scrolled out.
    public struct RecentPace {
        private var steps: [Int]
        private var seconds: [Double]
        private var newest = -1
        private var count = 0

        public init(capacity: Int = 64) {
            steps = Array(repeating: 0, count: max(capacity, 2))
            seconds = Array(repeating: 0, count: max(capacity, 2))
        }

        /// `seconds` is the time since the run (or this resumed part of it) started.
        public mutating func record(step: Int, seconds time: Double) {
            newest = (newest + 1) % steps.count
            steps[newest] = step
            seconds[newest] = time
            count = min(count + 1, steps.count)
        }

        /// Seconds to reach `total` at the recent pace; NaN before two records with progress between them.
        public func remainingSeconds(until total: Int) -> Double {
            guard count >= 2 else { return .nan }
            let oldest = (newest - count + 1 + steps.count) % steps.count
            let done = steps[newest] - steps[oldest]
            let time = seconds[newest] - seconds[oldest]
            guard done > 0, time >= 0 else { return .nan }
            return Double(total - steps[newest]) * time / Double(done)
        }
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}
