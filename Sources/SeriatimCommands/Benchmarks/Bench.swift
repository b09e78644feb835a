import ArgumentParser
import Foundation
import Tensors

/// `seriatim bench …`: repeatable speed measurements (not tests).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of kernels and models.",
        subcommands: [KernelBenchmark.self, WaveNetBenchmark.self, MADEBenchmark.self, PixelCNNBenchmark.self, PixelRNNBenchmark.self])
}

/// Wall-clock timing: runs `body` `warmup` times, then repeats until at least `minimum`
/// seconds and `minimumRuns` runs have passed; returns the median seconds per run.
func measure(warmup: Int = 1, minimumRuns: Int = 3, minimum: Double = 0.5, _ body: () -> Void) -> Double {
    for _ in 0..<warmup { body() }
    var times: [Double] = []
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < minimumRuns || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < minimum {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        if times.count > 10_000 { break }
    }
    times.sort()
    return times[times.count / 2]
}

/// Prints a benchmark's JSON object with sorted keys, plus `blas_kernels`: the BLAS kernels it ran on.
func printJSON(_ object: [String: Any]) {
    var object = object
    object["blas_kernels"] = Kernels.blasCore
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
}
