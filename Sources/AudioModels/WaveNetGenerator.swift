import AudioFiles
import Autodiff
import Autoregressive
import Foundation
import Tensors

/// What conditions a generated clip.
public struct GenerationConditions {
    /// Speaker index per stream (models with speakers).
    public var speakers: [Int]?
    /// Local-condition frames `[frames][bands]` shared by all streams (models with local conditioning).
    public var localFrames: [[Float]]?
    /// Samples fed through the model before generation starts (teacher forcing).
    public var prime: [Float]?

    public init(speakers: [Int]? = nil, localFrames: [[Float]]? = nil, prime: [Float]? = nil) {
        self.speakers = speakers; self.localFrames = localFrames; self.prime = prime
    }
}

/// Sample-by-sample generation with per-layer queues (`IncrementalStack`): each new sample costs one
/// position's work per layer. Streams are independent, each with its own random generator (split
/// from the caller's in stream order), so they are spread over the cores in groups with identical
/// results. Nothing is allocated per step.
public final class WaveNetGenerator {
    public let model: WaveNet
    public let streams: Int
    let conditions: GenerationConditions

    public init(model: WaveNet, streams: Int, conditions: GenerationConditions = GenerationConditions()) {
        self.model = model
        self.streams = streams
        self.conditions = conditions
        if model.speakerTable != nil, let ids = conditions.speakers {
            precondition(ids.count == streams, "WaveNetGenerator: \(ids.count) speakers for \(streams) streams")
        }
    }

    /// Generates `count` new samples per stream (after any prime), calling `progress` with the
    /// number of samples done now and then. Returns `[streams][count]` samples in [−1, 1].
    /// - Parameter record: receives the network output for each new sample, `[streams, outputChannels]`
    ///   (recording keeps all streams in one group).
    public func generate(count: Int, temperature: Float = 1, generator: inout RandomGenerator,
                         progress: ((Int) -> Void)? = nil, record: (([Float]) -> Void)? = nil) -> [[Float]] {
        var generators = (0..<streams).map { _ in generator.split() }
        let groupCount = record == nil ? min(streams, Parallel.workerCount) : 1
        let groups: [[Int]] = (0..<groupCount).map { g in Array(stride(from: g, to: streams, by: groupCount)) }
        var results = [[Float]](repeating: [], count: streams)
        if groupCount == 1 {
            let group = StreamGroup(model: model, streams: groups[0], conditions: conditions)
            let out = group.run(count: count, temperature: temperature, generators: &generators, progress: progress, record: record)
            for (i, s) in groups[0].enumerated() { results[s] = out[i] }
            return results
        }
        let model = self.model, conditions = self.conditions
        nonisolated(unsafe) var shared = (results: results, generators: generators)
        let lock = NSLock()
        nonisolated(unsafe) let report = progress
        Parallel.forEach(groupCount) { g in
            let indices = groups[g]
            var own = indices.map { shared.generators[$0] }
            let out = StreamGroup(model: model, streams: indices, conditions: conditions)
                .run(count: count, temperature: temperature, generators: &own, progress: g == 0 ? report : nil, record: nil)
            lock.lock()
            for (i, s) in indices.enumerated() { shared.results[s] = out[i] }
            lock.unlock()
        }
        return shared.results
    }
}

/// The streams one core generates: a cache and buffers sized for them.
final class StreamGroup {
    let model: WaveNet
    let indices: [Int]
    let cache: IncrementalStack
    let conditions: GenerationConditions
    private var input: [Float]
    private var output: [Float]
    private var local: [Float]

    init(model: WaveNet, streams indices: [Int], conditions: GenerationConditions) {
        self.model = model
        self.indices = indices
        self.conditions = conditions
        let c = model.configuration
        let streams = indices.count
        var global: Tensor? = nil
        if let table = model.speakerTable {
            let ids = conditions.speakers.map { all in indices.map { all[$0] } } ?? [Int](repeating: 0, count: streams)
            global = Kernels.embedding(table.table.value, indices: ids)
        }
        cache = IncrementalStack(model.stack, streams: streams, global: global)
        input = [Float](repeating: 0, count: streams * c.inputChannels)
        output = [Float](repeating: 0, count: streams * c.outputChannels)
        local = [Float](repeating: 0, count: streams * c.localBands)
    }

    func run(count: Int, temperature: Float, generators: inout [RandomGenerator],
             progress: ((Int) -> Void)?, record: (([Float]) -> Void)?) -> [[Float]] {
        let c = model.configuration
        let streams = indices.count
        let prime = conditions.prime ?? []
        let total = prime.count + count
        var result = [[Float]](repeating: [Float](repeating: 0, count: count), count: streams)
        let muLaw = c.muLaw
        let channels = c.inputChannels, outputs = c.outputChannels
        var previousClass = [Int](repeating: -1, count: streams)
        let bands = c.localBands
        let hop = c.localHop
        let mixture: DiscretizedLogisticMixture? = {
            if case .logisticMixture(let k) = c.output { return DiscretizedLogisticMixture(components: k, bits: 16) }
            return nil
        }()
        for position in 0..<total {
            if bands > 0, let frames = conditions.localFrames {
                let frame = frames[min(frames.count - 1, position / hop)]
                for s in 0..<streams { for b in 0..<bands { local[s * bands + b] = frame[b] } }
            }
            input.withUnsafeBufferPointer { ip in
                output.withUnsafeMutableBufferPointer { op in
                    if bands > 0 {
                        local.withUnsafeBufferPointer { lp in cache.step(previousInput: ip.baseAddress!, local: lp.baseAddress!, output: op.baseAddress!) }
                    } else {
                        cache.step(previousInput: ip.baseAddress!, output: op.baseAddress!)
                    }
                }
            }
            if position >= prime.count { record?(output) }
            for s in 0..<streams {
                let value: Float
                if position < prime.count {
                    value = prime[position]
                } else if let mixture {
                    value = output.withUnsafeBufferPointer { mixture.sampleOne($0.baseAddress! + s * outputs, temperature: temperature, generator: &generators[s]) }
                } else {
                    let k = output.withUnsafeBufferPointer {
                        generators[s].categorical(logits: UnsafeBufferPointer(rebasing: $0[(s * outputs)..<((s + 1) * outputs)]), temperature: temperature)
                    }
                    value = muLaw.decode(k)
                }
                if position >= prime.count { result[s][position - prime.count] = value }
                // The sample becomes the next step's input.
                if mixture != nil {
                    input[s] = WaveNet.quantize16(value)
                } else {
                    if previousClass[s] >= 0 { input[s * channels + previousClass[s]] = 0 }
                    let k = muLaw.encode(value)
                    input[s * channels + k] = 1
                    previousClass[s] = k
                }
            }
            if let progress, position >= prime.count, (position - prime.count + 1) % 1000 == 0 || position == total - 1 {
                progress(position - prime.count + 1)
            }
        }
        return result
    }
}

extension WaveNetGenerator {
    /// Naive generation for comparison: every new sample runs the full forward pass over the last
    /// receptive field of samples. Same stream of random numbers as `generate`.
    /// - Parameter record: receives the output used for each sample, `[streams, outputChannels]`.
    public static func generateNaive(model: WaveNet, streams: Int, count: Int, conditions: GenerationConditions = GenerationConditions(),
                                     temperature: Float = 1, generator: inout RandomGenerator,
                                     record: (([Float]) -> Void)? = nil) -> [[Float]] {
        let c = model.configuration
        let field = c.receptiveField
        let prime = conditions.prime ?? []
        var generators = (0..<streams).map { _ in generator.split() }
        var history = [[Float]](repeating: prime, count: streams)
        var result = [[Float]](repeating: [], count: streams)
        let outputs = c.outputChannels
        let mixture: DiscretizedLogisticMixture? = {
            if case .logisticMixture(let k) = c.output { return DiscretizedLogisticMixture(components: k, bits: 16) }
            return nil
        }()
        // Prime positions are teacher-forced, so only the new positions need the network.
        for position in prime.count..<(prime.count + count) {
            // Window ending at `position`: the last `field` samples, then the slot being predicted
            // (whose own input the type-A input layer never sees). Near the start the window begins
            // at sample 0, so that every layer zero-pads exactly like the cached queues.
            let start = max(0, position - field)
            let length = position - start + 1
            let windows: [[Float]] = history.map { h in (start...position).map { $0 < position ? h[$0] : 0 } }
            let input = model.inputTensor(windows)
            var local: Tensor? = nil
            if c.localBands > 0, let frames = conditions.localFrames {
                let (bands, hop) = (c.localBands, c.localHop)
                var values = [Float](repeating: 0, count: streams * bands * length)
                for s in 0..<streams { for b in 0..<bands { for i in 0..<length {
                    values[(s * bands + b) * length + i] = frames[min(frames.count - 1, (start + i) / hop)][b]
                } } }
                local = Tensor(shape: [streams, bands, length], scalars: values)
            }
            let out = GradientMode.withoutGradients { model(input, speakers: conditions.speakers, local: local).value }
            var last = [Float](repeating: 0, count: streams * outputs)
            for s in 0..<streams { for o in 0..<outputs { last[s * outputs + o] = out.scalars[(s * outputs + o) * length + length - 1] } }
            record?(last)
            for s in 0..<streams {
                let value: Float
                if let mixture {
                    value = last.withUnsafeBufferPointer { mixture.sampleOne($0.baseAddress! + s * outputs, temperature: temperature, generator: &generators[s]) }
                } else {
                    let k = last.withUnsafeBufferPointer {
                        generators[s].categorical(logits: UnsafeBufferPointer(rebasing: $0[(s * outputs)..<((s + 1) * outputs)]), temperature: temperature)
                    }
                    value = c.muLaw.decode(k)
                }
                history[s].append(value)
                result[s].append(value)
            }
        }
        return result
    }
}

extension DiscretizedLogisticMixture {
    /// One draw from the parameters at `p` (`3K` numbers: logits, means, log-scales), no allocation.
    func sampleOne(_ p: UnsafePointer<Float>, temperature: Float, generator: inout RandomGenerator) -> Float {
        let k = components
        let c = generator.categorical(logits: UnsafeBufferPointer(start: p, count: k), temperature: temperature > 0 ? 1 : 0)
        let u = min(max(generator.uniform(), 1e-5), 1 - 1e-5)
        let scale = Foundation.exp(max(p[2 * k + c], -7)) * temperature
        let v = min(max(p[k + c] + scale * (Foundation.log(u) - Foundation.log(1 - u)), -1), 1)
        return WaveNet.quantize16(v)
    }
}
