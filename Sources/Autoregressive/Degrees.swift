import Tensors

/// The order in which the dimensions of an example are modelled and generated.
public enum Ordering: Sendable, Equatable, Codable {
    case natural
    case reversed
    /// A seeded random permutation.
    case random(seed: UInt64)
    /// An explicit permutation: `order[k]` is the dimension generated k-th.
    case explicit([Int])

    /// The permutation for `dimensions` dimensions: element k is the dimension generated k-th.
    public func permutation(_ dimensions: Int) -> [Int] {
        switch self {
        case .natural: return Array(0..<dimensions)
        case .reversed: return Array((0..<dimensions).reversed())
        case .random(let seed):
            var generator = RandomGenerator(seed: seed)
            return generator.permutation(dimensions)
        case .explicit(let order):
            precondition(order.sorted() == Array(0..<dimensions), "Ordering.explicit: \(order) is not a permutation of 0..<\(dimensions)")
            return order
        }
    }

    /// Input degrees 1…D: the degree of dimension d is its position in the order plus one.
    public func degrees(_ dimensions: Int) -> [Int] {
        var degrees = [Int](repeating: 0, count: dimensions)
        for (position, dimension) in permutation(dimensions).enumerated() { degrees[dimension] = position + 1 }
        return degrees
    }
}

/// How hidden units receive degrees.
public enum HiddenDegrees: Sendable, Equatable, Codable {
    /// Evenly spread over [min degree of the layer below, D − 1].
    case deterministic
    /// Uniform over [min degree of the layer below, D − 1], from the mask set's generator.
    case random
}

/// The masks of one masked MLP: one `[out, in]` mask per layer, from unit degrees.
///
/// A mask is `M[o, i] = deg(o) ≥ deg(i)` between hidden layers and strict `deg(o) > deg(i)` into the
/// output, where each output unit carries the degree of the input dimension it predicts (MADE,
/// Germain et al. 2015). Hidden degrees lie in 1…D−1, so a hidden unit never depends on dimension D.
public struct MaskSet: Sendable, Equatable {
    /// Degrees per layer: inputs, then each hidden layer, then outputs.
    public let degrees: [[Int]]
    /// `masks[l]` connects layer l to layer l + 1, shape `[units(l + 1), units(l)]`.
    public let masks: [Tensor]

    /// Builds masks for a network with the given input degrees, hidden sizes and `outputsPerDimension`
    /// output units per input dimension (laid out dimension-major: unit `d·P + p`).
    public init(inputDegrees: [Int], hiddenSizes: [Int], outputsPerDimension: Int = 1,
                hiddenDegrees: HiddenDegrees = .deterministic, generator: inout RandomGenerator) {
        let dimensions = inputDegrees.count
        var layers = [inputDegrees]
        for size in hiddenSizes {
            let low = min(layers.last!.min() ?? 1, max(dimensions - 1, 1))
            let high = max(dimensions - 1, 1)
            let span = high - low + 1
            let hidden: [Int] = (0..<size).map { unit in
                switch hiddenDegrees {
                case .deterministic: return low + (unit * span) / max(size, 1)
                case .random: return low + generator.integer(below: span)
                }
            }
            layers.append(hidden)
        }
        layers.append(inputDegrees.flatMap { [Int](repeating: $0, count: outputsPerDimension) })
        var masks: [Tensor] = []
        for l in 0..<(layers.count - 1) {
            let below = layers[l], above = layers[l + 1]
            let strict = l == layers.count - 2
            masks.append(MaskSet.mask(outputDegrees: above, inputDegrees: below, strict: strict))
        }
        self.degrees = layers
        self.masks = masks
    }

    /// `M[o, i] = deg(o) ≥ deg(i)` (or `>` when `strict`), shape `[outputs, inputs]`.
    public static func mask(outputDegrees: [Int], inputDegrees: [Int], strict: Bool) -> Tensor {
        Tensor(shape: [outputDegrees.count, inputDegrees.count]) { buffer in
            for (o, dOut) in outputDegrees.enumerated() {
                for (i, dIn) in inputDegrees.enumerated() {
                    buffer[o * inputDegrees.count + i] = (strict ? dOut > dIn : dOut >= dIn) ? 1 : 0
                }
            }
        }
    }

    /// For each output unit, the input dimensions it can depend on through some path.
    public func reachableInputs() -> [[Int]] {
        let inputs = degrees[0].count
        // reach[u] = set of inputs reaching unit u of the current layer, as bitsets over inputs.
        var reach: [[Bool]] = (0..<inputs).map { i in (0..<inputs).map { $0 == i } }
        for mask in masks {
            let outs = mask.shape[0], ins = mask.shape[1]
            var next = [[Bool]](repeating: [Bool](repeating: false, count: inputs), count: outs)
            for o in 0..<outs {
                for i in 0..<ins where mask.scalars[o * ins + i] != 0 {
                    for d in 0..<inputs where reach[i][d] { next[o][d] = true }
                }
            }
            reach = next
        }
        return reach.map { row in row.enumerated().filter(\.element).map(\.offset) }
    }

    /// Output units whose dimension should depend on earlier dimensions (degree > 1) but that no
    /// path from any input reaches — the connectivity defect that random hidden degrees can cause.
    public func unreachedOutputs() -> [Int] {
        let outputDegrees = degrees.last!
        return reachableInputs().enumerated().compactMap { unit, inputs in
            outputDegrees[unit] > 1 && inputs.isEmpty ? unit : nil
        }
    }
}
