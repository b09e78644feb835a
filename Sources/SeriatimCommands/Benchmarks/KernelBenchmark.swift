import ArgumentParser
import Autodiff
import CBLAS
import Foundation
import Tensors

/// GFLOP/s of the GEMM-shaped kernels next to bare `cblas_sgemm` on the same GEMMs, and the
/// bookkeeping cost of the autodiff graph per op.
struct KernelBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kernels", abstract: "Benchmark the tensor kernels and autodiff overhead.")

    @Flag(help: "Print one JSON object instead of a table.") var json = false

    func run() throws {
        // Seriatim keeps OpenBLAS single-threaded and splits work itself; the "sgemm" reference
        // columns get all of OpenBLAS's threads.
        _ = Kernels.matmul(.zeros([1, 1]), .zeros([1, 1]))
        var rng = RandomGenerator(seed: 1)
        var results: [String: Any] = [:]
        var lines: [String] = []

        // 1. GEMM wrapper vs. cblas_sgemm at the same size.
        for n in [256, 1024] {
            let a = rng.uniformTensor([n, n]), b = rng.uniformTensor([n, n])
            let flops = 2.0 * Double(n * n * n)
            var c = [Float](repeating: 0, count: n * n)
            let bare = measureWithAllBLASThreads {
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                                ap.baseAddress, Int32(n), bp.baseAddress, Int32(n), 0, cp.baseAddress, Int32(n))
                } } }
            }
            let wrapped = measure { _ = Kernels.matmul(a, b) }
            results["gemm_\(n)_gflops"] = flops / wrapped / 1e9
            results["gemm_\(n)_sgemm_gflops"] = flops / bare / 1e9
            lines.append(row("matmul \(n)×\(n)×\(n)", flops / wrapped, flops / bare))
        }

        // 2. Dilated causal conv1d, forward + backward: batch 4, 32 → 64 channels, 8192 steps, dilation 64, 2 taps.
        do {
            let (batch, inC, outC, time, taps, dilation) = (4, 32, 64, 8192, 2, 64)
            let x = rng.uniformTensor([batch, inC, time]), w = rng.uniformTensor([taps, outC, inC], low: -0.1, high: 0.1)
            let bias = Tensor.zeros([outC]), dy = rng.uniformTensor([batch, outC, time])
            let flops = 3 * 2.0 * Double(batch * time * outC * inC * taps)  // forward, input and weight gradients
            // The same GEMMs (full length, no shifts, no bias, no reductions) straight through cblas_sgemm.
            var y = [Float](repeating: 0, count: batch * outC * time), dx = [Float](repeating: 0, count: batch * inC * time)
            var dw = [Float](repeating: 0, count: outC * inC)
            let bare = measureWithAllBLASThreads {
                x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in dy.withUnsafeBufferPointer { gp in
                    for b in 0..<batch { for k in 0..<taps {
                        let shift = (taps - 1 - k) * dilation
                        y.withUnsafeMutableBufferPointer { sgemm(false, false, outC, time - shift, inC, wp.baseAddress! + k * outC * inC, inC, xp.baseAddress! + b * inC * time, time, $0.baseAddress! + b * outC * time, time) }
                        dx.withUnsafeMutableBufferPointer { sgemm(true, false, inC, time - shift, outC, wp.baseAddress! + k * outC * inC, inC, gp.baseAddress! + b * outC * time, time, $0.baseAddress! + b * inC * time, time) }
                        dw.withUnsafeMutableBufferPointer { sgemm(false, true, outC, inC, time - shift, gp.baseAddress! + b * outC * time, time, xp.baseAddress! + b * inC * time, time, $0.baseAddress!, inC) }
                    } }
                } } }
            }
            let ours = measure {
                _ = Kernels.causalConv1D(x, weight: w, bias: bias, dilation: dilation)
                _ = Kernels.causalConv1DBackward(dy, input: x, weight: w, dilation: dilation)
            }
            results["conv1d_gflops"] = flops / ours / 1e9
            results["conv1d_sgemm_gflops"] = flops / bare / 1e9
            lines.append(row("causal conv1d fwd+bwd (4×32→64×8192, d=64, k=2)", flops / ours, flops / bare))
        }

        // 3. Masked conv2d, forward + backward: batch 32, 64 channels, 28×28, 3×3 type B (5 active taps).
        do {
            let (batch, channels, size) = (32, 64, 28)
            var mask = Tensor.ones([channels, channels, 3, 3])
            for o in 0..<channels { for i in 0..<channels { mask[o, i, 1, 2] = 0; for c in 0..<3 { mask[o, i, 2, c] = 0 } } }
            let taps = ConvolutionTaps(kernelHeight: 3, kernelWidth: 3, mask: mask)
            let x = rng.uniformTensor([batch, channels, size, size]), w = rng.uniformTensor([channels, channels, 3, 3], low: -0.1, high: 0.1)
            let bias = Tensor.zeros([channels]), dy = rng.uniformTensor([batch, channels, size, size])
            let positions = batch * size * size
            let flops = 3 * 2.0 * Double(positions * channels * channels * taps.taps.count)
            // cblas_sgemm on the same problem: per tap, [64×64]·[64×(B·H·W)] three times.
            let a = rng.uniformTensor([channels, channels]), big = rng.uniformTensor([channels, positions])
            var out = [Float](repeating: 0, count: channels * positions), dw = [Float](repeating: 0, count: channels * channels)
            let bare = measureWithAllBLASThreads {
                a.withUnsafeBufferPointer { ap in big.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in
                    for _ in 0..<taps.taps.count {
                        sgemm(false, false, channels, positions, channels, ap.baseAddress!, channels, bp.baseAddress!, positions, op.baseAddress!, positions)
                        sgemm(true, false, channels, positions, channels, ap.baseAddress!, channels, bp.baseAddress!, positions, op.baseAddress!, positions)
                        dw.withUnsafeMutableBufferPointer { sgemm(false, true, channels, channels, positions, bp.baseAddress!, positions, bp.baseAddress!, positions, $0.baseAddress!, channels) }
                    }
                } } }
            }
            let ours = measure {
                let forward = Kernels.maskedConv2DKeepingInput(x, weight: w, mask: mask, bias: bias, taps: taps)
                _ = Kernels.maskedConv2DBackward(dy, input: x, weight: w, mask: mask, taps: taps, paddedInput: forward.paddedInput)
            }
            results["conv2d_gflops"] = flops / ours / 1e9
            results["conv2d_sgemm_gflops"] = flops / bare / 1e9
            lines.append(row("masked conv2d fwd+bwd (32×64×28×28, 3×3 type B)", flops / ours, flops / bare))
        }

        // 4. Autodiff overhead: a chain of elementwise ops on 1-element tensors, forward and backward.
        do {
            let w = Variable(Tensor(shape: [1], scalars: [0.5]), requiresGradient: true)
            let chain = 1000
            let seconds = measure(minimum: 1) {
                var h = w
                for _ in 0..<chain { h = h * w + w }
                h.backward()
                w.zeroGradient()
            }
            let perOp = seconds / Double(2 * chain + 1) * 1e6
            results["autodiff_overhead_us_per_op"] = perOp
            lines.append("autodiff: \(String(format: "%.2f", perOp)) µs per op (record + backward, 1-element tensors)")
        }

        if json {
            printJSON(results)
        } else {
            print("kernel                                               ours GFLOP/s   sgemm GFLOP/s   ratio")
            for line in lines { print(line) }
        }
    }

    /// `measure` with OpenBLAS on every core; then back to one BLAS thread and a pause, so that
    /// OpenBLAS's idle workers stop spinning before our kernels are measured.
    private func measureWithAllBLASThreads(_ body: () -> Void) -> Double {
        openblas_set_num_threads(Int32(Parallel.workerCount))
        let seconds = measure(body)
        openblas_set_num_threads(1)
        usleep(300_000)
        return seconds
    }

    private func row(_ name: String, _ ours: Double, _ bare: Double) -> String {
        name.padding(toLength: 52, withPad: " ", startingAt: 0)
            + String(format: "%13.1f %15.1f %7.0f%%", ours / 1e9, bare / 1e9, 100 * ours / bare)
    }

    private func sgemm(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ a: UnsafePointer<Float>, _ lda: Int,
                       _ b: UnsafePointer<Float>, _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    1, a, Int32(lda), b, Int32(ldb), 1, c, Int32(ldc))
    }
}
