import Foundation

/// The engine's only source of randomness: xoshiro256** seeded through SplitMix64.
///
/// Deterministic across runs and machines (pure integer arithmetic; the float
/// conversions below are exact), cheap to copy, and its whole state is four
/// words that a checkpoint stores so that a resumed run draws the same numbers.
/// `Float.random(in:)` with the system generator costs a system call per value
/// on Linux and is never used.
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable {
    /// The four state words (never all zero).
    @usableFromInline var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator whose stream is fixed by `seed`.
    public init(seed: UInt64) {
        var mixer = seed
        func splitMix() -> UInt64 {
            mixer &+= 0x9E37_79B9_7F4A_7C15
            var z = mixer
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// Restores a generator from saved state words.
    public init(stateWords words: [UInt64]) {
        precondition(words.count == 4 && words.contains { $0 != 0 },
                     "RandomGenerator: state needs four words, not all zero; got \(words)")
        state = (words[0], words[1], words[2], words[3])
    }

    /// The state as four words, for checkpoints.
    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public static func == (lhs: RandomGenerator, rhs: RandomGenerator) -> Bool {
        lhs.stateWords == rhs.stateWords
    }

    @inlinable
    static func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 &- k)) }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        let result = RandomGenerator.rotate(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = RandomGenerator.rotate(state.3, 45)
        return result
    }

    /// A new generator with an independent stream, derived from this one (advances this one).
    public mutating func split() -> RandomGenerator { RandomGenerator(seed: next()) }

    /// Uniform in [0, 1) with 24 bits of resolution.
    @inlinable
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [low, high).
    @inlinable
    public mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * uniform() }

    /// Uniform integer in 0..<bound.
    @inlinable
    public mutating func integer(below bound: Int) -> Int {
        precondition(bound > 0, "RandomGenerator.integer: bound \(bound) must be positive")
        return Int(next(upperBound: UInt64(bound)))
    }

    /// Standard normal by Box–Muller (one value per call, so the state alone determines the stream).
    @inlinable
    public mutating func normal() -> Float {
        let u1 = Double(next() >> 11) * 0x1p-53
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * Foundation.log(1 - u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }

    /// Normal with the given mean and standard deviation.
    @inlinable
    public mutating func normal(mean: Float, standardDeviation: Float) -> Float {
        mean + standardDeviation * normal()
    }

    /// 1 with probability `p`, else 0.
    @inlinable
    public mutating func bernoulli(_ p: Float) -> Float { uniform() < p ? 1 : 0 }

    /// An index drawn with the given (unnormalised, non-negative) weights.
    public mutating func categorical<C: Collection>(weights: C) -> Int where C.Element == Float {
        var total: Float = 0
        for w in weights { total += w }
        precondition(total > 0, "RandomGenerator.categorical: weights sum to \(total)")
        let target = uniform() * total
        var running: Float = 0
        var last = 0
        for (i, w) in weights.enumerated() {
            running += w
            if w > 0 { last = i }
            if target < running { return i }
        }
        return last
    }

    /// An index drawn from `softmax(logits / temperature)` (temperature 0 gives the argmax).
    public mutating func categorical(logits: UnsafeBufferPointer<Float>, temperature: Float = 1) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        if temperature <= 0 { return best }
        let maxLogit = logits[best]
        var total: Float = 0
        for i in 0..<logits.count { total += expf((logits[i] - maxLogit) / temperature) }
        let target = uniform() * total
        var running: Float = 0
        for i in 0..<logits.count {
            running += expf((logits[i] - maxLogit) / temperature)
            if target < running { return i }
        }
        return best
    }

    /// A tensor of uniform values in [low, high).
    public mutating func uniformTensor(_ shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        Tensor(shape: shape) { buffer in for i in buffer.indices { buffer[i] = uniform(low, high) } }
    }

    /// A tensor of normal values.
    public mutating func normalTensor(_ shape: [Int], mean: Float = 0, standardDeviation: Float = 1) -> Tensor {
        Tensor(shape: shape) { buffer in
            for i in buffer.indices { buffer[i] = normal(mean: mean, standardDeviation: standardDeviation) }
        }
    }

    /// A tensor of Bernoulli draws, elementwise with the probabilities in `probabilities`.
    public mutating func bernoulliTensor(probabilities: Tensor) -> Tensor {
        Tensor(shape: probabilities.shape) { buffer in
            for i in buffer.indices { buffer[i] = bernoulli(probabilities.scalars[i]) }
        }
    }

    /// A random permutation of 0..<count (Fisher–Yates).
    public mutating func permutation(_ count: Int) -> [Int] {
        var order = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, integer(below: i + 1)) }
        }
        return order
    }
}
