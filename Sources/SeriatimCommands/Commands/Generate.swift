import ArgumentParser
import AudioFiles
import AudioModels
import Foundation
import Tensors

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate audio clips from a trained WaveNet (cached incremental generation).")

    @Option(help: "A run directory (its best checkpoint is used) or a checkpoint file.") var checkpoint: String
    @Option(help: "Seconds of new audio per clip.") var seconds: Double
    @Option(help: "Output file (.wav or .flac); with --count N the clips are NAME-1 … NAME-N.") var out: String
    @Option(help: "Clips to generate at once (one stream each).") var count = 1
    @Option(help: "Speaker name or index (models trained with speakers).") var speaker: String?
    @Option(help: "Audio to continue: fed through the model before generating.") var prime: String?
    @Option(help: "Audio whose log-mel frames condition the clip (models with computed local features).") var condition: String?
    @Option(help: "A feature file (one frame per line) conditioning the clip (models trained with feature files).") var features: String?
    @Option(help: "Sampling temperature (0: always the most likely value).") var temperature: Float = 1
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Flag(help: "Print a JSON summary.") var json = false

    func run() throws {
        guard seconds > 0, count >= 1, temperature >= 0 else { throw UserError("--seconds must be positive, --count at least 1 and --temperature non-negative") }
        let file = try checkpointFile(checkpoint)
        let model: WaveNet
        do { model = try WaveNet.load(from: file) } catch { throw UserError("\(error)") }
        let c = model.configuration
        var conditions = GenerationConditions()
        if !c.speakers.isEmpty {
            let id = speaker ?? "0"
            guard let index = c.speakers.firstIndex(of: id) ?? Int(id).flatMap({ $0 >= 0 && $0 < c.speakers.count ? $0 : nil }) else {
                throw UserError("unknown speaker '\(id)'; this model knows \(c.speakers.enumerated().map { "\($0.offset): \($0.element)" }.joined(separator: ", "))")
            }
            conditions.speakers = [Int](repeating: index, count: count)
        } else if speaker != nil {
            throw UserError("this model was trained without speakers; drop --speaker")
        }
        if let prime { conditions.prime = try readResampled(prime, rate: c.sampleRate) }
        if let logMel = c.localFeatures {
            guard let condition else { throw UserError("this model is locally conditioned: pass --condition AUDIO.wav to take log-mel frames from") }
            conditions.localFrames = logMel.frames(try readResampled(condition, rate: c.sampleRate))
        } else if let files = c.featureFiles {
            guard let features else { throw UserError("this model is conditioned on feature files: pass --features FILE.csv") }
            do { conditions.localFrames = try files.read(features) } catch { throw UserError("\(error)") }
        } else if condition != nil || features != nil {
            throw UserError("this model has no local conditioning; drop --condition/--features")
        }
        let samples = Int((seconds * Double(c.sampleRate)).rounded())
        let generator = WaveNetGenerator(model: model, streams: count, conditions: conditions)
        var rng = RandomGenerator(seed: seed)
        var progress = ProgressLine(total: samples, label: "generating")
        let started = DispatchTime.now().uptimeNanoseconds
        let clips = generator.generate(count: samples, temperature: temperature, generator: &rng) { progress.update($0) }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var paths: [String] = []
        for (i, clip) in clips.enumerated() {
            let path = count == 1 ? out : numbered(out, i + 1)
            do { try AudioFile.write(Audio(samples: clip, sampleRate: c.sampleRate), to: path) } catch { throw UserError("\(error)") }
            paths.append(path)
        }
        let audioSeconds = Double(samples * count) / Double(c.sampleRate)
        if json {
            printJSONValue(["files": paths, "seconds_generated": audioSeconds, "wall_seconds": elapsed,
                            "samples_per_second": Double(samples * count) / elapsed, "real_time_factor": elapsed / audioSeconds])
        } else {
            for p in paths { print("wrote \(p)") }
            print(String(format: "generated %d × %.2f s in %.2f s: %.2f× real time (real-time factor %.3f), %.0f samples/s",
                         count, seconds, elapsed, audioSeconds / elapsed, elapsed / audioSeconds, Double(samples * count) / elapsed))
        }
    }

    func readResampled(_ path: String, rate: Int) throws -> [Float] {
        do { return try Resampler.resample(AudioFile.read(path).audio, to: rate).samples } catch { throw UserError("\(error)") }
    }

    func numbered(_ path: String, _ n: Int) -> String {
        let url = URL(fileURLWithPath: path)
        let ext = url.pathExtension
        return url.deletingPathExtension().path + "-\(n)" + (ext.isEmpty ? "" : ".\(ext)")
    }
}
