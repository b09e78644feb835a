import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Testing
import Tensors

/// Masked MLPs trained on data of known entropy must reach it on held-out samples.
@Suite struct GroundTruthTrainingTests {
    func fit(_ model: MaskedMLP, train: Tensor, test: Tensor, steps: Int, learningRate: Float) -> Double {
        let adam = Adam(learningRate: learningRate)
        var rng = RandomGenerator(seed: 1)
        let n = train.shape[0], d = train.shape[1]
        for step in 0..<steps {
            let rows = (0..<100).map { _ in rng.integer(below: n) }
            let batch = Tensor(shape: [100, d], scalars: rows.flatMap { train.scalars[$0 * d..<($0 + 1) * d] })
            adam.learningRate = learningRate * (step > steps * 3 / 4 ? 0.1 : 1)
            let loss = -mean(sum(model.conditionalLogProbabilities(batch), axes: [1]))
            loss.backward()
            adam.update(model.parameters)
            model.zeroGradients()
        }
        let logp = model.logProbability(test).scalars
        return -logp.reduce(0.0) { $0 + Double($1) } / Double(logp.count)
    }

    @Test func barsAndStripes4x4() {
        var rng = RandomGenerator(seed: 12)
        let bars = BarsAndStripes(size: 4)
        let model = MaskedMLP(MaskedMLPConfiguration(dimensions: 16, hiddenSizes: [128, 128]), generator: &rng)
        let nll = fit(model, train: bars.sample(count: 5000, generator: &rng), test: bars.sample(count: 5000, generator: &rng),
                      steps: 1500, learningRate: 3e-3)
        #expect(abs(nll - bars.entropy) < 0.05, "held-out NLL \(nll) vs entropy \(bars.entropy)")
    }

    @Test func randomSigmoidBeliefNet() {
        var rng = RandomGenerator(seed: 13)
        let truth = RandomSigmoidBeliefNet(dimensions: 10, generator: &rng)
        let model = MaskedMLP(MaskedMLPConfiguration(dimensions: 10, hiddenSizes: [64]), generator: &rng)
        let nll = fit(model, train: truth.sample(count: 20_000, generator: &rng), test: truth.sample(count: 20_000, generator: &rng),
                      steps: 2000, learningRate: 3e-3)
        #expect(abs(nll - truth.entropy) < 0.05, "held-out NLL \(nll) vs entropy \(truth.entropy)")
    }
}
