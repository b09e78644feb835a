import Foundation

/// The pointwise nonlinearities that have a kernel and a derivative.
public enum UnaryFunction: String, CaseIterable, Sendable {
    case tanh, sigmoid, relu, exp, log, softplus

    /// The function in double precision through libm: the reference the kernels are tested against.
    public func reference(_ x: Double) -> Double {
        switch self {
        case .tanh: Foundation.tanh(x)
        case .sigmoid: 1 / (1 + Foundation.exp(-x))
        case .relu: max(x, 0)
        case .exp: Foundation.exp(x)
        case .log: Foundation.log(x)
        case .softplus: max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
        }
    }
}

// MARK: - Unary

extension Kernels {
    /// Applies `function` elementwise.
    public static func unary(_ function: UnaryFunction, _ x: Tensor) -> Tensor {
        Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                unary(function, count: x.count, input.baseAddress!, out.baseAddress!)
            }
        }
    }

    /// Raw form of `unary`: `output[i] = f(input[i])` for i in 0..<count (spread over the cores when large).
    public static func unary(_ function: UnaryFunction, count: Int,
                             _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>) {
        Parallel.forChunks(count) { range in
            let n = range.count, x = input + range.lowerBound, y = output + range.lowerBound
            switch function {
            case .tanh: VectorMath.map(n, x, y, VectorMath.tanh)
            case .sigmoid: VectorMath.map(n, x, y, VectorMath.sigmoid)
            case .relu: VectorMath.map(n, x, y) { $0.replacing(with: 0, where: $0 .< 0) }  // keeps NaN visible
            case .exp: VectorMath.map(n, x, y, VectorMath.exp)
            case .log: VectorMath.map(n, x, y, VectorMath.log)
            case .softplus: VectorMath.map(n, x, y, VectorMath.softplus)
            }
        }
    }

    /// The input gradient of `unary(function, x) = y` given the output gradient.
    public static func unaryBackward(_ function: UnaryFunction, x: Tensor, y: Tensor, gradient: Tensor) -> Tensor {
        precondition(x.shape == gradient.shape && y.shape == x.shape,
                     "unaryBackward: shapes \(x.shape), \(y.shape), \(gradient.shape) differ")
        return Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeBufferPointer { yp in
                    gradient.withUnsafeBufferPointer { gp in
                        let xv = xp.baseAddress!, yv = yp.baseAddress!, g = gp.baseAddress!, o = out.baseAddress!
                        Parallel.forChunks(x.count) { range in
                            switch function {
                            case .tanh: for i in range { o[i] = g[i] * (1 - yv[i] * yv[i]) }
                            case .sigmoid: for i in range { o[i] = g[i] * yv[i] * (1 - yv[i]) }
                            case .relu: for i in range { o[i] = xv[i] > 0 ? g[i] : 0 }
                            case .exp: for i in range { o[i] = g[i] * yv[i] }
                            case .log: for i in range { o[i] = g[i] / xv[i] }
                            case .softplus:
                                VectorMath.map(range.count, xv + range.lowerBound, o + range.lowerBound, VectorMath.sigmoid)
                                for i in range { o[i] *= g[i] }
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Gated activation

extension Kernels {
    /// The WaveNet gate `tanh(a) ⊙ σ(b)`, fused into one pass (`count` elements).
    public static func gatedForward(count: Int, filter a: UnsafePointer<Float>, gate b: UnsafePointer<Float>,
                                    output y: UnsafeMutablePointer<Float>) {
        Parallel.forChunks(count) { range in
            var i = range.lowerBound
            let w = VectorMath.width
            while i + w <= range.upperBound {
                let av = UnsafeRawPointer(a + i).loadUnaligned(as: Vector.self)
                let bv = UnsafeRawPointer(b + i).loadUnaligned(as: Vector.self)
                UnsafeMutableRawPointer(y + i).storeBytes(of: VectorMath.tanh(av) * VectorMath.sigmoid(bv), as: Vector.self)
                i += w
            }
            while i < range.upperBound {
                y[i] = Foundation.tanh(a[i]) / (1 + Foundation.exp(-b[i]))
                i += 1
            }
        }
    }

    /// Gradients of the gate: `da = g·σ(b)·(1 − tanh²a)`, `db = g·tanh(a)·σ(b)·(1 − σ(b))`.
    public static func gatedBackward(count: Int, filter a: UnsafePointer<Float>, gate b: UnsafePointer<Float>,
                                     gradient g: UnsafePointer<Float>,
                                     filterGradient da: UnsafeMutablePointer<Float>,
                                     gateGradient db: UnsafeMutablePointer<Float>) {
        Parallel.forChunks(count) { range in
            var i = range.lowerBound
            let w = VectorMath.width
            while i + w <= range.upperBound {
                let t = VectorMath.tanh(UnsafeRawPointer(a + i).loadUnaligned(as: Vector.self))
                let s = VectorMath.sigmoid(UnsafeRawPointer(b + i).loadUnaligned(as: Vector.self))
                let gv = UnsafeRawPointer(g + i).loadUnaligned(as: Vector.self)
                UnsafeMutableRawPointer(da + i).storeBytes(of: gv * s * (1 - t * t), as: Vector.self)
                UnsafeMutableRawPointer(db + i).storeBytes(of: gv * t * s * (1 - s), as: Vector.self)
                i += w
            }
            while i < range.upperBound {
                let t = Foundation.tanh(a[i]), s = 1 / (1 + Foundation.exp(-b[i]))
                da[i] = g[i] * s * (1 - t * t)
                db[i] = g[i] * t * s * (1 - s)
                i += 1
            }
        }
    }
}

// MARK: - LSTM cell

extension Kernels {
    /// `lanes` floats from `p + i` (the rest of the vector zero).
    @inline(__always) static func load(_ p: UnsafePointer<Float>, _ i: Int, _ lanes: Int) -> Vector {
        if lanes == VectorMath.width { return UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self) }
        var v = Vector()
        for lane in 0..<lanes { v[lane] = p[i + lane] }
        return v
    }

    /// The first `lanes` lanes of `v` to `p + i`.
    @inline(__always) static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ lanes: Int) {
        if lanes == VectorMath.width { UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Vector.self); return }
        for lane in 0..<lanes { p[i + lane] = v[lane] }
    }

    /// The LSTM cell on gate pre-activations stacked as blocks of `count` (output o, forget f,
    /// input i, candidate g): `c = σ(f)·c₋ + σ(i)·tanh(g)` (no c₋: the first step) and `h = σ(o)·tanh(c)`.
    /// Also writes the activated gates (σ(o), σ(f), σ(i), tanh(g), four blocks) and tanh(c), which
    /// the backward passes use instead of evaluating the functions again.
    public static func lstmCellForward(count: Int, gates: UnsafePointer<Float>, previous: UnsafePointer<Float>?,
                                       activated a: UnsafeMutablePointer<Float>, cell: UnsafeMutablePointer<Float>,
                                       cellTanh: UnsafeMutablePointer<Float>, hidden: UnsafeMutablePointer<Float>) {
        var k = 0
        while k < count {
            let lanes = Swift.min(VectorMath.width, count - k)
            let o = VectorMath.sigmoid(load(gates, k, lanes)), f = VectorMath.sigmoid(load(gates + count, k, lanes))
            let i = VectorMath.sigmoid(load(gates + 2 * count, k, lanes)), g = VectorMath.tanh(load(gates + 3 * count, k, lanes))
            var c = i * g
            if let previous { c += f * load(previous, k, lanes) }
            let t = VectorMath.tanh(c)
            store(o, a, k, lanes); store(f, a + count, k, lanes); store(i, a + 2 * count, k, lanes); store(g, a + 3 * count, k, lanes)
            store(c, cell, k, lanes); store(t, cellTanh, k, lanes); store(o * t, hidden, k, lanes)
            k += VectorMath.width
        }
    }

    /// Gradients of the cell state `c` with respect to the f, i, g gate blocks (written to
    /// `gatesGradient`, three blocks of `count`) and to `c₋` (written to `previousGradient`), from
    /// the activated gates `lstmCellForward` wrote.
    public static func lstmCellStateBackward(count: Int, activated a: UnsafePointer<Float>, previous: UnsafePointer<Float>?,
                                             gradient dc: UnsafePointer<Float>, gatesGradient: UnsafeMutablePointer<Float>,
                                             previousGradient: UnsafeMutablePointer<Float>?) {
        var k = 0
        while k < count {
            let lanes = Swift.min(VectorMath.width, count - k)
            let f = load(a + count, k, lanes), i = load(a + 2 * count, k, lanes), g = load(a + 3 * count, k, lanes), d = load(dc, k, lanes)
            if let previous, let previousGradient {
                store(d * load(previous, k, lanes) * f * (1 - f), gatesGradient, k, lanes)
                store(d * f, previousGradient, k, lanes)
            } else {
                store(Vector(), gatesGradient, k, lanes)
            }
            store(d * g * i * (1 - i), gatesGradient + count, k, lanes)
            store(d * i * (1 - g * g), gatesGradient + 2 * count, k, lanes)
            k += VectorMath.width
        }
    }

    /// Gradients of `h = σ(o)·tanh(c)` with respect to the o gate block and to `c`, from σ(o) (the
    /// first activated block) and tanh(c).
    public static func lstmHiddenBackward(count: Int, activated a: UnsafePointer<Float>, cellTanh: UnsafePointer<Float>,
                                          gradient dh: UnsafePointer<Float>, outputGateGradient: UnsafeMutablePointer<Float>,
                                          cellGradient: UnsafeMutablePointer<Float>) {
        var k = 0
        while k < count {
            let lanes = Swift.min(VectorMath.width, count - k)
            let o = load(a, k, lanes), t = load(cellTanh, k, lanes), d = load(dh, k, lanes)
            store(d * t * o * (1 - o), outputGateGradient, k, lanes)
            store(d * o * (1 - t * t), cellGradient, k, lanes)
            k += VectorMath.width
        }
    }

    /// One position's whole cell backward (`lstmHiddenBackward` then `lstmCellStateBackward`) in one
    /// pass, for scans that keep their states themselves: from dh and the cell gradient coming back
    /// from the next step (nil: none), writes the o, f, i, g gate gradients (four blocks of `count`)
    /// and, when there is a previous cell, its gradient.
    public static func lstmCellBackward(count: Int, activated a: UnsafePointer<Float>, cellTanh: UnsafePointer<Float>,
                                        previous: UnsafePointer<Float>?, hiddenGradient dh: UnsafePointer<Float>,
                                        cellGradient dcNext: UnsafePointer<Float>?, gatesGradient: UnsafeMutablePointer<Float>,
                                        previousGradient: UnsafeMutablePointer<Float>?) {
        var k = 0
        while k < count {
            let lanes = Swift.min(VectorMath.width, count - k)
            let o = load(a, k, lanes), f = load(a + count, k, lanes), i = load(a + 2 * count, k, lanes), g = load(a + 3 * count, k, lanes)
            let t = load(cellTanh, k, lanes), d = load(dh, k, lanes)
            var dc = d * o * (1 - t * t)
            if let dcNext { dc += load(dcNext, k, lanes) }
            store(d * t * o * (1 - o), gatesGradient, k, lanes)
            if let previous, let previousGradient {
                store(dc * load(previous, k, lanes) * f * (1 - f), gatesGradient + count, k, lanes)
                store(dc * f, previousGradient, k, lanes)
            } else {
                store(Vector(), gatesGradient + count, k, lanes)
            }
            store(dc * g * i * (1 - i), gatesGradient + 2 * count, k, lanes)
            store(dc * i * (1 - g * g), gatesGradient + 3 * count, k, lanes)
            k += VectorMath.width
        }
    }
}

// MARK: - Binary with broadcasting

/// Elementwise binary operations with NumPy-style broadcasting.
public enum BinaryFunction: String, CaseIterable, Sendable {
    case add, subtract, multiply, divide

    @inlinable @inline(__always)
    public func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: a + b
        case .subtract: a - b
        case .multiply: a * b
        case .divide: a / b
        }
    }
}

extension Kernels {
    /// The broadcast shape of two shapes (trailing axes aligned; an axis of 1 stretches).
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
        let rank = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: rank - a.count) + a
        let pb = [Int](repeating: 1, count: rank - b.count) + b
        return (0..<rank).map { axis in
            precondition(pa[axis] == pb[axis] || pa[axis] == 1 || pb[axis] == 1,
                         "broadcast: shapes \(a) and \(b) are incompatible at axis \(axis)")
            return max(pa[axis], pb[axis])
        }
    }

    /// Strides of `shape` read as a broadcast into `target` (0 on stretched axes).
    static func broadcastStrides(_ shape: [Int], into target: [Int]) -> [Int] {
        let padded = [Int](repeating: 1, count: target.count - shape.count) + shape
        let strides = Tensor.strides(of: padded)
        return (0..<target.count).map { padded[$0] == 1 && target[$0] != 1 ? 0 : strides[$0] }
    }

    /// Visits every row (all axes but the last) of `shape`, giving the row's offsets in two broadcast operands.
    static func forEachRow(_ shape: [Int], _ stridesA: [Int], _ stridesB: [Int],
                           _ body: (_ row: Int, _ offsetA: Int, _ offsetB: Int) -> Void) {
        let outer = shape.dropLast().reduce(1, *)
        let rank = shape.count
        var index = [Int](repeating: 0, count: max(rank - 1, 0))
        var offsetA = 0, offsetB = 0
        for row in 0..<outer {
            body(row, offsetA, offsetB)
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                offsetA += stridesA[axis]
                offsetB += stridesB[axis]
                if index[axis] < shape[axis] { break }
                offsetA -= stridesA[axis] * shape[axis]
                offsetB -= stridesB[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// `function(a, b)` elementwise with broadcasting.
    public static func binary(_ function: BinaryFunction, _ a: Tensor, _ b: Tensor) -> Tensor {
        if a.shape == b.shape {
            return Tensor(shape: a.shape) { out in
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        let x = ap.baseAddress!, y = bp.baseAddress!, o = out.baseAddress!
                        Parallel.forChunks(a.count) { range in
                            switch function {
                            case .add: for i in range { o[i] = x[i] + y[i] }
                            case .subtract: for i in range { o[i] = x[i] - y[i] }
                            case .multiply: for i in range { o[i] = x[i] * y[i] }
                            case .divide: for i in range { o[i] = x[i] / y[i] }
                            }
                        }
                    }
                }
            }
        }
        let shape = broadcastShape(a.shape, b.shape)
        let sa = broadcastStrides(a.shape, into: shape), sb = broadcastStrides(b.shape, into: shape)
        let inner = shape.last ?? 1
        let ia = sa.last ?? 0, ib = sb.last ?? 0
        return Tensor(shape: shape) { out in
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    let x = ap.baseAddress!, y = bp.baseAddress!, o = out.baseAddress!
                    forEachRow(shape, sa, sb) { row, offA, offB in
                        let orow = o + row * inner
                        for j in 0..<inner { orow[j] = function.apply(x[offA + j * ia], y[offB + j * ib]) }
                    }
                }
            }
        }
    }

    /// Sums `x` down to `shape` (the inverse of broadcasting `shape` up to `x.shape`).
    public static func sum(_ x: Tensor, toShape shape: [Int]) -> Tensor {
        if x.shape == shape { return x }
        precondition(broadcastShape(shape, x.shape) == x.shape, "sum(toShape:): \(x.shape) does not broadcast from \(shape)")
        if shape.count == x.rank, let kept = (1..<x.rank).first(where: { shape[$0] != 1 }),
           shape[..<kept].allSatisfy({ $0 == 1 }), shape[kept...].elementsEqual(x.shape[kept...]) {
            return sumLeadingAxes(x, keeping: shape)
        }
        let st = broadcastStrides(shape, into: x.shape)
        let inner = x.shape.last ?? 1
        let it = st.last ?? 0
        var result = [Double](repeating: 0, count: shape.reduce(1, *))
        x.withUnsafeBufferPointer { xp in
            let xv = xp.baseAddress!
            result.withUnsafeMutableBufferPointer { rp in
                let r = rp.baseAddress!
                forEachRow(x.shape, st, st) { row, offset, _ in
                    let xrow = xv + row * inner
                    if it == 0 {
                        r[offset] += Double(VectorMath.sum(xrow, count: inner))
                    } else {
                        for j in 0..<inner { r[offset + j] += Double(xrow[j]) }
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: result.map { Float($0) })
    }

    /// `sum(x, toShape: shape)` when `shape` is 1 on leading axes and equal to `x`'s after them (a bias
    /// gradient over rows): rows added as vectors in Float blocks of 64, the blocks in Double, columns
    /// over the cores.
    static func sumLeadingAxes(_ x: Tensor, keeping shape: [Int]) -> Tensor {
        let columns = shape.reduce(1, *), rows = x.count / max(columns, 1)
        return Tensor(shape: shape) { out in
            x.withUnsafeBufferPointer { xp in
                let (base, o) = (xp.baseAddress!, out.baseAddress!)
                Parallel.forChunks(columns, grain: max(1, columns * 4096 / max(x.count, 1))) { range in
                    var total = [Double](repeating: 0, count: range.count), block = [Float](repeating: 0, count: range.count)
                    var row = 0
                    while row < rows {
                        let end = min(rows, row + 64)
                        for j in 0..<range.count { block[j] = 0 }
                        for r in row..<end {
                            let source = base + r * columns + range.lowerBound
                            for j in 0..<range.count { block[j] += source[j] }
                        }
                        for j in 0..<range.count { total[j] += Double(block[j]) }
                        row = end
                    }
                    for j in 0..<range.count { o[range.lowerBound + j] = Float(total[j]) }
                }
            }
        }
    }

    /// Σ over axes 0 and 2 of `[B, C, R]` (R = the rest, flattened): the bias gradient of a
    /// convolution, `[C]`, channels spread over the cores.
    public static func sumOverBatchAndPositions(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 2, "sumOverBatchAndPositions: needs [B, C, …], got \(x.shape)")
        let (batch, channels) = (x.shape[0], x.shape[1])
        let rest = x.count / max(batch * channels, 1)
        return Tensor(shape: [channels]) { out in
            x.withUnsafeBufferPointer { xp in
                let base = xp.baseAddress!, o = out.baseAddress!
                Parallel.forChunks(channels, grain: max(1, channels * 4096 / max(x.count, 1))) { range in
                    for c in range {
                        var total: Float = 0
                        for b in 0..<batch { total += VectorMath.sum(base + (b * channels + c) * rest, count: rest) }
                        o[c] = total
                    }
                }
            }
        }
    }

    /// `a + b` with broadcasting.
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor { binary(.add, a, b) }

    /// `scale · x`.
    public static func scale(_ x: Tensor, by factor: Float) -> Tensor {
        Tensor(shape: x.shape, scalars: x.scalars.map { $0 * factor })
    }

    /// `y += alpha · x` in place (shapes must match).
    public static func accumulate(_ y: inout Tensor, _ x: Tensor, alpha: Float = 1) {
        precondition(y.shape == x.shape || y.count == x.count, "accumulate: shapes \(y.shape) and \(x.shape) differ")
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                let xv = xp.baseAddress!, yv = yp.baseAddress!
                Parallel.forChunks(x.count) { range in
                    if alpha == 1 { for i in range { yv[i] += xv[i] } } else { for i in range { yv[i] += alpha * xv[i] } }
                }
            }
        }
    }
}
