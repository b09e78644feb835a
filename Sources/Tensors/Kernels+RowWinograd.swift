import CKernels
import Foundation

// Grid convolutions of 3-wide kernels by Winograd's minimal filtering along each row, F(4, 3)
// (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks", the 1-D case): four
// outputs of a 3-tap row correlation from six inputs take six products instead of twelve. A masked
// 3×3 kernel is one 3-tap filter per kernel row it uses (a type-B mask: the row above and the centre
// row, whose right tap the mask zeroes), so a tile of four outputs costs 6·rows products per input
// and output channel against the 5 of direct taps per output: 12 per 4 outputs instead of 20.
//
// In the transform domain each of the six points ξ is a `TapProduct` whose taps are kernel rows and
// whose shifts are whole transformed rows (`tiles` columns each): M_ξ = Σ_t U_ξ,t · V_ξ(row + s_t),
// with V = Bᵀ·d per tile of six inputs, U = G·w per kernel row, and the outputs Aᵀ·M. The work runs in
// chunks of grid rows whose transformed tiles stay in L2; transforms absorb the ReLU of the input,
// the bias and residual (forward) and the ReLU gate and residual (input gradient), as the per-tap path
// does in its tile loops. Padding keeps the grid invariant: zero at every padding position.
//
// Used where it is exact and the AVX2 products run: 3 columns wide, image width a multiple of 4,
// a padding column on each side, channel counts that are multiples of 4.

/// F(4, 3) along grid rows for one masked 3-wide grid convolution: the transformed weights and the
/// row geometry.
struct RowWinograd {
    static let outputsPerTile = 4, points = 6
    /// G (6×3): a kernel row's three taps → the six transform points.
    static let g: [[Float]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                               [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
    /// Grid rows per chunk: for 28 columns and 64 channels, a chunk's forward planes (V for 17 rows,
    /// M for 16: 355 KB) stay in L2, and its 112 product columns are 7 blocks of 16.
    static let chunkRows = 16

    let outputs: Int, inputs: Int
    /// The kernel rows that have taps, ascending, and each one's grid-row shift from the output row.
    let kernelRows: [Int], rowShifts: [Int]
    /// Tiles of four columns per image row.
    let tiles: Int
    let grid: ImageGrid
    let taps: ConvolutionTaps
    /// U[ξ][t][o][i]: `W ⊙ M` of kernel row t through G.
    let transformed: [Float]

    /// nil where the transform does not apply or the AVX2 products cannot run.
    init?(weight: Tensor, mask: Tensor?, taps: ConvolutionTaps, grid: ImageGrid) {
        let (o, i) = (weight.shape[0], weight.shape[1])
        let layout = grid.layout
        guard TapProduct.isAvailable, taps.kernelWidth == 3, !taps.taps.isEmpty, o % 4 == 0, i % 4 == 0,
              grid.width % Self.outputsPerTile == 0, grid.width <= 4096, layout.padLeft >= 1, layout.padRight >= 1, grid.fits(taps) else { return nil }
        let rows = Array(Set(taps.taps.map(\.row))).sorted()
        guard rows.count * max(o, i) <= Int(SERIATIM_TAP_MAXIMUM_DEPTH) else { return nil }
        (outputs, inputs, kernelRows, tiles, self.grid, self.taps) = (o, i, rows, grid.width / Self.outputsPerTile, grid, taps)
        rowShifts = rows.map { $0 - taps.kernelHeight / 2 }
        let (kh, kw, planes) = (taps.kernelHeight, taps.kernelWidth, rows.count * o * i)
        let masked = mask.map { Kernels.binary(.multiply, weight, $0) } ?? weight
        transformed = [Float](unsafeUninitializedCapacity: Self.points * planes) { u, count in
            u.initialize(repeating: 0)
            masked.withUnsafeBufferPointer { w in
                for tap in taps.taps {
                    let t = rows.firstIndex(of: tap.row)!
                    for xi in 0..<Self.points {
                        let (factor, target) = (Self.g[xi][tap.column], u.baseAddress! + xi * planes + t * o * i)
                        guard factor != 0 else { continue }
                        for j in 0..<(o * i) { target[j] += factor * w[(j * kh + tap.row) * kw + tap.column] }
                    }
                }
            }
            count = Self.points * planes
        }
    }

    var gridRows: Int { (grid.batch - 1) * grid.layout.imageRows + grid.height }
    /// Grid rows a chunk reads beyond its own: the span of the row shifts.
    var extraRows: Int { rowShifts.last! - rowShifts.first! }
    /// The column of grid row g's first image position.
    func rowStart(_ g: Int) -> Int { grid.origin + g * grid.layout.stride }
    func isImageRow(_ g: Int) -> Bool { g % grid.layout.imageRows < grid.height }

    /// Whether the AVX-512 transforms take two rows per call (rows of 4…7 tiles).
    var pairsRows: Bool { seriatim_winograd_row_pairs(Int32(tiles)) != 0 }

    /// Fills grid rows `first ..< first + rows` of every channel of a `[C, total]` tensor: `body(c, r, row, pair)`
    /// writes the image columns of row `first + r` of channel c at `row`, and with `pair` those of the next
    /// row too (`grid.layout.stride` on; offered where both are image rows and `pairs`); padding rows and the
    /// padding columns after each row are zeroed.
    func writeRows(_ y: UnsafeMutablePointer<Float>, channels: Int, first: Int, rows: Int, pairs: Bool = false,
                   _ body: (Int, Int, UnsafeMutablePointer<Float>, Bool) -> Void) {
        let (total, stride, width) = (grid.total, grid.layout.stride, grid.width)
        for c in 0..<channels {
            var r = 0
            while r < rows {
                let g = first + r, start = rowStart(g)
                let row = y + c * total + start, end = min(stride, total - start)
                guard isImageRow(g) else { row.initialize(repeating: 0, count: end); r += 1; continue }
                let pair = pairs && r + 1 < rows && isImageRow(g + 1)
                body(c, r, row, pair)
                (row + width).initialize(repeating: 0, count: end - width)
                if pair { (row + stride + width).initialize(repeating: 0, count: min(stride, total - start - stride) - width) }
                r += pair ? 2 : 1
            }
        }
    }

    /// One product per transform point, over kernel rows.
    func products(transposed: Bool) -> [TapProduct] {
        let planes = kernelRows.count * outputs * inputs
        return (0..<Self.points).map { xi in
            TapProduct(packedTaps: Array(transformed[xi * planes..<(xi + 1) * planes]), taps: kernelRows.count,
                       outputs: outputs, inputs: inputs, transposed: transposed)!
        }
    }

    /// Floats per transform plane of `channels` rows of `rows·tiles` points: the C transforms write
    /// whole blocks of 8 tiles, up to 7 points past a plane's last row.
    func plane(channels: Int, rows: Int) -> Int { channels * rows * tiles + 8 }

    /// V for `rows` grid rows from `first` into six planes of `[channels, rows·tiles]`: Bᵀ times the six
    /// inputs x[4k − 1 … 4k + 4] of each tile (their ReLU with `relu`); rows outside the grid are zero.
    /// Rows in order: a row's spill past its last tile is overwritten by the next.
    func transformInput(_ x: UnsafePointer<Float>, channels: Int, first: Int, rows: Int, relu: Bool, into v: UnsafeMutablePointer<Float>) {
        let (total, plane, count) = (grid.total, plane(channels: channels, rows: rows), gridRows)
        let pairs = pairsRows
        for c in 0..<channels {
            let prefetch = c + 1 < channels ? total : 0
            var r = 0
            while r < rows {
                let (g, out) = (first + r, v + (c * rows + r) * tiles)
                guard g >= 0 && g < count else {
                    for xi in 0..<Self.points { (out + xi * plane).initialize(repeating: 0, count: tiles) }
                    r += 1
                    continue
                }
                let row = x + c * total + rowStart(g) - 1
                if pairs && r + 1 < rows && g + 1 < count {
                    // Both rows in one AVX-512 call (rows of 4…7 tiles).
                    seriatim_winograd_input_pair(row, grid.layout.stride, Int32(tiles), relu ? 1 : 0, out, plane, prefetch)
                    r += 2
                } else {
                    seriatim_winograd_input(row, Int32(tiles), relu ? 1 : 0, out, plane, prefetch)
                    r += 1
                }
            }
        }
    }
}

extension Kernels {
    /// Runs `body(worker, start, end)` over chunks of `size` of `0..<count`, each worker taking a contiguous run.
    static func forEachChunkByWorker(_ count: Int, size: Int, _ body: (Int, Int, Int) -> Void) {
        let workers = Parallel.workerCount
        let chunks = (count + size - 1) / size, perWorker = (chunks + workers - 1) / workers
        Parallel.forEach(workers) { worker in
            for chunk in min(chunks, worker * perWorker)..<min(chunks, (worker + 1) * perWorker) {
                body(worker, chunk * size, min(count, (chunk + 1) * size))
            }
        }
    }

    /// Zeroes `[C, total]` outside the grid rows' columns (before the first row, after the last).
    static func zeroOutsideRows(_ y: UnsafeMutablePointer<Float>, channels: Int, winograd w: RowWinograd) {
        let (total, head, tail) = (w.grid.total, w.rowStart(0), min(w.grid.total, w.rowStart(w.gridRows)))
        for c in 0..<channels {
            (y + c * total).initialize(repeating: 0, count: head)
            (y + c * total + tail).initialize(repeating: 0, count: total - tail)
        }
    }

    /// `gridConv2D` by row Winograd: `[I, total]` → `[O, total]`.
    static func winogradGridConv2D(_ x: Tensor, _ w: RowWinograd, bias: Tensor?, reluInput: Bool, residual: Bool) -> Tensor {
        let (outChannels, inChannels, total, tiles, points) = (w.outputs, w.inputs, w.grid.total, w.tiles, RowWinograd.points)
        let products = w.products(transposed: false)
        let first = w.rowShifts.first!
        let shifts = w.rowShifts.map { ($0 - first) * tiles }
        let biases = bias?.scalars ?? [Float](repeating: 0, count: outChannels)
        let chunk = RowWinograd.chunkRows
        let inputSize = points * w.plane(channels: inChannels, rows: chunk + w.extraRows), outputSize = points * w.plane(channels: outChannels, rows: chunk)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Parallel.workerCount * (inputSize + outputSize))
        defer { scratch.deallocate() }
        let (pairs, stride) = (w.pairsRows, w.grid.layout.stride)
        return Tensor(shape: [outChannels, total]) { out in
            x.withUnsafeBufferPointer { xp in shifts.withUnsafeBufferPointer { sp in
                let (h, y) = (xp.baseAddress!, out.baseAddress!)
                forEachChunkByWorker(w.gridRows, size: chunk) { worker, g0, g1 in
                    let rows = g1 - g0, vRows = rows + w.extraRows
                    let v = scratch + worker * (inputSize + outputSize), m = v + inputSize
                    w.transformInput(h, channels: inChannels, first: g0 + first, rows: vRows, relu: reluInput, into: v)
                    let (vPlane, mPlane) = (w.plane(channels: inChannels, rows: vRows), w.plane(channels: outChannels, rows: rows))
                    for xi in 0..<points {
                        products[xi].accumulate(input: v + xi * vPlane, inputLd: vRows * tiles, shifts: sp.baseAddress!,
                                                output: m + xi * mPlane, outputLd: rows * tiles, columns: rows * tiles, overwrite: true)
                    }
                    // Aᵀ·M per tile, plus bias and residual; padding rows and columns zero.
                    w.writeRows(y, channels: outChannels, first: g0, rows: rows, pairs: pairs) { o, r, row, pair in
                        let (points, input) = (m + (o * rows + r) * tiles, residual ? h + (row - y) : nil)
                        if pair {
                            seriatim_winograd_output_pair(points, mPlane, Int32(tiles), biases[o], input, row, stride)
                        } else {
                            seriatim_winograd_output(points, mPlane, Int32(tiles), biases[o], input, row)
                        }
                    }
                }
                zeroOutsideRows(y, channels: outChannels, winograd: w)
            } }
        }
    }

    /// `gridConv2DBackward` by row Winograd: gradients with respect to the input (when asked), the
    /// weight (masked) and the bias.
    static func winogradGridConv2DBackward(_ gradient: Tensor, input x: Tensor, _ w: RowWinograd, mask: Tensor?, weightShape: [Int],
                                           reluInput: Bool, residual: Bool, needsInputGradient: Bool) -> (input: Tensor?, weight: Tensor, bias: Tensor) {
        let (outChannels, inChannels, total, tiles, points) = (w.outputs, w.inputs, w.grid.total, w.tiles, RowWinograd.points)
        let transposed = needsInputGradient ? w.products(transposed: true) : []
        let (first, last) = (w.rowShifts.first!, w.rowShifts.last!)
        let shifts = w.rowShifts.map { ($0 - first) * tiles }, reversed = w.rowShifts.map { (last - $0) * tiles }
        let chunk = RowWinograd.chunkRows
        let (nRows, planes) = (w.kernelRows.count, w.kernelRows.count * outChannels * inChannels)
        let inputSize = points * w.plane(channels: inChannels, rows: chunk + w.extraRows)
        let gradientSize = points * w.plane(channels: outChannels, rows: chunk + w.extraRows), backSize = points * w.plane(channels: inChannels, rows: chunk)
        let scratchSize = inputSize + gradientSize + backSize
        let workers = Parallel.workerCount, (pairs, stride) = (w.pairsRows, w.grid.layout.stride)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: workers * scratchSize)
        defer { scratch.deallocate() }
        // Per worker: dU[ξ][t][o][i], then the bias gradient.
        let share = points * planes + outChannels
        var partial = [Float](repeating: 0, count: workers * share)
        var inputScalars = needsInputGradient ? [Float](unsafeUninitializedCapacity: inChannels * total) { _, n in n = inChannels * total } : []
        gradient.withUnsafeBufferPointer { gp in x.withUnsafeBufferPointer { xp in
            partial.withUnsafeMutableBufferPointer { pp in inputScalars.withUnsafeMutableBufferPointer { ip in
                shifts.withUnsafeBufferPointer { sp in reversed.withUnsafeBufferPointer { rp in
                let (dy, h, dx) = (gp.baseAddress!, xp.baseAddress!, ip.baseAddress)
                forEachChunkByWorker(w.gridRows, size: chunk) { worker, g0, g1 in
                    let rows = g1 - g0, extendedRows = rows + w.extraRows
                    let v = scratch + worker * scratchSize, dm = v + inputSize, dv = dm + gradientSize
                    let du = pp.baseAddress! + worker * share, db = du + points * planes
                    // dM = A·dy for output rows g0 − last ..< g1 − first (the input gradient of rows g0..<g1
                    // reads them all); rows outside the grid are zero. The chunk's own rows' sums are its
                    // share of the bias gradient (padding columns are zero).
                    let mPlane = w.plane(channels: outChannels, rows: extendedRows)
                    let inGrid = 0..<w.gridRows, own = g0..<g1
                    for o in 0..<outChannels {
                        var r = 0
                        while r < extendedRows {
                            let (g, target) = (g0 - last + r, dm + (o * extendedRows + r) * tiles)
                            guard inGrid.contains(g) else {
                                for xi in 0..<points { (target + xi * mPlane).initialize(repeating: 0, count: tiles) }
                                r += 1
                                continue
                            }
                            let row = dy + o * total + w.rowStart(g)
                            if pairs && r + 1 < extendedRows && inGrid.contains(g + 1) {
                                seriatim_winograd_gradient_pair(row, stride, Int32(tiles), target, mPlane,
                                                                own.contains(g) ? db + o : nil, own.contains(g + 1) ? db + o : nil)
                                r += 2
                            } else {
                                seriatim_winograd_gradient(row, Int32(tiles), target, mPlane, own.contains(g) ? db + o : nil)
                                r += 1
                            }
                        }
                    }
                    // dU_ξ,t += dM_ξ(own rows) · V_ξ(row + s_t)ᵀ.
                    w.transformInput(h, channels: inChannels, first: g0 + first, rows: extendedRows, relu: reluInput, into: v)
                    let vPlane = w.plane(channels: inChannels, rows: extendedRows)
                    for xi in 0..<points {
                        let done = TapProduct.accumulateWeightGradient(
                            outputs: outChannels, inputs: inChannels, taps: nRows, gradient: dm + xi * mPlane + last * tiles,
                            gradientLd: extendedRows * tiles, input: v + xi * vPlane, inputLd: extendedRows * tiles,
                            shifts: sp.baseAddress!, columns: rows * tiles, into: du + xi * planes)
                        precondition(done, "RowWinograd: the weight-gradient kernel refused a product it was built for")
                    }
                    guard let dx else { return }
                    // dV_ξ(rows g0..<g1) = Σ_t U_ξ,tᵀ · dM_ξ(row − s_t); then dx = B·dV per tile, overlapping tiles added.
                    let dvPlane = w.plane(channels: inChannels, rows: rows)
                    for xi in 0..<points {
                        transposed[xi].accumulate(input: dm + xi * mPlane, inputLd: extendedRows * tiles, shifts: rp.baseAddress!,
                                                  output: dv + xi * dvPlane, outputLd: rows * tiles, columns: rows * tiles, overwrite: true)
                    }
                    w.writeRows(dx, channels: inChannels, first: g0, rows: rows, pairs: pairs) { i, r, row, pair in
                        let offset = row - dx  // the same position in the input and the output gradient
                        let (points, gate, back, prefetch) = (dv + (i * rows + r) * tiles, reluInput ? h + offset : nil,
                                                              residual ? dy + offset : nil, i + 1 < inChannels ? total : 0)
                        if pair {
                            seriatim_winograd_input_gradient_pair(points, dvPlane, Int32(tiles), gate, back, row, stride, prefetch)
                        } else {
                            seriatim_winograd_input_gradient(points, dvPlane, Int32(tiles), gate, back, row, prefetch)
                        }
                    }
                }
                if let dx { zeroOutsideRows(dx, channels: inChannels, winograd: w) }
            } } } }
        } }
        var sums = [Float](partial[0..<share])
        for worker in 1..<workers { for j in 0..<share { sums[j] += partial[worker * share + j] } }
        // Each active tap's gradient, `[taps, O, I]` as the direct path packs it: Σ_ξ G[ξ][column] · dU[ξ][t of its row].
        let channelPairs = outChannels * inChannels
        var packed = [Float](repeating: 0, count: w.taps.taps.count * channelPairs)
        for (index, tap) in w.taps.taps.enumerated() {
            let t = w.kernelRows.firstIndex(of: tap.row)!
            for xi in 0..<points where RowWinograd.g[xi][tap.column] != 0 {
                let (factor, source) = (RowWinograd.g[xi][tap.column], xi * planes + t * channelPairs)
                for j in 0..<channelPairs { packed[index * channelPairs + j] += factor * sums[source + j] }
            }
        }
        let weightGradient = unpackTaps(packed, weightShape: weightShape, mask: mask, taps: w.taps)
        let inputGradient = needsInputGradient ? Tensor(shape: [inChannels, total], scalars: inputScalars) : nil
        return (inputGradient, weightGradient, Tensor(shape: [outChannels], scalars: [Float](sums[(points * planes)...])))
    }
}
