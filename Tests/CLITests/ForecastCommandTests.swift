import Foundation
import Testing

@Suite struct ForecastCommandTests {
    func seasonalCSV(_ directory: String, long: Bool = false) throws -> String {
        var rows = [long ? "timestamp,series,value,promo" : "timestamp,north,south"]
        for t in 0..<96 {
            let month = String(format: "%d-%02d", 2010 + t / 12, t % 12 + 1)
            let a = 100 + 20 * sin(Double(t) * Double.pi / 6) + Double(t)
            let b = 50 + 10 * cos(Double(t) * Double.pi / 6)
            if long {
                rows.append("\(month),north,\(a),\(t % 12 == 11 ? 1 : 0)")
                rows.append("\(month),south,\(t == 40 ? "NA" : String(b)),0")
            } else {
                rows.append("\(month),\(a),\(b)")
            }
        }
        let path = directory + (long ? "/long.csv" : "/wide.csv")
        try rows.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func forecastWritesQuantilesAndAPlot() throws {
        let directory = temporaryDirectory("forecast")
        let data = try seasonalCSV(directory, long: true)
        let result = try Tool.run(["forecast", "--data", data, "--horizon", "6", "--out", directory + "/f.csv", "--plot", directory + "/f.svg",
                                   "--steps", "40", "--samples", "20", "--quantiles", "0.1,0.5,0.9"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("1 missing") && result.error.contains("monthly"))
        let lines = try String(contentsOfFile: directory + "/f.csv", encoding: .utf8).split(separator: "\n")
        #expect(lines[0] == "timestamp,series,mean,median,q0.1,q0.5,q0.9")
        #expect(lines.count == 1 + 2 * 6)
        #expect(lines[1].hasPrefix("2018-01,north,"))
        for line in lines.dropFirst() {
            let q = line.split(separator: ",").suffix(3).map { Double($0)! }
            #expect(q[0] <= q[1] && q[1] <= q[2])
        }
        #expect(try String(contentsOfFile: directory + "/f.svg", encoding: .utf8).contains("<polygon"))
        // Reusing the trained forecaster.
        let again = try Tool.run(["forecast", "--data", data, "--horizon", "6", "--out", directory + "/g.csv", "--checkpoint", directory + "/f.csv.run",
                                  "--samples", "10"])
        #expect(again.status == 0, "\(again.error)")
        #expect(try String(contentsOfFile: directory + "/g.csv", encoding: .utf8).split(separator: "\n").count == 1 + 2 * 6)
        // The default ensemble of three forecasters, one run directory each; one member alone also loads.
        #expect((1...3).allSatisfy { FileManager.default.fileExists(atPath: directory + "/f.csv.run/member-\($0)/latest.safetensors") })
        let one = try Tool.run(["forecast", "--data", data, "--horizon", "6", "--out", directory + "/h.csv",
                                "--checkpoint", directory + "/f.csv.run/member-2/latest.safetensors", "--samples", "10"])
        #expect(one.status == 0, "\(one.error)")
    }

    @Test func backtestJSON() throws {
        let directory = temporaryDirectory("backtest")
        let data = try seasonalCSV(directory)
        let result = try Tool.run(["backtest", "--data", data, "--horizon", "6", "--windows", "2", "--steps", "40", "--samples", "20", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let report = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as! [String: Any]
        let aggregate = report["aggregate"] as! [String: [String: Any]]
        #expect(Set(aggregate.keys) == ["wavenet", "seasonal_naive", "ar"])
        for metrics in aggregate.values {
            for key in ["mase", "smape", "msis", "wql", "coverage"] { #expect(metrics[key] != nil, "\(key)") }
        }
        #expect((report["series"] as! [String: Any]).keys.sorted() == ["north", "south"])
        #expect(report["season"] as? Int == 12)
    }

    @Test func badSeriesInputIsOneLine() throws {
        let directory = temporaryDirectory("series-errors")
        try "timestamp,value\n2020-01-01,1\n2020-01-02,2\n".write(toFile: directory + "/short.csv", atomically: true, encoding: .utf8)
        try "timestamp,value\n2020-01-01,1\nyesterday,2\n".write(toFile: directory + "/stamp.csv", atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["forecast", "--data", directory + "/short.csv", "--horizon", "5", "--out", directory + "/o.csv"], "needs at least"),
            (["forecast", "--data", directory + "/stamp.csv", "--horizon", "1", "--out", directory + "/o.csv"], "line 3 column 1"),
            (["backtest", "--data", directory + "/missing.csv", "--horizon", "1", "--windows", "1"], "cannot read"),
            (["forecast", "--data", directory + "/short.csv", "--horizon", "1", "--out", directory + "/o.csv", "--quantiles", "2"], "between 0 and 1"),
            (["forecast", "--data", directory + "/short.csv", "--horizon", "1", "--out", directory + "/o.csv", "--average-decay", "1"], "--average-decay must be"),
        ]
        for (arguments, text) in cases {
            let result = try Tool.run(arguments)
            let lines = result.error.split(separator: "\n").filter { !$0.hasPrefix("data:") }
            #expect(result.status == 1 && lines.count == 1 && lines[0].hasPrefix("error: ") && result.error.contains(text), "\(arguments): \(result.error)")
        }
    }
}
