import CSampleRate
import CSndFile
import Foundation

/// Why audio could not be read, converted or written; messages name the file and say what to do.
public enum AudioError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case empty(path: String)
    case unsupportedFormat(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case resamplingFailed(reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "cannot read audio file \(path): \(reason); check that it is a WAV, FLAC, OGG or AIFF file"
        case let .empty(path): "audio file \(path) holds no samples; remove it or record something into it"
        case let .unsupportedFormat(path, reason): "cannot write \(path): \(reason); use a .wav or .flac name"
        case let .writeFailed(path, reason): "cannot write audio file \(path): \(reason); check free space and permissions"
        case let .resamplingFailed(reason): "resampling failed: \(reason); check the sample rates"
        }
    }
}

/// Mono audio as Float samples in [−1, 1] at a sample rate.
public struct Audio: Sendable, Equatable {
    public var samples: [Float]
    public var sampleRate: Int

    public init(samples: [Float], sampleRate: Int) {
        precondition(sampleRate > 0, "Audio: sample rate \(sampleRate) must be positive")
        self.samples = samples
        self.sampleRate = sampleRate
    }

    public var duration: Double { Double(samples.count) / Double(sampleRate) }
}

/// What `AudioFile.read` reports about the file it decoded.
public struct AudioFileInfo: Sendable, Equatable {
    public var sampleRate: Int
    public var channels: Int
    public var frames: Int
    /// The container, e.g. "WAV", "FLAC", "OGG", "AIFF".
    public var container: String
    /// The sample encoding, e.g. "PCM_16", "PCM_24", "FLOAT", "VORBIS".
    public var encoding: String
}

/// Reading and writing through libsndfile.
public enum AudioFile {
    /// Extensions the corpus scanner treats as audio.
    public static let extensions: Set<String> = ["wav", "wave", "flac", "ogg", "oga", "aif", "aiff", "aifc"]

    /// Decodes a WAV, FLAC, OGG/Vorbis or AIFF file (8/16/24/32-bit integer or float samples),
    /// normalised to [−1, 1] and mixed down to mono by averaging the channels.
    public static func read(_ path: String) throws -> (audio: Audio, info: AudioFileInfo) {
        var info = SF_INFO()
        guard let file = sf_open(path, Int32(SFM_READ), &info) else {
            let reason = String(cString: sf_strerror(nil))
            throw AudioError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? reason : "no such file")
        }
        defer { sf_close(file) }
        let frames = Int(info.frames), channels = Int(info.channels)
        guard frames > 0, channels > 0 else { throw AudioError.empty(path: path) }
        var interleaved = [Float](repeating: 0, count: frames * channels)
        let read = interleaved.withUnsafeMutableBufferPointer { sf_readf_float(file, $0.baseAddress!, sf_count_t(frames)) }
        guard read > 0 else { throw AudioError.unreadable(path: path, reason: "no frames could be decoded") }
        var mono = [Float](repeating: 0, count: Int(read))
        let scale = 1 / Float(channels)
        for f in 0..<Int(read) {
            var s: Float = 0
            for c in 0..<channels { s += interleaved[f * channels + c] }
            mono[f] = min(max(s * scale, -1), 1)
        }
        let description = AudioFileInfo(sampleRate: Int(info.samplerate), channels: channels, frames: Int(read),
                                        container: containerName(info.format), encoding: encodingName(info.format))
        return (Audio(samples: mono, sampleRate: Int(info.samplerate)), description)
    }

    /// The sample encodings `write` offers.
    public enum Encoding: Sendable { case pcm16, pcm24, float }

    /// Writes mono audio as WAV (`.wav`) or FLAC (`.flac`), 16-bit PCM by default; samples outside
    /// [−1, 1] are clipped. The file is written to a temporary name and renamed into place.
    public static func write(_ audio: Audio, to path: String, encoding: Encoding = .pcm16) throws {
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        var format: Int32
        switch ext {
        case "wav", "wave": format = Int32(SF_FORMAT_WAV)
        case "flac": format = Int32(SF_FORMAT_FLAC)
        case "aif", "aiff": format = Int32(SF_FORMAT_AIFF)
        default: throw AudioError.unsupportedFormat(path: path, reason: "unknown extension '.\(ext)'")
        }
        switch encoding {
        case .pcm16: format |= Int32(SF_FORMAT_PCM_16)
        case .pcm24: format |= Int32(SF_FORMAT_PCM_24)
        case .float:
            guard ext != "flac" else { throw AudioError.unsupportedFormat(path: path, reason: "FLAC stores integer samples only") }
            format |= Int32(SF_FORMAT_FLOAT)
        }
        var info = SF_INFO(frames: 0, samplerate: Int32(audio.sampleRate), channels: 1, format: format, sections: 0, seekable: 0)
        guard sf_format_check(&info) == 1 else { throw AudioError.unsupportedFormat(path: path, reason: "libsndfile rejects this format") }
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
        guard let file = sf_open(temporary, Int32(SFM_WRITE), &info) else {
            throw AudioError.writeFailed(path: path, reason: String(cString: sf_strerror(nil)))
        }
        sf_command(file, Int32(SFC_SET_CLIPPING), nil, Int32(SF_TRUE))
        let written = audio.samples.withUnsafeBufferPointer { sf_writef_float(file, $0.baseAddress!, sf_count_t(audio.samples.count)) }
        sf_write_sync(file)
        sf_close(file)
        guard written == audio.samples.count else {
            unlink(temporary)
            throw AudioError.writeFailed(path: path, reason: "wrote \(written) of \(audio.samples.count) samples")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw AudioError.writeFailed(path: path, reason: String(cString: strerror(errno)))
        }
    }

    static func containerName(_ format: Int32) -> String {
        switch Int(format) & Int(SF_FORMAT_TYPEMASK) {
        case Int(SF_FORMAT_WAV), Int(SF_FORMAT_WAVEX): "WAV"
        case Int(SF_FORMAT_AIFF): "AIFF"
        case Int(SF_FORMAT_FLAC): "FLAC"
        case Int(SF_FORMAT_OGG): "OGG"
        default: String(format: "0x%06x", Int(format) & Int(SF_FORMAT_TYPEMASK))
        }
    }

    static func encodingName(_ format: Int32) -> String {
        switch Int(format) & Int(SF_FORMAT_SUBMASK) {
        case Int(SF_FORMAT_PCM_S8), Int(SF_FORMAT_PCM_U8): "PCM_8"
        case Int(SF_FORMAT_PCM_16): "PCM_16"
        case Int(SF_FORMAT_PCM_24): "PCM_24"
        case Int(SF_FORMAT_PCM_32): "PCM_32"
        case Int(SF_FORMAT_FLOAT): "FLOAT"
        case Int(SF_FORMAT_DOUBLE): "DOUBLE"
        case Int(SF_FORMAT_VORBIS): "VORBIS"
        default: String(format: "0x%04x", Int(format) & Int(SF_FORMAT_SUBMASK))
        }
    }
}

/// Sample-rate conversion with libsamplerate's best-quality sinc converter.
public enum Resampler {
    /// `audio` converted to `rate` (returned unchanged when the rates already match).
    public static func resample(_ audio: Audio, to rate: Int) throws -> Audio {
        guard audio.sampleRate != rate else { return audio }
        guard rate > 0 else { throw AudioError.resamplingFailed(reason: "target rate \(rate) must be positive") }
        let ratio = Double(rate) / Double(audio.sampleRate)
        let capacity = Int((Double(audio.samples.count) * ratio).rounded(.up)) + 16
        var output = [Float](repeating: 0, count: capacity)
        var input = audio.samples
        var generated = 0
        let status: Int32 = input.withUnsafeMutableBufferPointer { inp in
            output.withUnsafeMutableBufferPointer { out in
                var data = SRC_DATA()
                data.data_in = UnsafePointer(inp.baseAddress!)
                data.data_out = out.baseAddress!
                data.input_frames = Int(inp.count)
                data.output_frames = Int(out.count)
                data.end_of_input = 1
                data.src_ratio = ratio
                let result = src_simple(&data, Int32(SRC_SINC_BEST_QUALITY), 1)
                generated = Int(data.output_frames_gen)
                return result
            }
        }
        guard status == 0 else { throw AudioError.resamplingFailed(reason: String(cString: src_strerror(status))) }
        output.removeLast(output.count - generated)
        return Audio(samples: output.map { min(max($0, -1), 1) }, sampleRate: rate)
    }
}

/// Mu-law companding (ITU-T G.711 style, continuous): F(x) = sign(x)·ln(1 + μ|x|)/ln(1 + μ),
/// quantised to μ + 1 classes (256 for μ = 255).
public struct MuLaw: Sendable, Equatable, Codable {
    public let mu: Int

    public init(mu: Int = 255) {
        precondition(mu >= 1, "MuLaw: μ \(mu) must be at least 1")
        self.mu = mu
    }

    /// The number of classes, μ + 1.
    public var classes: Int { mu + 1 }

    /// The class of a sample in [−1, 1].
    @inlinable
    public func encode(_ x: Float) -> Int {
        let m = Float(mu)
        let clipped = min(max(x, -1), 1)
        let companded = (clipped < 0 ? -1 : 1) * Foundation.log1p(m * abs(clipped)) / Foundation.log1p(m)
        return Int(((companded + 1) / 2 * m).rounded())
    }

    /// The sample a class stands for (the inverse of the companding at the class centre).
    @inlinable
    public func decode(_ k: Int) -> Float {
        let m = Float(mu)
        let y = Float(k) / m * 2 - 1
        return (y < 0 ? -1 : 1) * (Foundation.pow(1 + m, abs(y)) - 1) / m
    }

    public func encode(_ samples: [Float]) -> [Int] { samples.map(encode) }
    public func decode(_ classes: [Int]) -> [Float] { classes.map(decode) }
}
