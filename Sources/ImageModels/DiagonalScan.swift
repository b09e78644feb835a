// The two scans of a Diagonal BiLSTM layer (PixelRNN §3.2) as one op with its pullback.
//
// Skewing the map (row i shifted right by i) turns each anti-diagonal of the image into a column;
// the LSTM then runs column by column, each state from the previous column's states at rows i − 1
// and i. Composed from generic ops that costs a skew and an unskew per direction, a slice, a
// convolution, a cell, a reshape and a concatenation per column, and it computes the half of
// every skewed column that lies off the image. Here the skewed map is never built: column k's
// pixels (the rows that hold one) are gathered straight from channels-last gates, kept compactly,
// one row of 4F per (image row, batch item), so that each state-to-state tap is one GEMM over
// contiguous rows, and the cores split every column's rows between them.

import Autodiff
import Foundation
import Tensors

/// Where skewed column k's pixels are: image rows `rows(k)`, pixel (i, k − i) of the image, or of the
/// width-mirrored image (i, W − 1 − k + i). Stored compactly: column k's row for (i, n) is
/// `row(k, i, n)`, rows of one image row consecutive over the batch.
struct DiagonalColumns {
    let batch: Int, height: Int, width: Int
    /// Column k's first compact row; one more entry at the end (the total).
    let start: [Int]

    init(batch: Int, height: Int, width: Int) {
        (self.batch, self.height, self.width) = (batch, height, width)
        var start = [0]
        for k in 0..<(width + height - 1) {
            let rows = max(0, k - width + 1)..<min(height, k + 1)
            start.append(start[k] + rows.count * batch)
        }
        self.start = start
    }

    var columns: Int { width + height - 1 }
    var total: Int { start[columns] }
    func rows(_ k: Int) -> Range<Int> { max(0, k - width + 1)..<min(height, k + 1) }
    func row(_ k: Int, _ i: Int, _ n: Int) -> Int { start[k] + (i - rows(k).lowerBound) * batch + n }
    /// The image column of skewed column k's row i.
    func pixelColumn(_ k: Int, _ i: Int, mirrored: Bool) -> Int { mirrored ? width - 1 - k + i : k - i }
    /// Skewed column of pixel (i, j).
    func column(_ i: Int, _ j: Int, mirrored: Bool) -> Int { mirrored ? width - 1 - j + i : i + j }

    /// The rows of `rows` whose neighbour `shift` rows up lies in `other` (a tap's rows), as bounds.
    func overlap(_ rows: Range<Int>, _ other: Range<Int>, _ shift: Int) -> (Int, Int) {
        (max(rows.lowerBound, other.lowerBound + shift), min(rows.upperBound, other.upperBound + shift))
    }

    /// Runs `body(rows)` over `rows` cut into one contiguous piece per worker when the column is big enough.
    func forEachChunk(_ rows: Range<Int>, _ body: (Range<Int>) -> Void) {
        let pieces = rows.count * batch >= 64 ? min(Parallel.workerCount, rows.count) : 1
        Parallel.forEach(pieces) { p in
            body((rows.lowerBound + rows.count * p / pieces)..<(rows.lowerBound + rows.count * (p + 1) / pieces))
        }
    }
}

/// One direction's states, compact rows (see `DiagonalColumns`), kept for the pullback.
final class DiagonalScanStates {
    let features: Int
    /// Activated gates σ(o), σ(f), σ(i), tanh(g): `[rows, 4F]`.
    let activated: UnsafeMutablePointer<Float>
    let cell: UnsafeMutablePointer<Float>, cellTanh: UnsafeMutablePointer<Float>, hidden: UnsafeMutablePointer<Float>

    init(rows: Int, features: Int) {
        self.features = features
        activated = .allocate(capacity: 4 * rows * features)
        cell = .allocate(capacity: rows * features)
        cellTanh = .allocate(capacity: rows * features)
        hidden = .allocate(capacity: rows * features)
    }

    deinit { for p in [activated, cell, cellTanh, hidden] { p.deallocate() } }
}

extension DiagonalColumns {
    /// One direction's scan: gate pre-activations from `gates` (channels last, row stride `stride`,
    /// this direction's 4F block first), state-to-state `weight` `[2, 4F, F]` (tap 0: the state at
    /// row i − 1 of the previous column, tap 1: at row i).
    func scanForward(gates: UnsafePointer<Float>, stride: Int, weight: UnsafePointer<Float>, features f: Int,
                     mirrored: Bool) -> DiagonalScanStates {
        let states = DiagonalScanStates(rows: total, features: f)
        let (z, cell, cellTanh, hidden) = (states.activated, states.cell, states.cellTanh, states.hidden)
        for k in 0..<columns {
            let here = rows(k), before = k > 0 ? rows(k - 1) : 0..<0
            forEachChunk(here) { chunk in
                for i in chunk {
                    let j = pixelColumn(k, i, mirrored: mirrored)
                    for n in 0..<batch {
                        (z + row(k, i, n) * 4 * f).update(from: gates + ((n * height + i) * width + j) * stride, count: 4 * f)
                    }
                }
                // Tap 1: row i of the previous column; tap 0: row i − 1.
                for (tap, shift) in [(1, 0), (0, 1)] {
                    let (from, to) = overlap(chunk, before, shift)
                    guard from < to else { continue }
                    Kernels.gemmSerial(transposeB: true, m: (to - from) * batch, n: 4 * f, k: f,
                                       a: hidden + row(k - 1, from - shift, 0) * f, lda: f, b: weight + tap * 4 * f * f, ldb: f,
                                       beta: 1, c: z + row(k, from, 0) * 4 * f, ldc: 4 * f)
                }
                // In place: the kernel reads a lane's four gates before it writes their activations.
                for i in chunk {
                    for n in 0..<batch {
                        let r = row(k, i, n)
                        Kernels.lstmCellForward(count: f, gates: z + r * 4 * f, previous: i < before.upperBound ? cell + row(k - 1, i, n) * f : nil,
                                                activated: z + r * 4 * f, cell: cell + r * f, cellTanh: cellTanh + r * f, hidden: hidden + r * f)
                    }
                }
            }
        }
        return states
    }

    /// The pullback of `scanForward`: `dHidden` (compact rows, the gradient from outside the scan) is
    /// added to in place; writes the gate gradient rows into `dGates` (same layout as the gates) and
    /// adds to `dWeight`.
    func scanBackward(_ states: DiagonalScanStates, dHidden: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>,
                      dGates: UnsafeMutablePointer<Float>, stride: Int, dWeight: UnsafeMutablePointer<Float>, mirrored: Bool) {
        let f = states.features
        let dz = UnsafeMutablePointer<Float>.allocate(capacity: 4 * total * f)
        let dCell = UnsafeMutablePointer<Float>.allocate(capacity: total * f)
        defer { dz.deallocate(); dCell.deallocate() }
        dCell.initialize(repeating: 0, count: total * f)
        for k in Swift.stride(from: columns - 1, through: 0, by: -1) {
            let here = rows(k), after = k + 1 < columns ? rows(k + 1) : 0..<0, before = k > 0 ? rows(k - 1) : 0..<0
            forEachChunk(here) { chunk in
                // The next column's gate gradients reach these states through its taps: tap 1 from row i, tap 0 from row i + 1.
                for (tap, shift) in [(1, 0), (0, 1)] {
                    let (from, to) = overlap(chunk, after, -shift)
                    guard from < to else { continue }
                    Kernels.gemmSerial(m: (to - from) * batch, n: f, k: 4 * f, a: dz + row(k + 1, from + shift, 0) * 4 * f, lda: 4 * f,
                                       b: weight + tap * 4 * f * f, ldb: f, beta: 1, c: dHidden + row(k, from, 0) * f, ldc: f)
                }
                for i in chunk {
                    for n in 0..<batch {
                        let r = row(k, i, n), hasPrevious = i < before.upperBound
                        Kernels.lstmCellBackward(count: f, activated: states.activated + r * 4 * f, cellTanh: states.cellTanh + r * f,
                                                 previous: hasPrevious ? states.cell + row(k - 1, i, n) * f : nil, hiddenGradient: dHidden + r * f,
                                                 cellGradient: dCell + r * f, gatesGradient: dz + r * 4 * f,
                                                 previousGradient: hasPrevious ? dCell + row(k - 1, i, n) * f : nil)
                    }
                    let j = pixelColumn(k, i, mirrored: mirrored)
                    for n in 0..<batch {
                        (dGates + ((n * height + i) * width + j) * stride).update(from: dz + row(k, i, n) * 4 * f, count: 4 * f)
                    }
                }
            }
        }
        // Weight gradient: Σ over columns of (gate gradients)ᵀ · (previous column's states), columns shared out.
        let workers = min(Parallel.workerCount, columns)
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * 8 * f * f)
        defer { partial.deallocate() }
        partial.initialize(repeating: 0, count: workers * 8 * f * f)
        Parallel.forEach(workers) { w in
            for k in Swift.stride(from: 1 + w, to: columns, by: workers) {
                let here = rows(k), before = rows(k - 1)
                for (tap, shift) in [(1, 0), (0, 1)] {
                    let (from, to) = overlap(here, before, shift)
                    guard from < to else { continue }
                    Kernels.gemmSerial(transposeA: true, m: 4 * f, n: f, k: (to - from) * batch, a: dz + row(k, from, 0) * 4 * f, lda: 4 * f,
                                       b: states.hidden + row(k - 1, from - shift, 0) * f, ldb: f,
                                       beta: 1, c: partial + (w * 2 + tap) * 4 * f * f, ldc: f)
                }
            }
        }
        for w in 0..<workers { for e in 0..<(8 * f * f) { dWeight[e] += partial[w * 8 * f * f + e] } }
    }
}

/// Both directions of a Diagonal BiLSTM layer. `gates` `[N, H, W, 8F]`: input-to-state
/// pre-activations, channels last, the left-to-right direction's o, f, i, g blocks of F and then
/// the right-to-left one's. `leftToRight` and `rightToLeft` `[2, 4F, F]`: state-to-state weights,
/// tap 0 for the state above (i − 1, j) and tap 1 for the state beside it, (i, j − 1) left to
/// right and (i, j + 1) right to left (whose cell the new cell also continues).
/// Returns `[N, F, H, W]`: the left-to-right state at (i, j) plus the right-to-left one at (i − 1, j),
/// so that no pixel sees itself or anything after it.
public func diagonalBiLSTM(gates: Variable, leftToRight: Variable, rightToLeft: Variable) -> Variable {
    precondition(gates.value.rank == 4 && gates.shape[3] % 8 == 0, "diagonalBiLSTM: gates \(gates.shape) need [N, H, W, 8F]")
    let (n, h, w, f) = (gates.shape[0], gates.shape[1], gates.shape[2], gates.shape[3] / 8)
    precondition(leftToRight.shape == [2, 4 * f, f] && rightToLeft.shape == [2, 4 * f, f],
                 "diagonalBiLSTM: state weights \(leftToRight.shape), \(rightToLeft.shape) need [2, \(4 * f), \(f)]")
    let layout = DiagonalColumns(batch: n, height: h, width: w)
    let weights = [leftToRight.value, rightToLeft.value]
    let states = gates.value.withUnsafeBufferPointer { g in
        (0..<2).map { d in
            weights[d].withUnsafeBufferPointer { wp in
                layout.scanForward(gates: g.baseAddress! + d * 4 * f, stride: 8 * f, weight: wp.baseAddress!, features: f, mirrored: d == 1)
            }
        }
    }
    /// Runs `body(hidden row of the left-to-right state at (i, j), of the right-to-left one at (i − 1, j) or nil, output offset)`
    /// for every output pixel, batch items over the cores; the output offset is that of channel 0.
    func forEachPixel(_ body: (Int, Int?, Int) -> Void) {
        Parallel.forEach(n) { b in
            for i in 0..<h {
                for j in 0..<w {
                    let left = layout.row(layout.column(i, j, mirrored: false), i, b)
                    let right = i > 0 ? layout.row(layout.column(i - 1, j, mirrored: true), i - 1, b) : nil
                    body(left, right, (b * f * h + i) * w + j)
                }
            }
        }
    }
    let output = Tensor(shape: [n, f, h, w]) { out in
        let (o, left, right) = (out.baseAddress!, states[0].hidden, states[1].hidden)
        forEachPixel { l, r, offset in
            for c in 0..<f { o[offset + c * h * w] = left[l * f + c] + (r.map { right[$0 * f + c] } ?? 0) }
        }
    }
    return Variable(output, parents: [gates, leftToRight, rightToLeft]) { gradient in
        let dHidden = (0..<2).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: layout.total * f) }
        defer { for p in dHidden { p.deallocate() } }
        // The right-to-left states of the last image row reach no output.
        for k in 0..<layout.columns where layout.rows(k).contains(h - 1) {
            (dHidden[1] + layout.row(k, h - 1, 0) * f).initialize(repeating: 0, count: n * f)
        }
        gradient.withUnsafeBufferPointer { g in
            let dg = g.baseAddress!
            forEachPixel { l, r, offset in
                for c in 0..<f { dHidden[0][l * f + c] = dg[offset + c * h * w] }
                if let r { for c in 0..<f { dHidden[1][r * f + c] = dg[offset + c * h * w] } }
            }
        }
        var dGates = Tensor(shape: gates.shape) { _ in }
        var dWeights = [Tensor.zeros([2, 4 * f, f]), Tensor.zeros([2, 4 * f, f])]
        dGates.withUnsafeMutableBufferPointer { dgp in
            for d in 0..<2 {
                weights[d].withUnsafeBufferPointer { wp in
                    dWeights[d].withUnsafeMutableBufferPointer { dwp in
                        layout.scanBackward(states[d], dHidden: dHidden[d], weight: wp.baseAddress!, dGates: dgp.baseAddress! + d * 4 * f,
                                            stride: 8 * f, dWeight: dwp.baseAddress!, mirrored: d == 1)
                    }
                }
            }
        }
        gates.accumulate(dGates)
        leftToRight.accumulate(dWeights[0])
        rightToLeft.accumulate(dWeights[1])
    }
}
