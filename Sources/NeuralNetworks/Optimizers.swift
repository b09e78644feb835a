import Autodiff
import Foundation
import Tensors

/// Updates parameters from their gradients. State (moments, step count) is exposed as named
/// tensors so that a checkpoint can restore it exactly.
public protocol Optimizer: AnyObject {
    /// The step size used by the next `update`.
    var learningRate: Float { get set }
    /// How many updates have been applied.
    var stepCount: Int { get }
    /// Applies one update to every parameter that has a gradient.
    func update(_ parameters: [NamedParameter])
    /// The optimizer's state as named tensors (keys are stable across runs).
    func stateTensors() -> [String: Tensor]
    /// Restores state written by `stateTensors()`.
    func loadState(_ tensors: [String: Tensor], stepCount: Int)
}

/// Runs `body(parameter, gradient, slots)` over the raw buffers of each parameter that has a gradient.
@inline(__always)
func forEachParameter(_ parameters: [NamedParameter], slots: inout [String: [Tensor]], slotCount: Int,
                      _ body: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, [UnsafeMutablePointer<Float>], Int) -> Void) {
    for p in parameters {
        guard let gradient = p.variable.gradient else { continue }
        let count = p.variable.value.count
        // Taken out of the dictionary so that the moments are uniquely referenced (no copy on write).
        var state = slots.removeValue(forKey: p.name) ?? (0..<slotCount).map { _ in Tensor.zeros(p.variable.shape) }
        gradient.withUnsafeBufferPointer { g in
            p.variable.value.withUnsafeMutableBufferPointer { w in
                withPointers(&state) { pointers in body(w.baseAddress!, g.baseAddress!, pointers, count) }
            }
        }
        slots[p.name] = state
    }
}

private func withPointers(_ tensors: inout [Tensor], _ body: ([UnsafeMutablePointer<Float>]) -> Void) {
    // At most two slots per parameter; nest the buffer accesses.
    switch tensors.count {
    case 0: body([])
    case 1: tensors[0].withUnsafeMutableBufferPointer { a in body([a.baseAddress!]) }
    default:
        var first = tensors[0], second = tensors[1]
        tensors = []
        first.withUnsafeMutableBufferPointer { a in
            second.withUnsafeMutableBufferPointer { b in body([a.baseAddress!, b.baseAddress!]) }
        }
        tensors = [first, second]
    }
}

private func flatten(_ slots: [String: [Tensor]], names: [String]) -> [String: Tensor] {
    var result: [String: Tensor] = [:]
    for (parameter, tensors) in slots { for (i, t) in tensors.enumerated() { result["\(names[i]).\(parameter)"] = t } }
    return result
}

private func unflatten(_ tensors: [String: Tensor], names: [String]) -> [String: [Tensor]] {
    var slots: [String: [Tensor?]] = [:]
    for (key, tensor) in tensors {
        for (i, prefix) in names.enumerated() where key.hasPrefix(prefix + ".") {
            let parameter = String(key.dropFirst(prefix.count + 1))
            var entry = slots[parameter] ?? [Tensor?](repeating: nil, count: names.count)
            entry[i] = tensor
            slots[parameter] = entry
        }
    }
    return slots.compactMapValues { entry in entry.contains { $0 == nil } ? nil : entry.map { $0! } }
}

/// Stochastic gradient descent with optional momentum (heavy-ball or Nesterov) and L2 weight decay.
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float, nesterov: Bool, weightDecay: Float
    public private(set) var stepCount = 0
    private var slots: [String: [Tensor]] = [:]

    public init(learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        self.learningRate = learningRate; self.momentum = momentum; self.nesterov = nesterov; self.weightDecay = weightDecay
    }

    public func update(_ parameters: [NamedParameter]) {
        stepCount += 1
        let (lr, mu, nesterov, wd) = (learningRate, momentum, nesterov, weightDecay)
        forEachParameter(parameters, slots: &slots, slotCount: mu == 0 ? 0 : 1) { w, g, state, n in
            for i in 0..<n {
                var d = g[i] + wd * w[i]
                if mu != 0 {
                    state[0][i] = mu * state[0][i] + d
                    d = nesterov ? d + mu * state[0][i] : state[0][i]
                }
                w[i] -= lr * d
            }
        }
    }

    public func stateTensors() -> [String: Tensor] { flatten(slots, names: ["momentum"]) }
    public func loadState(_ tensors: [String: Tensor], stepCount: Int) {
        slots = unflatten(tensors, names: ["momentum"]); self.stepCount = stepCount
    }
}

/// Adam (Kingma & Ba 2015) with bias correction; `decoupledWeightDecay` makes it AdamW
/// (Loshchilov & Hutter 2019), otherwise weight decay is added to the gradient (L2).
public final class Adam: Optimizer {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float, decoupledWeightDecay: Bool
    public private(set) var stepCount = 0
    private var slots: [String: [Tensor]] = [:]

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, decoupledWeightDecay: Bool = false) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.weightDecay = weightDecay; self.decoupledWeightDecay = decoupledWeightDecay
    }

    /// AdamW with the given decoupled weight decay.
    public static func adamW(learningRate: Float = 1e-3, weightDecay: Float = 1e-2) -> Adam {
        Adam(learningRate: learningRate, weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    public func update(_ parameters: [NamedParameter]) {
        stepCount += 1
        let t = Float(stepCount)
        let (lr, b1, b2, eps, wd, decoupled) = (learningRate, beta1, beta2, epsilon, weightDecay, decoupledWeightDecay)
        let correction1 = 1 - Foundation.pow(b1, t), correction2 = 1 - Foundation.pow(b2, t)
        // lr·(m/c1)/(√(v/c2)+ε) with the bias corrections folded into two constants: one division
        // per element instead of three.
        let stepSize = lr / correction1, rootScale = 1 / correction2.squareRoot()
        forEachParameter(parameters, slots: &slots, slotCount: 2) { w, g, state, n in
            let m = state[0], v = state[1]
            // Vectorised and split over the cores: a million-parameter update is otherwise ~5 ms.
            Parallel.forChunks(n, grain: 1 << 15) { range in
                var i = range.lowerBound
                let width = Vector.scalarCount
                while i + width <= range.upperBound {
                    var gi = Vector.load(g + i)
                    var wi = Vector.load(w + i)
                    if wd != 0 { if decoupled { wi -= lr * wd * wi } else { gi += wd * wi } }
                    let mi = b1 * Vector.load(m + i) + (1 - b1) * gi
                    let vi = b2 * Vector.load(v + i) + (1 - b2) * gi * gi
                    wi -= stepSize * mi / (VectorMath.squareRoot(vi) * rootScale + eps)
                    mi.store(m + i); vi.store(v + i); wi.store(w + i)
                    i += width
                }
                while i < range.upperBound {
                    var gi = g[i]
                    if wd != 0 { if decoupled { w[i] -= lr * wd * w[i] } else { gi += wd * w[i] } }
                    m[i] = b1 * m[i] + (1 - b1) * gi
                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                    w[i] -= stepSize * m[i] / (v[i].squareRoot() * rootScale + eps)
                    i += 1
                }
            }
        }
    }

    public func stateTensors() -> [String: Tensor] { flatten(slots, names: ["adam_m", "adam_v"]) }
    public func loadState(_ tensors: [String: Tensor], stepCount: Int) {
        slots = unflatten(tensors, names: ["adam_m", "adam_v"]); self.stepCount = stepCount
    }
}

/// RMSProp (Tieleman & Hinton 2012): divides by a running root mean square of the gradient;
/// optional momentum on the scaled step.
public final class RMSProp: Optimizer {
    public var learningRate: Float
    public let decay: Float, epsilon: Float, momentum: Float
    public private(set) var stepCount = 0
    private var slots: [String: [Tensor]] = [:]

    public init(learningRate: Float = 1e-3, decay: Float = 0.9, epsilon: Float = 1e-8, momentum: Float = 0) {
        self.learningRate = learningRate; self.decay = decay; self.epsilon = epsilon; self.momentum = momentum
    }

    public func update(_ parameters: [NamedParameter]) {
        stepCount += 1
        let (lr, rho, eps, mu) = (learningRate, decay, epsilon, momentum)
        forEachParameter(parameters, slots: &slots, slotCount: 2) { w, g, state, n in
            let square = state[0], buffer = state[1]
            // Vectorised and split over the cores like Adam's, for runs that choose it on large models.
            Parallel.forChunks(n, grain: 1 << 15) { range in
                var i = range.lowerBound
                let width = Vector.scalarCount
                while i + width <= range.upperBound {
                    let gi = Vector.load(g + i)
                    let si = rho * Vector.load(square + i) + (1 - rho) * gi * gi
                    var step = gi / (VectorMath.squareRoot(si) + eps)
                    if mu != 0 { step = mu * Vector.load(buffer + i) + step; step.store(buffer + i) }
                    (Vector.load(w + i) - lr * step).store(w + i)
                    si.store(square + i)
                    i += width
                }
                while i < range.upperBound {
                    square[i] = rho * square[i] + (1 - rho) * g[i] * g[i]
                    var step = g[i] / (square[i].squareRoot() + eps)
                    if mu != 0 { buffer[i] = mu * buffer[i] + step; step = buffer[i] }
                    w[i] -= lr * step
                    i += 1
                }
            }
        }
    }

    public func stateTensors() -> [String: Tensor] { flatten(slots, names: ["rmsprop_square", "rmsprop_momentum"]) }
    public func loadState(_ tensors: [String: Tensor], stepCount: Int) {
        slots = unflatten(tensors, names: ["rmsprop_square", "rmsprop_momentum"]); self.stepCount = stepCount
    }
}

/// Adagrad (Duchi, Hazan & Singer 2011): divides by the root of the summed squared gradients,
/// `w ← w − lr·g/√(Σg² + ε)` (ε inside the root, as in the MADE authors' code), so every weight's step
/// shrinks as its gradients accumulate.
public final class Adagrad: Optimizer {
    public var learningRate: Float
    public let epsilon: Float
    public private(set) var stepCount = 0
    private var slots: [String: [Tensor]] = [:]

    public init(learningRate: Float = 1e-2, epsilon: Float = 1e-6) {
        self.learningRate = learningRate; self.epsilon = epsilon
    }

    public func update(_ parameters: [NamedParameter]) {
        stepCount += 1
        let (lr, eps) = (learningRate, epsilon)
        forEachParameter(parameters, slots: &slots, slotCount: 1) { w, g, state, n in
            let sum = state[0]
            Parallel.forChunks(n, grain: 1 << 15) { range in
                var i = range.lowerBound
                let width = Vector.scalarCount
                while i + width <= range.upperBound {
                    let gi = Vector.load(g + i)
                    let si = Vector.load(sum + i) + gi * gi
                    (Vector.load(w + i) - lr * gi / VectorMath.squareRoot(si + eps)).store(w + i)
                    si.store(sum + i)
                    i += width
                }
                while i < range.upperBound {
                    sum[i] += g[i] * g[i]
                    w[i] -= lr * g[i] / (sum[i] + eps).squareRoot()
                    i += 1
                }
            }
        }
    }

    public func stateTensors() -> [String: Tensor] { flatten(slots, names: ["adagrad_sum"]) }
    public func loadState(_ tensors: [String: Tensor], stepCount: Int) {
        slots = unflatten(tensors, names: ["adagrad_sum"]); self.stepCount = stepCount
    }
}

/// The optimizers a run configuration can name.
public enum OptimizerKind: String, CaseIterable, Sendable {
    case adam, rmsprop, adagrad

    /// A fresh optimizer of this kind with its default constants; `weightDecay` (L2) is Adam's only.
    public func make(learningRate: Float, weightDecay: Float = 0) -> any Optimizer {
        switch self {
        case .adam: Adam(learningRate: learningRate, weightDecay: weightDecay)
        case .rmsprop: RMSProp(learningRate: learningRate)
        case .adagrad: Adagrad(learningRate: learningRate)
        }
    }
}

/// Scales all gradients so that their joint L2 norm is at most `maxNorm`; returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [NamedParameter], maxNorm: Float) -> Float {
    var total: Double = 0
    for p in parameters { if let g = p.variable.gradient { for v in g.scalars { total += Double(v) * Double(v) } } }
    let norm = Float(total.squareRoot())
    if norm > maxNorm && norm > 0 {
        let factor = maxNorm / norm
        for p in parameters where p.variable.gradient != nil {
            p.variable.gradient = Kernels.scale(p.variable.gradient!, by: factor)
        }
    }
    return norm
}

/// A learning rate as a function of the step: optional linear warm-up, then constant, step or cosine decay.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    public enum Decay: Codable, Sendable, Equatable {
        case constant
        /// Multiply by `factor` every `every` steps.
        case step(every: Int, factor: Float)
        /// Half-cosine from the base rate to `minimum` over `totalSteps`.
        case cosine(totalSteps: Int, minimum: Float)
    }

    public var base: Float
    public var warmupSteps: Int
    public var decay: Decay

    public init(base: Float, warmupSteps: Int = 0, decay: Decay = .constant) {
        self.base = base; self.warmupSteps = warmupSteps; self.decay = decay
    }

    /// The rate for (1-based) step `step`.
    public func rate(at step: Int) -> Float {
        if warmupSteps > 0 && step <= warmupSteps { return base * Float(step) / Float(warmupSteps) }
        let t = step - warmupSteps
        switch decay {
        case .constant: return base
        case .step(let every, let factor): return base * Foundation.pow(factor, Float(t / max(every, 1)))
        case .cosine(let total, let minimum):
            let progress = min(1, Float(t) / Float(max(total - warmupSteps, 1)))
            return minimum + (base - minimum) * 0.5 * (1 + Foundation.cos(Float.pi * progress))
        }
    }
}

extension SIMD16 where Scalar == Float {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Self { UnsafeRawPointer(p).loadUnaligned(as: Self.self) }
    @inline(__always) static func load(_ p: UnsafeMutablePointer<Float>) -> Self { UnsafeRawPointer(p).loadUnaligned(as: Self.self) }
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: self, as: Self.self) }
}
