import Autodiff
import Foundation
import Tensors

/// An exponential moving average of the parameters (Polyak averaging, as PixelCNN++ evaluates with).
///
/// After each optimizer step, for every parameter w with average a:
///
///     a ← a + (1 − βₜ)(w − a),   βₜ = min(β, (1 + t) / (10 + t))
///
/// where t counts the updates, so the first steps (far from where training ends) fade quickly;
/// the first update copies w. Evaluating with the averages instead of the last weights removes
/// most of the noise that small batches and a high learning rate leave in the weights.
public final class WeightAverage {
    /// β: the weight of the old average once the warm-up is over (0.999 averages about the last 1000 steps).
    public let decay: Float
    /// How many updates have been averaged.
    public private(set) var updateCount = 0
    private var averages: [String: Tensor] = [:]

    public init(decay: Float) {
        precondition(decay >= 0 && decay < 1, "the average's decay must be in [0, 1)")
        self.decay = decay
    }

    /// βₜ for the update that makes `updateCount` equal to `t`.
    public func decay(atUpdate t: Int) -> Float { min(decay, (1 + Float(t)) / (10 + Float(t))) }

    /// Mixes the parameters' current values into their averages.
    public func update(_ parameters: [NamedParameter]) {
        updateCount += 1
        let keep = decay(atUpdate: updateCount)
        for p in parameters {
            guard var average = averages.removeValue(forKey: p.name), average.shape == p.variable.shape else {
                averages[p.name] = p.variable.value
                continue
            }
            p.variable.value.withUnsafeBufferPointer { w in
                average.withUnsafeMutableBufferPointer { a in Self.mix(a.baseAddress!, toward: w.baseAddress!, count: w.count, keep: keep) }
            }
            averages[p.name] = average
        }
    }

    /// a ← a + (1 − keep)(w − a), elementwise, split over the cores for large tensors.
    static func mix(_ a: UnsafeMutablePointer<Float>, toward w: UnsafePointer<Float>, count: Int, keep: Float) {
        let step = 1 - keep
        Parallel.forChunks(count) { range in
            var i = range.lowerBound
            let width = Vector.scalarCount
            while i + width <= range.upperBound {
                let ai = Vector.load(a + i)
                (ai + step * (Vector.load(w + i) - ai)).store(a + i)
                i += width
            }
            while i < range.upperBound {
                a[i] += step * (w[i] - a[i])
                i += 1
            }
        }
    }

    /// The average of the parameter `name` (nil before the first update).
    public func average(of name: String) -> Tensor? { averages[name] }

    /// Exchanges each parameter's value with its average, so that evaluation sees the averages;
    /// a second call restores the weights. Parameters not yet averaged are left alone.
    private func swap(into parameters: [NamedParameter]) {
        forEachAveraged(parameters) { p, average in
            averages[p.name] = p.variable.value
            p.variable.value = average
        }
    }

    /// `body(parameter, its average)` for each parameter with an average of its shape.
    private func forEachAveraged(_ parameters: [NamedParameter], _ body: (NamedParameter, Tensor) -> Void) {
        for p in parameters {
            if let average = averages[p.name], average.shape == p.variable.shape { body(p, average) }
        }
    }

    /// Runs `body` with the averages in the parameters, then puts the weights back.
    public func withAverages<R>(in parameters: [NamedParameter], _ body: () throws -> R) rethrows -> R {
        swap(into: parameters)
        defer { swap(into: parameters) }
        return try body()
    }

    /// Writes the averages into the parameters for good (when training is over and only the averaged
    /// model is used). Parameters not yet averaged are left alone.
    public func assign(to parameters: [NamedParameter]) {
        forEachAveraged(parameters) { p, average in p.variable.value = average }
    }

    /// Restores averages (e.g. from a checkpoint) after `updates` updates.
    public func load(_ tensors: [String: Tensor], updates: Int) {
        averages = tensors
        updateCount = updates
    }
}

extension Checkpoint {
    /// Stores the parameters for use and for resuming: with an average that has seen updates,
    /// `model.` holds the averages (what evaluation and sampling load) and `raw.` the weights
    /// training goes on from; otherwise `model.` holds the weights.
    public mutating func store(_ parameters: [NamedParameter], average: WeightAverage?) {
        guard let average, average.updateCount > 0 else {
            store(parameters, prefix: "model.")
            return
        }
        store(parameters, prefix: "raw.")
        average.withAverages(in: parameters) { store(parameters, prefix: "model.") }
        metadata["average.updates"] = String(average.updateCount)
        metadata["average.decay"] = String(average.decay)
    }

    /// Loads what `store(_:average:)` wrote: the weights into `parameters` and, when the file holds
    /// averages and `average` is given, the averages into it. An average absent from the file starts empty.
    public func restore(_ parameters: [NamedParameter], average: WeightAverage?, path: String) throws {
        guard let updates = metadata["average.updates"].flatMap(Int.init) else {
            try load(into: parameters, prefix: "model.", path: path)
            return
        }
        let averages = try parameters.map { try tensor("model." + $0.name, shape: $0.variable.shape, path: path) }
        try load(into: parameters, prefix: "raw.", path: path)
        average?.load(Dictionary(uniqueKeysWithValues: zip(parameters.map(\.name), averages)), updates: updates)
    }
}
