import CKernels
import Dispatch
import Foundation
import Synchronization

/// Work sharing for kernels that do not go through BLAS.
///
/// Rule: a piece of work is split either by BLAS's own threads (large GEMMs) or
/// by `parallelFor` (batch, channel or element chunks), never both at once.
public enum Parallel {
    /// The number of workers `parallelFor` splits into (the machine's active cores).
    public static let workerCount: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this many elements an elementwise kernel runs on one thread.
    public static let elementwiseGrain = 1 << 16

    /// Runs `body(i)` for i in 0..<count, spread over the cores when `count > 1`.
    ///
    /// The calling thread takes part; the other cores' helper threads (`WorkerPool`) stay awake for
    /// a moment after each job, so the many short jobs of a training step do not each pay for waking
    /// a sleeping thread. A call made while another is running (from a helper, or from a second
    /// thread) runs on its caller alone.
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 || workerCount == 1 || !WorkerPool.shared.run(count, body) {
            for i in 0..<count { body(i) }
        }
    }

    /// Splits 0..<count into contiguous chunks (one per worker when large) and runs `body(range)` on each.
    @inlinable
    public static func forChunks(_ count: Int, grain: Int = elementwiseGrain, _ body: (Range<Int>) -> Void) {
        if count < 2 * grain || workerCount == 1 {
            body(0..<count)
            return
        }
        let chunks = min(workerCount, count / grain)
        let size = (count + chunks - 1) / chunks
        forEach(chunks) { chunk in
            let start = chunk * size
            body(start..<min(count, start + size))
        }
    }
}

/// One helper thread per extra core, sharing `Parallel.forEach` jobs with the calling thread.
///
/// A job is published as one atomic ticket holding its generation, its item count and the next
/// unclaimed item; every thread claims items by compare-and-swap on the ticket, so a helper that
/// looks late can never claim an item of a job that has moved on. The caller returns once every
/// item has finished. A helper with nothing to do watches the ticket for `spinNanoseconds`
/// (measured: waking a sleeping thread costs 60–70 µs on a 2-core virtual machine, and a MADE step has
/// a dozen jobs a few hundred µs apart), yielding the core between looks after the first
/// `pureSpinNanoseconds`, then sleeps on its semaphore until the next job is published.
/// `SERIATIM_WORKER_SPIN_US` sets the watch (default 1000 µs; 0 sleeps at once).
@usableFromInline
final class WorkerPool: @unchecked Sendable {
    @usableFromInline static let shared = WorkerPool(helpers: Parallel.workerCount - 1)

    /// How long an idle helper spins on the ticket before it starts yielding the core between looks.
    static let pureSpinNanoseconds: UInt64 = 20_000
    /// How long an idle helper watches for the next job before it sleeps.
    static let spinNanoseconds: UInt64 = {
        let microseconds = ProcessInfo.processInfo.environment["SERIATIM_WORKER_SPIN_US"].flatMap { UInt64($0) } ?? 1000
        return microseconds * 1000
    }()

    private static let indexBits = 22, countBits = 22
    private static let fieldMask = (1 << indexBits) - 1
    /// The most items one job can hold; larger jobs are run in slices of this many.
    static let maximumCount = fieldMask

    /// generation << 44 | count << 22 | next unclaimed item.
    private let ticket = Atomic<Int>(0)
    /// Items of the current job finished so far.
    private let finished = Atomic<Int>(0)
    /// Set while a job runs; a second caller runs its work alone.
    private let busy = Atomic<Bool>(false)
    private nonisolated(unsafe) var job: ((Int) -> Void)?
    private let helpers: [Helper]

    private final class Helper: @unchecked Sendable {
        let sleeping = Atomic<Bool>(false)
        let wake = DispatchSemaphore(value: 0)
    }

    private init(helpers count: Int) {
        helpers = (0..<max(count, 0)).map { _ in Helper() }
        for helper in helpers {
            let thread = Thread { [unowned self] in self.serve(helper) }
            thread.name = "seriatim-worker"
            thread.start()
        }
    }

    private static func count(_ ticket: Int) -> Int { (ticket >> indexBits) & fieldMask }
    private static func index(_ ticket: Int) -> Int { ticket & fieldMask }

    /// Runs `body` over 0..<count with the helpers; false (having run nothing) when a job is already running.
    @usableFromInline
    func run(_ count: Int, _ body: (Int) -> Void) -> Bool {
        guard !helpers.isEmpty, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else { return false }
        defer { busy.store(false, ordering: .releasing) }
        var start = 0
        while start < count {
            let size = min(count - start, WorkerPool.maximumCount), offset = start
            withoutActuallyEscaping({ (i: Int) in body(offset + i) }) { slice in runSlice(size, slice) }
            start += size
        }
        return true
    }

    private func runSlice(_ count: Int, _ body: @escaping (Int) -> Void) {
        job = body
        finished.store(0, ordering: .sequentiallyConsistent)
        let shift = WorkerPool.indexBits + WorkerPool.countBits
        let generation = ((ticket.load(ordering: .sequentiallyConsistent) >> shift) + 1) & ((1 << (63 - shift)) - 1)
        ticket.store(generation << shift | count << WorkerPool.indexBits,
                     ordering: .sequentiallyConsistent)
        for helper in helpers where helper.sleeping.exchange(false, ordering: .sequentiallyConsistent) {
            helper.wake.signal()
        }
        while claimAndRun() {}
        while finished.load(ordering: .sequentiallyConsistent) < count { seriatim_spin_pause() }
        job = nil
    }

    /// Claims the next item of the published job and runs it; false when none is left.
    private func claimAndRun() -> Bool {
        var current = ticket.load(ordering: .sequentiallyConsistent)
        while WorkerPool.index(current) < WorkerPool.count(current) {
            let (claimed, seen) = ticket.compareExchange(expected: current, desired: current + 1,
                                                         ordering: .sequentiallyConsistent)
            if claimed {
                // The job cannot move on while this item is unfinished, so `job` is this ticket's.
                runItem(WorkerPool.index(current))
                finished.add(1, ordering: .sequentiallyConsistent)
                return true
            }
            current = seen
        }
        return false
    }

    @inline(never) private func runItem(_ index: Int) { job!(index) }

    private func serve(_ helper: Helper) {
        while true {
            while claimAndRun() {}
            let idle = ticket.load(ordering: .sequentiallyConsistent)
            let start = DispatchTime.now().uptimeNanoseconds
            var spins = 0, yielding = false
            while ticket.load(ordering: .sequentiallyConsistent) == idle {
                // After a short pure spin, offer the core to any other runnable thread (a second
                // training run, say) on each turn: measured with two MADE benchmarks side by side,
                // spinning without yielding cost a third of their joint throughput.
                if yielding { sched_yield() } else { seriatim_spin_pause() }
                spins += 1
                guard yielding || spins & 63 == 0 else { continue }
                let elapsed = DispatchTime.now().uptimeNanoseconds - start
                yielding = elapsed > WorkerPool.pureSpinNanoseconds
                if elapsed > WorkerPool.spinNanoseconds {
                    // Announce the sleep, then look once more: a job published after this look
                    // finds the flag set and signals.
                    helper.sleeping.store(true, ordering: .sequentiallyConsistent)
                    if ticket.load(ordering: .sequentiallyConsistent) != idle,
                       helper.sleeping.exchange(false, ordering: .sequentiallyConsistent) {
                        break
                    }
                    helper.wake.wait()
                    break
                }
            }
        }
    }
}
