import Tensors

// Every differentiable op: the forward value and, beside it, the pullback that maps the
// output gradient to gradients of the inputs.

// MARK: - Linear algebra

/// Matrix product `op(lhs) · op(rhs)`; see `Kernels.matmul` for shapes and batching.
public func matmul(_ lhs: Variable, _ rhs: Variable, transposeLeft: Bool = false, transposeRight: Bool = false) -> Variable {
    Variable(Kernels.matmul(lhs.value, rhs.value, transposeLeft: transposeLeft, transposeRight: transposeRight),
             parents: [lhs, rhs]) { gradient in
        let (gl, gr) = Kernels.matmulBackward(gradient, lhs.value, rhs.value,
                                              transposeLeft: transposeLeft, transposeRight: transposeRight)
        lhs.accumulate(gl)
        rhs.accumulate(gr)
    }
}

/// `x · (W ⊙ M)ᵀ + b` for `x` `[N, I]`, `weight` `[O, I]`, a constant `mask` `[O, I]`, `bias` `[O]`.
///
/// The mask multiplies a copy of the weight on the way in; the stored weight is never changed,
/// and its gradient is masked the same way. `layout` (the mask's nonzero blocks, computed from the
/// mask when not given) lets the products skip what the mask zeroes.
public func linear(_ x: Variable, weight: Variable, bias: Variable?, mask: Tensor? = nil, layout: MaskLayout? = nil) -> Variable {
    let layout = layout ?? mask.map { MaskLayout(mask: $0) }
    let (output, effective) = Kernels.linear(x.value, weight: weight.value, mask: mask, layout: layout, bias: bias?.value)
    return Variable(output, parents: [x, weight] + (bias.map { [$0] } ?? [])) { gradient in
        if x.requiresGradient { x.accumulate(Kernels.linearInputGradient(gradient, effective: effective, layout: layout)) }
        if weight.requiresGradient {
            weight.accumulate(Kernels.linearWeightGradient(gradient, input: x.value, mask: mask, layout: layout))
        }
        bias?.accumulate(Kernels.sum(gradient, axes: [0]))
    }
}

// MARK: - Elementwise arithmetic with broadcasting

private func binaryOp(_ function: BinaryFunction, _ a: Variable, _ b: Variable) -> Variable {
    let output = Kernels.binary(function, a.value, b.value)
    return Variable(output, parents: [a, b]) { gradient in
        switch function {
        case .add:
            a.accumulate(Kernels.sum(gradient, toShape: a.shape))
            b.accumulate(Kernels.sum(gradient, toShape: b.shape))
        case .subtract:
            a.accumulate(Kernels.sum(gradient, toShape: a.shape))
            b.accumulate(Kernels.scale(Kernels.sum(gradient, toShape: b.shape), by: -1))
        case .multiply:
            if a.requiresGradient { a.accumulate(Kernels.sum(Kernels.binary(.multiply, gradient, b.value), toShape: a.shape)) }
            if b.requiresGradient { b.accumulate(Kernels.sum(Kernels.binary(.multiply, gradient, a.value), toShape: b.shape)) }
        case .divide:
            if a.requiresGradient { a.accumulate(Kernels.sum(Kernels.binary(.divide, gradient, b.value), toShape: a.shape)) }
            if b.requiresGradient {
                // ∂(a/b)/∂b = −a/b² = −output/b
                let g = Kernels.binary(.multiply, gradient, Kernels.binary(.divide, output, b.value))
                b.accumulate(Kernels.scale(Kernels.sum(g, toShape: b.shape), by: -1))
            }
        }
    }
}

public func + (a: Variable, b: Variable) -> Variable { binaryOp(.add, a, b) }
public func - (a: Variable, b: Variable) -> Variable { binaryOp(.subtract, a, b) }
public func * (a: Variable, b: Variable) -> Variable { binaryOp(.multiply, a, b) }
public func / (a: Variable, b: Variable) -> Variable { binaryOp(.divide, a, b) }

/// `x · factor`.
public func * (x: Variable, factor: Float) -> Variable {
    Variable(Kernels.scale(x.value, by: factor), parents: [x]) { gradient in
        x.accumulate(Kernels.scale(gradient, by: factor))
    }
}

/// `x + constant` (the constant broadcast).
public func + (x: Variable, constant: Float) -> Variable {
    Variable(Tensor(shape: x.shape, scalars: x.value.scalars.map { $0 + constant }), parents: [x]) { gradient in
        x.accumulate(gradient)
    }
}

public prefix func - (x: Variable) -> Variable { x * -1 }

// MARK: - Nonlinearities

private func unaryOp(_ function: UnaryFunction, _ x: Variable) -> Variable {
    let output = Kernels.unary(function, x.value)
    return Variable(output, parents: [x]) { gradient in
        x.accumulate(Kernels.unaryBackward(function, x: x.value, y: output, gradient: gradient))
    }
}

public func tanh(_ x: Variable) -> Variable { unaryOp(.tanh, x) }
public func sigmoid(_ x: Variable) -> Variable { unaryOp(.sigmoid, x) }
public func relu(_ x: Variable) -> Variable { unaryOp(.relu, x) }
public func exp(_ x: Variable) -> Variable { unaryOp(.exp, x) }
public func log(_ x: Variable) -> Variable { unaryOp(.log, x) }
public func softplus(_ x: Variable) -> Variable { unaryOp(.softplus, x) }

/// Inverted dropout: each element is kept with probability about 1 − `rate` and scaled up, or zeroed
/// (in training; callers skip it in evaluation). A keep decision takes 16 random bits, so the keep
/// probability rounds to a multiple of 2⁻¹⁶ and the scale is its exact inverse (the expectation is
/// unchanged). The elements go in chunks of 2¹⁵, each with its own generator seeded in order from
/// `generator`, so the chunks run on both cores and the draws do not depend on the core count.
public func dropout(_ x: Variable, rate: Float, generator: inout RandomGenerator) -> Variable {
    guard rate > 0 else { return x }
    return droppingOut(x, rate: rate, rectified: false, generator: &generator)
}

/// `relu(x)` with inverted dropout (as `dropout`) in one pass. The pullback passes the gradient,
/// scaled, where the output is positive.
public func reluDropout(_ x: Variable, rate: Float, generator: inout RandomGenerator) -> Variable {
    guard rate > 0 else { return relu(x) }
    return droppingOut(x, rate: rate, rectified: true, generator: &generator)
}

/// The draws for the next training pass's dropout: `arm(from:)` before a training step splits a
/// generator from the step's; `take()` hands it to the next forward pass that records gradients and
/// clears it, so evaluation and sampling never drop anything.
public struct PendingDropout: Sendable {
    private var generator: RandomGenerator?
    public init() {}
    public mutating func arm(from generator: inout RandomGenerator) { self.generator = generator.split() }
    public mutating func take() -> RandomGenerator? {
        guard GradientMode.isEnabled else { return nil }
        defer { generator = nil }
        return generator
    }
}

/// `dropout` and `reluDropout`: one pass that writes the output and a byte per element saying
/// whether its gradient passes (kept, and positive when `rectified`).
private func droppingOut(_ x: Variable, rate: Float, rectified: Bool, generator: inout RandomGenerator) -> Variable {
    let threshold = max(1, min(65536, UInt64((Double(1 - rate) * 65536).rounded())))
    let scale = Float(65536 / Double(threshold))
    let n = x.value.count, chunk = 1 << 15
    let seeds = (0..<(n + chunk - 1) / chunk).map { _ in generator.next() }
    var passes = [UInt8](repeating: 0, count: n)
    let output = Tensor(shape: x.shape) { y in
        x.value.withUnsafeBufferPointer { xp in passes.withUnsafeMutableBufferPointer { pp in
            nonisolated(unsafe) let (input, out, pass) = (xp.baseAddress!, y.baseAddress!, pp.baseAddress!)
            Parallel.forEach(seeds.count) { c in
                var chunkGenerator = RandomGenerator(seed: seeds[c])
                var i = c * chunk
                let end = min(n, i + chunk)
                while i < end {
                    var bits = chunkGenerator.next()
                    for _ in 0..<4 where i < end {
                        let keep = bits & 0xFFFF < threshold && (!rectified || input[i] > 0)
                        out[i] = keep ? input[i] * scale : 0
                        pass[i] = keep ? 1 : 0
                        bits >>= 16
                        i += 1
                    }
                }
            }
        } }
    }
    return Variable(output, parents: [x]) { gradient in
        x.accumulate(Tensor(shape: x.shape) { dx in
            passes.withUnsafeBufferPointer { pp in
                gradient.withUnsafeBufferPointer { gp in
                    nonisolated(unsafe) let (pass, g, d) = (pp.baseAddress!, gp.baseAddress!, dx.baseAddress!)
                    Parallel.forChunks(n) { range in for i in range { d[i] = pass[i] != 0 ? g[i] * scale : 0 } }
                }
            }
        })
    }
}

/// The fused WaveNet gate `tanh(filter) ⊙ σ(gate)` (shapes equal).
public func gatedActivation(filter: Variable, gate: Variable) -> Variable {
    precondition(filter.shape == gate.shape, "gatedActivation: filter \(filter.shape) and gate \(gate.shape) differ")
    let count = filter.value.count
    let output = Tensor(shape: filter.shape) { out in
        filter.value.withUnsafeBufferPointer { a in
            gate.value.withUnsafeBufferPointer { b in
                Kernels.gatedForward(count: count, filter: a.baseAddress!, gate: b.baseAddress!, output: out.baseAddress!)
            }
        }
    }
    return Variable(output, parents: [filter, gate]) { gradient in
        var da = Tensor.zeros(filter.shape), db = Tensor.zeros(gate.shape)
        filter.value.withUnsafeBufferPointer { a in
            gate.value.withUnsafeBufferPointer { b in
                gradient.withUnsafeBufferPointer { g in
                    da.withUnsafeMutableBufferPointer { dap in
                        db.withUnsafeMutableBufferPointer { dbp in
                            Kernels.gatedBackward(count: count, filter: a.baseAddress!, gate: b.baseAddress!,
                                                  gradient: g.baseAddress!, filterGradient: dap.baseAddress!,
                                                  gateGradient: dbp.baseAddress!)
                        }
                    }
                }
            }
        }
        filter.accumulate(da)
        gate.accumulate(db)
    }
}

// MARK: - Losses and normalisers

/// Per-position `−log softmax(logits)[target]` over the class `axis` (the fused kernel);
/// the result has the logits' shape without the class axis. Negative targets are ignored (loss 0).
public func softmaxCrossEntropy(logits: Variable, targets: [Int32], axis: Int) -> Variable {
    let (loss, lse) = Kernels.softmaxCrossEntropy(logits.value, targets: targets, axis: axis)
    return Variable(loss, parents: [logits]) { gradient in
        logits.accumulate(Kernels.softmaxCrossEntropyBackward(logits.value, targets: targets, axis: axis,
                                                              logSumExp: lse, gradient: gradient))
    }
}

/// Elementwise binary cross-entropy of `sigmoid(logits)` against constant targets in [0, 1].
public func sigmoidCrossEntropy(logits: Variable, targets: Tensor) -> Variable {
    Variable(Kernels.sigmoidCrossEntropy(logits: logits.value, targets: targets), parents: [logits]) { gradient in
        logits.accumulate(Kernels.sigmoidCrossEntropyBackward(logits: logits.value, targets: targets, gradient: gradient))
    }
}

/// `x − logsumexp(x)` over `axis`.
public func logSoftmax(_ x: Variable, axis: Int) -> Variable {
    let output = Kernels.logSoftmax(x.value, axis: axis)
    return Variable(output, parents: [x]) { gradient in
        x.accumulate(Kernels.logSoftmaxBackward(output: output, gradient: gradient, axis: axis))
    }
}

/// log Σ exp(x) over `axis` (the axis removed).
public func logSumExp(_ x: Variable, axis: Int) -> Variable {
    let layout = Kernels.classLayout(x.shape, axis: axis)
    var shape = x.shape
    shape.remove(at: axis)
    let output = Tensor(shape: shape) { out in
        x.value.withUnsafeBufferPointer { Kernels.logSumExp(count: layout, $0.baseAddress!, out.baseAddress!) }
    }
    return Variable(output, parents: [x]) { gradient in
        // ∂/∂xₖ = softmax(x)ₖ · g
        var kept = x.shape
        kept[axis] = 1
        let softmax = Kernels.unary(.exp, Kernels.binary(.subtract, x.value, output.reshaped(kept)))
        x.accumulate(Kernels.binary(.multiply, softmax, gradient.reshaped(kept)))
    }
}

// MARK: - Reductions

/// Sum over `axes` (all axes when nil, giving a scalar).
public func sum(_ x: Variable, axes: [Int]? = nil) -> Variable {
    let axes = axes ?? Array(0..<x.value.rank)
    return Variable(Kernels.sum(x.value, axes: axes), parents: [x]) { gradient in
        var kept = x.shape
        for a in axes { kept[a] = 1 }
        x.accumulate(Kernels.binary(.add, Tensor.zeros(x.shape), gradient.reshaped(kept)))
    }
}

/// Mean over `axes` (all axes when nil).
public func mean(_ x: Variable, axes: [Int]? = nil) -> Variable {
    let axes = axes ?? Array(0..<x.value.rank)
    let n = axes.reduce(1) { $0 * x.shape[$1] }
    return sum(x, axes: axes) * (1 / Float(max(n, 1)))
}

// MARK: - Layout

/// The same elements with another shape.
public func reshape(_ x: Variable, _ shape: [Int]) -> Variable {
    Variable(x.value.reshaped(shape), parents: [x]) { gradient in x.accumulate(gradient.reshaped(x.shape)) }
}

/// Axis permutation (result axis i is input axis `axes[i]`).
public func permute(_ x: Variable, _ axes: [Int]) -> Variable {
    var inverse = [Int](repeating: 0, count: axes.count)
    for (i, a) in axes.enumerated() { inverse[a] = i }
    return Variable(Kernels.permute(x.value, axes), parents: [x]) { gradient in
        x.accumulate(Kernels.permute(gradient, inverse))
    }
}

/// The sub-range `range` of `axis`.
public func slice(_ x: Variable, axis: Int, range: Range<Int>) -> Variable {
    Variable(Kernels.slice(x.value, axis: axis, range: range), parents: [x]) { gradient in
        x.accumulate(gradient, axis: axis, range: range)
    }
}

/// Joins along `axis`.
public func concatenate(_ parts: [Variable], axis: Int) -> Variable {
    let sizes = parts.map { $0.shape[axis] }
    return Variable(Kernels.concatenate(parts.map(\.value), axis: axis), parents: parts) { gradient in
        for (part, piece) in zip(parts, Kernels.split(gradient, axis: axis, sizes: sizes)) { part.accumulate(piece) }
    }
}

/// Splits along `axis` into pieces of `sizes`.
public func split(_ x: Variable, axis: Int, sizes: [Int]) -> [Variable] {
    var start = 0
    return sizes.map { size in
        defer { start += size }
        return slice(x, axis: axis, range: start..<(start + size))
    }
}

/// Rows of `table` `[V, D]` at `indices`, giving `[indices.count, D]`.
public func embedding(_ table: Variable, indices: [Int]) -> Variable {
    Variable(Kernels.embedding(table.value, indices: indices), parents: [table]) { gradient in
        table.accumulate(Kernels.embeddingBackward(gradient, indices: indices, rows: table.shape[0]))
    }
}

// MARK: - Convolutions

/// Causal dilated 1-D convolution: input `[B, I, T]`, weight `[K, O, I]`, bias `[O]`, output `[B, O, T]`.
/// With `offset` 0 output t sees inputs ≤ t; with 1, only inputs < t.
public func causalConv1D(_ x: Variable, weight: Variable, bias: Variable?, dilation: Int, offset: Int = 0) -> Variable {
    let output = Kernels.causalConv1D(x.value, weight: weight.value, bias: bias?.value, dilation: dilation, offset: offset)
    return Variable(output, parents: [x, weight] + (bias.map { [$0] } ?? [])) { gradient in
        let g = Kernels.causalConv1DBackward(gradient, input: x.value, weight: weight.value, dilation: dilation,
                                             offset: offset, needsInputGradient: x.requiresGradient)
        if let gi = g.input { x.accumulate(gi) }
        weight.accumulate(g.weight)
        bias?.accumulate(g.bias)
    }
}

/// "Same" 2-D convolution with the constant `mask` applied to the weight: input `[B, I, H, W]`,
/// weight and mask `[O, I, KH, KW]`, bias `[O]`; taps the mask zeroes are skipped.
public func maskedConv2D(_ x: Variable, weight: Variable, mask: Tensor?, bias: Variable?,
                         taps: ConvolutionTaps? = nil) -> Variable {
    let taps = taps ?? ConvolutionTaps(kernelHeight: weight.shape[2], kernelWidth: weight.shape[3], mask: mask)
    let (output, padded) = Kernels.maskedConv2DKeepingInput(x.value, weight: weight.value, mask: mask, bias: bias?.value, taps: taps)
    return Variable(output, parents: [x, weight] + (bias.map { [$0] } ?? [])) { gradient in
        let g = Kernels.maskedConv2DBackward(gradient, input: x.value, weight: weight.value, mask: mask, taps: taps,
                                             needsInputGradient: x.requiresGradient, paddedInput: padded)
        if let gi = g.input { x.accumulate(gi) }
        weight.accumulate(g.weight)
        bias?.accumulate(g.bias)
    }
}

/// `[B, C, H, W]` → the zero-padded grid `[C, total]` on which `gridConv2D` layers are chained.
public func toGrid(_ x: Variable, grid: ImageGrid) -> Variable {
    Variable(Kernels.toGrid(x.value, grid: grid), parents: [x]) { gradient in x.accumulate(Kernels.fromGrid(gradient, grid: grid)) }
}

/// Grid `[C, total]` → `[B, C, H, W]`, the image positions only (the padding gets zero gradient).
public func fromGrid(_ x: Variable, grid: ImageGrid) -> Variable {
    Variable(Kernels.fromGrid(x.value, grid: grid), parents: [x]) { gradient in x.accumulate(Kernels.toGrid(gradient, grid: grid)) }
}

/// A masked "same" convolution on a grid (`[I, total]` → `[O, total]`, weight and mask `[O, I, KH, KW]`):
/// `conv(x)`, `conv(relu(x))` with `reluInput`, and `x + conv(relu(x))` (a PixelCNN residual block)
/// with both. Bias, residual and the zeroing of the padding are done in each column tile's epilogue.
public func gridConv2D(_ x: Variable, weight: Variable, mask: Tensor?, bias: Variable?, taps: ConvolutionTaps, grid: ImageGrid,
                       reluInput: Bool = false, residual: Bool = false) -> Variable {
    let output = Kernels.gridConv2D(x.value, weight: weight.value, mask: mask, bias: bias?.value, taps: taps, grid: grid,
                                    reluInput: reluInput, residual: residual)
    return Variable(output, parents: [x, weight] + (bias.map { [$0] } ?? [])) { gradient in
        let g = Kernels.gridConv2DBackward(gradient, input: x.value, weight: weight.value, mask: mask, taps: taps,
                                           grid: grid, reluInput: reluInput, residual: residual, needsInputGradient: x.requiresGradient)
        if let gi = g.input { x.accumulate(gi) }
        weight.accumulate(g.weight)
        bias?.accumulate(g.bias)
    }
}

/// The LSTM cell, fused: gate pre-activations `[N, 4F, …]` (output o, forget f, input i and
/// candidate g blocks of F along axis 1) and the previous cell state `[N, F, …]` (nil at the first
/// step) give `c = σ(f)·c₋ + σ(i)·tanh(g)` and `h = σ(o)·tanh(c)`, each one pass over the gates.
public func lstmCell(gates: Variable, cell previous: Variable?) -> (hidden: Variable, cell: Variable) {
    let (batch, f) = (gates.shape[0], gates.shape[1] / 4)
    precondition(gates.value.rank >= 2 && gates.shape[1] % 4 == 0 && batch > 0, "lstmCell: gates \(gates.shape) need [N, 4F, …]")
    var stateShape = gates.shape
    stateShape[1] = f
    precondition(previous == nil || previous!.shape == stateShape, "lstmCell: previous cell \(previous!.shape), expected \(stateShape)")
    let m = gates.value.count / batch / 4
    /// Runs `body(n)` for every batch item, over the cores when there is enough work.
    func forEachItem(_ body: (Int) -> Void) {
        if batch * m >= Parallel.elementwiseGrain { Parallel.forEach(batch, body) } else { for n in 0..<batch { body(n) } }
    }
    let previousValue = previous?.value ?? Tensor(shape: [0]) { _ in }
    var activated = Tensor(shape: gates.shape) { _ in }
    var cell = Tensor(shape: stateShape) { _ in }, cellTanh = Tensor(shape: stateShape) { _ in }, hidden = Tensor(shape: stateShape) { _ in }
    gates.value.withUnsafeBufferPointer { g in previousValue.withUnsafeBufferPointer { p in activated.withUnsafeMutableBufferPointer { a in
        cell.withUnsafeMutableBufferPointer { c in cellTanh.withUnsafeMutableBufferPointer { t in hidden.withUnsafeMutableBufferPointer { h in
            forEachItem { n in
                Kernels.lstmCellForward(count: m, gates: g.baseAddress! + n * 4 * m, previous: previous == nil ? nil : p.baseAddress! + n * m,
                                        activated: a.baseAddress! + n * 4 * m, cell: c.baseAddress! + n * m,
                                        cellTanh: t.baseAddress! + n * m, hidden: h.baseAddress! + n * m)
            }
        } } }
    } } }
    var gateShape = gates.shape
    gateShape[1] = 3 * f
    let cellVariable = Variable(cell, parents: [gates] + (previous.map { [$0] } ?? [])) { dc in
        var dGates = Tensor(shape: gateShape) { _ in }
        var dPrevious = Tensor(shape: previous == nil ? [0] : stateShape) { _ in }
        activated.withUnsafeBufferPointer { a in dc.withUnsafeBufferPointer { d in previousValue.withUnsafeBufferPointer { p in
            dGates.withUnsafeMutableBufferPointer { dg in dPrevious.withUnsafeMutableBufferPointer { dp in
                forEachItem { n in
                    Kernels.lstmCellStateBackward(count: m, activated: a.baseAddress! + n * 4 * m,
                                                  previous: previous == nil ? nil : p.baseAddress! + n * m,
                                                  gradient: d.baseAddress! + n * m, gatesGradient: dg.baseAddress! + n * 3 * m,
                                                  previousGradient: previous == nil ? nil : dp.baseAddress! + n * m)
                }
            } }
        } } }
        gates.accumulate(dGates, axis: 1, range: f..<(4 * f))
        previous?.accumulate(dPrevious)
    }
    let hiddenVariable = Variable(hidden, parents: [gates, cellVariable]) { dh in
        var dOutput = Tensor(shape: stateShape) { _ in }, dCell = Tensor(shape: stateShape) { _ in }
        activated.withUnsafeBufferPointer { a in cellTanh.withUnsafeBufferPointer { t in dh.withUnsafeBufferPointer { d in
            dOutput.withUnsafeMutableBufferPointer { dO in dCell.withUnsafeMutableBufferPointer { dC in
                forEachItem { n in
                    Kernels.lstmHiddenBackward(count: m, activated: a.baseAddress! + n * 4 * m, cellTanh: t.baseAddress! + n * m,
                                               gradient: d.baseAddress! + n * m, outputGateGradient: dO.baseAddress! + n * m,
                                               cellGradient: dC.baseAddress! + n * m)
                }
            } }
        } } }
        gates.accumulate(dOutput, axis: 1, range: 0..<f)
        cellVariable.accumulate(dCell)
    }
    return (hiddenVariable, cellVariable)
}

/// The WaveNet gate on a stacked pre-activation `[B, 2G, T]` (filter channels first, then gate
/// channels), giving `[B, G, T]`: `tanh(filter) ⊙ σ(gate)` without copying the halves apart.
public func gatedActivation(stacked a: Variable) -> Variable {
    precondition(a.value.rank == 3 && a.shape[1] % 2 == 0, "gatedActivation(stacked:): needs [B, 2G, T], got \(a.shape)")
    let (batch, channels, time) = (a.shape[0], a.shape[1] / 2, a.shape[2])
    let half = channels * time
    let output = Tensor(shape: [batch, channels, time]) { out in
        a.value.withUnsafeBufferPointer { ap in
            for b in 0..<batch {
                let base = ap.baseAddress! + b * 2 * half
                Kernels.gatedForward(count: half, filter: base, gate: base + half, output: out.baseAddress! + b * half)
            }
        }
    }
    return Variable(output, parents: [a]) { gradient in
        var da = Tensor.zeros(a.shape)
        a.value.withUnsafeBufferPointer { ap in
            gradient.withUnsafeBufferPointer { gp in
                da.withUnsafeMutableBufferPointer { dp in
                    for b in 0..<batch {
                        let base = ap.baseAddress! + b * 2 * half, dbase = dp.baseAddress! + b * 2 * half
                        Kernels.gatedBackward(count: half, filter: base, gate: base + half, gradient: gp.baseAddress! + b * half,
                                              filterGradient: dbase, gateGradient: dbase + half)
                    }
                }
            }
        }
        a.accumulate(da)
    }
}

/// `max(x, lowerBound)` elementwise; the gradient passes where `x > lowerBound`.
public func clamped(_ x: Variable, min lowerBound: Float) -> Variable {
    Variable(Tensor(shape: x.shape, scalars: x.value.scalars.map { Swift.max($0, lowerBound) }), parents: [x]) { gradient in
        x.accumulate(Tensor(shape: x.shape, scalars: zip(x.value.scalars, gradient.scalars).map { $0 > lowerBound ? $1 : 0 }))
    }
}

/// Stacks `[B, Cᵢ, T]` tensors along the channel axis, keeping only the times in `times`:
/// `[B, ΣCᵢ, |times|]` in one copy (the WaveNet skip connections of every layer, at the
/// positions the loss counts).
public func concatenateChannels(_ parts: [Variable], times: Range<Int>) -> Variable {
    precondition(!parts.isEmpty && parts.allSatisfy { $0.value.rank == 3 && $0.shape[0] == parts[0].shape[0] && $0.shape[2] == parts[0].shape[2] },
                 "concatenateChannels: parts \(parts.map(\.shape)) need [B, C, T] with equal B and T")
    let (batch, time) = (parts[0].shape[0], parts[0].shape[2])
    precondition(times.lowerBound >= 0 && times.upperBound <= time, "concatenateChannels: times \(times) outside 0..<\(time)")
    let channels = parts.map { $0.shape[1] }
    let total = channels.reduce(0, +), width = times.count
    let output = Tensor(shape: [batch, total, width]) { out in
        var offset = 0
        for (part, c) in zip(parts, channels) {
            part.value.withUnsafeBufferPointer { pp in
                Parallel.forEach(batch) { b in
                    for ch in 0..<c {
                        (out.baseAddress! + (b * total + offset + ch) * width)
                            .update(from: pp.baseAddress! + (b * c + ch) * time + times.lowerBound, count: width)
                    }
                }
            }
            offset += c
        }
    }
    return Variable(output, parents: parts) { gradient in
        var offset = 0
        for (part, c) in zip(parts, channels) {
            if part.requiresGradient {
                var g = Tensor.zeros([batch, c, time])
                g.withUnsafeMutableBufferPointer { gp in
                    gradient.withUnsafeBufferPointer { src in
                        for b in 0..<batch { for ch in 0..<c {
                            (gp.baseAddress! + (b * c + ch) * time + times.lowerBound)
                                .update(from: src.baseAddress! + (b * total + offset + ch) * width, count: width)
                        } }
                    }
                }
                part.accumulate(g)
            }
            offset += c
        }
    }
}

/// A causal convolution of a one-hot sequence, computed as column lookups: for classes `[B][T]`
/// in 0..<V and weight `[K, O, V]`, output `[B, O, T]` with
/// `y[b, :, t] = bias + Σₖ W[k, :, class[b][t − sₖ]]`, sₖ = (K − 1 − k)·dilation + offset
/// (the same numbers as `causalConv1D` on the one-hot tensor, without building it).
public func causalConv1D(classes: [[Int32]], weight: Variable, bias: Variable?, dilation: Int = 1, offset: Int = 0) -> Variable {
    let (taps, outChannels, vocabulary) = (weight.shape[0], weight.shape[1], weight.shape[2])
    let (batch, time) = (classes.count, classes.first?.count ?? 0)
    precondition(classes.allSatisfy { $0.count == time && $0.allSatisfy { $0 >= 0 && Int($0) < vocabulary } },
                 "causalConv1D(classes:): classes must be \(batch)×\(time) values in 0..<\(vocabulary)")
    // Transposed weight [K, V, O]: each lookup reads one contiguous row.
    let transposed = Kernels.permute(weight.value, [0, 2, 1])
    let output = Tensor(shape: [batch, outChannels, time]) { out in
        transposed.withUnsafeBufferPointer { wp in
            let o = out.baseAddress!, w = wp.baseAddress!
            Parallel.forEach(batch) { b in
                var column = [Float](repeating: 0, count: outChannels)
                for t in 0..<time {
                    for c in 0..<outChannels { column[c] = bias?.value.scalars[c] ?? 0 }
                    for k in 0..<taps {
                        let source = t - Kernels.tapShift(k, taps: taps, dilation: dilation, offset: offset)
                        if source < 0 { continue }
                        let row = w + (k * vocabulary + Int(classes[b][source])) * outChannels
                        for c in 0..<outChannels { column[c] += row[c] }
                    }
                    for c in 0..<outChannels { o[(b * outChannels + c) * time + t] = column[c] }
                }
            }
        }
    }
    return Variable(output, parents: [weight] + (bias.map { [$0] } ?? [])) { gradient in
        if weight.requiresGradient {
            var transposedGradient = Tensor.zeros([taps, vocabulary, outChannels])
            let g = Kernels.permute(gradient, [0, 2, 1])  // [B, T, O]
            transposedGradient.withUnsafeMutableBufferPointer { dp in
                g.withUnsafeBufferPointer { gp in
                    for b in 0..<batch { for t in 0..<time {
                        let grad = gp.baseAddress! + (b * time + t) * outChannels
                        for k in 0..<taps {
                            let source = t - Kernels.tapShift(k, taps: taps, dilation: dilation, offset: offset)
                            if source < 0 { continue }
                            let row = dp.baseAddress! + (k * vocabulary + Int(classes[b][source])) * outChannels
                            for c in 0..<outChannels { row[c] += grad[c] }
                        }
                    } }
                }
            }
            weight.accumulate(Kernels.permute(transposedGradient, [0, 2, 1]))
        }
        bias?.accumulate(Kernels.sumOverBatchAndPositions(gradient))
    }
}
