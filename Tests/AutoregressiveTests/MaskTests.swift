import Autodiff
import Autoregressive
import Testing
import Tensors

@Suite struct MaskTests {
    @Test func orderingsAndDegrees() {
        #expect(Ordering.natural.degrees(4) == [1, 2, 3, 4])
        #expect(Ordering.reversed.degrees(4) == [4, 3, 2, 1])
        #expect(Ordering.explicit([2, 0, 1]).degrees(3) == [2, 3, 1])
        #expect(Ordering.random(seed: 5).permutation(10) == Ordering.random(seed: 5).permutation(10))
        #expect(Ordering.random(seed: 5).permutation(10).sorted() == Array(0..<10))
        #expect(Ordering.random(seed: 5).permutation(10) != Ordering.random(seed: 6).permutation(10))
    }

    @Test func masksFollowTheDegreeRule() {
        var rng = RandomGenerator(seed: 1)
        let set = MaskSet(inputDegrees: Ordering.random(seed: 3).degrees(6), hiddenSizes: [9, 7], outputsPerDimension: 2,
                          hiddenDegrees: .random, generator: &rng)
        #expect(set.masks.map(\.shape) == [[9, 6], [7, 9], [12, 7]])
        for (l, mask) in set.masks.enumerated() {
            let below = set.degrees[l], above = set.degrees[l + 1]
            let strict = l == set.masks.count - 1
            for o in 0..<above.count { for i in 0..<below.count {
                let allowed = strict ? above[o] > below[i] : above[o] >= below[i]
                #expect(mask[o, i] == (allowed ? 1 : 0))
            } }
        }
        // Hidden degrees stay in 1…D−1.
        #expect(set.degrees[1].allSatisfy { (1...5).contains($0) })
        // Every output reaches only inputs of lower degree.
        let inputDegrees = set.degrees[0]
        for (unit, inputs) in set.reachableInputs().enumerated() {
            #expect(inputs.allSatisfy { inputDegrees[$0] < set.degrees.last![unit] })
        }
    }

    @Test func connectivityCheckFindsUnreachedOutputs() {
        // One random hidden unit: find a draw that gives it degree 4 (of D − 1 = 4). Outputs of
        // degree 2…4 then see no hidden unit at all; output 5 sees it.
        var seed: UInt64 = 0
        var set: MaskSet
        repeat {
            var rng = RandomGenerator(seed: seed)
            set = MaskSet(inputDegrees: [1, 2, 3, 4, 5], hiddenSizes: [1], hiddenDegrees: .random, generator: &rng)
            seed += 1
        } while set.degrees[1] != [4]
        #expect(set.unreachedOutputs() == [1, 2, 3])
        #expect(set.reachableInputs()[4] == [0, 1, 2, 3])
        var rng = RandomGenerator(seed: 1)
        let wide = MaskSet(inputDegrees: [1, 2, 3, 4, 5], hiddenSizes: [20, 20], generator: &rng)
        #expect(wide.unreachedOutputs().isEmpty)
    }

    @Test func rasterMasksForThreeChannels() {
        let a = RasterMask.make(outputs: 3, inputs: 3, kernelSize: 3, type: .a, groups: 3)
        let b = RasterMask.make(outputs: 3, inputs: 3, kernelSize: 3, type: .b, groups: 3)
        // Centre tap: type A lets G see R and B see R, G; type B adds each channel itself.
        for o in 0..<3 { for i in 0..<3 {
            #expect(a[o, i, 1, 1] == (i < o ? 1 : 0))
            #expect(b[o, i, 1, 1] == (i <= o ? 1 : 0))
            #expect(a[o, i, 0, 2] == 1 && a[o, i, 1, 0] == 1 && a[o, i, 1, 2] == 0 && a[o, i, 2, 1] == 0)
        } }
        let single = RasterMask.make(outputs: 1, inputs: 1, kernelSize: 3, type: .a)
        #expect(single.scalars == [1, 1, 1, 1, 0, 0, 0, 0, 0])
    }
}

@Suite struct AutoregressivePropertyTests {
    func randomBinary(_ d: Int, _ rng: inout RandomGenerator) -> Tensor {
        Tensor(shape: [d], scalars: (0..<d).map { _ in rng.bernoulli(0.5) })
    }

    @Test(arguments: [Ordering.natural, .reversed, .random(seed: 11)])
    func maskedMLPHasTheProperty(ordering: Ordering) {
        var rng = RandomGenerator(seed: 2)
        let config = MaskedMLPConfiguration(dimensions: 7, hiddenSizes: [16, 16], maskSets: 3, ordering: ordering, orderAgnostic: true)
        let model = MaskedMLP(config, generator: &rng)
        for set in 0..<3 {
            model.activeMaskSet = set
            let report = checkAutoregressive(model, inputs: [randomBinary(7, &rng), randomBinary(7, &rng)])
            #expect(report.passed, "mask set \(set): \(report)")
            #expect(report.laterChanges.reduce(0, +) > 0)
        }
    }

    @Test func categoricalOutputsAndNoHiddenLayer() {
        var rng = RandomGenerator(seed: 3)
        let fvsbn = MaskedMLP(MaskedMLPConfiguration(dimensions: 6, hiddenSizes: []), generator: &rng)
        #expect(checkAutoregressive(fvsbn, inputs: [randomBinary(6, &rng)]).passed)
        let grey = MaskedMLP(MaskedMLPConfiguration(dimensions: 5, hiddenSizes: [12], classes: 4, ordering: .reversed), generator: &rng)
        let x = Tensor(shape: [5], scalars: [0, 3, 1, 2, 2])
        #expect(checkAutoregressive(grey, inputs: [x], perturb: { Float((Int($0) + 1) % 4) }).passed)
    }

    /// The checker must catch a leak: a layer whose output mask is not strict lets p(x_d) see x_d.
    @Test func checkerCatchesALeak() {
        var rng = RandomGenerator(seed: 4)
        let leaky = MaskSet.mask(outputDegrees: [1, 2, 3], inputDegrees: [1, 2, 3], strict: false)
        let layer = MaskedLinear(inputs: 3, outputs: 3, masks: [leaky], generator: &rng)
        let report = checkAutoregressive(order: [0, 1, 2], inputs: [Tensor(shape: [3], scalars: [1, 0, 1])], perturb: { 1 - $0 }) { x in
            GradientMode.withoutGradients { layer(Variable(x)).value }
        }
        #expect(!report.passed)
        #expect(report.violations.contains { $0.input == 1 && $0.output == 1 })
    }

    /// Dimension (c, h, w) of a C-channel image is generated in raster order, channels within a pixel.
    func rasterOrder(channels: Int, height: Int, width: Int) -> [Int] {
        var order: [Int] = []
        for p in 0..<(height * width) { for c in 0..<channels { order.append(c * height * width + p) } }
        return order
    }

    @Test(arguments: [1, 3])
    func maskedConvolutionStacksHaveTheProperty(channels: Int) {
        var rng = RandomGenerator(seed: 5)
        let (h, w, perGroup) = (4, 5, 2)
        let hidden = channels * perGroup * 2
        let first = MaskedConv2D(inputs: channels, outputs: hidden, kernelSize: 5, type: .a, groups: channels, generator: &rng)
        let second = MaskedConv2D(inputs: hidden, outputs: hidden, kernelSize: 3, type: .b, groups: channels, generator: &rng)
        let third = MaskedConv2D(inputs: hidden, outputs: channels * perGroup, kernelSize: 1, type: .b, groups: channels, generator: &rng)
        let d = channels * h * w
        for depth in 1...3 {
            let report = checkAutoregressive(order: rasterOrder(channels: channels, height: h, width: w),
                                             inputs: [rng.uniformTensor([d])], perturb: { $0 + 1 }) { x in
                GradientMode.withoutGradients {
                    var y = first(Variable(x.reshaped([1, channels, h, w])))
                    if depth >= 2 { y = second(relu(y)) }
                    y = depth >= 3 ? third(relu(y)) : y
                    // [1, C·m, H, W] → [C, m, H·W] → conditionals [D = C·H·W, m]
                    let m = y.shape[1] / channels
                    return Kernels.permute(y.value.reshaped([channels, m, h * w]), [0, 2, 1]).reshaped([d, m])
                }
            }
            #expect(report.passed, "channels \(channels) depth \(depth): \(report)")
            #expect(report.laterChanges.reduce(0, +) > 0)
        }
    }

    @Test(arguments: [false, true])
    func dilatedStackHasTheProperty(conditioned: Bool) {
        var rng = RandomGenerator(seed: 6)
        let config = DilatedStackConfiguration(inputChannels: 1, residualChannels: 4, gateChannels: 3, skipChannels: 5, headChannels: 6,
                                               outputChannels: 2, kernelWidth: 2, dilations: [1, 2, 4], inputKernelWidth: 2,
                                               globalConditionChannels: conditioned ? 2 : 0, localConditionChannels: conditioned ? 3 : 0)
        let stack = DilatedCausalStack(config, generator: &rng)
        let t = 24
        let global = conditioned ? Variable(rng.normalTensor([1, 2])) : nil
        let local = conditioned ? Variable(rng.normalTensor([1, 3, t])) : nil
        let report = checkAutoregressive(order: Array(0..<t), inputs: [rng.normalTensor([t])], perturb: { $0 + 1 }) { x in
            GradientMode.withoutGradients {
                Kernels.transposeLastTwo(stack(Variable(x.reshaped([1, 1, t])), global: global, local: local).value.reshaped([2, t]))
            }
        }
        #expect(report.passed, "\(report)")
        // Within the receptive field (2 + 1 + 2 + 4 = 9) later outputs do react.
        #expect(report.laterChanges[0] == config.receptiveField)
    }
}
