// WaveNet: A Generative Model for Raw Audio (van den Oord et al. 2016, arXiv:1609.03499).
//
// A dilated causal residual stack over audio samples; each sample's distribution is conditioned
// on the samples before it (within the receptive field), optionally on a speaker (global
// condition) and on frame-rate features upsampled to the sample rate (local condition).
// Where this deviates from the paper:
// - the input layer is a type-A causal convolution of width `inputKernelWidth` (2 by default)
//   on one-hot mu-law classes, rather than an explicit one-sample shift of the input;
// - local conditioning upsamples log-mel frames by repetition (not a learned transposed
//   convolution); the 1×1 projections into every gate are learned;
// - the 16-bit head is a discretised mixture of logistics (as in Parallel WaveNet, Oord et al.
//   2017), which takes the previous sample as a real value rather than one-hot.

import AudioFiles
import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

/// The output distribution of a WaveNet.
public enum WaveNetOutput: Codable, Sendable, Equatable {
    /// Softmax over μ + 1 mu-law classes (256 by default).
    case softmax
    /// Discretised mixture of logistics over 16-bit values.
    case logisticMixture(components: Int)
}

/// Everything needed to rebuild a WaveNet and interpret its numbers; stored in every checkpoint.
public struct WaveNetConfiguration: Codable, Sendable, Equatable {
    public var sampleRate = 16000
    /// μ of the mu-law companding (the softmax has μ + 1 classes).
    public var mu = 255
    public var dilations = DilatedStackConfiguration.powersOfTwo(through: 512, repeats: 2)
    public var kernelWidth = 2
    public var inputKernelWidth = 2
    public var residualChannels = 32
    public var gateChannels = 32
    public var skipChannels = 256
    public var headChannels = 256
    public var output = WaveNetOutput.softmax
    /// Speaker names; non-empty turns on global conditioning with a learned embedding.
    public var speakers: [String] = []
    public var speakerEmbeddingSize = 16
    /// Log-mel features for local conditioning, computed from the audio (nil: none).
    public var localFeatures: LogMelSpectrogram? = nil
    /// Frame features read from files beside the recordings, for local conditioning (nil: none).
    public var featureFiles: FeatureFiles? = nil

    /// Channels of the local condition (0: none).
    public var localBands: Int { localFeatures?.bands ?? featureFiles?.bands ?? 0 }
    /// Samples per local-condition frame.
    public var localHop: Int { localFeatures?.hop ?? featureFiles?.hop ?? 1 }

    public init() {}

    public var muLaw: MuLaw { MuLaw(mu: mu) }

    /// Channels of the input sequence: one-hot classes, or one real value for the 16-bit head.
    public var inputChannels: Int {
        switch output {
        case .softmax: mu + 1
        case .logisticMixture: 1
        }
    }

    public var outputChannels: Int {
        switch output {
        case .softmax: mu + 1
        case .logisticMixture(let k): 3 * k
        }
    }

    public var stack: DilatedStackConfiguration {
        DilatedStackConfiguration(inputChannels: inputChannels, residualChannels: residualChannels, gateChannels: gateChannels,
                                  skipChannels: skipChannels, headChannels: headChannels, outputChannels: outputChannels,
                                  kernelWidth: kernelWidth, dilations: dilations, inputKernelWidth: inputKernelWidth,
                                  globalConditionChannels: speakers.isEmpty ? 0 : speakerEmbeddingSize,
                                  localConditionChannels: localBands)
    }

    /// Past samples each prediction sees.
    public var receptiveField: Int { stack.receptiveField }

    /// The problem with the values, or nil when they make a model.
    public func validationError() -> String? {
        if sampleRate < 1 { return "sample rate \(sampleRate) must be positive" }
        if mu < 1 { return "mu \(mu) must be at least 1" }
        if case .logisticMixture(let k) = output, k < 1 { return "the logistic mixture needs at least 1 component" }
        if speakerEmbeddingSize < 1 { return "speaker embedding size must be at least 1" }
        if let f = localFeatures, f.sampleRate != sampleRate { return "local features at \(f.sampleRate) Hz do not match the model's \(sampleRate) Hz" }
        if localFeatures != nil && featureFiles != nil { return "choose computed log-mel features or feature files, not both" }
        if let f = featureFiles, f.bands < 1 || f.hop < 1 { return "feature files need at least 1 band and a hop of at least 1 sample" }
        return stack.validationError()
    }
}

/// The WaveNet model: a `DilatedCausalStack` plus a speaker embedding.
public final class WaveNet: ParameterContainer {
    public let configuration: WaveNetConfiguration
    public let stack: DilatedCausalStack
    public let speakerTable: Embedding?

    public init(_ configuration: WaveNetConfiguration, generator: inout RandomGenerator) {
        precondition(configuration.validationError() == nil, "WaveNet: \(configuration.validationError()!)")
        self.configuration = configuration
        stack = DilatedCausalStack(configuration.stack, generator: &generator)
        speakerTable = configuration.speakers.isEmpty ? nil
            : Embedding(count: configuration.speakers.count, dimension: configuration.speakerEmbeddingSize, generator: &generator)
    }

    public var parameters: [NamedParameter] {
        prefixed("stack", stack.parameters) + (speakerTable.map { prefixed("speaker", $0.parameters) } ?? [])
    }

    /// The value the 16-bit head sees and predicts for a sample: the nearest of 65 536 levels.
    @inlinable
    public static func quantize16(_ x: Float) -> Float {
        let clipped = min(max(x, -1), 1)
        return ((clipped + 1) / 2 * 65535).rounded() / 65535 * 2 - 1
    }

    /// The network input for sequences of samples `[B][T]`: `[B, inputChannels, T]`.
    public func inputTensor(_ windows: [[Float]]) -> Tensor {
        let (b, t, c) = (windows.count, windows.first?.count ?? 0, configuration.inputChannels)
        var input = Tensor.zeros([b, c, t])
        input.withUnsafeMutableBufferPointer { buffer in
            for (row, window) in windows.enumerated() {
                switch configuration.output {
                case .softmax:
                    let muLaw = configuration.muLaw
                    for (i, x) in window.enumerated() { buffer[(row * c + muLaw.encode(x)) * t + i] = 1 }
                case .logisticMixture:
                    for (i, x) in window.enumerated() { buffer[row * t + i] = WaveNet.quantize16(x) }
                }
            }
        }
        return input
    }

    /// The stack's output `[B, outputChannels, T − from]` for positions `from…`.
    public func callAsFunction(_ input: Tensor, speakers: [Int]? = nil, local: Tensor? = nil, from: Int = 0) -> Variable {
        let global = speakerTable.map { table in table(speakers ?? [Int](repeating: 0, count: input.shape[0])) }
        return stack(Variable(input), global: global, local: local.map { Variable($0) }, from: from)
    }

    /// The stack's output for windows of samples `[B][T]` (one-hot inputs go in as class lookups).
    public func callAsFunction(windows: [[Float]], speakers: [Int]? = nil, local: Tensor? = nil, from: Int = 0) -> Variable {
        guard case .softmax = configuration.output else {
            return self(inputTensor(windows), speakers: speakers, local: local, from: from)
        }
        let global = speakerTable.map { table in table(speakers ?? [Int](repeating: 0, count: windows.count)) }
        let muLaw = configuration.muLaw
        let classes = windows.map { $0.map { Int32(muLaw.encode($0)) } }
        return stack(classes: classes, global: global, local: local.map { Variable($0) }, from: from)
    }

    /// log p of the samples at positions `from…` of each window, `[B, T − from]`, given the
    /// outputs for those positions.
    public func logProbabilities(_ output: Variable, windows: [[Float]], from: Int = 0) -> Variable {
        switch configuration.output {
        case .softmax:
            let muLaw = configuration.muLaw
            let targets = windows.flatMap { $0[from...].map { Int32(muLaw.encode($0)) } }
            return Categorical.logProbability(logits: output, targets: targets, axis: 1)
        case .logisticMixture(let k):
            let values = windows.flatMap { $0[from...].map(WaveNet.quantize16) }
            return DiscretizedLogisticMixture(components: k, bits: 16)
                .logProbability(parameters: output, targets: Tensor(shape: [windows.count, windows[0].count - from], scalars: values))
        }
    }
}

/// Frame features supplied as files: for a recording `NAME.wav`, the file `NAME` + `suffix` holds
/// one frame per line, `bands` comma-separated numbers; frame f conditions samples f·hop … (f+1)·hop − 1
/// at the model's sample rate.
public struct FeatureFiles: Codable, Sendable, Equatable {
    public var bands: Int
    public var hop: Int
    public var suffix: String

    public init(bands: Int, hop: Int, suffix: String = ".features.csv") {
        self.bands = bands; self.hop = hop; self.suffix = suffix
    }

    /// The feature file that belongs to an audio file.
    public func path(for audio: String) -> String { (audio as NSString).deletingPathExtension + suffix }

    /// Reads a feature file: `[frames][bands]`.
    public func read(_ path: String) throws -> [[Float]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CorpusError.unreadableFile(path: path, reason: "no readable feature file")
        }
        var frames: [[Float]] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let fields = trimmed.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard fields.count == bands, fields.allSatisfy({ $0 != nil && $0!.isFinite }) else {
                throw CorpusError.unreadableFile(path: path, reason: "line \(number + 1) needs \(bands) numbers")
            }
            frames.append(fields.map { $0! })
        }
        guard !frames.isEmpty else { throw CorpusError.unreadableFile(path: path, reason: "the feature file has no frames") }
        return frames
    }
}

/// Training windows: samples, the first `receptiveField` positions not counted in the loss.
public struct WaveBatch {
    public var windows: [[Float]]
    public var speakers: [Int]
    public var local: Tensor?
    /// Positions from here on count (those with a full receptive field).
    public var firstCounted: Int
}

/// Maximum likelihood on random windows of receptive field + `window` samples from the training clips.
public final class WaveNetTask: ConfiguredTrainingTask {
    public let model: WaveNet
    public let train: [CorpusClip]
    public let validation: [CorpusClip]
    /// Counted samples per window.
    public let window: Int
    public let batchSize: Int
    /// The fixed validation windows: (clip, start).
    public let validationWindows: [(clip: Int, start: Int)]
    private let trainFeatures: [[[Float]]]
    private let validationFeatures: [[[Float]]]
    private let trainWeights: [Int]

    /// - Parameters:
    ///   - window: counted samples per training window (the window is receptive field + this long).
    ///   - validationLimit: at most this many validation windows (spread over the clips).
    public init(model: WaveNet, corpus: Corpus, window: Int, batchSize: Int, validationLimit: Int = 64) {
        self.model = model
        self.window = window
        self.batchSize = batchSize
        let span = model.configuration.receptiveField + window
        // Clips too short for one window are left out of training (the caller reports how much).
        train = corpus.train.filter { $0.samples.count >= span }
        validation = corpus.validation
        var windows: [(Int, Int)] = []
        for (c, clip) in validation.enumerated() {
            var start = 0
            while start + span <= clip.samples.count { windows.append((c, start)); start += window }
        }
        if windows.count > validationLimit {
            let stride = Double(windows.count) / Double(validationLimit)
            windows = (0..<validationLimit).map { windows[Int(Double($0) * stride)] }
        }
        validationWindows = windows.map { (clip: $0.0, start: $0.1) }
        let features = model.configuration.localFeatures
        trainFeatures = train.map { $0.features ?? features?.frames($0.samples) ?? [] }
        validationFeatures = validation.map { $0.features ?? features?.frames($0.samples) ?? [] }
        trainWeights = train.map { $0.samples.count - span + 1 }
    }

    public var parameters: [NamedParameter] { model.parameters }
    public var dimensionsPerExample: Int { window }
    public var modelConfiguration: WaveNetConfiguration { model.configuration }
    public var checkpointMetadata: [String: String] { ["seriatim.model": "wavenet"] }

    /// Training "examples" are windows' worth of samples; an epoch is one pass over the samples.
    public func exampleCount(_ split: DataSplit) -> Int {
        switch split {
        case .train: max(train.isEmpty ? 0 : batchSize, trainWeights.reduce(0, +) / window)
        case .validation: validationWindows.count
        case .test: 0
        }
    }

    public func makeBatch(_ split: DataSplit, indices: [Int], generator: inout RandomGenerator) -> WaveBatch {
        let span = model.configuration.receptiveField + window
        var windows: [[Float]] = [], speakers: [Int] = [], local: [Float] = []
        let (bands, hop) = (model.configuration.localBands, model.configuration.localHop)
        for index in indices {
            let (clipIndex, start): (Int, Int)
            if split == .train {
                // A random window, clips weighted by how many windows they hold.
                var r = generator.integer(below: trainWeights.reduce(0, +))
                var c = 0
                while r >= trainWeights[c] { r -= trainWeights[c]; c += 1 }
                (clipIndex, start) = (c, r)
            } else {
                (clipIndex, start) = validationWindows[index]
            }
            let clip = split == .train ? train[clipIndex] : validation[clipIndex]
            windows.append(Array(clip.samples[start..<(start + span)]))
            speakers.append(clip.speaker)
            if bands > 0 {
                let frames = split == .train ? trainFeatures[clipIndex] : validationFeatures[clipIndex]
                local += LogMelSpectrogram.upsample(frames, hop: hop, samples: span, from: start)
            }
        }
        let localTensor = bands > 0 ? Tensor(shape: [indices.count, bands, span], scalars: local) : nil
        return WaveBatch(windows: windows, speakers: speakers, local: localTensor, firstCounted: model.configuration.receptiveField)
    }

    /// log p of each counted sample, `[B, T − firstCounted]`.
    func countedLogProbabilities(_ batch: WaveBatch) -> Variable {
        let output = model(windows: batch.windows, speakers: batch.speakers, local: batch.local, from: batch.firstCounted)
        return model.logProbabilities(output, windows: batch.windows, from: batch.firstCounted)
    }

    /// Mean NLL per counted sample, nats.
    public func loss(_ batch: WaveBatch, generator: inout RandomGenerator) -> Variable {
        let counted = batch.windows.count * (batch.windows[0].count - batch.firstCounted)
        return -sum(countedLogProbabilities(batch)) * (1 / Float(counted))
    }

    public func evaluate(_ batch: WaveBatch) -> [Double] {
        let logp = countedLogProbabilities(batch).value
        let t = batch.windows[0].count - batch.firstCounted
        return (0..<batch.windows.count).map { row in -(0..<t).reduce(0.0) { $0 + Double(logp.scalars[row * t + $1]) } }
    }
}

extension WaveNet {
    /// Why a file could not be loaded as a WaveNet.
    public enum LoadError: Error, CustomStringConvertible {
        case notAWaveNet(path: String, kind: String)
        case badConfiguration(path: String, reason: String)

        public var description: String {
            switch self {
            case let .notAWaveNet(path, kind):
                "checkpoint \(path) holds a \(kind) model, not a WaveNet; pass a run directory made by 'seriatim train wavenet'"
            case let .badConfiguration(path, reason):
                "checkpoint \(path) has an unusable configuration (\(reason)); it may come from another version of Seriatim"
            }
        }
    }

    /// Loads a WaveNet from a training checkpoint (parameters under `model.`, configuration in the metadata).
    public static func load(from path: String) throws -> WaveNet {
        let checkpoint = try Checkpoint.read(from: path)
        let kind = checkpoint.metadata["seriatim.model"] ?? "unknown"
        guard kind == "wavenet" else { throw LoadError.notAWaveNet(path: path, kind: kind) }
        guard let json = checkpoint.metadata["config"],
              let configuration = try? JSONDecoder().decode(WaveNetConfiguration.self, from: Data(json.utf8)) else {
            throw LoadError.badConfiguration(path: path, reason: "no readable WaveNet configuration")
        }
        if let problem = configuration.validationError() { throw LoadError.badConfiguration(path: path, reason: problem) }
        var generator = RandomGenerator(seed: 0)
        let model = WaveNet(configuration, generator: &generator)
        try checkpoint.load(into: model.parameters, prefix: "model.", path: path)
        return model
    }

    /// Bytes of activations one training step keeps for the backward pass (float32), for windows of
    /// `length` samples: per residual layer the gate input (2G), gate output (G), skip projection
    /// and running skip sum (2S), residual projection and sum (2R); plus input, head and loss.
    public static func activationBytes(_ c: WaveNetConfiguration, batch: Int, length: Int) -> Int {
        let perLayer = 2 * c.gateChannels + c.gateChannels + 2 * c.skipChannels + 2 * c.residualChannels
        let rest = c.inputChannels + c.residualChannels + 2 * c.skipChannels + 2 * c.headChannels + 2 * c.outputChannels
        return 4 * batch * length * (perLayer * c.dilations.count + rest)
    }
}
