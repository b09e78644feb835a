import Autoregressive
import CZlib
import Foundation
import Tensors

/// Why image data could not be loaded; messages say what to do.
public enum ImageDataError: Error, CustomStringConvertible, Equatable {
    case missing(name: String, path: String)
    case malformed(path: String, reason: String)
    case unknown(name: String)

    public var description: String {
        switch self {
        case let .missing(name, path): "the \(name) data is not at \(path); run 'bash scripts/prepare-images.sh' to fetch it"
        case let .malformed(path, reason): "\(path): \(reason); check that it is an IDX file (MNIST format) or the digits CSV"
        case let .unknown(name): "unknown data set '\(name)'; use digits, mnist, fashion-mnist, bars, bars:N, or a path to an IDX file"
        }
    }
}

/// How grey levels become the values a model sees.
public enum Binarization: String, Codable, Sendable {
    /// Grey levels kept (a K-way categorical per pixel).
    case none
    /// One fixed Bernoulli draw per pixel with probability intensity, made once from a seed and kept on disk.
    case `static`
    /// A fresh Bernoulli draw per pixel every time an image is used in training (evaluation uses the static draw).
    case dynamic
}

/// Images `[N, C, H, W]` holding level indices 0…levels−1 as floats, with optional labels.
public struct ImageSet: Sendable {
    public var images: Tensor
    public var labels: [Int]
    /// Grey (or colour) levels per channel value.
    public var levels: Int
    /// Intensities in [0, 1] for dynamic binarisation (nil otherwise), `[N, C, H, W]`.
    public var intensities: Tensor?

    public init(images: Tensor, labels: [Int], levels: Int, intensities: Tensor? = nil) {
        self.images = images; self.labels = labels; self.levels = levels; self.intensities = intensities
    }

    public var count: Int { images.shape[0] }
    public var channels: Int { images.shape[1] }
    public var height: Int { images.shape[2] }
    public var width: Int { images.shape[3] }
    public var dimensions: Int { channels * height * width }

    /// Images `indices` as flat rows `[n, C·H·W]`.
    public func rows(_ indices: [Int]) -> Tensor {
        let d = dimensions
        return Tensor(shape: [indices.count, d]) { out in
            images.withUnsafeBufferPointer { source in
                for (row, index) in indices.enumerated() { (out.baseAddress! + row * d).update(from: source.baseAddress! + index * d, count: d) }
            }
        }
    }

    /// The first `count` images.
    public func prefix(_ count: Int) -> ImageSet {
        let n = min(count, self.count)
        let d = dimensions
        return ImageSet(images: Tensor(shape: [n, channels, height, width], scalars: Array(images.scalars[0..<(n * d)])),
                        labels: Array(labels.prefix(n)), levels: levels,
                        intensities: intensities.map { Tensor(shape: [n, channels, height, width], scalars: Array($0.scalars[0..<(n * d)])) })
    }
}

/// A data set with its three splits and how it was binarised (every result is tagged with this).
public struct ImageDataset: Sendable {
    public var name: String
    public var train: ImageSet
    public var validation: ImageSet
    public var test: ImageSet
    public var binarization: Binarization
    /// A human-readable statement of the protocol, e.g. "static binarisation (seed 0, Seriatim)".
    public var protocolDescription: String
    /// The true entropy per image in nats, when known (bars and stripes).
    public var entropy: Double?

    public init(name: String, train: ImageSet, validation: ImageSet, test: ImageSet, binarization: Binarization,
                protocolDescription: String, entropy: Double?) {
        self.name = name; self.train = train; self.validation = validation; self.test = test
        self.binarization = binarization; self.protocolDescription = protocolDescription; self.entropy = entropy
    }

    public var levels: Int { train.levels }
    public var channels: Int { train.channels }
    public var height: Int { train.height }
    public var width: Int { train.width }
    public var classes: Int { (train.labels.max() ?? -1) + 1 }
}

// MARK: - Readers

/// The IDX format of MNIST: magic (0, 0, type 0x08 = unsigned byte, rank), big-endian extents, data.
/// Gzipped files (`.gz`) are read through zlib.
public enum IDX {
    public static func read(_ path: String) throws -> (shape: [Int], bytes: [UInt8]) {
        let data = try readMaybeGzip(path)
        guard data.count >= 4, data[0] == 0, data[1] == 0 else { throw ImageDataError.malformed(path: path, reason: "no IDX magic number") }
        guard data[2] == 0x08 else { throw ImageDataError.malformed(path: path, reason: "element type 0x\(String(data[2], radix: 16)) is not unsigned byte") }
        let rank = Int(data[3])
        guard rank >= 1, data.count >= 4 + 4 * rank else { throw ImageDataError.malformed(path: path, reason: "truncated header") }
        let shape = (0..<rank).map { i in (0..<4).reduce(0) { $0 << 8 | Int(data[4 + 4 * i + $1]) } }
        let offset = 4 + 4 * rank
        let count = shape.reduce(1, *)
        guard data.count >= offset + count else {
            throw ImageDataError.malformed(path: path, reason: "holds \(data.count - offset) of \(count) values; truncated?")
        }
        return (shape, Array(data[offset..<(offset + count)]))
    }

    /// Writes unsigned bytes with the given shape.
    public static func write(_ bytes: [UInt8], shape: [Int], to path: String) throws {
        var data: [UInt8] = [0, 0, 0x08, UInt8(shape.count)]
        for extent in shape { data += [UInt8(extent >> 24 & 255), UInt8(extent >> 16 & 255), UInt8(extent >> 8 & 255), UInt8(extent & 255)] }
        data += bytes
        try Data(data).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The bytes of a file, gunzipped when it is gzip-compressed.
    static func readMaybeGzip(_ path: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw ImageDataError.missing(name: (path as NSString).lastPathComponent, path: path) }
        guard let file = gzopen(path, "rb") else { throw ImageDataError.malformed(path: path, reason: "cannot open") }
        defer { gzclose(file) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            if n < 0 { throw ImageDataError.malformed(path: path, reason: "decompression failed") }
            if n == 0 { break }
            result += buffer[0..<Int(n)]
        }
        return result
    }
}

// MARK: - Data sets

public enum ImageDatasets {
    /// Where `scripts/prepare-images.sh` puts the data: `$SERIATIM_DATA`, else `Data/` in the working directory.
    public static var directory: String {
        ProcessInfo.processInfo.environment["SERIATIM_DATA"] ?? FileManager.default.currentDirectoryPath + "/Data"
    }

    /// Loads a data set by name: `digits`, `mnist`, `fashion-mnist`, `bars`, `bars:N`, or a path to an IDX image file.
    public static func load(_ name: String, binarization requested: Binarization? = nil, seed: UInt64 = 0) throws -> ImageDataset {
        if name == "bars" || name.hasPrefix("bars:") {
            let size = name == "bars" ? 4 : Int(name.dropFirst(5)) ?? -1
            guard (2...16).contains(size) else { throw ImageDataError.unknown(name: name) }
            return bars(size: size, seed: seed)
        }
        switch name {
        case "digits": return try digits(binarization: requested ?? .none)
        case "mnist":
            return try mnistFamily(name: "mnist", directory: directory + "/mnist", files: [
                ("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                ("validation", "validation-images-idx3-ubyte", "validation-labels-idx1-ubyte"),
                ("test", "test-images-idx3-ubyte", "test-labels-idx1-ubyte")], binarization: requested ?? .static)
        case "fashion-mnist":
            let dir = ProcessInfo.processInfo.environment["SERIATIM_FASHION_MNIST"] ?? "/usr/share/datasets/fashion-mnist"
            return try mnistFamily(name: "fashion-mnist", directory: dir, files: [
                ("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                ("test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")], binarization: requested ?? .static)
        default:
            guard FileManager.default.fileExists(atPath: name) else { throw ImageDataError.unknown(name: name) }
            return try idxPath(name, binarization: requested ?? .none, seed: seed)
        }
    }

    /// n×n bars and stripes: 10 000 training, 2 000 validation and 2 000 test images drawn from the
    /// uniform distribution over the 2ⁿ⁺¹ − 2 patterns (entropy known exactly).
    public static func bars(size: Int, seed: UInt64) -> ImageDataset {
        let generator = BarsAndStripes(size: size)
        var rng = RandomGenerator(seed: seed ^ 0xBA25)
        func set(_ n: Int) -> ImageSet {
            ImageSet(images: generator.sample(count: n, generator: &rng).reshaped([n, 1, size, size]), labels: [Int](repeating: 0, count: n), levels: 2)
        }
        return ImageDataset(name: "bars:\(size)", train: set(10_000), validation: set(2_000), test: set(2_000), binarization: .none,
                            protocolDescription: "binary (bars and stripes \(size)×\(size))", entropy: generator.entropy)
    }

    /// The 8×8 handwritten digits (1 797 images, 17 grey levels) from scikit-learn's `digits.csv.gz`:
    /// 1 437 training, 180 validation, 180 test images in file order.
    public static func digits(binarization: Binarization) throws -> ImageDataset {
        let path = directory + "/digits.csv.gz"
        let text = String(decoding: try IDX.readMaybeGzip(path), as: UTF8.self)
        var values: [Float] = [], labels: [Int] = []
        for (number, line) in text.split(separator: "\n").enumerated() {
            let fields = line.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard fields.count == 65 else { throw ImageDataError.malformed(path: path, reason: "line \(number + 1) has \(fields.count) numbers, not 65") }
            values += fields[0..<64]
            labels.append(Int(fields[64]))
        }
        let n = labels.count
        let all = ImageSet(images: Tensor(shape: [n, 1, 8, 8], scalars: values), labels: labels, levels: 17)
        let splits = split(all, validation: 180, test: 180)
        var dataset = ImageDataset(name: "digits", train: splits.0, validation: splits.1, test: splits.2, binarization: .none,
                                   protocolDescription: "17 grey levels (8×8 digits)", entropy: nil)
        if binarization != .none { dataset = binarize(dataset, binarization, seed: 0, cacheDirectory: nil) }
        return dataset
    }

    /// MNIST-format data from IDX files; with only train and test, the last 10 000 training images validate.
    static func mnistFamily(name: String, directory: String, files: [(String, String, String)], binarization: Binarization) throws -> ImageDataset {
        var sets: [String: ImageSet] = [:]
        for (split, imagesFile, labelsFile) in files {
            let path = directory + "/" + imagesFile
            guard FileManager.default.fileExists(atPath: path) else { throw ImageDataError.missing(name: name, path: path) }
            let (shape, bytes) = try IDX.read(path)
            guard shape.count == 3 else { throw ImageDataError.malformed(path: path, reason: "images need 3 axes, found \(shape)") }
            let labels = (try? IDX.read(directory + "/" + labelsFile).bytes.map(Int.init)) ?? [Int](repeating: 0, count: shape[0])
            sets[split] = ImageSet(images: Tensor(shape: [shape[0], 1, shape[1], shape[2]], scalars: bytes.map(Float.init)), labels: labels, levels: 256)
        }
        var train = sets["train"]!, validation: ImageSet
        if let v = sets["validation"] { validation = v } else {
            let parts = split(train, validation: 10_000, test: 0)
            (train, validation) = (parts.0, parts.1)
        }
        var dataset = ImageDataset(name: name, train: train, validation: validation, test: sets["test"]!, binarization: .none,
                                   protocolDescription: "256 grey levels", entropy: nil)
        // The static draw is kept beside Seriatim's own data (the source may be a read-only system folder).
        let cache = ImageDatasets.directory + "/" + name
        try? FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        if binarization != .none { dataset = binarize(dataset, binarization, seed: 0, cacheDirectory: cache) }
        return dataset
    }

    static func idxPath(_ path: String, binarization: Binarization, seed: UInt64) throws -> ImageDataset {
        let (shape, bytes) = try IDX.read(path)
        guard shape.count == 3 || shape.count == 4 else { throw ImageDataError.malformed(path: path, reason: "images need [N, H, W] or [N, H, W, C], found \(shape)") }
        let n = shape[0], h = shape[1], w = shape[2], c = shape.count == 4 ? shape[3] : 1
        var values = [Float](repeating: 0, count: n * c * h * w)
        for i in 0..<n { for y in 0..<h { for x in 0..<w { for ch in 0..<c {
            values[((i * c + ch) * h + y) * w + x] = Float(bytes[((i * h + y) * w + x) * c + ch])
        } } } }
        let all = ImageSet(images: Tensor(shape: [n, c, h, w], scalars: values), labels: [Int](repeating: 0, count: n), levels: 256)
        let splits = split(all, validation: max(1, n / 10), test: max(1, n / 10))
        var dataset = ImageDataset(name: path, train: splits.0, validation: splits.1, test: splits.2, binarization: .none,
                                   protocolDescription: "256 levels", entropy: nil)
        if binarization != .none { dataset = binarize(dataset, binarization, seed: seed, cacheDirectory: nil) }
        return dataset
    }

    /// The last `validation + test` images become validation then test.
    static func split(_ set: ImageSet, validation: Int, test: Int) -> (ImageSet, ImageSet, ImageSet) {
        let n = set.count, d = set.dimensions
        func part(_ range: Range<Int>) -> ImageSet {
            ImageSet(images: Tensor(shape: [range.count, set.channels, set.height, set.width], scalars: Array(set.images.scalars[(range.lowerBound * d)..<(range.upperBound * d)])),
                     labels: Array(set.labels[range]), levels: set.levels)
        }
        return (part(0..<(n - validation - test)), part((n - validation - test)..<(n - test)), part((n - test)..<n))
    }

    /// Binary images from grey levels: one seeded Bernoulli draw per pixel (probability level/(levels − 1)),
    /// kept on disk in `cacheDirectory` when given; `dynamic` also keeps the intensities for fresh draws.
    public static func binarize(_ dataset: ImageDataset, _ binarization: Binarization, seed: UInt64, cacheDirectory: String?) -> ImageDataset {
        var result = dataset
        for (splitIndex, keyPath) in [\ImageDataset.train, \ImageDataset.validation, \ImageDataset.test].enumerated() {
            let set = dataset[keyPath: keyPath]
            let scale = 1 / Float(set.levels - 1)
            let intensities = Tensor(shape: set.images.shape, scalars: set.images.scalars.map { $0 * scale })
            let file = cacheDirectory.map { "\($0)/binarized-static-seed\(seed)-\(["train", "validation", "test"][splitIndex]).idx" }
            var binary: [Float]
            if let file, let (shape, bytes) = try? IDX.read(file), shape == [set.count, set.height, set.width] {
                binary = bytes.map(Float.init)
            } else {
                var rng = RandomGenerator(seed: seed &+ UInt64(splitIndex) &* 0x9E37)
                binary = intensities.scalars.map { rng.uniform() < $0 ? 1 : 0 }
                if let file, set.channels == 1 { try? IDX.write(binary.map { UInt8($0) }, shape: [set.count, set.height, set.width], to: file) }
            }
            result[keyPath: keyPath] = ImageSet(images: Tensor(shape: set.images.shape, scalars: binary), labels: set.labels, levels: 2,
                                                intensities: binarization == .dynamic ? intensities : nil)
        }
        result.binarization = binarization
        result.protocolDescription = binarization == .dynamic
            ? "dynamic binarisation (fresh draw per use in training; evaluation on the static draw, seed \(seed))"
            : "static binarisation (one seeded draw per pixel, seed \(seed), kept on disk; not the Larochelle–Murray file)"
        return result
    }
}
