import Autoregressive
import Forecasting
import Foundation
import NeuralNetworks
import Testing
import Tensors

func temporaryFile(_ name: String, _ contents: String) -> String {
    let path = NSTemporaryDirectory() + "seriatim-\(UUID().uuidString)-\(name)"
    try! contents.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "seriatim-forecast-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct MetricTests {
    /// Each metric against numbers worked out by hand.
    @Test func handComputedValues() {
        let history: [Float] = [1, 2, 3, 2, 3, 4]         // season 2: |3−1|,|2−2|,|3−3|,|4−2| → mean 1
        #expect(ForecastMetrics.seasonalNaiveScale(history, season: 2) == 1)
        let actual: [Float] = [4, 2], forecast: [Float] = [3, 4]
        #expect(ForecastMetrics.mase(actual: actual, forecast: forecast, scale: 1) == 1.5)       // (1 + 2)/2
        // sMAPE = 200/2 · (1/7 + 2/6)
        #expect(abs(ForecastMetrics.smape(actual: actual, forecast: forecast) - 100 * (1.0 / 7 + 2.0 / 6)) < 1e-9)
        // MSIS, α = 0.2, interval [3, 5] and [3, 5]: widths 2 + 2; y = 2 < 3 adds 2/0.2·1 = 10 → (2 + 12)/2 = 7
        #expect(abs(ForecastMetrics.msis(actual: actual, lower: [3, 3], upper: [5, 5], alpha: 0.2, scale: 1) - 7) < 1e-9)
        // wQL for τ = 0.5 with q = [3, 4]: 2·(0.5·1 + 0.5·2)/6 = 0.5
        #expect(abs(ForecastMetrics.weightedQuantileLoss(actual: actual, quantiles: [0.5: [3, 4]]) - 0.5) < 1e-9)
        // τ = 0.9, q = [5, 1]: u = −1 → 0.1·1, u = 1 → 0.9·1; 2·(0.1 + 0.9)/6
        #expect(abs(ForecastMetrics.weightedQuantileLoss(actual: actual, quantiles: [0.9: [5, 1]]) - 2.0 / 6) < 1e-9)
        #expect(ForecastMetrics.coverage(actual: actual, quantile: [5, 1]) == 0.5)
        // Missing values are skipped.
        #expect(ForecastMetrics.mase(actual: [.nan, 2], forecast: [9, 4], scale: 2) == 1)
    }

    @Test func baselines() {
        let history: [Float] = [1, 5, 2, 7, 3, 6, 2, 8]
        let naive = Baselines.seasonalNaive(history: history, season: 2, horizon: 3, levels: [0.5, 0.9])
        #expect(naive.point == [2, 8, 2])
        #expect(naive.quantiles[0.5]! == [2, 8, 2])
        #expect(naive.quantiles[0.9]![2] - naive.quantiles[0.9]![0] > 0)  // wider two seasons ahead
        // AR(1) on y = 0.5·y + 1 recovers the recursion.
        var y: [Float] = [0]
        for _ in 0..<60 { y.append(0.5 * y.last! + 1) }
        let ar = Baselines.autoregressive(history: y, order: 1, horizon: 2, levels: [0.5])
        #expect(abs(ar.point[0] - (0.5 * y.last! + 1)) < 1e-3)
        #expect(abs(Baselines.normalQuantile(0.975) - 1.959964) < 1e-5)
    }
}

@Suite struct SeriesFileTests {
    @Test func longAndWideFormsWithMissingValues() throws {
        let long = temporaryFile("long.csv", "timestamp,series,value,temp\n2020-01-02,a,2,10\n2020-01-01,a,1,11\n2020-01-03,a,NA,12\n2020-01-01,b,5,1\n2020-01-02,b,,2\n")
        let set = try SeriesSet.read(long)
        #expect(set.series.map(\.name) == ["a", "b"] && set.frequency == .daily && set.covariateNames == ["temp"])
        #expect(set.series[0].values[0] == 1 && set.series[0].values[2].isNaN && set.series[0].filled[2] == 2)
        #expect(set.series[1].missingCount == 1)
        #expect(set.futureTimestamps(set.series[0], steps: 2) == ["2020-01-04", "2020-01-05"])
        let wide = temporaryFile("wide.csv", "month,x,y\n2020-01,1,2\n2020-02,3,4\n2020-03,5,6\n")
        let w = try SeriesSet.read(wide)
        #expect(w.series.count == 2 && w.frequency == .monthly && w.frequency.season == 12)
        #expect(w.futureTimestamps(w.series[0], steps: 1) == ["2020-04"])
        let numeric = temporaryFile("ts.csv", "time,value\n1949.0,112\n1949.0833,118\n1949.1667,132\n")
        #expect(try SeriesSet.read(numeric).frequency == .monthly)
    }

    @Test func badInputNamesFileLineAndColumn() {
        func message(_ contents: String) -> String {
            let path = temporaryFile("bad.csv", contents)
            do { _ = try SeriesSet.read(path); return "accepted" } catch { return "\(error)" }
        }
        #expect(message("timestamp,name\n2020-01-01,abc\n").contains("no numeric value column"))
        let timestamp = message("timestamp,value\n2020-01-01,1\n2020-13-45,2\n")
        #expect(timestamp.contains("line 3") && timestamp.contains("column 1") && timestamp.contains("2020-13-45"))
        let value = message("timestamp,series,value\n2020-01-01,a,1\n2020-01-02,a,x\n")
        #expect(value.contains("line 3 column 3"))
        #expect(message("timestamp,series,value\n2020-01-01,a,1\n2020-01-01,a,2\n").contains("twice"))
    }
}

@Suite struct ForecasterTests {
    /// Fitted bins span the scaled training values with a margin, and every value maps back to within one bin.
    @Test func binsFitTheScaledValues() {
        var c = ForecasterConfiguration(season: 1, horizon: 1, seriesNames: ["s"], covariates: 0, covariateMeans: [[]], covariateDeviations: [[]])
        let values: [Float] = (0..<200).map { 0.97 + 0.06 * Float($0) / 199 }
        c.fitBinRange(to: values + [.nan])
        let (low, high) = c.uniformBounds
        #expect(abs(low - 0.94) < 1e-4 && abs(high - 1.06) < 1e-4, "\(low)…\(high)")
        let width = (high - low) / Float(c.bins)
        for v in values { #expect(abs(c.value(ofBin: c.bin(v)) - v) <= width / 2 + 1e-6) }
        // Open edge bins: values beyond the range, infinities and NaN land in the first or last bin.
        #expect(c.bin(-5) == 0 && c.bin(5) == c.bins - 1 && c.bin(.infinity) == c.bins - 1 && c.bin(-.infinity) == 0)
        #expect((0..<c.bins).contains(c.bin(.nan)))
        // Training targets are scaled by the mean |value| of the receptive field before their origin.
        let set = try! SeriesSet.read(temporaryFile("ramp.csv", "t,v\n" + (1...20).map { "\($0),\($0)" }.joined(separator: "\n")))
        let scaled = ForecastTask.scaledTargets(data: set, limits: [20], field: 4, window: 1)
        #expect(scaled.count == 16 && abs(scaled[0] - 5 / 2.5) < 1e-6 && abs(scaled[15] - 20 / 17.5) < 1e-6, "\(scaled)")
    }

    /// A covariate that equals the value being predicted makes the forecast exact (up to the bin width):
    /// covariates and targets are aligned.
    @Test func alignedCovariateGivesExactForecasts() throws {
        var rng = RandomGenerator(seed: 1)
        var rows = ["timestamp,series,value,hint"]
        var level: Float = 50
        for t in 0..<300 {
            level = max(20, min(80, level + rng.normal() * 3))
            rows.append("\(t),s,\(level),\(level)")
        }
        let data = try SeriesSet.read(temporaryFile("aligned.csv", rows.joined(separator: "\n")))
        var settings = ForecastSettings(horizon: 5, season: 1)
        settings.steps = 1200
        settings.samples = 20
        settings.ensemble = 1
        settings.smoothingBins = 0  // one-hot targets: the exactness asked for here is the bin width
        settings.window = 32
        let model = try Forecasting.train(data, settings: settings, limits: [290], runDirectory: temporaryDirectory(),
                                          progress: ProgressDisplay(mode: .silent))
        let paths = model.forecast(series: data.series[0], index: 0, origin: 290, horizon: 5, paths: 20, generator: &rng)
        let median = paths.quantile(0.5)
        let actual = Array(data.series[0].values[290..<295])
        let error = zip(median, actual).map { abs($0 - $1) / $1 }.max()!
        #expect(error < 0.03, "median \(median) vs \(actual)")
    }

    /// With averaging, the forecaster that training returns holds the averaged weights, the ones its
    /// checkpoint keeps as `model.` (what `forecast --checkpoint` loads), not the raw weights.
    @Test func averagedForecasterIsTheCheckpointedOne() throws {
        var rows = ["timestamp,value"]
        for t in 0..<120 { rows.append("\(t),\(50 + 10 * sin(Double(t) / 2) + Double(t % 7))") }
        let data = try SeriesSet.read(temporaryFile("averaged.csv", rows.joined(separator: "\n")))
        var settings = ForecastSettings(horizon: 4, season: 1)
        settings.steps = 30
        settings.ensemble = 1
        settings.averageDecay = 0.9
        let directory = temporaryDirectory()
        let model = try Forecasting.train(data, settings: settings, runDirectory: directory, progress: ProgressDisplay(mode: .silent))
        let checkpoint = try Checkpoint.read(from: directory + "/latest.safetensors")
        var differsFromRaw = false
        for p in model.members[0].parameters {
            #expect(checkpoint.tensors["model." + p.name] == p.variable.value, "\(p.name)")
            if checkpoint.tensors["raw." + p.name] != p.variable.value { differsFromRaw = true }
        }
        #expect(differsFromRaw)
        #expect(try Forecasting.load(directory + "/latest.safetensors").parameters.map(\.variable.value) == model.members[0].parameters.map(\.variable.value))
    }

    /// On a noisy seasonal series, the 10–90% interval covers 70–90% of held-out points.
    @Test func intervalsAreCalibrated() throws {
        var rng = RandomGenerator(seed: 2)
        var rows = ["timestamp,value"]
        for t in 0..<600 {
            let v = 100 + 20 * sin(2 * Double.pi * Double(t) / 12) + Double(rng.normal()) * 5
            rows.append("\(t),\(v)")
        }
        let data = try SeriesSet.read(temporaryFile("seasonal.csv", rows.joined(separator: "\n")))
        var settings = ForecastSettings(horizon: 12, season: 12)
        settings.steps = 500
        settings.samples = 100
        settings.quantiles = [0.1, 0.5, 0.9]
        let report = try Forecasting.backtest(data, settings: settings, windows: 8, runDirectory: temporaryDirectory(),
                                              progress: ProgressDisplay(mode: .silent))
        let wavenet = report.aggregate["wavenet"]!
        let covered = wavenet.coverage[0.9]! - wavenet.coverage[0.1]!
        #expect(covered >= 0.7 && covered <= 0.9, "80% interval covers \(covered)")
        #expect(wavenet.mase < report.aggregate["seasonal_naive"]!.mase, "\(wavenet.mase) vs \(report.aggregate["seasonal_naive"]!.mase)")
    }
}
