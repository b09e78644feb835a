import CKernels

/// A sum of shifted matrix products, `out[o, j] += Σ_t Σ_i W_t[o, i] · in[i, j + shift_t]`, by the AVX2
/// or AVX-512 kernel in `CKernels`: every tap and input channel is one contraction, the input copied
/// once per 16 (AVX2) or 32 (AVX-512) columns rather than packed again per tap, the output loaded once
/// rather than once per tap (a grid convolution's forward pass and its input gradient). `nil` where
/// that kernel cannot run (no AVX2 + FMA, outputs not a multiple of 4, or taps·inputs beyond
/// `SERIATIM_TAP_MAXIMUM_DEPTH`); callers then use one GEMM per tap.
public struct TapProduct {
    public static let isAvailable = seriatim_tap_convolution_available() != 0
    /// Whether this CPU can run blocks of 32 columns (AVX-512 F).
    public static let hasWidePanels = seriatim_tap_wide_available() != 0
    public let outputs: Int, inputs: Int, taps: Int
    /// 16 or 32 columns per block, or 0 for the default: 32 with AVX-512, 16 with AVX2 only or `SERIATIM_KERNELS=avx2`.
    public var width = 0
    private let packed: [Float]

    /// From per-tap weights `packedTaps[(t·O + o)·I + i]` (`W_t[o, i]`); with `transposed`, the
    /// product uses `W_tᵀ` (outputs I, inputs O), as an input gradient does.
    public init?(packedTaps: [Float], taps: Int, outputs o: Int, inputs i: Int, transposed: Bool = false) {
        let (outputs, inputs) = transposed ? (i, o) : (o, i)
        guard Self.isAvailable, outputs % 4 == 0, taps * inputs <= SERIATIM_TAP_MAXIMUM_DEPTH, packedTaps.count == taps * o * i else { return nil }
        (self.outputs, self.inputs, self.taps) = (outputs, inputs, taps)
        packed = [Float](unsafeUninitializedCapacity: packedTaps.count) { buffer, count in
            packedTaps.withUnsafeBufferPointer { w in
                seriatim_pack_tap_weights(Int32(outputs), Int32(inputs), Int32(taps), w.baseAddress!, o * i,
                                          transposed ? 1 : i, transposed ? i : 1, buffer.baseAddress!)
            }
            count = packedTaps.count
        }
    }

    /// Adds the product over `columns` columns (with `overwrite`, writes it: the output need not be
    /// initialised): `input` row i at `input + i·inputLd`, tap t reading `shifts[t]` (≥ 0) columns on;
    /// `output` row o at `output + o·outputLd`.
    public func accumulate(input: UnsafePointer<Float>, inputLd: Int, shifts: UnsafePointer<Int>,
                           output: UnsafeMutablePointer<Float>, outputLd: Int, columns: Int, overwrite: Bool = false) {
        guard columns > 0 else { return }
        let done = packed.withUnsafeBufferPointer { w in
            seriatim_tap_convolution(Int32(outputs), Int32(inputs), Int32(taps), w.baseAddress!, input, inputLd, shifts,
                                     output, outputLd, columns, overwrite ? 0 : 1, Int32(width))
        }
        precondition(done != 0, "TapProduct: the kernel refused a product it was built for")
    }

    /// The weights' gradient of such a product: `dW[(t·O + o)·I + i] += Σ_q g[o, q] · in[i, q + shift_t]`
    /// over `columns` columns (`shifts` ≥ 0), `width` columns per block (0: the default). False, with nothing
    /// done, where the kernel cannot run (no AVX2 + FMA, or outputs not a multiple of 4).
    public static func accumulateWeightGradient(outputs: Int, inputs: Int, taps: Int, gradient: UnsafePointer<Float>, gradientLd: Int,
                                                input: UnsafePointer<Float>, inputLd: Int, shifts: UnsafePointer<Int>, columns: Int,
                                                into weightGradient: UnsafeMutablePointer<Float>, width: Int = 0) -> Bool {
        guard isAvailable, outputs % 4 == 0 else { return false }
        guard columns > 0 else { return true }
        return seriatim_tap_weight_gradient(Int32(outputs), Int32(inputs), Int32(taps), gradient, gradientLd, input, inputLd, shifts,
                                            columns, weightGradient, Int32(width)) != 0
    }
}
