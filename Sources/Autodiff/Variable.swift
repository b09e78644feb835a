import Synchronization
import Tensors

/// A node of the recorded graph: a value, its accumulated gradient, and how to pass a
/// gradient on to the values it was computed from.
///
/// Leaves are parameters (`requiresGradient: true`) or constants. Every differentiable op
/// creates one node whose `pullback` closure maps the node's output gradient to
/// contributions to its parents; the closure captures the parents, never the node itself,
/// so a graph is freed as soon as its last reference goes (and `backward()` frees it early).
public final class Variable {
    /// The forward value.
    public var value: Tensor
    /// The accumulated gradient (nil until something flows into it).
    public var gradient: Tensor?
    /// Whether gradients flow into this node.
    public let requiresGradient: Bool
    private var parents: [Variable]
    private var pullback: ((Tensor) -> Void)?

    /// A leaf: a trainable parameter when `requiresGradient`, else a constant.
    public init(_ value: Tensor, requiresGradient: Bool = false) {
        self.value = value
        self.requiresGradient = requiresGradient
        self.parents = []
        self.pullback = nil
    }

    /// An op result: `value` computed from `parents`; `pullback` receives the output gradient.
    ///
    /// When gradients are off (`GradientMode`) or no parent needs one, the result is a constant
    /// and `pullback` is dropped unseen.
    public init(_ value: Tensor, parents: [Variable], pullback: @escaping (Tensor) -> Void) {
        self.value = value
        if GradientMode.isEnabled && parents.contains(where: \.requiresGradient) {
            self.requiresGradient = true
            self.parents = parents
            self.pullback = pullback
            Variable.liveCounter.add(1, ordering: .relaxed)
        } else {
            self.requiresGradient = false
            self.parents = []
            self.pullback = nil
        }
    }

    deinit {
        if pullback != nil { Variable.liveCounter.subtract(1, ordering: .relaxed) }
    }

    private static let liveCounter = Atomic<Int>(0)

    /// The number of graph nodes (op results holding a pullback) alive in the process;
    /// used by the tests to prove that a backward pass leaves no graph behind.
    public static var liveGraphNodes: Int { liveCounter.load(ordering: .relaxed) }

    /// The shape of the value.
    public var shape: [Int] { value.shape }

    /// Adds `contribution` to the gradient (no-op for constants).
    public func accumulate(_ contribution: Tensor) {
        guard requiresGradient else { return }
        precondition(contribution.count == value.count,
                     "gradient \(contribution.shape) does not fit value \(value.shape)")
        if gradient == nil {
            gradient = contribution.shape == value.shape ? contribution : contribution.reshaped(value.shape)
        } else {
            Kernels.accumulate(&gradient!, contribution)
        }
    }

    /// Adds `contribution` to the sub-range `range` of `axis` of the gradient, allocating the full
    /// gradient once: slicing a big tensor into many pieces costs the pieces, not pieces × tensor.
    public func accumulate(_ contribution: Tensor, axis: Int, range: Range<Int>) {
        guard requiresGradient else { return }
        if gradient == nil { gradient = .zeros(value.shape) }
        Kernels.accumulateSlice(&gradient!, contribution, axis: axis, range: range)
    }

    /// Reverse-mode differentiation from this scalar: every leaf that requires a gradient
    /// receives ∂self/∂leaf added to its `gradient`. The graph is released on the way.
    public func backward() {
        precondition(value.count == 1, "backward() needs a scalar loss, got shape \(value.shape)")
        guard requiresGradient else { return }
        // Iterative depth-first topological order (graphs can be thousands of ops deep).
        var order: [Variable] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Variable, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            guard node.pullback != nil, visited.insert(ObjectIdentifier(node)).inserted else { continue }
            stack.append((node, true))
            for parent in node.parents where parent.pullback != nil { stack.append((parent, false)) }
        }
        accumulate(Tensor(repeating: 1, shape: value.shape))
        for node in order.reversed() {
            let pullback = node.pullback!
            node.pullback = nil
            Variable.liveCounter.subtract(1, ordering: .relaxed)
            if let gradient = node.gradient {
                // Interior gradients are not kept: only leaves hold gradients after backward().
                node.gradient = nil
                pullback(gradient)
            }
            node.parents = []
        }
    }

    /// Clears the accumulated gradient.
    public func zeroGradient() { gradient = nil }
}

/// The scoped switch that turns graph recording off (evaluation, sampling).
public enum GradientMode {
    @TaskLocal static var enabled = true

    /// Whether ops currently record a graph.
    public static var isEnabled: Bool { enabled }

    /// Runs `body` with graph recording off.
    public static func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
        try $enabled.withValue(false, operation: body)
    }
}
