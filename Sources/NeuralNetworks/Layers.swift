import Autodiff
import Tensors

/// `y = x · Wᵀ + b`: input `[N, I]`, weight `[O, I]`, bias `[O]`, output `[N, O]`.
public struct Linear: ParameterContainer {
    public let weight: Variable
    public let bias: Variable?

    public init(inputs: Int, outputs: Int, bias: Bool = true, generator: inout RandomGenerator) {
        weight = parameter(Initializer.xavierUniform([outputs, inputs], fanIn: inputs, fanOut: outputs, generator: &generator))
        self.bias = bias ? parameter(.zeros([outputs])) : nil
    }

    public var parameters: [NamedParameter] {
        [NamedParameter("weight", weight)] + (bias.map { [NamedParameter("bias", $0)] } ?? [])
    }

    public func callAsFunction(_ x: Variable) -> Variable { linear(x, weight: weight, bias: bias) }
}

/// Causal dilated 1-D convolution: input `[B, I, T]`, weight `[K, O, I]` (tap-major), output `[B, O, T]`.
/// Output t sees inputs t − (K − 1)·dilation − offset … t − offset.
public struct Conv1D: ParameterContainer {
    public let weight: Variable
    public let bias: Variable?
    public let dilation: Int
    public let offset: Int

    public init(inputs: Int, outputs: Int, kernelWidth: Int, dilation: Int = 1, offset: Int = 0, bias: Bool = true,
                generator: inout RandomGenerator) {
        precondition(kernelWidth >= 1 && dilation >= 1, "Conv1D: kernel width \(kernelWidth) and dilation \(dilation) must be ≥ 1")
        weight = parameter(Initializer.xavierUniform([kernelWidth, outputs, inputs], fanIn: inputs * kernelWidth,
                                                     fanOut: outputs * kernelWidth, generator: &generator))
        self.bias = bias ? parameter(.zeros([outputs])) : nil
        self.dilation = dilation
        self.offset = offset
    }

    public var kernelWidth: Int { weight.shape[0] }
    /// How many past samples an output depends on, plus one.
    public var receptiveField: Int { (kernelWidth - 1) * dilation + 1 + offset }

    public var parameters: [NamedParameter] {
        [NamedParameter("weight", weight)] + (bias.map { [NamedParameter("bias", $0)] } ?? [])
    }

    public func callAsFunction(_ x: Variable) -> Variable {
        causalConv1D(x, weight: weight, bias: bias, dilation: dilation, offset: offset)
    }
}

/// "Same" 2-D convolution with an optional constant mask on the weight: input `[B, I, H, W]`,
/// weight `[O, I, KH, KW]`, output `[B, O, H, W]`. The mask is applied as `W ⊙ M` on every call
/// and never written into the weight.
public struct Conv2D: ParameterContainer {
    public let weight: Variable
    public let bias: Variable?
    public let mask: Tensor?
    public let taps: ConvolutionTaps

    public init(inputs: Int, outputs: Int, kernelSize: Int, mask: Tensor? = nil, bias: Bool = true,
                generator: inout RandomGenerator) {
        precondition(kernelSize % 2 == 1, "Conv2D: kernel size \(kernelSize) must be odd")
        let shape = [outputs, inputs, kernelSize, kernelSize]
        precondition(mask == nil || mask!.shape == shape, "Conv2D: mask \(mask!.shape) must be \(shape)")
        let fanIn = inputs * kernelSize * kernelSize
        weight = parameter(Initializer.xavierUniform(shape, fanIn: fanIn, fanOut: outputs * kernelSize * kernelSize, generator: &generator))
        self.bias = bias ? parameter(.zeros([outputs])) : nil
        self.mask = mask
        taps = ConvolutionTaps(kernelHeight: kernelSize, kernelWidth: kernelSize, mask: mask)
    }

    public var parameters: [NamedParameter] {
        [NamedParameter("weight", weight)] + (bias.map { [NamedParameter("bias", $0)] } ?? [])
    }

    public func callAsFunction(_ x: Variable) -> Variable {
        maskedConv2D(x, weight: weight, mask: mask, bias: bias, taps: taps)
    }

    /// This convolution on a grid (`gridConv2D`, `[I, total]` → `[O, total]`): of relu(x) with
    /// `reluInput`; `x + self(relu(x))` with both (as many outputs as inputs).
    public func onGrid(_ x: Variable, grid: ImageGrid, reluInput: Bool = false, residual: Bool = false) -> Variable {
        gridConv2D(x, weight: weight, mask: mask, bias: bias, taps: taps, grid: grid, reluInput: reluInput, residual: residual)
    }
}

/// A lookup table `[count, dimension]`: indices → rows.
public struct Embedding: ParameterContainer {
    public let table: Variable

    public init(count: Int, dimension: Int, generator: inout RandomGenerator) {
        table = parameter(generator.normalTensor([count, dimension], standardDeviation: 0.1))
    }

    public var parameters: [NamedParameter] { [NamedParameter("table", table)] }

    public func callAsFunction(_ indices: [Int]) -> Variable { embedding(table, indices: indices) }
}
