import Foundation

// MARK: - Softmax family over a class axis
//
// Shapes: logits are `[O, K, I]` after folding the axes before the class axis into O
// (outer) and those after it into I (inner); K classes. Positions are the O·I pairs.

extension Kernels {
    /// Splits `shape` around `axis` into (outer, classes, inner).
    public static func classLayout(_ shape: [Int], axis: Int) -> (outer: Int, classes: Int, inner: Int) {
        precondition(axis >= 0 && axis < shape.count, "class axis \(axis) out of range for \(shape)")
        return (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// log Σₖ exp(x) over the class axis, per position: `[O·I]`.
    public static func logSumExp(count: (outer: Int, classes: Int, inner: Int), _ x: UnsafePointer<Float>,
                                 _ result: UnsafeMutablePointer<Float>) {
        let (outer, classes, inner) = count
        Parallel.forEach(outer) { o in
            let base = x + o * classes * inner
            let lse = result + o * inner
            var scratch = [Float](repeating: 0, count: inner)
            scratch.withUnsafeMutableBufferPointer { sp in
                let s = sp.baseAddress!
                for t in 0..<inner { lse[t] = base[t] }
                for k in 1..<max(classes, 1) {
                    let row = base + k * inner
                    for t in 0..<inner { lse[t] = max(lse[t], row[t]) }
                }
                for t in 0..<inner { s[t] = 0 }
                var shifted = [Float](repeating: 0, count: inner)
                shifted.withUnsafeMutableBufferPointer { hp in
                    let h = hp.baseAddress!
                    for k in 0..<classes {
                        let row = base + k * inner
                        for t in 0..<inner { h[t] = row[t] - lse[t] }
                        VectorMath.map(inner, h, h, VectorMath.exp)
                        for t in 0..<inner { s[t] += h[t] }
                    }
                }
                for t in 0..<inner { lse[t] += Foundation.log(s[t]) }
            }
        }
    }

    /// Fused log-softmax + cross-entropy: per-position loss `−log softmax(x)[target]`, shape `[O·I]`,
    /// and the per-position log-sum-exp (kept for the backward pass). A negative target marks a
    /// position that does not count: its loss and gradient are 0.
    public static func softmaxCrossEntropy(_ logits: Tensor, targets: [Int32], axis: Int) -> (loss: Tensor, logSumExp: Tensor) {
        let layout = classLayout(logits.shape, axis: axis)
        let positions = layout.outer * layout.inner
        precondition(targets.count == positions, "softmaxCrossEntropy: \(targets.count) targets for logits \(logits.shape) (axis \(axis))")
        var lseShape = logits.shape
        lseShape.remove(at: axis)
        let lse = Tensor(shape: lseShape) { out in
            logits.withUnsafeBufferPointer { logSumExp(count: layout, $0.baseAddress!, out.baseAddress!) }
        }
        let loss = Tensor(shape: lseShape) { out in
            logits.withUnsafeBufferPointer { lp in
                for p in 0..<positions {
                    let target = Int(targets[p])
                    if target < 0 { out[p] = 0; continue }
                    precondition(target < layout.classes, "softmaxCrossEntropy: target \(target) outside \(layout.classes) classes")
                    let o = p / layout.inner, t = p % layout.inner
                    out[p] = lse.scalars[p] - lp[(o * layout.classes + target) * layout.inner + t]
                }
            }
        }
        return (loss, lse)
    }

    /// Logit gradient of `softmaxCrossEntropy` given the per-position loss gradient:
    /// `g · (softmax(x) − onehot(target))`.
    public static func softmaxCrossEntropyBackward(_ logits: Tensor, targets: [Int32], axis: Int,
                                                   logSumExp lse: Tensor, gradient: Tensor) -> Tensor {
        let (outer, classes, inner) = classLayout(logits.shape, axis: axis)
        return Tensor(shape: logits.shape) { out in
            logits.withUnsafeBufferPointer { lp in
                lse.withUnsafeBufferPointer { sp in
                    gradient.withUnsafeBufferPointer { gp in
                        let x = lp.baseAddress!, s = sp.baseAddress!, g = gp.baseAddress!, d = out.baseAddress!
                        targets.withUnsafeBufferPointer { tp in
                            Parallel.forEach(outer) { o in
                                for k in 0..<classes {
                                    let offset = (o * classes + k) * inner
                                    for t in 0..<inner { d[offset + t] = x[offset + t] - s[o * inner + t] }
                                    VectorMath.map(inner, d + offset, d + offset, VectorMath.exp)
                                    for t in 0..<inner {
                                        let p = o * inner + t
                                        let target = Int(tp[p])
                                        d[offset + t] = target < 0 ? 0 : g[p] * (d[offset + t] - (target == k ? 1 : 0))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `x − logsumexp(x)` over the class axis.
    public static func logSoftmax(_ x: Tensor, axis: Int) -> Tensor {
        let layout = classLayout(x.shape, axis: axis)
        var lse = [Float](repeating: 0, count: layout.outer * layout.inner)
        x.withUnsafeBufferPointer { xp in lse.withUnsafeMutableBufferPointer { logSumExp(count: layout, xp.baseAddress!, $0.baseAddress!) } }
        var result = x
        for o in 0..<layout.outer {
            for k in 0..<layout.classes {
                for t in 0..<layout.inner { result.scalars[(o * layout.classes + k) * layout.inner + t] -= lse[o * layout.inner + t] }
            }
        }
        return result
    }

    /// Gradient of `y = logSoftmax(x)`: `g − softmax(x) · Σₖ g`.
    public static func logSoftmaxBackward(output y: Tensor, gradient g: Tensor, axis: Int) -> Tensor {
        let (outer, classes, inner) = classLayout(y.shape, axis: axis)
        var result = g
        for o in 0..<outer {
            for t in 0..<inner {
                var total: Float = 0
                for k in 0..<classes { total += g.scalars[(o * classes + k) * inner + t] }
                for k in 0..<classes {
                    let i = (o * classes + k) * inner + t
                    result.scalars[i] = g.scalars[i] - Foundation.exp(y.scalars[i]) * total
                }
            }
        }
        return result
    }
}

// MARK: - Sigmoid + binary cross-entropy

extension Kernels {
    /// Elementwise `−[t·log σ(z) + (1 − t)·log(1 − σ(z))]`, computed as
    /// `max(z, 0) − z·t + log(1 + e^(−|z|))` so that it stays finite for any |z|.
    public static func sigmoidCrossEntropy(logits: Tensor, targets: Tensor) -> Tensor {
        precondition(logits.shape == targets.shape, "sigmoidCrossEntropy: logits \(logits.shape) vs targets \(targets.shape)")
        return Tensor(shape: logits.shape) { out in
            logits.withUnsafeBufferPointer { zp in targets.withUnsafeBufferPointer { tp in
                let z = zp.baseAddress!, t = tp.baseAddress!, o = out.baseAddress!
                // A transcendental per element: worth both cores from a few thousand (a MADE batch is 78,400).
                Parallel.forChunks(logits.count, grain: 1 << 13) { range in
                    // softplus(z) − z·t = max(z, 0) − z·t + log(1 + e^(−|z|))
                    VectorMath.map(range.count, z + range.lowerBound, o + range.lowerBound, VectorMath.softplus)
                    for i in range { o[i] -= z[i] * t[i] }
                }
            } }
        }
    }

    /// Logit gradient of `sigmoidCrossEntropy`: `g · (σ(z) − t)`.
    public static func sigmoidCrossEntropyBackward(logits: Tensor, targets: Tensor, gradient: Tensor) -> Tensor {
        Tensor(shape: logits.shape) { out in
            logits.withUnsafeBufferPointer { zp in targets.withUnsafeBufferPointer { tp in gradient.withUnsafeBufferPointer { gp in
                let z = zp.baseAddress!, t = tp.baseAddress!, g = gp.baseAddress!, o = out.baseAddress!
                Parallel.forChunks(logits.count, grain: 1 << 13) { range in
                    VectorMath.map(range.count, z + range.lowerBound, o + range.lowerBound, VectorMath.sigmoid)
                    for i in range { o[i] = g[i] * (o[i] - t[i]) }
                }
            } } }
        }
    }
}
