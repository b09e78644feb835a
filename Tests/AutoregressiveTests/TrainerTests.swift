import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Testing
import Tensors

@Suite struct TrainerTests {
    func directory() -> String {
        let path = NSTemporaryDirectory() + "seriatim-trainer-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func makeTask(maskSets: Int = 2) -> DensityEstimationTask<MaskedMLP> {
        var rng = RandomGenerator(seed: 21)
        let bars = BarsAndStripes(size: 3)
        let config = MaskedMLPConfiguration(dimensions: 9, hiddenSizes: [32], maskSets: maskSets, orderAgnostic: true)
        let model = MaskedMLP(config, generator: &rng)
        var task = DensityEstimationTask(model: model, train: bars.sample(count: 300, generator: &rng),
                                         validation: bars.sample(count: 100, generator: &rng),
                                         test: bars.sample(count: 100, generator: &rng),
                                         configurationJSON: canonicalJSON(config))
        // Connectivity-agnostic training: a mask set drawn per step from the trainer's generator.
        task.prepareStep = { model, generator in model.activeMaskSet = generator.integer(below: model.maskSets.count) }
        task.evaluationLogProbability = { model, x in model.ensembleLogProbability(x, maskSets: [0]) }
        return task
    }

    func configuration(steps: Int) -> TrainerConfiguration {
        var c = TrainerConfiguration()
        c.batchSize = 32
        c.steps = steps
        c.evaluateEvery = 7
        c.seed = 3
        c.schedule = LearningRateSchedule(base: 1e-2, warmupSteps: 5, decay: .cosine(totalSteps: steps, minimum: 1e-3))
        c.clipNorm = 5
        return c
    }

    /// 2N steps in one go equal N steps, a stop, and N resumed steps, bit for bit.
    @Test func resumeIsExact() throws {
        let straightTask = makeTask()
        let straight = try Trainer(task: straightTask, optimizer: Adam(), configuration: configuration(steps: 40),
                                   runDirectory: directory(), progress: ProgressDisplay(mode: .silent))
        try straight.train()

        let run = directory()
        let first = try Trainer(task: makeTask(), optimizer: Adam(), configuration: configuration(steps: 40), runDirectory: run,
                                progress: ProgressDisplay(mode: .silent))
        let partial = try first.train(stopAfter: 20)
        #expect(partial.state.step == 20 && partial.test == nil)

        let resumedTask = makeTask()
        let resumed = try Trainer(task: resumedTask, optimizer: Adam(), configuration: configuration(steps: 40), runDirectory: run,
                                  progress: ProgressDisplay(mode: .silent))
        try resumed.resume()
        #expect(resumed.state.step == 20)
        let summary = try resumed.train()
        #expect(summary.state.step == 40)
        for (a, b) in zip(straightTask.parameters, resumedTask.parameters) {
            #expect(a.variable.value.scalars.map(\.bitPattern) == b.variable.value.scalars.map(\.bitPattern), "\(a.name)")
        }
        #expect(straight.generator == resumed.generator)
        #expect(summary.test != nil)
        // The metrics log has one line per evaluation and one for the test score.
        let lines = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 7 + 1)
        #expect(lines.last!.contains("test_nats"))
        #expect(FileManager.default.fileExists(atPath: run + "/best.safetensors"))
    }

    /// With a weight average: resuming is still exact (weights and averages), validation and the best
    /// checkpoint use the averages, and they differ from the last weights.
    @Test func weightAverageResumesExactlyAndIsWhatEvaluationUses() throws {
        var c = configuration(steps: 42)
        c.averageDecay = 0.9
        let straightTask = makeTask()
        let straightRun = directory()
        let straight = try Trainer(task: straightTask, optimizer: Adam(), configuration: c, runDirectory: straightRun,
                                   progress: ProgressDisplay(mode: .silent))
        try straight.train()

        let run = directory()
        try Trainer(task: makeTask(), optimizer: Adam(), configuration: c, runDirectory: run, progress: ProgressDisplay(mode: .silent))
            .train(stopAfter: 20)
        let resumedTask = makeTask()
        let resumed = try Trainer(task: resumedTask, optimizer: Adam(), configuration: c, runDirectory: run,
                                  progress: ProgressDisplay(mode: .silent))
        try resumed.resume()
        #expect(resumed.average?.updateCount == 20)
        try resumed.train()
        for (a, b) in zip(straightTask.parameters, resumedTask.parameters) {
            #expect(a.variable.value.scalars.map(\.bitPattern) == b.variable.value.scalars.map(\.bitPattern), "\(a.name)")
            #expect(straight.average!.average(of: a.name)!.scalars.map(\.bitPattern)
                == resumed.average!.average(of: b.name)!.scalars.map(\.bitPattern), "\(a.name)")
        }

        // The last evaluation (step 42) scored the averages, not the weights.
        let lines = try String(contentsOfFile: straightRun + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let last = try JSONSerialization.jsonObject(with: Data(lines[lines.count - 2].utf8)) as! [String: Any]
        #expect(last["step"] as? Int == 42)
        let averaged = straight.withEvaluationWeights { straight.evaluate(.validation)! }
        let weights = straight.evaluate(.validation)!
        #expect(abs(averaged.nats - (last["validation_nats"] as! Double)) < 1e-9)
        #expect(averaged.nats != weights.nats)
        // latest.safetensors: the averages as model., the weights as raw.
        let latest = try Checkpoint.read(from: straightRun + "/latest.safetensors")
        let name = straightTask.parameters[0].name
        #expect(latest.tensors["model." + name] == straight.average!.average(of: name))
        #expect(latest.tensors["raw." + name] == straightTask.parameters[0].variable.value)
    }

    @Test func resumeRejectsAnotherConfiguration() throws {
        let run = directory()
        let trainer = try Trainer(task: makeTask(maskSets: 2), optimizer: Adam(), configuration: configuration(steps: 7), runDirectory: run,
                                  progress: ProgressDisplay(mode: .silent))
        try trainer.train()
        let other = try Trainer(task: makeTask(maskSets: 1), optimizer: Adam(), configuration: configuration(steps: 7), runDirectory: run,
                                progress: ProgressDisplay(mode: .silent))
        #expect(throws: TrainingError.self) { try other.resume() }
    }

    /// A loss that turns NaN stops the run, names the step, and leaves the last checkpoint as it was.
    @Test func nonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
        let run = directory()
        let task = makeTask()
        var c = configuration(steps: 30)
        c.schedule = LearningRateSchedule(base: 1e-2)
        let trainer = try Trainer(task: task, optimizer: Adam(), configuration: c, runDirectory: run, progress: ProgressDisplay(mode: .silent))
        try trainer.train(stopAfter: 14)
        let saved = try Data(contentsOf: URL(fileURLWithPath: run + "/latest.safetensors"))
        // Poison one weight: the next loss is NaN.
        task.model.layers[0].weight.value.scalars[0] = .nan
        let again = try Trainer(task: task, optimizer: Adam(), configuration: c, runDirectory: run, progress: ProgressDisplay(mode: .silent))
        do {
            try again.train()
            Issue.record("training went on with a NaN loss")
        } catch let error as TrainingError {
            guard case .nonFiniteLoss(let step, _, let checkpoint) = error else { Issue.record("\(error)"); return }
            #expect(step == 1)
            #expect(checkpoint == run + "/latest.safetensors")
            #expect(error.description.contains("step 1") && error.description.contains("learning rate"))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/latest.safetensors")) == saved)

        var skipping = c
        skipping.skipNonFiniteBatches = true
        let skipper = try Trainer(task: task, optimizer: Adam(), configuration: skipping, runDirectory: directory(),
                                  progress: ProgressDisplay(mode: .silent))
        let summary = try skipper.train(stopAfter: 5)
        #expect(summary.state.skippedBatches == 5)
    }

    @Test func earlyStoppingWithPatience() throws {
        var c = configuration(steps: 1000)
        c.evaluateEvery = 1
        c.patience = 2
        c.schedule = LearningRateSchedule(base: 0)  // nothing improves after the first evaluation
        let trainer = try Trainer(task: makeTask(), optimizer: SGD(learningRate: 0), configuration: c, runDirectory: directory(),
                                  progress: ProgressDisplay(mode: .silent))
        let summary = try trainer.train()
        #expect(summary.stoppedEarly)
        #expect(summary.state.step == 3)
        #expect(summary.state.bestStep == 1)
        #expect(summary.test != nil)
    }

    @Test func shufflingIsDeterministicAndCoversEveryExample() throws {
        let trainer = try Trainer(task: makeTask(), optimizer: Adam(), configuration: configuration(steps: 1), runDirectory: directory(),
                                  progress: ProgressDisplay(mode: .silent))
        let validation = trainer.evaluate(.validation)!
        #expect(validation.examples == 100)
        #expect(validation.nats > 0)
    }

    @Test func remainingTimeOfAResumedRunCountsOnlyItsOwnSteps() {
        // Resumed at 6000 of 12000; 100 steps took 40 s, so 5900 more take 2360 s (not 39 s).
        var resumed = ProgressDisplay.RecentPace()
        resumed.record(step: 6000, seconds: 0)
        #expect(resumed.remainingSeconds(until: 12000).isNaN)
        resumed.record(step: 6100, seconds: 40)
        #expect(resumed.remainingSeconds(until: 12000) == 2360)
    }

    @Test func remainingTimeForgetsAPauseOnceItHasScrolledOut() {
        // One step per second, then a one-hour pause (Ctrl-Z), then one step per second again.
        var pace = ProgressDisplay.RecentPace(capacity: 8)
        var clock = 0.0
        for step in 0...10 { pace.record(step: step, seconds: clock); clock += 1 }
        #expect(pace.remainingSeconds(until: 110) == 100)
        clock += 3600
        pace.record(step: 11, seconds: clock)
        #expect(pace.remainingSeconds(until: 111) > 3600)
        for step in 12...18 { clock += 1; pace.record(step: step, seconds: clock) }
        #expect(pace.remainingSeconds(until: 118) == 100)
    }
}
