import CBLAS

/// Raw-buffer kernels: each hot operation as a forward and a backward function,
/// with a plain reference implementation beside it that the tests compare against.
public enum Kernels {}

// MARK: - GEMM

extension Kernels {
    /// OpenBLAS runs single-threaded: its idle workers spin in `sched_yield` and steal the second
    /// core from everything else (measured: 200 000 yields per WaveNet step). Seriatim splits work
    /// itself instead — large GEMMs by columns here, convolutions by batch item — so that a piece
    /// of work is never split by both.
    @usableFromInline static let blasThreadsPinned: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// The kernels OpenBLAS chose for this CPU (or `OPENBLAS_CORETYPE` forced), as benchmarks report them.
    public static var blasCore: String { String(cString: openblas_get_corename()) }

    /// GEMMs with fewer multiply-adds than this run on one core.
    public static let parallelGEMMThreshold = 1 << 20

    /// `C = alpha · op(A) · op(B) + beta · C`, row-major, through `cblas_sgemm`; large products are
    /// split by columns of C over the cores.
    ///
    /// Shapes: `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, `C` is `[m, n]`; `lda`, `ldb`, `ldc`
    /// are the row strides of the stored (untransposed) matrices.
    @inlinable
    public static func gemm(transposeA: Bool = false, transposeB: Bool = false,
                            m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m * n * k >= parallelGEMMThreshold && Parallel.workerCount > 1 {
            // Split the longer of m and n, or k when it dwarfs both (a weight gradient summed over
            // many positions): splitting m or n would make every worker pack the whole of the other side.
            let workers = Parallel.workerCount
            if k >= 8 * max(m, n) {
                gemmSplittingK(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                               a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            } else if n >= m {
                let chunk = (n + workers - 1) / workers
                Parallel.forEach(workers) { w in
                    let start = w * chunk, width = min(n, start + chunk) - start
                    guard width > 0 else { return }
                    gemmSerial(transposeA: transposeA, transposeB: transposeB, m: m, n: width, k: k, alpha: alpha, a: a, lda: lda,
                               b: transposeB ? b + start * ldb : b + start, ldb: ldb, beta: beta, c: c + start, ldc: ldc)
                }
            } else {
                let chunk = (m + workers - 1) / workers
                Parallel.forEach(workers) { w in
                    let start = w * chunk, height = min(m, start + chunk) - start
                    guard height > 0 else { return }
                    gemmSerial(transposeA: transposeA, transposeB: transposeB, m: height, n: n, k: k, alpha: alpha,
                               a: transposeA ? a + start : a + start * lda, lda: lda, b: b, ldb: ldb, beta: beta,
                               c: c + start * ldc, ldc: ldc)
                }
            }
        } else {
            gemmSerial(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// `gemm` with the contracted axis cut into one piece per worker: worker 0 accumulates into `c`,
    /// the others into scratch products that are added at the end.
    @usableFromInline static func gemmSplittingK(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                               a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let workers = Parallel.workerCount
        let chunk = (k + workers - 1) / workers
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(workers - 1, 0) * m * n)
        defer { scratch.deallocate() }
        Parallel.forEach(workers) { w in
            let start = w * chunk, depth = max(0, min(k, start + chunk) - start)
            let target = w == 0 ? c : scratch + (w - 1) * m * n
            let (targetBeta, targetLd) = w == 0 ? (beta, ldc) : (0, n)
            if depth == 0 {
                if w > 0 { target.initialize(repeating: 0, count: m * n) }
                else if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : c[i * ldc + j] * beta } } }
                return
            }
            gemmSerial(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: depth, alpha: alpha,
                       a: transposeA ? a + start * lda : a + start, lda: lda,
                       b: transposeB ? b + start : b + start * ldb, ldb: ldb,
                       beta: targetBeta, c: target, ldc: targetLd)
        }
        for w in 1..<workers {
            let part = scratch + (w - 1) * m * n
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] += part[i * n + j] } }
        }
    }

    /// `gemm` on the calling thread only (for kernels that split work over the cores themselves).
    @inlinable
    public static func gemmSerial(transposeA: Bool = false, transposeB: Bool = false,
                                  m: Int, n: Int, k: Int, alpha: Float = 1,
                                  a: UnsafePointer<Float>, lda: Int,
                                  b: UnsafePointer<Float>, ldb: Int,
                                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        _ = blasThreadsPinned
        if m == 0 || n == 0 { return }
        if k == 0 {
            if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : c[i * ldc + j] * beta } } }
            return
        }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Triple-loop reference for `gemm` (same contract).
    public static func gemmReference(transposeA: Bool = false, transposeB: Bool = false,
                                     m: Int, n: Int, k: Int, alpha: Float = 1,
                                     a: UnsafePointer<Float>, lda: Int,
                                     b: UnsafePointer<Float>, ldb: Int,
                                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Double = 0
                for p in 0..<k {
                    let av = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(av) * Double(bv)
                }
                c[i * ldc + j] = alpha * Float(sum) + (beta == 0 ? 0 : beta * c[i * ldc + j])
            }
        }
    }

    /// Matrix product of `[…, m, k]` and `[…, k, n]` (either side may be transposed in its last two
    /// axes), giving `[…, m, n]`. Leading axes are a batch; a rank-2 right side is shared by every batch item.
    public static func matmul(_ lhs: Tensor, _ rhs: Tensor,
                              transposeLeft: Bool = false, transposeRight: Bool = false,
                              reference: Bool = false) -> Tensor {
        precondition(lhs.rank >= 2 && rhs.rank >= 2, "matmul: needs rank ≥ 2, got \(lhs.shape) and \(rhs.shape)")
        let lr = lhs.rank, rr = rhs.rank
        let m = transposeLeft ? lhs.shape[lr - 1] : lhs.shape[lr - 2]
        let k = transposeLeft ? lhs.shape[lr - 2] : lhs.shape[lr - 1]
        let k2 = transposeRight ? rhs.shape[rr - 1] : rhs.shape[rr - 2]
        let n = transposeRight ? rhs.shape[rr - 2] : rhs.shape[rr - 1]
        precondition(k == k2, "matmul: inner sizes differ for \(lhs.shape)\(transposeLeft ? "ᵀ" : "") · \(rhs.shape)\(transposeRight ? "ᵀ" : "")")
        let batchShape = Array(lhs.shape.dropLast(2))
        precondition(rr == 2 || Array(rhs.shape.dropLast(2)) == batchShape,
                     "matmul: batch axes differ for \(lhs.shape) and \(rhs.shape)")
        precondition(!(rr == 2 && lr > 2 && transposeLeft),
                     "matmul: a batched left side \(lhs.shape) with a shared right side cannot be transposed")
        let batch = batchShape.reduce(1, *)
        let lhsStride = lhs.shape[lr - 2] * lhs.shape[lr - 1]
        let rhsStride = rr == 2 ? 0 : rhs.shape[rr - 2] * rhs.shape[rr - 1]
        let lda = lhs.shape[lr - 1], ldb = rhs.shape[rr - 1]
        return Tensor(shape: batchShape + [m, n]) { out in
            let c = out.baseAddress!
            lhs.withUnsafeBufferPointer { a in
                rhs.withUnsafeBufferPointer { b in
                    for item in 0..<batch {
                        let f = reference ? gemmReference : gemm
                        f(transposeLeft, transposeRight, m, n, k, 1,
                          a.baseAddress! + item * lhsStride, lda,
                          b.baseAddress! + item * rhsStride, ldb, 0, c + item * m * n, n)
                    }
                }
            }
        }
    }

    /// Gradients of `matmul(lhs, rhs, transposeLeft:, transposeRight:)` given the output gradient.
    public static func matmulBackward(_ gradient: Tensor, _ lhs: Tensor, _ rhs: Tensor,
                                      transposeLeft: Bool, transposeRight: Bool) -> (lhs: Tensor, rhs: Tensor) {
        var gradLeft: Tensor
        var gradRight: Tensor
        switch (transposeLeft, transposeRight) {
        case (false, false):
            gradLeft = matmul(gradient, rhs, transposeRight: true)
            gradRight = rhs.rank == 2 ? matmulSharedRight(lhs, gradient, transposeLeft: true) : matmul(lhs, gradient, transposeLeft: true)
        case (false, true):
            gradLeft = matmul(gradient, rhs)
            gradRight = rhs.rank == 2 ? matmulSharedRight(gradient, lhs, transposeLeft: true) : matmul(gradient, lhs, transposeLeft: true)
        case (true, false):
            gradLeft = matmul(rhs, gradient, transposeRight: true)
            gradRight = rhs.rank == 2 ? matmulSharedRight(lhs, gradient, transposeLeft: false) : matmul(lhs, gradient)
        case (true, true):
            gradLeft = matmul(rhs, gradient, transposeLeft: true, transposeRight: true)
            gradRight = rhs.rank == 2 ? matmulSharedRight(gradient, lhs, transposeLeft: true, transposeRight: true)
                : matmul(gradient, lhs, transposeLeft: true, transposeRight: true)
        }
        gradLeft.reshape(lhs.shape)
        gradRight.reshape(rhs.shape)
        return (gradLeft, gradRight)
    }

    /// Σ over the batch of `op(X_i) · op(Y_i)`: the gradient of a rank-2 factor shared by all batch items.
    static func matmulSharedRight(_ x: Tensor, _ y: Tensor, transposeLeft: Bool, transposeRight: Bool = false) -> Tensor {
        // Flattening the batch into the contracted axis turns the sum into one GEMM when the
        // contracted axis is the row axis of both (the common `Xᵀ·Y` case).
        let xr = x.rank, yr = y.rank
        if transposeLeft && !transposeRight {
            let xs = x.reshaped([-1, x.shape[xr - 1]])
            let ys = y.reshaped([-1, y.shape[yr - 1]])
            return matmul(xs, ys, transposeLeft: true)
        }
        let batch = x.shape.dropLast(2).reduce(1, *)
        var total: Tensor? = nil
        for item in 0..<batch {
            let xi = slicePlane(x, item), yi = slicePlane(y, item)
            let product = matmul(xi, yi, transposeLeft: transposeLeft, transposeRight: transposeRight)
            total = total.map { add($0, product) } ?? product
        }
        return total!
    }

    static func slicePlane(_ x: Tensor, _ item: Int) -> Tensor {
        let rows = x.shape[x.rank - 2], cols = x.shape[x.rank - 1]
        let size = rows * cols
        return Tensor(shape: [rows, cols], scalars: Array(x.scalars[item * size..<(item + 1) * size]))
    }
}

// MARK: - Fully connected layer with a constant mask

/// Where a constant `[O, I]` mask is nonzero, by blocks: each block of rows needs only a range of
/// columns, and each block of columns only a range of rows.
///
/// A mask built from sorted degrees (MADE's first mask set, FVSBN, the direct path) is a staircase,
/// so about half of `x · (W ⊙ M)ᵀ` multiplies by zero; the `linear` kernels skip those parts.
/// A 0/1 mask whose rows see nested sets of columns (any degree mask: MADE's order-agnostic and
/// connectivity-agnostic sets) becomes one once its rows are sorted by how many columns they see
/// (ascending) and its columns by how many rows see them (descending): every row is then a run of
/// ones from the first column. Such a layout keeps the two orders and each row's run length; the
/// kernels gather the weight in that order while masking it (the mask itself is not read), multiply,
/// and scatter back. A mask with neither structure gets one dense block and costs what an unmasked
/// product does.
public struct MaskLayout: Sendable, Equatable {
    /// A rectangle of the mask holding all the nonzeros of its rows (`rowBlocks`) or of its columns (`columnBlocks`).
    public struct Block: Sendable, Equatable {
        public var rows: Range<Int>
        public var columns: Range<Int>
        var area: Int { rows.count * columns.count }
    }

    public let rows: Int, columns: Int
    /// Row blocks with the columns they touch (an empty column range when a block is all zero).
    public let rowBlocks: [Block]
    /// Column blocks with the rows they touch.
    public let columnBlocks: [Block]
    /// When set, the blocks describe the mask with its rows taken in this order (row a of the
    /// reordered mask is row `rowOrder[a]`) and its columns in `columnOrder`; reordered row a is
    /// ones in its first `runLengths[a]` columns and zeros after. Without orders, `runLengths` is
    /// set when every row of the mask itself is ones then zeros (any degree mask in natural
    /// order), and the kernels mask by it instead of reading the mask.
    public let rowOrder: [Int]?, columnOrder: [Int]?, runLengths: [Int]?

    /// Where row `row`'s run of ones ends, clamped to `start..<end` (a block's columns); needs `runLengths`.
    @inline(__always) func runEnd(_ row: Int, _ start: Int, _ end: Int) -> Int { min(max(runLengths![row], start), end) }

    /// One block covering everything (no mask, or a mask without usable structure).
    public static func dense(rows: Int, columns: Int) -> MaskLayout {
        let all = Block(rows: 0..<rows, columns: 0..<columns)
        return MaskLayout(rows: rows, columns: columns, rowBlocks: [all], columnBlocks: [all])
    }

    private init(rows: Int, columns: Int, rowBlocks: [Block], columnBlocks: [Block],
                 reordering: (rows: [Int], columns: [Int], runs: [Int])? = nil, runs: [Int]? = nil) {
        self.rows = rows; self.columns = columns; self.rowBlocks = rowBlocks; self.columnBlocks = columnBlocks
        rowOrder = reordering?.rows; columnOrder = reordering?.columns; runLengths = reordering?.runs ?? runs
    }

    /// Each row's count of leading ones when every row of the 0/1 `mask` is ones then zeros, else nil.
    private static func prefixRuns(_ mask: Tensor) -> [Int]? {
        let (rows, columns) = (mask.shape[0], mask.shape[1])
        return mask.withUnsafeBufferPointer { m -> [Int]? in
            var runs = [Int](repeating: 0, count: rows)
            for r in 0..<rows {
                let row = m.baseAddress! + r * columns
                var run = 0
                while run < columns && row[run] == 1 { run += 1 }
                for c in run..<columns where row[c] != 0 { return nil }
                runs[r] = run
            }
            return runs
        }
    }

    /// The layout of `mask` `[O, I]` with blocks of `blockSize` rows or columns: as it stands, else
    /// reordered, else dense — whichever first skips at least a fifth of the product.
    public init(mask: Tensor, blockSize: Int = 64, reorders: Bool = true) {
        precondition(mask.rank == 2 && blockSize > 0, "MaskLayout: mask \(mask.shape) must be [O, I]")
        let (rows, columns) = (mask.shape[0], mask.shape[1])
        if let (rowBlocks, columnBlocks) = MaskLayout.blocks(mask, blockSize: blockSize) {
            self.init(rows: rows, columns: columns, rowBlocks: rowBlocks, columnBlocks: columnBlocks, runs: MaskLayout.prefixRuns(mask))
            return
        }
        self = .dense(rows: rows, columns: columns)
        guard reorders, mask.scalars.allSatisfy({ $0 == 0 || $0 == 1 }) else { return }
        var rowCounts = [Int](repeating: 0, count: rows), columnCounts = [Int](repeating: 0, count: columns)
        for r in 0..<rows { for c in 0..<columns where mask.scalars[r * columns + c] != 0 { rowCounts[r] += 1; columnCounts[c] += 1 } }
        let rowOrder = (0..<rows).sorted { (rowCounts[$0], $0) < (rowCounts[$1], $1) }
        let columnOrder = (0..<columns).sorted { (-columnCounts[$0], $0) < (-columnCounts[$1], $1) }
        let runs = rowOrder.map { rowCounts[$0] }
        // Every reordered row must be a run of ones from the first column (nested rows).
        for a in 0..<rows {
            let row = rowOrder[a] * columns
            for b in 0..<runs[a] where mask.scalars[row + columnOrder[b]] == 0 { return }
        }
        let reordered = Tensor(shape: [rows, columns]) { out in
            for a in 0..<rows { for b in 0..<columns { out[a * columns + b] = b < runs[a] ? 1 : 0 } }
        }
        if let (rowBlocks, columnBlocks) = MaskLayout.blocks(reordered, blockSize: blockSize) {
            self.init(rows: rows, columns: columns, rowBlocks: rowBlocks, columnBlocks: columnBlocks,
                      reordering: (rowOrder, columnOrder, runs))
        }
    }

    /// Row and column blocks of `mask` as it stands, or nil when they would skip less than a fifth.
    private static func blocks(_ mask: Tensor, blockSize: Int) -> (rows: [Block], columns: [Block])? {
        let (rows, columns) = (mask.shape[0], mask.shape[1])
        var rowFirst = [Int](repeating: columns, count: rows), rowLast = [Int](repeating: -1, count: rows)
        var columnFirst = [Int](repeating: rows, count: columns), columnLast = [Int](repeating: -1, count: columns)
        mask.withUnsafeBufferPointer { m in
            for r in 0..<rows {
                for c in 0..<columns where m[r * columns + c] != 0 {
                    rowFirst[r] = min(rowFirst[r], c); rowLast[r] = c
                    columnFirst[c] = min(columnFirst[c], r); columnLast[c] = max(columnLast[c], r)
                }
            }
        }
        func blocks(_ count: Int, _ first: [Int], _ last: [Int], transposed: Bool) -> [Block] {
            stride(from: 0, to: count, by: blockSize).map { start in
                let span = start..<min(count, start + blockSize)
                let low = span.map { first[$0] }.min()!, high = span.map { last[$0] }.max()! + 1
                let touched = low < high ? low..<high : 0..<0
                return transposed ? Block(rows: touched, columns: span) : Block(rows: span, columns: touched)
            }
        }
        let rowBlocks = blocks(rows, rowFirst, rowLast, transposed: false)
        let columnBlocks = blocks(columns, columnFirst, columnLast, transposed: true)
        let total = max(rows * columns, 1)
        if rowBlocks.reduce(0, { $0 + $1.area }) * 5 > total * 4 || columnBlocks.reduce(0, { $0 + $1.area }) * 5 > total * 4 { return nil }
        return (rowBlocks, columnBlocks)
    }

    /// `layout`, or the one `mask` has (dense without a mask).
    static func resolve(_ layout: MaskLayout?, mask: Tensor?, rows: Int, columns: Int) -> MaskLayout {
        layout ?? (mask.map { MaskLayout(mask: $0) } ?? .dense(rows: rows, columns: columns))
    }

    /// `blocks` split further so that a large product has at least one piece per core.
    static func pieces(_ blocks: [Block], byRows: Bool, work: Int) -> [Block] {
        guard blocks.count == 1, work >= Kernels.parallelGEMMThreshold, Parallel.workerCount > 1 else { return blocks }
        let block = blocks[0], span = byRows ? block.rows : block.columns
        let size = (span.count + Parallel.workerCount - 1) / Parallel.workerCount
        return stride(from: span.lowerBound, to: span.upperBound, by: max(size, 1)).map { start in
            let part = start..<min(span.upperBound, start + size)
            return byRows ? Block(rows: part, columns: block.columns) : Block(rows: block.rows, columns: part)
        }
    }
}

extension Kernels {
    /// Runs `body(firstRow, endRow, firstColumn, endColumn)` on each block, over the cores when the
    /// product is large.
    private static func forEachBlock(_ blocks: [MaskLayout.Block], work: Int, _ body: (Int, Int, Int, Int) -> Void) {
        func run(_ block: MaskLayout.Block) {
            body(block.rows.lowerBound, block.rows.upperBound, block.columns.lowerBound, block.columns.upperBound)
        }
        if blocks.count > 1 && work >= parallelGEMMThreshold {
            Parallel.forEach(blocks.count) { run(blocks[$0]) }
        } else {
            for block in blocks { run(block) }
        }
    }

    /// `x · (W ⊙ M)ᵀ + b` for `x` `[N, I]`, `weight` and `mask` `[O, I]`, `bias` `[O]`, returning the
    /// output `[N, O]` and the masked weight (the weight itself when there is no mask; rows and
    /// columns in the layout's order when it has one), which the input gradient needs.
    ///
    /// Each block of output units is done in one pass while its weight rows are in cache: mask
    /// them, write the bias into the output columns, multiply-add over the columns the mask lets
    /// through (`layout`, computed from the mask when not given).
    public static func linear(_ x: Tensor, weight: Tensor, mask: Tensor?, layout: MaskLayout? = nil,
                              bias: Tensor?) -> (output: Tensor, effective: Tensor) {
        let (n, inputs, outputs) = (x.shape[0], x.shape[1], weight.shape[0])
        precondition(x.rank == 2 && weight.rank == 2 && weight.shape[1] == inputs,
                     "linear: input \(x.shape) and weight \(weight.shape) need [N, I] and [O, I]")
        precondition(mask == nil || mask!.shape == weight.shape, "linear: mask \(mask!.shape) differs from weight \(weight.shape)")
        precondition(bias == nil || bias!.count == outputs, "linear: bias \(bias!.shape) does not fit \(outputs) outputs")
        let layout = MaskLayout.resolve(layout, mask: mask, rows: outputs, columns: inputs)
        precondition(layout.rows == outputs && layout.columns == inputs, "linear: layout does not fit weight \(weight.shape)")
        precondition(layout.rowOrder == nil || mask != nil, "linear: a reordered layout needs its mask")
        let work = n * inputs * outputs
        let blocks = MaskLayout.pieces(layout.rowBlocks, byRows: true, work: work)
        // A reordered layout: x's columns, the weight's rows and columns and the bias in its order
        // (gathered in the masking pass), the output's columns put back at the end.
        let (rowOrder, columnOrder) = (layout.rowOrder, layout.columnOrder)
        let x = columnOrder.map { gatherColumns(x, $0) } ?? x
        var effective = mask == nil ? weight : Tensor(shape: weight.shape) { _ in }
        var output = Tensor(shape: [n, outputs]) { _ in }
        func run(_ e: UnsafeMutablePointer<Float>?, _ w: UnsafePointer<Float>, _ m: UnsafePointer<Float>?) {
            let source = e.map { UnsafePointer($0) } ?? w
            x.withUnsafeBufferPointer { xp in
                output.withUnsafeMutableBufferPointer { op in
                    let out = op.baseAddress!
                    withOptionalPointer(bias) { b in
                        forEachBlock(blocks, work: work) { r0, r1, c0, c1 in
                            if let e, let m {
                                // A reordered row is gathered from a copy read front to back (the
                                // prefetcher's pattern, not the gather's).
                                let copy = rowOrder == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: inputs)
                                defer { copy?.deallocate() }
                                for r in r0..<r1 {
                                    let row = r * inputs
                                    (e + row).initialize(repeating: 0, count: c0)
                                    if let copy, let rowOrder, let columnOrder {
                                        let run = layout.runEnd(r, c0, c1)
                                        copy.update(from: w + rowOrder[r] * inputs, count: inputs)
                                        for j in c0..<run { e[row + j] = copy[columnOrder[j]] }
                                        for j in run..<c1 { e[row + j] = 0 }
                                    } else if layout.runLengths != nil {
                                        // Ones then zeros: copy the run, the mask need not be read.
                                        let run = layout.runEnd(r, c0, c1)
                                        (e + row + c0).update(from: w + row + c0, count: run - c0)
                                        (e + row + run).initialize(repeating: 0, count: c1 - run)
                                    } else {
                                        for j in (row + c0)..<(row + c1) { e[j] = w[j] * m[j] }
                                    }
                                    (e + row + c1).initialize(repeating: 0, count: inputs - c1)
                                }
                            }
                            for i in 0..<n {
                                let target = out + i * outputs + r0
                                if let b, let rowOrder { for r in r0..<r1 { target[r - r0] = b[rowOrder[r]] } }
                                else if let b { target.update(from: b + r0, count: r1 - r0) } else { target.initialize(repeating: 0, count: r1 - r0) }
                            }
                            guard c0 < c1 else { return }
                            gemmSerial(transposeB: true, m: n, n: r1 - r0, k: c1 - c0, a: xp.baseAddress! + c0, lda: inputs,
                                       b: source + r0 * inputs + c0, ldb: inputs, beta: 1, c: out + r0, ldc: outputs)
                        }
                    }
                }
            }
        }
        weight.withUnsafeBufferPointer { w in
            if let mask {
                mask.withUnsafeBufferPointer { m in
                    effective.withUnsafeMutableBufferPointer { e in run(e.baseAddress!, w.baseAddress!, m.baseAddress!) }
                }
            } else {
                run(nil, w.baseAddress!, nil)
            }
        }
        return (rowOrder.map { scatterColumns(output, $0) } ?? output, effective)
    }

    /// `x[:, order]`: the columns of `[N, K]` taken in `order`.
    static func gatherColumns(_ x: Tensor, _ order: [Int]) -> Tensor {
        let (n, k) = (x.shape[0], x.shape[1])
        return Tensor(shape: [n, k]) { out in
            x.withUnsafeBufferPointer { xp in
                for i in 0..<n { for (a, c) in order.enumerated() { out[i * k + a] = xp[i * k + c] } }
            }
        }
    }

    /// The inverse of `gatherColumns`: column a of `x` goes to column `order[a]`.
    static func scatterColumns(_ x: Tensor, _ order: [Int]) -> Tensor {
        let (n, k) = (x.shape[0], x.shape[1])
        return Tensor(shape: [n, k]) { out in
            x.withUnsafeBufferPointer { xp in
                for i in 0..<n { for (a, c) in order.enumerated() { out[i * k + c] = xp[i * k + a] } }
            }
        }
    }

    /// `gradient · E`: the input gradient of `linear` for output gradient `[N, O]` and masked
    /// weight `E` `[O, I]` (as `linear` returned it: in the layout's order when it has one), each
    /// block of input columns summing only over the rows that reach it.
    public static func linearInputGradient(_ gradient: Tensor, effective: Tensor, layout: MaskLayout? = nil) -> Tensor {
        let (n, outputs, inputs) = (gradient.shape[0], effective.shape[0], effective.shape[1])
        precondition(gradient.shape[1] == outputs, "linearInputGradient: gradient \(gradient.shape) vs weight \(effective.shape)")
        let layout = MaskLayout.resolve(layout, mask: nil, rows: outputs, columns: inputs)
        let work = n * inputs * outputs
        let blocks = MaskLayout.pieces(layout.columnBlocks, byRows: false, work: work)
        let gradient = layout.rowOrder.map { gatherColumns(gradient, $0) } ?? gradient
        let result = Tensor(shape: [n, inputs]) { result in
            let dx = result.baseAddress!
            gradient.withUnsafeBufferPointer { g in
                effective.withUnsafeBufferPointer { e in
                    forEachBlock(blocks, work: work) { r0, r1, c0, c1 in
                        guard r0 < r1 else {
                            for i in 0..<n { (dx + i * inputs + c0).initialize(repeating: 0, count: c1 - c0) }
                            return
                        }
                        gemmSerial(m: n, n: c1 - c0, k: r1 - r0, a: g.baseAddress! + r0, lda: outputs,
                                   b: e.baseAddress! + r0 * inputs + c0, ldb: inputs, beta: 0, c: dx + c0, ldc: inputs)
                    }
                }
            }
        }
        return layout.columnOrder.map { scatterColumns(result, $0) } ?? result
    }

    /// `(gradientᵀ · x) ⊙ M`: the weight gradient of `linear` for output gradient `[N, O]` and
    /// input `[N, I]`, each block of rows masked while it is in cache; zero where the mask is.
    public static func linearWeightGradient(_ gradient: Tensor, input x: Tensor, mask: Tensor?, layout: MaskLayout? = nil) -> Tensor {
        let (n, inputs, outputs) = (x.shape[0], x.shape[1], gradient.shape[1])
        precondition(gradient.shape[0] == n, "linearWeightGradient: gradient \(gradient.shape) and input \(x.shape) differ in rows")
        let layout = MaskLayout.resolve(layout, mask: mask, rows: outputs, columns: inputs)
        let work = n * inputs * outputs
        let blocks = MaskLayout.pieces(layout.rowBlocks, byRows: true, work: work)
        if let rowOrder = layout.rowOrder, let columnOrder = layout.columnOrder {
            return reorderedWeightGradient(gatherColumns(gradient, rowOrder), input: gatherColumns(x, columnOrder), blocks: blocks,
                                           layout: layout)
        }
        return Tensor(shape: [outputs, inputs]) { result in
            let g = result.baseAddress!
            gradient.withUnsafeBufferPointer { dy in
                x.withUnsafeBufferPointer { xp in
                    withOptionalPointer(mask) { m in
                        forEachBlock(blocks, work: work) { r0, r1, c0, c1 in
                            for r in r0..<r1 {
                                (g + r * inputs).initialize(repeating: 0, count: c0)
                                (g + r * inputs + c1).initialize(repeating: 0, count: inputs - c1)
                            }
                            guard c0 < c1 else { return }
                            gemmSerial(transposeA: true, m: r1 - r0, n: c1 - c0, k: n, a: dy.baseAddress! + r0, lda: outputs,
                                       b: xp.baseAddress! + c0, ldb: inputs, beta: 0, c: g + r0 * inputs + c0, ldc: inputs)
                            if m != nil, layout.runLengths != nil {
                                // Rows of ones then zeros: zero each row after its run, the mask need not be read.
                                for r in r0..<r1 {
                                    let run = layout.runEnd(r, c0, c1)
                                    (g + r * inputs + run).update(repeating: 0, count: c1 - run)
                                }
                            } else if let m {
                                for r in r0..<r1 { for j in (r * inputs + c0)..<(r * inputs + c1) { g[j] *= m[j] } }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `linearWeightGradient` for a reordered layout, from the reordered output gradient and input:
    /// each block's product goes to scratch, then its unmasked part is put back at the original rows and columns.
    private static func reorderedWeightGradient(_ gradient: Tensor, input x: Tensor, blocks: [MaskLayout.Block],
                                                layout: MaskLayout) -> Tensor {
        let (rowOrder, columnOrder) = (layout.rowOrder!, layout.columnOrder!)
        let (n, inputs, outputs) = (x.shape[0], x.shape[1], gradient.shape[1])
        return Tensor(shape: [outputs, inputs]) { result in
            let g = result.baseAddress!
            gradient.withUnsafeBufferPointer { dy in x.withUnsafeBufferPointer { xp in
                forEachBlock(blocks, work: n * inputs * outputs) { r0, r1, c0, c1 in
                    let width = c1 - c0
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, (r1 - r0) * width))
                    defer { scratch.deallocate() }
                    if c0 < c1 {
                        gemmSerial(transposeA: true, m: r1 - r0, n: width, k: n, a: dy.baseAddress! + r0, lda: outputs,
                                   b: xp.baseAddress! + c0, ldb: inputs, beta: 0, c: scratch, ldc: width)
                    }
                    for r in r0..<r1 {
                        let row = rowOrder[r] * inputs, product = scratch + (r - r0) * width
                        (g + row).initialize(repeating: 0, count: inputs)
                        for j in c0..<layout.runEnd(r, c0, c1) { g[row + columnOrder[j]] = product[j - c0] }
                    }
                }
            } }
        }
    }

    private static func withOptionalPointer<R>(_ tensor: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let tensor else { return body(nil) }
        return tensor.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
