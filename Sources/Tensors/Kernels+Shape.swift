// MARK: - Layout: permute, slice, concatenate, reductions, embeddings

extension Kernels {
    /// Reorders axes: result axis `i` is input axis `axes[i]`.
    public static func permute(_ x: Tensor, _ axes: [Int]) -> Tensor {
        precondition(axes.sorted() == Array(0..<x.rank), "permute: \(axes) is not a permutation of the axes of \(x.shape)")
        let shape = axes.map { x.shape[$0] }
        // Leading axes kept and the rest rotated (NCHW → NHWC is [0, 2, 3, 1]; swapping the last two axes and
        // rotating all of them are cases of it): a batch of 2-D transposes [A, B] → [B, A], blocked.
        let r = x.rank
        for p in 0..<max(r - 1, 0) where axes[..<p].elementsEqual(0..<p) {
            guard let k = ((p + 1)..<r).first(where: { k in axes[p...].elementsEqual(Array(k..<r) + Array(p..<k)) }) else { continue }
            let batch = x.shape[..<p].reduce(1, *), a = x.shape[p..<k].reduce(1, *), b = x.shape[k...].reduce(1, *)
            return Tensor(shape: shape) { out in
                x.withUnsafeBufferPointer { xp in
                    let (source, target) = (xp.baseAddress!, out.baseAddress!)
                    if batch > 1 && x.count >= 1 << 18 {
                        Parallel.forEach(batch) { i in
                            transpose2D(source + i * a * b, rows: a, columns: b, into: target + i * a * b, parallel: false)
                        }
                    } else {
                        for i in 0..<batch { transpose2D(source + i * a * b, rows: a, columns: b, into: target + i * a * b) }
                    }
                }
            }
        }
        let inStrides = Tensor.strides(of: x.shape)
        let strides = axes.map { inStrides[$0] }
        let zero = [Int](repeating: 0, count: shape.count)
        let inner = shape.last ?? 1
        let step = strides.last ?? 0
        return Tensor(shape: shape) { out in
            x.withUnsafeBufferPointer { xp in
                let xv = xp.baseAddress!, o = out.baseAddress!
                forEachRow(shape, strides, zero) { row, offset, _ in
                    let orow = o + row * inner
                    for j in 0..<inner { orow[j] = xv[offset + j * step] }
                }
            }
        }
    }

    /// `out[j, i] = x[i, j]` for an `[rows, columns]` matrix, in 32×32 tiles (split over the cores when
    /// large and `parallel`).
    static func transpose2D(_ x: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>,
                            parallel: Bool = true) {
        let tile = 32
        let tileRows = (rows + tile - 1) / tile
        let body = { (band: Int) in
            let i0 = band * tile, i1 = min(i0 + tile, rows)
            var j0 = 0
            while j0 < columns {
                let j1 = min(j0 + tile, columns)
                for i in i0..<i1 { for j in j0..<j1 { out[j * rows + i] = x[i * columns + j] } }
                j0 = j1
            }
        }
        if parallel && rows * columns >= 1 << 18 {
            Parallel.forEach(tileRows) { body($0) }
        } else {
            for band in 0..<tileRows { body(band) }
        }
    }

    /// Swaps the last two axes.
    public static func transposeLastTwo(_ x: Tensor) -> Tensor {
        var axes = Array(0..<x.rank)
        axes.swapAt(x.rank - 1, x.rank - 2)
        return permute(x, axes)
    }

    /// The sub-range `range` of axis `axis`.
    public static func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
        precondition(axis >= 0 && axis < x.rank && range.lowerBound >= 0 && range.upperBound <= x.shape[axis],
                     "slice: range \(range) on axis \(axis) out of bounds for \(x.shape)")
        let outer = x.shape[..<axis].reduce(1, *)
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        var shape = x.shape
        shape[axis] = range.count
        let block = range.count * inner, source = x.shape[axis] * inner
        return Tensor(shape: shape) { out in
            x.withUnsafeBufferPointer { xp in
                if block < 16 {
                    // Short blocks (e.g. one column): a plain loop beats a memmove call per block.
                    for o in 0..<outer {
                        let src = xp.baseAddress! + o * source + range.lowerBound * inner, dst = out.baseAddress! + o * block
                        for i in 0..<block { dst[i] = src[i] }
                    }
                } else {
                    for o in 0..<outer {
                        (out.baseAddress! + o * block).update(from: xp.baseAddress! + o * source + range.lowerBound * inner, count: block)
                    }
                }
            }
        }
    }

    /// The gradient of `slice`: `gradient` placed into zeros of the original shape.
    public static func sliceBackward(_ gradient: Tensor, shape: [Int], axis: Int, range: Range<Int>) -> Tensor {
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        var result = Tensor.zeros(shape)
        let block = range.count * inner, target = shape[axis] * inner
        result.withUnsafeMutableBufferPointer { rp in
            gradient.withUnsafeBufferPointer { gp in
                for o in 0..<outer {
                    (rp.baseAddress! + o * target + range.lowerBound * inner).update(from: gp.baseAddress! + o * block, count: block)
                }
            }
        }
        return result
    }

    /// Adds `gradient` (the shape of `y` with `axis` cut to `range`) into that sub-range of `y`: the
    /// in-place form of `sliceBackward` + `accumulate`, touching only the slice.
    public static func accumulateSlice(_ y: inout Tensor, _ gradient: Tensor, axis: Int, range: Range<Int>) {
        let shape = y.shape
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        let block = range.count * inner, target = shape[axis] * inner
        precondition(gradient.count == outer * block, "accumulateSlice: \(gradient.shape) does not fit \(range) of axis \(axis) of \(shape)")
        y.withUnsafeMutableBufferPointer { yp in
            gradient.withUnsafeBufferPointer { gp in
                for o in 0..<outer {
                    let dst = yp.baseAddress! + o * target + range.lowerBound * inner, src = gp.baseAddress! + o * block
                    for i in 0..<block { dst[i] += src[i] }
                }
            }
        }
    }

    /// Joins tensors along `axis` (all other extents equal).
    public static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concatenate: no tensors")
        let first = parts[0].shape
        for p in parts {
            precondition(p.rank == first.count && (0..<p.rank).allSatisfy { $0 == axis || p.shape[$0] == first[$0] },
                         "concatenate: \(p.shape) does not match \(first) off axis \(axis)")
        }
        let outer = first[..<axis].reduce(1, *)
        let inner = first[(axis + 1)...].reduce(1, *)
        var shape = first
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        let total = shape[axis] * inner
        return Tensor(shape: shape) { out in
            var start = 0
            for p in parts {
                let block = p.shape[axis] * inner
                p.withUnsafeBufferPointer { pp in
                    for o in 0..<outer {
                        (out.baseAddress! + o * total + start).update(from: pp.baseAddress! + o * block, count: block)
                    }
                }
                start += block
            }
        }
    }

    /// Splits along `axis` into pieces of the given sizes.
    public static func split(_ x: Tensor, axis: Int, sizes: [Int]) -> [Tensor] {
        precondition(sizes.reduce(0, +) == x.shape[axis], "split: sizes \(sizes) do not add up to axis \(axis) of \(x.shape)")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(x, axis: axis, range: start..<(start + size))
        }
    }

    /// Sum over the given axes (kept as extent 1 when `keepingAxes`).
    public static func sum(_ x: Tensor, axes: [Int], keepingAxes: Bool = false) -> Tensor {
        var kept = x.shape
        for a in axes {
            precondition(a >= 0 && a < x.rank, "sum: axis \(a) out of range for \(x.shape)")
            kept[a] = 1
        }
        let result = sum(x, toShape: kept)
        if keepingAxes { return result }
        return result.reshaped(x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }

    /// Rows of `table` `[V, D]` picked by `indices`, giving `[indices.count, D]`.
    public static func embedding(_ table: Tensor, indices: [Int]) -> Tensor {
        precondition(table.rank == 2, "embedding: table must be [V, D], got \(table.shape)")
        let v = table.shape[0], d = table.shape[1]
        return Tensor(shape: [indices.count, d]) { out in
            table.withUnsafeBufferPointer { tp in
                for (row, index) in indices.enumerated() {
                    precondition(index >= 0 && index < v, "embedding: index \(index) outside table of \(v) rows")
                    (out.baseAddress! + row * d).update(from: tp.baseAddress! + index * d, count: d)
                }
            }
        }
    }

    /// The table gradient of `embedding`: rows of `gradient` added into the rows they came from.
    public static func embeddingBackward(_ gradient: Tensor, indices: [Int], rows: Int) -> Tensor {
        let d = gradient.shape[1]
        var result = Tensor.zeros([rows, d])
        result.withUnsafeMutableBufferPointer { rp in
            gradient.withUnsafeBufferPointer { gp in
                for (row, index) in indices.enumerated() {
                    let target = rp.baseAddress! + index * d, source = gp.baseAddress! + row * d
                    for j in 0..<d { target[j] += source[j] }
                }
            }
        }
        return result
    }

    /// One-hot rows: `[indices.count, classes]`.
    public static func oneHot(_ indices: [Int], classes: Int) -> Tensor {
        var result = Tensor.zeros([indices.count, classes])
        for (row, index) in indices.enumerated() {
            precondition(index >= 0 && index < classes, "oneHot: index \(index) outside \(classes) classes")
            result.scalars[row * classes + index] = 1
        }
        return result
    }
}
