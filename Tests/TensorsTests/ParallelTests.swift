import Dispatch
import Foundation
import Testing
import Tensors

/// `Parallel.forEach` shares jobs with helper threads that spin, then sleep: every item must run
/// exactly once whatever the helpers are doing — awake, asleep, or handed a job while they finish
/// the last one — and calls made inside a job or from several threads at once must not deadlock.
@Suite struct ParallelTests {
    /// `count` counters, all zero, handed to `body` (which may bump them from any thread, each from one
    /// at a time), then returned.
    private func counters(_ count: Int, _ body: (UnsafeMutableBufferPointer<Int>) -> Void) -> [Int] {
        let runs = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        runs.initialize(repeating: 0)
        defer { runs.deallocate() }
        body(runs)
        return Array(runs)
    }

    /// Runs `forEach(count)` and returns how many times each item ran.
    private func timesRun(_ count: Int, work: (Int) -> Void = { _ in }) -> [Int] {
        counters(count) { runs in
            nonisolated(unsafe) let shared = runs
            Parallel.forEach(count) { i in
                work(i)
                shared[i] += 1
            }
        }
    }

    @Test(arguments: [0, 1, 2, 3, 7, 64, 1000, 100_003])
    func everyItemRunsOnce(count: Int) {
        for _ in 0..<20 {
            let runs = timesRun(count)
            #expect(runs.allSatisfy { $0 == 1 }, "count \(count): items run \(Set(runs)) times")
        }
    }

    @Test func jobsAfterTheHelpersFellAsleepStillRunEveryItem() {
        for round in 0..<12 {
            // Longer than the helpers' default spin of 1 ms, so each job starts with them asleep.
            Thread.sleep(forTimeInterval: 0.003)
            let runs = timesRun(16) { _ in for _ in 0..<20_000 { blackHole() } }
            #expect(runs.allSatisfy { $0 == 1 }, "round \(round)")
        }
    }

    @Test func aJobLargerThanOneTicketRunsInSlices() {
        // More items than the ticket's 22-bit count field holds.
        let count = (1 << 22) + 5
        let runs = timesRun(count)
        #expect(runs.count == count && runs.allSatisfy { $0 == 1 })
    }

    @Test func nestedCallsRunInsideTheOuterJob() {
        let inner = 50
        let runs = counters(8 * inner) { runs in
            nonisolated(unsafe) let shared = runs
            Parallel.forEach(8) { outer in
                Parallel.forEach(inner) { i in shared[outer * inner + i] += 1 }
            }
        }
        #expect(runs.allSatisfy { $0 == 1 })
    }

    @Test func callsFromSeveralThreadsAtOnceEachFinish() {
        let callers = 4, count = 500
        let runs = counters(callers * count) { runs in
            nonisolated(unsafe) let shared = runs
            DispatchQueue.concurrentPerform(iterations: callers) { caller in
                for _ in 0..<50 {
                    Parallel.forEach(count) { i in shared[caller * count + i] += 1 }
                }
            }
        }
        #expect(runs.allSatisfy { $0 == 50 })
    }
}

@inline(never) private func blackHole() {}
