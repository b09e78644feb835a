import Foundation
import Autodiff
import NeuralNetworks
import Testing
import Tensors

@Suite struct OptimizerTests {
    /// Two Adam steps against values computed by hand (in double precision, see the commit that added this).
    @Test func adamMatchesHandComputedSteps() {
        let w = parameter(Tensor(shape: [2], scalars: [1, -2]))
        let adam = Adam(learningRate: 0.1)
        w.gradient = Tensor(shape: [2], scalars: [0.5, -1])
        adam.update([NamedParameter("w", w)])
        #expect(abs(w.value.scalars[0] - 0.9) < 1e-6 && abs(w.value.scalars[1] + 1.9) < 1e-6)
        w.gradient = Tensor(shape: [2], scalars: [0.1, 0.2])
        adam.update([NamedParameter("w", w)])
        #expect(abs(w.value.scalars[0] - 0.819_695_9) < 1e-5)
        #expect(abs(w.value.scalars[1] + 1.848_897_4) < 1e-5)
        #expect(adam.stepCount == 2)
    }

    /// The vectorised body and the scalar tail (37 = 2·16 + 5 elements) against Adam's textbook
    /// formula in double precision over three steps, with and without L2 weight decay.
    @Test(arguments: [Float(0), 0.01])
    func adamVectorPathMatchesTheFormula(weightDecay: Float) {
        let n = formulaWeights
        var (m, v) = ([Double](repeating: 0, count: n), [Double](repeating: 0, count: n))
        let worst = largestDifferenceFromFormula(Adam(learningRate: 0.05, weightDecay: weightDecay), seed: 3) { x, g, step in
            for i in 0..<n {
                let gi = Double(g[i]) + Double(weightDecay) * x[i]
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.999 * v[i] + 0.001 * gi * gi
                let mHat = m[i] / (1 - pow(0.9, Double(step))), vHat = v[i] / (1 - pow(0.999, Double(step)))
                x[i] -= 0.05 * mHat / (vHat.squareRoot() + 1e-8)
            }
        }
        #expect(worst < 1e-5, "largest difference \(worst)")
    }

    @Test func adamWDecaysWeightsDirectly() {
        let w = parameter(Tensor(shape: [1], scalars: [2]))
        let adamW = Adam.adamW(learningRate: 0.1, weightDecay: 0.5)
        w.gradient = Tensor(shape: [1], scalars: [0])
        adamW.update([NamedParameter("w", w)])
        // zero gradient: only the decoupled decay acts, w ← w − lr·wd·w = 2 − 0.1
        #expect(abs(w.value.scalar - 1.9) < 1e-6)
    }

    @Test func sgdMomentumAndNesterov() {
        let w = parameter(Tensor(shape: [1], scalars: [1]))
        let sgd = SGD(learningRate: 0.1, momentum: 0.9)
        for _ in 0..<2 { w.gradient = Tensor(shape: [1], scalars: [1]); sgd.update([NamedParameter("w", w)]) }
        // buffers 1, then 1.9: w = 1 − 0.1 − 0.19
        #expect(abs(w.value.scalar - 0.71) < 1e-6)
        let v = parameter(Tensor(shape: [1], scalars: [1]))
        let nesterov = SGD(learningRate: 0.1, momentum: 0.9, nesterov: true)
        v.gradient = Tensor(shape: [1], scalars: [1])
        nesterov.update([NamedParameter("v", v)])
        // buffer 1, step g + μ·buffer = 1.9
        #expect(abs(v.value.scalar - 0.81) < 1e-6)
    }

    @Test func rmsPropStep() {
        let w = parameter(Tensor(shape: [1], scalars: [1]))
        let rms = RMSProp(learningRate: 0.01, decay: 0.9, epsilon: 0)
        w.gradient = Tensor(shape: [1], scalars: [2])
        rms.update([NamedParameter("w", w)])
        // square = 0.1·4 = 0.4, step = 2/√0.4
        let expected: Float = 1 - 0.01 * 2 / Float(0.4).squareRoot()
        #expect(abs(w.value.scalar - expected) < 1e-6)
    }

    /// Adagrad's vectorised body and scalar tail (37 elements) against its formula in double precision
    /// over three steps: Σg² accumulates and each step is lr·g/√(Σg² + ε).
    @Test func adagradMatchesItsFormula() {
        let n = formulaWeights
        var sum = [Double](repeating: 0, count: n)
        let adagrad = Adagrad(learningRate: 0.1)
        let worst = largestDifferenceFromFormula(adagrad, seed: 4) { x, g, _ in
            for i in 0..<n {
                sum[i] += Double(g[i]) * Double(g[i])
                x[i] -= 0.1 * Double(g[i]) / (sum[i] + 1e-6).squareRoot()
            }
        }
        #expect(worst < 1e-5, "largest difference \(worst)")
        // The first step of every weight is lr·sign(g) (up to ε): w = 1, g = 2 gives 0.9.
        let v = parameter(Tensor(shape: [1], scalars: [1]))
        let fresh = Adagrad(learningRate: 0.1)
        v.gradient = Tensor(shape: [1], scalars: [2])
        fresh.update([NamedParameter("v", v)])
        #expect(abs(v.value.scalar - 0.9) < 1e-6)
        #expect(adagrad.stepCount == 3 && adagrad.stateTensors().keys.sorted() == ["adagrad_sum.w"])
    }

    /// RMSProp's vectorised body and scalar tail (37 elements) against its formula in double precision over
    /// three steps, with and without momentum.
    @Test(arguments: [Float(0), 0.9])
    func rmsPropVectorPathMatchesTheFormula(momentum: Float) {
        let n = formulaWeights
        var (square, buffer) = ([Double](repeating: 0, count: n), [Double](repeating: 0, count: n))
        let rms = RMSProp(learningRate: 0.01, decay: 0.9, epsilon: 1e-8, momentum: momentum)
        let worst = largestDifferenceFromFormula(rms, seed: 6) { x, g, _ in
            for i in 0..<n {
                square[i] = 0.9 * square[i] + 0.1 * Double(g[i]) * Double(g[i])
                var step = Double(g[i]) / (square[i].squareRoot() + 1e-8)
                if momentum != 0 { buffer[i] = Double(momentum) * buffer[i] + step; step = buffer[i] }
                x[i] -= 0.01 * step
            }
        }
        #expect(worst < 1e-5, "largest difference \(worst)")
    }

    @Test func clippingScalesToTheMaximumNorm() {
        let a = parameter(.zeros([2])), b = parameter(.zeros([1]))
        a.gradient = Tensor(shape: [2], scalars: [3, 0])
        b.gradient = Tensor(shape: [1], scalars: [4])
        let params = [NamedParameter("a", a), NamedParameter("b", b)]
        #expect(clipGradientNorm(params, maxNorm: 1) == 5)
        #expect(abs(a.gradient!.scalars[0] - 0.6) < 1e-6 && abs(b.gradient!.scalars[0] - 0.8) < 1e-6)
        #expect(abs(clipGradientNorm(params, maxNorm: 10) - 1) < 1e-6)
    }

    @Test func schedules() {
        let warm = LearningRateSchedule(base: 1, warmupSteps: 10)
        #expect(warm.rate(at: 5) == 0.5 && warm.rate(at: 100) == 1)
        let stepped = LearningRateSchedule(base: 1, decay: .step(every: 10, factor: 0.5))
        #expect(stepped.rate(at: 9) == 1 && stepped.rate(at: 25) == 0.25)
        let cosine = LearningRateSchedule(base: 1, decay: .cosine(totalSteps: 100, minimum: 0))
        #expect(abs(cosine.rate(at: 50) - 0.5) < 1e-6 && cosine.rate(at: 100) < 1e-6)
    }

    /// The weight average against the formula by hand: the first update copies, then
    /// βₜ = min(β, (1 + t)/(10 + t)); 37 elements cover the vectorised body and the scalar tail.
    @Test func weightAverageFollowsItsFormula() {
        let w = parameter(Tensor(shape: [37], scalars: (0..<37).map { Float($0) }))
        let average = WeightAverage(decay: 0.5)
        let params = [NamedParameter("w", w)]
        average.update(params)  // copies 0, 1, 2, …
        w.value = Tensor(shape: [37], scalars: (0..<37).map { Float($0) + 4 })
        average.update(params)  // β₂ = min(0.5, 3/12) = 0.25: a = i + 0.75·4
        #expect(average.decay(atUpdate: 2) == 0.25)
        #expect(average.average(of: "w")!.scalars == (0..<37).map { Float($0) + 3 })
        w.value = Tensor(shape: [37], scalars: (0..<37).map { Float($0) + 7 })
        average.update(params)  // β₃ = min(0.5, 4/13) = 4/13: a = i + 3 + (9/13)·4
        let third = (0..<37).map { Double($0) + 3 + 9.0 / 13 * 4 }
        #expect(zip(average.average(of: "w")!.scalars, third).allSatisfy { abs(Double($0) - $1) < 1e-5 })
        #expect(average.decay(atUpdate: 1000) == 0.5 && average.updateCount == 3)
        // Evaluation sees the averages; the weights come back afterwards, bit for bit.
        average.withAverages(in: params) { #expect(abs(Double(w.value.scalars[36]) - third[36]) < 1e-5) }
        #expect(w.value.scalars == (0..<37).map { Float($0) + 7 })
    }

    /// A checkpoint with an average keeps the averages as `model.` (what evaluation loads) and the
    /// weights as `raw.`; restoring gives both back exactly, and a file without one loads as before.
    @Test func weightAverageCheckpointRoundTrip() throws {
        let w = parameter(Tensor(shape: [3], scalars: [1, 2, 3]))
        let params = [NamedParameter("w", w)]
        let average = WeightAverage(decay: 0.9)
        average.update(params)
        w.value = Tensor(shape: [3], scalars: [5, 6, 7])
        average.update(params)
        var checkpoint = Checkpoint()
        checkpoint.store(params, average: average)
        #expect(checkpoint.tensors["raw.w"]!.scalars == [5, 6, 7])
        #expect(checkpoint.tensors["model.w"] == average.average(of: "w"))
        #expect(checkpoint.tensors["model.w"]!.scalars != [5, 6, 7])

        let restoredWeights = parameter(Tensor.zeros([3]))
        let restoredAverage = WeightAverage(decay: 0.9)
        try checkpoint.restore([NamedParameter("w", restoredWeights)], average: restoredAverage, path: "memory")
        #expect(restoredWeights.value.scalars == [5, 6, 7])
        #expect(restoredAverage.average(of: "w") == average.average(of: "w") && restoredAverage.updateCount == 2)

        var plain = Checkpoint()
        plain.store(params, average: nil)
        #expect(plain.tensors.keys.sorted() == ["model.w"])
        let fresh = WeightAverage(decay: 0.9)
        try plain.restore([NamedParameter("w", restoredWeights)], average: fresh, path: "memory")
        #expect(fresh.updateCount == 0 && fresh.average(of: "w") == nil)
    }

    /// A 2-4-1 tanh network learns XOR.
    @Test func learnsXOR() {
        var rng = RandomGenerator(seed: 3)
        let hidden = Linear(inputs: 2, outputs: 8, generator: &rng)
        let output = Linear(inputs: 8, outputs: 1, generator: &rng)
        let params = prefixed("hidden", hidden.parameters) + prefixed("output", output.parameters)
        let x = Variable(Tensor(shape: [4, 2], scalars: [0, 0, 0, 1, 1, 0, 1, 1]))
        let y = Tensor(shape: [4, 1], scalars: [0, 1, 1, 0])
        let adam = Adam(learningRate: 0.05)
        var last: Float = .infinity
        for _ in 0..<500 {
            let loss = mean(sigmoidCrossEntropy(logits: output(tanh(hidden(x))), targets: y))
            last = loss.value.scalar
            loss.backward()
            adam.update(params)
            hidden.zeroGradients(); output.zeroGradients()
        }
        #expect(last < 0.05)
        let logits = output(tanh(hidden(x))).value.scalars
        #expect(logits.map { $0 > 0 ? 1 : 0 } == [0, 1, 1, 0])
    }

    /// Least squares on y = 3·x₁ − 2·x₂ + 0.5 + noise recovers the coefficients.
    @Test func regressionConverges() {
        var rng = RandomGenerator(seed: 4)
        let layer = Linear(inputs: 2, outputs: 1, generator: &rng)
        let x = rng.uniformTensor([256, 2], low: -1, high: 1)
        let y = Tensor(shape: [256, 1], scalars: (0..<256).map { i in
            3 * x.scalars[2 * i] - 2 * x.scalars[2 * i + 1] + 0.5 + 0.01 * rng.normal()
        })
        let sgd = SGD(learningRate: 0.1, momentum: 0.9)
        for _ in 0..<300 {
            let error = layer(Variable(x)) - Variable(y)
            let loss = mean(error * error)
            loss.backward()
            sgd.update(layer.parameters)
            layer.zeroGradients()
        }
        let w = layer.weight.value.scalars, b = layer.bias!.value.scalar
        #expect(abs(w[0] - 3) < 0.01 && abs(w[1] + 2) < 0.01 && abs(b - 0.5) < 0.01)
    }

    @Test func layersListTheirParameters() {
        var rng = RandomGenerator(seed: 1)
        #expect(Linear(inputs: 3, outputs: 4, generator: &rng).parameterCount == 16)
        #expect(Conv1D(inputs: 3, outputs: 4, kernelWidth: 2, dilation: 4, generator: &rng).parameterCount == 28)
        #expect(Conv2D(inputs: 2, outputs: 5, kernelSize: 3, generator: &rng).parameterCount == 95)
        #expect(Embedding(count: 10, dimension: 3, generator: &rng).parameters.map(\.name) == ["table"])
        #expect(Conv1D(inputs: 1, outputs: 1, kernelWidth: 2, dilation: 4, generator: &rng).receptiveField == 5)
    }
}

/// 37 = 2·16 + 5 weights: a vectorised body and a scalar tail.
private let formulaWeights = 37

/// Three updates of `optimizer` with random gradients on `formulaWeights` random weights, beside `formula`, which
/// applies the same update in double precision to `x` given the gradient `g` and the 1-based step; returns the
/// largest difference between the two.
private func largestDifferenceFromFormula(_ optimizer: any Optimizer, seed: UInt64,
                                          formula: (_ x: inout [Double], _ g: [Float], _ step: Int) -> Void) -> Double {
    var rng = RandomGenerator(seed: seed)
    let start = (0..<formulaWeights).map { _ in Float(rng.normal()) }
    let w = parameter(Tensor(shape: [formulaWeights], scalars: start))
    var x = start.map(Double.init)
    for step in 1...3 {
        let g = (0..<formulaWeights).map { _ in Float(rng.normal()) }
        w.gradient = Tensor(shape: [formulaWeights], scalars: g)
        optimizer.update([NamedParameter("w", w)])
        formula(&x, g, step)
    }
    return zip(w.value.scalars, x).map { abs(Double($0) - $1) }.max()!
}
