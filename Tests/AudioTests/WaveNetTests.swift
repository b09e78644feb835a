import AudioFiles
import AudioModels
import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Testing
import Tensors

func smallConfiguration(kernelWidth: Int = 2, dilations: [Int] = [1, 2, 4, 8], output: WaveNetOutput = .softmax,
                        speakers: [String] = [], localBands: Int = 0, mu: Int = 255) -> WaveNetConfiguration {
    var c = WaveNetConfiguration()
    c.sampleRate = 8000
    c.mu = mu
    c.dilations = dilations
    c.kernelWidth = kernelWidth
    c.residualChannels = 8; c.gateChannels = 8; c.skipChannels = 16; c.headChannels = 16
    c.output = output
    c.speakers = speakers
    c.speakerEmbeddingSize = 4
    c.localFeatures = localBands > 0 ? LogMelSpectrogram(sampleRate: 8000, frameLength: 64, hop: 16, bands: localBands) : nil
    return c
}

@Suite struct WaveNetTests {
    @Test(arguments: [false, true])
    func causality(conditioned: Bool) {
        var rng = RandomGenerator(seed: 41)
        let model = WaveNet(smallConfiguration(speakers: conditioned ? ["a", "b"] : [], localBands: conditioned ? 3 : 0), generator: &rng)
        let t = 30
        let local = conditioned ? rng.normalTensor([1, 3, t]) : nil
        let samples = rng.uniformTensor([t], low: -0.9, high: 0.9)
        let report = checkAutoregressive(order: Array(0..<t), inputs: [samples], perturb: { -$0 }) { x in
            GradientMode.withoutGradients {
                let out = model(model.inputTensor([x.scalars]), speakers: conditioned ? [1] : nil, local: local).value
                return Kernels.transposeLastTwo(out.reshaped([256, t]))
            }
        }
        #expect(report.passed, "\(report)")
        #expect(report.laterChanges[0] > 0)
    }

    struct GenerationCase: Sendable, CustomTestStringConvertible {
        let kernelWidth: Int, dilations: [Int], mixture: Bool, conditioned: Bool, streams: Int
        var testDescription: String { "k\(kernelWidth) \(dilations)\(mixture ? " mixture" : "")\(conditioned ? " conditioned" : "") ×\(streams)" }
    }

    /// Cached generation draws the same samples as naive generation (full forward pass per sample)
    /// from the same seed, with outputs within 1e-4.
    @Test(arguments: [
        GenerationCase(kernelWidth: 2, dilations: [1, 2, 4, 8], mixture: false, conditioned: false, streams: 1),
        GenerationCase(kernelWidth: 3, dilations: [1, 3, 2, 5], mixture: false, conditioned: false, streams: 2),
        GenerationCase(kernelWidth: 2, dilations: [1, 3, 6], mixture: false, conditioned: true, streams: 3),
        GenerationCase(kernelWidth: 3, dilations: [2, 1, 5], mixture: true, conditioned: true, streams: 2),
    ])
    func cachedGenerationEqualsNaive(testCase: GenerationCase) {
        var rng = RandomGenerator(seed: 42)
        let config = smallConfiguration(kernelWidth: testCase.kernelWidth, dilations: testCase.dilations,
                                        output: testCase.mixture ? .logisticMixture(components: 2) : .softmax,
                                        speakers: testCase.conditioned ? ["x", "y", "z"] : [], localBands: testCase.conditioned ? 2 : 0)
        let model = WaveNet(config, generator: &rng)
        let frames: [[Float]]? = testCase.conditioned ? (0..<20).map { _ in [rng.normal(), rng.normal()] } : nil
        let conditions = GenerationConditions(speakers: testCase.conditioned ? Array([2, 0, 1].prefix(testCase.streams)) : nil,
                                              localFrames: frames, prime: [0.1, -0.2, 0.3, 0.05])
        let count = config.receptiveField + 25
        var cachedOutputs: [[Float]] = [], naiveOutputs: [[Float]] = []
        var a = RandomGenerator(seed: 7), b = RandomGenerator(seed: 7)
        let fast = WaveNetGenerator(model: model, streams: testCase.streams, conditions: conditions)
            .generate(count: count, generator: &a, record: { cachedOutputs.append($0) })
        let slow = WaveNetGenerator.generateNaive(model: model, streams: testCase.streams, count: count, conditions: conditions,
                                                  generator: &b) { naiveOutputs.append($0) }
        #expect(fast == slow)
        #expect(cachedOutputs.count == count && naiveOutputs.count == count)
        let worst = zip(cachedOutputs, naiveOutputs).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
        #expect(worst <= 1e-4, "largest output difference \(worst)")
        #expect(a == b)
    }

    /// A small WaveNet learns a two-tone clip to below 1 bit per sample.
    @Test func overfitsATwoToneClip() throws {
        var rng = RandomGenerator(seed: 43)
        var config = smallConfiguration(dilations: [1, 2, 4, 8, 16, 32])
        config.residualChannels = 16; config.gateChannels = 16; config.skipChannels = 32; config.headChannels = 64
        let model = WaveNet(config, generator: &rng)
        let samples = tone([250, 375], seconds: 1, rate: 8000)
        let corpus = Corpus(train: [CorpusClip(path: "tones", samples: samples, speaker: 0)],
                            validation: [CorpusClip(path: "tones", samples: samples, speaker: 0)],
                            speakers: [], sampleRate: 8000, totalSeconds: 1, keptSeconds: 1, skipped: [])
        let task = WaveNetTask(model: model, corpus: corpus, window: 256, batchSize: 8, validationLimit: 8)
        let adam = Adam(learningRate: 3e-3)
        for _ in 0..<250 {
            let batch = task.makeBatch(.train, indices: Array(0..<8), generator: &rng)
            let loss = task.loss(batch, generator: &rng)
            loss.backward()
            adam.update(task.parameters)
            model.zeroGradients()
        }
        let validation = task.makeBatch(.validation, indices: Array(0..<task.exampleCount(.validation)), generator: &rng)
        let nats = task.evaluate(validation)
        let bits = nats.reduce(0, +) / Double(nats.count * task.window) / log(2)
        #expect(bits < 1, "\(bits) bits per sample")
    }

    @Test func logMelFramesFollowTheSignal() {
        let features = LogMelSpectrogram(sampleRate: 8000, bands: 20)
        let low = features.frames(tone([200], seconds: 0.2, rate: 8000))
        let high = features.frames(tone([3000], seconds: 0.2, rate: 8000))
        #expect(low.count == features.frameCount(samples: 1600) && low[0].count == 20)
        let middle = low.count / 2
        #expect(low[middle].firstIndex(of: low[middle].max()!)! < high[middle].firstIndex(of: high[middle].max()!)!)
        let up = LogMelSpectrogram.upsample(low, hop: features.hop, samples: 100)
        #expect(up.count == 20 * 100 && up[0] == low[0][0] && up[99] == low[99 / features.hop][0])
    }
}
