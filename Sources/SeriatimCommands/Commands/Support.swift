import Foundation
import NeuralNetworks
import Synchronization

/// Ctrl-C during training: the first press asks the trainer to stop after the current step and
/// save; the handler is installed only by commands that can stop cleanly.
enum Interruption {
    static let requested = Atomic<Bool>(false)

    static func install() {
        signal(SIGINT) { _ in
            if Interruption.requested.load(ordering: .relaxed) { _exit(130) }
            Interruption.requested.store(true, ordering: .relaxed)
        }
    }

    static var isRequested: Bool { requested.load(ordering: .relaxed) }
}

/// Writes to standard error.
func warn(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Reads a JSON object from a file, naming the file in any error.
func readJSONObject(_ path: String) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: path) else { throw UserError("cannot read \(path); check the path") }
    guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw UserError("\(path) is not a JSON object; see README.md for the configuration format")
    }
    return object
}

/// Decodes `T` from `overrides` laid over the JSON encoding of `defaults`, so that a configuration
/// file may name only what it changes. Unknown keys are an error (they are usually typos).
func merged<T: Codable>(_ defaults: T, with overrides: [String: Any], context: String) throws -> T {
    let base = try JSONSerialization.jsonObject(with: JSONEncoder().encode(defaults)) as! [String: Any]
    for key in overrides.keys where base[key] == nil && !optionalKeys(T.self).contains(key) {
        throw UserError("\(context): unknown setting '\(key)'; known settings: \(base.keys.sorted().joined(separator: ", "))")
    }
    let combined = base.merging(overrides) { _, new in new }
    do {
        return try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: combined))
    } catch {
        throw UserError("\(context): a setting has the wrong type (\(error)); compare with the defaults in README.md")
    }
}

/// A training section's `averageDecay` (or the option `name`) must lie in [0, 1).
func checkAverageDecay(_ decay: Float?, name: String = "averageDecay") throws {
    if let decay, !(decay >= 0 && decay < 1) {
        throw UserError("\(name) must be at least 0 and below 1 (e.g. 0.999), not \(decay)")
    }
}

/// The optimizer a training section names (nil: Adam); weight decay is Adam's only.
func makeOptimizer(_ name: String?, learningRate: Float, weightDecay: Float) throws -> any Optimizer {
    let choices = OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")
    guard let kind = OptimizerKind(rawValue: name ?? OptimizerKind.adam.rawValue) else {
        throw UserError("unknown optimizer '\(name ?? "")'; use one of \(choices)")
    }
    if weightDecay != 0 && kind != .adam { throw UserError("weightDecay works with the adam optimizer only; drop it or use \"optimizer\": \"adam\"") }
    return kind.make(learningRate: learningRate, weightDecay: weightDecay)
}

/// The learning-rate schedule a training section names: "cosine" (nil) decays to a twentieth of the rate
/// by the last step, "constant" keeps it.
func learningRateSchedule(_ name: String?, base: Float, steps: Int) throws -> LearningRateSchedule {
    switch name ?? "cosine" {
    case "cosine": LearningRateSchedule(base: base, decay: .cosine(totalSteps: steps, minimum: base / 20))
    case "constant": LearningRateSchedule(base: base)
    case let other: throw UserError("unknown schedule '\(other)'; use cosine or constant")
    }
}

/// Keys of optional settings that a default encoding leaves out.
private func optionalKeys(_ type: Any.Type) -> Set<String> {
    ["localFeatures", "featureFiles", "speakerPattern", "manifest", "patience", "clipNorm", "validationLimit", "stateFilters", "averageDecay", "optimizer", "schedule", "validateEnsemble"]
}

/// A progress line for loops outside the trainer (generation).
struct ProgressLine {
    let total: Int
    let label: String
    let started = DispatchTime.now().uptimeNanoseconds
    let terminal = isatty(STDERR_FILENO) == 1
    var lastPrinted = 0.0

    init(total: Int, label: String) { self.total = total; self.label = label }

    mutating func update(_ done: Int) {
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        guard done == total || elapsed - lastPrinted > (terminal ? 0.2 : 5) else { return }
        lastPrinted = elapsed
        let rate = Double(done) / max(elapsed, 1e-9)
        let eta = Double(total - done) / max(rate, 1e-9)
        let text = String(format: "%@ %d/%d (%.0f/s, ETA %.0fs)", label, done, total, rate, eta)
        if terminal {
            let width = 24, filled = total > 0 ? done * width / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\(bar) \(text)\u{1B}[K".utf8))
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            warn(text)
        }
    }
}

/// Prints a JSON value with sorted keys on standard output.
func printJSONValue(_ object: Any) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
}

/// The checkpoint file for `--checkpoint`: a file as given, or a run directory's best (else latest) checkpoint.
func checkpointFile(_ path: String) throws -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw UserError("no checkpoint or run directory at \(path); pass the --out directory of a training run")
    }
    guard isDirectory.boolValue else { return path }
    for name in ["best.safetensors", "latest.safetensors"] {
        let file = (path as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: file) { return file }
    }
    throw UserError("run directory \(path) has no checkpoint yet; train first (seriatim train …)")
}
