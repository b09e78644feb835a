// The Row LSTM's scan (PixelRNN §3.1) as one op with its pullback.
//
// Row i's gates are its input-to-state term plus a 1×3 convolution of row i − 1's hidden state;
// the cell continues row i − 1's cell at the same column. Composed from generic ops that is a
// strided slice, a convolution on a one-row image, a cell and a concatenation per row, with a
// full-size gradient buffer behind the slices. Here the states are kept channels last, one row of
// F (or 4F) per (batch item, column), with a zero column on each side of every batch item's row:
// each kernel tap is then a single GEMM over all of a row's pixels, shifted by one row of storage
// per column of offset, and the zero columns stand in for the convolution's padding.

import Autodiff
import Foundation
import Tensors

/// One image row's storage: per batch item W + 2 rows (a zero column each side), `[N, W + 2, ·]`.
struct PaddedRows {
    let batch: Int, height: Int, width: Int
    var perImageRow: Int { batch * (width + 2) }
    /// Storage row of pixel (i, j) of batch item n.
    func row(_ i: Int, _ n: Int, _ j: Int) -> Int { (i * batch + n) * (width + 2) + j + 1 }

    /// Runs `body(items)` for the batch items cut into one piece per worker (when the row is big enough).
    func forEachChunk(_ body: (Range<Int>) -> Void) {
        let pieces = batch * width >= 64 ? min(Parallel.workerCount, batch) : 1
        Parallel.forEach(pieces) { p in body((batch * p / pieces)..<(batch * (p + 1) / pieces)) }
    }
}

/// The Row LSTM's hidden state for every row. `gates` `[N, 4F, H, W]`: input-to-state
/// pre-activations, blocks o, f, i, g of F (turned channels last one image row at a time, in
/// cache). `state` `[3, 4F, F]`: the state-to-state kernel's taps, tap t meeting the row above at
/// column j + t − 1. Returns `[N, F, H, W]`.
public func rowLSTM(gates: Variable, state: Variable) -> Variable {
    precondition(gates.value.rank == 4 && gates.shape[1] % 4 == 0, "rowLSTM: gates \(gates.shape) need [N, 4F, H, W]")
    let (n, f, h, w) = (gates.shape[0], gates.shape[1] / 4, gates.shape[2], gates.shape[3])
    precondition(state.shape == [3, 4 * f, f], "rowLSTM: state weight \(state.shape) needs [3, \(4 * f), \(f)]")
    let layout = PaddedRows(batch: n, height: h, width: w)
    let stored = h * layout.perImageRow
    // Padding columns must stay zero in the hidden state (they are the convolution's padding).
    var activated = Tensor(shape: [stored, 4 * f]) { _ in }
    var cell = Tensor(shape: [stored, f]) { _ in }, cellTanh = Tensor(shape: [stored, f]) { _ in }
    var hidden = Tensor.zeros([stored, f])
    let weight = state.value
    gates.value.withUnsafeBufferPointer { gp in weight.withUnsafeBufferPointer { wp in
        activated.withUnsafeMutableBufferPointer { ap in cell.withUnsafeMutableBufferPointer { cp in
            cellTanh.withUnsafeMutableBufferPointer { tp in hidden.withUnsafeMutableBufferPointer { hp in
                let (g, wt, z, c, t, hd) = (gp.baseAddress!, wp.baseAddress!, ap.baseAddress!, cp.baseAddress!, tp.baseAddress!, hp.baseAddress!)
                for i in 0..<h {
                    layout.forEachChunk { items in
                        for b in items {
                            let target = z + layout.row(i, b, 0) * 4 * f
                            for c in 0..<(4 * f) {
                                let source = g + ((b * 4 * f + c) * h + i) * w
                                for j in 0..<w { target[j * 4 * f + c] = source[j] }
                            }
                        }
                        if i > 0 {
                            // The chunk's pixels and the padding between them: rows first ..< last of image row i.
                            let first = layout.row(i, items.lowerBound, 0), last = layout.row(i, items.upperBound - 1, w - 1) + 1
                            for tap in 0..<3 {
                                Kernels.gemmSerial(transposeB: true, m: last - first, n: 4 * f, k: f,
                                                   a: hd + (first - layout.perImageRow + tap - 1) * f, lda: f, b: wt + tap * 4 * f * f, ldb: f,
                                                   beta: 1, c: z + first * 4 * f, ldc: 4 * f)
                            }
                        }
                        // In place: the kernel reads a lane's four gates before it writes their activations.
                        for b in items {
                            for j in 0..<w {
                                let r = layout.row(i, b, j)
                                Kernels.lstmCellForward(count: f, gates: z + r * 4 * f, previous: i > 0 ? c + (r - layout.perImageRow) * f : nil,
                                                        activated: z + r * 4 * f, cell: c + r * f, cellTanh: t + r * f, hidden: hd + r * f)
                            }
                        }
                    }
                }
            } }
        } }
    } }
    /// Runs `body(storage row, output offset of channel 0)` for every pixel, batch items over the cores.
    func forEachPixel(_ body: (Int, Int) -> Void) {
        Parallel.forEach(n) { b in for i in 0..<h { for j in 0..<w { body(layout.row(i, b, j), (b * f * h + i) * w + j) } } }
    }
    let output = Tensor(shape: [n, f, h, w]) { out in
        hidden.withUnsafeBufferPointer { hp in
            let (o, hd) = (out.baseAddress!, hp.baseAddress!)
            forEachPixel { r, offset in for c in 0..<f { o[offset + c * h * w] = hd[r * f + c] } }
        }
    }
    return Variable(output, parents: [gates, state]) { gradient in
        // dz's padding rows must stay zero (the taps read them); dHidden's collect sums nobody reads.
        var dHidden = Tensor.zeros([stored, f])
        var dz = Tensor.zeros([stored, 4 * f])
        var dCell = Tensor.zeros([stored, f])
        var dGates = Tensor(shape: gates.shape) { _ in }
        var dWeight = Tensor.zeros([3, 4 * f, f])
        gradient.withUnsafeBufferPointer { gp in dHidden.withUnsafeMutableBufferPointer { dhp in
            let (dg, dh) = (gp.baseAddress!, dhp.baseAddress!)
            forEachPixel { r, offset in for c in 0..<f { dh[r * f + c] = dg[offset + c * h * w] } }
        } }
        weight.withUnsafeBufferPointer { wp in activated.withUnsafeBufferPointer { ap in cell.withUnsafeBufferPointer { cp in
            cellTanh.withUnsafeBufferPointer { tp in dHidden.withUnsafeMutableBufferPointer { dhp in dz.withUnsafeMutableBufferPointer { dzp in
                dCell.withUnsafeMutableBufferPointer { dcp in dGates.withUnsafeMutableBufferPointer { dgp in
                    let (wt, a, c, t) = (wp.baseAddress!, ap.baseAddress!, cp.baseAddress!, tp.baseAddress!)
                    let (dh, dzs, dCellAll, dgs) = (dhp.baseAddress!, dzp.baseAddress!, dcp.baseAddress!, dgp.baseAddress!)
                    for i in Swift.stride(from: h - 1, through: 0, by: -1) {
                        layout.forEachChunk { items in
                            let first = layout.row(i, items.lowerBound, 0), last = layout.row(i, items.upperBound - 1, w - 1) + 1
                            if i + 1 < h {
                                // Row i + 1's gate gradients through its taps: tap t put this row's column j into its column j − t + 1.
                                for tap in 0..<3 {
                                    Kernels.gemmSerial(m: last - first, n: f, k: 4 * f,
                                                       a: dzs + (first + layout.perImageRow - tap + 1) * 4 * f, lda: 4 * f,
                                                       b: wt + tap * 4 * f * f, ldb: f, beta: 1, c: dh + first * f, ldc: f)
                                }
                            }
                            for b in items {
                                for j in 0..<w {
                                    let r = layout.row(i, b, j), above = r - layout.perImageRow
                                    Kernels.lstmCellBackward(count: f, activated: a + r * 4 * f, cellTanh: t + r * f, previous: i > 0 ? c + above * f : nil,
                                                             hiddenGradient: dh + r * f, cellGradient: dCellAll + r * f, gatesGradient: dzs + r * 4 * f,
                                                             previousGradient: i > 0 ? dCellAll + above * f : nil)
                                }
                                let source = dzs + layout.row(i, b, 0) * 4 * f
                                for c in 0..<(4 * f) {
                                    let target = dgs + ((b * 4 * f + c) * h + i) * w
                                    for j in 0..<w { target[j] = source[j * 4 * f + c] }
                                }
                            }
                        }
                    }
                } }
            } } }
        } } }
        // Weight gradient, all rows at once: row i + 1's gate gradients against row i's states, tap t
        // shifted by t − 1 columns. Pairs that straddle two image rows meet zero gate-gradient padding.
        dz.withUnsafeBufferPointer { dzp in hidden.withUnsafeBufferPointer { hp in dWeight.withUnsafeMutableBufferPointer { dwp in
            let span = stored - layout.perImageRow - 2
            for tap in 0..<3 where span > 0 {
                Kernels.gemm(transposeA: true, m: 4 * f, n: f, k: span, a: dzp.baseAddress! + (layout.perImageRow + 1) * 4 * f, lda: 4 * f,
                             b: hp.baseAddress! + tap * f, ldb: f, beta: 0, c: dwp.baseAddress! + tap * 4 * f * f, ldc: f)
            }
        } } }
        gates.accumulate(dGates)
        state.accumulate(dWeight)
    }
}
