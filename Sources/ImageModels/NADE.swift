// NADE: The Neural Autoregressive Distribution Estimator (Larochelle & Murray 2011, AISTATS).
//
// One hidden layer whose weights are shared across the conditionals:
//   a_d = c + W[:, <d] · x_<d,   h_d = σ(a_d),   p(x_d | x_<d) = σ(b_d + V_d · h_d)
// The pre-activations follow the O(D·H) recurrence a_{d+1} = a_d + W[:, d] x_d, in training (a
// fused op with its own pullback) and in sampling. Deviation: grey levels get a K-way softmax per
// pixel (V is [D, K, H]) with inputs scaled to [0, 1].

import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

public final class NADE: ImageModel {
    public let configuration: ImageModelConfiguration
    /// Input weights `[H, D]`, hidden bias `[H]`, output weights `[D, P, H]`, output bias `[D, P]`.
    public let w: Variable, c: Variable, v: Variable, b: Variable

    public init(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) {
        self.configuration = configuration
        let (d, h, p) = (configuration.dimensions, configuration.hiddenSizes[0], configuration.outputsPerDimension)
        w = parameter(generator.normalTensor([h, d], standardDeviation: 0.05))
        c = parameter(.zeros([h]))
        v = parameter(generator.normalTensor([d, p, h], standardDeviation: 0.05))
        b = parameter(.zeros([d, p]))
    }

    public var parameters: [NamedParameter] {
        [NamedParameter("W", w), NamedParameter("c", c), NamedParameter("V", v), NamedParameter("b", b)]
    }
    public var dimensionCount: Int { configuration.dimensions }
    public var generationOrder: [Int] { Array(0..<configuration.dimensions) }
    var inputScale: Float { 1 / Float(configuration.levels - 1) }

    /// Per-dimension logits `[N, D, P]` (the fused streaming op).
    func logits(_ x: Tensor) -> Variable {
        nadeLogits(Kernels.scale(x, by: inputScale), weight: w, hiddenBias: c, output: v, outputBias: b)
    }

    /// The same logits composed from general ops over the materialised `[N, D, H]` hidden states:
    /// the reference the fused op is tested against.
    public func referenceLogits(_ x: Tensor) -> Variable {
        let (n, d, p) = (x.shape[0], configuration.dimensions, configuration.outputsPerDimension)
        let pre = nadePreactivations(Kernels.scale(x, by: inputScale), weight: w, bias: c)   // [N, D, H]
        let hidden = sigmoid(permute(pre, [1, 0, 2]))                                       // [D, N, H]
        let out = matmul(hidden, v, transposeRight: true)                                   // [D, N, P]
        return permute(out + reshape(b, [d, 1, p]), [1, 0, 2]).reshapedCheck(n, d, p)
    }

    public func conditionalLogProbabilities(_ x: Tensor) -> Variable {
        ImageModels.conditionalLogProbabilities(logits: logits(x), targets: x)
    }
    public func conditionalParameters(_ x: Tensor) -> Tensor { logits(x).value }
    public func sampleDimension(_ d: Int, given x: Tensor, temperature: Float, generator: inout RandomGenerator) -> [Float] {
        sampleFromLogits(logits(x).value, dimension: d, temperature: temperature, generator: &generator)
    }

    /// O(D·H) sampling: the pre-activations are updated with each new value's column of W.
    public func makeIncrementalSampler() -> (any IncrementalSampler)? { Sampler(model: self) }

    struct Sampler: IncrementalSampler {
        let model: NADE
        func sample(count: Int, conditionedOn observation: PartialObservation?, temperature: Float,
                    generator: inout RandomGenerator) -> Tensor {
            let (d, h, p) = (model.configuration.dimensions, model.configuration.hiddenSizes[0], model.configuration.outputsPerDimension)
            let wt = Kernels.transposeLastTwo(model.w.value).scalars  // [D, H]
            let (vs, bs, cs) = (model.v.value.scalars, model.b.value.scalars, model.c.value.scalars)
            let scale = model.inputScale
            var x = Tensor.zeros([count, d])
            var a = [Float](repeating: 0, count: count * h)
            for row in 0..<count { for j in 0..<h { a[row * h + j] = cs[j] } }
            var hidden = [Float](repeating: 0, count: h), logits = [Float](repeating: 0, count: p)
            for dimension in 0..<d {
                for row in 0..<count {
                    let value: Float
                    if let observation, observation.observed[dimension] {
                        value = observation.value(row: row, dimension: dimension)
                    } else {
                        for j in 0..<h { hidden[j] = 1 / (1 + Foundation.exp(-a[row * h + j])) }
                        for k in 0..<p {
                            var z = bs[dimension * p + k]
                            for j in 0..<h { z += vs[(dimension * p + k) * h + j] * hidden[j] }
                            logits[k] = z
                        }
                        value = logits.withUnsafeBufferPointer { drawOne($0.baseAddress!, count: p, temperature: temperature, generator: &generator) }
                    }
                    x.scalars[row * d + dimension] = value
                    let scaled = value * scale
                    if scaled != 0 { for j in 0..<h { a[row * h + j] += scaled * wt[dimension * h + j] } }
                }
            }
            return x
        }
    }
}

extension Variable {
    fileprivate func reshapedCheck(_ n: Int, _ d: Int, _ p: Int) -> Variable { reshape(self, [n, d, p]) }
}

/// NADE's shared pre-activations: `a[n, d, :] = c + Σ_{j<d} W[:, j]·x[n, j]` for x `[N, D]`,
/// W `[H, D]`, c `[H]`, giving `[N, D, H]` by the running-sum recurrence (O(N·D·H)); the pullback
/// runs the recurrence backwards (dW[:, j] = Σₙ x[n, j] · Σ_{d>j} dA[n, d, :]).
public func nadePreactivations(_ x: Tensor, weight: Variable, bias: Variable) -> Variable {
    let (n, d, h) = (x.shape[0], x.shape[1], weight.shape[0])
    precondition(weight.shape == [h, d] && bias.shape == [h], "nadePreactivations: W \(weight.shape), c \(bias.shape) for x \(x.shape)")
    let wt = Kernels.transposeLastTwo(weight.value)  // [D, H]
    let output = Tensor(shape: [n, d, h]) { out in
        wt.withUnsafeBufferPointer { wp in
            let o = out.baseAddress!, w = wp.baseAddress!
            Parallel.forEach(n) { row in
                var a = bias.value.scalars
                for dim in 0..<d {
                    (o + (row * d + dim) * h).update(from: a, count: h)
                    let value = x.scalars[row * d + dim]
                    if value != 0 { for j in 0..<h { a[j] += value * w[dim * h + j] } }
                }
            }
        }
    }
    return Variable(output, parents: [weight, bias]) { gradient in
        var dwt = [Float](repeating: 0, count: d * h)
        var dc = [Float](repeating: 0, count: h)
        gradient.withUnsafeBufferPointer { gp in
            let g = gp.baseAddress!
            for row in 0..<n {
                // running = Σ_{d' > dim} dA[row, d', :]
                var running = [Float](repeating: 0, count: h)
                for dim in stride(from: d - 1, through: 0, by: -1) {
                    let value = x.scalars[row * d + dim]
                    if value != 0 { for j in 0..<h { dwt[dim * h + j] += value * running[j] } }
                    let gd = g + (row * d + dim) * h
                    for j in 0..<h { running[j] += gd[j] }
                }
                for j in 0..<h { dc[j] += running[j] }
            }
        }
        weight.accumulate(Kernels.transposeLastTwo(Tensor(shape: [d, h], scalars: dwt)))
        bias.accumulate(Tensor(shape: [h], scalars: dc))
    }
}

/// NADE's logits in one fused op, streaming one example at a time so that the `[N, D, H]` hidden
/// states are never materialised: for x `[N, D]` (already scaled), W `[H, D]`, c `[H]`, V `[D, P, H]`,
/// b `[D, P]`, the result `[N, D, P]` is `b[d] + V[d] · σ(c + Σ_{j<d} W[:, j] x_j)`. The pullback
/// recomputes each example's pre-activations (O(D·H) memory per worker) and runs the recurrence
/// backwards; examples are spread over the cores with per-worker gradient buffers.
public func nadeLogits(_ x: Tensor, weight: Variable, hiddenBias: Variable, output: Variable, outputBias: Variable) -> Variable {
    let (n, d, h) = (x.shape[0], x.shape[1], weight.shape[0])
    let p = output.shape[1]
    precondition(weight.shape == [h, d] && hiddenBias.shape == [h] && output.shape == [d, p, h] && outputBias.shape == [d, p],
                 "nadeLogits: W \(weight.shape), c \(hiddenBias.shape), V \(output.shape), b \(outputBias.shape) for x \(x.shape)")
    let wt = Kernels.transposeLastTwo(weight.value)  // [D, H]: column j of W is row j here
    let (vs, bs, cs) = (output.value, outputBias.value, hiddenBias.value)
    // Plain arrays, read through pointers inside the loops (no per-element bounds checks or retains).
    let xs = x.scalars, biases = bs.scalars, start = cs.scalars

    /// Runs the recurrence for one example, calling `body(dim, a)` with the pre-activations before dimension `dim`.
    func recurrence(_ row: Int, _ w: UnsafePointer<Float>, _ a: UnsafeMutablePointer<Float>, _ body: (Int, UnsafeMutablePointer<Float>) -> Void) {
        start.withUnsafeBufferPointer { a.update(from: $0.baseAddress!, count: h) }
        xs.withUnsafeBufferPointer { xp in
            let values = xp.baseAddress! + row * d
            for dim in 0..<d {
                body(dim, a)
                let value = values[dim]
                if value != 0 { axpy(h, value, w + dim * h, a) }
            }
        }
    }

    let result = Tensor(shape: [n, d, p]) { out in
        wt.withUnsafeBufferPointer { wp in vs.withUnsafeBufferPointer { vp in
            let o = out.baseAddress!, w = wp.baseAddress!, v = vp.baseAddress!
            Parallel.forEach(min(n, Parallel.workerCount)) { worker in
                var a = [Float](repeating: 0, count: h), hidden = [Float](repeating: 0, count: h)
                a.withUnsafeMutableBufferPointer { ap in hidden.withUnsafeMutableBufferPointer { hp in
                    var row = worker
                    while row < n {
                        biases.withUnsafeBufferPointer { bp in
                            recurrence(row, w, ap.baseAddress!) { dim, pre in
                                VectorMath.map(h, pre, hp.baseAddress!, VectorMath.sigmoid)
                                for k in 0..<p {
                                    o[(row * d + dim) * p + k] = bp[dim * p + k] + dot(h, v + (dim * p + k) * h, hp.baseAddress!)
                                }
                            }
                        }
                        row += Parallel.workerCount
                    }
                } }
            }
        } }
    }
    return Variable(result, parents: [weight, hiddenBias, output, outputBias]) { gradient in
        let workers = min(n, Parallel.workerCount)
        var dW = [Float](repeating: 0, count: workers * d * h), dV = [Float](repeating: 0, count: workers * d * p * h)
        var dc = [Float](repeating: 0, count: workers * h)
        wt.withUnsafeBufferPointer { wp in vs.withUnsafeBufferPointer { vp in gradient.withUnsafeBufferPointer { gp in
            dW.withUnsafeMutableBufferPointer { dwp in dV.withUnsafeMutableBufferPointer { dvp in dc.withUnsafeMutableBufferPointer { dcp in
                let w = wp.baseAddress!, v = vp.baseAddress!, g = gp.baseAddress!
                let (dWAll, dVAll, dcAll) = (dwp.baseAddress!, dvp.baseAddress!, dcp.baseAddress!)
                Parallel.forEach(workers) { worker in
                    let (myW, myV, myC) = (dWAll + worker * d * h, dVAll + worker * d * p * h, dcAll + worker * h)
                    var hiddens = [Float](repeating: 0, count: d * h)
                    var running = [Float](repeating: 0, count: h), dh = [Float](repeating: 0, count: h)
                    hiddens.withUnsafeMutableBufferPointer { hsp in running.withUnsafeMutableBufferPointer { rp in dh.withUnsafeMutableBufferPointer { dhp in
                        let hs = hsp.baseAddress!, run = rp.baseAddress!, dhv = dhp.baseAddress!
                        var a = [Float](repeating: 0, count: h)
                        a.withUnsafeMutableBufferPointer { ap in
                            var row = worker
                            while row < n {
                                recurrence(row, w, ap.baseAddress!) { dim, pre in VectorMath.map(h, pre, hs + dim * h, VectorMath.sigmoid) }
                                for j in 0..<h { run[j] = 0 }
                                for dim in stride(from: d - 1, through: 0, by: -1) {
                                    let hd = hs + dim * h
                                    for j in 0..<h { dhv[j] = 0 }
                                    for k in 0..<p {
                                        let gk = g[(row * d + dim) * p + k]
                                        if gk == 0 { continue }
                                        axpy(h, gk, v + (dim * p + k) * h, dhv)      // dh += g · V[d, k]
                                        axpy(h, gk, UnsafePointer(hd), myV + (dim * p + k) * h)  // dV[d, k] += g · h_d
                                    }
                                    // dW[:, d] += x_d · Σ_{d' > d} da_{d'}; then add da_d = dh ⊙ h(1 − h).
                                    let value = xs[row * d + dim]
                                    if value != 0 { axpy(h, value, UnsafePointer(run), myW + dim * h) }
                                    for j in 0..<h { run[j] += dhv[j] * hd[j] * (1 - hd[j]) }
                                }
                                for j in 0..<h { myC[j] += run[j] }
                                row += workers
                            }
                        }
                    } } }
                }
            } } }
        } } }
        func reduce(_ buffer: [Float], _ size: Int) -> [Float] {
            var total = Array(buffer[0..<size])
            for worker in 1..<max(workers, 1) { for i in 0..<size { total[i] += buffer[worker * size + i] } }
            return total
        }
        weight.accumulate(Kernels.transposeLastTwo(Tensor(shape: [d, h], scalars: reduce(dW, d * h))))
        hiddenBias.accumulate(Tensor(shape: [h], scalars: reduce(dc, h)))
        output.accumulate(Tensor(shape: [d, p, h], scalars: reduce(dV, d * p * h)))
        outputBias.accumulate(Kernels.sum(gradient, axes: [0]))
    }
}

/// y += alpha · x over `count` floats.
@inline(__always)
func axpy(_ count: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    var i = 0
    let a = Vector(repeating: alpha)
    while i + 16 <= count {
        let r = UnsafeRawPointer(y + i).loadUnaligned(as: Vector.self) + a * UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: r, as: Vector.self)
        i += 16
    }
    while i < count { y[i] += alpha * x[i]; i += 1 }
}

/// Σ x·y over `count` floats.
@inline(__always)
func dot(_ count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
    var acc = Vector()
    var i = 0
    while i + 16 <= count {
        acc += UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self) * UnsafeRawPointer(y + i).loadUnaligned(as: Vector.self)
        i += 16
    }
    var total = acc.sum()
    while i < count { total += x[i] * y[i]; i += 1 }
    return total
}
