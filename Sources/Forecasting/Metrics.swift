import Foundation
import Tensors

/// Forecast accuracy measures (the M4 competition's definitions; wQL as in GluonTS).
public enum ForecastMetrics {
    /// Mean absolute error of the seasonal naive forecast inside `history`: mean |yₜ − yₜ₋ₘ| (missing values skipped).
    public static func seasonalNaiveScale(_ history: [Float], season m: Int) -> Double {
        var total = 0.0, count = 0
        if history.count > m {
            for t in m..<history.count where !history[t].isNaN && !history[t - m].isNaN {
                total += Double(abs(history[t] - history[t - m])); count += 1
            }
        }
        return count > 0 && total > 0 ? total / Double(count) : 1
    }

    /// MASE: mean |y − ŷ| divided by the in-sample seasonal naive error of the history.
    public static func mase(actual: [Float], forecast: [Float], scale: Double) -> Double {
        let pairs = zip(actual, forecast).filter { !$0.0.isNaN }
        return pairs.reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) } / Double(max(pairs.count, 1)) / scale
    }

    /// sMAPE in percent: 200/h · Σ |y − ŷ| / (|y| + |ŷ|) (terms with both zero count as 0).
    public static func smape(actual: [Float], forecast: [Float]) -> Double {
        let pairs = zip(actual, forecast).filter { !$0.0.isNaN }
        let total = pairs.reduce(0.0) { sum, p in
            let d = Double(abs(p.0) + abs(p.1))
            return sum + (d > 0 ? Double(abs(p.0 - p.1)) / d : 0)
        }
        return 200 * total / Double(max(pairs.count, 1))
    }

    /// MSIS for the central (1 − α) interval [lower, upper]: mean of (U − L) + 2/α·(L − y)·[y < L]
    /// + 2/α·(y − U)·[y > U], divided by the seasonal naive scale.
    public static func msis(actual: [Float], lower: [Float], upper: [Float], alpha: Double, scale: Double) -> Double {
        var total = 0.0, count = 0
        for i in actual.indices where !actual[i].isNaN {
            let (y, l, u) = (Double(actual[i]), Double(lower[i]), Double(upper[i]))
            total += (u - l) + (y < l ? 2 / alpha * (l - y) : 0) + (y > u ? 2 / alpha * (y - u) : 0)
            count += 1
        }
        return total / Double(max(count, 1)) / scale
    }

    /// Weighted quantile loss averaged over the levels: for each τ, 2 Σₜ ρ_τ(yₜ − qₜ) / Σₜ |yₜ|, with
    /// the pinball loss ρ_τ(u) = u·(τ − [u < 0]).
    public static func weightedQuantileLoss(actual: [Float], quantiles: [Double: [Float]]) -> Double {
        let denominator = actual.filter { !$0.isNaN }.reduce(0.0) { $0 + Double(abs($1)) }
        guard denominator > 0, !quantiles.isEmpty else { return 0 }
        let losses = quantiles.map { tau, q -> Double in
            var total = 0.0
            for i in actual.indices where !actual[i].isNaN {
                let u = Double(actual[i] - q[i])
                total += u * (tau - (u < 0 ? 1 : 0))
            }
            return 2 * total / denominator
        }
        return losses.reduce(0, +) / Double(losses.count)
    }

    /// The fraction of observed values at or below each quantile forecast.
    public static func coverage(actual: [Float], quantile q: [Float]) -> Double {
        let pairs = zip(actual, q).filter { !$0.0.isNaN }
        return Double(pairs.filter { $0.0 <= $0.1 }.count) / Double(max(pairs.count, 1))
    }
}

/// Probabilistic baselines: seasonal naive and a least-squares AR(p).
public enum Baselines {
    /// Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
    public static func normalQuantile(_ p: Double) -> Double {
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        if p < low {
            let q = sqrt(-2 * log(p))
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        if p > 1 - low { return -normalQuantile(1 - p) }
        let q = p - 0.5, r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    }

    /// Seasonal naive: ŷ_{T+h} = y_{T+h−m⌈h/m⌉}, with Gaussian quantiles whose spread is the in-sample
    /// residual deviation times √⌈h/m⌉. Returns quantile forecasts for the given levels plus the point forecast.
    public static func seasonalNaive(history: [Float], season m: Int, horizon: Int, levels: [Double]) -> (point: [Float], quantiles: [Double: [Float]]) {
        let filled = fillForward(history)
        let n = filled.count
        let point: [Float] = (1...horizon).map { h in
            let k = (h + m - 1) / m
            return filled[max(0, n - 1 + h - m * k)]
        }
        var residuals: [Double] = []
        if n > m { for t in m..<n { residuals.append(Double(filled[t] - filled[t - m])) } }
        let sigma = standardDeviation(residuals)
        var quantiles: [Double: [Float]] = [:]
        for tau in levels {
            let z = normalQuantile(tau)
            quantiles[tau] = point.enumerated().map { h, v in v + Float(z * sigma * Double(((h + 1) + m - 1) / m).squareRoot()) }
        }
        return (point, quantiles)
    }

    /// AR(p) with intercept by least squares on the history; quantiles from 400 simulated paths with
    /// Gaussian innovations of the residual deviation.
    public static func autoregressive(history: [Float], order requested: Int, horizon: Int, levels: [Double],
                                      seed: UInt64 = 0) -> (point: [Float], quantiles: [Double: [Float]]) {
        let y = fillForward(history).map(Double.init)
        let p = max(1, min(requested, y.count / 3))
        let rows = y.count - p
        guard rows > p + 1 else { return seasonalNaive(history: history, season: 1, horizon: horizon, levels: levels) }
        // Normal equations (XᵀX) β = Xᵀy with X = [1, y_{t−1}, …, y_{t−p}], solved by Gaussian elimination.
        let k = p + 1
        var a = [Double](repeating: 0, count: k * k), rhs = [Double](repeating: 0, count: k)
        for t in p..<y.count {
            var x = [1.0]
            for lag in 1...p { x.append(y[t - lag]) }
            for i in 0..<k { rhs[i] += x[i] * y[t]; for j in 0..<k { a[i * k + j] += x[i] * x[j] } }
        }
        for i in 0..<k { a[i * k + i] += 1e-6 * (a[i * k + i] + 1) }  // ridge for collinear lags
        let beta = solve(a, rhs, k)
        var residuals: [Double] = []
        for t in p..<y.count {
            var f = beta[0]
            for lag in 1...p { f += beta[lag] * y[t - lag] }
            residuals.append(y[t] - f)
        }
        let sigma = standardDeviation(residuals)
        func run(_ noise: ((inout [Double]) -> Double)?) -> [Float] {
            var window = Array(y.suffix(p))
            var out: [Float] = []
            for _ in 0..<horizon {
                var f = beta[0]
                for lag in 1...p { f += beta[lag] * window[window.count - lag] }
                if let noise { f += noise(&window) }
                window.append(f)
                out.append(Float(f))
            }
            return out
        }
        let point = run(nil)
        var generator = RandomGenerator(seed: seed)
        let paths = (0..<400).map { _ in run { _ in sigma * Double(generator.normal()) } }
        var quantiles: [Double: [Float]] = [:]
        for tau in levels { quantiles[tau] = ForecastPaths(paths: paths).quantile(tau) }
        return (point, quantiles)
    }

    static func fillForward(_ x: [Float]) -> [Float] {
        var last = x.first(where: { !$0.isNaN }) ?? 0
        return x.map { v in if !v.isNaN { last = v }; return last }
    }

    static func standardDeviation(_ x: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        let m = x.reduce(0, +) / Double(x.count)
        return (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)).squareRoot()
    }

    static func solve(_ a0: [Double], _ b0: [Double], _ n: Int) -> [Double] {
        var a = a0, b = b0
        for col in 0..<n {
            let pivot = (col..<n).max { abs(a[$0 * n + col]) < abs(a[$1 * n + col]) }!
            if pivot != col { for j in 0..<n { a.swapAt(col * n + j, pivot * n + j) }; b.swapAt(col, pivot) }
            let d = a[col * n + col]
            guard abs(d) > 1e-12 else { continue }
            for row in (col + 1)..<n {
                let f = a[row * n + col] / d
                for j in col..<n { a[row * n + j] -= f * a[col * n + j] }
                b[row] -= f * b[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for row in stride(from: n - 1, through: 0, by: -1) {
            var s = b[row]
            for j in (row + 1)..<n { s -= a[row * n + j] * x[j] }
            x[row] = abs(a[row * n + row]) > 1e-12 ? s / a[row * n + row] : 0
        }
        return x
    }
}

