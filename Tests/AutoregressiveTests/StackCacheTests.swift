import Autodiff
import Autoregressive
import Testing
import Tensors

@Suite struct StackCacheTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let kernelWidth: Int, dilations: [Int], inputKernelWidth: Int, conditioned: Bool
        var testDescription: String { "k\(kernelWidth) d\(dilations) in\(inputKernelWidth)\(conditioned ? " conditioned" : "")" }
    }

    @Test(arguments: [
        Case(kernelWidth: 2, dilations: [1, 2, 4, 8], inputKernelWidth: 2, conditioned: false),
        Case(kernelWidth: 3, dilations: [1, 3, 2, 5], inputKernelWidth: 1, conditioned: false),
        Case(kernelWidth: 2, dilations: [1, 2, 4, 1, 2, 4], inputKernelWidth: 3, conditioned: true),
        Case(kernelWidth: 4, dilations: [2, 7], inputKernelWidth: 2, conditioned: true),
    ])
    func cachedStepsEqualTheFullForwardPass(testCase: Case) {
        var rng = RandomGenerator(seed: 7)
        let config = DilatedStackConfiguration(
            inputChannels: 5, residualChannels: 8, gateChannels: 6, skipChannels: 16, headChannels: 12, outputChannels: 5,
            kernelWidth: testCase.kernelWidth, dilations: testCase.dilations, inputKernelWidth: testCase.inputKernelWidth,
            globalConditionChannels: testCase.conditioned ? 3 : 0, localConditionChannels: testCase.conditioned ? 2 : 0)
        let stack = DilatedCausalStack(config, generator: &rng)
        let (streams, time) = (3, 40)
        let x = rng.normalTensor([streams, 5, time])
        let global = testCase.conditioned ? rng.normalTensor([streams, 3]) : nil
        let local = testCase.conditioned ? rng.normalTensor([streams, 2, time]) : nil
        let full = GradientMode.withoutGradients {
            stack(Variable(x), global: global.map { Variable($0) }, local: local.map { Variable($0) }).value
        }
        let cache = IncrementalStack(stack, streams: streams, global: global)
        var worst: Float = 0
        for t in 0..<time {
            // Input at t − 1 (zeros at t = 0) and the local condition at t, per stream.
            let previous = t == 0 ? Tensor.zeros([streams, 5]) : Kernels.slice(x, axis: 2, range: (t - 1)..<t).reshaped([streams, 5])
            let condition = local.map { Kernels.slice($0, axis: 2, range: t..<(t + 1)).reshaped([streams, 2]) }
            let step = cache.step(previousInput: previous, local: condition)
            let expected = Kernels.slice(full, axis: 2, range: t..<(t + 1)).reshaped([streams, 5])
            worst = max(worst, step.maxAbsoluteDifference(expected))
        }
        #expect(worst <= 1e-4)
        // After a reset the cache starts again from silence.
        cache.reset()
        let again = cache.step(previousInput: .zeros([streams, 5]),
                               local: local.map { Kernels.slice($0, axis: 2, range: 0..<1).reshaped([streams, 2]) })
        #expect(again.maxAbsoluteDifference(Kernels.slice(full, axis: 2, range: 0..<1).reshaped([streams, 5])) <= 1e-4)
    }

    @Test func receptiveFieldArithmetic() {
        let reference = DilatedStackConfiguration(inputChannels: 256)
        #expect(reference.dilations.count == 20 && reference.dilations.last == 512)
        #expect(reference.receptiveField == 2 + 2 * 1023)
        let wide = DilatedStackConfiguration(inputChannels: 1, kernelWidth: 3, dilations: [1, 3, 9], inputKernelWidth: 1)
        #expect(wide.receptiveField == 1 + 2 * 13)
        #expect(DilatedStackConfiguration(inputChannels: 1, kernelWidth: 1).validationError() != nil)
    }

    @Test func queueReturnsWhatWasPushed() {
        let queue = CausalQueue(capacity: 3, streams: 2, channels: 1)
        #expect(queue.vectors(lag: 2)[0] == 0)
        for v in 1...5 { [Float(v), Float(-v)].withUnsafeBufferPointer { queue.push($0.baseAddress!) } }
        #expect(queue.vectors(lag: 0)[0] == 5 && queue.vectors(lag: 0)[1] == -5)
        #expect(queue.vectors(lag: 2)[0] == 3)
    }
}
