// Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu 2016,
// "Conditional Image Generation with PixelCNN Decoders", arXiv:1606.05328).
//
// Two stacks remove the blind spot of masked convolutions: the vertical stack sees every row at or
// above the current one (k×k kernel masked to rows ≤ centre); the horizontal stack sees the current
// row to the left (1×k, type A in the first layer, type B after, with R→G→B channel groups) plus the
// vertical stack of the row above (a 1×1 link applied one row down, here a k×k tap mask with only
// the tap above the centre). Both use the gate tanh(a) ⊙ σ(b); the horizontal stack has a residual
// 1×1. Class conditioning adds a learned vector per class to every gate.
// Deviations: kernels are full k×k convolutions with masks (masked taps are skipped, so the cost
// equals the paper's (k/2+1)×k and 1×(k/2+1) kernels); no skip connections to the head.
// Sampling caches both stacks: the horizontal stack is evaluated one position per layer per value,
// the vertical stack one row per layer when a row is complete.

import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

public final class GatedPixelCNN: LogitMapImageModel {
    public let configuration: ImageModelConfiguration
    public let verticalConvs: [Conv2D]
    public let horizontalConvs: [Conv2D]
    public let links: [Conv2D]
    public let residuals: [MaskedConv2D]
    public let classEmbedding: Embedding?
    public let head1: MaskedConv2D
    public let head2: MaskedConv2D
    /// Class of each example for class-conditional models (nil: class 0 for all).
    public var classes: [Int]? = nil

    static func verticalMask(outputs: Int, inputs: Int, k: Int) -> Tensor {
        Tensor(shape: [outputs, inputs, k, k]) { m in
            for o in 0..<outputs { for i in 0..<inputs { for r in 0..<k { for c in 0..<k { m[((o * inputs + i) * k + r) * k + c] = r <= k / 2 ? 1 : 0 } } } }
        }
    }

    /// Centre row, columns left of the centre, and the centre itself by the channel-group rule of `type`.
    /// `outputs` is the stacked 2F of a gate: both halves get the same channel groups, so that gate
    /// output j combines a filter and a gate channel of one group.
    static func horizontalMask(outputs: Int, inputs: Int, k: Int, type: MaskType, groups: Int) -> Tensor {
        let half = RasterMask.make(outputs: outputs / 2, inputs: inputs, kernelSize: k, type: type, groups: groups)
        var mask = Kernels.concatenate([half, half], axis: 0)
        for o in 0..<outputs { for i in 0..<inputs { for r in 0..<(k / 2) { for c in 0..<k { mask[o, i, r, c] = 0 } } } }
        return mask
    }

    /// Only the tap directly above the centre: the vertical stack's row above, at the same column.
    static func linkMask(outputs: Int, inputs: Int, k: Int) -> Tensor {
        var mask = Tensor.zeros([outputs, inputs, k, k])
        for o in 0..<outputs { for i in 0..<inputs { mask[o, i, k / 2 - 1, k / 2] = 1 } }
        return mask
    }

    public init(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) {
        self.configuration = configuration
        let (c, f, k, p) = (configuration.channels, configuration.filters, max(3, configuration.blockKernel), configuration.outputsPerDimension)
        let layers = max(1, configuration.blocks)
        var verticals: [Conv2D] = [], horizontals: [Conv2D] = [], links: [Conv2D] = [], residuals: [MaskedConv2D] = []
        for layer in 0..<layers {
            let inputs = layer == 0 ? c : f
            let kernel = layer == 0 ? configuration.firstKernel : k
            verticals.append(Conv2D(inputs: inputs, outputs: 2 * f, kernelSize: kernel,
                                    mask: GatedPixelCNN.verticalMask(outputs: 2 * f, inputs: inputs, k: kernel), generator: &generator))
            horizontals.append(Conv2D(inputs: inputs, outputs: 2 * f, kernelSize: kernel,
                                      mask: GatedPixelCNN.horizontalMask(outputs: 2 * f, inputs: inputs, k: kernel, type: layer == 0 ? .a : .b, groups: c),
                                      generator: &generator))
            links.append(Conv2D(inputs: 2 * f, outputs: 2 * f, kernelSize: 3, mask: GatedPixelCNN.linkMask(outputs: 2 * f, inputs: 2 * f, k: 3),
                                bias: false, generator: &generator))
            residuals.append(MaskedConv2D(inputs: f, outputs: f, kernelSize: 1, type: .b, groups: c, generator: &generator))
        }
        verticalConvs = verticals; horizontalConvs = horizontals; self.links = links; self.residuals = residuals
        classEmbedding = configuration.conditionalClasses > 0
            ? Embedding(count: configuration.conditionalClasses, dimension: 2 * f, generator: &generator) : nil
        head1 = MaskedConv2D(inputs: f, outputs: f, kernelSize: 1, type: .b, groups: c, generator: &generator)
        head2 = MaskedConv2D(inputs: f, outputs: c * p, kernelSize: 1, type: .b, groups: c, generator: &generator)
    }

    public var parameters: [NamedParameter] {
        var list: [NamedParameter] = []
        for l in 0..<verticalConvs.count {
            list += prefixed("layer\(l).vertical", verticalConvs[l].parameters) + prefixed("layer\(l).horizontal", horizontalConvs[l].parameters)
                + prefixed("layer\(l).link", links[l].parameters) + prefixed("layer\(l).residual", residuals[l].parameters)
        }
        if let classEmbedding { list += prefixed("classes", classEmbedding.parameters) }
        return list + prefixed("head1", head1.parameters) + prefixed("head2", head2.parameters)
    }


    func classBias(rows: Int) -> Variable? {
        guard let classEmbedding else { return nil }
        let labels = classes.map { $0.count == rows ? $0 : [Int](repeating: $0.first ?? 0, count: rows) } ?? [Int](repeating: 0, count: rows)
        return reshape(classEmbedding(labels), [rows, 2 * configuration.filters, 1, 1])
    }

    /// Logits `[N, C·P, H, W]` for flat images `[N, D]`.
    public func logitMaps(_ x: Tensor) -> Variable {
        let c = configuration
        let n = x.shape[0]
        let image = Variable(Kernels.scale(x, by: 1 / Float(c.levels - 1)).reshaped([n, c.channels, c.height, c.width]))
        let bias = classBias(rows: n)
        var v = image, h = image
        for l in 0..<verticalConvs.count {
            var vPre = verticalConvs[l](v)
            var hPre = horizontalConvs[l](h) + links[l](vPre)
            if let bias { vPre = vPre + bias; hPre = hPre + bias }
            v = gatedActivation4D(vPre)
            let gated = gatedActivation4D(hPre)
            h = l == 0 ? residuals[l](gated) : h + residuals[l](gated)
        }
        return head2(relu(head1(relu(h))))
    }


    public func makeIncrementalSampler() -> (any IncrementalSampler)? { CachedSampler(model: self) }

    public var masks: [Tensor] {
        (0..<verticalConvs.count).flatMap { [verticalConvs[$0].mask!, horizontalConvs[$0].mask!] } + [head1.mask, head2.mask]
    }
}

/// The gate on `[N, 2F, H, W]` (filter channels first): `[N, F, H, W]`.
func gatedActivation4D(_ x: Variable) -> Variable {
    let (n, c2, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    return reshape(gatedActivation(stacked: reshape(x, [n, c2, h * w])), [n, c2 / 2, h, w])
}

extension GatedPixelCNN {
    struct CachedSampler: IncrementalSampler {
        let model: GatedPixelCNN

        func sample(count: Int, conditionedOn observation: PartialObservation?, temperature: Float,
                    generator: inout RandomGenerator) -> Tensor {
            let c = model.configuration
            let (channels, height, width, p) = (c.channels, c.height, c.width, c.outputsPerDimension)
            let (f, hw, d) = (c.filters, c.height * c.width, c.dimensions)
            let layers = model.verticalConvs.count
            let scale = 1 / Float(c.levels - 1)
            let vertical = model.verticalConvs.map { PositionConvolution($0) }
            let horizontal = model.horizontalConvs.map { PositionConvolution($0) }
            let links = model.links.map { PositionConvolution($0) }
            let residuals = model.residuals.map { PositionConvolution($0.convolution) }
            let head1 = PositionConvolution(model.head1.convolution), head2 = PositionConvolution(model.head2.convolution)
            // Per-row class vectors [B, 2F].
            var classVectors = [Float](repeating: 0, count: count * 2 * f)
            if let embedding = model.classEmbedding {
                let labels = model.classes.map { $0.count == count ? $0 : [Int](repeating: $0.first ?? 0, count: count) } ?? [Int](repeating: 0, count: count)
                for (b, label) in labels.enumerated() { for j in 0..<(2 * f) { classVectors[b * 2 * f + j] = embedding.table.value.scalars[label * 2 * f + j] } }
            }
            var image = [Float](repeating: 0, count: count * hw * channels)
            // Channel-last maps per layer: vertical pre-activations and outputs, horizontal outputs.
            var vPre = [[Float]](repeating: [Float](repeating: 0, count: count * hw * 2 * f), count: layers)
            var vOut = [[Float]](repeating: [Float](repeating: 0, count: count * hw * f), count: layers)
            var hOut = vOut
            var pre = [Float](repeating: 0, count: count * 2 * f), gated = [Float](repeating: 0, count: count * f)
            var hidden = [Float](repeating: 0, count: count * f), logits = [Float](repeating: 0, count: count * channels * p)
            var x = Tensor.zeros([count, d])

            func gate(_ source: UnsafePointer<Float>, sourceStride: Int, into target: UnsafeMutablePointer<Float>, targetStride: Int) {
                for b in 0..<count {
                    Kernels.gatedForward(count: f, filter: source + b * sourceStride, gate: source + b * sourceStride + f,
                                         output: target + b * targetStride)
                }
            }

            for position in 0..<hw {
                let (y, column) = (position / width, position % width)
                for channel in 0..<channels {
                    for l in 0..<layers {
                        let input: [Float] = l == 0 ? image : hOut[l - 1]
                        input.withUnsafeBufferPointer { ip in pre.withUnsafeMutableBufferPointer { pp in
                            horizontal[l].apply(at: y, column, map: ip.baseAddress!, rows: count, height: height, width: width,
                                                out: pp.baseAddress!, outStride: 2 * f, accumulate: false)
                        } }
                        vPre[l].withUnsafeBufferPointer { vp in pre.withUnsafeMutableBufferPointer { pp in
                            links[l].apply(at: y, column, map: vp.baseAddress!, rows: count, height: height, width: width,
                                           out: pp.baseAddress!, outStride: 2 * f, accumulate: true)
                        } }
                        for i in 0..<(count * 2 * f) { pre[i] += classVectors[i] }
                        pre.withUnsafeBufferPointer { pp in gated.withUnsafeMutableBufferPointer { gp in
                            gate(pp.baseAddress!, sourceStride: 2 * f, into: gp.baseAddress!, targetStride: f)
                        } }
                        if l > 0 {
                            // Residual: start from the previous layer's output at this position.
                            for b in 0..<count { for j in 0..<f { hOut[l][(b * hw + position) * f + j] = hOut[l - 1][(b * hw + position) * f + j] } }
                        }
                        hOut[l].withUnsafeMutableBufferPointer { hp in
                            gated.withUnsafeBufferPointer { gp in
                                residuals[l].apply(at: 0, 0, map: gp.baseAddress!, rows: count, height: 1, width: 1,
                                                   out: hp.baseAddress! + position * f, outStride: hw * f, accumulate: l > 0)
                            }
                        }
                    }
                    // ReLU of the last horizontal layer at this position, into the reused `gated` buffer.
                    for b in 0..<count { for j in 0..<f { gated[b * f + j] = max(hOut[layers - 1][(b * hw + position) * f + j], 0) } }
                    gated.withUnsafeBufferPointer { rp in hidden.withUnsafeMutableBufferPointer { out in
                        head1.apply(at: 0, 0, map: rp.baseAddress!, rows: count, height: 1, width: 1, out: out.baseAddress!, outStride: f, accumulate: false)
                    } }
                    drawPosition(hidden: &hidden, head: head2, logits: &logits, channel: channel, position: position, outputs: p,
                                 scale: scale, observation: observation, temperature: temperature, x: &x, image: &image,
                                 generator: &generator)
                }
                // A finished row: run the vertical stack over it, layer by layer.
                if column == width - 1 {
                    for l in 0..<layers {
                        let input: [Float] = l == 0 ? image : vOut[l - 1]
                        for xPosition in 0..<width {
                            let at = y * width + xPosition
                            // The link reads the vertical pre-activation without the class vector (as in training).
                            input.withUnsafeBufferPointer { ip in vPre[l].withUnsafeMutableBufferPointer { vp in
                                vertical[l].apply(at: y, xPosition, map: ip.baseAddress!, rows: count, height: height, width: width,
                                                  out: vp.baseAddress! + at * 2 * f, outStride: hw * 2 * f, accumulate: false)
                                for b in 0..<count { for j in 0..<(2 * f) { pre[b * 2 * f + j] = vp[(b * hw + at) * 2 * f + j] + classVectors[b * 2 * f + j] } }
                            } }
                            pre.withUnsafeBufferPointer { pp in vOut[l].withUnsafeMutableBufferPointer { op in
                                gate(pp.baseAddress!, sourceStride: 2 * f, into: op.baseAddress! + at * f, targetStride: hw * f)
                            } }
                        }
                    }
                }
            }
            return x
        }
    }
}
