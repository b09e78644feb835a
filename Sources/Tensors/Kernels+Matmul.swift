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
            // Split the longer of m and n.
            let workers = Parallel.workerCount
            if n >= m {
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
            if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
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
