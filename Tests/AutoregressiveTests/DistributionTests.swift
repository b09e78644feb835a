import Autodiff
import Autoregressive
import Foundation
import Testing
import Tensors
import TestSupport

@Suite struct DistributionTests {
    /// Summed over all 2^bits levels, a discretised logistic mixture has probability 1.
    @Test(arguments: [8, 10])
    func discretizedLogisticMixtureNormalises(bits: Int) {
        var rng = RandomGenerator(seed: 31)
        let mixture = DiscretizedLogisticMixture(components: 3, bits: bits)
        let levels = 1 << bits
        var parameters = rng.normalTensor([1, 9, 1])
        parameters.scalars[6] = -4  // one very narrow component
        let tiled = Tensor(shape: [1, 9, levels]) { out in
            for c in 0..<9 { for t in 0..<levels { out[c * levels + t] = parameters.scalars[c] } }
        }
        let grid = Tensor(shape: [1, levels], scalars: (0..<levels).map { Float($0) / Float(levels - 1) * 2 - 1 })
        let logp = GradientMode.withoutGradients { mixture.logProbability(parameters: Variable(tiled), targets: grid).value }
        let total = logp.scalars.reduce(0.0) { $0 + exp(Double($1)) }
        #expect(abs(total - 1) < 2e-3, "Σ P = \(total)")
    }

    @Test func discretizedLogisticMixtureGradients() {
        let mixture = DiscretizedLogisticMixture(components: 2, bits: 8)
        let targets = Tensor(shape: [2, 3], scalars: [-1, 0.2, 1, -0.5, 0.1, 0.7])
        var rng = RandomGenerator(seed: 32)
        var check = GradientCheck()
        check.step = 1e-3
        check.absoluteTolerance = 1e-2
        check.relativeTolerance = 1e-2
        let failures = check.failures(inputs: [rng.uniformTensor([2, 6, 3], low: -1, high: 1)]) { v in
            mixture.logProbability(parameters: v[0], targets: targets)
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    @Test func discretizedLogisticSamplesFollowTheMean() {
        var rng = RandomGenerator(seed: 33)
        let mixture = DiscretizedLogisticMixture(components: 2, bits: 16)
        let single = Tensor(shape: [1, 6, 1], scalars: [0, -50, 0.3, -0.4, -3, -3])  // only component 0: mean 0.3, scale e⁻³
        let tiled = Tensor(shape: [1, 6, 4000]) { out in for c in 0..<6 { for t in 0..<4000 { out[c * 4000 + t] = single.scalars[c] } } }
        let draws = mixture.sample(parameters: tiled, generator: &rng)
        let mean = draws.scalars.reduce(0.0) { $0 + Double($1) } / 4000
        #expect(abs(mean - 0.3) < 0.01)
        #expect(abs(mixture.mean(parameters: single).scalar - 0.3) < 1e-6)
        #expect(draws.scalars.allSatisfy { abs(($0 + 1) / 2 * 65535 - (($0 + 1) / 2 * 65535).rounded()) < 0.05 })
    }

    @Test func gaussianAndMixture() {
        var rng = RandomGenerator(seed: 34)
        let parameters = Tensor(shape: [1, 2, 1], scalars: [1.5, log(0.5)])
        let x = Tensor(shape: [1, 1], scalars: [2])
        let logp = GradientMode.withoutGradients { Gaussian.logProbability(parameters: Variable(parameters), targets: x).value.scalar }
        let expected = -0.5 * pow((2 - 1.5) / 0.5, 2) - log(0.5) - 0.5 * log(2 * Double.pi)
        #expect(abs(Double(logp) - expected) < 1e-5)
        let draws = Gaussian.sample(parameters: Tensor(shape: [1, 2, 5000]) { out in for i in 0..<5000 { out[i] = 1.5; out[5000 + i] = log(0.5) } },
                                    generator: &rng)
        let m = draws.scalars.reduce(0.0) { $0 + Double($1) } / 5000
        let v = draws.scalars.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / 5000
        #expect(abs(m - 1.5) < 0.03 && abs(v.squareRoot() - 0.5) < 0.02)

        // A two-component mixture integrates to 1 (trapezoid rule on a fine grid).
        let mixture = GaussianMixture(components: 2)
        let p = Tensor(shape: [1, 6, 1], scalars: [0.3, -0.2, -1, 2, log(0.4), log(0.7)])
        let grid = (0..<4001).map { Float($0) / 4000 * 16 - 7 }
        let tiled = Tensor(shape: [1, 6, grid.count]) { out in for c in 0..<6 { for t in 0..<grid.count { out[c * grid.count + t] = p.scalars[c] } } }
        let density = GradientMode.withoutGradients {
            mixture.logProbability(parameters: Variable(tiled), targets: Tensor(shape: [1, grid.count], scalars: grid)).value
        }
        let integral = density.scalars.reduce(0.0) { $0 + exp(Double($1)) } * 16 / 4000
        #expect(abs(integral - 1) < 1e-3)
    }

    @Test func categoricalAndBernoulli() {
        var rng = RandomGenerator(seed: 35)
        let logits = Tensor(shape: [1, 3, 2], scalars: [0, 5, log(2), 5, log(3), 5])
        let p = Categorical.probabilities(logits: logits, axis: 1)
        #expect(abs(p[0, 2, 0] - 0.5) < 1e-6)
        #expect(abs(Categorical.mean(logits: logits, axis: 1)[0, 0] - (0 * 1 + 1 * 2 + 2 * 3) / 6) < 1e-5)
        var counts = [0, 0, 0]
        for _ in 0..<6000 { counts[Categorical.sample(logits: logits, axis: 1, generator: &rng)[0]] += 1 }
        #expect(abs(Double(counts[2]) / 6000 - 0.5) < 0.03)
        #expect(Categorical.sample(logits: logits, axis: 1, temperature: 0, generator: &rng) == [2, 0])
        let bernoulli = Bernoulli.sample(logits: Tensor(shape: [3], scalars: [-30, 30, 0]), temperature: 0, generator: &rng)
        #expect(bernoulli.scalars == [0, 1, 0])
        let logpBernoulli = GradientMode.withoutGradients {
            Bernoulli.logProbability(logits: Variable(Tensor(shape: [1], scalars: [0])), targets: Tensor(shape: [1], scalars: [1])).value.scalar
        }
        #expect(abs(logpBernoulli - log(0.5)) < 1e-6)
    }
}
