import Autodiff
import Foundation
import NeuralNetworks
import Testing
import Tensors

@Suite struct CheckpointTests {
    let directory: String = {
        let path = NSTemporaryDirectory() + "seriatim-checkpoint-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    func sample() -> Checkpoint {
        var rng = RandomGenerator(seed: 1)
        var odd = rng.normalTensor([3, 5])
        odd.scalars[0] = .infinity; odd.scalars[1] = -0.0; odd.scalars[2] = .leastNonzeroMagnitude
        return Checkpoint(tensors: ["a.weight": odd, "b": Tensor(2.5), "empty": .zeros([0, 4])],
                          metadata: ["config": "{\"x\": 1}", "step": "17"])
    }

    @Test func roundTripIsBitExact() throws {
        let path = directory + "/model.safetensors"
        let original = sample()
        try original.write(to: path)
        let loaded = try Checkpoint.read(from: path)
        #expect(loaded.metadata == original.metadata)
        for (name, t) in original.tensors {
            #expect(loaded.tensors[name]!.shape == t.shape)
            #expect(loaded.tensors[name]!.scalars.map(\.bitPattern) == t.scalars.map(\.bitPattern))
        }
        // Nothing but the final file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])
    }

    /// Parses the file with nothing but the safetensors specification.
    @Test func layoutFollowsTheSafetensorsSpecification() throws {
        let bytes = sample().serialized()
        let n = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        #expect(n % 8 == 0)
        let header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<8 + n)) as! [String: Any]
        let entry = header["a.weight"] as! [String: Any]
        #expect(entry["dtype"] as? String == "F32")
        #expect(entry["shape"] as? [Int] == [3, 5])
        let offsets = entry["data_offsets"] as! [Int]
        let data = bytes.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
        let floats = data.withUnsafeBytes { raw in (0..<15).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self) } }
        #expect(floats.map { Float(bitPattern: UInt32(littleEndian: $0)) }.map(\.bitPattern) == sample().tensors["a.weight"]!.scalars.map(\.bitPattern))
        #expect((header["__metadata__"] as! [String: String])["step"] == "17")
    }

    @Test func corruptFilesAreRejectedWithTheirPath() throws {
        let path = directory + "/bad.safetensors"
        var bytes = sample().serialized()
        bytes[bytes.count - 3] ^= 0xFF  // flipped bit in the data
        try bytes.write(to: URL(fileURLWithPath: path))
        expectCorrupt(path, mentioning: "checksum")

        try sample().serialized().prefix(40).write(to: URL(fileURLWithPath: path))
        expectCorrupt(path, mentioning: "truncated")

        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        expectCorrupt(path, mentioning: "shorter")

        var garbage = Data(count: 8)
        garbage[0] = 4
        garbage.append(contentsOf: Array("nope".utf8))
        try garbage.write(to: URL(fileURLWithPath: path))
        expectCorrupt(path, mentioning: "JSON")

        #expect(throws: CheckpointError.unreadable(path: directory + "/none", reason: "no such file")) {
            try Checkpoint.read(from: directory + "/none")
        }
    }

    func expectCorrupt(_ path: String, mentioning word: String) {
        do {
            _ = try Checkpoint.read(from: path)
            Issue.record("\(path) was accepted")
        } catch let error as CheckpointError {
            guard case .corrupt(let p, let reason) = error else { Issue.record("wrong error \(error)"); return }
            #expect(p == path)
            #expect(reason.contains(word), "\(reason)")
            #expect(error.description.contains(path))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func mismatchedModelsAreRejectedAndLeaveParametersAlone() throws {
        var rng = RandomGenerator(seed: 2)
        let layer = Linear(inputs: 3, outputs: 2, generator: &rng)
        var checkpoint = Checkpoint()
        checkpoint.store(layer.parameters)
        let wider = Linear(inputs: 4, outputs: 2, generator: &rng)
        let before = wider.weight.value
        #expect(throws: CheckpointError.shapeMismatch(path: "p", name: "weight", expected: [2, 4], found: [2, 3])) {
            try checkpoint.load(into: wider.parameters, path: "p")
        }
        #expect(wider.weight.value == before)
        checkpoint.tensors["bias"] = nil
        #expect(throws: CheckpointError.missingTensor(path: "p", name: "bias")) {
            try checkpoint.load(into: layer.parameters, path: "p")
        }
    }

    @Test func otherDTypesAreRejected() throws {
        let json = #"{"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}   "#
        var bytes = Data()
        var n = UInt64(json.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(json.utf8))
        bytes.append(contentsOf: [0, 0])
        #expect(throws: CheckpointError.unsupportedDType(path: "f", name: "x", dtype: "F16")) { try Checkpoint.parse(bytes, path: "f") }
    }

    /// Training 2N steps equals training N, saving everything, loading into fresh objects and training N more.
    @Test func optimizerAndGeneratorStateResumeExactly() throws {
        func makeModel() -> Linear { var rng = RandomGenerator(seed: 9); return Linear(inputs: 3, outputs: 2, generator: &rng) }
        func train(_ model: Linear, _ adam: Adam, _ rng: inout RandomGenerator, steps: Int) {
            for _ in 0..<steps {
                let x = Variable(rng.normalTensor([4, 3]))
                let loss = mean(tanh(model(x)) * tanh(model(x)))
                loss.backward()
                adam.update(model.parameters)
                model.zeroGradients()
            }
        }
        let straight = makeModel(), straightAdam = Adam(learningRate: 0.01)
        var straightRNG = RandomGenerator(seed: 5)
        train(straight, straightAdam, &straightRNG, steps: 20)

        let first = makeModel(), firstAdam = Adam(learningRate: 0.01)
        var firstRNG = RandomGenerator(seed: 5)
        train(first, firstAdam, &firstRNG, steps: 10)
        var checkpoint = Checkpoint()
        checkpoint.store(first.parameters)
        checkpoint.store(firstAdam)
        checkpoint.store(firstRNG, key: "rng")
        let path = directory + "/resume.safetensors"
        try checkpoint.write(to: path)

        let loaded = try Checkpoint.read(from: path)
        let resumed = makeModel(), resumedAdam = Adam(learningRate: 0.01)
        try loaded.load(into: resumed.parameters, path: path)
        try loaded.restore(resumedAdam, path: path)
        var resumedRNG = try loaded.generator("rng", path: path)
        train(resumed, resumedAdam, &resumedRNG, steps: 10)
        #expect(resumed.weight.value.scalars.map(\.bitPattern) == straight.weight.value.scalars.map(\.bitPattern))
        #expect(resumed.bias!.value.scalars.map(\.bitPattern) == straight.bias!.value.scalars.map(\.bitPattern))
    }
}
