import Autodiff
import Testing
import Tensors
import TestSupport

/// One row per differentiable op: how to build it from its inputs, and which inputs to use.
struct OpCase: CustomTestStringConvertible, Sendable {
    let name: String
    let inputs: @Sendable (inout RandomGenerator) -> [Tensor]
    let build: @Sendable ([Variable]) -> Variable
    var testDescription: String { name }
}

private func uniform(_ shape: [Int], _ low: Float = -1, _ high: Float = 1) -> @Sendable (inout RandomGenerator) -> Tensor {
    { $0.uniformTensor(shape, low: low, high: high) }
}

private func inputs(_ makers: (@Sendable (inout RandomGenerator) -> Tensor)...) -> @Sendable (inout RandomGenerator) -> [Tensor] {
    { rng in makers.map { $0(&rng) } }
}

/// Inputs to relu kept away from its kink at 0, so that ±h never crosses it.
private func awayFromZero(_ shape: [Int]) -> @Sendable (inout RandomGenerator) -> Tensor {
    { rng in
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
            let v = rng.uniform(0.1, 1)
            return rng.bernoulli(0.5) == 1 ? v : -v
        })
    }
}

let opTable: [OpCase] = [
    OpCase(name: "matmul", inputs: inputs(uniform([3, 4]), uniform([4, 5]))) { matmul($0[0], $0[1]) },
    OpCase(name: "matmul AᵀB", inputs: inputs(uniform([4, 3]), uniform([4, 5]))) { matmul($0[0], $0[1], transposeLeft: true) },
    OpCase(name: "matmul ABᵀ", inputs: inputs(uniform([3, 4]), uniform([5, 4]))) { matmul($0[0], $0[1], transposeRight: true) },
    OpCase(name: "matmul AᵀBᵀ", inputs: inputs(uniform([4, 3]), uniform([5, 4]))) { matmul($0[0], $0[1], transposeLeft: true, transposeRight: true) },
    OpCase(name: "batched matmul", inputs: inputs(uniform([2, 3, 4]), uniform([2, 4, 2]))) { matmul($0[0], $0[1]) },
    OpCase(name: "batched matmul, shared right", inputs: inputs(uniform([2, 3, 4]), uniform([4, 2]))) { matmul($0[0], $0[1]) },
    OpCase(name: "linear", inputs: inputs(uniform([3, 4]), uniform([5, 4]), uniform([5]))) { linear($0[0], weight: $0[1], bias: $0[2]) },
    OpCase(name: "masked linear", inputs: inputs(uniform([3, 4]), uniform([5, 4]), uniform([5]))) {
        linear($0[0], weight: $0[1], bias: $0[2], mask: Tensor(shape: [5, 4], scalars: (0..<20).map { Float($0 % 3 == 0 ? 0 : 1) }))
    },
    OpCase(name: "add (broadcast)", inputs: inputs(uniform([2, 3, 4]), uniform([3, 1]))) { $0[0] + $0[1] },
    OpCase(name: "subtract (broadcast)", inputs: inputs(uniform([2, 3]), uniform([3]))) { $0[0] - $0[1] },
    OpCase(name: "multiply (broadcast)", inputs: inputs(uniform([2, 3, 4]), uniform([1, 3, 1]))) { $0[0] * $0[1] },
    OpCase(name: "divide", inputs: inputs(uniform([2, 3]), uniform([2, 3], 0.5, 2))) { $0[0] / $0[1] },
    OpCase(name: "scale and shift", inputs: inputs(uniform([5]))) { -($0[0] * 3) + 2 },
    OpCase(name: "clamped", inputs: inputs(awayFromZero([10]))) { clamped($0[0], min: 0.05) },
    OpCase(name: "tanh", inputs: inputs(uniform([10], -3, 3))) { tanh($0[0]) },
    OpCase(name: "sigmoid", inputs: inputs(uniform([10], -5, 5))) { sigmoid($0[0]) },
    OpCase(name: "relu", inputs: inputs(awayFromZero([10]))) { relu($0[0]) },
    OpCase(name: "relu dropout", inputs: inputs(awayFromZero([40]))) {
        var generator = RandomGenerator(seed: 3)  // the same mask on every call
        return reluDropout($0[0], rate: 0.4, generator: &generator)
    },
    OpCase(name: "dropout", inputs: inputs(uniform([40]))) {
        var generator = RandomGenerator(seed: 3)
        return dropout($0[0], rate: 0.4, generator: &generator)
    },
    OpCase(name: "exp", inputs: inputs(uniform([10], -2, 2))) { exp($0[0]) },
    OpCase(name: "log", inputs: inputs(uniform([10], 0.5, 3))) { log($0[0]) },
    OpCase(name: "softplus", inputs: inputs(uniform([10], -5, 5))) { softplus($0[0]) },
    OpCase(name: "gated activation", inputs: inputs(uniform([2, 3, 5], -3, 3), uniform([2, 3, 5], -3, 3))) {
        gatedActivation(filter: $0[0], gate: $0[1])
    },
    OpCase(name: "gated activation (stacked halves)", inputs: inputs(uniform([2, 6, 4], -3, 3))) { gatedActivation(stacked: $0[0]) },
    // Both outputs of the fused LSTM cell, over two steps (so c₋ and the cell's own gradient both flow);
    // 3·5 = 15 positions per block exercise the 16-lane kernels' tail, 2·… items the batch loop.
    OpCase(name: "LSTM cell (fused)", inputs: inputs(uniform([2, 12, 5], -3, 3), uniform([2, 12, 5], -3, 3), uniform([2, 3, 5], -2, 2))) {
        let first = lstmCell(gates: $0[0], cell: $0[2])
        let second = lstmCell(gates: $0[1] + concatenate([first.hidden, first.hidden, first.hidden, first.hidden], axis: 1), cell: first.cell)
        return concatenate([second.hidden, second.cell * 0.5, first.hidden], axis: 1)
    },
    OpCase(name: "LSTM cell (fused, first step)", inputs: inputs(uniform([3, 8, 7], -3, 3))) {
        let step = lstmCell(gates: $0[0], cell: nil)
        return step.hidden * 2 + step.cell
    },
    OpCase(name: "softmax cross-entropy (class axis 1)", inputs: inputs(uniform([2, 4, 3], -3, 3))) {
        softmaxCrossEntropy(logits: $0[0], targets: [0, 3, 1, 2, -1, 3], axis: 1)
    },
    OpCase(name: "softmax cross-entropy (last axis)", inputs: inputs(uniform([3, 5], -3, 3))) {
        softmaxCrossEntropy(logits: $0[0], targets: [4, 0, 2], axis: 1)
    },
    OpCase(name: "sigmoid cross-entropy", inputs: inputs(uniform([6], -4, 4))) {
        sigmoidCrossEntropy(logits: $0[0], targets: Tensor(shape: [6], scalars: [0, 1, 1, 0, 0.5, 1]))
    },
    OpCase(name: "log softmax", inputs: inputs(uniform([2, 4, 3], -3, 3))) { logSoftmax($0[0], axis: 1) },
    OpCase(name: "log-sum-exp", inputs: inputs(uniform([3, 4], -3, 3))) { logSumExp($0[0], axis: 1) },
    OpCase(name: "sum over axes", inputs: inputs(uniform([2, 3, 4]))) { sum($0[0], axes: [0, 2]) },
    OpCase(name: "mean", inputs: inputs(uniform([2, 3]))) { mean($0[0]) },
    OpCase(name: "reshape", inputs: inputs(uniform([2, 6]))) { reshape($0[0], [3, 4]) * reshape($0[0], [3, 4]) },
    OpCase(name: "permute", inputs: inputs(uniform([2, 3, 4]))) { permute($0[0], [2, 0, 1]) },
    OpCase(name: "slice", inputs: inputs(uniform([2, 5, 3]))) { slice($0[0], axis: 1, range: 1..<4) },
    OpCase(name: "concatenate", inputs: inputs(uniform([2, 2]), uniform([2, 3]))) { concatenate([$0[0], $0[1], $0[0]], axis: 1) },
    OpCase(name: "concatenate channels, time range", inputs: inputs(uniform([2, 2, 5]), uniform([2, 3, 5]))) {
        concatenateChannels([$0[0], $0[1]], times: 1..<4)
    },
    OpCase(name: "split", inputs: inputs(uniform([4, 3]))) { let p = split($0[0], axis: 0, sizes: [1, 3]); return p[1] * p[0] },
    OpCase(name: "embedding", inputs: inputs(uniform([5, 3]))) { embedding($0[0], indices: [4, 1, 4, 0]) },
    OpCase(name: "causal conv1d (taps 2, dilation 2)", inputs: inputs(uniform([2, 3, 9]), uniform([2, 4, 3]), uniform([4]))) {
        causalConv1D($0[0], weight: $0[1], bias: $0[2], dilation: 2)
    },
    OpCase(name: "causal conv1d (taps 3, dilation 1, offset 1)", inputs: inputs(uniform([1, 2, 7]), uniform([3, 2, 2]), uniform([2]))) {
        causalConv1D($0[0], weight: $0[1], bias: $0[2], dilation: 1, offset: 1)
    },
    OpCase(name: "causal conv1d on classes (lookups)", inputs: inputs(uniform([2, 3, 4]), uniform([3]))) {
        causalConv1D(classes: [[0, 3, 1, 1, 2], [2, 2, 0, 3, 1]], weight: $0[0], bias: $0[1], dilation: 2, offset: 1)
    },
    OpCase(name: "masked conv2d", inputs: inputs(uniform([2, 2, 4, 5]), uniform([3, 2, 3, 3]), uniform([3]))) {
        var mask = Tensor.ones([3, 2, 3, 3])
        for o in 0..<3 { for i in 0..<2 { mask[o, i, 2, 0] = 0; mask[o, i, 2, 1] = 0; mask[o, i, 2, 2] = 0; mask[o, i, 1, 2] = 0 } }
        return maskedConv2D($0[0], weight: $0[1], mask: mask, bias: $0[2])
    },
    OpCase(name: "grid conv2d, residual relu block (3×3 type B)", inputs: inputs(awayFromZero([2, 16, 3, 4]), uniform([16, 16, 3, 3]), uniform([16]))) {
        let mask = typeBMask(outputs: 16, inputs: 16), taps = ConvolutionTaps(kernelHeight: 3, kernelWidth: 3, mask: mask)
        let grid = ImageGrid(batch: 2, height: 3, width: 4, taps: taps)
        return fromGrid(gridConv2D(toGrid($0[0], grid: grid), weight: $0[1], mask: mask, bias: $0[2], taps: taps, grid: grid,
                                   reluInput: true, residual: true), grid: grid)
    },
    OpCase(name: "grid conv2d, 1×1 of relu on a 3×3 grid", inputs: inputs(awayFromZero([2, 4, 3, 2]), uniform([3, 4, 1, 1]), uniform([3]))) {
        let grid = ImageGrid(batch: 2, height: 3, width: 2, taps: ConvolutionTaps(kernelHeight: 3, kernelWidth: 3, mask: typeBMask(outputs: 1, inputs: 1)))
        return fromGrid(gridConv2D(toGrid($0[0], grid: grid), weight: $0[1], mask: nil, bias: $0[2],
                                   taps: ConvolutionTaps(kernelHeight: 1, kernelWidth: 1, mask: nil), grid: grid, reluInput: true), grid: grid)
    },
    OpCase(name: "conv2d 5×5 unmasked", inputs: inputs(uniform([1, 2, 3, 4]), uniform([2, 2, 5, 5]), uniform([2]))) {
        maskedConv2D($0[0], weight: $0[1], mask: nil, bias: $0[2])
    },
]

/// A k×k raster mask of type B: the rows above, the pixels to the left and the centre.
private func typeBMask(outputs: Int, inputs: Int, kernel k: Int = 3) -> Tensor {
    var mask = Tensor.ones([outputs, inputs, k, k])
    let centre = k / 2
    for o in 0..<outputs { for i in 0..<inputs { for r in 0..<k { for c in 0..<k where r > centre || (r == centre && c > centre) {
        mask[o, i, r, c] = 0
    } } } }
    return mask
}

@Suite struct GradientCheckTests {
    /// A grid convolution computes what `maskedConv2D` does on the unpadded layout, for every
    /// combination of ReLU input and residual, values and gradients, over several column tiles, with the
    /// tap products (channels a multiple of 4) and without, on rows of 1 to 9 Winograd tiles (AVX-512
    /// transforms two rows at once at 4 to 7), and with 5×5 kernels; its output and its input gradient are
    /// zero at every padding position of the grid.
    @Test(arguments: [(3, false, false, 19, 3), (3, true, false, 19, 3), (17, false, true, 19, 3), (17, true, true, 19, 3),
                      (5, true, true, 19, 3), (16, true, true, 19, 3), (8, false, false, 19, 3), (12, true, false, 19, 3),
                      (16, true, true, 20, 3), (8, false, false, 20, 3), (12, true, false, 8, 3), (4, false, true, 4, 3),
                      (16, true, true, 32, 3), (8, true, false, 36, 3), (16, true, true, 28, 3), (8, false, true, 24, 3),
                      (16, true, true, 19, 5), (8, false, false, 28, 5), (5, true, false, 19, 5), (12, false, true, 6, 5)])
    func gridConvolutionMatchesTheUnpaddedOne(channels: Int, reluInput: Bool, residual: Bool, width: Int, kernel: Int) {
        var rng = RandomGenerator(seed: 96)
        let (batch, height) = (3, 20)  // 3·21·20 grid columns: several tiles
        let mask = typeBMask(outputs: channels, inputs: channels, kernel: kernel)
        let taps = ConvolutionTaps(kernelHeight: kernel, kernelWidth: kernel, mask: mask)
        let grid = ImageGrid(batch: batch, height: height, width: width, taps: taps)
        let image = rng.uniformTensor([batch, channels, height, width], low: -1, high: 1)
        let x = Variable(image, requiresGradient: true)
        let onGrid = Variable(Kernels.toGrid(image, grid: grid), requiresGradient: true)
        let weight = Variable(rng.uniformTensor([channels, channels, kernel, kernel], low: -1, high: 1), requiresGradient: true)
        let bias = Variable(rng.uniformTensor([channels], low: -1, high: 1), requiresGradient: true)
        let upstream = rng.uniformTensor([batch, channels, height, width], low: -1, high: 1)
        func gradients(_ input: Variable, _ build: () -> Variable) -> (value: Tensor, grads: [Tensor]) {
            for v in [input, weight, bias] { v.zeroGradient() }
            let y = build()
            sum(y * Variable(upstream)).backward()
            return (y.value, [input, weight, bias].map { $0.gradient! })
        }
        var gridOutput = Tensor.zeros([1])
        let fused = gradients(onGrid) {
            let y = gridConv2D(onGrid, weight: weight, mask: mask, bias: bias, taps: taps, grid: grid, reluInput: reluInput, residual: residual)
            gridOutput = y.value
            return fromGrid(y, grid: grid)
        }
        let plain = gradients(x) {
            let y = maskedConv2D(reluInput ? relu(x) : x, weight: weight, mask: mask, bias: bias)
            return residual ? x + y : y
        }
        #expect(fused.value.maxAbsoluteDifference(plain.value) < 1e-4)
        #expect(Kernels.fromGrid(fused.grads[0], grid: grid).maxAbsoluteDifference(plain.grads[0]) < 1e-3)
        for (a, b) in zip(fused.grads.dropFirst(), plain.grads.dropFirst()) { #expect(a.maxAbsoluteDifference(b) < 1e-3) }
        // Zero padding: a round trip through the image layout changes nothing.
        #expect(Kernels.toGrid(Kernels.fromGrid(gridOutput, grid: grid), grid: grid) == gridOutput)
        #expect(Kernels.toGrid(Kernels.fromGrid(fused.grads[0], grid: grid), grid: grid) == fused.grads[0])
    }

    @Test(arguments: opTable)
    func gradientMatchesFiniteDifferences(op: OpCase) {
        var rng = RandomGenerator(seed: 99)
        let failures = GradientCheck().failures(inputs: op.inputs(&rng), op.build)
        #expect(failures.isEmpty, "\(op.name): \(failures.prefix(3).joined(separator: "; "))")
    }

    /// Dropout after ReLU over several chunks: about `rate` of the positive inputs zeroed, the rest scaled
    /// so that the mean is kept, the gradient through the same mask, the same draws for the same seed.
    @Test func reluDropoutKeepsTheExpectation() {
        let n = 100_003  // four chunks, the last one short
        let x = Variable(Tensor(shape: [n], scalars: (0..<n).map { $0 % 5 == 0 ? -1 : 1 }), requiresGradient: true)
        var rng = RandomGenerator(seed: 4)
        let y = reluDropout(x, rate: 0.3, generator: &rng)
        let positive = Double(n - (n + 4) / 5)
        let kept = y.value.scalars.filter { $0 > 0 }
        #expect(abs(Double(kept.count) / positive - 0.7) < 0.01)
        #expect(abs(Double(kept.reduce(0, +)) / positive - 1) < 0.02)
        #expect(Set(kept).count == 1)
        #expect(zip(x.value.scalars, y.value.scalars).allSatisfy { $0 > 0 || $1 == 0 })
        sum(y).backward()
        #expect(x.gradient!.scalars == y.value.scalars)
        var same = RandomGenerator(seed: 4)
        #expect(reluDropout(Variable(x.value), rate: 0.3, generator: &same).value == y.value)
        #expect(reluDropout(Variable(x.value), rate: 0, generator: &same).value == relu(Variable(x.value)).value)
    }

    /// Plain dropout keeps negative values and zeros too (a kept zero still passes its gradient), with the
    /// same draws as `reluDropout` for the same generator.
    @Test func dropoutKeepsTheExpectationOfAnySign() {
        let n = 100_003
        let x = Variable(Tensor(shape: [n], scalars: (0..<n).map { Float($0 % 3) - 1 }), requiresGradient: true)
        var rng = RandomGenerator(seed: 4)
        let y = dropout(x, rate: 0.3, generator: &rng)
        var same = RandomGenerator(seed: 4)
        let rectified = reluDropout(Variable(x.value), rate: 0.3, generator: &same)
        #expect(zip(y.value.scalars, rectified.value.scalars).allSatisfy { $1 == max($0, 0) })
        let negatives = zip(x.value.scalars, y.value.scalars).filter { $0.0 < 0 }.map(\.1)
        #expect(abs(Double(negatives.filter { $0 < 0 }.count) / Double(negatives.count) - 0.7) < 0.01)
        #expect(abs(Double(negatives.reduce(0, +)) / Double(negatives.count) + 1) < 0.02)
        sum(y).backward()
        let passed = x.gradient!.scalars
        let keptZeros = (0..<n).filter { x.value.scalars[$0] == 0 && passed[$0] > 0 }.count
        #expect(abs(Double(keptZeros) / Double((n + 2) / 3) - 0.7) < 0.01)
        #expect((0..<n).allSatisfy { x.value.scalars[$0] == 0 || (passed[$0] > 0) == (y.value.scalars[$0] != 0) })
        #expect(dropout(x, rate: 0, generator: &same) === x)
    }

    /// The fused LSTM cell computes what the cell's definition composed from single ops does.
    @Test func lstmCellMatchesItsDefinition() {
        var rng = RandomGenerator(seed: 98)
        let gates = Variable(rng.uniformTensor([3, 8, 37], low: -4, high: 4)), previous = Variable(rng.uniformTensor([3, 2, 37], low: -2, high: 2))
        let parts = split(gates, axis: 1, sizes: [2, 2, 2, 2])
        let expectedCell = sigmoid(parts[1]) * previous + sigmoid(parts[2]) * tanh(parts[3])
        let expectedHidden = sigmoid(parts[0]) * tanh(expectedCell)
        let fused = lstmCell(gates: gates, cell: previous)
        #expect(fused.cell.value.maxAbsoluteDifference(expectedCell.value) < 1e-5)
        #expect(fused.hidden.value.maxAbsoluteDifference(expectedHidden.value) < 1e-5)
        let first = lstmCell(gates: gates, cell: nil)
        #expect(first.cell.value.maxAbsoluteDifference((sigmoid(parts[2]) * tanh(parts[3])).value) < 1e-5)
    }

    /// The checker itself must catch a wrong derivative.
    @Test func checkerRejectsAWrongPullback() {
        let wrong: ([Variable]) -> Variable = { v in
            let x = v[0]
            return Variable(Kernels.unary(.tanh, x.value), parents: [x]) { g in x.accumulate(g) }  // missing 1 − y²
        }
        let failures = GradientCheck().failures(inputs: [Tensor(shape: [4], scalars: [1, -1.5, 2, 0.7])], wrong)
        #expect(!failures.isEmpty)
    }
}
