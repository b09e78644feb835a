import Foundation
import Testing
import Tensors

/// Every kernel against its plain reference on random shapes.
@Suite struct KernelTests {
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func gemmMatchesReference(transposes: (Bool, Bool)) {
        var rng = RandomGenerator(seed: 1)
        for _ in 0..<5 {
            let m = 1 + rng.integer(below: 20), n = 1 + rng.integer(below: 20), k = 1 + rng.integer(below: 20)
            let a = rng.uniformTensor(transposes.0 ? [k, m] : [m, k], low: -1, high: 1)
            let b = rng.uniformTensor(transposes.1 ? [n, k] : [k, n], low: -1, high: 1)
            let fast = Kernels.matmul(a, b, transposeLeft: transposes.0, transposeRight: transposes.1)
            let slow = Kernels.matmul(a, b, transposeLeft: transposes.0, transposeRight: transposes.1, reference: true)
            #expect(fast.shape == [m, n])
            #expect(fast.maxAbsoluteDifference(slow) < 1e-5)
        }
    }

    @Test func batchedMatmulMatchesPerItemProducts() {
        var rng = RandomGenerator(seed: 2)
        let a = rng.uniformTensor([3, 4, 5], low: -1, high: 1)
        let b = rng.uniformTensor([3, 5, 6], low: -1, high: 1)
        let shared = rng.uniformTensor([5, 6], low: -1, high: 1)
        let batched = Kernels.matmul(a, b)
        let broadcast = Kernels.matmul(a, shared)
        for item in 0..<3 {
            let ai = Kernels.slice(a, axis: 0, range: item..<item + 1).reshaped([4, 5])
            let bi = Kernels.slice(b, axis: 0, range: item..<item + 1).reshaped([5, 6])
            let expected = Kernels.matmul(ai, bi, reference: true)
            #expect(Kernels.slice(batched, axis: 0, range: item..<item + 1).reshaped([4, 6]).maxAbsoluteDifference(expected) < 1e-5)
            let expectedShared = Kernels.matmul(ai, shared, reference: true)
            #expect(Kernels.slice(broadcast, axis: 0, range: item..<item + 1).reshaped([4, 6]).maxAbsoluteDifference(expectedShared) < 1e-5)
        }
    }

    @Test func causalConv1DMatchesReference() {
        var rng = RandomGenerator(seed: 3)
        for _ in 0..<8 {
            let batch = 1 + rng.integer(below: 3), inC = 1 + rng.integer(below: 5), outC = 1 + rng.integer(below: 5)
            let time = 1 + rng.integer(below: 40), taps = 1 + rng.integer(below: 4)
            let dilation = 1 + rng.integer(below: 5), offset = rng.integer(below: 2)
            let x = rng.uniformTensor([batch, inC, time], low: -1, high: 1)
            let w = rng.uniformTensor([taps, outC, inC], low: -1, high: 1)
            let bias = rng.uniformTensor([outC], low: -1, high: 1)
            let fast = Kernels.causalConv1D(x, weight: w, bias: bias, dilation: dilation, offset: offset)
            let slow = Kernels.causalConv1DReference(x, weight: w, bias: bias, dilation: dilation, offset: offset)
            #expect(fast.maxAbsoluteDifference(slow) < 1e-5, "taps \(taps) dilation \(dilation) offset \(offset) T \(time)")
        }
    }

    /// The backward kernels are the adjoints of the forward ones: ⟨dY, conv(x)⟩ = ⟨dX, x⟩ and
    /// ⟨dY, conv_W(x)⟩ = ⟨dW, W⟩ exactly (both sides are bilinear), checked against the reference forward.
    @Test func causalConv1DBackwardIsTheAdjoint() {
        var rng = RandomGenerator(seed: 4)
        for _ in 0..<6 {
            let (batch, inC, outC, time) = (2, 3, 4, 10 + rng.integer(below: 20))
            let taps = 1 + rng.integer(below: 3), dilation = 1 + rng.integer(below: 4), offset = rng.integer(below: 2)
            let x = rng.uniformTensor([batch, inC, time], low: -1, high: 1)
            let w = rng.uniformTensor([taps, outC, inC], low: -1, high: 1)
            let dy = rng.uniformTensor([batch, outC, time], low: -1, high: 1)
            let g = Kernels.causalConv1DBackward(dy, input: x, weight: w, dilation: dilation, offset: offset)
            let y = Kernels.causalConv1DReference(x, weight: w, bias: nil, dilation: dilation, offset: offset)
            #expect(abs(dot(dy, y) - dot(g.input!, x)) < 1e-3)
            #expect(abs(dot(dy, y) - dot(g.weight, w)) < 1e-3)
            #expect(g.bias.maxAbsoluteDifference(Kernels.sum(dy, axes: [0, 2])) < 1e-5)
        }
    }

    @Test func maskedConv2DMatchesReference() {
        var rng = RandomGenerator(seed: 5)
        for trial in 0..<6 {
            let batch = 1 + rng.integer(below: 3), inC = 1 + rng.integer(below: 4), outC = 1 + rng.integer(below: 4)
            let height = 1 + rng.integer(below: 7), width = 1 + rng.integer(below: 7)
            let k = [1, 3, 5][rng.integer(below: 3)]
            let x = rng.uniformTensor([batch, inC, height, width], low: -1, high: 1)
            let w = rng.uniformTensor([outC, inC, k, k], low: -1, high: 1)
            let bias = rng.uniformTensor([outC], low: -1, high: 1)
            // Odd trials use a random mask that zeroes whole taps and single weights.
            let mask: Tensor? = trial % 2 == 0 ? nil : Tensor(shape: w.shape, scalars: (0..<w.count).map { _ in rng.bernoulli(0.6) })
            let fast = Kernels.maskedConv2D(x, weight: w, mask: mask, bias: bias)
            let slow = Kernels.maskedConv2DReference(x, weight: w, mask: mask, bias: bias)
            #expect(fast.maxAbsoluteDifference(slow) < 1e-5)
        }
    }

    @Test func maskedConv2DBackwardIsTheAdjoint() {
        var rng = RandomGenerator(seed: 6)
        // Small grids, and grids of several column tiles spread over the cores; under 16 input
        // channels the taps are stacked into one GEMM, from 16 on each tap is a GEMM per tile.
        for (batch, inC, outC, height, width, k) in [(2, 3, 2, 5, 6, 3), (2, 3, 2, 5, 6, 3), (3, 5, 4, 17, 19, 3),
                                                     (2, 4, 3, 12, 13, 5), (3, 6, 5, 16, 16, 1), (2, 1, 4, 15, 9, 7),
                                                     (2, 17, 3, 20, 23, 3), (2, 16, 2, 14, 30, 5)] {
            let w = rng.uniformTensor([outC, inC, k, k], low: -1, high: 1)
            let mask = Tensor(shape: w.shape, scalars: (0..<w.count).map { _ in rng.bernoulli(0.5) })
            let x = rng.uniformTensor([batch, inC, height, width], low: -1, high: 1)
            let dy = rng.uniformTensor([batch, outC, height, width], low: -1, high: 1)
            let g = Kernels.maskedConv2DBackward(dy, input: x, weight: w, mask: mask)
            let y = Kernels.maskedConv2DReference(x, weight: w, mask: mask, bias: nil)
            #expect(Kernels.maskedConv2D(x, weight: w, mask: mask, bias: nil).maxAbsoluteDifference(y) < 1e-4)
            let scale = max(1, abs(dot(dy, y)))
            #expect(abs(dot(dy, y) - dot(g.input!, x)) < 1e-4 * scale)
            #expect(abs(dot(dy, y) - dot(g.weight, w)) < 1e-4 * scale)
            // The weight gradient is zero wherever the mask is.
            for i in 0..<mask.count where mask.scalars[i] == 0 { #expect(g.weight.scalars[i] == 0) }
        }
    }

    /// The padded grid keeps only the padding the active taps reach: one-row kernels, kernels that
    /// reach only rows above, and half-width kernels, with stacked (3 inputs) and per-tap (17) GEMMs.
    @Test func maskedConv2DPadsWhatTheTapsReach() {
        var rng = RandomGenerator(seed: 8)
        let shapes: [(String, (Int, Int) -> Bool)] = [("centre row", { r, _ in r == 2 }), ("rows above", { r, _ in r < 2 }),
                                                      ("type B", { r, c in r < 2 || (r == 2 && c <= 2) }), ("right half", { _, c in c >= 2 }), ("nothing", { _, _ in false }),
                                                      ("bottom right corner", { r, c in r == 4 && c == 4 })]
        for (name, keep) in shapes { for inC in [3, 17] {
            let w = rng.uniformTensor([4, inC, 5, 5], low: -1, high: 1)
            var mask = Tensor.zeros(w.shape)
            for o in 0..<4 { for i in 0..<inC { for r in 0..<5 { for c in 0..<5 where keep(r, c) { mask[o, i, r, c] = 1 } } } }
            let x = rng.uniformTensor([3, inC, 6, 7], low: -1, high: 1), dy = rng.uniformTensor([3, 4, 6, 7], low: -1, high: 1)
            let y = Kernels.maskedConv2DReference(x, weight: w, mask: mask, bias: nil)
            #expect(Kernels.maskedConv2D(x, weight: w, mask: mask, bias: nil).maxAbsoluteDifference(y) < 1e-4, "\(name), \(inC) inputs")
            let g = Kernels.maskedConv2DBackward(dy, input: x, weight: w, mask: mask)
            let scale = max(1, abs(dot(dy, y)))
            #expect(abs(dot(dy, y) - dot(g.input!, x)) < 1e-4 * scale, "\(name), \(inC) inputs")
            #expect(abs(dot(dy, y) - dot(g.weight, w)) < 1e-4 * scale, "\(name), \(inC) inputs")
        } }
    }

    @Test func maskedTapsAreSkipped() {
        var mask = Tensor.ones([2, 2, 3, 3])
        for o in 0..<2 { for i in 0..<2 { for c in 0..<3 { mask[o, i, 2, c] = 0 } ; mask[o, i, 1, 2] = 0 } }
        let taps = ConvolutionTaps(kernelHeight: 3, kernelWidth: 3, mask: mask)
        #expect(taps.taps.count == 5)
        #expect(!taps.taps.contains { $0.row == 2 })
    }

    @Test(arguments: UnaryFunction.allCases)
    func unaryMatchesLibm(function: UnaryFunction) {
        var rng = RandomGenerator(seed: 7)
        let low: Float = function == .log ? 1e-3 : -30
        let x = rng.uniformTensor([1000], low: low, high: function == .exp ? 80 : 30)
        let small = rng.uniformTensor([37], low: function == .log ? 1e-3 : -0.2, high: 0.2)
        for input in [x, small] {
            let y = Kernels.unary(function, input)
            for i in 0..<input.count {
                let expected = function.reference(Double(input.scalars[i]))
                let error = abs(Double(y.scalars[i]) - expected)
                #expect(error <= 4e-7 * max(1, abs(expected)) + 1e-7 * abs(expected) * 8,
                        "\(function)(\(input.scalars[i])) = \(y.scalars[i]), libm \(expected)")
            }
        }
    }

    @Test func gatedActivationMatchesReference() {
        var rng = RandomGenerator(seed: 8)
        let n = 1000 + rng.integer(below: 17)
        let a = rng.uniformTensor([n], low: -8, high: 8), b = rng.uniformTensor([n], low: -8, high: 8)
        var y = [Float](repeating: 0, count: n)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in y.withUnsafeMutableBufferPointer {
            Kernels.gatedForward(count: n, filter: ap.baseAddress!, gate: bp.baseAddress!, output: $0.baseAddress!)
        } } }
        for i in 0..<n {
            let expected = tanh(Double(a.scalars[i])) / (1 + exp(-Double(b.scalars[i])))
            #expect(abs(Double(y[i]) - expected) < 1e-6)
        }
    }

    @Test func softmaxCrossEntropyMatchesReference() {
        var rng = RandomGenerator(seed: 9)
        let logits = rng.uniformTensor([2, 5, 3], low: -20, high: 20)
        let targets: [Int32] = [0, 4, 2, 1, -1, 3]
        let (loss, _) = Kernels.softmaxCrossEntropy(logits, targets: targets, axis: 1)
        #expect(loss.shape == [2, 3])
        for o in 0..<2 { for t in 0..<3 {
            let target = Int(targets[o * 3 + t])
            let values = (0..<5).map { Double(logits[o, $0, t]) }
            let m = values.max()!
            let lse = m + log(values.map { exp($0 - m) }.reduce(0, +))
            let expected = target < 0 ? 0 : lse - values[target]
            #expect(abs(Double(loss[o, t]) - expected) < 1e-4)
        } }
    }

    @Test func sigmoidCrossEntropyIsStableForLargeLogits() {
        let logits = Tensor(shape: [4], scalars: [-200, 200, 0.5, -0.5])
        let targets = Tensor(shape: [4], scalars: [1, 0, 1, 0])
        let loss = Kernels.sigmoidCrossEntropy(logits: logits, targets: targets)
        #expect(loss.scalars.allSatisfy { $0.isFinite })
        #expect(abs(loss.scalars[0] - 200) < 1e-3 && abs(loss.scalars[1] - 200) < 1e-3)
        #expect(abs(Double(loss.scalars[2]) - log(1 + exp(-0.5))) < 1e-6)
        let g = Kernels.sigmoidCrossEntropyBackward(logits: logits, targets: targets, gradient: .ones([4]))
        #expect(abs(g.scalars[0] + 1) < 1e-6 && abs(g.scalars[1] - 1) < 1e-6)
    }

    @Test func broadcastingMatchesIndexLoop() {
        var rng = RandomGenerator(seed: 10)
        let a = rng.uniformTensor([2, 3, 4], low: -1, high: 1)
        let b = rng.uniformTensor([3, 1], low: -1, high: 1)
        for function in BinaryFunction.allCases {
            let y = Kernels.binary(function, a, b)
            #expect(y.shape == [2, 3, 4])
            for i in 0..<2 { for j in 0..<3 { for k in 0..<4 {
                #expect(y[i, j, k] == function.apply(a[i, j, k], b[j, 0]))
            } } }
        }
        let reduced = Kernels.sum(a, toShape: [3, 1])
        for j in 0..<3 {
            var s: Float = 0
            for i in 0..<2 { for k in 0..<4 { s += a[i, j, k] } }
            #expect(abs(reduced[j, 0] - s) < 1e-5)
        }
    }

    /// Summing leading axes away (a bias gradient; rows in blocks, columns over the cores) against Double loops.
    @Test func leadingAxesSumMatchesIndexLoop() {
        var rng = RandomGenerator(seed: 16)
        for (rows, inner) in [(3, 5), (200, 70), (1000, 300)] {
            let x = rng.uniformTensor([rows / 2 + 1, 2, inner], low: -1, high: 1)
            let reduced = Kernels.sum(x, toShape: [1, 1, inner])
            #expect(reduced.shape == [1, 1, inner])
            var worst = 0.0
            for k in 0..<inner {
                var s = 0.0
                for i in 0..<(rows / 2 + 1) { for j in 0..<2 { s += Double(x[i, j, k]) } }
                worst = max(worst, abs(Double(reduced[0, 0, k]) - s))
            }
            #expect(worst < 1e-4)
            let partly = Kernels.sum(x, toShape: [1, 2, inner])
            for j in 0..<2 { for k in Swift.stride(from: 0, to: inner, by: 7) {
                var s = 0.0
                for i in 0..<(rows / 2 + 1) { s += Double(x[i, j, k]) }
                #expect(abs(Double(partly[0, j, k]) - s) < 1e-4)
            } }
        }
    }

    /// The blocked-transpose paths of permute (axis rotations, last-two swaps, NCHW ↔ NHWC; large enough to split
    /// over the cores) and the short-block paths of slice and accumulateSlice against index loops.
    @Test func fastLayoutPathsMatchIndexLoops() {
        var rng = RandomGenerator(seed: 12)
        let x = rng.uniformTensor([3, 41, 50, 45], low: -1, high: 1)
        let rotated = Kernels.permute(x, [3, 0, 1, 2])
        let back = Kernels.permute(rotated, [1, 2, 3, 0])
        #expect(rotated.shape == [45, 3, 41, 50] && back == x)
        let swapped = Kernels.permute(x, [0, 1, 3, 2])
        let general = Kernels.permute(x, [1, 0, 2, 3])
        let channelsLast = Kernels.permute(x, [0, 2, 3, 1])
        #expect(channelsLast.shape == [3, 50, 45, 41] && Kernels.permute(channelsLast, [0, 3, 1, 2]) == x)
        for a in 0..<3 { for b in stride(from: 0, to: 41, by: 7) { for c in 0..<50 { for d in stride(from: 0, to: 45, by: 4) {
            #expect(rotated[d, a, b, c] == x[a, b, c, d])
            #expect(swapped[a, b, d, c] == x[a, b, c, d])
            #expect(general[b, a, c, d] == x[a, b, c, d])
            #expect(channelsLast[a, c, d, b] == x[a, b, c, d])
        } } } }
        let column = Kernels.slice(x, axis: 3, range: 7..<8)
        for a in 0..<3 { for b in 0..<41 { for c in 0..<50 { #expect(column[a, b, c, 0] == x[a, b, c, 7]) } } }
        var y = Tensor.zeros(x.shape)
        Kernels.accumulateSlice(&y, column, axis: 3, range: 7..<8)
        Kernels.accumulateSlice(&y, column, axis: 3, range: 7..<8)
        #expect(y == Kernels.sliceBackward(Kernels.scale(column, by: 2), shape: x.shape, axis: 3, range: 7..<8))
    }

    @Test func layoutOpsMatchIndexLoops() {
        var rng = RandomGenerator(seed: 11)
        let x = rng.uniformTensor([2, 3, 4], low: -1, high: 1)
        let p = Kernels.permute(x, [2, 0, 1])
        #expect(p.shape == [4, 2, 3])
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { #expect(p[k, i, j] == x[i, j, k]) } } }
        let s = Kernels.slice(x, axis: 1, range: 1..<3)
        for i in 0..<2 { for j in 0..<2 { for k in 0..<4 { #expect(s[i, j, k] == x[i, j + 1, k]) } } }
        let parts = Kernels.split(x, axis: 2, sizes: [1, 3])
        #expect(Kernels.concatenate(parts, axis: 2) == x)
        let total = Kernels.sum(x, axes: [0, 2])
        for j in 0..<3 {
            var t: Float = 0
            for i in 0..<2 { for k in 0..<4 { t += x[i, j, k] } }
            #expect(abs(total[j] - t) < 1e-5)
        }
        let table = rng.uniformTensor([5, 3])
        let rows = Kernels.embedding(table, indices: [4, 0, 4])
        #expect(rows[0, 2] == table[4, 2] && rows[1, 1] == table[0, 1])
        let back = Kernels.embeddingBackward(.ones([3, 3]), indices: [4, 0, 4], rows: 5)
        #expect(back[4, 0] == 2 && back[0, 0] == 1 && back[2, 0] == 0)
        #expect(Kernels.oneHot([2, 0], classes: 3).scalars == [0, 0, 1, 1, 0, 0])
    }

    func dot(_ a: Tensor, _ b: Tensor) -> Double {
        zip(a.scalars, b.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }
}

@Suite struct SmallMatmulTests {
    @Test func accumulateProductMatchesGemmReference() {
        var rng = RandomGenerator(seed: 12)
        for (rows, inputs, outputs) in [(1, 32, 64), (3, 7, 130), (8, 32, 512), (2, 5, 9), (1, 1, 16), (6, 9, 50), (4, 3, 33)] {
            let x = rng.uniformTensor([rows, inputs], low: -1, high: 1)
            let w = rng.uniformTensor([inputs, outputs], low: -1, high: 1)
            let start = rng.uniformTensor([rows, outputs], low: -1, high: 1)
            var fast = start
            x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in fast.withUnsafeMutableBufferPointer { op in
                Kernels.accumulateProduct(rows: rows, inputs: inputs, outputs: outputs, x: xp.baseAddress!, xStride: inputs,
                                          w: wp.baseAddress!, out: op.baseAddress!, outStride: outputs)
            } } }
            let expected = Kernels.add(start, Kernels.matmul(x, w, reference: true))
            #expect(fast.maxAbsoluteDifference(expected) < 1e-4, "\(rows)×\(inputs)×\(outputs)")
        }
    }
}

@Suite struct TapProductTests {
    /// Runs on every x86-64 CPU with AVX2 and FMA (every machine this project targets): a build that
    /// silently fell back to per-tap GEMMs there would fail here.
    @Test func isAvailableWhereTheCPUHasAVX2AndFMA() throws {
        #if arch(x86_64)
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = Set((info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? "").split(separator: " ").map(String.init))
        #expect(TapProduct.isAvailable == (flags.contains("avx2") && flags.contains("fma")))
        #expect(TapProduct.hasWidePanels == (TapProduct.isAvailable && flags.contains("avx512f")))
        #else
        #expect(!TapProduct.isAvailable)
        #endif
    }

    /// The block widths this CPU runs: 16 columns (AVX2), and 32 (AVX-512) where it has that.
    static var widths: [Int] { TapProduct.hasWidePanels ? [16, 32] : [16] }

    /// `out[o, j] += Σ_t Σ_i W_t[o, i] · in[i, j + shift_t]`, plain, transposed and overwriting, against index
    /// loops, over column counts that leave whole 16- and 32-column blocks and partial ones, in both widths.
    @Test(arguments: [(8, 5, 37), (4, 12, 16), (12, 4, 7), (16, 16, 100), (20, 3, 64), (8, 6, 50)])
    func matchesIndexLoops(shape: (outputs: Int, inputs: Int, columns: Int)) throws {
        try #require(TapProduct.isAvailable)
        var rng = RandomGenerator(seed: 14)
        let (o, i, columns) = shape, shifts = [0, 2, 7], inputLd = columns + 9
        for width in Self.widths { for (transposed, overwrite) in [(false, false), (true, false), (false, true)] {
            // Stored as W_t[a, b] with (a, b) = (o, i), or (i, o) for the transposed product.
            let (rows, cols) = transposed ? (i, o) : (o, i)
            let weights = rng.uniformTensor([shifts.count, rows, cols], low: -1, high: 1)
            let input = rng.uniformTensor([i, inputLd], low: -1, high: 1)
            let start = rng.uniformTensor([o, columns + 3], low: -1, high: 1)
            var product = try #require(TapProduct(packedTaps: weights.scalars, taps: shifts.count, outputs: rows, inputs: cols,
                                                  transposed: transposed))
            product.width = width
            var fast = start
            input.withUnsafeBufferPointer { xp in fast.withUnsafeMutableBufferPointer { op in shifts.withUnsafeBufferPointer { sp in
                product.accumulate(input: xp.baseAddress!, inputLd: inputLd, shifts: sp.baseAddress!, output: op.baseAddress!,
                                   outputLd: columns + 3, columns: columns, overwrite: overwrite)
            } } }
            var expected = start
            for out in 0..<o { for j in 0..<columns {
                var sum = overwrite ? 0 : Double(start.scalars[out * (columns + 3) + j])
                for (t, shift) in shifts.enumerated() { for k in 0..<i {
                    let w = transposed ? weights.scalars[(t * i + k) * o + out] : weights.scalars[(t * o + out) * i + k]
                    sum += Double(w) * Double(input.scalars[k * inputLd + j + shift])
                } }
                expected.scalars[out * (columns + 3) + j] = Float(sum)
            } }
            #expect(fast.maxAbsoluteDifference(expected) < 1e-4, "\(shape), width \(width), transposed \(transposed), overwrite \(overwrite)")
        } }
    }

    /// `dW[(t·O + o)·I + i] += Σ_q g[o, q] · in[i, q + shift_t]` against index loops: inputs that leave
    /// a partial panel of 16 or 32, and more columns than one chunk of 256, in both widths.
    @Test(arguments: [(8, 5, 37), (4, 20, 300), (16, 16, 600), (12, 40, 70)])
    func weightGradientMatchesIndexLoops(shape: (outputs: Int, inputs: Int, columns: Int)) throws {
        try #require(TapProduct.isAvailable)
        for width in Self.widths { try weightGradientMatchesIndexLoops(shape: shape, width: width) }
    }

    func weightGradientMatchesIndexLoops(shape: (outputs: Int, inputs: Int, columns: Int), width: Int) throws {
        var rng = RandomGenerator(seed: 15)
        let (o, i, columns) = shape, shifts = [0, 3, 29], gradientLd = columns + 5, inputLd = columns + 31
        let gradient = rng.uniformTensor([o, gradientLd], low: -1, high: 1)
        let input = rng.uniformTensor([i, inputLd], low: -1, high: 1)
        let start = rng.uniformTensor([shifts.count, o, i], low: -1, high: 1)
        var fast = start
        let done = gradient.withUnsafeBufferPointer { gp in input.withUnsafeBufferPointer { xp in
            fast.withUnsafeMutableBufferPointer { wp in shifts.withUnsafeBufferPointer { sp in
                TapProduct.accumulateWeightGradient(outputs: o, inputs: i, taps: shifts.count, gradient: gp.baseAddress!, gradientLd: gradientLd,
                                                    input: xp.baseAddress!, inputLd: inputLd, shifts: sp.baseAddress!, columns: columns,
                                                    into: wp.baseAddress!, width: width)
            } }
        } }
        #expect(done)
        var expected = start
        for (t, shift) in shifts.enumerated() { for out in 0..<o { for k in 0..<i {
            var sum = Double(start.scalars[(t * o + out) * i + k])
            for q in 0..<columns { sum += Double(gradient.scalars[out * gradientLd + q]) * Double(input.scalars[k * inputLd + q + shift]) }
            expected.scalars[(t * o + out) * i + k] = Float(sum)
        } } }
        #expect(fast.maxAbsoluteDifference(expected) < 1e-3, "\(shape), width \(width)")
    }

    @Test func refusesOutputsNotAMultipleOfFour() {
        #expect(TapProduct(packedTaps: [Float](repeating: 0, count: 2 * 6 * 3), taps: 2, outputs: 6, inputs: 3) == nil)
        #expect(TapProduct(packedTaps: [Float](repeating: 0, count: 2 * 4 * 3), taps: 2, outputs: 4, inputs: 3, transposed: true) == nil)
    }
}

@Suite struct NaNPropagationTests {
    /// A diverging run must show up as a non-finite loss: no kernel may turn NaN into a number.
    @Test(arguments: UnaryFunction.allCases)
    func nanStaysNaN(function: UnaryFunction) {
        let x = Tensor(shape: [20], scalars: [Float](repeating: .nan, count: 20))
        #expect(Kernels.unary(function, x).scalars.allSatisfy { $0.isNaN })
    }
}

@Suite struct VectorSquareRootTests {
    @Test func matchesLibm() {
        var rng = RandomGenerator(seed: 15)
        var values = (0..<4000).map { _ in Float(exp(Double(rng.uniform(-30, 30)))) }
        values += [0, 1, 4, 1e-30, 3e38]
        for start in stride(from: 0, to: values.count - 15, by: 16) {
            var v = Vector()
            for lane in 0..<16 { v[lane] = values[start + lane] }
            let r = VectorMath.squareRoot(v)
            for lane in 0..<16 {
                let expected = Double(values[start + lane]).squareRoot()
                #expect(abs(Double(r[lane]) - expected) <= 4e-7 * expected, "√\(values[start + lane]) = \(r[lane])")
            }
        }
    }
}

/// The fused masked `linear` kernels (block-skipping by `MaskLayout`) against plain products.
@Suite struct MaskedLinearKernelTests {
    enum MaskKind: CaseIterable { case staircase, strictStaircase, random, zeroRows, shuffledDegrees, mirrored, none }

    func mask(_ kind: MaskKind, outputs: Int, inputs: Int, generator: inout RandomGenerator) -> Tensor? {
        // Sorted degrees as in MADE: output o has degree 1 + o·I/O, input i degree i + 1.
        let degree = { (o: Int) in 1 + o * inputs / outputs }
        switch kind {
        case .none: return nil
        case .staircase:
            return Tensor(shape: [outputs, inputs], scalars: (0..<(outputs * inputs)).map { Float(degree($0 / inputs) >= $0 % inputs + 1 ? 1 : 0) })
        case .strictStaircase:
            return Tensor(shape: [outputs, inputs], scalars: (0..<(outputs * inputs)).map { Float(degree($0 / inputs) > $0 % inputs + 1 ? 1 : 0) })
        case .random:
            return Tensor(shape: [outputs, inputs], scalars: (0..<(outputs * inputs)).map { _ in generator.bernoulli(0.5) })
        case .shuffledDegrees:
            // An order-agnostic MADE mask: inputs in a random order, outputs with random degrees.
            var order = Array(1...inputs)
            for i in stride(from: inputs - 1, to: 0, by: -1) { order.swapAt(i, generator.integer(below: i + 1)) }
            let outputDegree = (0..<outputs).map { _ in 1 + generator.integer(below: inputs) }
            return Tensor(shape: [outputs, inputs], scalars: (0..<(outputs * inputs)).map { Float(outputDegree[$0 / inputs] >= order[$0 % inputs] ? 1 : 0) })
        case .mirrored:
            // A staircase from the right (rows of zeros then ones): blocks to skip, but no runs from the first column.
            return Tensor(shape: [outputs, inputs], scalars: (0..<(outputs * inputs)).map { Float(degree($0 / inputs) >= inputs - $0 % inputs ? 1 : 0) })
        case .zeroRows:
            // The first rows see nothing (like FVSBN's first output), then a staircase.
            return Tensor(shape: [outputs, inputs], scalars: (0..<(outputs * inputs)).map {
                Float($0 / inputs >= outputs / 3 && degree($0 / inputs) > $0 % inputs ? 1 : 0)
            })
        }
    }

    @Test(arguments: MaskKind.allCases, [(5, 11, 7, 4), (40, 180, 150, 64), (33, 200, 190, 16)])
    func matchesPlainProducts(kind: MaskKind, size: (n: Int, inputs: Int, outputs: Int, block: Int)) {
        var rng = RandomGenerator(seed: 21)
        let x = rng.uniformTensor([size.n, size.inputs], low: -1, high: 1)
        let w = rng.uniformTensor([size.outputs, size.inputs], low: -1, high: 1)
        let b = rng.uniformTensor([size.outputs], low: -1, high: 1)
        let dy = rng.uniformTensor([size.n, size.outputs], low: -1, high: 1)
        let m = mask(kind, outputs: size.outputs, inputs: size.inputs, generator: &rng)
        let layout = m.map { MaskLayout(mask: $0, blockSize: size.block) }
        let expectedWeight = m.map { Kernels.binary(.multiply, w, $0) } ?? w
        let expected = Kernels.add(Kernels.matmul(x, expectedWeight, transposeRight: true, reference: true), b)
        // The masked weight as `linear` hands it to the input gradient: in the layout's order.
        var ordered = expectedWeight
        if let layout, let rows = layout.rowOrder, let columns = layout.columnOrder {
            for a in 0..<size.outputs { for c in 0..<size.inputs { ordered[a, c] = expectedWeight[rows[a], columns[c]] } }
        }
        for bias in [true, false] {
            let (output, effective) = Kernels.linear(x, weight: w, mask: m, layout: layout, bias: bias ? b : nil)
            let target = bias ? expected : Kernels.matmul(x, expectedWeight, transposeRight: true, reference: true)
            #expect(output.maxAbsoluteDifference(target) < 1e-4, "\(kind) \(size) bias \(bias)")
            #expect(effective.maxAbsoluteDifference(ordered) == 0)
        }
        let dx = Kernels.linearInputGradient(dy, effective: ordered, layout: layout)
        #expect(dx.maxAbsoluteDifference(Kernels.matmul(dy, expectedWeight, reference: true)) < 1e-4, "\(kind) \(size)")
        let dw = Kernels.linearWeightGradient(dy, input: x, mask: m, layout: layout)
        let dwPlain = Kernels.matmul(dy, x, transposeLeft: true, reference: true)
        #expect(dw.maxAbsoluteDifference(m.map { Kernels.binary(.multiply, dwPlain, $0) } ?? dwPlain) < 1e-4, "\(kind) \(size)")
    }

    @Test func staircaseMasksSkipAboutHalf() {
        var rng = RandomGenerator(seed: 22)
        let staircase = MaskLayout(mask: mask(.staircase, outputs: 500, inputs: 784, generator: &rng)!)
        let area = staircase.rowBlocks.reduce(0) { $0 + $1.rows.count * $1.columns.count }
        #expect(staircase.rowBlocks.count == 8 && area < 500 * 784 * 6 / 10)
        // Its rows are runs from the first column, so the kernels mask by run length, not by reading the mask.
        #expect(staircase.rowOrder == nil && staircase.runLengths == (0..<500).map { 1 + $0 * 784 / 500 })
        let mirrored = MaskLayout(mask: mask(.mirrored, outputs: 500, inputs: 784, generator: &rng)!)
        #expect(mirrored.rowOrder == nil && mirrored.runLengths == nil)
        #expect(mirrored.rowBlocks.reduce(0) { $0 + $1.rows.count * $1.columns.count } < 500 * 784 * 6 / 10)
        let columnArea = staircase.columnBlocks.reduce(0) { $0 + $1.rows.count * $1.columns.count }
        #expect(columnArea < 500 * 784 * 6 / 10)
        // No structure: one dense block.
        let random = MaskLayout(mask: mask(.random, outputs: 50, inputs: 60, generator: &rng)!)
        #expect(random == .dense(rows: 50, columns: 60))
        // Shuffled degrees are a staircase once reordered: about half is skipped again.
        let shuffled = MaskLayout(mask: mask(.shuffledDegrees, outputs: 500, inputs: 784, generator: &rng)!)
        #expect(shuffled.rowOrder != nil && shuffled.columnOrder != nil)
        #expect(shuffled.rowBlocks.reduce(0) { $0 + $1.rows.count * $1.columns.count } < 500 * 784 * 6 / 10)
    }
}
