import Autodiff
import Foundation
import Tensors

// Output distributions: how a network's outputs become log-probabilities (differentiable, for
// training), samples (with a temperature) and means.

/// Independent Bernoulli variables parameterised by logits.
public enum Bernoulli {
    /// `log p(x)` elementwise for targets in {0, 1} (or soft targets in [0, 1]).
    public static func logProbability(logits: Variable, targets: Tensor) -> Variable {
        -sigmoidCrossEntropy(logits: logits, targets: targets)
    }

    /// Draws 0/1 with probability `σ(logit / temperature)` (temperature 0: the more likely value).
    public static func sample(logits: Tensor, temperature: Float = 1, generator: inout RandomGenerator) -> Tensor {
        Tensor(shape: logits.shape, scalars: logits.scalars.map { z in
            if temperature <= 0 { return z > 0 ? 1 : 0 }
            return generator.uniform() < 1 / (1 + Foundation.exp(-z / temperature)) ? 1 : 0
        })
    }

    /// The probability of a 1.
    public static func mean(logits: Tensor) -> Tensor {
        Tensor(shape: logits.shape, scalars: logits.scalars.map { 1 / (1 + Foundation.exp(-$0)) })
    }
}

/// A categorical distribution over the class axis of a logits tensor (K = 256 for mu-law audio,
/// any K for binned series and grey levels).
public enum Categorical {
    /// `log p(target)` per position (class axis removed); negative targets give 0 (ignored positions).
    public static func logProbability(logits: Variable, targets: [Int32], axis: Int) -> Variable {
        -softmaxCrossEntropy(logits: logits, targets: targets, axis: axis)
    }

    /// A class per position from `softmax(logits / temperature)` (temperature 0: the argmax).
    public static func sample(logits: Tensor, axis: Int, temperature: Float = 1, generator: inout RandomGenerator) -> [Int] {
        let (outer, classes, inner) = Kernels.classLayout(logits.shape, axis: axis)
        var result = [Int](repeating: 0, count: outer * inner)
        var row = [Float](repeating: 0, count: classes)
        for o in 0..<outer {
            for t in 0..<inner {
                for k in 0..<classes { row[k] = logits.scalars[(o * classes + k) * inner + t] }
                result[o * inner + t] = row.withUnsafeBufferPointer { generator.categorical(logits: $0, temperature: temperature) }
            }
        }
        return result
    }

    /// The class probabilities `softmax(logits)` (same shape).
    public static func probabilities(logits: Tensor, axis: Int) -> Tensor {
        Kernels.unary(.exp, Kernels.logSoftmax(logits, axis: axis))
    }

    /// The expected class index per position (meaningful for ordinal classes such as bins).
    public static func mean(logits: Tensor, axis: Int) -> Tensor {
        let p = probabilities(logits: logits, axis: axis)
        let (outer, classes, inner) = Kernels.classLayout(logits.shape, axis: axis)
        var shape = logits.shape
        shape.remove(at: axis)
        return Tensor(shape: shape) { out in
            for o in 0..<outer { for t in 0..<inner {
                var m: Float = 0
                for k in 0..<classes { m += Float(k) * p.scalars[(o * classes + k) * inner + t] }
                out[o * inner + t] = m
            } }
        }
    }
}

/// A mixture of K logistics discretised to 2^bits levels on [−1, 1] (Salimans et al. 2017,
/// PixelCNN++; used for 16-bit audio in Parallel WaveNet). Parameters are `[B, 3K, T]`: mixture
/// logits, means, log-scales (clamped below at −7). Edge bins take the whole tail.
public struct DiscretizedLogisticMixture: Sendable {
    public let components: Int
    public let bits: Int

    public init(components: Int, bits: Int) {
        precondition(components >= 1 && (1...16).contains(bits), "DiscretizedLogisticMixture: \(components) components, \(bits) bits")
        self.components = components
        self.bits = bits
    }

    /// Channels of the parameter tensor.
    public var parameterCount: Int { 3 * components }
    var halfBin: Float { 1 / Float((1 << bits) - 1) }

    /// `log P(x)` per position, `[B, T]`, for `x` `[B, T]` on the grid of 2^bits levels in [−1, 1].
    public func logProbability(parameters: Variable, targets x: Tensor) -> Variable {
        let k = components
        precondition(parameters.value.rank == 3 && parameters.shape[1] == 3 * k && x.shape == [parameters.shape[0], parameters.shape[2]],
                     "DiscretizedLogisticMixture: parameters \(parameters.shape) and targets \(x.shape)")
        let (batch, time) = (x.shape[0], x.shape[1])
        let parts = split(parameters, axis: 1, sizes: [k, k, k])
        let logits = parts[0], means = parts[1], logScales = clamped(parts[2], min: -7)
        let xb = Variable(x.reshaped([batch, 1, time]))
        let centred = xb - means
        let inverseScale = exp(-logScales)
        let plusIn = inverseScale * (centred + halfBin)
        let minusIn = inverseScale * (centred + (-halfBin))
        let logCDFPlus = plusIn - softplus(plusIn)          // log σ(plus)
        let logOneMinusCDFMinus = -softplus(minusIn)        // log(1 − σ(minus))
        let cdfDelta = sigmoid(plusIn) - sigmoid(minusIn)
        let midIn = inverseScale * centred
        let logPDFMid = midIn - logScales - softplus(midIn) * 2
        // Which branch applies is decided from values, as constant 0/1 masks.
        let n = batch * k * time
        var low = [Float](repeating: 0, count: n), high = low, tiny = low, middle = low
        for b in 0..<batch { for c in 0..<k { for t in 0..<time {
            let i = (b * k + c) * time + t
            let v = x.scalars[b * time + t]
            if v < -0.999 { low[i] = 1 } else if v > 0.999 { high[i] = 1 }
            else if cdfDelta.value.scalars[i] > 1e-5 { middle[i] = 1 } else { tiny[i] = 1 }
        } } }
        let shape = [batch, k, time]
        func mask(_ m: [Float]) -> Variable { Variable(Tensor(shape: shape, scalars: m)) }
        let logBinCentre = logPDFMid + (-Foundation.log(Float((1 << bits) - 1) / 2))
        let logDelta = log(clamped(cdfDelta, min: 1e-12))
        let perComponent = logCDFPlus * mask(low) + logOneMinusCDFMinus * mask(high)
            + logDelta * mask(middle) + logBinCentre * mask(tiny)
        return logSumExp(perComponent + logSoftmax(logits, axis: 1), axis: 1)
    }

    /// Draws values on the 2^bits grid: a component from `softmax(logits)`, then a logistic whose
    /// scale is multiplied by `temperature`.
    public func sample(parameters: Tensor, temperature: Float = 1, generator: inout RandomGenerator) -> Tensor {
        let k = components
        let (batch, time) = (parameters.shape[0], parameters.shape[2])
        let levels = Float((1 << bits) - 1)
        var logits = [Float](repeating: 0, count: k)
        return Tensor(shape: [batch, time]) { out in
            for b in 0..<batch { for t in 0..<time {
                func p(_ channel: Int) -> Float { parameters.scalars[(b * 3 * k + channel) * time + t] }
                for c in 0..<k { logits[c] = p(c) }
                let c = logits.withUnsafeBufferPointer { generator.categorical(logits: $0) }
                let u = min(max(generator.uniform(), 1e-5), 1 - 1e-5)
                let scale = Foundation.exp(max(p(2 * k + c), -7)) * temperature
                let v = p(k + c) + scale * (Foundation.log(u) - Foundation.log(1 - u))
                let clippedValue = min(max(v, -1), 1)
                out[b * time + t] = ((clippedValue + 1) / 2 * levels).rounded() / levels * 2 - 1
            } }
        }
    }

    /// The mixture mean per position (before discretisation), `[B, T]`.
    public func mean(parameters: Tensor) -> Tensor { mixtureMean(parameters, components: components) }
}

/// A diagonal Gaussian: parameters `[N, 2, D]` (means, then log standard deviations).
public enum Gaussian {
    static let logRootTwoPi = Float(0.5 * Foundation.log(2 * Double.pi))

    /// `log p(x)` elementwise, `[N, D]`.
    public static func logProbability(parameters: Variable, targets x: Tensor) -> Variable {
        precondition(parameters.value.rank == 3 && parameters.shape[1] == 2 && Array(x.shape) == [parameters.shape[0], parameters.shape[2]],
                     "Gaussian: parameters \(parameters.shape) need [N, 2, D] for targets \(x.shape)")
        let (n, d) = (x.shape[0], x.shape[1])
        let parts = split(parameters, axis: 1, sizes: [1, 1])
        let mean = reshape(parts[0], [n, d]), logStd = reshape(parts[1], [n, d])
        let z = (Variable(x) - mean) * exp(-logStd)
        return -(z * z * 0.5) - logStd + (-logRootTwoPi)
    }

    /// Samples `mean + temperature · σ · ε`, `[N, D]`.
    public static func sample(parameters: Tensor, temperature: Float = 1, generator: inout RandomGenerator) -> Tensor {
        let (n, d) = (parameters.shape[0], parameters.shape[2])
        return Tensor(shape: [n, d]) { out in
            for i in 0..<n { for j in 0..<d {
                let m = parameters.scalars[i * 2 * d + j], s = Foundation.exp(parameters.scalars[i * 2 * d + d + j])
                out[i * d + j] = m + temperature * s * generator.normal()
            } }
        }
    }

    /// The means, `[N, D]`.
    public static func mean(parameters: Tensor) -> Tensor {
        Kernels.slice(parameters, axis: 1, range: 0..<1).reshaped([parameters.shape[0], parameters.shape[2]])
    }
}

/// A mixture of K diagonal Gaussians per dimension: parameters `[N, 3K, D]` (mixture logits,
/// means, log standard deviations).
public struct GaussianMixture: Sendable {
    public let components: Int
    public init(components: Int) { self.components = components }

    /// `log p(x)` elementwise, `[N, D]`.
    public func logProbability(parameters: Variable, targets x: Tensor) -> Variable {
        let k = components
        precondition(parameters.value.rank == 3 && parameters.shape[1] == 3 * k, "GaussianMixture: parameters \(parameters.shape) need [N, \(3 * k), D]")
        let (n, d) = (x.shape[0], x.shape[1])
        let parts = split(parameters, axis: 1, sizes: [k, k, k])
        let z = (Variable(x.reshaped([n, 1, d])) - parts[1]) * exp(-parts[2])
        let perComponent = -(z * z * 0.5) - parts[2] + (-Gaussian.logRootTwoPi)
        return logSumExp(perComponent + logSoftmax(parts[0], axis: 1), axis: 1)
    }

    /// Samples: a component from the mixture weights, then its Gaussian with σ scaled by `temperature`.
    public func sample(parameters: Tensor, temperature: Float = 1, generator: inout RandomGenerator) -> Tensor {
        let k = components
        let (n, d) = (parameters.shape[0], parameters.shape[2])
        var logits = [Float](repeating: 0, count: k)
        return Tensor(shape: [n, d]) { out in
            for i in 0..<n { for j in 0..<d {
                func p(_ channel: Int) -> Float { parameters.scalars[(i * 3 * k + channel) * d + j] }
                for c in 0..<k { logits[c] = p(c) }
                let c = logits.withUnsafeBufferPointer { generator.categorical(logits: $0) }
                out[i * d + j] = p(k + c) + temperature * Foundation.exp(p(2 * k + c)) * generator.normal()
            } }
        }
    }

    /// The mixture means, `[N, D]`.
    public func mean(parameters: Tensor) -> Tensor { mixtureMean(parameters, components: components) }
}

/// Σₖ softmax(logits)ₖ · meanₖ per position, for mixture parameters `[N, 3K, D]` laid out as
/// logits, means, scales.
func mixtureMean(_ parameters: Tensor, components k: Int) -> Tensor {
    let (n, d) = (parameters.shape[0], parameters.shape[2])
    return Tensor(shape: [n, d]) { out in
        for i in 0..<n { for j in 0..<d {
            func p(_ channel: Int) -> Float { parameters.scalars[(i * 3 * k + channel) * d + j] }
            let m = (0..<k).map { p($0) }.max()!
            var total: Float = 0, weighted: Float = 0
            for c in 0..<k { let w = Foundation.exp(p(c) - m); total += w; weighted += w * p(k + c) }
            out[i * d + j] = weighted / total
        } }
    }
}
