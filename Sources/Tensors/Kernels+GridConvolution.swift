import Foundation

// Convolutions that read and write the padded grid itself, for a stack of same-size layers (PixelCNN's
// residual blocks and 1×1 head): the activations stay in one zero-padded, channel-major layout
// (`ImageGrid`, `[C, total]`) from the first block to the head, so no layer pads its input or
// extracts its output. Each tile of columns takes the ReLU of the input it reads, starts from bias and
// residual, adds its taps (one `TapProduct` on AVX2, else a GEMM per tap) and, while it is in cache,
// zeroes the padding positions again (the next layer reads them as zero padding). 3-wide kernels on
// AVX2 go by Winograd's F(4, 3) along rows instead (`Kernels+RowWinograd.swift`).
//
// Invariant: every grid tensor, value or gradient, is zero at the padding positions. Gradients keep
// it because `fromGrid` scatters into zeros and every pullback here zeroes what it writes there.

/// The layout of a stack of "same" convolutions whose taps stay within `taps`' reach: `[C, total]` per
/// tensor, image (b, y, x) at column `origin + (b·imageRows + y)·stride + x`, zeros elsewhere.
public struct ImageGrid: Sendable {
    let layout: PaddedGrid
    public var batch: Int { layout.batch }
    public var height: Int { layout.height }
    public var width: Int { layout.width }
    /// Columns per channel.
    public var total: Int { layout.total }
    /// The column of image position (0, 0, 0): the offset of the kernel centre.
    var origin: Int { layout.padTop * layout.stride + layout.padLeft }

    /// A grid for `batch` images of height×width with the padding `taps` (the widest kernel of the stack) reach.
    public init(batch: Int, height: Int, width: Int, taps: ConvolutionTaps) {
        layout = PaddedGrid(batch: batch, height: height, width: width, taps: taps)
    }

    /// Whether a convolution with `taps` reads nothing beyond this grid's padding.
    public func fits(_ taps: ConvolutionTaps) -> Bool {
        let own = PaddedGrid(batch: batch, height: height, width: width, taps: taps)
        return own.padTop <= layout.padTop && own.padBottom <= layout.padBottom && own.padLeft <= layout.padLeft
            && own.padRight <= layout.padRight
    }

    /// The flat offset (from an output column) that tap (row, column) of a kernel of `taps`' size reads.
    func offset(_ tap: (row: Int, column: Int), of taps: ConvolutionTaps) -> Int {
        (tap.row - taps.kernelHeight / 2) * layout.stride + tap.column - taps.kernelWidth / 2 + origin
    }

    /// The output columns at which every tap (flat `shifts` from the output column) reads inside the grid.
    func readableColumns(_ shifts: [Int]) -> Range<Int> {
        let lo = max(0, -(shifts.min() ?? 0)), hi = min(total, total - (shifts.max() ?? 0))
        return lo..<max(lo, hi)
    }

    /// Calls `body(start, end, valid)` for the maximal runs of columns in `start..<end` that are all
    /// image positions (`valid`) or all padding.
    @inline(__always) func forEachRun(_ start: Int, _ end: Int, _ body: (Int, Int, Bool) -> Void) {
        let (stride, columns, o) = (layout.stride, layout.columns, origin)
        var d = start
        while d < end {
            let q = d - o
            if q < 0 { let e = min(end, o); body(d, e, false); d = e; continue }
            if q >= columns { body(d, end, false); return }
            let row = q / stride, column = q - row * stride
            if row % layout.imageRows < layout.height && column < layout.width {
                let e = min(end, d - column + layout.width); body(d, e, true); d = e
            } else {
                let e = min(end, d - column + stride); body(d, e, false); d = e
            }
        }
    }
}

extension Kernels {
    /// `[B, C, H, W]` → grid `[C, total]`.
    public static func toGrid(_ x: Tensor, grid: ImageGrid) -> Tensor {
        precondition(x.rank == 4 && x.shape[0] == grid.batch && x.shape[2] == grid.height && x.shape[3] == grid.width,
                     "toGrid: input \(x.shape) does not match a grid of \(grid.batch)×\(grid.height)×\(grid.width)")
        return Tensor(shape: [x.shape[1], grid.total], scalars: grid.layout.pad(x, channels: x.shape[1]))
    }

    /// Grid `[C, total]` → `[B, C, H, W]` (the image positions only).
    public static func fromGrid(_ g: Tensor, grid: ImageGrid) -> Tensor {
        precondition(g.rank == 2 && g.shape[1] == grid.total, "fromGrid: \(g.shape) is not a [C, \(grid.total)] grid")
        return grid.layout.unpad(g.scalars, channels: g.shape[0])
    }

    /// Runs `body(worker, start, end)` over column tiles of `0..<count`, each worker taking a contiguous
    /// run of tiles (so that it can keep its own scratch and sums).
    static func forEachTileByWorker(_ count: Int, _ body: (Int, Int, Int) -> Void) {
        let (workers, size) = (Parallel.workerCount, convolutionColumnTile)
        let tiles = (count + size - 1) / size, perWorker = (tiles + workers - 1) / workers
        Parallel.forEach(workers) { worker in
            for tile in min(tiles, worker * perWorker)..<min(tiles, (worker + 1) * perWorker) {
                body(worker, tile * size, min(count, (tile + 1) * size))
            }
        }
    }

    /// The matrix a tile's GEMMs read for columns `start..<end` shifted by `shifts` (flat tap offsets
    /// from the output column): the input itself (leading dimension `total`), or with `relu` its ReLU
    /// copied into `scratch` (leading dimension `end − start + reach`), which stays in cache.
    /// Returns the base (the column `start + shifts.min()`) and the leading dimension.
    @inline(__always) static func tileInput(_ x: UnsafePointer<Float>, rows: Int, total: Int, start: Int, end: Int, shifts: Range<Int>,
                                            relu: Bool, scratch: UnsafeMutablePointer<Float>) -> (UnsafePointer<Float>, Int) {
        let first = start + shifts.lowerBound
        guard relu else { return (x + first, total) }
        let span = end - start + shifts.count - 1
        for i in 0..<rows {
            let (source, target) = (x + i * total + first, scratch + i * span)
            for j in 0..<span { target[j] = max(source[j], 0) }
        }
        return (UnsafePointer(scratch), span)
    }

    /// A grid convolution's weight gradient, `[taps, O, I]` → `[O, I, KH, KW]` times the mask.
    static func unpackTaps(_ packed: [Float], weightShape: [Int], mask: Tensor?, taps: ConvolutionTaps) -> Tensor {
        let (o, i, kh, kw) = (weightShape[0], weightShape[1], weightShape[2], weightShape[3])
        var weightGradient = Tensor.zeros(weightShape)
        for (t, tap) in taps.taps.enumerated() {
            for oc in 0..<o { for ic in 0..<i {
                let w = ((oc * i + ic) * kh + tap.row) * kw + tap.column
                weightGradient.scalars[w] = packed[(t * o + oc) * i + ic] * (mask?.scalars[w] ?? 1)
            } }
        }
        return weightGradient
    }

    /// What both passes of a grid convolution need of its taps: `W ⊙ M` packed per tap, each tap's flat
    /// shift from the output column, the span of those shifts, the output columns whose reads stay in the
    /// grid, and each shift from the first column a tile's input starts at (`shift − reach.lowerBound`).
    static func gridTaps(_ weight: Tensor, mask: Tensor?, taps: ConvolutionTaps, grid: ImageGrid)
        -> (packed: [Float], shifts: [Int], reach: Range<Int>, readable: Range<Int>, tileShifts: [Int]) {
        let shifts = taps.taps.map { grid.offset($0, of: taps) - grid.origin }
        let reach = (shifts.min() ?? 0)..<((shifts.max() ?? 0) + 1)
        return (packTaps(weight, mask: mask, taps: taps), shifts, reach, grid.readableColumns(shifts),
                shifts.map { $0 - reach.lowerBound })
    }

    /// A masked convolution on a grid, `[I, total]` → `[O, total]`: with `residual`, `h + conv(relu(h))`
    /// (a PixelCNN block, O = I); otherwise `conv(relu(x))` when `reluInput`, else `conv(x)`. Each tile
    /// takes the ReLU of the input columns it reads into cache, starts from bias and residual, adds its
    /// taps (one tap product, or a GEMM per tap), and zeroes the padding again.
    public static func gridConv2D(_ x: Tensor, weight: Tensor, mask: Tensor?, bias: Tensor?, taps: ConvolutionTaps,
                                  grid: ImageGrid, reluInput: Bool, residual: Bool) -> Tensor {
        let (outChannels, inChannels, total) = (weight.shape[0], weight.shape[1], grid.total)
        precondition(x.rank == 2 && x.shape == [inChannels, total], "gridConv2D: input \(x.shape) is not a [\(inChannels), \(total)] grid")
        precondition(!residual || outChannels == inChannels, "gridConv2D: a residual convolution needs as many outputs as inputs, not \(weight.shape)")
        precondition(grid.fits(taps), "gridConv2D: a \(taps.kernelHeight)×\(taps.kernelWidth) kernel reaches beyond the grid's padding")
        if let winograd = RowWinograd(weight: weight, mask: mask, taps: taps, grid: grid) {
            return winogradGridConv2D(x, winograd, bias: bias, reluInput: reluInput, residual: residual)
        }
        let (packed, shifts, reach, readable, tileShifts) = gridTaps(weight, mask: mask, taps: taps, grid: grid)
        let product = TapProduct(packedTaps: packed, taps: shifts.count, outputs: outChannels, inputs: inChannels)
        let biases = bias?.scalars ?? [Float](repeating: 0, count: outChannels)
        let scratchSize = reluInput ? inChannels * (convolutionColumnTile + reach.count) : 0
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Parallel.workerCount * scratchSize)
        defer { scratch.deallocate() }
        return Tensor(shape: [outChannels, total]) { out in
            packed.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in tileShifts.withUnsafeBufferPointer { sp in
                let (w, y, h) = (wp.baseAddress!, out.baseAddress!, xp.baseAddress!)
                forEachTileByWorker(total) { worker, c0, c1 in
                    // Output column d reads input column d + shift; columns whose reads would leave the grid
                    // are padding and stay zero.
                    let (lo, hi) = (max(c0, readable.lowerBound), min(c1, readable.upperBound))
                    // The input columns the taps read, ReLU'd into this worker's scratch first: a residual
                    // block's start below then finds the same columns in cache.
                    let input = hi > lo && !shifts.isEmpty
                        ? tileInput(h, rows: inChannels, total: total, start: lo, end: hi, shifts: reach, relu: reluInput,
                                    scratch: scratch + worker * scratchSize) : nil
                    // Image columns start at bias (plus residual), padding at zero; every tap then adds to them.
                    // (Runs outermost: finding them takes divisions, the same for every channel.)
                    grid.forEachRun(c0, c1) { s, e, valid in
                        for o in 0..<outChannels {
                            let (row, v, src) = (y + o * total, biases[o], h + o * total)
                            switch (valid, residual) {
                            case (false, _): (row + s).initialize(repeating: 0, count: e - s)
                            case (true, true): for d in s..<e { row[d] = v + src[d] }
                            case (true, false): (row + s).initialize(repeating: v, count: e - s)
                            }
                        }
                    }
                    guard let input else { return }
                    let (b, ldb) = input
                    if let product {
                        product.accumulate(input: b, inputLd: ldb, shifts: sp.baseAddress!, output: y + lo, outputLd: total, columns: hi - lo)
                    } else {
                        for (t, shift) in tileShifts.enumerated() {
                            gemmSerial(m: outChannels, n: hi - lo, k: inChannels, a: w + t * outChannels * inChannels, lda: inChannels,
                                       b: b + shift, ldb: ldb, beta: 1, c: y + lo, ldc: total)
                        }
                    }
                    // The padding columns the taps wrote are zeroed again.
                    grid.forEachRun(lo, hi) { s, e, valid in
                        guard !valid else { return }
                        for o in 0..<outChannels { (y + o * total + s).initialize(repeating: 0, count: e - s) }
                    }
                }
            } } }
        }
    }

    /// Gradients of `gridConv2D` with respect to its input (when asked), weight (already masked) and bias,
    /// given the output gradient `gradient` (`[O, total]`, zero at padding).
    public static func gridConv2DBackward(_ gradient: Tensor, input x: Tensor, weight: Tensor, mask: Tensor?,
                                          taps: ConvolutionTaps, grid: ImageGrid, reluInput: Bool, residual: Bool,
                                          needsInputGradient: Bool = true) -> (input: Tensor?, weight: Tensor, bias: Tensor) {
        let (outChannels, inChannels, total) = (weight.shape[0], weight.shape[1], grid.total)
        precondition(gradient.shape == [outChannels, total], "gridConv2DBackward: gradient \(gradient.shape) is not [\(outChannels), \(total)]")
        if let winograd = RowWinograd(weight: weight, mask: mask, taps: taps, grid: grid) {
            return winogradGridConv2DBackward(gradient, input: x, winograd, mask: mask, weightShape: weight.shape, reluInput: reluInput,
                                              residual: residual, needsInputGradient: needsInputGradient)
        }
        let (packed, shifts, reach, readable, tileShifts) = gridTaps(weight, mask: mask, taps: taps, grid: grid)
        let (lo, hi) = (readable.lowerBound, readable.upperBound)
        // The input gradient is the same kind of product with each tap's weights transposed and its
        // shift reversed: input column d reads output column d − shift_t, i.e. `reach.max − shift_t`
        // on from column d − reach.max.
        let product = needsInputGradient
            ? TapProduct(packedTaps: packed, taps: shifts.count, outputs: outChannels, inputs: inChannels, transposed: true) : nil
        let (highest, lowest) = (reach.upperBound - 1, reach.lowerBound)
        let reversedShifts = shifts.map { highest - $0 }
        let workers = Parallel.workerCount
        let scratchSize = reluInput ? inChannels * (convolutionColumnTile + reach.count) : 0
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: workers * scratchSize)
        defer { scratch.deallocate() }
        // Per worker: the packed weight gradient, then the bias gradient.
        let share = packed.count + outChannels
        var partial = [Float](repeating: 0, count: workers * share)
        var inputScalars = needsInputGradient ? [Float](unsafeUninitializedCapacity: inChannels * total) { _, n in n = inChannels * total } : []
        gradient.withUnsafeBufferPointer { gp in packed.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in
            partial.withUnsafeMutableBufferPointer { pp in inputScalars.withUnsafeMutableBufferPointer { ip in
                reversedShifts.withUnsafeBufferPointer { rp in tileShifts.withUnsafeBufferPointer { tp in
                let (g, w, h, dx) = (gp.baseAddress!, wp.baseAddress!, xp.baseAddress!, ip.baseAddress)
                // Per tile, while its gradient columns are in cache: this worker's share of every tap's
                // weight gradient (into its own sum), then the input gradient.
                forEachTileByWorker(total) { worker, d0, d1 in
                    let dw = pp.baseAddress! + worker * share, db = dw + packed.count
                    for o in 0..<outChannels { db[o] += VectorMath.sum(g + o * total + d0, count: d1 - d0) }
                    // dW_t += g[:, q] · input[:, q + shift_t]ᵀ over this tile's readable output columns q.
                    let (q0, q1) = (max(d0, lo), min(d1, hi))
                    if q1 > q0 {
                        let (b, ldb) = tileInput(h, rows: inChannels, total: total, start: q0, end: q1, shifts: reach, relu: reluInput,
                                                 scratch: scratch + worker * scratchSize)
                        if !TapProduct.accumulateWeightGradient(outputs: outChannels, inputs: inChannels, taps: shifts.count,
                                                                 gradient: g + q0, gradientLd: total, input: b, inputLd: ldb,
                                                                 shifts: tp.baseAddress!, columns: q1 - q0, into: dw) {
                            for (t, shift) in tileShifts.enumerated() {
                                gemmSerial(transposeB: true, m: outChannels, n: inChannels, k: q1 - q0, a: g + q0, lda: total,
                                           b: b + shift, ldb: ldb, beta: 1, c: dw + t * outChannels * inChannels, ldc: inChannels)
                            }
                        }
                    }
                    guard let dx else { return }
                    // Input column d receives tap t's weights times the gradient at output column d − shift_t
                    // (for columns a..<b, zeroed first, then one GEMM per tap over the readable output columns).
                    func perTap(_ a: Int, _ b: Int) {
                        guard b > a else { return }
                        for i in 0..<inChannels { (dx + i * total + a).initialize(repeating: 0, count: b - a) }
                        for (t, shift) in shifts.enumerated() {
                            let (q0, q1) = (max(lo, a - shift), min(hi, b - shift))
                            guard q1 > q0 else { continue }
                            gemmSerial(transposeA: true, m: inChannels, n: q1 - q0, k: outChannels, a: w + t * outChannels * inChannels,
                                       lda: inChannels, b: g + q0, ldb: total, beta: 1, c: dx + q0 + shift, ldc: total)
                        }
                    }
                    // Where every tap's output column is readable, one product (written, not added); the
                    // tile's ends per tap.
                    let (s0, s1) = (max(d0, lo + highest), min(d1, hi + lowest))
                    if let product, s1 > s0 {
                        perTap(d0, s0)
                        product.accumulate(input: g + s0 - highest, inputLd: total, shifts: rp.baseAddress!, output: dx + s0,
                                           outputLd: total, columns: s1 - s0, overwrite: true)
                        perTap(s1, d1)
                    } else {
                        perTap(d0, d1)
                    }
                    grid.forEachRun(d0, d1) { s, e, valid in
                        for i in 0..<inChannels {
                            let (row, gate, through) = (dx + i * total, h + i * total, g + i * total)
                            guard valid else { (row + s).initialize(repeating: 0, count: e - s); continue }
                            switch (reluInput, residual) {
                            case (true, true): for d in s..<e { row[d] = (gate[d] > 0 ? row[d] : 0) + through[d] }
                            case (true, false): for d in s..<e { row[d] = gate[d] > 0 ? row[d] : 0 }
                            case (false, true): for d in s..<e { row[d] += through[d] }
                            case (false, false): break
                            }
                        }
                    }
                }
            } } } }
        } } }
        var sums = [Float](partial[0..<share])
        for worker in 1..<workers { for j in 0..<share { sums[j] += partial[worker * share + j] } }
        let weightGradient = unpackTaps([Float](sums[0..<packed.count]), weightShape: weight.shape, mask: mask, taps: taps)
        let inputGradient = needsInputGradient ? Tensor(shape: [inChannels, total], scalars: inputScalars) : nil
        return (inputGradient, weightGradient, Tensor(shape: [outChannels], scalars: [Float](sums[packed.count...])))
    }
}
