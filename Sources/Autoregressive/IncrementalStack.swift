import NeuralNetworks
import Tensors

/// A ring buffer holding, for each of `streams` streams, the last `capacity` vectors of `channels`
/// floats pushed into it — one causal layer's input history (Paine et al. 2016, "Fast WaveNet").
/// Vectors never pushed read as zeros, exactly like the zero padding of the full forward pass.
public final class CausalQueue {
    public let capacity: Int, streams: Int, channels: Int
    private let storage: UnsafeMutablePointer<Float>
    private var newest = 0

    public init(capacity: Int, streams: Int, channels: Int) {
        precondition(capacity >= 1 && streams >= 1 && channels >= 1, "CausalQueue: capacity \(capacity), streams \(streams), channels \(channels)")
        self.capacity = capacity; self.streams = streams; self.channels = channels
        storage = .allocate(capacity: capacity * streams * channels)
        reset()
    }

    deinit { storage.deallocate() }

    /// Forgets everything (all history reads as zeros).
    public func reset() {
        storage.initialize(repeating: 0, count: capacity * streams * channels)
        newest = capacity - 1
    }

    /// Appends one vector per stream (`[streams, channels]`), dropping the oldest.
    @inlinable @inline(__always)
    public func push(_ vectors: UnsafePointer<Float>) {
        let slot = advance()
        slot.update(from: vectors, count: streams * channels)
    }

    /// The slot for the next vector, to be written in place (`[streams, channels]`).
    @usableFromInline
    func advance() -> UnsafeMutablePointer<Float> {
        newest = newest + 1 == capacity ? 0 : newest + 1
        return storage + newest * streams * channels
    }

    /// The vectors pushed `lag` pushes ago (0 = the newest), `[streams, channels]`.
    @inlinable @inline(__always)
    public func vectors(lag: Int) -> UnsafePointer<Float> {
        UnsafePointer(slot(lag: lag))
    }

    @usableFromInline
    func slot(lag: Int) -> UnsafeMutablePointer<Float> {
        var index = newest - lag
        if index < 0 { index += capacity }
        return storage + index * streams * channels
    }
}

/// Cached step-by-step evaluation of a `DilatedCausalStack`: each step costs one position's work
/// per layer instead of a pass over the whole history. All buffers are allocated up front; a step
/// allocates nothing.
///
/// Step p consumes the input at position p − 1 (zeros for p = 0) and the local condition at p,
/// and produces the stack's output at p — the same numbers as the full forward pass.
public final class IncrementalStack {
    public let configuration: DilatedStackConfiguration
    public let streams: Int

    // Weights transposed to [inputs, outputs] per tap, so each step streams them row by row.
    private let inputTaps: [[Float]]
    private let inputBias: [Float]
    private let dilatedTaps: [[[Float]]]
    private let gateBias: [[Float]]  // per layer, [streams, 2G]: dilated bias + global projection
    private let localWeights: [[Float]]
    private let residualWeights: [[Float]], residualBiases: [[Float]]
    private let skipWeights: [[Float]], skipBias: [Float]
    private let head1Weights: [Float], head1Bias: [Float]
    private let head2Weights: [Float], head2Bias: [Float]

    private let inputQueue: CausalQueue
    private let layerQueues: [CausalQueue]
    private let scratch: UnsafeMutablePointer<Float>
    private let h, a, z, skip, hidden: UnsafeMutablePointer<Float>

    /// - Parameters:
    ///   - global: `[streams, globalConditionChannels]` when the stack has global conditioning.
    public init(_ stack: DilatedCausalStack, streams: Int, global: Tensor? = nil) {
        let c = stack.configuration
        configuration = c
        self.streams = streams
        precondition((global != nil) == (c.globalConditionChannels > 0), "IncrementalStack: global condition does not match the configuration")
        if let global { precondition(global.shape == [streams, c.globalConditionChannels], "IncrementalStack: global \(global.shape) needs [\(streams), \(c.globalConditionChannels)]") }

        func taps(_ conv: Conv1D) -> [[Float]] {
            let w = conv.weight.value
            let (k, o, i) = (w.shape[0], w.shape[1], w.shape[2])
            return (0..<k).map { tap in
                var t = [Float](repeating: 0, count: i * o)
                for oc in 0..<o { for ic in 0..<i { t[ic * o + oc] = w.scalars[(tap * o + oc) * i + ic] } }
                return t
            }
        }
        func bias(_ conv: Conv1D) -> [Float] { conv.bias?.value.scalars ?? [Float](repeating: 0, count: conv.weight.shape[1]) }

        inputTaps = taps(stack.input)
        inputBias = bias(stack.input)
        dilatedTaps = stack.layers.map { taps($0.dilated) }
        gateBias = stack.layers.map { layer in
            var b = [Float]()
            let base = bias(layer.dilated)
            for s in 0..<streams {
                var row = base
                if let global, let projection = layer.global {
                    let w = projection.weight.value  // [2G, Cg]
                    for o in 0..<row.count {
                        var acc: Float = 0
                        for i in 0..<c.globalConditionChannels { acc += w.scalars[o * c.globalConditionChannels + i] * global.scalars[s * c.globalConditionChannels + i] }
                        row[o] += acc
                    }
                }
                b += row
            }
            return b
        }
        localWeights = stack.layers.map { $0.local.map { taps($0)[0] } ?? [] }
        residualWeights = stack.layers.map { $0.residual.map { taps($0)[0] } ?? [] }
        residualBiases = stack.layers.map { $0.residual.map(bias) ?? [] }
        // All skip projections side by side: skip = [W₁ … W_L] · [z₁; …; z_L], one product per step.
        var skipAll = [Float]()
        var skipBiasSum = [Float](repeating: 0, count: c.skipChannels)
        for layer in stack.layers {
            skipAll += taps(layer.skip)[0]
            let b = bias(layer.skip)
            for i in 0..<c.skipChannels { skipBiasSum[i] += b[i] }
        }
        skipWeights = [skipAll]
        skipBias = skipBiasSum
        head1Weights = taps(stack.head1)[0]; head1Bias = bias(stack.head1)
        head2Weights = taps(stack.head2)[0]; head2Bias = bias(stack.head2)

        inputQueue = CausalQueue(capacity: c.inputKernelWidth, streams: streams, channels: c.inputChannels)
        layerQueues = c.dilations.map { CausalQueue(capacity: (c.kernelWidth - 1) * $0 + 1, streams: streams, channels: c.residualChannels) }
        let layersCount = c.dilations.count
        let sizes = [c.residualChannels, 2 * c.gateChannels, layersCount * c.gateChannels, c.skipChannels, c.headChannels]
        scratch = .allocate(capacity: streams * sizes.reduce(0, +))
        scratch.initialize(repeating: 0, count: streams * sizes.reduce(0, +))
        var offset = 0
        var pointers: [UnsafeMutablePointer<Float>] = []
        for size in sizes { pointers.append(scratch + offset); offset += streams * size }
        (h, a, z, skip, hidden) = (pointers[0], pointers[1], pointers[2], pointers[3], pointers[4])
    }

    deinit { scratch.deallocate() }

    /// Clears the history of every stream.
    public func reset() {
        inputQueue.reset()
        for q in layerQueues { q.reset() }
    }

    /// One step for all streams.
    /// - Parameters:
    ///   - previousInput: `[streams, inputChannels]`, the input at position p − 1.
    ///   - local: `[streams, localConditionChannels]`, the local condition at position p (when configured).
    ///   - output: receives `[streams, outputChannels]`, the stack output at position p.
    public func step(previousInput: UnsafePointer<Float>, local: UnsafePointer<Float>? = nil,
                     output: UnsafeMutablePointer<Float>) {
        let c = configuration
        let (r, g2, g, s) = (c.residualChannels, 2 * c.gateChannels, c.gateChannels, c.skipChannels)
        let layerCount = c.dilations.count
        inputQueue.push(previousInput)
        // Input convolution (type A): tap k reads the input pushed (K₀ − 1 − k) steps ago.
        for stream in 0..<streams { (h + stream * r).update(from: inputBias, count: r) }
        for (k, w) in inputTaps.enumerated() {
            w.withUnsafeBufferPointer { wp in
                Kernels.accumulateProduct(rows: streams, inputs: c.inputChannels, outputs: r,
                                          x: inputQueue.vectors(lag: c.inputKernelWidth - 1 - k), xStride: c.inputChannels,
                                          w: wp.baseAddress!, out: h, outStride: r)
            }
        }
        for l in 0..<layerCount {
            let queue = layerQueues[l]
            queue.push(h)
            gateBias[l].withUnsafeBufferPointer { a.update(from: $0.baseAddress!, count: streams * g2) }
            for (k, w) in dilatedTaps[l].enumerated() {
                w.withUnsafeBufferPointer { wp in
                    Kernels.accumulateProduct(rows: streams, inputs: r, outputs: g2,
                                              x: queue.vectors(lag: (c.kernelWidth - 1 - k) * c.dilations[l]), xStride: r,
                                              w: wp.baseAddress!, out: a, outStride: g2)
                }
            }
            if let local, !localWeights[l].isEmpty {
                localWeights[l].withUnsafeBufferPointer { wp in
                    Kernels.accumulateProduct(rows: streams, inputs: c.localConditionChannels, outputs: g2,
                                              x: local, xStride: c.localConditionChannels, w: wp.baseAddress!, out: a, outStride: g2)
                }
            }
            // z for this layer goes into its block of the stacked [streams, L·G] buffer.
            for stream in 0..<streams {
                Kernels.gatedForward(count: g, filter: a + stream * g2, gate: a + stream * g2 + g,
                                     output: z + stream * layerCount * g + l * g)
            }
            if !residualWeights[l].isEmpty {
                for stream in 0..<streams {
                    let hr = h + stream * r
                    residualBiases[l].withUnsafeBufferPointer { bp in for i in 0..<r { hr[i] += bp[i] } }
                }
                residualWeights[l].withUnsafeBufferPointer { wp in
                    Kernels.accumulateProduct(rows: streams, inputs: g, outputs: r, x: z + l * g, xStride: layerCount * g,
                                              w: wp.baseAddress!, out: h, outStride: r)
                }
            }
        }
        for stream in 0..<streams { (skip + stream * s).update(from: skipBias, count: s) }
        skipWeights[0].withUnsafeBufferPointer { wp in
            Kernels.accumulateProduct(rows: streams, inputs: layerCount * g, outputs: s, x: z, xStride: layerCount * g,
                                      w: wp.baseAddress!, out: skip, outStride: s)
        }
        head(output)
    }

    private func head(_ output: UnsafeMutablePointer<Float>) {
        let c = configuration
        let (s, hc, o) = (c.skipChannels, c.headChannels, c.outputChannels)
        for i in 0..<(streams * s) { skip[i] = max(skip[i], 0) }
        for stream in 0..<streams { (hidden + stream * hc).update(from: head1Bias, count: hc) }
        head1Weights.withUnsafeBufferPointer { wp in
            Kernels.accumulateProduct(rows: streams, inputs: s, outputs: hc, x: skip, xStride: s, w: wp.baseAddress!, out: hidden, outStride: hc)
        }
        for i in 0..<(streams * hc) { hidden[i] = max(hidden[i], 0) }
        for stream in 0..<streams { (output + stream * o).update(from: head2Bias, count: o) }
        head2Weights.withUnsafeBufferPointer { wp in
            Kernels.accumulateProduct(rows: streams, inputs: hc, outputs: o, x: hidden, xStride: hc, w: wp.baseAddress!, out: output, outStride: o)
        }
    }

    /// Convenience form of `step` on tensors: `previousInput` `[streams, inputChannels]`,
    /// `local` `[streams, localConditionChannels]`; returns `[streams, outputChannels]`.
    public func step(previousInput: Tensor, local: Tensor? = nil) -> Tensor {
        precondition(previousInput.shape == [streams, configuration.inputChannels], "IncrementalStack.step: input \(previousInput.shape)")
        return Tensor(shape: [streams, configuration.outputChannels]) { out in
            previousInput.withUnsafeBufferPointer { ip in
                if let local {
                    local.withUnsafeBufferPointer { lp in step(previousInput: ip.baseAddress!, local: lp.baseAddress!, output: out.baseAddress!) }
                } else {
                    step(previousInput: ip.baseAddress!, output: out.baseAddress!)
                }
            }
        }
    }
}
