import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

/// How to train and sample a forecaster.
public struct ForecastSettings: Codable, Sendable {
    public var horizon: Int
    public var season: Int
    public var quantiles: [Double] = [0.1, 0.5, 0.9]
    public var samples = 100
    public var steps = 600
    public var batchSize = 16
    /// Counted steps after each training origin (nil: the horizon, so that training windows look like forecasts).
    public var window: Int? = nil
    public var learningRate: Float = 3e-3
    public var seed: UInt64 = 1
    public var muLawBinning = false
    /// Spread of the training targets over neighbouring bins (standard deviation in bins; 0: none). With the bins
    /// fitted to the data, 8 of 1024 bins is under 1% of the span of the scaled training values.
    public var smoothingBins: Double = 8
    /// Uniform bins on [−range, range] of the scaled values; nil fits the interval to the training data.
    public var binRange: Float? = nil
    /// Independently seeded forecasters whose sample paths are pooled.
    public var ensemble = 3
    /// Forecast with an exponential moving average of the weights with this decay (nil: the weights).
    public var averageDecay: Float? = nil

    public init(horizon: Int, season: Int) { self.horizon = horizon; self.season = season }
}

public enum Forecasting {
    /// Standardisation of each series' covariates (over the part used for training).
    static func covariateStatistics(_ data: SeriesSet, limits: [Int]) -> ([[Float]], [[Float]]) {
        var means: [[Float]] = [], deviations: [[Float]] = []
        for (s, series) in data.series.enumerated() {
            var m: [Float] = [], d: [Float] = []
            for column in series.covariates {
                let observed = column.prefix(limits[s]).filter { !$0.isNaN }
                let mean = observed.reduce(0, +) / Float(max(observed.count, 1))
                let variance = observed.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(observed.count, 1))
                m.append(mean); d.append(max(variance.squareRoot(), 1e-6))
            }
            means.append(m); deviations.append(d)
        }
        return (means, deviations)
    }

    /// Trains `settings.ensemble` forecasters (seeds `seed`, `seed + 1`, …) on each series up to `limits` (default: all
    /// of it); with more than one, member k goes to `runDirectory/member-k`. The members share one configuration.
    public static func train(_ data: SeriesSet, settings: ForecastSettings, limits: [Int]? = nil, runDirectory: String,
                             progress: ProgressDisplay = ProgressDisplay()) throws -> ForecastEnsemble {
        let limits = limits ?? data.series.map(\.count)
        let configuration = try configure(data, settings: settings, limits: limits)
        let count = max(1, settings.ensemble)
        var members: [Forecaster] = []
        for k in 0..<count {
            let directory = count == 1 ? runDirectory : (runDirectory as NSString).appendingPathComponent("member-\(k + 1)")
            members.append(try trainMember(data, configuration: configuration, settings: settings, seed: settings.seed &+ UInt64(k),
                                           limits: limits, runDirectory: directory, progress: progress))
        }
        return ForecastEnsemble(members)
    }

    /// The forecaster configuration for the data up to `limits`: covariate statistics, bins fitted to the scaled
    /// training values (unless `binRange` is set), and a check that every series is long enough.
    static func configure(_ data: SeriesSet, settings: ForecastSettings, limits: [Int]) throws -> ForecasterConfiguration {
        let (means, deviations) = covariateStatistics(data, limits: limits)
        var configuration = ForecasterConfiguration(season: settings.season, horizon: settings.horizon, seriesNames: data.series.map(\.name),
                                                    covariates: data.covariateNames.count, covariateMeans: means, covariateDeviations: deviations)
        configuration.muLawBinning = settings.muLawBinning
        configuration.smoothingBins = settings.smoothingBins
        if let range = settings.binRange {
            configuration.range = range
        } else {
            configuration.fitBinRange(to: ForecastTask.scaledTargets(data: data, limits: limits, field: configuration.receptiveField,
                                                                     window: settings.window ?? settings.horizon))
        }
        let needed = ForecastTask.minimumContext(field: configuration.receptiveField) + settings.horizon
        for (s, series) in data.series.enumerated() where limits[s] < needed {
            throw SeriesError.tooShort(path: data.path, series: series.name, length: limits[s], needed: needed)
        }
        return configuration
    }

    /// Trains one forecaster from `seed`.
    static func trainMember(_ data: SeriesSet, configuration: ForecasterConfiguration, settings: ForecastSettings, seed: UInt64,
                            limits: [Int], runDirectory: String, progress: ProgressDisplay) throws -> Forecaster {
        var generator = RandomGenerator(seed: seed)
        let model = Forecaster(configuration, generator: &generator)
        let task = ForecastTask(model: model, data: data, window: settings.window ?? settings.horizon, batchSize: settings.batchSize, limits: limits)
        var trainer = TrainerConfiguration()
        trainer.batchSize = settings.batchSize
        trainer.steps = settings.steps
        trainer.evaluateEvery = settings.steps
        trainer.seed = seed
        trainer.schedule = LearningRateSchedule(base: settings.learningRate, warmupSteps: min(50, settings.steps / 10),
                                                decay: .cosine(totalSteps: settings.steps, minimum: settings.learningRate / 10))
        trainer.clipNorm = 5
        trainer.logEvery = max(1, settings.steps / 5)
        trainer.averageDecay = settings.averageDecay
        let training = try Trainer(task: task, optimizer: Adam(learningRate: settings.learningRate), configuration: trainer,
                                   runDirectory: runDirectory, progress: progress)
        try training.train()
        // The forecaster returned is the one a checkpoint loads (`model.`: the average when averaging).
        training.average?.assign(to: model.parameters)
        return model
    }

    /// Loads a trained ensemble: a run directory with `member-k` subdirectories, or one forecaster's run directory or
    /// checkpoint file (`checkpointFile` picks the file in a run directory).
    public static func loadEnsemble(_ path: String, checkpointFile: (String) throws -> String) throws -> ForecastEnsemble {
        var members: [Forecaster] = []
        var k = 1
        while true {
            let directory = (path as NSString).appendingPathComponent("member-\(k)")
            guard FileManager.default.fileExists(atPath: directory) else { break }
            members.append(try load(try checkpointFile(directory)))
            k += 1
        }
        if members.isEmpty { members = [try load(try checkpointFile(path))] }
        guard members.allSatisfy({ $0.configuration == members[0].configuration }) else {
            throw CheckpointError.corrupt(path: path, reason: "its members were trained with different configurations")
        }
        return ForecastEnsemble(members)
    }

    /// Loads a trained forecaster.
    public static func load(_ path: String) throws -> Forecaster {
        let checkpoint = try Checkpoint.read(from: path)
        guard checkpoint.metadata["seriatim.model"] == "forecaster", let json = checkpoint.metadata["config"],
              let configuration = try? JSONDecoder().decode(ForecasterConfiguration.self, from: Data(json.utf8)) else {
            throw CheckpointError.corrupt(path: path, reason: "it holds no forecaster")
        }
        var generator = RandomGenerator(seed: 0)
        let model = Forecaster(configuration, generator: &generator)
        try checkpoint.load(into: model.parameters, prefix: "model.", path: path)
        return model
    }
}

/// Metrics of one model on one series, averaged over the backtest windows.
public struct MetricSet: Sendable {
    public var mase = 0.0, smape = 0.0, msis = 0.0, wql = 0.0
    public var coverage: [Double: Double] = [:]
    var windows = 0

    mutating func add(_ other: MetricSet) {
        mase += other.mase; smape += other.smape; msis += other.msis; wql += other.wql
        for (k, v) in other.coverage { coverage[k, default: 0] += v }
        windows += max(other.windows, 1)
    }

    func averaged() -> MetricSet {
        let n = Double(max(windows, 1))
        var m = MetricSet(mase: mase / n, smape: smape / n, msis: msis / n, wql: wql / n)
        for (k, v) in coverage { m.coverage[k] = v / n }
        m.windows = windows
        return m
    }

    public var json: [String: Any] {
        ["mase": mase, "smape": smape, "msis": msis, "wql": wql,
         "coverage": Dictionary(uniqueKeysWithValues: coverage.map { (String(format: "%g", $0.key), $0.value) })]
    }
}

/// A rolling-origin evaluation.
public struct BacktestReport: Sendable {
    public static let models = ["wavenet", "seasonal_naive", "ar"]
    /// model → metrics, averaged over windows and series.
    public var aggregate: [String: MetricSet]
    /// series → model → metrics averaged over windows.
    public var series: [String: [String: MetricSet]]
    public var windows: Int
    public var season: Int

    public var json: [String: Any] {
        ["aggregate": aggregate.mapValues(\.json), "series": series.mapValues { $0.mapValues(\.json) }, "windows": windows, "season": season]
    }
}

extension Forecasting {
    /// Rolling-origin backtest over the last `windows` windows of `horizon` steps, `stride` apart
    /// (non-overlapping by default). The forecaster is trained once on the history before the first
    /// origin and then conditioned on all history before each origin; the baselines are fitted on
    /// that same history. MASE and MSIS scale by the in-sample seasonal naive error before each
    /// origin; MSIS uses the central 95% interval (α = 0.05).
    public static func backtest(_ data: SeriesSet, settings: ForecastSettings, windows: Int, stride requested: Int? = nil,
                                runDirectory: String, progress: ProgressDisplay = ProgressDisplay()) throws -> BacktestReport {
        let h = settings.horizon
        let stride = requested ?? h
        let firstOrigins = data.series.map { $0.count - h - (windows - 1) * stride }
        for (s, series) in data.series.enumerated() where firstOrigins[s] < max(2 * settings.season, 8) {
            throw SeriesError.tooShort(path: data.path, series: series.name, length: series.count, needed: h + (windows - 1) * stride + max(2 * settings.season, 8))
        }
        let model = try train(data, settings: settings, limits: firstOrigins, runDirectory: runDirectory, progress: progress)
        var levels = Set(settings.quantiles)
        levels.formUnion([0.025, 0.975, 0.5])
        let sortedLevels = levels.sorted()
        var generator = RandomGenerator(seed: settings.seed ^ 0xBAC4)
        var perSeries: [String: [String: MetricSet]] = [:]
        var aggregate: [String: MetricSet] = [:]
        for (s, series) in data.series.enumerated() {
            var totals: [String: MetricSet] = [:]
            for w in 0..<windows {
                let origin = firstOrigins[s] + w * stride
                let history = Array(series.values[0..<origin])
                let actual = Array(series.values[origin..<(origin + h)])
                let scale = ForecastMetrics.seasonalNaiveScale(history, season: settings.season)
                var forecasts: [String: (point: [Float], quantiles: [Double: [Float]])] = [:]
                let paths = model.forecast(series: series, index: s, origin: origin, horizon: h, paths: settings.samples, generator: &generator)
                forecasts["wavenet"] = (paths.quantile(0.5), Dictionary(uniqueKeysWithValues: sortedLevels.map { ($0, paths.quantile($0)) }))
                forecasts["seasonal_naive"] = Baselines.seasonalNaive(history: history, season: settings.season, horizon: h, levels: sortedLevels)
                forecasts["ar"] = Baselines.autoregressive(history: history, order: max(3, min(2 * settings.season, 24)), horizon: h,
                                                           levels: sortedLevels, seed: settings.seed &+ UInt64(w))
                for (name, f) in forecasts {
                    var m = MetricSet()
                    m.mase = ForecastMetrics.mase(actual: actual, forecast: f.point, scale: scale)
                    m.smape = ForecastMetrics.smape(actual: actual, forecast: f.point)
                    m.msis = ForecastMetrics.msis(actual: actual, lower: f.quantiles[0.025]!, upper: f.quantiles[0.975]!, alpha: 0.05, scale: scale)
                    m.wql = ForecastMetrics.weightedQuantileLoss(actual: actual, quantiles: f.quantiles.filter { settings.quantiles.contains($0.key) })
                    for tau in settings.quantiles { m.coverage[tau] = ForecastMetrics.coverage(actual: actual, quantile: f.quantiles[tau]!) }
                    m.windows = 1
                    totals[name, default: MetricSet()].add(m)
                    aggregate[name, default: MetricSet()].add(m)
                }
            }
            perSeries[series.name] = totals.mapValues { $0.averaged() }
        }
        return BacktestReport(aggregate: aggregate.mapValues { $0.averaged() }, series: perSeries, windows: windows, season: settings.season)
    }
}
