import ArgumentParser
import AudioFiles
import AudioModels
import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

/// `seriatim train …`: one subcommand per model family.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model.",
        subcommands: [TrainWaveNet.self, TrainFVSBN.self, TrainNADE.self, TrainMADE.self, TrainPixelCNN.self, TrainGatedPixelCNN.self, TrainRowLSTM.self, TrainDiagonalBiLSTM.self])
}

/// How a WaveNet run trains (the `training` section of a configuration file).
struct WaveNetTrainingOptions: Codable, Equatable {
    var batchSize = 4
    /// Samples counted per window (the window is the receptive field plus this).
    var window = 4096
    var steps = 2000
    var learningRate: Float = 1e-3
    var warmupSteps = 100
    var evaluateEvery = 200
    var validationLimit: Int? = 32
    var clipNorm: Float? = 10
    var patience: Int? = nil
    /// Validate, keep and generate with a moving average of the weights of this decay, e.g. 0.999 (nil: none).
    var averageDecay: Float? = nil
    /// Seconds of audio written to `samples/` after each evaluation (0: none).
    var sampleSeconds = 1.0
    var trimDecibels = 40.0
    var minimumKeptFraction = 0.25
    var validationFraction = 0.1
    var speakerPattern: String? = nil
    var manifest: String? = nil
    var strict = false
}

/// The whole run: model, training and data, saved as `run.json` so that `--resume` and
/// `generate` need nothing else.
struct WaveNetRun: Codable {
    var model: WaveNetConfiguration
    var training: WaveNetTrainingOptions
    var data: String
    var seed: UInt64
}

struct TrainWaveNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wavenet",
        abstract: "Train a WaveNet on a folder of recordings (or one file).",
        discussion: """
        The configuration file is JSON with optional "model" and "training" objects naming only what
        changes from the defaults, e.g. {"model": {"dilations": [1,2,4,8,16,32,64,128,256], "skipChannels": 128},
        "training": {"steps": 5000, "window": 2048}}. See README.md for every setting.
        """)

    @Option(help: "A directory searched recursively for WAV/FLAC/OGG/AIFF files, or one audio file.") var data: String?
    @Option(help: "The run directory (checkpoints, metrics, samples).") var out: String
    @Option(help: "The model's sample rate in Hz; audio is resampled to it.") var sampleRate: Int?
    @Option(help: "Training steps.") var steps: Int?
    @Option(help: "A JSON configuration file.") var config: String?
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "Trim frames this many dB below each file's peak from both ends.") var trimDb: Double?
    @Option(help: "Regular expression with one capture group naming the speaker in each relative path.") var speakerPattern: String?
    @Option(help: "CSV of path,speaker lines assigning speakers.") var manifest: String?
    @Option(help: "Frame-rate log-mel bands for local conditioning (0: none).") var localBands: Int?
    @Option(help: "Local conditioning from files: NAME.features.csv beside each NAME.wav, this many numbers per line.") var featureBands: Int?
    @Option(help: "Samples (at the model's rate) per line of the feature files.") var featureHop: Int?
    @Flag(help: "Fail on unreadable or non-audio files instead of skipping them.") var strict = false
    @Flag(help: "Continue the run in --out exactly where it stopped.") var resume = false
    @Flag(help: "Print the final summary as JSON.") var json = false

    func run() throws {
        let runFile = (out as NSString).appendingPathComponent("run.json")
        var run: WaveNetRun
        if resume {
            guard let data = FileManager.default.contents(atPath: runFile), let saved = try? JSONDecoder().decode(WaveNetRun.self, from: data) else {
                throw UserError("\(out) holds no run to resume (no readable run.json); start it without --resume")
            }
            run = saved
            if let steps { run.training.steps = steps }
        } else {
            guard let data else { throw UserError("--data is required: a directory of recordings or one audio file") }
            run = WaveNetRun(model: WaveNetConfiguration(), training: WaveNetTrainingOptions(), data: data, seed: seed)
            if let config {
                let object = try readJSONObject(config)
                for key in object.keys where !["model", "training"].contains(key) {
                    throw UserError("\(config): unknown section '\(key)'; use \"model\" and \"training\"")
                }
                if let model = object["model"] as? [String: Any] { run.model = try merged(run.model, with: model, context: "\(config) model") }
                if let training = object["training"] as? [String: Any] { run.training = try merged(run.training, with: training, context: "\(config) training") }
            }
            if let sampleRate { run.model.sampleRate = sampleRate }
            if let steps { run.training.steps = steps }
            if let trimDb { run.training.trimDecibels = trimDb }
            if let speakerPattern { run.training.speakerPattern = speakerPattern }
            if let manifest { run.training.manifest = manifest }
            if strict { run.training.strict = true }
            if let localBands { run.model.localFeatures = localBands > 0 ? LogMelSpectrogram(sampleRate: run.model.sampleRate, bands: localBands) : nil }
            if let featureBands {
                guard let featureHop else { throw UserError("--feature-bands needs --feature-hop: how many samples one line of a feature file covers") }
                run.model.featureFiles = FeatureFiles(bands: featureBands, hop: featureHop)
            }
            if let features = run.model.localFeatures, features.sampleRate != run.model.sampleRate {
                run.model.localFeatures = LogMelSpectrogram(sampleRate: run.model.sampleRate, bands: features.bands)
            }
            if FileManager.default.fileExists(atPath: (out as NSString).appendingPathComponent("latest.safetensors")) {
                throw UserError("\(out) already holds a run; add --resume to continue it or choose another --out")
            }
        }
        if let problem = run.model.validationError() { throw UserError("invalid model configuration: \(problem)") }
        guard run.training.batchSize >= 1, run.training.window >= 1, run.training.steps >= 1, run.training.evaluateEvery >= 1 else {
            throw UserError("batchSize, window, steps and evaluateEvery must be at least 1")
        }
        try checkAverageDecay(run.training.averageDecay)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        // Corpus: decoded, resampled, trimmed and split once, then cached in the run directory.
        var options = CorpusOptions(sampleRate: run.model.sampleRate)
        options.trimDecibels = run.training.trimDecibels
        options.minimumKeptFraction = run.training.minimumKeptFraction
        options.validationFraction = run.training.validationFraction
        options.seed = run.seed
        options.speakerPattern = run.training.speakerPattern
        options.manifest = run.training.manifest
        options.strict = run.training.strict
        options.featureFiles = run.model.featureFiles
        let corpus = try loadCorpus(run.data, options: options)
        if !resume, !corpus.speakers.isEmpty { run.model.speakers = corpus.speakers }
        if resume, corpus.speakers != run.model.speakers {
            throw UserError("the speakers found now (\(corpus.speakers)) differ from the run's (\(run.model.speakers)); resume with the same data")
        }
        try JSONEncoder.pretty.encode(run).write(to: URL(fileURLWithPath: runFile))

        var generator = RandomGenerator(seed: run.seed)
        let model = WaveNet(run.model, generator: &generator)
        let task = WaveNetTask(model: model, corpus: corpus, window: run.training.window, batchSize: run.training.batchSize,
                               validationLimit: run.training.validationLimit ?? .max)
        guard !task.train.isEmpty else {
            throw UserError("no training recording is longer than one window (\(run.model.receptiveField + run.training.window) samples = receptive field + window); lower \"window\" or use longer recordings")
        }
        let rate = Double(run.model.sampleRate)
        warn(String(format: "corpus: %d training and %d validation recordings, %.1f s kept of %.1f s after trimming (%.0f dB); %d skipped",
                    corpus.train.count, corpus.validation.count, corpus.keptSeconds, corpus.totalSeconds,
                    run.training.trimDecibels, corpus.skipped.count))
        warn(String(format: "model: %d parameters, receptive field %d samples (%.1f ms at %d Hz)%@",
                    model.parameterCount, run.model.receptiveField, Double(run.model.receptiveField) / rate * 1000, run.model.sampleRate,
                    run.model.speakers.isEmpty ? "" : ", \(run.model.speakers.count) speakers"))

        var trainer = TrainerConfiguration()
        trainer.batchSize = run.training.batchSize
        trainer.steps = run.training.steps
        trainer.evaluateEvery = run.training.evaluateEvery
        trainer.patience = run.training.patience
        trainer.seed = run.seed
        trainer.schedule = LearningRateSchedule(base: run.training.learningRate, warmupSteps: run.training.warmupSteps,
                                                decay: .cosine(totalSteps: run.training.steps, minimum: run.training.learningRate / 10))
        trainer.clipNorm = run.training.clipNorm
        trainer.averageDecay = run.training.averageDecay
        trainer.evaluationBatchSize = run.training.batchSize
        trainer.logEvery = max(1, run.training.evaluateEvery / 4)
        let training = try Trainer(task: task, optimizer: Adam(learningRate: run.training.learningRate), configuration: trainer, runDirectory: out)
        if resume { try training.resume() }
        Interruption.install()
        training.shouldStop = { Interruption.isRequested }
        if run.training.sampleSeconds > 0 {
            let samplesDirectory = (out as NSString).appendingPathComponent("samples")
            try FileManager.default.createDirectory(atPath: samplesDirectory, withIntermediateDirectories: true)
            training.sampleHook = { step in
                var sampler = RandomGenerator(seed: run.seed &+ UInt64(step))
                let generatorModel = WaveNetGenerator(model: model, streams: 1, conditions: GenerationConditions(
                    speakers: run.model.speakers.isEmpty ? nil : [0],
                    localFrames: run.model.localBands == 0 ? nil : {
                        let clip = corpus.validation.first ?? corpus.train[0]
                        return clip.features ?? run.model.localFeatures!.frames(clip.samples)
                    }()))
                let clip = generatorModel.generate(count: Int(run.training.sampleSeconds * rate), generator: &sampler)[0]
                try? AudioFile.write(Audio(samples: clip, sampleRate: run.model.sampleRate),
                                     to: (samplesDirectory as NSString).appendingPathComponent("step-\(step).wav"))
            }
        }
        let summary: TrainingSummary
        do { summary = try training.train() } catch let error as TrainingError { throw UserError(error.description) }

        let baseline = Self.histogramEntropyBits(corpus.train, muLaw: run.model.muLaw)
        let validationBits = summary.finalValidation?.bitsPerDimension
        if Interruption.isRequested { warn("interrupted: the run is saved in \(out); continue it with --resume") }
        if json {
            var result: [String: Any] = ["steps": summary.state.step, "seconds": summary.seconds, "run_directory": out,
                                         "baseline_bits_per_sample": baseline, "parameters": model.parameterCount]
            if let validationBits { result["validation_bits_per_sample"] = validationBits }
            if let best = summary.state.bestValidationNats { result["best_validation_bits_per_sample"] = best / Double(run.training.window) / log(2) }
            printJSONValue(result)
        } else {
            print(String(format: "trained %d steps in %.0f s; checkpoints in %@", summary.state.step, summary.seconds, out))
            if let validationBits {
                print(String(format: "validation: %.3f bits per sample (mu-law histogram entropy baseline: %.3f bits per sample)", validationBits, baseline))
            }
        }
    }

    func loadCorpus(_ path: String, options: CorpusOptions) throws -> Corpus {
        let cache = (out as NSString).appendingPathComponent("corpus.safetensors")
        do {
            let key = try Corpus.cacheKey(path, options: options)
            if let corpus = Corpus.cached(at: cache, key: key) {
                warn("corpus: using the cache \(cache)")
                return corpus
            }
            let corpus = try Corpus.load(path, options: options, warn: warn)
            try corpus.write(to: cache, key: key)
            return corpus
        } catch let error as CorpusError {
            throw UserError(error.description)
        }
    }

    /// The entropy of the mu-law class histogram of the training audio, bits per sample: what a
    /// model that ignores all context achieves.
    static func histogramEntropyBits(_ clips: [CorpusClip], muLaw: MuLaw) -> Double {
        var counts = [Double](repeating: 0, count: muLaw.classes)
        for clip in clips { for x in clip.samples { counts[muLaw.encode(x)] += 1 } }
        let total = counts.reduce(0, +)
        return counts.reduce(0.0) { h, c in c > 0 ? h - c / total * log2(c / total) : h }
    }
}

extension JSONEncoder {
    static var pretty: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }
}
