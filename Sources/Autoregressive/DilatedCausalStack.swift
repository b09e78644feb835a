import Autodiff
import NeuralNetworks
import Tensors

/// The shape of a WaveNet-style dilated causal residual stack (van den Oord et al. 2016),
/// shared by the audio model and the forecaster.
public struct DilatedStackConfiguration: Codable, Sendable, Equatable {
    /// Channels of the stack's input sequence (e.g. 256 for one-hot mu-law audio).
    public var inputChannels: Int
    public var residualChannels: Int
    /// Channels of each half of the gate (the dilated convolution produces twice this many).
    public var gateChannels: Int
    public var skipChannels: Int
    /// Channels between the two 1×1 convolutions of the output head.
    public var headChannels: Int
    /// Channels of the output (e.g. 256 logits).
    public var outputChannels: Int
    /// Width of every dilated convolution (≥ 2).
    public var kernelWidth: Int
    /// Dilation of each residual layer, bottom first.
    public var dilations: [Int]
    /// Width of the type-A input convolution (output t sees inputs t − width … t − 1).
    public var inputKernelWidth: Int
    /// Size of the global condition vector added to every gate (0: none).
    public var globalConditionChannels: Int
    /// Channels of the local condition sequence added to every gate through 1×1 convolutions (0: none).
    public var localConditionChannels: Int

    public init(inputChannels: Int, residualChannels: Int = 32, gateChannels: Int = 32, skipChannels: Int = 256,
                headChannels: Int = 256, outputChannels: Int = 256, kernelWidth: Int = 2,
                dilations: [Int] = DilatedStackConfiguration.powersOfTwo(through: 512, repeats: 2),
                inputKernelWidth: Int = 2, globalConditionChannels: Int = 0, localConditionChannels: Int = 0) {
        self.inputChannels = inputChannels; self.residualChannels = residualChannels; self.gateChannels = gateChannels
        self.skipChannels = skipChannels; self.headChannels = headChannels; self.outputChannels = outputChannels
        self.kernelWidth = kernelWidth; self.dilations = dilations; self.inputKernelWidth = inputKernelWidth
        self.globalConditionChannels = globalConditionChannels; self.localConditionChannels = localConditionChannels
    }

    /// 1, 2, 4, …, `through`, repeated `repeats` times.
    public static func powersOfTwo(through maximum: Int, repeats: Int) -> [Int] {
        var block: [Int] = []
        var d = 1
        while d <= maximum { block.append(d); d *= 2 }
        return Array([[Int]](repeating: block, count: repeats).joined())
    }

    /// How many past inputs an output depends on: output t sees inputs t − R … t − 1, with
    /// R = inputKernelWidth + Σ (kernelWidth − 1)·dilation.
    public var receptiveField: Int {
        inputKernelWidth + dilations.reduce(0) { $0 + (kernelWidth - 1) * $1 }
    }

    /// Checks the values a user can set; returns a message naming the problem, or nil.
    public func validationError() -> String? {
        if kernelWidth < 2 { return "kernel width \(kernelWidth) must be at least 2" }
        if inputKernelWidth < 1 { return "input kernel width \(inputKernelWidth) must be at least 1" }
        if dilations.isEmpty { return "the dilation list is empty" }
        if let bad = dilations.first(where: { $0 < 1 }) { return "dilation \(bad) must be at least 1" }
        for (name, value) in [("input", inputChannels), ("residual", residualChannels), ("gate", gateChannels),
                              ("skip", skipChannels), ("head", headChannels), ("output", outputChannels)] where value < 1 {
            return "\(name) channels \(value) must be at least 1"
        }
        return nil
    }
}

/// One residual layer: a dilated causal convolution into the stacked gate, optional condition
/// projections, and the residual and skip 1×1 convolutions.
public struct ResidualLayer: ParameterContainer {
    public let dilated: Conv1D
    public let global: Linear?
    public let local: Conv1D?
    public let residual: Conv1D?
    public let skip: Conv1D

    public var parameters: [NamedParameter] {
        var list = prefixed("dilated", dilated.parameters) + prefixed("skip", skip.parameters)
        if let residual { list += prefixed("residual", residual.parameters) }
        if let global { list += prefixed("global", global.parameters) }
        if let local { list += prefixed("local", local.parameters) }
        return list
    }
}

/// The dilated causal residual stack with its output head:
///
///     x ─ causal conv (type A) ─► h ─┬─ dilated conv ─ (+ global, + local) ─ tanh·σ ─► z ─ 1×1 ─► + h (next layer)
///                                    │                                                 └─ 1×1 ─► Σ skip
///     Σ skip ─ ReLU ─ 1×1 ─ ReLU ─ 1×1 ─► output
///
/// Input `[B, inputChannels, T]`, output `[B, outputChannels, T]`; output t depends only on inputs
/// before t (within the receptive field), on the global condition, and on local conditions ≤ t.
public struct DilatedCausalStack: ParameterContainer {
    public let configuration: DilatedStackConfiguration
    public let input: Conv1D
    public let layers: [ResidualLayer]
    public let head1: Conv1D
    public let head2: Conv1D

    public init(_ configuration: DilatedStackConfiguration, generator: inout RandomGenerator) {
        precondition(configuration.validationError() == nil, "DilatedCausalStack: \(configuration.validationError()!)")
        let c = configuration
        self.configuration = c
        input = Conv1D(inputs: c.inputChannels, outputs: c.residualChannels, kernelWidth: c.inputKernelWidth, offset: 1,
                       generator: &generator)
        layers = c.dilations.enumerated().map { index, dilation in
            let last = index == c.dilations.count - 1
            return ResidualLayer(
                dilated: Conv1D(inputs: c.residualChannels, outputs: 2 * c.gateChannels, kernelWidth: c.kernelWidth,
                                dilation: dilation, generator: &generator),
                global: c.globalConditionChannels > 0
                    ? Linear(inputs: c.globalConditionChannels, outputs: 2 * c.gateChannels, bias: false, generator: &generator) : nil,
                local: c.localConditionChannels > 0
                    ? Conv1D(inputs: c.localConditionChannels, outputs: 2 * c.gateChannels, kernelWidth: 1, bias: false,
                             generator: &generator) : nil,
                residual: last ? nil : Conv1D(inputs: c.gateChannels, outputs: c.residualChannels, kernelWidth: 1, generator: &generator),
                skip: Conv1D(inputs: c.gateChannels, outputs: c.skipChannels, kernelWidth: 1, generator: &generator))
        }
        head1 = Conv1D(inputs: c.skipChannels, outputs: c.headChannels, kernelWidth: 1, generator: &generator)
        head2 = Conv1D(inputs: c.headChannels, outputs: c.outputChannels, kernelWidth: 1, generator: &generator)
    }

    public var parameters: [NamedParameter] {
        var list = prefixed("input", input.parameters)
        for (i, layer) in layers.enumerated() { list += prefixed("layer\(i)", layer.parameters) }
        return list + prefixed("head1", head1.parameters) + prefixed("head2", head2.parameters)
    }

    /// The full-sequence forward pass (training and evaluation).
    /// - Parameters:
    ///   - x: `[B, inputChannels, T]`.
    ///   - global: `[B, globalConditionChannels]` when the stack has global conditioning.
    ///   - local: `[B, localConditionChannels, T]` when it has local conditioning (frame t conditions output t).
    ///   - from: the first position whose output is wanted; the result is `[B, outputChannels, T − from]`.
    ///     The residual layers still run over all positions (later layers need them), but the skip
    ///     projections and the head only over the wanted ones.
    public func callAsFunction(_ x: Variable, global: Variable? = nil, local: Variable? = nil, from: Int = 0) -> Variable {
        let c = configuration
        precondition(x.value.rank == 3 && x.shape[1] == c.inputChannels, "DilatedCausalStack: input \(x.shape) needs [B, \(c.inputChannels), T]")
        precondition((global != nil) == (c.globalConditionChannels > 0) && (local != nil) == (c.localConditionChannels > 0),
                     "DilatedCausalStack: conditioning inputs do not match the configuration")
        return residualLayers(input(x), time: x.shape[2], global: global, local: local, from: from)
    }

    /// The forward pass for a one-hot input given as classes `[B][T]` (each < inputChannels): the input
    /// convolution becomes column lookups instead of a product with a mostly-zero tensor.
    public func callAsFunction(classes: [[Int32]], global: Variable? = nil, local: Variable? = nil, from: Int = 0) -> Variable {
        let c = configuration
        precondition((global != nil) == (c.globalConditionChannels > 0) && (local != nil) == (c.localConditionChannels > 0),
                     "DilatedCausalStack: conditioning inputs do not match the configuration")
        let h = causalConv1D(classes: classes, weight: input.weight, bias: input.bias, dilation: input.dilation, offset: input.offset)
        return residualLayers(h, time: classes.first?.count ?? 0, global: global, local: local, from: from)
    }

    private func residualLayers(_ start: Variable, time: Int, global: Variable?, local: Variable?, from: Int) -> Variable {
        let c = configuration
        let batch = start.shape[0]
        precondition(from >= 0 && from < time, "DilatedCausalStack: from \(from) outside 0..<\(time)")
        var h = start
        var gates: [Variable] = []
        for layer in layers {
            var a = layer.dilated(h)
            if let global, let projection = layer.global {
                a = a + reshape(projection(global), [batch, 2 * c.gateChannels, 1])
            }
            if let local, let projection = layer.local { a = a + projection(local) }
            let z = gatedActivation(stacked: a)
            gates.append(z)
            if let residual = layer.residual { h = h + residual(z) }
        }
        // Σₗ W_skip,ₗ · zₗ as one product: [W₁ … W_L] · [z₁; …; z_L] (one GEMM with L·G inputs instead of L thin ones).
        let stacked = concatenateChannels(gates, times: from..<time)
        let skipWeight = concatenate(layers.map(\.skip.weight), axis: 2)
        var skipBias = layers[0].skip.bias!
        for layer in layers.dropFirst() { skipBias = skipBias + layer.skip.bias! }
        let skip = causalConv1D(stacked, weight: skipWeight, bias: skipBias, dilation: 1)
        return head2(relu(head1(relu(skip))))
    }
}
