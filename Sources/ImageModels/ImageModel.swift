import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

/// Every image model's settings in one record (each model reads the fields it uses); stored in
/// checkpoints, so a checkpoint rebuilds its model alone.
public struct ImageModelConfiguration: Codable, Sendable, Equatable {
    /// fvsbn, nade, made, pixelcnn.
    public var kind: String
    public var channels: Int
    public var height: Int
    public var width: Int
    /// Values per channel (2: binary, Bernoulli outputs; more: K-way categorical per channel).
    public var levels: Int
    /// MADE hidden layer sizes; NADE uses the first as H.
    public var hiddenSizes: [Int] = [500]
    /// MADE mask sets (order- and connectivity-agnostic when > 1).
    public var maskSets: Int = 1
    public var orderAgnostic: Bool = false
    /// MADE: a masked input-to-output path beside the hidden layers (configurations stored without
    /// the key predate it and read as false).
    public var directConnection: Bool = true
    /// MADE: dropout probability on the hidden units in training; PixelCNN: on the input of each
    /// block's masked convolution (after its ReLU); PixelRNN: on each layer's LSTM states before its
    /// residual 1×1; in training only (0: none).
    public var dropout: Float = 0
    /// PixelCNN feature maps, residual blocks, first and block kernel sizes.
    public var filters: Int = 64
    public var blocks: Int = 6
    public var firstKernel: Int = 7
    public var blockKernel: Int = 3
    /// PixelCNN: the paper's residual block — ReLU, 1×1 to `filters / 2`, ReLU, the masked kernel, ReLU,
    /// 1×1 back to `filters` — instead of one masked convolution of `filters` maps.
    public var bottleneck: Bool = false
    /// PixelRNN: LSTM state channels (the paper's h, against 2h = `filters` features); nil: `filters`.
    public var stateFilters: Int? = nil
    /// PixelRNN: a learnable 1×1 skip connection from each layer's LSTM states to the head's input.
    public var skipConnections: Bool = false
    /// Classes for class-conditional Gated PixelCNN (0: unconditional).
    public var conditionalClasses: Int = 0
    public var seed: UInt64 = 0

    public init(kind: String, channels: Int, height: Int, width: Int, levels: Int) {
        self.kind = kind; self.channels = channels; self.height = height; self.width = width; self.levels = levels
    }

    enum CodingKeys: String, CodingKey {
        case kind, channels, height, width, levels, hiddenSizes, maskSets, orderAgnostic, directConnection, filters, blocks, firstKernel, blockKernel
        case conditionalClasses, seed, stateFilters, bottleneck, dropout, skipConnections
    }

    /// Settings missing from a stored configuration (written before they existed) take their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(kind: try c.decode(String.self, forKey: .kind), channels: try c.decode(Int.self, forKey: .channels),
                  height: try c.decode(Int.self, forKey: .height), width: try c.decode(Int.self, forKey: .width),
                  levels: try c.decode(Int.self, forKey: .levels))
        hiddenSizes = try c.decodeIfPresent([Int].self, forKey: .hiddenSizes) ?? hiddenSizes
        maskSets = try c.decodeIfPresent(Int.self, forKey: .maskSets) ?? maskSets
        orderAgnostic = try c.decodeIfPresent(Bool.self, forKey: .orderAgnostic) ?? orderAgnostic
        directConnection = try c.decodeIfPresent(Bool.self, forKey: .directConnection) ?? false
        filters = try c.decodeIfPresent(Int.self, forKey: .filters) ?? filters
        blocks = try c.decodeIfPresent(Int.self, forKey: .blocks) ?? blocks
        firstKernel = try c.decodeIfPresent(Int.self, forKey: .firstKernel) ?? firstKernel
        blockKernel = try c.decodeIfPresent(Int.self, forKey: .blockKernel) ?? blockKernel
        stateFilters = try c.decodeIfPresent(Int.self, forKey: .stateFilters)
        bottleneck = try c.decodeIfPresent(Bool.self, forKey: .bottleneck) ?? bottleneck
        dropout = try c.decodeIfPresent(Float.self, forKey: .dropout) ?? dropout
        skipConnections = try c.decodeIfPresent(Bool.self, forKey: .skipConnections) ?? skipConnections
        conditionalClasses = try c.decodeIfPresent(Int.self, forKey: .conditionalClasses) ?? conditionalClasses
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
    }

    public var dimensions: Int { channels * height * width }
    /// PixelRNN LSTM state channels: `stateFilters`, or `filters` when not set.
    public var lstmStates: Int { stateFilters ?? filters }
    /// Numbers per conditional: 1 logit for binary data, K logits otherwise.
    public var outputsPerDimension: Int { levels == 2 ? 1 : levels }

    public static let kinds = ["fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm"]

    /// The problem with the values, or nil.
    public func validationError() -> String? {
        if !ImageModelConfiguration.kinds.contains(kind) { return "unknown model '\(kind)'; known: \(ImageModelConfiguration.kinds.joined(separator: ", "))" }
        if channels < 1 || height < 1 || width < 1 || levels < 2 { return "images must have at least 1 channel, 1×1 pixels and 2 levels" }
        if kind == "made" && (hiddenSizes.isEmpty || hiddenSizes.contains { $0 < 1 }) { return "MADE needs at least one hidden layer" }
        if kind == "nade" && (hiddenSizes.first ?? 0) < 1 { return "NADE needs a hidden size" }
        if maskSets < 1 { return "maskSets must be at least 1" }
        if !(dropout >= 0 && dropout < 1) { return "dropout must be at least 0 and below 1" }
        if dropout > 0 && !["made", "pixelcnn", "row-lstm", "diagonal-bilstm"].contains(kind) {
            return "dropout is for made, pixelcnn, row-lstm and diagonal-bilstm only; drop it from the \(kind) configuration"
        }
        if kind == "gated-pixelcnn" && (blockKernel < 3 || firstKernel < 3) { return "Gated PixelCNN kernels must be at least 3" }
        if skipConnections && !["row-lstm", "diagonal-bilstm"].contains(kind) {
            return "skipConnections is for row-lstm and diagonal-bilstm only; drop it from the \(kind) configuration"
        }
        if conditionalClasses < 0 { return "conditionalClasses must not be negative" }
        if ["row-lstm", "diagonal-bilstm"].contains(kind) && blocks < 1 { return "PixelRNN needs at least one LSTM layer (blocks)" }
        if ["pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm"].contains(kind) && (filters < channels || filters % channels != 0 || firstKernel % 2 == 0 || blockKernel % 2 == 0) {
            return "PixelCNN needs odd kernels and filters divisible by the channel count"
        }
        if kind == "pixelcnn" && bottleneck && filters % (2 * channels) != 0 {
            return "a PixelCNN bottleneck halves filters: make filters a multiple of twice the channel count"
        }
        if ["row-lstm", "diagonal-bilstm"].contains(kind) && (lstmStates < channels || lstmStates % channels != 0) {
            return "stateFilters must be a positive multiple of the channel count"
        }
        return nil
    }
}

/// What the CLI and trainer need from an image model beyond `AutoregressiveModel`.
public protocol ImageModel: AutoregressiveModel {
    var configuration: ImageModelConfiguration { get }
    /// Called before each training step (MADE draws its mask set here).
    func prepareStep(_ generator: inout RandomGenerator)
    /// log p(x) per example for evaluation, `x` `[N, D]` (MADE: mask set 0).
    func evaluationLogProbability(_ x: Tensor) -> [Double]
}

extension ImageModel {
    public func prepareStep(_ generator: inout RandomGenerator) {}
    public func evaluationLogProbability(_ x: Tensor) -> [Double] { logProbability(x).scalars.map(Double.init) }
}

/// An image model whose conditionals come from logit maps `[N, C·P, H, W]` (PixelCNN, Gated PixelCNN,
/// PixelRNN), generated in raster order with channels innermost.
public protocol LogitMapImageModel: ImageModel {
    /// Logits `[N, C·P, H, W]` for flat images `[N, D]`.
    func logitMaps(_ x: Tensor) -> Variable
}

extension LogitMapImageModel {
    public var dimensionCount: Int { configuration.dimensions }
    public var generationOrder: [Int] { rasterChannelOrder(channels: configuration.channels, height: configuration.height, width: configuration.width) }

    public func conditionalLogProbabilities(_ x: Tensor) -> Variable {
        ImageModels.conditionalLogProbabilities(maps: logitMaps(x), targets: x, configuration: configuration)
    }

    public func conditionalParameters(_ x: Tensor) -> Tensor {
        ImageModels.conditionalParameters(maps: logitMaps(x).value, configuration: configuration)
    }

    public func sampleDimension(_ d: Int, given x: Tensor, temperature: Float, generator: inout RandomGenerator) -> [Float] {
        sampleFromLogits(conditionalParameters(x), dimension: d, temperature: temperature, generator: &generator)
    }
}

/// Builds the model a configuration describes.
public func makeImageModel(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) -> any ImageModel {
    precondition(configuration.validationError() == nil, "makeImageModel: \(configuration.validationError()!)")
    switch configuration.kind {
    case "fvsbn": return FVSBN(configuration, generator: &generator)
    case "nade": return NADE(configuration, generator: &generator)
    case "made": return MADE(configuration, generator: &generator)
    case "gated-pixelcnn": return GatedPixelCNN(configuration, generator: &generator)
    case "row-lstm": return RowLSTM(configuration, generator: &generator)
    case "diagonal-bilstm": return DiagonalBiLSTM(configuration, generator: &generator)
    default: return PixelCNN(configuration, generator: &generator)
    }
}

/// Raster order with channels innermost, on dimension indices c·H·W + p: the order of PixelCNN-family models.
public func rasterChannelOrder(channels: Int, height: Int, width: Int) -> [Int] {
    var order: [Int] = []
    for p in 0..<(height * width) { for c in 0..<channels { order.append(c * height * width + p) } }
    return order
}

/// log p(x_d | …) `[N, D]` from per-dimension logits `[N, D, P]` (P = 1: Bernoulli; P = K: categorical).
func conditionalLogProbabilities(logits: Variable, targets x: Tensor) -> Variable {
    let (n, d, p) = (logits.shape[0], logits.shape[1], logits.shape[2])
    if p == 1 { return Bernoulli.logProbability(logits: reshape(logits, [n, d]), targets: x) }
    return Categorical.logProbability(logits: logits, targets: x.scalars.map { Int32($0) }, axis: 2)
}

/// log p(x_d | …) `[N, D]` from logit maps `[N, C·P, H, W]` (Bernoulli for binary data, else a softmax per channel).
func conditionalLogProbabilities(maps: Variable, targets x: Tensor, configuration c: ImageModelConfiguration) -> Variable {
    let (n, hw) = (x.shape[0], c.height * c.width)
    if c.levels == 2 { return Bernoulli.logProbability(logits: reshape(maps, [n, c.dimensions]), targets: x) }
    let logits = reshape(maps, [n, c.channels, c.levels, hw])
    return reshape(Categorical.logProbability(logits: logits, targets: x.scalars.map { Int32($0) }, axis: 2), [n, c.dimensions])
}

/// Per-dimension logits `[N, D, P]` from logit maps `[N, C·P, H, W]`.
func conditionalParameters(maps: Tensor, configuration c: ImageModelConfiguration) -> Tensor {
    let n = maps.shape[0]
    let grouped = maps.reshaped([n, c.channels, c.outputsPerDimension, c.height * c.width])
    return Kernels.permute(grouped, [0, 1, 3, 2]).reshaped([n, c.dimensions, c.outputsPerDimension])
}

/// Draws one dimension for every row from per-dimension logits `[N, D, P]` (the generic sampler's draw).
func sampleFromLogits(_ logits: Tensor, dimension d: Int, temperature: Float, generator: inout RandomGenerator) -> [Float] {
    let (n, dims, p) = (logits.shape[0], logits.shape[1], logits.shape[2])
    if p == 1 {
        let column = Tensor(shape: [n], scalars: (0..<n).map { logits.scalars[$0 * dims + d] })
        return Bernoulli.sample(logits: column, temperature: temperature, generator: &generator).scalars
    }
    var rows = [Float](repeating: 0, count: n * p)
    for i in 0..<n { for k in 0..<p { rows[i * p + k] = logits.scalars[(i * dims + d) * p + k] } }
    return Categorical.sample(logits: Tensor(shape: [n, p], scalars: rows), axis: 1, temperature: temperature, generator: &generator).map(Float.init)
}

/// One draw from `p` logits at `pointer` (Bernoulli for one logit), exactly as `sampleFromLogits` draws a row.
@inline(__always)
func drawOne(_ pointer: UnsafePointer<Float>, count p: Int, temperature: Float, generator: inout RandomGenerator) -> Float {
    if p == 1 {
        let z = pointer[0]
        if temperature <= 0 { return z > 0 ? 1 : 0 }
        return generator.uniform() < 1 / (1 + Foundation.exp(-z / temperature)) ? 1 : 0
    }
    return Float(generator.categorical(logits: UnsafeBufferPointer(start: pointer, count: p), temperature: temperature))
}

// MARK: - FVSBN and MADE

/// FVSBN: a fully visible sigmoid belief net (Frey 1998; Neal 1992) — one logistic regression per
/// pixel on the pixels before it, here a `MaskedMLP` with no hidden layer. Deviation: grey levels
/// get a softmax regression instead of a logistic one.
public final class FVSBN: ImageModel {
    public let configuration: ImageModelConfiguration
    let network: MaskedMLP

    public init(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) {
        self.configuration = configuration
        network = MaskedMLP(MaskedMLPConfiguration(dimensions: configuration.dimensions, hiddenSizes: [], classes: configuration.levels,
                                                   inputScale: 1 / Float(configuration.levels - 1)), generator: &generator)
    }

    public var parameters: [NamedParameter] { network.parameters }
    public var dimensionCount: Int { network.dimensionCount }
    public var generationOrder: [Int] { network.generationOrder }
    public func conditionalLogProbabilities(_ x: Tensor) -> Variable { network.conditionalLogProbabilities(x) }
    public func conditionalParameters(_ x: Tensor) -> Tensor { network.conditionalParameters(x) }
    public func sampleDimension(_ d: Int, given x: Tensor, temperature: Float, generator: inout RandomGenerator) -> [Float] {
        network.sampleDimension(d, given: x, temperature: temperature, generator: &generator)
    }
    /// The masks, for `seriatim inspect`.
    public var masks: [Tensor] { network.layers.map { $0.masks[0] } }
}

/// MADE: Masked Autoencoder for Distribution Estimation (Germain et al. 2015, arXiv:1502.03509).
/// ReLU hidden layers; with k > 1 mask sets, a set (its order and hidden degrees) is drawn per
/// minibatch. Evaluation reports mask set 0 alone and the ensemble log (1/k) Σₘ pₘ(x).
/// With `directConnection` (the default) a masked input-to-output path is added, as in the authors'
/// code (on binarised MNIST it took a 1×500 MADE from 102.3 to 93.2 validation nats after 7,000
/// steps of a PyTorch check). Deviation: grey levels use a softmax per pixel.
public final class MADE: ImageModel {
    public let configuration: ImageModelConfiguration
    public let network: MaskedMLP

    public init(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) {
        self.configuration = configuration
        network = MaskedMLP(MaskedMLPConfiguration(dimensions: configuration.dimensions, hiddenSizes: configuration.hiddenSizes,
                                                   classes: configuration.levels, maskSets: configuration.maskSets,
                                                   orderAgnostic: configuration.orderAgnostic, seed: configuration.seed,
                                                   inputScale: 1 / Float(configuration.levels - 1),
                                                   directConnection: configuration.directConnection), generator: &generator)
        network.dropout = configuration.dropout
    }

    public var parameters: [NamedParameter] { network.parameters }
    public var dimensionCount: Int { network.dimensionCount }
    public var generationOrder: [Int] { network.generationOrder }
    public var activeMaskSet: Int {
        get { network.activeMaskSet }
        set { network.activeMaskSet = newValue }
    }
    public func conditionalLogProbabilities(_ x: Tensor) -> Variable { network.conditionalLogProbabilities(x) }
    public func conditionalParameters(_ x: Tensor) -> Tensor { network.conditionalParameters(x) }
    public func sampleDimension(_ d: Int, given x: Tensor, temperature: Float, generator: inout RandomGenerator) -> [Float] {
        network.sampleDimension(d, given: x, temperature: temperature, generator: &generator)
    }
    public func prepareStep(_ generator: inout RandomGenerator) {
        if network.maskSets.count > 1 { network.activeMaskSet = generator.integer(below: network.maskSets.count) }
        if network.dropout > 0 { network.pendingDropout.arm(from: &generator) }
    }
    public func evaluationLogProbability(_ x: Tensor) -> [Double] { network.ensembleLogProbability(x, maskSets: [0]) }
    /// The mask-ensemble log-likelihood over all k mask sets (log-mean-exp of the per-set likelihoods).
    public func ensembleLogProbability(_ x: Tensor) -> [Double] { network.ensembleLogProbability(x) }
    public var masks: [Tensor] { network.layers.map { $0.masks[network.activeMaskSet] } }

    /// With one hidden layer, sampling keeps the hidden pre-activations and adds each new value's
    /// column: O(D·H) instead of a forward pass per dimension.
    public func makeIncrementalSampler() -> (any IncrementalSampler)? {
        network.layers.count == 2 ? SingleHiddenLayerSampler(model: self) : nil
    }

    struct SingleHiddenLayerSampler: IncrementalSampler {
        let model: MADE

        func sample(count: Int, conditionedOn observation: PartialObservation?, temperature: Float,
                    generator: inout RandomGenerator) -> Tensor {
            let network = model.network
            let set = network.activeMaskSet
            let (hiddenLayer, outputLayer) = (network.layers[0], network.layers[1])
            let d = network.dimensionCount, h = hiddenLayer.weight.shape[0], p = network.configuration.outputsPerDimension
            let scale = network.configuration.inputScale
            // Masked weights, the hidden one transposed to [D, H] so a dimension's column is contiguous.
            let w1 = Kernels.transposeLastTwo(Kernels.binary(.multiply, hiddenLayer.weight.value, hiddenLayer.masks[set]))
            let w2 = Kernels.binary(.multiply, outputLayer.weight.value, outputLayer.masks[set])  // [D·P, H]
            let b1 = hiddenLayer.bias!.value.scalars, b2 = outputLayer.bias!.value.scalars
            // The direct path's masked weights `[D·P, D]`: output unit u adds Σᵢ wd[u, i]·xᵢ over the values drawn so far.
            let wd = network.direct.map { Kernels.binary(.multiply, $0.weight.value, $0.masks[set]).scalars }
            var x = Tensor.zeros([count, d])
            var pre = [Float](repeating: 0, count: count * h)
            for row in 0..<count { for j in 0..<h { pre[row * h + j] = b1[j] } }
            var hidden = [Float](repeating: 0, count: h)
            var logits = [Float](repeating: 0, count: p)
            for dimension in network.generationOrder {
                for row in 0..<count {
                    let value: Float
                    if let observation, observation.observed[dimension] {
                        value = observation.value(row: row, dimension: dimension)
                    } else {
                        for j in 0..<h { hidden[j] = max(pre[row * h + j], 0) }
                        for k in 0..<p {
                            var z = b2[dimension * p + k]
                            for j in 0..<h { z += w2.scalars[(dimension * p + k) * h + j] * hidden[j] }
                            if let wd {
                                let unit = dimension * p + k
                                for i in 0..<d { z += wd[unit * d + i] * x.scalars[row * d + i] * scale }
                            }
                            logits[k] = z
                        }
                        value = logits.withUnsafeBufferPointer { drawOne($0.baseAddress!, count: p, temperature: temperature, generator: &generator) }
                    }
                    x.scalars[row * d + dimension] = value
                    let v = value * scale
                    if v != 0 { for j in 0..<h { pre[row * h + j] += v * w1.scalars[dimension * h + j] } }
                }
            }
            return x
        }
    }
}

