import Autodiff
import Tensors

/// A trainable parameter with the name that becomes its checkpoint key.
public struct NamedParameter {
    public let name: String
    public let variable: Variable
    public init(_ name: String, _ variable: Variable) {
        self.name = name
        self.variable = variable
    }
}

/// Anything that owns parameters. Each layer lists them explicitly (no reflection), and a
/// composite prefixes its children's names (`block3.conv.weight`).
public protocol ParameterContainer {
    /// Every trainable parameter, with a stable, unique name.
    var parameters: [NamedParameter] { get }
}

extension ParameterContainer {
    /// The total number of scalars in the parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.variable.value.count } }

    /// Clears every parameter's gradient.
    public func zeroGradients() { for p in parameters { p.variable.zeroGradient() } }
}

/// Prefixes each name with `prefix.`.
public func prefixed(_ prefix: String, _ parameters: [NamedParameter]) -> [NamedParameter] {
    parameters.map { NamedParameter("\(prefix).\($0.name)", $0.variable) }
}

/// Weight initialisers (Glorot & Bengio 2010; He et al. 2015).
public enum Initializer {
    /// Uniform in ±√(6 / (fanIn + fanOut)).
    public static func xavierUniform(_ shape: [Int], fanIn: Int, fanOut: Int, generator: inout RandomGenerator) -> Tensor {
        let bound = (6 / Float(fanIn + fanOut)).squareRoot()
        return generator.uniformTensor(shape, low: -bound, high: bound)
    }

    /// Normal with standard deviation √(2 / fanIn), for layers followed by ReLU.
    public static func heNormal(_ shape: [Int], fanIn: Int, generator: inout RandomGenerator) -> Tensor {
        generator.normalTensor(shape, standardDeviation: (2 / Float(fanIn)).squareRoot())
    }
}

/// A trainable parameter initialised from a tensor.
public func parameter(_ value: Tensor) -> Variable { Variable(value, requiresGradient: true) }
