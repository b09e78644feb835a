// MARK: - Causal dilated 1-D convolution
//
// Shapes: B batch, I input channels, O output channels, T time, K taps, D dilation.
// input `[B, I, T]`, weight `[K, O, I]` (tap-major, so each tap is a ready GEMM operand),
// bias `[O]`, output `[B, O, T]`.
// Tap k reads x[t − sₖ] with sₖ = (K − 1 − k)·D + offset; offset 0 lets output t see
// inputs ≤ t, offset 1 only inputs < t. Reads before the start are zeros.
// Each tap is one GEMM on a time-shifted view of the input (row stride T): no im2col copy.

extension Kernels {
    /// The time shift of tap `k`.
    @inlinable
    public static func tapShift(_ k: Int, taps: Int, dilation: Int, offset: Int) -> Int {
        (taps - 1 - k) * dilation + offset
    }

    /// Causal dilated convolution (see the shape legend above).
    public static func causalConv1D(_ input: Tensor, weight: Tensor, bias: Tensor?, dilation: Int, offset: Int = 0) -> Tensor {
        precondition(input.rank == 3 && weight.rank == 3 && weight.shape[2] == input.shape[1],
                     "causalConv1D: input \(input.shape) needs [B, I, T] and weight [K, O, I], got weight \(weight.shape)")
        precondition(dilation >= 1 && offset >= 0, "causalConv1D: dilation \(dilation) and offset \(offset) must be ≥ 1 and ≥ 0")
        let (batch, inChannels, time) = (input.shape[0], input.shape[1], input.shape[2])
        let (taps, outChannels) = (weight.shape[0], weight.shape[1])
        if let bias { precondition(bias.shape == [outChannels], "causalConv1D: bias \(bias.shape) for \(outChannels) outputs") }
        var output = Tensor.zeros([batch, outChannels, time])
        output.withUnsafeMutableBufferPointer { op in
            let y = op.baseAddress!
            if let bias {
                for b in 0..<batch { for o in 0..<outChannels {
                    let row = y + (b * outChannels + o) * time
                    let v = bias.scalars[o]
                    for t in 0..<time { row[t] = v }
                } }
            }
            input.withUnsafeBufferPointer { ip in
                weight.withUnsafeBufferPointer { wp in
                    let x = ip.baseAddress!, w = wp.baseAddress!
                    // Batch items in parallel with one-core GEMMs; a single item lets the GEMM split itself.
                    let serial = batch > 1
                    Parallel.forEach(batch) { b in
                        for k in 0..<taps {
                            let shift = tapShift(k, taps: taps, dilation: dilation, offset: offset)
                            if shift >= time { continue }
                            let f = serial ? gemmSerial : gemm
                            f(false, false, outChannels, time - shift, inChannels, 1,
                              w + k * outChannels * inChannels, inChannels,
                              x + b * inChannels * time, time,
                              1, y + b * outChannels * time + shift, time)
                        }
                    }
                }
            }
        }
        return output
    }

    /// Gradients of `causalConv1D` with respect to input (when asked), weight and bias.
    public static func causalConv1DBackward(_ gradient: Tensor, input: Tensor, weight: Tensor, dilation: Int, offset: Int = 0,
                                            needsInputGradient: Bool = true) -> (input: Tensor?, weight: Tensor, bias: Tensor) {
        let (batch, inChannels, time) = (input.shape[0], input.shape[1], input.shape[2])
        let (taps, outChannels) = (weight.shape[0], weight.shape[1])
        precondition(gradient.shape == [batch, outChannels, time], "causalConv1DBackward: gradient \(gradient.shape) for output [\(batch), \(outChannels), \(time)]")
        var inputGradient = needsInputGradient ? Tensor.zeros(input.shape) : nil
        var weightGradient = Tensor.zeros(weight.shape)
        let biasGradient = sumOverBatchAndPositions(gradient)
        let serial = batch > 1
        let f = serial ? gemmSerial : gemm
        gradient.withUnsafeBufferPointer { gp in
            input.withUnsafeBufferPointer { ip in
                weight.withUnsafeBufferPointer { wp in
                    let g = gp.baseAddress!, x = ip.baseAddress!, w = wp.baseAddress!
                    // Weight gradient: each worker sums its share of the batch into its own buffer.
                    let workers = min(batch, Parallel.workerCount)
                    let size = taps * outChannels * inChannels
                    var partial = [Float](repeating: 0, count: workers * size)
                    partial.withUnsafeMutableBufferPointer { pp in
                        let p = pp.baseAddress!
                        Parallel.forEach(workers) { worker in
                            var b = worker
                            while b < batch {
                                for k in 0..<taps {
                                    let shift = tapShift(k, taps: taps, dilation: dilation, offset: offset)
                                    if shift >= time { continue }
                                    // dWₖ += dY[:, s:] · X[:, :T−s]ᵀ
                                    f(false, true, outChannels, inChannels, time - shift, 1,
                                      g + b * outChannels * time + shift, time,
                                      x + b * inChannels * time, time,
                                      1, p + worker * size + k * outChannels * inChannels, inChannels)
                                }
                                b += workers
                            }
                        }
                    }
                    weightGradient.withUnsafeMutableBufferPointer { dwp in
                        for worker in 0..<workers { for i in 0..<size { dwp[i] += partial[worker * size + i] } }
                    }
                    if inputGradient != nil {
                        inputGradient!.withUnsafeMutableBufferPointer { dxp in
                            let dx = dxp.baseAddress!
                            Parallel.forEach(batch) { b in
                                for k in 0..<taps {
                                    let shift = tapShift(k, taps: taps, dilation: dilation, offset: offset)
                                    if shift >= time { continue }
                                    // dX[:, :T−s] += Wₖᵀ · dY[:, s:]
                                    f(true, false, inChannels, time - shift, outChannels, 1,
                                      w + k * outChannels * inChannels, inChannels,
                                      g + b * outChannels * time + shift, time,
                                      1, dx + b * inChannels * time, time)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (inputGradient, weightGradient, biasGradient)
    }

    /// Direct-loop reference for `causalConv1D`.
    public static func causalConv1DReference(_ input: Tensor, weight: Tensor, bias: Tensor?, dilation: Int, offset: Int = 0) -> Tensor {
        let (batch, inChannels, time) = (input.shape[0], input.shape[1], input.shape[2])
        let (taps, outChannels) = (weight.shape[0], weight.shape[1])
        var output = Tensor.zeros([batch, outChannels, time])
        for b in 0..<batch { for o in 0..<outChannels { for t in 0..<time {
            var sum = Double(bias?.scalars[o] ?? 0)
            for k in 0..<taps {
                let source = t - tapShift(k, taps: taps, dilation: dilation, offset: offset)
                if source < 0 { continue }
                for i in 0..<inChannels {
                    sum += Double(weight[k, o, i]) * Double(input[b, i, source])
                }
            }
            output[b, o, t] = Float(sum)
        } } }
        return output
    }
}

// MARK: - 2-D convolution with a constant mask
//
// Shapes: B batch, I input channels, O output channels, H×W image, KH×KW kernel (odd, "same" padding).
// input `[B, I, H, W]`, weight `[O, I, KH, KW]`, mask the same shape as weight (or none), bias `[O]`.
// The effective weight is `weight ⊙ mask`; taps whose mask is all zero are skipped entirely.
// Method: the input is copied once into a zero-padded, channel-major grid (`PaddedGrid`); on that grid
// every tap is a constant flat offset, so each active tap is one GEMM over a tile of output columns.

/// The taps of a masked 2-D convolution that the mask leaves active, with their packed weights.
public struct ConvolutionTaps: Sendable {
    public let kernelHeight: Int, kernelWidth: Int
    /// (row, column) of each active tap.
    public let taps: [(row: Int, column: Int)]

    /// The active taps of a kernel under `mask` (`[O, I, KH, KW]`, or nil for all taps).
    public init(kernelHeight: Int, kernelWidth: Int, mask: Tensor?) {
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        var taps: [(Int, Int)] = []
        for r in 0..<kernelHeight {
            for c in 0..<kernelWidth {
                guard let mask else { taps.append((r, c)); continue }
                let plane = kernelHeight * kernelWidth
                var any = false
                var i = r * kernelWidth + c
                while i < mask.count { if mask.scalars[i] != 0 { any = true; break }; i += plane }
                if any { taps.append((r, c)) }
            }
        }
        self.taps = taps
    }
}

extension Kernels {
    /// Packs `weight ⊙ mask` for the active taps into `[taps, O, I]`.
    static func packTaps(_ weight: Tensor, mask: Tensor?, taps: ConvolutionTaps) -> [Float] {
        let (o, i, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        var packed = [Float](repeating: 0, count: taps.taps.count * o * i)
        for (t, tap) in taps.taps.enumerated() {
            for oc in 0..<o { for ic in 0..<i {
                let w = ((oc * i + ic) * kh + tap.row) * kw + tap.column
                packed[(t * o + oc) * i + ic] = weight.scalars[w] * (mask?.scalars[w] ?? 1)
            } }
        }
        return packed
    }

    /// Columns per tile of a per-tap convolution: a tile of 64 channels' input and output fits in
    /// L2 (measured on 32×28×28×64, 5 taps: 512–2048 columns 6.5–7 ms against 9–10 ms for whole-width GEMMs).
    static let convolutionColumnTile = 768

    /// Runs `body(start, end)` over tiles of `0..<count` columns, spread over the cores.
    static func forEachColumnTile(_ count: Int, _ body: (Int, Int) -> Void) {
        let tiles = (count + convolutionColumnTile - 1) / convolutionColumnTile
        Parallel.forEach(tiles) { tile in
            let start = tile * convolutionColumnTile
            body(start, min(count, start + convolutionColumnTile))
        }
    }

    /// Whether a convolution is done as one GEMM over stacked tap rows: when the input has so few
    /// channels that a GEMM per tap would be a product of tiny depth.
    static func stacksTaps(inChannels: Int, taps: ConvolutionTaps) -> Bool {
        inChannels < 16 && taps.taps.count > 1 && taps.taps.count * inChannels <= 256
    }

    /// The shifted input rows of every active tap stacked: row `t·I + i` is channel i of the padded
    /// grid read at tap t's offset, `[taps·I, columns]`.
    static func stackTaps(_ padded: [Float], grid: PaddedGrid, taps: ConvolutionTaps, channels: Int) -> [Float] {
        let columns = grid.columns
        return [Float](unsafeUninitializedCapacity: taps.taps.count * channels * columns) { buffer, initialized in
            padded.withUnsafeBufferPointer { xp in
                let out = buffer.baseAddress!, x = xp.baseAddress!
                Parallel.forEach(taps.taps.count) { t in
                    for ic in 0..<channels {
                        (out + (t * channels + ic) * columns).initialize(from: x + ic * grid.total + grid.offset(taps.taps[t]), count: columns)
                    }
                }
            }
            initialized = taps.taps.count * channels * columns
        }
    }

    /// `[taps, O, I]` (as `packTaps` lays weights out) → `[O, taps·I]`, or back when `inverse`.
    static func tapMajorToRows(_ packed: [Float], taps: Int, outChannels: Int, inChannels: Int, inverse: Bool = false) -> [Float] {
        var result = [Float](repeating: 0, count: packed.count)
        for t in 0..<taps { for oc in 0..<outChannels { for ic in 0..<inChannels {
            let tapMajor = (t * outChannels + oc) * inChannels + ic, rowMajor = oc * taps * inChannels + t * inChannels + ic
            if inverse { result[tapMajor] = packed[rowMajor] } else { result[rowMajor] = packed[tapMajor] }
        } } }
        return result
    }

    /// Masked "same" 2-D convolution (see the shape legend above).
    public static func maskedConv2D(_ input: Tensor, weight: Tensor, mask: Tensor?, bias: Tensor?,
                                    taps: ConvolutionTaps? = nil) -> Tensor {
        maskedConv2DKeepingInput(input, weight: weight, mask: mask, bias: bias, taps: taps).output
    }

    /// `maskedConv2D`, also returning the padded input grid so that the backward pass need not rebuild it.
    public static func maskedConv2DKeepingInput(_ input: Tensor, weight: Tensor, mask: Tensor?, bias: Tensor?,
                                                taps: ConvolutionTaps? = nil) -> (output: Tensor, paddedInput: [Float]) {
        precondition(input.rank == 4 && weight.rank == 4 && weight.shape[1] == input.shape[1],
                     "maskedConv2D: input \(input.shape) needs [B, I, H, W] and weight [O, I, KH, KW], got \(weight.shape)")
        precondition(mask == nil || mask!.shape == weight.shape, "maskedConv2D: mask \(mask!.shape) differs from weight \(weight.shape)")
        precondition(weight.shape[2] % 2 == 1 && weight.shape[3] % 2 == 1, "maskedConv2D: kernel \(weight.shape) must be odd-sized")
        let (batch, inChannels, height, width) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (outChannels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let active = taps ?? ConvolutionTaps(kernelHeight: kh, kernelWidth: kw, mask: mask)
        let grid = PaddedGrid(batch: batch, height: height, width: width, taps: active)
        let padded = grid.pad(input, channels: inChannels)
        let packed = packTaps(weight, mask: mask, taps: active)
        // With a tap, every element is written: the stacked GEMM and each tile's first tap run with beta = 0.
        var big = [Float](unsafeUninitializedCapacity: outChannels * grid.columns) { buffer, count in
            if active.taps.isEmpty { buffer.initialize(repeating: 0) }
            count = outChannels * grid.columns
        }
        if stacksTaps(inChannels: inChannels, taps: active) {
            // Few input channels (an input layer): one GEMM over the stacked shifted rows instead of a
            // GEMM per tap that would each read and write the whole output for a product of depth I.
            let stacked = stackTaps(padded, grid: grid, taps: active, channels: inChannels)
            let depth = active.taps.count * inChannels
            let weights = tapMajorToRows(packed, taps: active.taps.count, outChannels: outChannels, inChannels: inChannels)
            weights.withUnsafeBufferPointer { wp in stacked.withUnsafeBufferPointer { sp in big.withUnsafeMutableBufferPointer { yp in
                gemm(m: outChannels, n: grid.columns, k: depth, a: wp.baseAddress!, lda: depth, b: sp.baseAddress!, ldb: grid.columns,
                     beta: 0, c: yp.baseAddress!, ldc: grid.columns)
            } } }
            return (grid.extract(big, channels: outChannels, bias: bias), padded)
        }
        padded.withUnsafeBufferPointer { xp in
            packed.withUnsafeBufferPointer { wp in
                big.withUnsafeMutableBufferPointer { yp in
                    let (x, w, y) = (xp.baseAddress!, wp.baseAddress!, yp.baseAddress!)
                    // Column tiles, each on one core: a tile's output stays in cache while every tap adds to it.
                    forEachColumnTile(grid.columns) { c0, c1 in
                        for (t, tap) in active.taps.enumerated() {
                            gemmSerial(m: outChannels, n: c1 - c0, k: inChannels,
                                       a: w + t * outChannels * inChannels, lda: inChannels,
                                       b: x + grid.offset(tap) + c0, ldb: grid.total,
                                       beta: t == 0 ? 0 : 1, c: y + c0, ldc: grid.columns)
                        }
                    }
                }
            }
        }
        return (grid.extract(big, channels: outChannels, bias: bias), padded)
    }

    /// Gradients of `maskedConv2D` with respect to input (when asked), weight (already masked) and bias.
    public static func maskedConv2DBackward(_ gradient: Tensor, input: Tensor, weight: Tensor, mask: Tensor?,
                                            taps: ConvolutionTaps? = nil, needsInputGradient: Bool = true,
                                            paddedInput: [Float]? = nil)
        -> (input: Tensor?, weight: Tensor, bias: Tensor) {
        let (batch, inChannels, height, width) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (outChannels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        precondition(gradient.shape == [batch, outChannels, height, width], "maskedConv2DBackward: gradient \(gradient.shape)")
        let active = taps ?? ConvolutionTaps(kernelHeight: kh, kernelWidth: kw, mask: mask)
        let grid = PaddedGrid(batch: batch, height: height, width: width, taps: active)
        let padded = paddedInput ?? grid.pad(input, channels: inChannels)
        let gradientGrid = grid.scatter(gradient, channels: outChannels)
        let packed = packTaps(weight, mask: mask, taps: active)
        var packedGradient = [Float](repeating: 0, count: packed.count)
        var paddedInputGradient = needsInputGradient ? [Float](repeating: 0, count: inChannels * grid.total) : []
        if stacksTaps(inChannels: inChannels, taps: active) {
            let (tapCount, depth) = (active.taps.count, active.taps.count * inChannels)
            let stacked = stackTaps(padded, grid: grid, taps: active, channels: inChannels)
            var rowGradient = [Float](repeating: 0, count: outChannels * depth)
            gradientGrid.withUnsafeBufferPointer { gp in stacked.withUnsafeBufferPointer { sp in
                rowGradient.withUnsafeMutableBufferPointer { dwp in
                    gemm(transposeB: true, m: outChannels, n: depth, k: grid.columns, a: gp.baseAddress!, lda: grid.columns,
                         b: sp.baseAddress!, ldb: grid.columns, beta: 0, c: dwp.baseAddress!, ldc: depth)
                }
                if needsInputGradient {
                    // Stacked-row gradient, then each row added back at its tap's offset.
                    let weights = tapMajorToRows(packed, taps: tapCount, outChannels: outChannels, inChannels: inChannels)
                    var stackedGradient = [Float](repeating: 0, count: depth * grid.columns)
                    weights.withUnsafeBufferPointer { wp in stackedGradient.withUnsafeMutableBufferPointer { dsp in
                        gemm(transposeA: true, m: depth, n: grid.columns, k: outChannels, a: wp.baseAddress!, lda: depth,
                             b: gp.baseAddress!, ldb: grid.columns, beta: 0, c: dsp.baseAddress!, ldc: grid.columns)
                        paddedInputGradient.withUnsafeMutableBufferPointer { dxp in
                            let dx = dxp.baseAddress!, ds = dsp.baseAddress!
                            Parallel.forEach(inChannels) { ic in
                                for (t, tap) in active.taps.enumerated() {
                                    let target = dx + ic * grid.total + grid.offset(tap), row = ds + (t * inChannels + ic) * grid.columns
                                    for j in 0..<grid.columns { target[j] += row[j] }
                                }
                            }
                        }
                    } }
                }
            } }
            packedGradient = tapMajorToRows(rowGradient, taps: tapCount, outChannels: outChannels, inChannels: inChannels, inverse: true)
        } else {
        padded.withUnsafeBufferPointer { xp in
            gradientGrid.withUnsafeBufferPointer { gp in
                packedGradient.withUnsafeMutableBufferPointer { dwp in
                    for (t, tap) in active.taps.enumerated() {
                        gemm(transposeB: true, m: outChannels, n: inChannels, k: grid.columns,
                             a: gp.baseAddress!, lda: grid.columns,
                             b: xp.baseAddress! + grid.offset(tap), ldb: grid.total,
                             beta: 0, c: dwp.baseAddress! + t * outChannels * inChannels, ldc: inChannels)
                    }
                }
                if needsInputGradient {
                    packed.withUnsafeBufferPointer { wp in
                        paddedInputGradient.withUnsafeMutableBufferPointer { dxp in
                            let (w, g, dx) = (wp.baseAddress!, gp.baseAddress!, dxp.baseAddress!)
                            // Tiles of input-gradient columns: tap t adds gradient columns shifted back by its offset.
                            forEachColumnTile(grid.total) { d0, d1 in
                                for (t, tap) in active.taps.enumerated() {
                                    let offset = grid.offset(tap)
                                    let q0 = max(0, d0 - offset), q1 = min(grid.columns, d1 - offset)
                                    guard q1 > q0 else { continue }
                                    gemmSerial(transposeA: true, m: inChannels, n: q1 - q0, k: outChannels,
                                               a: w + t * outChannels * inChannels, lda: inChannels,
                                               b: g + q0, ldb: grid.columns,
                                               beta: 1, c: dx + q0 + offset, ldc: grid.total)
                                }
                            }
                        }
                    }
                }
            }
        }
        }
        let weightGradient = unpackTaps(packedGradient, weightShape: weight.shape, mask: mask, taps: active)
        let inputGradient = needsInputGradient
            ? grid.unpad(paddedInputGradient, channels: inChannels) : nil
        return (inputGradient, weightGradient, sumOverBatchAndPositions(gradient))
    }

    /// Direct-loop reference for `maskedConv2D`.
    public static func maskedConv2DReference(_ input: Tensor, weight: Tensor, mask: Tensor?, bias: Tensor?) -> Tensor {
        let (batch, inChannels, height, width) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (outChannels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        var output = Tensor.zeros([batch, outChannels, height, width])
        for b in 0..<batch { for o in 0..<outChannels { for h in 0..<height { for w in 0..<width {
            var sum = Double(bias?.scalars[o] ?? 0)
            for i in 0..<inChannels { for r in 0..<kh { for c in 0..<kw {
                let y = h + r - kh / 2, x = w + c - kw / 2
                if y < 0 || y >= height || x < 0 || x >= width { continue }
                let m = mask?[o, i, r, c] ?? 1
                sum += Double(weight[o, i, r, c] * m) * Double(input[b, i, y, x])
            } } }
            output[b, o, h, w] = Float(sum)
        } } } }
        return output
    }
}

/// The zero-padded, channel-major layout on which a 2-D tap is a flat offset.
///
/// The padding is what the active taps reach: `up`/`down` rows above/below a pixel and `left`/`right`
/// columns beside it (a masked kernel reaches no row below; a kernel of one row reaches no other row).
/// Rows have stride S = W + max(left, right): the zero columns after a row also serve as the left
/// padding of the next. Images follow each other with max(up, down) zero rows between them (shared as
/// bottom and top padding). Input (b, y, x) sits at left + (up + b·(H + gap) + y)·S + x; the output for
/// (b, h, w) is column q = (b·(H + gap) + h)·S + w of the output grid, and tap (r, c) reads input index
/// q + (r − KH/2 + up)·S + (c − KW/2 + left). At 28×28 with 3×3 taps, 7% of the columns are padding.
struct PaddedGrid {
    let batch: Int, height: Int, width: Int
    let padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
    /// Kernel centre (row, column).
    let centre: (row: Int, column: Int)
    /// Row stride.
    let stride: Int
    /// Rows from one image to the next.
    let imageRows: Int
    /// Elements per channel of the input grid.
    let total: Int
    /// Output columns computed per tap (the row length of the output grid).
    let columns: Int

    init(batch: Int, height: Int, width: Int, taps: ConvolutionTaps) {
        self.batch = batch; self.height = height; self.width = width
        centre = (taps.kernelHeight / 2, taps.kernelWidth / 2)
        let rows = taps.taps.map(\.row), cols = taps.taps.map(\.column)
        let up = max(0, centre.row - (rows.min() ?? centre.row)), down = max(0, (rows.max() ?? centre.row) - centre.row)
        let left = max(0, centre.column - (cols.min() ?? centre.column)), right = max(0, (cols.max() ?? centre.column) - centre.column)
        padTop = up; padLeft = left; padBottom = down; padRight = right
        stride = width + max(left, right)
        imageRows = height + max(up, down)
        columns = ((batch - 1) * imageRows + height - 1) * stride + width
        total = columns + (up + down) * stride + left + right
    }

    func offset(_ tap: (row: Int, column: Int)) -> Int { (tap.row - centre.row + padTop) * stride + tap.column - centre.column + padLeft }

    /// Grid index of input (b, y, 0).
    @inline(__always) func inputRow(_ b: Int, _ y: Int) -> Int { padLeft + (padTop + b * imageRows + y) * stride }
    /// Output-grid column of (b, h, 0).
    @inline(__always) func outputRow(_ b: Int, _ h: Int) -> Int { (b * imageRows + h) * stride }

    /// `[B, C, H, W]` → padded input grid `[C, total]`.
    func pad(_ x: Tensor, channels: Int) -> [Float] {
        var grid = [Float](repeating: 0, count: channels * total)
        grid.withUnsafeMutableBufferPointer { gp in
            x.withUnsafeBufferPointer { xp in
                let g = gp.baseAddress!, source = xp.baseAddress!
                Parallel.forEach(channels) { c in
                    for b in 0..<batch { for h in 0..<height {
                        (g + c * total + inputRow(b, h)).update(from: source + ((b * channels + c) * height + h) * width, count: width)
                    } }
                }
            }
        }
        return grid
    }

    /// Padded input grid `[C, total]` → `[B, C, H, W]` (inverse of `pad`).
    func unpad(_ grid: [Float], channels: Int) -> Tensor {
        Tensor(shape: [batch, channels, height, width]) { out in
            grid.withUnsafeBufferPointer { gp in
                let g = gp.baseAddress!, o = out.baseAddress!
                Parallel.forEach(channels) { c in
                    for b in 0..<batch { for h in 0..<height {
                        (o + ((b * channels + c) * height + h) * width).update(from: g + c * total + inputRow(b, h), count: width)
                    } }
                }
            }
        }
    }

    /// Output grid `[C, columns]` → `[B, C, H, W]` plus bias.
    func extract(_ grid: [Float], channels: Int, bias: Tensor?) -> Tensor {
        Tensor(shape: [batch, channels, height, width]) { out in
            grid.withUnsafeBufferPointer { gp in
                let g = gp.baseAddress!, o = out.baseAddress!
                let biases = bias?.scalars ?? [Float](repeating: 0, count: channels)
                Parallel.forEach(channels) { c in
                    let v = biases[c]
                    for b in 0..<batch { for h in 0..<height {
                        let (src, dst) = (g + c * columns + outputRow(b, h), o + ((b * channels + c) * height + h) * width)
                        for w in 0..<width { dst[w] = src[w] + v }
                    } }
                }
            }
        }
    }

    /// `[B, C, H, W]` → output grid `[C, columns]` with zeros off the valid positions (inverse of `extract`).
    func scatter(_ x: Tensor, channels: Int) -> [Float] {
        var grid = [Float](repeating: 0, count: channels * columns)
        grid.withUnsafeMutableBufferPointer { gp in
            x.withUnsafeBufferPointer { xp in
                let g = gp.baseAddress!, source = xp.baseAddress!
                Parallel.forEach(channels) { c in
                    for b in 0..<batch { for h in 0..<height {
                        (g + c * columns + outputRow(b, h)).update(from: source + ((b * channels + c) * height + h) * width, count: width)
                    } }
                }
            }
        }
        return grid
    }
}
