// swift-tools-version: 6.1
//
// The manifest is the architecture diagram: each layer is one target and
// depends only on the layers below it.
//
//   CBLAS ─► Tensors ─► Autodiff ─► NeuralNetworks ─► Autoregressive ─► models ─► seriatim
//   CKernels ┘ (hand-vectorised C kernels BLAS has no call for)
//   CZlib ──────────────────────────┘ (checkpoint checksums, PNG)
//
// CPU target. Swift on x86-64 Linux emits plain SSE2 by default, which turns
// every SIMD fused multiply-add into a library call. The numeric targets are
// therefore compiled for a concrete CPU:
//   SERIATIM_CPU unset   → detect from /proc/cpuinfo: `skylake-avx512` when the
//                          AVX-512 F/BW/DQ/VL set is present, else `haswell`
//                          (AVX2 + FMA), else no flag;
//   SERIATIM_CPU=generic → no flag: a build that runs on any x86-64;
//   SERIATIM_CPU=NAME    → `-target-cpu NAME` (an LLVM CPU name such as
//                          haswell, skylake-avx512, znver3).
import Foundation
import PackageDescription

func targetCPU() -> String? {
    #if arch(x86_64)
    let requested = ProcessInfo.processInfo.environment["SERIATIM_CPU"] ?? ""
    if requested == "generic" { return nil }
    if !requested.isEmpty { return requested }
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return "haswell" }
    let flags = Set(flagsLine.split(separator: " ").map(String.init))
    if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return "skylake-avx512" }
    if ["avx2", "fma"].allSatisfy(flags.contains) { return "haswell" }
    return nil
    #else
    return nil
    #endif
}

let numericSettings: [SwiftSetting] = {
    var settings: [SwiftSetting] = []
    if let cpu = targetCPU() { settings.append(.unsafeFlags(["-target-cpu", cpu])) }
    return settings
}()

let package = Package(
    name: "Seriatim",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "seriatim", targets: ["seriatim"]),
        .library(name: "Seriatim", targets: ["Tensors", "Autodiff", "NeuralNetworks", "Autoregressive"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CAllocator"),
        .systemLibrary(name: "CSndFile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSampleRate", pkgConfig: "samplerate", providers: [.apt(["libsamplerate0-dev"])]),

        // C with per-function AVX2 + FMA attributes, chosen at run time (no build flags).
        .target(name: "CKernels"),
        .target(name: "Tensors", dependencies: ["CBLAS", "CAllocator", "CKernels"], swiftSettings: numericSettings),
        .target(name: "Autodiff", dependencies: ["Tensors"], swiftSettings: numericSettings),
        .target(name: "NeuralNetworks", dependencies: ["Autodiff", "Tensors", "CZlib"],
                swiftSettings: numericSettings),
        .target(name: "Autoregressive", dependencies: ["NeuralNetworks", "Autodiff", "Tensors"],
                swiftSettings: numericSettings),
        .target(name: "AudioFiles", dependencies: ["CSndFile", "CSampleRate"]),
        .target(name: "AudioModels", dependencies: ["Autoregressive", "NeuralNetworks", "Autodiff", "Tensors", "AudioFiles"],
                swiftSettings: numericSettings),
        .target(name: "ImageModels", dependencies: ["Autoregressive", "NeuralNetworks", "Autodiff", "Tensors", "CZlib"],
                swiftSettings: numericSettings),
        .target(name: "Forecasting", dependencies: ["Autoregressive", "NeuralNetworks", "Autodiff", "Tensors"],
                swiftSettings: numericSettings),
        .target(name: "TestSupport", dependencies: ["Autodiff", "Tensors"]),

        .target(name: "SeriatimCommands", dependencies: [
            "Tensors", "Autodiff", "NeuralNetworks", "Autoregressive", "AudioFiles", "AudioModels", "ImageModels", "Forecasting", "CBLAS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: numericSettings),
        .executableTarget(name: "seriatim", dependencies: ["SeriatimCommands", "Tensors"]),

        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"]),
        .testTarget(name: "AutodiffTests", dependencies: ["Autodiff", "Tensors", "TestSupport"]),
        .testTarget(name: "NeuralNetworksTests",
                    dependencies: ["NeuralNetworks", "Autodiff", "Tensors", "TestSupport"]),
        .testTarget(name: "AudioTests",
                    dependencies: ["AudioModels", "AudioFiles", "Autoregressive", "NeuralNetworks", "Autodiff", "Tensors", "CSndFile"]),
        .testTarget(name: "ImageModelsTests",
                    dependencies: ["ImageModels", "Autoregressive", "NeuralNetworks", "Autodiff", "Tensors", "TestSupport"]),
        .testTarget(name: "ForecastingTests", dependencies: ["Forecasting", "Autoregressive", "NeuralNetworks", "Tensors"]),
        .testTarget(name: "CLITests", dependencies: ["seriatim", "AudioFiles", "ImageModels", "NeuralNetworks", "Tensors"]),
        .testTarget(name: "AutoregressiveTests",
                    dependencies: ["Autoregressive", "NeuralNetworks", "Autodiff", "Tensors", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
// A developer's local experiments (Sources/scratch is not in git).
if FileManager.default.fileExists(atPath: Context.packageDirectory + "/Sources/scratch/main.swift") {
    package.targets.append(.executableTarget(name: "scratch", dependencies: ["Tensors", "Autodiff", "Autoregressive", "AudioModels", "ImageModels", "NeuralNetworks"], swiftSettings: numericSettings))
}
