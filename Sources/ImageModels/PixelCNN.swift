// PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks",
// arXiv:1601.06759, section 3.5).
//
// A 7×7 type-A masked convolution, residual blocks of type-B masked convolutions, then
// ReLU – 1×1 – ReLU – 1×1. Channel groups make R see nothing of the current pixel, G see R, B see R
// and G. Binary images get one Bernoulli logit per pixel, grey or colour levels a K-way softmax per
// channel. A block is the paper's with `bottleneck` (its figure 5: h ← h + 1×1(ReLU(conv_B(ReLU(1×1(ReLU(h)))))),
// the inner maps half of h's 2h) and by default a single convolution, h ← h + conv_B(ReLU(h)).
// Deviations: the single-convolution block is the default; the results table's network uses 5×5 type-B kernels
// (`blockKernel`) where the paper has 3×3, which narrows the blind spot; no skip connections from every block to the head;
// optional dropout (`dropout`) on each block's ReLU before its masked convolution, in training only.
// Sampling uses a cache: every layer's activations are kept and each new value recomputes only
// the one position it changes in each layer (exact, because a masked layer's output at a position
// depends only on positions at or before it in raster order).

import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

public final class PixelCNN: LogitMapImageModel {
    public let configuration: ImageModelConfiguration
    public let first: MaskedConv2D
    public let blocks: [MaskedConv2D]
    /// With `bottleneck`: each block's 1×1 convolutions into and out of its masked one.
    public let reductions: [MaskedConv2D], expansions: [MaskedConv2D]
    public let head1: MaskedConv2D
    public let head2: MaskedConv2D
    /// Armed by `prepareStep` when `dropout` > 0; the next forward pass that records gradients draws its masks.
    var pendingDropout = PendingDropout()

    public init(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) {
        self.configuration = configuration
        let (c, f, p) = (configuration.channels, configuration.filters, configuration.outputsPerDimension)
        first = MaskedConv2D(inputs: c, outputs: f, kernelSize: configuration.firstKernel, type: .a, groups: c, generator: &generator)
        let inner = configuration.bottleneck ? f / 2 : f
        var (blocks, reductions, expansions) = ([MaskedConv2D](), [MaskedConv2D](), [MaskedConv2D]())
        for _ in 0..<configuration.blocks {
            if configuration.bottleneck { reductions.append(MaskedConv2D(inputs: f, outputs: inner, kernelSize: 1, type: .b, groups: c, generator: &generator)) }
            blocks.append(MaskedConv2D(inputs: inner, outputs: inner, kernelSize: configuration.blockKernel, type: .b, groups: c, generator: &generator))
            if configuration.bottleneck { expansions.append(MaskedConv2D(inputs: inner, outputs: f, kernelSize: 1, type: .b, groups: c, generator: &generator)) }
        }
        (self.blocks, self.reductions, self.expansions) = (blocks, reductions, expansions)
        head1 = MaskedConv2D(inputs: f, outputs: f, kernelSize: 1, type: .b, groups: c, generator: &generator)
        head2 = MaskedConv2D(inputs: f, outputs: c * p, kernelSize: 1, type: .b, groups: c, generator: &generator)
    }

    public var parameters: [NamedParameter] {
        var list = prefixed("first", first.parameters)
        for (i, block) in blocks.enumerated() { list += prefixed("block\(i)", block.parameters) }
        for (i, layer) in reductions.enumerated() { list += prefixed("block\(i).reduce", layer.parameters) }
        for (i, layer) in expansions.enumerated() { list += prefixed("block\(i).expand", layer.parameters) }
        return list + prefixed("head1", head1.parameters) + prefixed("head2", head2.parameters)
    }


    /// Logits `[N, C·P, H, W]` for flat images `[N, D]`.
    public func logitMaps(_ x: Tensor) -> Variable {
        let c = configuration
        let image = Kernels.scale(x, by: 1 / Float(c.levels - 1)).reshaped([x.shape[0], c.channels, c.height, c.width])
        // From the first layer to the head the activations stay on one padded grid (no per-layer layout copies).
        let grid = ImageGrid(batch: x.shape[0], height: c.height, width: c.width, taps: blocks.first?.taps ?? head1.taps)
        var h = toGrid(first(Variable(image)), grid: grid)
        var dropping = c.dropout > 0 ? pendingDropout.take() : nil
        for (i, block) in blocks.enumerated() {
            // In training with dropout the masked convolution's input ReLU(·) is dropped out first
            // (unfused; the padding stays zero, so the grid layout holds).
            if c.bottleneck || dropping != nil {
                let reduced = c.bottleneck ? reductions[i].onGrid(h, grid: grid, reluInput: true) : h
                let out = dropping != nil
                    ? block.onGrid(reluDropout(reduced, rate: c.dropout, generator: &dropping!), grid: grid)
                    : block.onGrid(reduced, grid: grid, reluInput: true)
                h = h + (c.bottleneck ? expansions[i].onGrid(out, grid: grid, reluInput: true) : out)
            } else {
                h = block.onGrid(h, grid: grid, reluInput: true, residual: true)  // h + block(relu(h))
            }
        }
        let hidden = head1.onGrid(h, grid: grid, reluInput: true)
        return fromGrid(head2.onGrid(hidden, grid: grid, reluInput: true), grid: grid)
    }


    public func makeIncrementalSampler() -> (any IncrementalSampler)? { CachedSampler(model: self) }

    public func prepareStep(_ generator: inout RandomGenerator) {
        if configuration.dropout > 0 { pendingDropout.arm(from: &generator) }
    }

    /// The masks of every layer, for `seriatim inspect`.
    public var masks: [Tensor] {
        [first.mask] + blocks.indices.flatMap { i in
            configuration.bottleneck ? [reductions[i].mask, blocks[i].mask, expansions[i].mask] : [blocks[i].mask]
        } + [head1.mask, head2.mask]
    }
}

/// One masked convolution prepared for single-position evaluation: active taps with their
/// `W ⊙ M` transposed to `[I, O]`.
struct PositionConvolution {
    let inputs: Int, outputs: Int
    let taps: [(dy: Int, dx: Int, weight: [Float])]
    let bias: [Float]

    init(_ layer: MaskedConv2D) { self.init(layer.convolution) }

    init(_ layer: Conv2D) {
        let w = layer.weight.value, m = layer.mask ?? Tensor.ones(w.shape)
        let (o, i, k) = (w.shape[0], w.shape[1], w.shape[2])
        inputs = i; outputs = o
        bias = layer.bias?.value.scalars ?? [Float](repeating: 0, count: o)
        var taps: [(Int, Int, [Float])] = []
        for r in 0..<k { for c in 0..<k {
            var t = [Float](repeating: 0, count: i * o)
            var any = false
            for oc in 0..<o { for ic in 0..<i {
                let index = ((oc * i + ic) * k + r) * k + c
                let v = w.scalars[index] * m.scalars[index]
                if m.scalars[index] != 0 { any = true }
                t[ic * o + oc] = v
            } }
            if any { taps.append((r - k / 2, c - k / 2, t)) }
        } }
        self.taps = taps
    }

    /// `out[b, :] (+)= bias + Σ taps Wᵀ · map[b, y+dy, x+dx, :]` for channel-last maps `[B, H, W, I]`.
    func apply(at y: Int, _ x: Int, map: UnsafePointer<Float>, rows: Int, height: Int, width: Int, rowStride: Int? = nil,
               out: UnsafeMutablePointer<Float>, outStride: Int, accumulate: Bool) {
        for b in 0..<rows {
            let target = out + b * outStride
            if accumulate { for j in 0..<outputs { target[j] += bias[j] } } else { target.update(from: bias, count: outputs) }
        }
        for tap in taps {
            let (yy, xx) = (y + tap.dy, x + tap.dx)
            guard yy >= 0, yy < height, xx >= 0, xx < width else { continue }
            tap.weight.withUnsafeBufferPointer { wp in
                Kernels.accumulateProduct(rows: rows, inputs: inputs, outputs: outputs, x: map + (yy * width + xx) * inputs,
                                          xStride: rowStride ?? height * width * inputs, w: wp.baseAddress!, out: out, outStride: outStride)
            }
        }
    }
}

extension PixelCNN {
    /// Raster-order sampling with every layer's activations cached (channel-last maps): each value
    /// drawn recomputes one position per layer. Same draws as the generic sampler for the same seed.
    struct CachedSampler: IncrementalSampler {
        let model: PixelCNN

        func sample(count: Int, conditionedOn observation: PartialObservation?, temperature: Float,
                    generator: inout RandomGenerator) -> Tensor {
            let c = model.configuration
            let (channels, height, width, p) = (c.channels, c.height, c.width, c.outputsPerDimension)
            let (f, hw, d) = (c.filters, c.height * c.width, c.dimensions)
            let scale = 1 / Float(c.levels - 1)
            let first = PositionConvolution(model.first)
            let blocks = model.blocks.map(PositionConvolution.init)
            let reductions = model.reductions.map(PositionConvolution.init), expansions = model.expansions.map(PositionConvolution.init)
            let inner = c.bottleneck ? f / 2 : f
            let head1 = PositionConvolution(model.head1), head2 = PositionConvolution(model.head2)
            var image = [Float](repeating: 0, count: count * hw * channels)        // [B, H, W, C], scaled
            var maps = [[Float]](repeating: [Float](repeating: 0, count: count * hw * f), count: blocks.count + 1)  // h₀ … h_L
            var relus = maps                                                      // ReLU(hₗ)
            // With bottleneck blocks: ReLU of each block's reduced maps (its masked convolution reads them
            // around the position), and one position of the masked convolution's output.
            var reduced = [[Float]](repeating: [Float](repeating: 0, count: c.bottleneck ? count * hw * inner : 0), count: blocks.count)
            var blockOutput = [Float](repeating: 0, count: count * inner)
            var hidden = [Float](repeating: 0, count: count * f), logits = [Float](repeating: 0, count: count * channels * p)
            var x = Tensor.zeros([count, d])
            for position in 0..<hw {
                let (y, xPosition) = (position / width, position % width)
                for channel in 0..<channels {
                    // Recompute this position in every layer (the new value of the previous channel changed it).
                    image.withUnsafeBufferPointer { ip in maps[0].withUnsafeMutableBufferPointer { mp in
                        first.apply(at: y, xPosition, map: ip.baseAddress!, rows: count, height: height, width: width,
                                    out: mp.baseAddress! + position * f, outStride: hw * f, accumulate: false)
                    } }
                    setReLU(&relus[0], from: maps[0], position: position, rows: count, channels: f, positions: hw)
                    for (l, block) in blocks.enumerated() {
                        // hₗ = hₗ₋₁ + conv(ReLU(hₗ₋₁)) at this position.
                        for b in 0..<count {
                            for j in 0..<f { maps[l + 1][(b * hw + position) * f + j] = maps[l][(b * hw + position) * f + j] }
                        }
                        if c.bottleneck {
                            // hₗ += 1×1(ReLU(conv(ReLU(1×1(ReLU(hₗ₋₁)))))) at this position.
                            relus[l].withUnsafeBufferPointer { rp in reduced[l].withUnsafeMutableBufferPointer { ap in
                                reductions[l].apply(at: 0, 0, map: rp.baseAddress! + position * f, rows: count, height: 1, width: 1, rowStride: hw * f,
                                                    out: ap.baseAddress! + position * inner, outStride: hw * inner, accumulate: false)
                            } }
                            for b in 0..<count {
                                let base = (b * hw + position) * inner
                                for j in base..<(base + inner) { reduced[l][j] = max(reduced[l][j], 0) }
                            }
                            reduced[l].withUnsafeBufferPointer { ap in blockOutput.withUnsafeMutableBufferPointer { bp in
                                block.apply(at: y, xPosition, map: ap.baseAddress!, rows: count, height: height, width: width,
                                            out: bp.baseAddress!, outStride: inner, accumulate: false)
                            } }
                            for i in blockOutput.indices { blockOutput[i] = max(blockOutput[i], 0) }
                            blockOutput.withUnsafeBufferPointer { bp in maps[l + 1].withUnsafeMutableBufferPointer { mp in
                                expansions[l].apply(at: 0, 0, map: bp.baseAddress!, rows: count, height: 1, width: 1, rowStride: inner,
                                                    out: mp.baseAddress! + position * f, outStride: hw * f, accumulate: true)
                            } }
                        } else {
                            relus[l].withUnsafeBufferPointer { rp in maps[l + 1].withUnsafeMutableBufferPointer { mp in
                                block.apply(at: y, xPosition, map: rp.baseAddress!, rows: count, height: height, width: width,
                                            out: mp.baseAddress! + position * f, outStride: hw * f, accumulate: true)
                            } }
                        }
                        setReLU(&relus[l + 1], from: maps[l + 1], position: position, rows: count, channels: f, positions: hw)
                    }
                    relus[blocks.count].withUnsafeBufferPointer { rp in hidden.withUnsafeMutableBufferPointer { hp in
                        head1.apply(at: 0, 0, map: rp.baseAddress! + position * f, rows: count, height: 1, width: 1, rowStride: hw * f,
                                    out: hp.baseAddress!, outStride: f, accumulate: false)
                    } }
                    drawPosition(hidden: &hidden, head: head2, logits: &logits, channel: channel, position: position, outputs: p,
                                 scale: scale, observation: observation, temperature: temperature, x: &x, image: &image,
                                 generator: &generator)
                }
            }
            return x
        }

        private func setReLU(_ relu: inout [Float], from map: [Float], position: Int, rows: Int, channels: Int, positions: Int) {
            for b in 0..<rows {
                let base = (b * positions + position) * channels
                for j in 0..<channels { relu[base + j] = max(map[base + j], 0) }
            }
        }
    }
}

/// The end of one cached raster-order step, shared by the PixelCNN-family samplers: ReLU of the head's
/// hidden units `hidden` `[B, F]`, the last 1×1 convolution into `logits` `[B, C·P]`, then channel
/// `channel` at `position` for every row — drawn, or taken from the observation — written into `x`
/// `[B, D]` (channel-major) and, times `scale`, into the channel-last model input `image` `[B, H·W, C]`.
func drawPosition(hidden: inout [Float], head: PositionConvolution, logits: inout [Float], channel: Int, position: Int, outputs p: Int,
                  scale: Float, observation: PartialObservation?, temperature: Float, x: inout Tensor, image: inout [Float],
                  generator: inout RandomGenerator) {
    let (count, d) = (x.shape[0], x.shape[1])
    let channels = logits.count / (count * p)
    let hw = d / channels
    for i in 0..<hidden.count { hidden[i] = max(hidden[i], 0) }
    hidden.withUnsafeBufferPointer { hp in logits.withUnsafeMutableBufferPointer { lp in
        head.apply(at: 0, 0, map: hp.baseAddress!, rows: count, height: 1, width: 1, out: lp.baseAddress!, outStride: channels * p, accumulate: false)
    } }
    let dimension = channel * hw + position
    for b in 0..<count {
        let value: Float
        if let observation, observation.observed[dimension] {
            value = observation.value(row: b, dimension: dimension)
        } else {
            value = logits.withUnsafeBufferPointer {
                drawOne($0.baseAddress! + b * channels * p + channel * p, count: p, temperature: temperature, generator: &generator)
            }
        }
        x.scalars[b * d + dimension] = value
        image[(b * hw + position) * channels + channel] = value * scale
    }
}
