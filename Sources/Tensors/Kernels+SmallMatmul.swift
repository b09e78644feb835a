// MARK: - Small products for step-by-step generation
//
// Shapes: B rows (streams, 1–16), I inputs, O outputs. One generation step multiplies a handful
// of [B, I] activations by weights that stay the same for the whole clip; at these sizes a
// BLAS call costs more in dispatch than in arithmetic, so this kernel keeps 64 outputs in
// registers and streams the transposed weight `[I, O]` (row-major) through them.

extension Kernels {
    /// `out[b, o] += Σᵢ x[b, i] · w[i, o]` (rows of `x` and `out` at the given strides).
    @inlinable
    public static func accumulateProduct(rows: Int, inputs: Int, outputs: Int,
                                         x: UnsafePointer<Float>, xStride: Int,
                                         w: UnsafePointer<Float>,
                                         out: UnsafeMutablePointer<Float>, outStride: Int) {
        for b in 0..<rows {
            let xr = x + b * xStride, yr = out + b * outStride
            var o = 0
            while o + 64 <= outputs {
                var a0 = load(yr + o), a1 = load(yr + o + 16), a2 = load(yr + o + 32), a3 = load(yr + o + 48)
                var wp = w + o
                for i in 0..<inputs {
                    let xv = Vector(repeating: xr[i])
                    a0 = a0.addingProduct(xv, load(wp))
                    a1 = a1.addingProduct(xv, load(wp + 16))
                    a2 = a2.addingProduct(xv, load(wp + 32))
                    a3 = a3.addingProduct(xv, load(wp + 48))
                    wp += outputs
                }
                store(a0, yr + o); store(a1, yr + o + 16); store(a2, yr + o + 32); store(a3, yr + o + 48)
                o += 64
            }
            while o + 16 <= outputs {
                var a0 = load(yr + o)
                var wp = w + o
                for i in 0..<inputs {
                    a0 = a0.addingProduct(Vector(repeating: xr[i]), load(wp))
                    wp += outputs
                }
                store(a0, yr + o)
                o += 16
            }
            while o < outputs {
                var acc = yr[o]
                for i in 0..<inputs { acc += xr[i] * w[i * outputs + o] }
                yr[o] = acc
                o += 1
            }
        }
    }

    @inlinable @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }
    @inlinable @inline(__always)
    static func load(_ p: UnsafeMutablePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }
    @inlinable @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self) }
}
