import CZlib
import Foundation
import Tensors

/// PNG files written and read through zlib (deflate and CRC-32), 8-bit grey or RGB.
public enum PNG {
    public enum Error: Swift.Error, CustomStringConvertible {
        case writeFailed(path: String, reason: String)
        case unreadable(path: String, reason: String)

        public var description: String {
            switch self {
            case let .writeFailed(path, reason): "cannot write \(path): \(reason); check the directory and free space"
            case let .unreadable(path, reason): "cannot read \(path) as PNG: \(reason); give an 8-bit grey or RGB PNG"
            }
        }
    }

    /// Writes `pixels` (`[channels][height][width]` flattened, values in 0…255) as an 8-bit PNG (1 or 3 channels).
    public static func write(_ pixels: [UInt8], width: Int, height: Int, channels: Int, to path: String) throws {
        precondition(channels == 1 || channels == 3, "PNG: \(channels) channels (1 or 3)")
        precondition(pixels.count == width * height * channels, "PNG: \(pixels.count) values for \(width)×\(height)×\(channels)")
        var raw = [UInt8]()
        raw.reserveCapacity(height * (1 + width * channels))
        for y in 0..<height {
            raw.append(0)  // filter: none
            for x in 0..<width { for c in 0..<channels { raw.append(pixels[(c * height + y) * width + x]) } }
        }
        var compressedLength = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedLength))
        guard compress2(&compressed, &compressedLength, raw, uLong(raw.count), 9) == Z_OK else {
            throw Error.writeFailed(path: path, reason: "deflate failed")
        }
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ body: [UInt8]) {
            file += bigEndian(UInt32(body.count))
            let typed = Array(type.utf8) + body
            file += typed
            file += bigEndian(UInt32(crc32(0, typed, uInt(typed.count))))
        }
        chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, channels == 1 ? 0 : 2, 0, 0, 0])
        chunk("IDAT", Array(compressed[0..<Int(compressedLength)]))
        chunk("IEND", [])
        do { try Data(file).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw Error.writeFailed(path: path, reason: error.localizedDescription)
        }
    }

    /// Reads an 8-bit grey or RGB PNG (no interlacing): `(pixels [channels][height][width], width, height, channels)`.
    public static func read(_ path: String) throws -> (pixels: [UInt8], width: Int, height: Int, channels: Int) {
        guard let data = FileManager.default.contents(atPath: path) else { throw Error.unreadable(path: path, reason: "no such file") }
        let bytes = [UInt8](data)
        guard bytes.count > 8, Array(bytes[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
            throw Error.unreadable(path: path, reason: "no PNG signature")
        }
        var offset = 8, width = 0, height = 0, channels = 0
        var idat: [UInt8] = []
        while offset + 8 <= bytes.count {
            let length = Int(readBigEndian(bytes, offset))
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            guard offset + 12 + length <= bytes.count else { throw Error.unreadable(path: path, reason: "truncated chunk \(type)") }
            let body = Array(bytes[(offset + 8)..<(offset + 8 + length)])
            if type == "IHDR" {
                width = Int(readBigEndian(body, 0)); height = Int(readBigEndian(body, 4))
                guard body[8] == 8, body[12] == 0, [0, 2].contains(body[9]) else {
                    throw Error.unreadable(path: path, reason: "only 8-bit grey or RGB without interlacing is supported")
                }
                channels = body[9] == 0 ? 1 : 3
            } else if type == "IDAT" { idat += body } else if type == "IEND" { break }
            offset += 12 + length
        }
        guard width > 0, height > 0 else { throw Error.unreadable(path: path, reason: "no image header") }
        let stride = width * channels
        var rawLength = uLong(height * (1 + stride))
        var raw = [UInt8](repeating: 0, count: Int(rawLength))
        guard uncompress(&raw, &rawLength, idat, uLong(idat.count)) == Z_OK, Int(rawLength) == raw.count else {
            throw Error.unreadable(path: path, reason: "image data does not inflate")
        }
        var rows = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let filter = raw[y * (1 + stride)]
            for i in 0..<stride {
                let x = raw[y * (1 + stride) + 1 + i]
                let a = i >= channels ? Int(rows[y * stride + i - channels]) : 0
                let b = y > 0 ? Int(rows[(y - 1) * stride + i]) : 0
                let c = (i >= channels && y > 0) ? Int(rows[(y - 1) * stride + i - channels]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: throw Error.unreadable(path: path, reason: "unknown row filter \(filter)")
                }
                rows[y * stride + i] = UInt8((Int(x) + predictor) & 255)
            }
        }
        var pixels = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height { for x in 0..<width { for c in 0..<channels { pixels[(c * height + y) * width + x] = rows[y * stride + x * channels + c] } } }
        return (pixels, width, height, channels)
    }

    /// A grid of images `[N, C, H, W]` with values 0…levels−1, `columns` per row, 1-pixel grey gaps,
    /// each image scaled up by `scale`.
    public static func grid(_ images: Tensor, levels: Int, columns: Int, scale: Int = 1) -> (pixels: [UInt8], width: Int, height: Int, channels: Int) {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let rows = (n + columns - 1) / columns
        let cellW = w * scale + 1, cellH = h * scale + 1
        let width = columns * cellW + 1, height = rows * cellH + 1
        var pixels = [UInt8](repeating: 128, count: c * width * height)
        for i in 0..<n {
            let (gy, gx) = (i / columns, i % columns)
            for ch in 0..<c { for y in 0..<(h * scale) { for x in 0..<(w * scale) {
                let v = images.scalars[((i * c + ch) * h + y / scale) * w + x / scale]
                let value = UInt8(max(0, min(255, (v / Float(max(levels - 1, 1)) * 255).rounded())))
                pixels[(ch * height + gy * cellH + 1 + y) * width + gx * cellW + 1 + x] = value
            } } }
        }
        return (pixels, width, height, c)
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
    static func readBigEndian(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
}
