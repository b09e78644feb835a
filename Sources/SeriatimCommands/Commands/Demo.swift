import ArgumentParser
import Autodiff
import NeuralNetworks
import Tensors

/// A tiny end-to-end training run that shows the engine working: a 2-16-1 tanh network
/// fitted to a noisy sine with Adam, printing the loss as it falls.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a tiny network and print its loss falling.")

    @Option(help: "Training steps.") var steps = 400
    @Option(help: "Random seed.") var seed: UInt64 = 1

    func run() throws {
        var rng = RandomGenerator(seed: seed)
        let hidden = Linear(inputs: 1, outputs: 16, generator: &rng)
        let output = Linear(inputs: 16, outputs: 1, generator: &rng)
        let parameters = prefixed("hidden", hidden.parameters) + prefixed("output", output.parameters)
        let x = rng.uniformTensor([128, 1], low: -3, high: 3)
        let y = Tensor(shape: [128, 1], scalars: x.scalars.map { sin($0) + 0.05 * rng.normal() })
        let adam = Adam(learningRate: 0.02)
        print("demo: fitting y = sin(x) + noise with a 1-16-1 tanh network (\(hidden.parameterCount + output.parameterCount) parameters), Adam")
        var first: Float = 0, last: Float = 0
        for step in 1...steps {
            let error = output(tanh(hidden(Variable(x)))) - Variable(y)
            let loss = mean(error * error)
            if step == 1 { first = loss.value.scalar }
            last = loss.value.scalar
            loss.backward()
            adam.update(parameters)
            for p in parameters { p.variable.zeroGradient() }
            if step == 1 || step % max(1, steps / 10) == 0 {
                print("step \(String(step).leftPad(5))  mean squared error \(String(format: "%.5f", loss.value.scalar))")
            }
        }
        print("loss fell from \(String(format: "%.4f", first)) to \(String(format: "%.4f", last)) (noise floor ≈ 0.0025)")
    }
}

extension String {
    func leftPad(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}

import Foundation
