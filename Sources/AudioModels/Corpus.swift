import AudioFiles
import Foundation
import NeuralNetworks
import Tensors
import Autoregressive

/// Why a corpus could not be assembled; each message says what to change.
public enum CorpusError: Error, CustomStringConvertible, Equatable {
    case missing(path: String)
    case noAudio(path: String, found: String)
    case unreadableFile(path: String, reason: String)
    case tooMuchTrimmed(kept: Double, total: Double, decibels: Double, minimumFraction: Double)
    case badSpeakerPattern(pattern: String, reason: String)
    case badManifest(path: String, line: Int, reason: String)
    case unknownSpeaker(path: String)

    public var description: String {
        switch self {
        case let .missing(path): "no file or directory at \(path); check the --data path"
        case let .noAudio(path, found):
            "no usable audio under \(path) (found \(found)); point --data at WAV, FLAC, OGG or AIFF files"
        case let .unreadableFile(path, reason): "\(path): \(reason); remove the file or drop --strict to skip it"
        case let .tooMuchTrimmed(kept, total, decibels, minimumFraction):
            String(format: "silence trimming at %.0f dB below each file's peak kept %.1f s of %.1f s (less than %.0f%%); raise --trim-db (e.g. to %.0f) or lower the minimum kept fraction",
                   decibels, kept, total, minimumFraction * 100, decibels + 20)
        case let .badSpeakerPattern(pattern, reason): "speaker pattern '\(pattern)' \(reason); give a regular expression with one capture group"
        case let .badManifest(path, line, reason): "manifest \(path) line \(line): \(reason); lines must read path,speaker"
        case let .unknownSpeaker(path): "no speaker for \(path) in the manifest or pattern; add it or drop speaker conditioning"
        }
    }
}

/// How to assemble a corpus.
public struct CorpusOptions: Codable, Sendable, Equatable {
    public var sampleRate: Int
    /// Frames quieter than this many dB below the file's peak are trimmed from both ends.
    public var trimDecibels: Double = 40
    /// Stop when less than this fraction of the audio survives trimming.
    public var minimumKeptFraction: Double = 0.25
    public var validationFraction: Double = 0.1
    public var seed: UInt64 = 0
    /// A regular expression with one capture group, applied to each file's path relative to the
    /// data directory; the capture names the speaker (global condition).
    public var speakerPattern: String? = nil
    /// A CSV file of `path,speaker` lines (paths relative to the data directory or absolute).
    public var manifest: String? = nil
    /// Treat unreadable or non-audio files as errors instead of skipping them with a warning.
    public var strict = false
    /// Read frame features beside every recording; trimming is then off, because the frames are
    /// aligned to the recording as it is.
    public var featureFiles: FeatureFiles? = nil

    public init(sampleRate: Int) { self.sampleRate = sampleRate }
}

/// One prepared recording: trimmed, resampled samples in [−1, 1] and its speaker index.
public struct CorpusClip: Sendable, Equatable {
    public var path: String
    public var samples: [Float]
    public var speaker: Int
    /// Frame features read from a feature file, `[frames][bands]` (nil: none).
    public var features: [[Float]]?

    public init(path: String, samples: [Float], speaker: Int, features: [[Float]]? = nil) {
        self.path = path; self.samples = samples; self.speaker = speaker; self.features = features
    }
}

/// A decoded, resampled, trimmed set of recordings split into training and validation files.
public struct Corpus: Sendable {
    public var train: [CorpusClip]
    public var validation: [CorpusClip]
    public var speakers: [String]
    public var sampleRate: Int
    /// Seconds before and after trimming.
    public var totalSeconds: Double
    public var keptSeconds: Double
    public var skipped: [String]

    public init(train: [CorpusClip], validation: [CorpusClip], speakers: [String], sampleRate: Int,
                totalSeconds: Double, keptSeconds: Double, skipped: [String]) {
        self.train = train; self.validation = validation; self.speakers = speakers; self.sampleRate = sampleRate
        self.totalSeconds = totalSeconds; self.keptSeconds = keptSeconds; self.skipped = skipped
    }

    public var trainSamples: Int { train.reduce(0) { $0 + $1.samples.count } }
    public var validationSamples: Int { validation.reduce(0) { $0 + $1.samples.count } }

    /// Finds audio files: `path` itself when it is a file, else every file below it with an audio extension.
    public static func audioFiles(at path: String) throws -> (files: [String], others: Int) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw CorpusError.missing(path: path) }
        guard isDirectory.boolValue else { return ([path], 0) }
        var files: [String] = []
        var others = 0
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let relative = enumerator?.nextObject() as? String {
            let full = (path as NSString).appendingPathComponent(relative)
            var dir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &dir), !dir.boolValue else { continue }
            if AudioFile.extensions.contains((relative as NSString).pathExtension.lowercased()) { files.append(full) } else { others += 1 }
        }
        return (files.sorted(), others)
    }

    /// Reads, resamples and trims every audio file under `path`, assigns speakers and splits by file.
    /// - Parameter warn: receives one line per skipped file.
    public static func load(_ path: String, options: CorpusOptions, warn: (String) -> Void) throws -> Corpus {
        let (files, others) = try audioFiles(at: path)
        guard !files.isEmpty else {
            throw CorpusError.noAudio(path: path, found: others == 0 ? "nothing" : "\(others) files without an audio extension")
        }
        let speakerOf = try speakerAssignment(root: path, options: options)
        var clips: [CorpusClip] = []
        var speakers: [String] = []
        var skipped: [String] = []
        var total = 0.0, kept = 0.0
        for file in files {
            do {
                let (audio, _) = try AudioFile.read(file)
                total += audio.duration
                let features = try options.featureFiles.map { try $0.read($0.path(for: file)) }
                let trimmed = options.featureFiles == nil
                    ? trim(audio.samples, sampleRate: audio.sampleRate, decibels: options.trimDecibels) : audio.samples
                guard !trimmed.isEmpty else {
                    skipped.append(file)
                    warn("skipping \(file): it is silent")
                    continue
                }
                let resampled = try Resampler.resample(Audio(samples: trimmed, sampleRate: audio.sampleRate), to: options.sampleRate)
                kept += Double(trimmed.count) / Double(audio.sampleRate)
                var speaker = 0
                if let speakerOf {
                    guard let name = speakerOf(file) else { throw CorpusError.unknownSpeaker(path: file) }
                    if let index = speakers.firstIndex(of: name) { speaker = index } else { speakers.append(name); speaker = speakers.count - 1 }
                }
                clips.append(CorpusClip(path: file, samples: resampled.samples, speaker: speaker, features: features))
            } catch let error as AudioError {
                if options.strict { throw CorpusError.unreadableFile(path: file, reason: "\(error)") }
                skipped.append(file)
                warn("skipping \(file): \(error)")
            } catch let error as CorpusError {
                guard case .unreadableFile = error, !options.strict else { throw error }
                skipped.append(file)
                warn("skipping \(file): \(error)")
            }
        }
        guard !clips.isEmpty else { throw CorpusError.noAudio(path: path, found: "\(files.count) audio files, none readable and non-silent") }
        if total > 0 && kept / total < options.minimumKeptFraction {
            throw CorpusError.tooMuchTrimmed(kept: kept, total: total, decibels: options.trimDecibels, minimumFraction: options.minimumKeptFraction)
        }
        let (train, validation) = split(clips, options: options)
        return Corpus(train: train, validation: validation, speakers: speakers, sampleRate: options.sampleRate,
                      totalSeconds: total, keptSeconds: kept, skipped: skipped)
    }

    /// Removes leading and trailing 10 ms frames whose RMS is more than `decibels` below the
    /// loudest frame; an all-silent recording gives an empty result.
    public static func trim(_ samples: [Float], sampleRate: Int, decibels: Double) -> [Float] {
        let frame = max(1, sampleRate / 100)
        let frames = (samples.count + frame - 1) / frame
        guard frames > 0 else { return [] }
        let rms: [Double] = (0..<frames).map { f in
            let range = (f * frame)..<min(samples.count, (f + 1) * frame)
            let energy = range.reduce(0.0) { $0 + Double(samples[$1]) * Double(samples[$1]) }
            return (energy / Double(range.count)).squareRoot()
        }
        let peak = rms.max() ?? 0
        guard peak > 1e-6 else { return [] }
        let threshold = peak * pow(10, -decibels / 20)
        guard let first = rms.firstIndex(where: { $0 >= threshold }), let last = rms.lastIndex(where: { $0 >= threshold }) else { return [] }
        return Array(samples[(first * frame)..<min(samples.count, (last + 1) * frame)])
    }

    /// Splits by file, deterministically from the seed; a single recording is split in time instead.
    static func split(_ clips: [CorpusClip], options: CorpusOptions) -> ([CorpusClip], [CorpusClip]) {
        if clips.count == 1 {
            let clip = clips[0]
            let cut = Int(Double(clip.samples.count) * (1 - options.validationFraction))
            var train = clip, validation = clip
            train.samples = Array(clip.samples[..<cut])
            validation.samples = Array(clip.samples[cut...])
            return ([train], validation.samples.isEmpty ? [] : [validation])
        }
        var generator = RandomGenerator(seed: options.seed ^ 0xC0_4905)
        let order = generator.permutation(clips.count)
        let count = min(clips.count - 1, max(1, Int((Double(clips.count) * options.validationFraction).rounded())))
        let validation = Set(order.prefix(count))
        return (clips.indices.filter { !validation.contains($0) }.map { clips[$0] },
                clips.indices.filter { validation.contains($0) }.map { clips[$0] })
    }

    /// A function from a file path to its speaker name (nil when neither a pattern nor a manifest is given).
    static func speakerAssignment(root: String, options: CorpusOptions) throws -> ((String) -> String?)? {
        if let manifest = options.manifest {
            guard let text = try? String(contentsOfFile: manifest, encoding: .utf8) else { throw CorpusError.missing(path: manifest) }
            var map: [String: String] = [:]
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || (number == 0 && trimmed.lowercased() == "path,speaker") { continue }
                let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard fields.count == 2, !fields[0].isEmpty, !fields[1].isEmpty else {
                    throw CorpusError.badManifest(path: manifest, line: number + 1, reason: "expected 2 fields, got \(fields.count)")
                }
                let full = fields[0].hasPrefix("/") ? fields[0] : (root as NSString).appendingPathComponent(fields[0])
                map[(full as NSString).standardizingPath] = fields[1]
            }
            return { map[($0 as NSString).standardizingPath] }
        }
        if let pattern = options.speakerPattern {
            let regex: NSRegularExpression
            do { regex = try NSRegularExpression(pattern: pattern) } catch {
                throw CorpusError.badSpeakerPattern(pattern: pattern, reason: "does not compile")
            }
            guard regex.numberOfCaptureGroups >= 1 else { throw CorpusError.badSpeakerPattern(pattern: pattern, reason: "has no capture group") }
            let prefix = root.hasSuffix("/") ? root : root + "/"
            return { path in
                let relative = path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
                let range = NSRange(relative.startIndex..., in: relative)
                guard let match = regex.firstMatch(in: relative, range: range), let r = Range(match.range(at: 1), in: relative) else { return nil }
                return String(relative[r])
            }
        }
        return nil
    }
}

// MARK: - Cache

extension Corpus {
    /// Stores the prepared corpus in one safetensors file (one tensor per clip, paths and speakers
    /// in the metadata), keyed by the options and the source files' sizes and modification times.
    public func write(to path: String, key: String) throws {
        var checkpoint = Checkpoint(metadata: ["seriatim.format": "corpus-1", "key": key])
        var entries: [[String: Any]] = []
        for (split, clips) in [("train", train), ("validation", validation)] {
            for (i, clip) in clips.enumerated() {
                let name = "\(split).\(i)"
                checkpoint.tensors[name] = Tensor(shape: [clip.samples.count], scalars: clip.samples)
                if let features = clip.features {
                    checkpoint.tensors[name + ".features"] = Tensor(shape: [features.count, features[0].count], scalars: features.flatMap { $0 })
                }
                entries.append(["tensor": name, "path": clip.path, "speaker": clip.speaker])
            }
        }
        let info: [String: Any] = ["clips": entries, "speakers": speakers, "sampleRate": sampleRate,
                                   "totalSeconds": totalSeconds, "keptSeconds": keptSeconds, "skipped": skipped]
        checkpoint.metadata["corpus"] = String(decoding: try JSONSerialization.data(withJSONObject: info, options: [.sortedKeys]), as: UTF8.self)
        try checkpoint.write(to: path)
    }

    /// The cached corpus at `path` if it was made with `key`, else nil.
    public static func cached(at path: String, key: String) -> Corpus? {
        guard FileManager.default.fileExists(atPath: path), let checkpoint = try? Checkpoint.read(from: path),
              checkpoint.metadata["key"] == key, let json = checkpoint.metadata["corpus"],
              let info = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let entries = info["clips"] as? [[String: Any]], let speakers = info["speakers"] as? [String],
              let rate = info["sampleRate"] as? Int else { return nil }
        var train: [CorpusClip] = [], validation: [CorpusClip] = []
        for entry in entries {
            guard let name = entry["tensor"] as? String, let tensor = checkpoint.tensors[name], let p = entry["path"] as? String,
                  let speaker = entry["speaker"] as? Int else { return nil }
            let features = checkpoint.tensors[name + ".features"].map { t in
                (0..<t.shape[0]).map { Array(t.scalars[($0 * t.shape[1])..<(($0 + 1) * t.shape[1])]) }
            }
            let clip = CorpusClip(path: p, samples: tensor.scalars, speaker: speaker, features: features)
            if name.hasPrefix("train.") { train.append(clip) } else { validation.append(clip) }
        }
        return Corpus(train: train, validation: validation, speakers: speakers, sampleRate: rate,
                      totalSeconds: info["totalSeconds"] as? Double ?? 0, keptSeconds: info["keptSeconds"] as? Double ?? 0,
                      skipped: info["skipped"] as? [String] ?? [])
    }

    /// The cache key for `path` under `options`: the options plus each file's size and modification time.
    public static func cacheKey(_ path: String, options: CorpusOptions) throws -> String {
        let (files, _) = try audioFiles(at: path)
        var parts = [canonicalJSON(options)]
        for file in files {
            let attributes = try? FileManager.default.attributesOfItem(atPath: file)
            let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            parts.append("\(file)|\(size)|\(modified)")
        }
        if let manifest = options.manifest, let text = try? String(contentsOfFile: manifest, encoding: .utf8) { parts.append(text) }
        return String(Checkpoint.checksum(Data(parts.joined(separator: "\n").utf8)))
    }
}
