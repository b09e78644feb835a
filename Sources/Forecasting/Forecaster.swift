// A probabilistic forecaster on the WaveNet stack (in the spirit of van den Oord et al. 2016 and of
// DeepAR's scaling, Salinas et al. 2020): each training window is divided by the mean absolute value
// of its context, quantised into K bins (1024 by default, uniform on [−R, R] or mu-law, edge bins
// open), and the dilated causal stack predicts the next bin. The series identity is a global
// condition (embedding); calendar phase (sin/cos of the position in the season), user covariates
// (standardised per series) and log(scale) are local conditions, known into the future.
// Forecasts are sample paths from the cached generator; quantiles and means come from the paths.

import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

/// Everything that defines a forecaster; stored in its checkpoint.
public struct ForecasterConfiguration: Codable, Sendable, Equatable {
    public var bins = 1024
    /// Scaled values are binned on [−range, range] (or on [lower, upper] when both are set, see
    /// `fitBinRange`); values beyond fall in the open edge bins.
    public var range: Float = 10
    public var lower: Float? = nil
    public var upper: Float? = nil
    public var muLawBinning = false
    public var mu: Float = 255
    public var season: Int
    public var horizon: Int
    public var dilations: [Int]
    public var kernelWidth = 2
    public var residualChannels = 32
    public var gateChannels = 32
    public var skipChannels = 64
    public var headChannels = 64
    public var seriesNames: [String]
    public var embeddingSize = 8
    /// Standard deviation, in bins, of the Gaussian the training targets are spread over (0: one-hot).
    public var smoothingBins: Double = 0
    public var covariates: Int
    /// Per-series mean and standard deviation of each user covariate.
    public var covariateMeans: [[Float]]
    public var covariateDeviations: [[Float]]

    /// Chooses dilations 1, 2, 4, … until the receptive field covers twice the season and twice the horizon (at least 16).
    public init(season: Int, horizon: Int, seriesNames: [String], covariates: Int, covariateMeans: [[Float]], covariateDeviations: [[Float]],
                minimumField: Int? = nil) {
        self.season = season; self.horizon = horizon; self.seriesNames = seriesNames; self.covariates = covariates
        self.covariateMeans = covariateMeans; self.covariateDeviations = covariateDeviations
        let target = minimumField ?? max(2 * season, 2 * horizon, 16)
        var dilations: [Int] = []
        var field = 2
        var d = 1
        while field < target { dilations.append(d); field += d; d *= 2 }
        if dilations.isEmpty { dilations = [1] }
        self.dilations = dilations
    }

    /// Calendar features: sin and cos of the phase in the season (none for season 1).
    public var calendarFeatures: Int { season > 1 ? 2 : 0 }
    /// Local condition channels: calendar, covariates (each twice: standardised per series, and divided by
    /// its own context scale like the target), log scale.
    public var localChannels: Int { calendarFeatures + 2 * covariates + 1 }

    public var stack: DilatedStackConfiguration {
        DilatedStackConfiguration(inputChannels: 2, residualChannels: residualChannels, gateChannels: gateChannels, skipChannels: skipChannels,
                                  headChannels: headChannels, outputChannels: bins, kernelWidth: kernelWidth, dilations: dilations,
                                  inputKernelWidth: 2, globalConditionChannels: embeddingSize, localConditionChannels: localChannels)
    }

    public var receptiveField: Int { stack.receptiveField }

    /// The bin of a scaled value.
    @inlinable public func bin(_ z: Float) -> Int {
        let u: Float
        if muLawBinning {
            let c = min(abs(z) / range, 1)
            u = ((z < 0 ? -1 : 1) * Foundation.log1p(mu * c) / Foundation.log1p(mu) + 1) / 2
        } else {
            let (a, b) = uniformBounds
            u = (z - a) / (b - a)
        }
        // NaN and infinities land in an edge bin instead of trapping.
        let k = (u * Float(bins)).rounded(.down)
        return k >= Float(bins - 1) ? bins - 1 : (k >= 1 ? Int(k) : 0)
    }

    /// The scaled value a bin stands for (its centre).
    @inlinable public func value(ofBin k: Int) -> Float {
        let u = (Float(k) + 0.5) / Float(bins) * 2 - 1
        if muLawBinning { return (u < 0 ? -1 : 1) * range * (Foundation.pow(1 + mu, abs(u)) - 1) / mu }
        let (a, b) = uniformBounds
        return a + (u + 1) / 2 * (b - a)
    }

    /// The interval the uniform bins cover.
    @inlinable public var uniformBounds: (Float, Float) {
        if let lower, let upper, upper > lower { return (lower, upper) }
        return (-range, range)
    }

    /// Fits the bin interval to scaled training values: their span widened by `margin` of itself on each side
    /// (so that forecasts can leave the range seen in training). Mu-law binning keeps its
    /// symmetric range, set to the largest magnitude widened the same way.
    public mutating func fitBinRange(to values: [Float], margin: Float = 0.5) {
        let finite = values.filter(\.isFinite)
        guard let low = finite.min(), let high = finite.max() else { return }
        let (a, b) = (low, high)
        let spread = max(b - a, 1e-3)
        if muLawBinning {
            range = max(abs(a), abs(b)) + margin * spread
        } else {
            lower = a - margin * spread
            upper = b + margin * spread
        }
    }
}

/// The network: the dilated causal stack plus the series embedding.
public final class Forecaster: ParameterContainer {
    public let configuration: ForecasterConfiguration
    public let stack: DilatedCausalStack
    public let seriesTable: Embedding

    public init(_ configuration: ForecasterConfiguration, generator: inout RandomGenerator) {
        self.configuration = configuration
        stack = DilatedCausalStack(configuration.stack, generator: &generator)
        seriesTable = Embedding(count: max(1, configuration.seriesNames.count), dimension: configuration.embeddingSize, generator: &generator)
    }

    public var parameters: [NamedParameter] { prefixed("stack", stack.parameters) + prefixed("series", seriesTable.parameters) }

    /// The scale of a context: mean absolute value of its observed values (1 when all are zero or missing).
    public static func scale(_ values: ArraySlice<Float>) -> Float {
        let observed = values.filter { !$0.isNaN }
        let m = observed.reduce(0) { $0 + abs($1) } / Float(max(observed.count, 1))
        return m > 1e-8 ? m : 1
    }

    /// Local features at absolute positions `positions` of series `s`: `[channels][positions]`; the
    /// covariates' context scales are taken over `context` (the positions the target scale comes from).
    func localFeatures(series: TimeSeries, index s: Int, positions: Range<Int>, scale: Float, context: Range<Int>,
                       covariates: [[Float]]? = nil) -> [[Float]] {
        let c = configuration
        var rows: [[Float]] = []
        if c.season > 1 {
            rows.append(positions.map { Float(sin(2 * Double.pi * Double($0 % c.season) / Double(c.season))) })
            rows.append(positions.map { Float(cos(2 * Double.pi * Double($0 % c.season) / Double(c.season))) })
        }
        let source = covariates ?? series.covariates
        for k in 0..<c.covariates {
            let (m, sd) = (c.covariateMeans[s][k], c.covariateDeviations[s][k])
            let clamped = max(0, context.lowerBound)..<max(max(0, context.lowerBound) + 1, min(context.upperBound, source[k].count))
            let ownScale = Forecaster.scale(source[k][clamped])
            var last: Float = 0, lastScaled: Float = 0
            var standardised: [Float] = [], scaled: [Float] = []
            for p in positions {
                let v = p >= 0 && p < source[k].count ? source[k][p] : .nan
                if !v.isNaN { last = (v - m) / sd; lastScaled = v / ownScale }
                standardised.append(last); scaled.append(lastScaled)
            }
            rows.append(standardised)
            rows.append(scaled)
        }
        rows.append([Float](repeating: Foundation.log(scale), count: positions.count))
        return rows
    }
}

/// Training examples laid out exactly like forecasts: an origin, the receptive field before it as context
/// (its mean absolute value is the window's scale), and the `window` steps from the origin as targets
/// (teacher-forced; missing targets do not count). Every origin of every series is an example, so each
/// value is seen under several scales.
public final class ForecastTask: ConfiguredTrainingTask {
    public let model: Forecaster
    public let data: SeriesSet
    public let window: Int
    public let batchSize: Int
    /// Positions each series may be trained on (0..<limit), e.g. up to a backtest origin.
    public let limits: [Int]
    let origins: [(series: Int, origin: Int)]

    /// The shortest context an origin may have (the forecaster refuses shorter histories).
    public static func minimumContext(field: Int) -> Int { min(field, 8) }

    public init(model: Forecaster, data: SeriesSet, window: Int, batchSize: Int, limits: [Int]? = nil) {
        self.model = model; self.data = data; self.window = window; self.batchSize = batchSize
        let limits = limits ?? data.series.map(\.count)
        self.limits = limits
        origins = Self.origins(limits: limits, field: model.configuration.receptiveField)
    }

    static func origins(limits: [Int], field: Int) -> [(series: Int, origin: Int)] {
        var origins: [(series: Int, origin: Int)] = []
        for (s, limit) in limits.enumerated() {
            let first = Self.minimumContext(field: field)
            if limit <= first { continue }
            for origin in first..<limit { origins.append((s, origin)) }
        }
        return origins
    }

    /// Every training target divided by its context's scale, as `makeBatch` bins them.
    public static func scaledTargets(data: SeriesSet, limits: [Int], field: Int, window: Int) -> [Float] {
        var values: [Float] = []
        for (s, origin) in origins(limits: limits, field: field) {
            let ts = data.series[s]
            let scale = Forecaster.scale(ts.values[max(0, origin - field)..<origin])
            for p in origin..<min(origin + window, limits[s]) where !ts.values[p].isNaN { values.append(ts.values[p] / scale) }
        }
        return values
    }

    public var parameters: [NamedParameter] { model.parameters }
    public var dimensionsPerExample: Int { window }
    public var modelConfiguration: ForecasterConfiguration { model.configuration }
    public var checkpointMetadata: [String: String] { ["seriatim.model": "forecaster"] }
    public func exampleCount(_ split: DataSplit) -> Int { split == .train ? max(origins.count, batchSize) : 0 }

    public struct Batch {
        var input: Tensor, local: Tensor, targets: [Int32], series: [Int], counted: Int
    }

    public func makeBatch(_ split: DataSplit, indices: [Int], generator: inout RandomGenerator) -> Batch {
        let c = model.configuration
        let field = c.receptiveField
        let length = field + window
        var input = [Float](repeating: 0, count: indices.count * 2 * length)
        var local = [Float](repeating: 0, count: indices.count * c.localChannels * length)
        var targets = [Int32](repeating: -1, count: indices.count * window)
        var series: [Int] = []
        var counted = 0
        for (row, _) in indices.enumerated() {
            let (s, origin) = origins[generator.integer(below: origins.count)]
            let ts = data.series[s]
            let filled = ts.filled
            let start = origin - field
            let context = max(0, start)..<origin
            let scale = Forecaster.scale(ts.values[context])
            series.append(s)
            let features = model.localFeatures(series: ts, index: s, positions: start..<(start + length), scale: scale, context: context)
            for t in 0..<length {
                let p = start + t
                guard p >= 0, p < limits[s] else { continue }
                input[(row * 2) * length + t] = filled[p] / scale
                input[(row * 2 + 1) * length + t] = ts.values[p].isNaN ? 1 : 0
                for (k, f) in features.enumerated() { local[(row * c.localChannels + k) * length + t] = f[t] }
                if p >= origin, !ts.values[p].isNaN {
                    targets[row * window + t - field] = Int32(c.bin(ts.values[p] / scale))
                    counted += 1
                }
            }
        }
        return Batch(input: Tensor(shape: [indices.count, 2, length], scalars: input),
                     local: Tensor(shape: [indices.count, c.localChannels, length], scalars: local),
                     targets: targets, series: series, counted: max(counted, 1))
    }

    public func loss(_ batch: Batch, generator: inout RandomGenerator) -> Variable {
        // Only the positions from the origin on are scored, so the 1×1 head runs on those alone.
        let logits = model.stack(Variable(batch.input), global: model.seriesTable(batch.series), local: Variable(batch.local),
                                 from: model.configuration.receptiveField)
        let width = model.configuration.smoothingBins
        guard width > 0 else {
            return sum(softmaxCrossEntropy(logits: logits, targets: batch.targets, axis: 1)) * (1 / Float(batch.counted))
        }
        // Cross-entropy against a discretised Gaussian around the target bin (σ = `smoothingBins`): with a
        // thousand bins and a few hundred observations, neighbouring bins must share evidence.
        let (b, k, t) = (logits.shape[0], logits.shape[1], logits.shape[2])
        var soft = [Float](repeating: 0, count: b * k * t)
        let radius = Int((3 * width).rounded(.up))
        let weights = (-radius...radius).map { Float(Foundation.exp(-0.5 * Double($0 * $0) / (width * width))) }
        for row in 0..<b { for position in 0..<t {
            let target = Int(batch.targets[row * t + position])
            guard target >= 0 else { continue }
            var total: Float = 0
            for (i, offset) in (-radius...radius).enumerated() where (0..<k).contains(target + offset) { total += weights[i] }
            for (i, offset) in (-radius...radius).enumerated() where (0..<k).contains(target + offset) {
                soft[(row * k + target + offset) * t + position] = weights[i] / total
            }
        } }
        let logp = logSoftmax(logits, axis: 1)
        return -sum(logp * Variable(Tensor(shape: [b, k, t], scalars: soft))) * (1 / Float(batch.counted))
    }

    public func evaluate(_ batch: Batch) -> [Double] { [] }
}

/// Sample paths from the cached generator.
public struct ForecastPaths: Sendable {
    /// `[paths][horizon]` values on the series' own scale.
    public var paths: [[Float]]

    /// The τ-quantile per step.
    public func quantile(_ tau: Double) -> [Float] {
        guard let horizon = paths.first?.count else { return [] }
        return (0..<horizon).map { h in
            let sorted = paths.map { $0[h] }.sorted()
            let position = tau * Double(sorted.count - 1)
            let (low, high) = (Int(position.rounded(.down)), Int(position.rounded(.up)))
            let w = Float(position - Double(low))
            return sorted[low] * (1 - w) + sorted[high] * w
        }
    }

    public var mean: [Float] {
        guard let horizon = paths.first?.count else { return [] }
        return (0..<horizon).map { h in paths.reduce(0) { $0 + $1[h] } / Float(paths.count) }
    }
}

extension Forecaster {
    /// Forecasts `horizon` steps after position `origin` of series `s` (history 0..<origin) as `paths` sample paths.
    /// - Parameters:
    ///   - futureCovariates: covariate values for the forecast steps when the series' own columns end at the origin.
    public func forecast(series ts: TimeSeries, index s: Int, origin: Int, horizon: Int, paths: Int,
                         temperature: Float = 1, generator: inout RandomGenerator) -> ForecastPaths {
        let c = configuration
        let field = c.receptiveField
        let historyStart = max(0, origin - field)
        let scale = Forecaster.scale(ts.values[historyStart..<max(historyStart + 1, origin)])
        let filled = ts.filled
        let cache = IncrementalStack(stack, streams: paths,
                                     global: Tensor(shape: [paths, c.embeddingSize], scalars: (0..<paths).flatMap { _ in
                                         Array(seriesTable.table.value.scalars[(s * c.embeddingSize)..<((s + 1) * c.embeddingSize)]) }))
        let total = origin - historyStart + horizon
        let features = localFeatures(series: ts, index: s, positions: historyStart..<(historyStart + total), scale: scale,
                                     context: historyStart..<max(historyStart + 1, origin))
        var input = [Float](repeating: 0, count: paths * 2), local = [Float](repeating: 0, count: paths * c.localChannels)
        var output = [Float](repeating: 0, count: paths * c.bins)
        var result = [[Float]](repeating: [Float](repeating: 0, count: horizon), count: paths)
        for step in 0..<total {
            for p in 0..<paths { for k in 0..<c.localChannels { local[p * c.localChannels + k] = features[k][step] } }
            input.withUnsafeBufferPointer { ip in local.withUnsafeBufferPointer { lp in output.withUnsafeMutableBufferPointer { op in
                cache.step(previousInput: ip.baseAddress!, local: lp.baseAddress!, output: op.baseAddress!)
            } } }
            let position = historyStart + step
            for p in 0..<paths {
                let z: Float
                if position < origin {
                    z = filled[position] / scale
                    input[p * 2 + 1] = ts.values[position].isNaN ? 1 : 0
                } else {
                    let k = output.withUnsafeBufferPointer {
                        generator.categorical(logits: UnsafeBufferPointer(rebasing: $0[(p * c.bins)..<((p + 1) * c.bins)]), temperature: temperature)
                    }
                    z = c.value(ofBin: k)
                    result[p][position - origin] = z * scale
                    input[p * 2 + 1] = 0
                }
                input[p * 2] = z
            }
        }
        return ForecastPaths(paths: result)
    }

    /// The one-step-ahead bin probabilities after position `origin` of series `s` (the distribution of the next value).
    public func nextStepProbabilities(series ts: TimeSeries, index s: Int, origin: Int) -> (probabilities: [Float], binValues: [Float]) {
        var generator = RandomGenerator(seed: 0)
        let c = configuration
        let historyStart = max(0, origin - c.receptiveField)
        let scale = Forecaster.scale(ts.values[historyStart..<max(historyStart + 1, origin)])
        // One path of length 1 through the same cached pass, keeping the logits of the last step.
        let filled = ts.filled
        let cache = IncrementalStack(stack, streams: 1, global: Kernels.embedding(seriesTable.table.value, indices: [s]))
        let features = localFeatures(series: ts, index: s, positions: historyStart..<(origin + 1), scale: scale,
                                     context: historyStart..<max(historyStart + 1, origin))
        var input: [Float] = [0, 0], local = [Float](repeating: 0, count: c.localChannels), output = [Float](repeating: 0, count: c.bins)
        for step in 0...(origin - historyStart) {
            for k in 0..<c.localChannels { local[k] = features[k][step] }
            input.withUnsafeBufferPointer { ip in local.withUnsafeBufferPointer { lp in output.withUnsafeMutableBufferPointer { op in
                cache.step(previousInput: ip.baseAddress!, local: lp.baseAddress!, output: op.baseAddress!)
            } } }
            let position = historyStart + step
            if position < origin { input = [filled[position] / scale, ts.values[position].isNaN ? 1 : 0] }
        }
        _ = generator.next()
        let m = output.max()!
        let e = output.map { Foundation.exp($0 - m) }
        let total = e.reduce(0, +)
        return (e.map { $0 / total }, (0..<c.bins).map { c.value(ofBin: $0) * scale })
    }
}

/// Forecasters trained alike from different seeds; their sample paths are pooled (a mixture with equal weights),
/// which widens the otherwise over-confident intervals of one network trained on a short series.
public struct ForecastEnsemble {
    public let members: [Forecaster]

    public init(_ members: [Forecaster]) {
        precondition(!members.isEmpty, "an ensemble needs a member")
        self.members = members
    }

    public var configuration: ForecasterConfiguration { members[0].configuration }

    /// `paths` sample paths, split as evenly as possible over the members.
    public func forecast(series ts: TimeSeries, index s: Int, origin: Int, horizon: Int, paths: Int,
                         temperature: Float = 1, generator: inout RandomGenerator) -> ForecastPaths {
        var pooled: [[Float]] = []
        for (k, member) in members.enumerated() {
            let share = paths / members.count + (k < paths % members.count ? 1 : 0)
            guard share > 0 else { continue }
            pooled += member.forecast(series: ts, index: s, origin: origin, horizon: horizon, paths: share,
                                      temperature: temperature, generator: &generator).paths
        }
        return ForecastPaths(paths: pooled)
    }

    /// The members' one-step bin probabilities, averaged.
    public func nextStepProbabilities(series ts: TimeSeries, index s: Int, origin: Int) -> (probabilities: [Float], binValues: [Float]) {
        let each = members.map { $0.nextStepProbabilities(series: ts, index: s, origin: origin) }
        let mean = (0..<each[0].probabilities.count).map { i in each.reduce(0) { $0 + $1.probabilities[i] } / Float(each.count) }
        return (mean, each[0].binValues)
    }
}
