import Autodiff
import Tensors

/// Finite-difference gradient checking for the tests.
///
/// The op's output is projected to a scalar with fixed random weights R (so every output
/// element matters): L(x) = Σ f(x) ⊙ R. The analytic gradient from `backward()` is compared
/// with the central difference (L(x + h) − L(x − h)) / 2h, with L accumulated in double
/// precision. With Float32 forward passes and h = 1e-2, the rounding error is about
/// 1e-5·√N and the truncation error about h²·|f'''| ≈ 1e-4, so the check passes when
/// |analytic − numeric| ≤ `absoluteTolerance` + `relativeTolerance` · |numeric|
/// (defaults 5e-3 and 5e-3); a wrong derivative is off by O(1).
public struct GradientCheck {
    public var step: Float = 1e-2
    public var absoluteTolerance: Double = 5e-3
    public var relativeTolerance: Double = 5e-3
    /// At most this many elements per input are perturbed (spread evenly).
    public var elementsPerInput = 48

    public init() {}

    /// Returns one line per mismatch (empty when the gradients agree).
    public func failures(inputs: [Tensor], seed: UInt64 = 7, _ f: ([Variable]) -> Variable) -> [String] {
        var generator = RandomGenerator(seed: seed)
        let probe = GradientMode.withoutGradients { f(inputs.map { Variable($0) }) }
        let projection = generator.uniformTensor(probe.shape, low: -1, high: 1)

        func loss(_ tensors: [Tensor]) -> Double {
            let output = GradientMode.withoutGradients { f(tensors.map { Variable($0) }) }.value
            var total: Double = 0
            for i in 0..<output.count { total += Double(output.scalars[i]) * Double(projection.scalars[i]) }
            return total
        }

        let variables = inputs.map { Variable($0, requiresGradient: true) }
        let output = f(variables)
        let projected = sum(output * Variable(projection))
        projected.backward()

        var messages: [String] = []
        for (which, input) in inputs.enumerated() {
            let analytic = variables[which].gradient ?? Tensor.zeros(input.shape)
            let stride = max(1, input.count / elementsPerInput)
            for i in Swift.stride(from: 0, to: input.count, by: stride) {
                var plus = inputs, minus = inputs
                plus[which].scalars[i] += step
                minus[which].scalars[i] -= step
                let numeric = (loss(plus) - loss(minus)) / (2 * Double(step))
                let value = Double(analytic.scalars[i])
                if abs(value - numeric) > absoluteTolerance + relativeTolerance * abs(numeric) {
                    messages.append("input \(which) \(input.shape) element \(i): analytic \(value), numeric \(numeric)")
                }
            }
        }
        return messages
    }
}
