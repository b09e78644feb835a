import ArgumentParser
import Autoregressive
import Forecasting
import Foundation
import Tensors

/// Options shared by `forecast` and `backtest`.
struct SeriesArguments: ParsableArguments {
    @Option(help: "A CSV: timestamp,series,value[,covariate…] rows, or a timestamp column and one column per series.") var data: String
    @Option(help: "Steps to forecast.") var horizon: Int
    @Option(help: "half-hourly, hourly, daily, weekly, monthly, quarterly, yearly or regular (default: inferred).") var freq: String?
    @Option(help: "Season length (default: from the frequency: 48, 24, 7, 52, 12, 4 or 1).") var season: Int?
    @Option(help: "Quantiles to report, comma-separated.") var quantiles = "0.1,0.5,0.9"
    @Option(help: "Sample paths per forecast.") var samples = 100
    @Option(help: "Training steps.") var steps = 600
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "Steps scored after each training origin (default: the horizon).") var window: Int?
    @Option(help: "Forecasters trained from different seeds whose sample paths are pooled.") var ensemble = 3
    @Flag(help: "Bin the scaled values on a mu-law grid instead of a uniform one.") var muLaw = false
    @Option(help: "Bin scaled values on [-R, R] (default: auto, the span of the scaled training values widened by half on each side).")
    var binRange: String = "auto"
    @Option(help: "Spread training targets over neighbouring bins (Gaussian standard deviation in bins; 0: none).") var smoothing: Double = 8
    @Option(help: "Forecast with an exponential moving average of the weights with this decay, e.g. 0.99 (default: the weights).")
    var averageDecay: Float?

    func load() throws -> (SeriesSet, ForecastSettings) {
        var frequency: Frequency? = nil
        if let freq {
            guard let f = Frequency(rawValue: freq) else {
                throw UserError("unknown --freq '\(freq)'; use \(Frequency.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            frequency = f
        }
        let set: SeriesSet
        do { set = try SeriesSet.read(data, frequency: frequency) } catch { throw UserError("\(error)") }
        guard horizon >= 1, samples >= 2, steps >= 1 else { throw UserError("--horizon must be at least 1, --samples at least 2, --steps at least 1") }
        let levels = quantiles.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ $0 != nil && $0! > 0 && $0! < 1 }) else {
            throw UserError("--quantiles must be numbers strictly between 0 and 1, e.g. 0.1,0.5,0.9")
        }
        var settings = ForecastSettings(horizon: horizon, season: season ?? set.frequency.season)
        guard settings.season >= 1 else { throw UserError("--season must be at least 1") }
        settings.quantiles = levels.map { $0! }.sorted()
        settings.samples = samples
        settings.steps = steps
        settings.seed = seed
        guard (window ?? 1) >= 1 else { throw UserError("--window must be at least 1") }
        settings.window = window
        guard ensemble >= 1 else { throw UserError("--ensemble must be at least 1") }
        settings.ensemble = ensemble
        settings.muLawBinning = muLaw
        guard smoothing >= 0 else { throw UserError("--smoothing must not be negative") }
        settings.smoothingBins = smoothing
        try checkAverageDecay(averageDecay, name: "--average-decay")
        settings.averageDecay = averageDecay
        if binRange != "auto" {
            guard let r = Float(binRange), r > 0 else { throw UserError("--bin-range must be 'auto' or a positive number, e.g. 10") }
            settings.binRange = r
        }
        let missing = set.series.reduce(0) { $0 + $1.missingCount }
        warn("data: \(set.series.count) series, \(set.series.map(\.count).reduce(0, +)) observations, \(missing) missing (filled forward as input, left out of the loss), frequency \(set.frequency.rawValue), season \(settings.season)")
        return (set, settings)
    }
}

struct Forecast: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train on a CSV of series and forecast with sample paths and quantiles.")

    @OptionGroup var arguments: SeriesArguments
    @Option(help: "Output CSV: timestamp,series,mean,median,q…") var out: String
    @Option(help: "Also draw history and the forecast fan as SVG.") var plot: String?
    @Option(help: "Use this trained forecaster (a run directory or checkpoint) instead of training.") var checkpoint: String?
    @Option(name: .customLong("run"), help: "Where the trained forecaster goes (default: OUT.run).") var runDirectory: String?

    func run() throws {
        let (data, settings) = try arguments.load()
        let model: ForecastEnsemble
        if let checkpoint {
            do { model = try Forecasting.loadEnsemble(checkpoint, checkpointFile: checkpointFile) } catch let error as UserError { throw error } catch { throw UserError("\(error)") }
            guard model.configuration.seriesNames == data.series.map(\.name) else {
                throw UserError("the checkpoint was trained on series \(model.configuration.seriesNames), the data has \(data.series.map(\.name)); train anew")
            }
        } else {
            do {
                model = try Forecasting.train(data, settings: settings, runDirectory: runDirectory ?? out + ".run")
            } catch let error as SeriesError { throw UserError(error.description) } catch let error as TrainingError { throw UserError(error.description) }
        }
        var generator = RandomGenerator(seed: settings.seed)
        var lines = ["timestamp,series,mean,median," + settings.quantiles.map { "q\(String(format: "%g", $0))" }.joined(separator: ",")]
        var fans: [(TimeSeries, ForecastPaths, [String])] = []
        for (s, series) in data.series.enumerated() {
            let paths = model.forecast(series: series, index: s, origin: series.count, horizon: settings.horizon, paths: settings.samples, generator: &generator)
            let stamps = data.futureTimestamps(series, steps: settings.horizon)
            let (mean, median) = (paths.mean, paths.quantile(0.5))
            let qs = settings.quantiles.map { paths.quantile($0) }
            for h in 0..<settings.horizon {
                lines.append(([stamps[h], series.name, format(mean[h]), format(median[h])] + qs.map { format($0[h]) }).joined(separator: ","))
            }
            fans.append((series, paths, stamps))
        }
        do { try (lines.joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8) } catch {
            throw UserError("cannot write \(out): \(error.localizedDescription)")
        }
        print("wrote \(out): \(data.series.count) series × \(settings.horizon) steps, \(settings.samples) sample paths each")
        if let plot {
            do { try SVGPlot.write(fans, quantiles: settings.quantiles, to: plot) } catch { throw UserError("cannot write \(plot): \(error.localizedDescription)") }
            print("wrote \(plot)")
        }
    }

    func format(_ v: Float) -> String { String(format: "%.6g", v) }
}

struct Backtest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rolling-origin evaluation against seasonal naive and AR baselines.",
        discussion: "Metrics: MASE (seasonal), sMAPE, MSIS (95% interval), mean weighted quantile loss and quantile coverage, per series and averaged over windows.")

    @OptionGroup var arguments: SeriesArguments
    @Option(help: "Number of windows at the end of each series.") var windows: Int
    @Option(help: "Steps between window origins (default: the horizon, so windows do not overlap).") var stride: Int?
    @Option(name: .customLong("run"), help: "Where the forecaster trained on the history before the first window goes.") var runDirectory: String?
    @Flag(help: "Print JSON with aggregate and series maps.") var json = false

    func run() throws {
        let (data, settings) = try arguments.load()
        guard windows >= 1, (stride ?? 1) >= 1 else { throw UserError("--windows and --stride must be at least 1") }
        let directory = runDirectory ?? NSTemporaryDirectory() + "seriatim-backtest-\(UUID().uuidString)"
        let report: BacktestReport
        do {
            report = try Forecasting.backtest(data, settings: settings, windows: windows, stride: stride, runDirectory: directory,
                                              progress: ProgressDisplay(mode: json ? .silent : .automatic))
        } catch let error as SeriesError { throw UserError(error.description) } catch let error as TrainingError { throw UserError(error.description) }
        if json { printJSONValue(report.json); return }
        print("backtest: \(windows) windows of \(settings.horizon) steps, season \(settings.season), metrics averaged over windows")
        print("model            MASE    sMAPE   MSIS    wQL     " + settings.quantiles.map { String(format: "cov%-5g", $0) }.joined(separator: " "))
        for name in BacktestReport.models {
            guard let m = report.aggregate[name] else { continue }
            print(name.padding(toLength: 15, withPad: " ", startingAt: 0)
                  + String(format: "%7.3f %7.2f %7.3f %7.4f ", m.mase, m.smape, m.msis, m.wql)
                  + settings.quantiles.map { String(format: "%8.3f", m.coverage[$0] ?? 0) }.joined(separator: " "))
        }
    }
}

/// History and forecast fan per series, stacked vertically, as SVG.
enum SVGPlot {
    static func write(_ items: [(TimeSeries, ForecastPaths, [String])], quantiles: [Double], to path: String) throws {
        let (width, panel) = (900.0, 260.0)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(panel * Double(items.count)))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        for (i, (series, paths, _)) in items.enumerated() {
            let top = Double(i) * panel
            let history = Array(series.filled.suffix(max(3 * paths.paths[0].count, 48)))
            let horizon = paths.paths[0].count
            let outer = (paths.quantile(0.05), paths.quantile(0.95))
            let inner = (paths.quantile(quantiles.first ?? 0.1), paths.quantile(quantiles.last ?? 0.9))
            let median = paths.quantile(0.5)
            let all = history + outer.0 + outer.1
            let (low, high) = (Double(all.min() ?? 0), Double(all.max() ?? 1))
            let total = history.count + horizon
            func x(_ t: Int) -> Double { 50 + Double(t) / Double(max(total - 1, 1)) * (width - 70) }
            func y(_ v: Float) -> Double { top + 20 + (1 - (Double(v) - low) / max(high - low, 1e-9)) * (panel - 50) }
            func polyline(_ values: [Float], from start: Int) -> String {
                values.enumerated().map { String(format: "%.1f,%.1f", x(start + $0.offset), y($0.element)) }.joined(separator: " ")
            }
            func band(_ lower: [Float], _ upper: [Float], _ colour: String) -> String {
                let start = history.count
                let points = polyline(upper, from: start) + " " + lower.enumerated().reversed().map { String(format: "%.1f,%.1f", x(start + $0.offset), y($0.element)) }.joined(separator: " ")
                return "<polygon points=\"\(points)\" fill=\"\(colour)\" stroke=\"none\"/>\n"
            }
            svg += "<text x=\"50\" y=\"\(Int(top + 14))\">\(series.name): history and forecast (median, \(Int((quantiles.last ?? 0.9) * 100 - (quantiles.first ?? 0.1) * 100))% and 90% bands)</text>\n"
            svg += band(outer.0, outer.1, "#c6dbef") + band(inner.0, inner.1, "#6baed6")
            svg += "<polyline points=\"\(polyline(history, from: 0))\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.5\"/>\n"
            svg += "<polyline points=\"\(polyline(median, from: history.count))\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"2\"/>\n"
            svg += String(format: "<text x=\"4\" y=\"%.0f\">%.4g</text><text x=\"4\" y=\"%.0f\">%.4g</text>\n", top + 26, high, top + panel - 30, low)
        }
        svg += "</svg>\n"
        try svg.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
