import Dispatch

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
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 || workerCount == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let work = body
            DispatchQueue.concurrentPerform(iterations: count) { work($0) }
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

import Foundation
