import Autodiff
import Foundation
import NeuralNetworks
import Tensors

/// A model of p(x) = Πᵢ p(x_{σ(i)} | x_{σ(<i)}) over examples of D dimensions, in the order σ.
///
/// Conformers supply the per-dimension conditionals; the extension supplies likelihoods and a
/// generic sampler (one forward pass per dimension). A model with a faster sampler returns it from
/// `makeIncrementalSampler()`, and `sample(…)` then uses it.
public protocol AutoregressiveModel: ParameterContainer {
    /// D, the number of dimensions of one example.
    var dimensionCount: Int { get }
    /// σ: element k is the dimension generated k-th.
    var generationOrder: [Int] { get }
    /// `log p(x_d | x_<d)` for every example and dimension: `[N, D]`, differentiable.
    func conditionalLogProbabilities(_ x: Tensor) -> Variable
    /// The parameters of every conditional, `[N, D, P]` (P numbers per dimension: logits, means …);
    /// the conditional of dimension d must depend only on the dimensions before d in the order.
    func conditionalParameters(_ x: Tensor) -> Tensor
    /// Draws dimension `d` for every row of `x` `[N, D]` from its conditional given the earlier dimensions.
    func sampleDimension(_ d: Int, given x: Tensor, temperature: Float, generator: inout RandomGenerator) -> [Float]
    /// A faster sampler, when the model's structure allows one.
    func makeIncrementalSampler() -> (any IncrementalSampler)?
}

/// A model-specific sampler that reuses work between dimensions (O(D·H) NADE, cached convolutions).
public protocol IncrementalSampler {
    /// Same contract as `AutoregressiveModel.sample(count:conditionedOn:temperature:generator:)`.
    func sample(count: Int, conditionedOn observation: PartialObservation?, temperature: Float,
                generator: inout RandomGenerator) -> Tensor
}

/// Some dimensions fixed to given values; the rest are sampled.
public struct PartialObservation: Sendable {
    /// `[D]` (shared by all samples) or `[N, D]`.
    public var values: Tensor
    /// `[D]`: which dimensions are observed.
    public var observed: [Bool]

    public init(values: Tensor, observed: [Bool]) {
        self.values = values
        self.observed = observed
    }

    /// The observed value of `dimension` for sample `row`.
    public func value(row: Int, dimension: Int) -> Float {
        values.rank == 1 ? values.scalars[dimension] : values.scalars[row * observed.count + dimension]
    }
}

extension AutoregressiveModel {
    public func makeIncrementalSampler() -> (any IncrementalSampler)? { nil }

    /// `log p(x)` per example in nats, `[N]`, without recording a graph.
    public func logProbability(_ x: Tensor) -> Tensor {
        GradientMode.withoutGradients { sum(conditionalLogProbabilities(x), axes: [1]).value }
    }

    /// Draws `count` examples `[count, D]`. Observed dimensions of `observation` are fixed; the others
    /// are drawn in generation order, each given the dimensions before it (a dimension observed later
    /// in the order does not influence earlier draws — that is what the model's factorisation allows).
    public func sample(count: Int, conditionedOn observation: PartialObservation? = nil, temperature: Float = 1,
                       generator: inout RandomGenerator) -> Tensor {
        if let fast = makeIncrementalSampler() {
            return fast.sample(count: count, conditionedOn: observation, temperature: temperature, generator: &generator)
        }
        return genericSample(count: count, conditionedOn: observation, temperature: temperature, generator: &generator)
    }

    /// The generic sampler: one full forward pass per dimension.
    public func genericSample(count: Int, conditionedOn observation: PartialObservation? = nil, temperature: Float = 1,
                              generator: inout RandomGenerator) -> Tensor {
        let d = dimensionCount
        var x = Tensor.zeros([count, d])
        GradientMode.withoutGradients {
            for dimension in generationOrder {
                if let observation, observation.observed[dimension] {
                    for row in 0..<count { x.scalars[row * d + dimension] = observation.value(row: row, dimension: dimension) }
                    continue
                }
                let values = sampleDimension(dimension, given: x, temperature: temperature, generator: &generator)
                for row in 0..<count { x.scalars[row * d + dimension] = values[row] }
            }
        }
        return x
    }
}

/// Negative log-likelihood statistics over a set of examples.
///
/// Bits per dimension = NLL / (D · ln 2) for discrete data modelled with a discrete distribution.
/// For a continuous density fitted to data dequantised from L levels and scaled to [0, 1), the
/// probability of a bin is ≈ p(y)·L^(−D), so bits/dim = (NLL + D · ln L) / (D · ln 2); pass
/// `dequantizationLevels: L` for that case. Bits per audio sample are bits per dimension with
/// D = the number of samples scored.
public struct LikelihoodSummary: Sendable, Equatable, Codable {
    /// Mean NLL per example, nats.
    public let nats: Double
    /// Standard error of that mean.
    public let standardError: Double
    public let examples: Int
    public let dimensions: Int
    public let dequantizationLevels: Int?

    public init(perExampleNats: [Double], dimensions: Int, dequantizationLevels: Int? = nil) {
        let n = perExampleNats.count
        let mean = perExampleNats.reduce(0, +) / Double(max(n, 1))
        let variance = n > 1 ? perExampleNats.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1) : 0
        self.nats = mean
        self.standardError = (variance / Double(max(n, 1))).squareRoot()
        self.examples = n
        self.dimensions = dimensions
        self.dequantizationLevels = dequantizationLevels
    }

    /// Mean NLL in bits per dimension (see the type's documentation for the formula).
    public var bitsPerDimension: Double {
        let correction = dequantizationLevels.map { Double(dimensions) * Foundation.log(Double($0)) } ?? 0
        return (nats + correction) / (Double(dimensions) * Foundation.log(2))
    }
}

/// What `checkAutoregressive` found.
public struct AutoregressiveReport: Sendable, CustomStringConvertible {
    /// (perturbed input dimension j, output dimension i) pairs where i is at or before j in the
    /// order and yet its conditional changed: each one is a leak of the future.
    public var violations: [(input: Int, output: Int)] = []
    /// For each perturbed input, how many later conditionals changed.
    public var laterChanges: [Int] = []

    public var passed: Bool { violations.isEmpty }
    /// Inputs (not last in the order) whose perturbation changed no later conditional.
    public var inertInputs: [Int] = []

    public var description: String {
        passed ? "autoregressive: no leaks; inert inputs \(inertInputs)"
            : "autoregressive property violated: " + violations.prefix(8).map { "x\($0.input) → p(x\($0.output))" }.joined(separator: ", ")
    }
}

/// Perturbs each input dimension j in turn and checks that no conditional at or before j in the
/// order changes (and records how many later ones do).
/// - Parameters:
///   - conditionals: maps one example `[1, D]` to its conditionals' parameters `[1, D, P]` (or `[D, P]`).
///   - order: σ, the generation order.
///   - inputs: base examples `[D]` to perturb (several catch coincidences).
///   - perturb: the new value for an input value (e.g. `1 − v` for binary data).
public func checkAutoregressive(order: [Int], inputs: [Tensor], tolerance: Float = 1e-5,
                                perturb: (Float) -> Float, conditionals: (Tensor) -> Tensor) -> AutoregressiveReport {
    let d = order.count
    var position = [Int](repeating: 0, count: d)
    for (k, dim) in order.enumerated() { position[dim] = k }
    var report = AutoregressiveReport()
    report.laterChanges = [Int](repeating: 0, count: d)
    for base in inputs {
        let x = base.reshaped([1, d])
        let reference = conditionals(x)
        let perDimension = reference.count / d
        for j in 0..<d {
            var changed = x
            changed.scalars[j] = perturb(changed.scalars[j])
            let output = conditionals(changed)
            for i in 0..<d {
                var moved = false
                for p in 0..<perDimension where abs(output.scalars[i * perDimension + p] - reference.scalars[i * perDimension + p]) > tolerance {
                    moved = true
                    break
                }
                guard moved else { continue }
                if position[i] <= position[j] { report.violations.append((j, i)) } else { report.laterChanges[j] += 1 }
            }
        }
    }
    report.inertInputs = (0..<d).filter { position[$0] < d - 1 && report.laterChanges[$0] == 0 }
    return report
}

/// `checkAutoregressive` on a model's own conditionals and order, at binary random inputs.
public func checkAutoregressive<M: AutoregressiveModel>(_ model: M, inputs: [Tensor], perturb: (Float) -> Float = { 1 - $0 })
    -> AutoregressiveReport {
    checkAutoregressive(order: model.generationOrder, inputs: inputs, perturb: perturb) { x in
        GradientMode.withoutGradients { model.conditionalParameters(x) }
    }
}
