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
        var first = 0
        // Four rows at a time share every weight load (16 accumulators in registers).
        while first + 4 <= rows {
            let x0 = x + first * xStride, x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride
            let y0 = out + first * outStride, y1 = y0 + outStride, y2 = y1 + outStride, y3 = y2 + outStride
            var o = 0
            while o + 32 <= outputs {
                var a0 = load(y0 + o), a1 = load(y0 + o + 16)
                var b0 = load(y1 + o), b1 = load(y1 + o + 16)
                var c0 = load(y2 + o), c1 = load(y2 + o + 16)
                var d0 = load(y3 + o), d1 = load(y3 + o + 16)
                var wp = w + o
                for i in 0..<inputs {
                    let w0 = load(wp), w1 = load(wp + 16)
                    let v0 = Vector(repeating: x0[i]), v1 = Vector(repeating: x1[i])
                    let v2 = Vector(repeating: x2[i]), v3 = Vector(repeating: x3[i])
                    a0 = a0.addingProduct(v0, w0); a1 = a1.addingProduct(v0, w1)
                    b0 = b0.addingProduct(v1, w0); b1 = b1.addingProduct(v1, w1)
                    c0 = c0.addingProduct(v2, w0); c1 = c1.addingProduct(v2, w1)
                    d0 = d0.addingProduct(v3, w0); d1 = d1.addingProduct(v3, w1)
                    wp += outputs
                }
                store(a0, y0 + o); store(a1, y0 + o + 16)
                store(b0, y1 + o); store(b1, y1 + o + 16)
                store(c0, y2 + o); store(c1, y2 + o + 16)
                store(d0, y3 + o); store(d1, y3 + o + 16)
                o += 32
            }
            if o < outputs {
                accumulateRows(first..<(first + 4), columns: o..<outputs, inputs: inputs, outputs: outputs,
                               x: x, xStride: xStride, w: w, out: out, outStride: outStride)
            }
            first += 4
        }
        accumulateRows(first..<rows, columns: 0..<outputs, inputs: inputs, outputs: outputs,
                       x: x, xStride: xStride, w: w, out: out, outStride: outStride)
    }

    /// One row at a time over a range of output columns.
    @inlinable
    static func accumulateRows(_ rowRange: Range<Int>, columns: Range<Int>, inputs: Int, outputs: Int,
                               x: UnsafePointer<Float>, xStride: Int, w: UnsafePointer<Float>,
                               out: UnsafeMutablePointer<Float>, outStride: Int) {
        for b in rowRange {
            let xr = x + b * xStride, yr = out + b * outStride
            var o = columns.lowerBound
            while o + 64 <= columns.upperBound {
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
            while o + 16 <= columns.upperBound {
                var a0 = load(yr + o)
                var wp = w + o
                for i in 0..<inputs {
                    a0 = a0.addingProduct(Vector(repeating: xr[i]), load(wp))
                    wp += outputs
                }
                store(a0, yr + o)
                o += 16
            }
            while o < columns.upperBound {
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
