import Foundation
import Tensors

/// Bars and stripes (MacKay 2003): n×n binary images whose rows are all equal (horizontal bars)
/// or whose columns are all equal (vertical stripes). There are 2ⁿ⁺¹ − 2 distinct images; drawn
/// uniformly, their entropy is ln(2ⁿ⁺¹ − 2) nats (4×4: ln 30 ≈ 3.401).
public struct BarsAndStripes: Sendable {
    public let size: Int

    public init(size: Int) {
        precondition(size >= 1 && size <= 16, "BarsAndStripes: size \(size) must be 1…16")
        self.size = size
    }

    /// The entropy of the uniform distribution over distinct images, nats.
    public var entropy: Double { Foundation.log(Double((1 << (size + 1)) - 2)) }

    /// `count` images `[count, n·n]`, uniform over the distinct images.
    public func sample(count: Int, generator: inout RandomGenerator) -> Tensor {
        let n = size
        var scalars = [Float](repeating: 0, count: count * n * n)
        var row = 0
        while row < count {
            let vertical = generator.next() & 1 == 1
            let bits = (0..<n).map { _ in Float(generator.next() & 1) }
            let constant = bits.allSatisfy { $0 == bits[0] }
            // All-on and all-off arise both ways; keep them from one way only, so that every distinct image is equally likely.
            if vertical && constant { continue }
            for r in 0..<n { for c in 0..<n { scalars[row * n * n + r * n + c] = vertical ? bits[c] : bits[r] } }
            row += 1
        }
        return Tensor(shape: [count, n * n], scalars: scalars)
    }

    /// Whether a flat image is a bars-and-stripes pattern.
    public func contains(_ image: [Float]) -> Bool {
        let n = size
        let rowsEqual = (0..<n).allSatisfy { r in (0..<n).allSatisfy { image[r * n + $0] == image[r * n] } }
        let columnsEqual = (0..<n).allSatisfy { c in (0..<n).allSatisfy { image[$0 * n + c] == image[c] } }
        return rowsEqual || columnsEqual
    }
}

/// A random fully visible sigmoid belief net over D ≤ 20 binary dimensions:
/// p(xᵢ = 1 | x₍<ᵢ₎) = σ(bᵢ + Σⱼ₍<ᵢ₎ Wᵢⱼ xⱼ), with seeded weights. Its entropy is exact by enumeration.
public struct RandomSigmoidBeliefNet: Sendable {
    public let dimensions: Int
    public let weights: [[Float]]
    public let biases: [Float]

    public init(dimensions: Int, scale: Float = 2, generator: inout RandomGenerator) {
        precondition(dimensions >= 1 && dimensions <= 20, "RandomSigmoidBeliefNet: \(dimensions) dimensions must be 1…20")
        self.dimensions = dimensions
        weights = (0..<dimensions).map { i in (0..<i).map { _ in generator.normal() * scale } }
        biases = (0..<dimensions).map { _ in generator.normal() * scale }
    }

    func probabilityOfOne(_ i: Int, _ x: [Float]) -> Double {
        var a = Double(biases[i])
        for j in 0..<i { a += Double(weights[i][j]) * Double(x[j]) }
        return 1 / (1 + Foundation.exp(-a))
    }

    /// log p(x), nats.
    public func logProbability(_ x: [Float]) -> Double {
        (0..<dimensions).reduce(0) { total, i in
            let p = probabilityOfOne(i, x)
            return total + Foundation.log(x[i] == 1 ? p : 1 - p)
        }
    }

    /// The exact entropy, nats (sums over all 2^D configurations).
    public var entropy: Double {
        var h = 0.0
        for code in 0..<(1 << dimensions) {
            let x = (0..<dimensions).map { Float((code >> $0) & 1) }
            let lp = logProbability(x)
            h -= Foundation.exp(lp) * lp
        }
        return h
    }

    /// Ancestral samples `[count, D]`.
    public func sample(count: Int, generator: inout RandomGenerator) -> Tensor {
        var scalars = [Float](repeating: 0, count: count * dimensions)
        for row in 0..<count {
            var x = [Float](repeating: 0, count: dimensions)
            for i in 0..<dimensions { x[i] = Double(generator.uniform()) < probabilityOfOne(i, x) ? 1 : 0 }
            for i in 0..<dimensions { scalars[row * dimensions + i] = x[i] }
        }
        return Tensor(shape: [count, dimensions], scalars: scalars)
    }
}
