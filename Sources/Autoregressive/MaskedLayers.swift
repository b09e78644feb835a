import Autodiff
import NeuralNetworks
import Tensors

/// `y = x · (W ⊙ M)ᵀ + b` with one of several constant masks: input `[N, I]`, weight and masks
/// `[O, I]`, output `[N, O]`. The mask in use is chosen per call; the stored weight is never masked.
public struct MaskedLinear: ParameterContainer {
    public let weight: Variable
    public let bias: Variable?
    /// The constant masks, one per mask set.
    public let masks: [Tensor]
    /// Where each mask is nonzero, so the products skip the rest.
    public let layouts: [MaskLayout]

    public init(inputs: Int, outputs: Int, masks: [Tensor], bias: Bool = true, generator: inout RandomGenerator) {
        precondition(!masks.isEmpty && masks.allSatisfy { $0.shape == [outputs, inputs] },
                     "MaskedLinear: masks \(masks.map(\.shape)) must be [\(outputs), \(inputs)]")
        weight = parameter(Initializer.xavierUniform([outputs, inputs], fanIn: inputs, fanOut: outputs, generator: &generator))
        self.bias = bias ? parameter(.zeros([outputs])) : nil
        self.masks = masks
        self.layouts = masks.map { MaskLayout(mask: $0) }
    }

    public var parameters: [NamedParameter] {
        [NamedParameter("weight", weight)] + (bias.map { [NamedParameter("bias", $0)] } ?? [])
    }

    public func callAsFunction(_ x: Variable, maskSet: Int = 0) -> Variable {
        linear(x, weight: weight, bias: bias, mask: masks[maskSet], layout: layouts[maskSet])
    }
}

/// PixelCNN mask types: A excludes the current pixel's own channel group (input layer), B includes it.
public enum MaskType: String, Sendable, Codable {
    case a = "A"
    case b = "B"
}

/// Masks for 2-D convolutions in raster order with channel groups (van den Oord et al. 2016).
///
/// Each (pixel, channel group) pair has a degree, ordered lexicographically by row, column, group;
/// the mask is `M[o, i, r, c] = deg(out) ≥ deg(in)` for type B and `>` for type A, where the output
/// sits at the kernel centre. With 3 groups (R, G, B) and type A, R sees nothing of the current
/// pixel, G sees R, B sees R and G. Type-A mask for a 3×3 kernel, one group:
///
///     1 1 1
///     1 0 0
///     0 0 0
///
/// Type B is the same with the centre set. Channels are split into `groups` contiguous groups
/// (`group(c) = c · groups / channels`).
public enum RasterMask {
    /// The mask `[outputs, inputs, k, k]`.
    public static func make(outputs: Int, inputs: Int, kernelSize k: Int, type: MaskType, groups: Int = 1) -> Tensor {
        precondition(k % 2 == 1, "RasterMask: kernel size \(k) must be odd")
        precondition(groups >= 1 && inputs % groups == 0 && outputs % groups == 0,
                     "RasterMask: \(inputs) inputs and \(outputs) outputs must split into \(groups) channel groups")
        let centre = k / 2
        return Tensor(shape: [outputs, inputs, k, k]) { buffer in
            for o in 0..<outputs {
                let go = o * groups / outputs
                for i in 0..<inputs {
                    let gi = i * groups / inputs
                    for r in 0..<k {
                        for c in 0..<k {
                            let allowed: Bool
                            if r != centre { allowed = r < centre }
                            else if c != centre { allowed = c < centre }
                            else { allowed = type == .a ? gi < go : gi <= go }
                            buffer[((o * inputs + i) * k + r) * k + c] = allowed ? 1 : 0
                        }
                    }
                }
            }
        }
    }
}

/// A 2-D convolution with a raster-order mask (`RasterMask`): input `[B, I, H, W]`, output `[B, O, H, W]`.
public struct MaskedConv2D: ParameterContainer {
    public let convolution: Conv2D
    public let type: MaskType
    public let groups: Int

    public init(inputs: Int, outputs: Int, kernelSize: Int, type: MaskType, groups: Int = 1, bias: Bool = true,
                generator: inout RandomGenerator) {
        let mask = RasterMask.make(outputs: outputs, inputs: inputs, kernelSize: kernelSize, type: type, groups: groups)
        convolution = Conv2D(inputs: inputs, outputs: outputs, kernelSize: kernelSize, mask: mask, bias: bias, generator: &generator)
        self.type = type
        self.groups = groups
    }

    public var mask: Tensor { convolution.mask! }
    public var parameters: [NamedParameter] { convolution.parameters }
    public func callAsFunction(_ x: Variable) -> Variable { convolution(x) }
    /// This convolution on a grid (see `Conv2D.onGrid`).
    public func onGrid(_ x: Variable, grid: ImageGrid, reluInput: Bool = false, residual: Bool = false) -> Variable {
        convolution.onGrid(x, grid: grid, reluInput: reluInput, residual: residual)
    }
    /// The taps the mask leaves active.
    public var taps: ConvolutionTaps { convolution.taps }
}

/// A causal 1-D convolution: type A (output t sees inputs < t), type B (output t sees inputs ≤ t).
/// Input `[B, I, T]`, weight `[K, O, I]`, output `[B, O, T]`.
public struct CausalConv1D: ParameterContainer {
    public let convolution: Conv1D
    public let type: MaskType

    public init(inputs: Int, outputs: Int, kernelWidth: Int, dilation: Int = 1, type: MaskType, bias: Bool = true,
                generator: inout RandomGenerator) {
        convolution = Conv1D(inputs: inputs, outputs: outputs, kernelWidth: kernelWidth, dilation: dilation,
                             offset: type == .a ? 1 : 0, bias: bias, generator: &generator)
        self.type = type
    }

    public var parameters: [NamedParameter] { convolution.parameters }
    public func callAsFunction(_ x: Variable) -> Variable { convolution(x) }
}
