import Foundation

/// Why a series file could not be used; messages name the file, line and column and say what to do.
public enum SeriesError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String)
    case noNumericColumn(path: String)
    case badTimestamp(path: String, line: Int, column: Int, text: String)
    case badValue(path: String, line: Int, column: Int, text: String)
    case duplicateTimestamp(path: String, line: Int, series: String, text: String)
    case tooShort(path: String, series: String, length: Int, needed: Int)
    case badColumns(path: String, line: Int, expected: Int, found: Int)

    public var description: String {
        switch self {
        case let .unreadable(path): "cannot read \(path); check the path"
        case let .noNumericColumn(path): "\(path): no numeric value column; give timestamp,series,value rows or a timestamp column and one numeric column per series"
        case let .badTimestamp(path, line, column, text): "\(path) line \(line) column \(column): cannot read the timestamp '\(text)'; use YYYY-MM-DD[ HH:MM[:SS]], YYYY-MM, or a number"
        case let .badValue(path, line, column, text): "\(path) line \(line) column \(column): '\(text)' is not a number; leave it empty or write NA for a missing value"
        case let .duplicateTimestamp(path, line, series, text): "\(path) line \(line): series '\(series)' has timestamp \(text) twice; remove one of the rows"
        case let .tooShort(path, series, length, needed): "\(path): series '\(series)' has \(length) observations but needs at least \(needed) (context + horizon); shorten --horizon or give more history"
        case let .badColumns(path, line, expected, found): "\(path) line \(line): \(found) columns, the header has \(expected); check the separators"
        }
    }
}

/// Sampling frequency of a series, inferred from the timestamps or given.
public enum Frequency: String, Codable, Sendable, CaseIterable {
    case halfHourly = "half-hourly", hourly, daily, weekly, monthly, quarterly, yearly, regular

    /// The season length used by MASE and seasonal naive: half-hourly 48, hourly 24, daily 7,
    /// weekly 52, monthly 12, quarterly 4, otherwise 1.
    public var season: Int {
        switch self {
        case .halfHourly: 48
        case .hourly: 24
        case .daily: 7
        case .weekly: 52
        case .monthly: 12
        case .quarterly: 4
        case .yearly, .regular: 1
        }
    }

    /// Guesses from the median gap between timestamps in seconds (or index units for numeric timestamps).
    static func infer(medianGap gap: Double, numeric: Bool) -> Frequency {
        if numeric {
            // Decimal years (R's ts export): 1/12 monthly, 1/4 quarterly, 1 yearly.
            if abs(gap - 1.0 / 12) < 0.01 { return .monthly }
            if abs(gap - 0.25) < 0.02 { return .quarterly }
            if abs(gap - 1.0 / 52.18) < 0.002 { return .weekly }
            return .regular
        }
        let day = 86_400.0
        switch gap {
        case ..<(0.75 * 3600): return .halfHourly
        case ..<(6 * 3600): return .hourly
        case ..<(3 * day): return .daily
        case ..<(20 * day): return .weekly
        case ..<(60 * day): return .monthly
        case ..<(150 * day): return .quarterly
        default: return .yearly
        }
    }

    /// Seconds per step (calendar frequencies; months and quarters approximate, for extending timestamps).
    var seconds: Double? {
        switch self {
        case .halfHourly: 1800
        case .hourly: 3600
        case .daily: 86_400
        case .weekly: 7 * 86_400
        default: nil
        }
    }
}

/// One series: values (NaN = missing) at regular steps, with optional user covariates.
public struct TimeSeries: Sendable {
    public var name: String
    public var timestamps: [String]
    /// Seconds since 1970 (calendar timestamps) or the numbers themselves.
    public var times: [Double]
    public var values: [Float]
    /// Extra columns, `[covariate][t]`.
    public var covariates: [[Float]]

    public var count: Int { values.count }
    public var missingCount: Int { values.filter(\.isNaN).count }

    /// Values with missing ones filled forward (the first from the first observed value) — the model's input.
    public var filled: [Float] {
        var result = values
        let first = values.first(where: { !$0.isNaN }) ?? 0
        var last = first
        for i in result.indices { if result[i].isNaN { result[i] = last } else { last = result[i] } }
        return result
    }
}

/// A parsed CSV of one or many series.
public struct SeriesSet: Sendable {
    public var series: [TimeSeries]
    public var frequency: Frequency
    public var numericTimestamps: Bool
    public var covariateNames: [String]
    public var path: String

    /// Reads long form (`timestamp,series,value[,covariate…]`, detected by a `series` and a `value`
    /// header) or wide form (a timestamp column, then one numeric column per series).
    public static func read(_ path: String, frequency given: Frequency? = nil) throws -> SeriesSet {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw SeriesError.unreadable(path: path) }
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "\r")) }
        while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
        guard lines.count >= 2 else { throw SeriesError.noNumericColumn(path: path) }
        let header = splitCSV(lines[0])
        let lower = header.map { $0.lowercased() }
        var rows: [(line: Int, fields: [String])] = []
        for (i, line) in lines.enumerated().dropFirst() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let fields = splitCSV(line)
            guard fields.count == header.count else { throw SeriesError.badColumns(path: path, line: i + 1, expected: header.count, found: fields.count) }
            rows.append((i + 1, fields))
        }
        var builders: [String: (stamps: [String], times: [Double], values: [Float], covariates: [[Float]], lines: [Int])] = [:]
        var order: [String] = []
        var covariateNames: [String] = []
        var numeric = true
        // First pass: decide whether timestamps are numbers.
        for row in rows where Double(row.fields[0]) == nil { numeric = false; break }

        func time(_ text: String, _ line: Int) throws -> Double {
            if numeric, let v = Double(text) { return v }
            guard let t = parseTimestamp(text) else { throw SeriesError.badTimestamp(path: path, line: line, column: 1, text: text) }
            return t
        }
        func value(_ text: String, _ line: Int, _ column: Int) throws -> Float {
            let t = text.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || ["na", "nan", "null", "."].contains(t.lowercased()) { return .nan }
            guard let v = Float(t), v.isFinite else { throw SeriesError.badValue(path: path, line: line, column: column, text: text) }
            return v
        }

        if let seriesColumn = lower.firstIndex(of: "series"), let valueColumn = lower.firstIndex(of: "value") {
            covariateNames = header.indices.filter { $0 != 0 && $0 != seriesColumn && $0 != valueColumn }.map { header[$0] }
            let covariateColumns = header.indices.filter { $0 != 0 && $0 != seriesColumn && $0 != valueColumn }
            for row in rows {
                let name = row.fields[seriesColumn]
                if builders[name] == nil { builders[name] = ([], [], [], covariateColumns.map { _ in [] }, []); order.append(name) }
                builders[name]!.stamps.append(row.fields[0])
                builders[name]!.times.append(try time(row.fields[0], row.line))
                builders[name]!.values.append(try value(row.fields[valueColumn], row.line, valueColumn + 1))
                for (k, c) in covariateColumns.enumerated() { builders[name]!.covariates[k].append(try value(row.fields[c], row.line, c + 1)) }
                builders[name]!.lines.append(row.line)
            }
        } else {
            guard header.count >= 2 else { throw SeriesError.noNumericColumn(path: path) }
            // Wide form: every column after the timestamp is a series; a column with no number at all is not.
            let columns = (1..<header.count).filter { c in rows.contains { Float($0.fields[c].trimmingCharacters(in: .whitespaces)) != nil } }
            guard !columns.isEmpty else { throw SeriesError.noNumericColumn(path: path) }
            let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            for c in columns {
                // A lone generic "value" column is named after the file.
                let generic = columns.count == 1 && ["value", "values", ""].contains(header[c].lowercased())
                let name = generic ? stem : header[c]
                order.append(name)
                var b: (stamps: [String], times: [Double], values: [Float], covariates: [[Float]], lines: [Int]) = ([], [], [], [], [])
                for row in rows {
                    b.stamps.append(row.fields[0])
                    b.times.append(try time(row.fields[0], row.line))
                    b.values.append(try value(row.fields[c], row.line, c + 1))
                    b.lines.append(row.line)
                }
                builders[name] = b
            }
        }
        var series: [TimeSeries] = []
        var gaps: [Double] = []
        for name in order {
            let b = builders[name]!
            // Sort by time, reject duplicates.
            let sorted = b.times.indices.sorted { b.times[$0] < b.times[$1] }
            for k in 1..<max(sorted.count, 1) where b.times[sorted[k]] == b.times[sorted[k - 1]] {
                throw SeriesError.duplicateTimestamp(path: path, line: b.lines[sorted[k]], series: name, text: b.stamps[sorted[k]])
            }
            for k in 1..<max(sorted.count, 1) { gaps.append(b.times[sorted[k]] - b.times[sorted[k - 1]]) }
            series.append(TimeSeries(name: name, timestamps: sorted.map { b.stamps[$0] }, times: sorted.map { b.times[$0] },
                                     values: sorted.map { b.values[$0] }, covariates: b.covariates.map { c in sorted.map { c[$0] } }))
        }
        guard series.contains(where: { $0.values.contains { !$0.isNaN } }) else { throw SeriesError.noNumericColumn(path: path) }
        gaps.sort()
        let frequency = given ?? Frequency.infer(medianGap: gaps.isEmpty ? 1 : gaps[gaps.count / 2], numeric: numeric)
        return SeriesSet(series: series, frequency: frequency, numericTimestamps: numeric, covariateNames: covariateNames, path: path)
    }

    static func splitCSV(_ line: String) -> [String] {
        var fields: [String] = [], current = "", quoted = false
        for ch in line {
            if ch == "\"" { quoted.toggle() } else if ch == "," && !quoted { fields.append(current.trimmingCharacters(in: .whitespaces)); current = "" } else { current.append(ch) }
        }
        fields.append(current.trimmingCharacters(in: .whitespaces))
        return fields
    }

    /// Seconds since 1970 for ISO-like timestamps: YYYY-MM-DD, YYYY-MM, YYYY/MM/DD, with optional
    /// `HH:MM[:SS]` after a space or `T`.
    static func parseTimestamp(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "/", with: "-")
        let parts = t.split(whereSeparator: { $0 == " " || $0 == "T" })
        guard let date = parts.first else { return nil }
        let ymd = date.split(separator: "-").map { Int($0) }
        guard ymd.count >= 2, ymd.count <= 3, ymd.allSatisfy({ $0 != nil }), let year = ymd[0], let month = ymd[1], (1...12).contains(month) else { return nil }
        let day = ymd.count == 3 ? ymd[2]! : 1
        guard (1...31).contains(day) else { return nil }
        var seconds = 0.0
        if parts.count > 1 {
            let hms = parts[1].split(separator: ":").map { Double($0) }
            guard (2...3).contains(hms.count), hms.allSatisfy({ $0 != nil }) else { return nil }
            seconds = hms[0]! * 3600 + hms[1]! * 60 + (hms.count == 3 ? hms[2]! : 0)
        }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days) * 86_400 + seconds
    }

    /// The timestamps of the `steps` points after a series ends, in the file's style.
    public func futureTimestamps(_ series: TimeSeries, steps: Int) -> [String] {
        guard let last = series.timestamps.last, let lastTime = series.times.last else { return [] }
        if numericTimestamps {
            let gap = series.times.count > 1 ? (lastTime - series.times[series.times.count - 2]) : 1
            let decimals = last.split(separator: ".").count > 1 ? min(6, last.split(separator: ".")[1].count) : 0
            return (1...max(steps, 1)).prefix(steps).map { String(format: "%.\(max(decimals, gap < 1 ? 4 : 0))f", lastTime + Double($0) * gap) }
        }
        let formatter = DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = last.contains(":") ? "yyyy-MM-dd HH:mm:ss" : (last.split(separator: "-").count == 2 ? "yyyy-MM" : "yyyy-MM-dd")
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let start = Date(timeIntervalSince1970: lastTime)
        return (0..<steps).map { k in
            let date: Date
            switch frequency {
            case .monthly: date = calendar.date(byAdding: .month, value: k + 1, to: start)!
            case .quarterly: date = calendar.date(byAdding: .month, value: 3 * (k + 1), to: start)!
            case .yearly: date = calendar.date(byAdding: .year, value: k + 1, to: start)!
            default:
                let gap = frequency.seconds ?? (series.times.count > 1 ? lastTime - series.times[series.times.count - 2] : 86_400)
                date = start.addingTimeInterval(Double(k + 1) * gap)
            }
            return formatter.string(from: date)
        }
    }
}
