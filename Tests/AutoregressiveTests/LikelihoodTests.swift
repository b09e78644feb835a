import Autodiff
import Autoregressive
import Foundation
import Testing
import Tensors

@Suite struct LikelihoodTests {
    func allBinary(_ d: Int) -> Tensor {
        Tensor(shape: [1 << d, d], scalars: (0..<(1 << d)).flatMap { code in (0..<d).map { Float((code >> $0) & 1) } })
    }

    /// Σₓ p(x) = 1 over all 2¹⁰ binary vectors, for every mask set and a categorical variant.
    @Test func probabilitiesSumToOne() {
        var rng = RandomGenerator(seed: 8)
        let model = MaskedMLP(MaskedMLPConfiguration(dimensions: 10, hiddenSizes: [20, 20], maskSets: 3, orderAgnostic: true),
                              generator: &rng)
        let x = allBinary(10)
        for set in 0..<3 {
            model.activeMaskSet = set
            let total = model.logProbability(x).scalars.reduce(0.0) { $0 + exp(Double($1)) }
            #expect(abs(total - 1) < 1e-4, "mask set \(set): Σp = \(total)")
        }
        let ensemble = model.ensembleLogProbability(x).reduce(0.0) { $0 + exp($1) }
        #expect(abs(ensemble - 1) < 1e-4)
        let ternary = MaskedMLP(MaskedMLPConfiguration(dimensions: 5, hiddenSizes: [8], classes: 3), generator: &rng)
        let all = Tensor(shape: [243, 5], scalars: (0..<243).flatMap { code in (0..<5).map { Float((code / Int(pow(3.0, Double($0)))) % 3) } })
        let total = ternary.logProbability(all).scalars.reduce(0.0) { $0 + exp(Double($1)) }
        #expect(abs(total - 1) < 1e-4)
    }

    /// Sample frequencies of a 3-dimensional model against its own p(x): χ² with 7 degrees of freedom.
    @Test func samplesFollowTheModel() {
        var rng = RandomGenerator(seed: 9)
        let model = MaskedMLP(MaskedMLPConfiguration(dimensions: 3, hiddenSizes: [6], ordering: .reversed), generator: &rng)
        for layer in model.layers { layer.weight.value = Kernels.scale(layer.weight.value, by: 3) }
        let x = allBinary(3)
        let p = model.logProbability(x).scalars.map { exp(Double($0)) }
        let n = 20_000
        let samples = model.sample(count: n, generator: &rng)
        var counts = [Int](repeating: 0, count: 8)
        for row in 0..<n {
            let code = (0..<3).reduce(0) { $0 | (Int(samples.scalars[row * 3 + $1]) << $1) }
            counts[code] += 1
        }
        let chiSquare = (0..<8).reduce(0.0) { total, code in
            let expected = Double(n) * p[code]
            return total + (Double(counts[code]) - expected) * (Double(counts[code]) - expected) / expected
        }
        #expect(chiSquare < 24.32, "χ² = \(chiSquare) (99.9% critical value 24.32), counts \(counts), p \(p)")
    }

    @Test func partialObservationsAreKept() {
        var rng = RandomGenerator(seed: 10)
        let model = MaskedMLP(MaskedMLPConfiguration(dimensions: 6, hiddenSizes: [8]), generator: &rng)
        let observation = PartialObservation(values: Tensor(shape: [6], scalars: [1, 0, 1, 0, 0, 0]),
                                             observed: [true, true, true, false, false, false])
        let samples = model.sample(count: 50, conditionedOn: observation, generator: &rng)
        for row in 0..<50 { #expect(Array(samples.scalars[row * 6..<row * 6 + 3]) == [1, 0, 1]) }
    }

    @Test func bitsPerDimensionFormula() {
        let summary = LikelihoodSummary(perExampleNats: [2, 4], dimensions: 4)
        #expect(summary.nats == 3)
        #expect(abs(summary.bitsPerDimension - 3 / (4 * log(2))) < 1e-12)
        #expect(abs(summary.standardError - 1) < 1e-12)
        let continuous = LikelihoodSummary(perExampleNats: [-10], dimensions: 2, dequantizationLevels: 256)
        #expect(abs(continuous.bitsPerDimension - (-10 + 2 * log(256.0)) / (2 * log(2))) < 1e-12)
    }

    @Test func groundTruthGenerators() {
        let bars = BarsAndStripes(size: 4)
        #expect(abs(bars.entropy - log(30)) < 1e-12)
        var rng = RandomGenerator(seed: 11)
        let samples = bars.sample(count: 30_000, generator: &rng)
        var counts: [[Float]: Int] = [:]
        for row in 0..<30_000 {
            let image = Array(samples.scalars[row * 16..<(row + 1) * 16])
            #expect(bars.contains(image))
            counts[image, default: 0] += 1
        }
        #expect(counts.count == 30)
        #expect(counts.values.allSatisfy { abs(Double($0) / 30_000 - 1.0 / 30) < 0.006 })
        let net = RandomSigmoidBeliefNet(dimensions: 8, generator: &rng)
        let x = allBinary(8)
        let total = (0..<256).reduce(0.0) { $0 + exp(net.logProbability(Array(x.scalars[$1 * 8..<($1 + 1) * 8]))) }
        #expect(abs(total - 1) < 1e-9)
        #expect(net.entropy > 0 && net.entropy < 8 * log(2))
    }
}
