// PixelRNN: Row LSTM and Diagonal BiLSTM (van den Oord, Kalchbrenner & Kavukcuoglu 2016,
// "Pixel Recurrent Neural Networks", arXiv:1601.06759, sections 3.1–3.2).
//
// Both start with a 7×7 type-A masked convolution and end with ReLU – 1×1 – ReLU – 1×1 (type B,
// R→G→B channel groups), like PixelCNN; in between, residual LSTM layers x ← x + 1×1(LSTM(x)).
// Row LSTM: rows one at a time; input-to-state is a 1×3 convolution on the current row masked to
// the left (type B), state-to-state a 1×3 convolution on the row above — a triangular context
// (the scan is one op with its pullback, in RowScan.swift).
// Diagonal BiLSTM: the map is skewed (row i shifted right by i) so that diagonals become columns;
// columns one at a time with a 2×1 state-to-state convolution (the cell to the left and the one
// above-left); a second LSTM runs right to left on the mirrored map and is shifted down one row
// before the two are added, so it never sees the current row (both scans are one op with its
// pullback, in DiagonalScan.swift).
// States have `stateFilters` channels (the paper's h) and features `filters` (its 2h; by default
// the two are equal). Optional dropout (`dropout`) on each layer's LSTM states before its residual
// 1×1, in training only. Optional skip connections (`skipConnections`, the paper's §3.3): each
// layer's states also reach the head through their own 1×1. Deviations: no learned initial state;
// gate channel groups repeat the feature groups so that RGB masking holds inside the cell. Both
// sample row by row with the rows above cached: one row's forward pass per value instead of the image's.

import Autodiff
import Autoregressive
import Foundation
import NeuralNetworks
import Tensors

/// A mask repeated `copies` times along the output axis (gate stacks keep the feature groups).
func repeatedMask(_ mask: Tensor, copies: Int) -> Tensor { Kernels.concatenate([Tensor](repeating: mask, count: copies), axis: 0) }

/// Keeps only the centre row of a k×k mask, and on it columns left of the centre (and the centre by `type`'s group rule).
func centreRowMask(outputs: Int, inputs: Int, k: Int, type: MaskType, groups: Int) -> Tensor {
    var mask = RasterMask.make(outputs: outputs, inputs: inputs, kernelSize: k, type: type, groups: groups)
    for o in 0..<outputs { for i in 0..<inputs { for r in 0..<k where r != k / 2 { for c in 0..<k { mask[o, i, r, c] = 0 } } } }
    return mask
}

/// Shared structure: first 7×7 type-A convolution, residual LSTM layers, 1×1 head.
public class PixelRNNBase {
    public let configuration: ImageModelConfiguration
    public let first: MaskedConv2D
    public let residuals: [MaskedConv2D]
    public let head1: MaskedConv2D
    public let head2: MaskedConv2D
    /// With `skipConnections`: per layer a 1×1 (type B) from its LSTM states to the features, summed
    /// into the head's input (the paper's learnable skip connections); empty otherwise.
    public let skips: [MaskedConv2D]
    /// Armed by `prepareStep` when `dropout` > 0; the next forward pass that records gradients draws its masks.
    var pendingDropout = PendingDropout()

    init(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) {
        self.configuration = configuration
        let (c, f, p) = (configuration.channels, configuration.filters, configuration.outputsPerDimension)
        first = MaskedConv2D(inputs: c, outputs: f, kernelSize: configuration.firstKernel, type: .a, groups: c, generator: &generator)
        residuals = (0..<configuration.blocks).map { _ in
            MaskedConv2D(inputs: configuration.lstmStates, outputs: f, kernelSize: 1, type: .b, groups: c, generator: &generator)
        }
        head1 = MaskedConv2D(inputs: f, outputs: f, kernelSize: 1, type: .b, groups: c, generator: &generator)
        head2 = MaskedConv2D(inputs: f, outputs: c * p, kernelSize: 1, type: .b, groups: c, generator: &generator)
        skips = (0..<(configuration.skipConnections ? configuration.blocks : 0)).map { _ in
            MaskedConv2D(inputs: configuration.lstmStates, outputs: f, kernelSize: 1, type: .b, groups: c, generator: &generator)
        }
    }

    var baseParameters: [NamedParameter] {
        var list = prefixed("first", first.parameters)
        for (i, r) in residuals.enumerated() { list += prefixed("layer\(i).residual", r.parameters) }
        for (i, s) in skips.enumerated() { list += prefixed("layer\(i).skip", s.parameters) }
        return list + prefixed("head1", head1.parameters) + prefixed("head2", head2.parameters)
    }

    /// Layer `l`'s output from its input `h` and LSTM `states`: `h + residual(states)`; with skip
    /// connections also adds the layer's skip term to `skip`.
    func layerOutput(_ l: Int, _ h: Variable, states: Variable, skip: inout Variable?) -> Variable {
        if !skips.isEmpty { let term = skips[l](states); skip = skip.map { $0 + term } ?? term }
        return h + residuals[l](states)
    }

    /// ReLU – 1×1 – ReLU – 1×1 on the last layer's output plus the skip terms.
    func head(_ h: Variable, skip: Variable?) -> Variable { head2(relu(head1(relu(skip.map { h + $0 } ?? h)))) }

    /// The LSTM part of layer `l` on features `[N, F, H, W]`, giving states `[N, h, H, W]`.
    func recurrent(_ layer: Int, _ x: Variable) -> Variable { fatalError("subclass") }

    public func logitMaps(_ x: Tensor) -> Variable {
        let c = configuration
        let image = Kernels.scale(x, by: 1 / Float(c.levels - 1)).reshaped([x.shape[0], c.channels, c.height, c.width])
        var h = first(Variable(image))
        var dropping = c.dropout > 0 ? pendingDropout.take() : nil
        var skip: Variable? = nil
        for l in 0..<residuals.count {
            let states = recurrent(l, h)
            h = layerOutput(l, h, states: dropping != nil ? dropout(states, rate: c.dropout, generator: &dropping!) : states, skip: &skip)
        }
        return head(h, skip: skip)
    }

    public func prepareStep(_ generator: inout RandomGenerator) {
        if configuration.dropout > 0 { pendingDropout.arm(from: &generator) }
    }
}

/// Row LSTM (PixelRNN §3.1).
public final class RowLSTM: PixelRNNBase, LogitMapImageModel {
    public let inputToState: [Conv2D]
    public let stateToState: [Conv2D]

    public override init(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) {
        let (c, f, h) = (configuration.channels, configuration.filters, configuration.lstmStates)
        inputToState = (0..<configuration.blocks).map { _ in
            Conv2D(inputs: f, outputs: 4 * h, kernelSize: 3,
                   mask: repeatedMask(centreRowMask(outputs: h, inputs: f, k: 3, type: .b, groups: c), copies: 4), generator: &generator)
        }
        // Applied to the row above laid out as a one-row image: only the centre row of the kernel meets data.
        stateToState = (0..<configuration.blocks).map { _ in
            Conv2D(inputs: h, outputs: 4 * h, kernelSize: 3, mask: Tensor(shape: [4 * h, h, 3, 3]) { m in
                for i in 0..<m.count { m[i] = (i / 3) % 3 == 1 ? 1 : 0 }
            }, bias: false, generator: &generator)
        }
        super.init(configuration, generator: &generator)
    }

    public var parameters: [NamedParameter] {
        var list = baseParameters
        for l in 0..<inputToState.count {
            list += prefixed("layer\(l).input", inputToState[l].parameters) + prefixed("layer\(l).state", stateToState[l].parameters)
        }
        return list
    }

    /// The state kernel's centre row as three taps (the row above, columns j − 1, j, j + 1).
    override func recurrent(_ layer: Int, _ x: Variable) -> Variable {
        let h = configuration.lstmStates
        let taps = reshape(permute(slice(stateToState[layer].weight, axis: 2, range: 1..<2), [2, 3, 0, 1]), [3, 4 * h, h])
        return rowLSTM(gates: inputToState[layer](x), state: taps)
    }
}

extension RowLSTM {
    public func makeIncrementalSampler() -> (any IncrementalSampler)? { RowCachedSampler(model: self) }

    /// Raster-order sampling that keeps what the rows above fixed: each layer's hidden and cell state
    /// of the finished row and its state-to-state term. Everything else is row-local (the 1×3
    /// input-to-state kernel, the 1×1 residuals and head) except the first k×k convolution, which reads
    /// the k/2 rows above, so each value drawn costs one forward pass over one row instead of the
    /// image (H times less work). Same draws as the generic sampler for the same seed.
    struct RowCachedSampler: IncrementalSampler {
        let model: RowLSTM

        func sample(count: Int, conditionedOn observation: PartialObservation?, temperature: Float,
                    generator: inout RandomGenerator) -> Tensor {
            let layers = model.inputToState.count
            var hiddenAbove = [Variable?](repeating: nil, count: layers), cellAbove = hiddenAbove
            var stateTerms = hiddenAbove
            /// Row y of the network: its logits `[N, C·P, 1, W]` and each layer's states.
            func row(_ x: Tensor, _ y: Int) -> (logits: Tensor, hidden: [Variable], cell: [Variable]) {
                var h = firstLayerRow(model.first, x, row: y, configuration: model.configuration)
                var hidden: [Variable] = [], cell: [Variable] = []
                var skip: Variable? = nil
                for l in 0..<layers {
                    var gates = model.inputToState[l](h)
                    if let term = stateTerms[l] { gates = gates + term }
                    let state = lstmCell(gates: gates, cell: cellAbove[l])
                    hidden.append(state.hidden); cell.append(state.cell)
                    h = model.layerOutput(l, h, states: state.hidden, skip: &skip)
                }
                return (model.head(h, skip: skip).value, hidden, cell)
            }
            return sampleRowByRow(count: count, configuration: model.configuration, observation: observation,
                                  temperature: temperature, generator: &generator,
                                  startRow: { _ in stateTerms = (0..<layers).map { l in hiddenAbove[l].map { model.stateToState[l]($0) } } },
                                  logits: { x, y in row(x, y).logits },
                                  finishRow: { x, y in let finished = row(x, y); hiddenAbove = finished.hidden; cellAbove = finished.cell })
        }
    }
}

/// The first k×k masked convolution at row `y` only, `[N, F, 1, W]`, from the image rows it reads
/// (y − k/2 … y of flat images `x` `[N, D]`, zeros above the image).
func firstLayerRow(_ first: MaskedConv2D, _ x: Tensor, row y: Int, configuration c: ImageModelConfiguration) -> Variable {
    let (n, channels, width, hw, reach) = (x.shape[0], c.channels, c.width, c.height * c.width, c.firstKernel / 2)
    let scale = 1 / Float(c.levels - 1)
    let strip = Tensor(shape: [n, channels, reach + 1, width]) { s in
        for b in 0..<n { for ch in 0..<channels { for r in 0...reach {
            let target = ((b * channels + ch) * (reach + 1) + r) * width
            guard y - reach + r >= 0 else { for j in 0..<width { s[target + j] = 0 }; continue }
            let source = b * c.dimensions + ch * hw + (y - reach + r) * width
            for j in 0..<width { s[target + j] = x.scalars[source + j] * scale }
        } } }
    }
    return slice(first(Variable(strip)), axis: 2, range: reach..<(reach + 1))
}

/// The raster-order loop of the row-cached samplers, without a graph: `startRow(y)` before row y,
/// `logits(x, y)` (`[N, C·P, 1, W]`, row y given the values drawn so far) before each value that is
/// not observed, `finishRow(x, y)` once the row is complete. Draws as `genericSample` does.
func sampleRowByRow(count: Int, configuration c: ImageModelConfiguration, observation: PartialObservation?, temperature: Float,
                    generator: inout RandomGenerator, startRow: (Int) -> Void, logits rowLogits: (Tensor, Int) -> Tensor,
                    finishRow: (Tensor, Int) -> Void) -> Tensor {
    let (channels, width, p, hw, d) = (c.channels, c.width, c.outputsPerDimension, c.height * c.width, c.dimensions)
    var x = Tensor.zeros([count, d])
    var logit = [Float](repeating: 0, count: p)
    GradientMode.withoutGradients {
        for y in 0..<c.height {
            startRow(y)
            for column in 0..<width {
                for channel in 0..<channels {
                    let dimension = channel * hw + y * width + column
                    if let observation, observation.observed[dimension] {
                        for b in 0..<count { x.scalars[b * d + dimension] = observation.value(row: b, dimension: dimension) }
                        continue
                    }
                    let logits = rowLogits(x, y)
                    for b in 0..<count {
                        for k in 0..<p { logit[k] = logits.scalars[((b * channels + channel) * p + k) * width + column] }
                        x.scalars[b * d + dimension] = logit.withUnsafeBufferPointer {
                            drawOne($0.baseAddress!, count: p, temperature: temperature, generator: &generator)
                        }
                    }
                }
            }
            finishRow(x, y)
        }
    }
    return x
}

/// Diagonal BiLSTM (PixelRNN §3.2).
public final class DiagonalBiLSTM: PixelRNNBase, LogitMapImageModel {
    /// 1×1 type B, both directions' gates stacked: 8h outputs, each h-block with the feature groups.
    public let inputToState: [Conv2D]
    /// Per layer and direction: kernel 2 down the column (rows i − 1 and i of the previous column).
    public let stateToState: [Conv1D]

    public override init(_ configuration: ImageModelConfiguration, generator: inout RandomGenerator) {
        let (c, f, h) = (configuration.channels, configuration.filters, configuration.lstmStates)
        inputToState = (0..<configuration.blocks).map { _ in
            Conv2D(inputs: f, outputs: 8 * h, kernelSize: 1,
                   mask: repeatedMask(RasterMask.make(outputs: h, inputs: f, kernelSize: 1, type: .b, groups: c), copies: 8), generator: &generator)
        }
        stateToState = (0..<(2 * configuration.blocks)).map { _ in
            Conv1D(inputs: h, outputs: 4 * h, kernelWidth: 2, bias: false, generator: &generator)
        }
        super.init(configuration, generator: &generator)
    }

    public var parameters: [NamedParameter] {
        var list = baseParameters
        for l in 0..<inputToState.count {
            list += prefixed("layer\(l).input", inputToState[l].parameters)
                + prefixed("layer\(l).leftToRight", stateToState[2 * l].parameters) + prefixed("layer\(l).rightToLeft", stateToState[2 * l + 1].parameters)
        }
        return list
    }

    /// Input-to-state as a masked product over pixels, channels last (`[N, H, W, 8F]`, what
    /// `diagonalBiLSTM` reads), then both scans.
    override func recurrent(_ layer: Int, _ x: Variable) -> Variable {
        let (n, f, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (conv, h) = (inputToState[layer], configuration.lstmStates)
        let gates = linear(reshape(permute(x, [0, 2, 3, 1]), [n * height * width, f]), weight: reshape(conv.weight, [8 * h, f]),
                           bias: conv.bias, mask: conv.mask?.reshaped([8 * h, f]))
        return diagonalBiLSTM(gates: reshape(gates, [n, height, width, 8 * h]),
                              leftToRight: stateToState[2 * layer].weight, rightToLeft: stateToState[2 * layer + 1].weight)
    }
}

extension DiagonalBiLSTM {
    public func makeIncrementalSampler() -> (any IncrementalSampler)? { RowCachedSampler(model: self) }

    /// Raster-order sampling with the rows above cached. Unskewed, the left-to-right state at (y, x)
    /// comes from the states at (y − 1, x) and (y, x − 1) (the cell from (y, x − 1)); the right-to-left
    /// one from (y − 1, x) and (y, x + 1), and the layer reads it one row down. So row y needs, per layer,
    /// only both directions' hidden states of the finished row above: each value drawn runs the
    /// left-to-right scan along one row, and a finished row also runs the right-to-left one. Skewed
    /// positions off the image to the left hold zero states (zero gates, no state bias), which is
    /// why the scans start from nothing. Same draws as the generic sampler for the same seed.
    struct RowCachedSampler: IncrementalSampler {
        let model: DiagonalBiLSTM

        func sample(count: Int, conditionedOn observation: PartialObservation?, temperature: Float,
                    generator: inout RandomGenerator) -> Tensor {
            // f: the LSTM state channels (h).
            let (width, f, layers) = (model.configuration.width, model.configuration.lstmStates, model.inputToState.count)
            // Per layer, the finished row above: each direction's hidden states, [W, N, F], and their state terms.
            var aboveLeft = [Variable?](repeating: nil, count: layers), aboveRight = aboveLeft
            var leftTerms = aboveLeft, rightTerms = aboveLeft
            // The state-to-state kernel's two taps as [4F, F]: tap 0 meets the row above, tap 1 the neighbour in the row.
            let taps = GradientMode.withoutGradients {
                model.stateToState.map { conv in (0..<2).map { t in reshape(slice(conv.weight, axis: 0, range: t..<(t + 1)), [4 * f, f]) } }
            }
            /// One direction along the row: gates `[W, N, 4F]`, the row-above term `[W, N, 4F]`, columns in scan order.
            func scan(_ gates: Variable, above: Variable?, tap: Variable, order: [Int]) -> Variable {
                let count = gates.shape[1]
                var hidden: Variable? = nil, cell: Variable? = nil
                var columns = [Variable?](repeating: nil, count: width)
                for j in order {
                    var g = reshape(slice(gates, axis: 0, range: j..<(j + 1)), [count, 4 * f])
                    if let above { g = g + reshape(slice(above, axis: 0, range: j..<(j + 1)), [count, 4 * f]) }
                    if let hidden { g = g + matmul(hidden, tap, transposeRight: true) }
                    (hidden, cell) = lstmCell(gates: g, cell: cell)
                    columns[j] = reshape(hidden!, [1, count, f])
                }
                return concatenate(columns.map { $0! }, axis: 0)
            }
            let leftToRightOrder = Array(0..<width), rightToLeftOrder = Array((0..<width).reversed())
            func aboveTerm(_ states: Variable?, _ tap: Variable) -> Variable? {
                states.map { s in reshape(matmul(reshape(s, [s.shape[0] * s.shape[1], f]), tap, transposeRight: true), [s.shape[0], s.shape[1], 4 * f]) }
            }
            /// Row y of the network; with `finishing`, also each layer's states for the row below.
            func row(_ x: Tensor, _ y: Int, finishing: Bool) -> (logits: Tensor, left: [Variable], right: [Variable]) {
                let count = x.shape[0]
                var h = firstLayerRow(model.first, x, row: y, configuration: model.configuration)
                var left: [Variable] = [], right: [Variable] = []
                var skip: Variable? = nil
                for l in 0..<layers {
                    let gates = permute(reshape(model.inputToState[l](h), [count, 8 * f, width]), [2, 0, 1])  // [W, N, 8F]
                    let halves = split(gates, axis: 2, sizes: [4 * f, 4 * f])
                    let leftToRight = scan(halves[0], above: leftTerms[l], tap: taps[2 * l][1], order: leftToRightOrder)
                    left.append(leftToRight)
                    if finishing {
                        right.append(scan(halves[1], above: rightTerms[l], tap: taps[2 * l + 1][1], order: rightToLeftOrder))
                    }
                    var out = leftToRight
                    if let shifted = aboveRight[l] { out = out + shifted }
                    h = model.layerOutput(l, h, states: reshape(permute(out, [1, 2, 0]), [count, f, 1, width]), skip: &skip)
                }
                return (model.head(h, skip: skip).value, left, right)
            }
            return sampleRowByRow(count: count, configuration: model.configuration, observation: observation,
                                  temperature: temperature, generator: &generator,
                                  startRow: { _ in
                                      leftTerms = (0..<layers).map { aboveTerm(aboveLeft[$0], taps[2 * $0][0]) }
                                      rightTerms = (0..<layers).map { aboveTerm(aboveRight[$0], taps[2 * $0 + 1][0]) }
                                  },
                                  logits: { x, y in row(x, y, finishing: false).logits },
                                  finishRow: { x, y in let finished = row(x, y, finishing: true); aboveLeft = finished.left; aboveRight = finished.right })
        }
    }
}
