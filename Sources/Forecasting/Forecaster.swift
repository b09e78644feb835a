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
    /// Scaled values are binned on [−range, range]; values beyond fall in the edge bins.
    public var range: Float = 10
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
            u = (z / range + 1) / 2
        }
        return min(bins - 1, max(0, Int(u * Float(bins))))
    }

    /// The scaled value a bin stands for (its centre).
    @inlinable public func value(ofBin k: Int) -> Float {
        let u = (Float(k) + 0.5) / Float(bins) * 2 - 1
        if muLawBinning { return (u < 0 ? -1 : 1) * range * (Foundation.pow(1 + mu, abs(u)) - 1) / mu }
        return u * range
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

/// Training on random windows of all series (receptive field + `window` steps; the first receptive
/// field positions only warm up, missing targets do not count).
public final class ForecastTask: TrainingTask {
    public let model: Forecaster
    public let data: SeriesSet
    public let window: Int
    public let batchSize: Int
    /// Positions each series may be trained on (0..<limit), e.g. up to a backtest origin.
    public let limits: [Int]
    let starts: [(series: Int, start: Int)]

    public init(model: Forecaster, data: SeriesSet, window: Int, batchSize: Int, limits: [Int]? = nil) {
        self.model = model; self.data = data; self.window = window; self.batchSize = batchSize
        let limits = limits ?? data.series.map(\.count)
        self.limits = limits
        let length = model.configuration.receptiveField + window
        var starts: [(Int, Int)] = []
        for (s, limit) in limits.enumerated() {
            // Short series train on what they have, with the window's start clamped at 0.
            if limit < 2 { continue }
            for start in stride(from: min(0, limit - length), through: max(0, limit - length), by: 1) { starts.append((s, start)) }
        }
        self.starts = starts.map { (series: $0.0, start: $0.1) }
    }

    public var parameters: [NamedParameter] { model.parameters }
    public var dimensionsPerExample: Int { window }
    public var configurationJSON: String { canonicalJSON(model.configuration) }
    public var checkpointMetadata: [String: String] { ["seriatim.model": "forecaster"] }
    public func exampleCount(_ split: DataSplit) -> Int { split == .train ? max(starts.count, batchSize) : 0 }

    public struct Batch {
        var input: Tensor, local: Tensor, targets: [Int32], series: [Int], counted: Int
    }

    public func makeBatch(_ split: DataSplit, indices: [Int], generator: inout RandomGenerator) -> Batch {
        let c = model.configuration
        let field = c.receptiveField
        let length = field + window
        var input = [Float](repeating: 0, count: indices.count * 2 * length)
        var local = [Float](repeating: 0, count: indices.count * c.localChannels * length)
        var targets = [Int32](repeating: -1, count: indices.count * length)
        var series: [Int] = []
        var counted = 0
        for (row, _) in indices.enumerated() {
            let (s, start) = starts[generator.integer(below: starts.count)]
            let ts = data.series[s]
            let filled = ts.filled
            let first = max(0, start)
            let contextEnd = min(limits[s], first + field)
            let scale = Forecaster.scale(ts.values[first..<max(first + 1, contextEnd)])
            series.append(s)
            let features = model.localFeatures(series: ts, index: s, positions: start..<(start + length), scale: scale, context: first..<max(first + 1, contextEnd))
            for t in 0..<length {
                let p = start + t
                guard p >= 0, p < limits[s] else { continue }
                input[(row * 2) * length + t] = filled[p] / scale
                input[(row * 2 + 1) * length + t] = ts.values[p].isNaN ? 1 : 0
                for (k, f) in features.enumerated() { local[(row * c.localChannels + k) * length + t] = f[t] }
                if t >= min(field, length / 2), !ts.values[p].isNaN {
                    targets[row * length + t] = Int32(c.bin(ts.values[p] / scale))
                    counted += 1
                }
            }
        }
        return Batch(input: Tensor(shape: [indices.count, 2, length], scalars: input),
                     local: Tensor(shape: [indices.count, c.localChannels, length], scalars: local),
                     targets: targets, series: series, counted: max(counted, 1))
    }

    public func loss(_ batch: Batch, generator: inout RandomGenerator) -> Variable {
        let logits = model.stack(Variable(batch.input), global: model.seriesTable(batch.series), local: Variable(batch.local))
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
