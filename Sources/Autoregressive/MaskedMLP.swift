import Autodiff
import Foundation
import NeuralNetworks
import Tensors

/// The configuration of a masked multilayer perceptron over D discrete dimensions.
public struct MaskedMLPConfiguration: Codable, Sendable, Equatable {
    public var dimensions: Int
    public var hiddenSizes: [Int]
    /// Values each dimension takes: 2 gives one Bernoulli logit per dimension, K > 2 gives K logits.
    public var classes: Int
    /// Number of mask sets (connectivity-agnostic training when > 1).
    public var maskSets: Int
    /// The order of mask set 0; further sets use seeded random orders when `orderAgnostic`.
    public var ordering: Ordering
    /// Give each further mask set its own random order (order-agnostic training).
    public var orderAgnostic: Bool
    public var hiddenDegrees: HiddenDegrees
    public var seed: UInt64
    /// Inputs are multiplied by this before the first layer (1/(K − 1) maps levels to [0, 1]).
    public var inputScale: Float
    /// Add a masked linear path straight from the inputs to the outputs (strict mask, no bias), as
    /// the MADE authors' code offers: an FVSBN beside the hidden layers.
    public var directConnection: Bool

    public init(dimensions: Int, hiddenSizes: [Int], classes: Int = 2, maskSets: Int = 1, ordering: Ordering = .natural,
                orderAgnostic: Bool = false, hiddenDegrees: HiddenDegrees = .deterministic, seed: UInt64 = 0,
                inputScale: Float = 1, directConnection: Bool = false) {
        self.dimensions = dimensions; self.hiddenSizes = hiddenSizes; self.classes = classes; self.maskSets = maskSets
        self.ordering = ordering; self.orderAgnostic = orderAgnostic; self.hiddenDegrees = hiddenDegrees; self.seed = seed
        self.inputScale = inputScale; self.directConnection = directConnection
    }

    /// Output units per dimension.
    public var outputsPerDimension: Int { classes == 2 ? 1 : classes }
}

/// A masked MLP with ReLU hidden layers whose masks (from unit degrees, see `MaskSet`) make output d
/// depend only on the dimensions before d in the mask set's order: the shared engine of FVSBN (no
/// hidden layer), MADE and, later, MAF/IAF. Holds several mask sets; `activeMaskSet` picks one.
public final class MaskedMLP: AutoregressiveModel {
    public let configuration: MaskedMLPConfiguration
    public let maskSets: [MaskSet]
    public let orders: [[Int]]
    public let layers: [MaskedLinear]
    /// The input-to-output path when `directConnection` (initialised to zero).
    public let direct: MaskedLinear?
    /// The mask set used by the forward pass.
    public var activeMaskSet = 0
    /// Dropout on the hidden units in training: the probability of zeroing one (survivors scaled by
    /// 1/(1 − p)); 0 turns it off.
    public var dropout: Float = 0
    /// Armed before a training step; the next forward pass that records gradients draws its dropout masks.
    public var pendingDropout = PendingDropout()

    public init(_ configuration: MaskedMLPConfiguration, generator: inout RandomGenerator) {
        precondition(configuration.dimensions >= 1 && configuration.classes >= 2 && configuration.maskSets >= 1,
                     "MaskedMLP: \(configuration)")
        self.configuration = configuration
        var maskGenerator = RandomGenerator(seed: configuration.seed)
        var sets: [MaskSet] = []
        var orders: [[Int]] = []
        for index in 0..<configuration.maskSets {
            let ordering: Ordering = index == 0 || !configuration.orderAgnostic
                ? configuration.ordering : .random(seed: configuration.seed &+ UInt64(index) &* 7919)
            orders.append(ordering.permutation(configuration.dimensions))
            // Mask set 0 uses deterministic hidden degrees unless random ones are asked for; the
            // others draw theirs (connectivity-agnostic training).
            let degrees: HiddenDegrees = index == 0 ? configuration.hiddenDegrees : .random
            sets.append(MaskSet(inputDegrees: ordering.degrees(configuration.dimensions), hiddenSizes: configuration.hiddenSizes,
                                outputsPerDimension: configuration.outputsPerDimension, hiddenDegrees: degrees,
                                generator: &maskGenerator))
        }
        maskSets = sets
        self.orders = orders
        let sizes = [configuration.dimensions] + configuration.hiddenSizes + [configuration.dimensions * configuration.outputsPerDimension]
        layers = (0..<(sizes.count - 1)).map { l in
            MaskedLinear(inputs: sizes[l], outputs: sizes[l + 1], masks: sets.map { $0.masks[l] }, generator: &generator)
        }
        if configuration.directConnection && !configuration.hiddenSizes.isEmpty {
            let path = MaskedLinear(inputs: sizes[0], outputs: sizes.last!, masks: sets.map {
                MaskSet.mask(outputDegrees: $0.degrees.last!, inputDegrees: $0.degrees[0], strict: true)
            }, bias: false, generator: &generator)
            path.weight.value = .zeros(path.weight.shape)
            direct = path
        } else {
            direct = nil
        }
    }

    public var parameters: [NamedParameter] {
        layers.enumerated().flatMap { prefixed("layer\($0.offset)", $0.element.parameters) }
            + (direct.map { prefixed("direct", $0.parameters) } ?? [])
    }

    public var dimensionCount: Int { configuration.dimensions }
    public var generationOrder: [Int] { orders[activeMaskSet] }

    /// The output logits `[N, D·P]` (dimension-major) for inputs `[N, D]`.
    public func logits(_ x: Variable, maskSet: Int? = nil) -> Variable {
        let set = maskSet ?? activeMaskSet
        let input = configuration.inputScale == 1 ? x : x * configuration.inputScale
        var h = input
        var dropping = dropout > 0 ? pendingDropout.take() : nil
        for (l, layer) in layers.enumerated() {
            h = layer(h, maskSet: set)
            guard l < layers.count - 1 else { continue }
            h = dropping != nil ? reluDropout(h, rate: dropout, generator: &dropping!) : relu(h)
        }
        if let direct { h = h + direct(input, maskSet: set) }
        return h
    }

    public func conditionalLogProbabilities(_ x: Tensor) -> Variable {
        conditionalLogProbabilities(x, maskSet: activeMaskSet)
    }

    /// `log p(x_d | x_<d)` `[N, D]` under a given mask set.
    public func conditionalLogProbabilities(_ x: Tensor, maskSet: Int) -> Variable {
        let out = logits(Variable(x), maskSet: maskSet)
        if configuration.classes == 2 { return Bernoulli.logProbability(logits: out, targets: x) }
        let (n, d, k) = (x.shape[0], configuration.dimensions, configuration.classes)
        let targets = x.scalars.map { Int32($0) }
        return reshape(Categorical.logProbability(logits: reshape(out, [n, d, k]), targets: targets, axis: 2), [n, d])
    }

    public func conditionalParameters(_ x: Tensor) -> Tensor {
        logits(Variable(x)).value.reshaped([x.shape[0], configuration.dimensions, configuration.outputsPerDimension])
    }

    public func sampleDimension(_ d: Int, given x: Tensor, temperature: Float, generator: inout RandomGenerator) -> [Float] {
        let p = configuration.outputsPerDimension
        let out = logits(Variable(x)).value
        let n = x.shape[0]
        let perRow = configuration.dimensions * p
        if configuration.classes == 2 {
            let column = Tensor(shape: [n], scalars: (0..<n).map { out.scalars[$0 * perRow + d] })
            return Bernoulli.sample(logits: column, temperature: temperature, generator: &generator).scalars
        }
        var rows = [Float](repeating: 0, count: n * p)
        for i in 0..<n { for k in 0..<p { rows[i * p + k] = out.scalars[i * perRow + d * p + k] } }
        return Categorical.sample(logits: Tensor(shape: [n, p], scalars: rows), axis: 1, temperature: temperature,
                                  generator: &generator).map(Float.init)
    }

    /// log p(x) per example `[N]` averaged over the mask sets as a mixture:
    /// log (1/k) Σₘ pₘ(x) = logsumexp over m − log k (never an average of logits or of log-probabilities).
    public func ensembleLogProbability(_ x: Tensor, maskSets: [Int]? = nil) -> [Double] {
        let sets = maskSets ?? Array(0..<self.maskSets.count)
        let perSet: [[Float]] = GradientMode.withoutGradients {
            sets.map { sum(conditionalLogProbabilities(x, maskSet: $0), axes: [1]).value.scalars }
        }
        return (0..<x.shape[0]).map { row in
            let values = perSet.map { Double($0[row]) }
            let m = values.max()!
            return m + Foundation.log(values.reduce(0) { $0 + Foundation.exp($1 - m) }) - Foundation.log(Double(sets.count))
        }
    }
}

/// Maximum-likelihood training of an autoregressive model on examples held as tensors `[N, D]`.
public struct DensityEstimationTask<Model: AutoregressiveModel>: TrainingTask {
    public let model: Model
    public let splits: [DataSplit: Tensor]
    public let configurationJSON: String
    /// Runs before each training step (e.g. to draw a MADE mask set).
    public var prepareStep: ((Model, inout RandomGenerator) -> Void)?
    /// Scores examples for evaluation (default: the model's log-probability).
    public var evaluationLogProbability: ((Model, Tensor) -> [Double])?

    public init(model: Model, train: Tensor, validation: Tensor? = nil, test: Tensor? = nil, configurationJSON: String) {
        self.model = model
        var splits: [DataSplit: Tensor] = [.train: train]
        splits[.validation] = validation
        splits[.test] = test
        self.splits = splits
        self.configurationJSON = configurationJSON
    }

    public var parameters: [NamedParameter] { model.parameters }
    public var dimensionsPerExample: Int { model.dimensionCount }
    public func exampleCount(_ split: DataSplit) -> Int { splits[split]?.shape[0] ?? 0 }

    public func makeBatch(_ split: DataSplit, indices: [Int], generator: inout RandomGenerator) -> Tensor {
        let data = splits[split]!
        let d = data.shape[1]
        var scalars = [Float](repeating: 0, count: indices.count * d)
        data.withUnsafeBufferPointer { source in
            for (row, index) in indices.enumerated() {
                for j in 0..<d { scalars[row * d + j] = source[index * d + j] }
            }
        }
        return Tensor(shape: [indices.count, d], scalars: scalars)
    }

    public func loss(_ batch: Tensor, generator: inout RandomGenerator) -> Variable {
        prepareStep?(model, &generator)
        return -mean(sum(model.conditionalLogProbabilities(batch), axes: [1]))
    }

    public func evaluate(_ batch: Tensor) -> [Double] {
        if let score = evaluationLogProbability { return score(model, batch).map { -$0 } }
        return model.logProbability(batch).scalars.map { -Double($0) }
    }
}
