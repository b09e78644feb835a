import Autodiff
import Foundation
import Testing
import Tensors

@Suite struct GraphTests {
    /// Counted in a child process (an exit test), so that graphs built by tests running in
    /// parallel cannot disturb the count.
    @Test func backwardLeavesNoGraphBehind() async {
        await #expect(processExitsWith: .success) {
            let before = Variable.liveGraphNodes
            let w = Variable(Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]), requiresGradient: true)
            do {
                let x = Variable(Tensor(shape: [3, 2], scalars: [1, 0, 0, 1, 1, 1]))
                var h = tanh(matmul(x, w))
                for _ in 0..<10 { h = sigmoid(h) * h + h }
                let loss = sum(h)
                guard Variable.liveGraphNodes == before + 33 else { exit(1) }
                loss.backward()
                guard Variable.liveGraphNodes == before else { exit(2) }
            }
            guard Variable.liveGraphNodes == before, w.gradient != nil else { exit(3) }
            // A graph dropped without backward() is freed too.
            do { _ = sum(exp(w) * w) }
            guard Variable.liveGraphNodes == before else { exit(4) }
            // No-gradient mode records nothing.
            let y = GradientMode.withoutGradients { sum(tanh(w) * w) }
            guard !y.requiresGradient, Variable.liveGraphNodes == before else { exit(5) }
            exit(0)
        }
    }

    @Test func gradientsAccumulateAcrossBackwardCalls() {
        let w = Variable(Tensor(shape: [2], scalars: [1, 2]), requiresGradient: true)
        sum(w * w).backward()
        #expect(w.gradient!.scalars == [2, 4])
        sum(w * w).backward()
        #expect(w.gradient!.scalars == [4, 8])
        w.zeroGradient()
        #expect(w.gradient == nil)
    }

    @Test func sharedSubexpressionGetsBothContributions() {
        let w = Variable(Tensor(3), requiresGradient: true)
        let y = w * w
        (y + y * w).backward()  // d/dw (w² + w³) = 2w + 3w² = 33
        #expect(w.gradient!.scalar == 33)
    }

    @Test func noGradientModeIsScoped() {
        let w = Variable(Tensor.ones([4]), requiresGradient: true)
        let y = GradientMode.withoutGradients { sum(tanh(w) * w) }
        #expect(!y.requiresGradient)
        #expect(GradientMode.isEnabled)
        #expect(sum(w).requiresGradient)
    }

    @Test func constantsReceiveNoGradient() {
        let c = Variable(Tensor.ones([2]))
        let w = Variable(Tensor.ones([2]), requiresGradient: true)
        sum(c * w).backward()
        #expect(c.gradient == nil)
        #expect(w.gradient!.scalars == [1, 1])
    }
}

@Suite struct ClassConvolutionTests {
    /// The lookup form gives the same numbers as the dense convolution of the one-hot sequence.
    @Test func lookupsEqualTheOneHotConvolution() {
        var rng = RandomGenerator(seed: 5)
        let classes: [[Int32]] = (0..<3).map { _ in (0..<17).map { _ in Int32(rng.integer(below: 6)) } }
        let weight = rng.normalTensor([2, 4, 6]), bias = rng.normalTensor([4])
        var oneHot = Tensor.zeros([3, 6, 17])
        for b in 0..<3 { for t in 0..<17 { oneHot[b, Int(classes[b][t]), t] = 1 } }
        let dense = Kernels.causalConv1D(oneHot, weight: weight, bias: bias, dilation: 3, offset: 1)
        let lookup = GradientMode.withoutGradients {
            causalConv1D(classes: classes, weight: Variable(weight), bias: Variable(bias), dilation: 3, offset: 1).value
        }
        #expect(lookup.maxAbsoluteDifference(dense) < 1e-5)
    }
}
