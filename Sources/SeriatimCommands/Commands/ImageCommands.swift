import ArgumentParser
import Autodiff
import Autoregressive
import Foundation
import ImageModels
import NeuralNetworks
import Tensors

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Negative log-likelihood of an image model on a data split.")

    @Option(help: "A run directory (its best checkpoint) or a checkpoint file.") var checkpoint: String
    @Option(help: "train, validation or test.") var split = "test"
    @Option(help: "Data to evaluate on (default: the run's own).") var data: String?
    @Flag(help: "Print JSON with nll_nats, nll_nats_stderr, bits_per_dim, examples.") var json = false
    @Flag(help: "In a run with averageDecay, score the weights themselves instead of their moving average.") var rawWeights = false

    func run() throws {
        let (model, run, file) = try loadImageModel(checkpoint, rawWeights: rawWeights)
        guard let which = DataSplit(rawValue: split) else { throw UserError("unknown split '\(split)'; use train, validation or test") }
        guard let name = data ?? run?.data else { throw UserError("no run.json beside \(file) says which data to use; pass --data") }
        let dataset = try loadImages(name, binarization: run?.binarization, seed: run?.seed ?? 0)
        let c = model.configuration
        guard dataset.channels == c.channels, dataset.height == c.height, dataset.width == c.width, dataset.levels == c.levels else {
            throw UserError("the model is for \(c.channels)×\(c.height)×\(c.width) images with \(c.levels) levels; \(name) does not match")
        }
        let set = which == .train ? dataset.train : which == .validation ? dataset.validation : dataset.test
        var nats: [Double] = [], ensemble: [Double] = []
        let made = model as? MADE
        var start = 0
        while start < set.count {
            let indices = Array(start..<min(set.count, start + 500))
            let batch = set.rows(indices)
            (model as? GatedPixelCNN)?.classes = indices.map { set.labels[$0] }
            GradientMode.withoutGradients {
                nats += model.evaluationLogProbability(batch).map { -$0 }
                if let made, made.network.maskSets.count > 1 { ensemble += made.ensembleLogProbability(batch).map { -$0 } }
            }
            start += 500
        }
        let summary = LikelihoodSummary(perExampleNats: nats, dimensions: model.dimensionCount)
        var result: [String: Any] = ["nll_nats": summary.nats, "nll_nats_stderr": summary.standardError, "bits_per_dim": summary.bitsPerDimension,
                                     "examples": summary.examples, "split": split, "data": name, "protocol": dataset.protocolDescription,
                                     "model": c.kind]
        var ensembleSummary: LikelihoodSummary? = nil
        if !ensemble.isEmpty {
            let e = LikelihoodSummary(perExampleNats: ensemble, dimensions: model.dimensionCount)
            ensembleSummary = e
            result["ensemble_nll_nats"] = e.nats
            result["ensemble_nll_nats_stderr"] = e.standardError
            result["ensemble_bits_per_dim"] = e.bitsPerDimension
            result["ensemble_masks"] = made!.network.maskSets.count
        }
        if json { printJSONValue(result); return }
        print(String(format: "%@ NLL on %@ (%d images, %@): %.4f ± %.4f nats, %.4f bits/dim",
                     c.kind, split, summary.examples, dataset.protocolDescription, summary.nats, 2 * summary.standardError, summary.bitsPerDimension)
              + (made != nil ? " (one mask)" : ""))
        if let e = ensembleSummary {
            print(String(format: "ensemble of %d masks (log-mean-exp of likelihoods): %.4f ± %.4f nats, %.4f bits/dim",
                         made!.network.maskSets.count, e.nats, 2 * e.standardError, e.bitsPerDimension))
        }
        if let entropy = dataset.entropy { print(String(format: "true entropy of the data: %.4f nats", entropy)) }
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw images from an image model into a PNG grid.")

    @Option(help: "A run directory or checkpoint file.") var checkpoint: String
    @Option(help: "Images to draw.") var count = 16
    @Option(help: "Output PNG.") var out: String
    @Option(help: "Class to draw (class-conditional models).") var `class`: Int?
    @Option(help: "A PNG to complete: the kept part is fixed, the rest is sampled.") var complete: String?
    @Option(help: "Which part of --complete to keep: top-half, bottom-half, left-half, right-half.") var keep = "top-half"
    @Option(help: "Sampling temperature (0: most likely values).") var temperature: Float = 1
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "Images per row of the grid.") var columns = 4

    func run() throws {
        guard count >= 1, columns >= 1, temperature >= 0 else { throw UserError("--count and --columns must be at least 1 and --temperature non-negative") }
        let (model, _, _) = try loadImageModel(checkpoint)
        let c = model.configuration
        if let label = `class` {
            guard let gated = model as? GatedPixelCNN, c.conditionalClasses > 0 else { throw UserError("this model is not class-conditional; drop --class") }
            guard (0..<c.conditionalClasses).contains(label) else { throw UserError("--class must be 0…\(c.conditionalClasses - 1)") }
            gated.classes = [label]
        }
        var observation: PartialObservation? = nil
        if let complete {
            let image: (pixels: [UInt8], width: Int, height: Int, channels: Int)
            do { image = try PNG.read(complete) } catch { throw UserError("\(error)") }
            guard image.width == c.width, image.height == c.height, image.channels == c.channels else {
                throw UserError("\(complete) is \(image.width)×\(image.height) with \(image.channels) channels; the model draws \(c.width)×\(c.height) with \(c.channels)")
            }
            let values = image.pixels.map { Float((Float($0) / 255 * Float(c.levels - 1)).rounded()) }
            let observed: [Bool] = (0..<c.dimensions).map { d in
                let p = d % (c.height * c.width), y = p / c.width, x = p % c.width
                switch keep {
                case "top-half": return y < c.height / 2
                case "bottom-half": return y >= c.height / 2
                case "left-half": return x < c.width / 2
                case "right-half": return x >= c.width / 2
                default: return false
                }
            }
            guard ["top-half", "bottom-half", "left-half", "right-half"].contains(keep) else {
                throw UserError("unknown --keep '\(keep)'; use top-half, bottom-half, left-half or right-half")
            }
            observation = PartialObservation(values: Tensor(shape: [c.dimensions], scalars: values), observed: observed)
        }
        var generator = RandomGenerator(seed: seed)
        let started = DispatchTime.now().uptimeNanoseconds
        let samples = model.sample(count: count, conditionedOn: observation, temperature: temperature, generator: &generator)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let grid = PNG.grid(samples.reshaped([count, c.channels, c.height, c.width]), levels: c.levels, columns: columns,
                            scale: max(1, 64 / c.width))
        do { try PNG.write(grid.pixels, width: grid.width, height: grid.height, channels: grid.channels, to: out) } catch { throw UserError("\(error)") }
        print(String(format: "wrote %@: %d samples in %.2f s", out, count, seconds))
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw an image model's masks or a pixel's receptive field.")

    @Option(help: "A run directory or checkpoint file.") var checkpoint: String
    @Flag(help: "Draw every layer's mask.") var masks = false
    @Flag(help: "Draw which pixels the conditional of --pixel depends on.") var receptiveField = false
    @Option(help: "ROW,COLUMN of the pixel for --receptive-field (default: the centre).") var pixel: String?
    @Option(help: "Output PNG.") var out: String

    func run() throws {
        guard masks != receptiveField else { throw UserError("choose one of --masks or --receptive-field") }
        let (model, _, _) = try loadImageModel(checkpoint)
        let c = model.configuration
        if masks {
            let layers: [Tensor]
            switch model {
            case let m as FVSBN: layers = m.masks
            case let m as MADE: layers = m.masks
            case let m as PixelCNN: layers = m.masks
            default: throw UserError("NADE has no masks (its weights are tied through a running sum); use --receptive-field")
            }
            // Each mask as a block of pixels, stacked top to bottom with a grey gap; conv masks show
            // their spatial pattern for every (output, input) channel pair.
            let pictures: [(width: Int, height: Int, pixels: [UInt8])] = layers.map { mask in
                if mask.rank == 2 {
                    return (mask.shape[1], mask.shape[0], mask.scalars.map { $0 != 0 ? 255 : 0 })
                }
                let (o, i, k) = (min(mask.shape[0], 12), min(mask.shape[1], 12), mask.shape[2])
                let (w, h) = (i * (k + 1), o * (k + 1))
                var pixels = [UInt8](repeating: 128, count: w * h)
                for oc in 0..<o { for ic in 0..<i { for r in 0..<k { for col in 0..<k {
                    pixels[(oc * (k + 1) + r) * w + ic * (k + 1) + col] = mask[oc * mask.shape[0] / o, ic * mask.shape[1] / i, r, col] != 0 ? 255 : 0
                } } } }
                return (w, h, pixels)
            }
            let width = pictures.map(\.width).max()!, height = pictures.reduce(0) { $0 + $1.height + 2 }
            var canvas = [UInt8](repeating: 128, count: width * height)
            var top = 0
            for p in pictures {
                for y in 0..<p.height { for x in 0..<p.width { canvas[(top + y) * width + x] = p.pixels[y * p.width + x] } }
                top += p.height + 2
            }
            let scale = max(1, min(8, 512 / max(width, 1)))
            let scaled = upscale(canvas, width: width, height: height, by: scale)
            try writePNG(scaled, width: width * scale, height: height * scale)
            print("wrote \(out): masks of \(layers.count) layers (white: connected)")
            return
        }
        var (row, column) = (c.height / 2, c.width / 2)
        if let pixel {
            let parts = pixel.split(separator: ",").compactMap { Int($0) }
            guard parts.count == 2, (0..<c.height).contains(parts[0]), (0..<c.width).contains(parts[1]) else {
                throw UserError("--pixel needs ROW,COLUMN inside the \(c.height)×\(c.width) image")
            }
            (row, column) = (parts[0], parts[1])
        }
        // Perturb every input dimension in one batch and see which change the conditional of (row, column), channel 0.
        let d = model.dimensionCount
        var rng = RandomGenerator(seed: 3)
        let base = (0..<d).map { _ in Float(rng.integer(below: c.levels)) }
        var batch = [Float]()
        for j in 0...d {
            var x = base
            if j < d { x[j] = Float((Int(x[j]) + 1) % c.levels) }
            batch += x
        }
        let parameters = GradientMode.withoutGradients { model.conditionalParameters(Tensor(shape: [d + 1, d], scalars: batch)) }
        let target = row * c.width + column
        let p = parameters.shape[2]
        var depends = [Bool](repeating: false, count: d)
        for j in 0..<d {
            for k in 0..<p where abs(parameters.scalars[(j * d + target) * p + k] - parameters.scalars[(d * d + target) * p + k]) > 1e-6 {
                depends[j] = true
            }
        }
        // Grey: not seen; white: seen; red (or black for grey images): the pixel itself.
        var pixels = [UInt8](repeating: 0, count: 3 * c.height * c.width)
        for p in 0..<(c.height * c.width) {
            let seen = (0..<c.channels).contains { depends[$0 * c.height * c.width + p] }
            let v: UInt8 = seen ? 255 : 96
            for ch in 0..<3 { pixels[ch * c.height * c.width + p] = v }
        }
        pixels[target] = 255; pixels[c.height * c.width + target] = 0; pixels[2 * c.height * c.width + target] = 0
        let scale = max(1, 256 / c.width)
        var scaled = [UInt8]()
        for ch in 0..<3 {
            scaled += upscale(Array(pixels[(ch * c.height * c.width)..<((ch + 1) * c.height * c.width)]), width: c.width, height: c.height, by: scale)
        }
        do { try PNG.write(scaled, width: c.width * scale, height: c.height * scale, channels: 3, to: out) } catch { throw UserError("\(error)") }
        print("wrote \(out): the conditional of pixel (\(row), \(column)) depends on \(depends.filter { $0 }.count) of \(d) input values")
    }

    func upscale(_ pixels: [UInt8], width: Int, height: Int, by scale: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: width * height * scale * scale)
        for y in 0..<(height * scale) { for x in 0..<(width * scale) { result[y * width * scale + x] = pixels[(y / scale) * width + x / scale] } }
        return result
    }

    func writePNG(_ pixels: [UInt8], width: Int, height: Int) throws {
        do { try PNG.write(pixels, width: width, height: height, channels: 1, to: out) } catch { throw UserError("\(error)") }
    }
}
