import CZlib
import Foundation
import Tensors

/// Why a checkpoint could not be read or written; each message names the file and says what to do.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case shapeMismatch(path: String, name: String, expected: [Int], found: [Int])
    case unsupportedDType(path: String, name: String, dtype: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            "cannot read checkpoint \(path): \(reason); check the path"
        case let .corrupt(path, reason):
            "checkpoint \(path) is corrupt (\(reason)); use another checkpoint (the run directory keeps the best and the latest)"
        case let .missingTensor(path, name):
            "checkpoint \(path) has no tensor '\(name)'; it was written by a different model or configuration"
        case let .shapeMismatch(path, name, expected, found):
            "checkpoint \(path): tensor '\(name)' has shape \(found) but the model needs \(expected); it was written by a different configuration"
        case let .unsupportedDType(path, name, dtype):
            "checkpoint \(path): tensor '\(name)' has dtype \(dtype), only F32 is supported; convert it to float32"
        case let .writeFailed(path, reason):
            "cannot write checkpoint \(path): \(reason); check free space and permissions"
        }
    }
}

/// Named Float32 tensors plus a string metadata map, stored in the safetensors layout:
///
///     [8 bytes: header length N, little-endian u64]
///     [N bytes: JSON {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, …,
///                      "__metadata__": {"key": "value", …}}, padded with spaces to a multiple of 8]
///     [raw little-endian data, tensors in key order]
///
/// Any safetensors reader loads these files. Seriatim adds `seriatim.crc32` to the metadata:
/// the CRC-32 of the data section, checked on load.
public struct Checkpoint: Equatable {
    public var tensors: [String: Tensor]
    public var metadata: [String: String]

    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    static let checksumKey = "seriatim.crc32"

    /// The file's bytes.
    public func serialized() -> Data {
        let names = tensors.keys.sorted()
        var data = Data()
        var header: [String: Any] = [:]
        for name in names {
            let tensor = tensors[name]!
            let begin = data.count
            tensor.withUnsafeBufferPointer { buffer in
                // Float32 little-endian: the in-memory layout on every platform Swift targets here.
                data.append(UnsafeBufferPointer(start: UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                                count: buffer.count * 4))
            }
            header[name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [begin, data.count]] as [String: Any]
        }
        var meta = metadata
        meta[Checkpoint.checksumKey] = String(Checkpoint.crc32(data))
        header["__metadata__"] = meta
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var file = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(data)
        return file
    }

    /// Writes atomically: a temporary file in the same directory, fsync, rename over `path`,
    /// fsync of the directory. A crash at any point leaves either the old file or the new one.
    public func write(to path: String) throws {
        let bytes = serialized()
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = "\(directory)/.\(url.lastPathComponent).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        var written = 0
        let ok: Bool = bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n <= 0 { return false }
                written += n
            }
            return fsync(fd) == 0
        }
        let reason = String(cString: strerror(errno))
        close(fd)
        guard ok else {
            unlink(temporary)
            throw CheckpointError.writeFailed(path: path, reason: reason)
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CheckpointError.writeFailed(path: path, reason: reason)
        }
        let dfd = open(directory, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Reads and verifies a checkpoint file.
    public static func read(from path: String) throws -> Checkpoint {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        return try parse(data, path: path)
    }

    /// Parses checkpoint bytes (`path` is only used in error messages).
    public static func parse(_ data: Data, path: String) throws -> Checkpoint {
        func corrupt(_ reason: String) -> CheckpointError { .corrupt(path: path, reason: reason) }
        guard data.count >= 8 else { throw corrupt("\(data.count) bytes, shorter than the 8-byte header length") }
        let headerLength = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw corrupt("header claims \(headerLength) bytes but the file has \(data.count - 8) after the length; truncated?")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(headerLength)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw corrupt("the header is not a JSON object")
        }
        let body = data.subdata(in: (8 + Int(headerLength))..<data.count)
        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let map = meta as? [String: String] else { throw corrupt("__metadata__ is not a string map") }
            metadata = map
        }
        var tensors: [String: Tensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            guard let info = entry as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw corrupt("entry '\(name)' lacks dtype, shape or data_offsets") }
            guard dtype == "F32" else { throw CheckpointError.unsupportedDType(path: path, name: name, dtype: dtype) }
            let (begin, end) = (offsets[0], offsets[1])
            guard shape.allSatisfy({ $0 >= 0 }), begin >= 0, end <= body.count, end - begin == shape.reduce(1, *) * 4 else {
                throw corrupt("tensor '\(name)' with shape \(shape) has offsets \(begin)..<\(end) outside the \(body.count)-byte data section")
            }
            let count = shape.reduce(1, *)
            let scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                body.withUnsafeBytes { raw in
                    UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: raw.baseAddress! + begin, byteCount: count * 4)
                }
                initialized = count
            }
            tensors[name] = Tensor(shape: shape, scalars: scalars)
        }
        if let stored = metadata[checksumKey] {
            let actual = String(crc32(body))
            guard stored == actual else { throw corrupt("checksum \(actual) does not match the stored \(stored)") }
            metadata[checksumKey] = nil
        }
        return Checkpoint(tensors: tensors, metadata: metadata)
    }

    /// The tensor `name` with the expected shape.
    public func tensor(_ name: String, shape: [Int], path: String) throws -> Tensor {
        guard let t = tensors[name] else { throw CheckpointError.missingTensor(path: path, name: name) }
        guard t.shape == shape else { throw CheckpointError.shapeMismatch(path: path, name: name, expected: shape, found: t.shape) }
        return t
    }

    /// Copies stored values into `parameters` after checking that every one is present with its shape
    /// (nothing is changed if any check fails).
    public func load(into parameters: [NamedParameter], prefix: String = "", path: String) throws {
        let values = try parameters.map { try tensor(prefix + $0.name, shape: $0.variable.shape, path: path) }
        for (p, v) in zip(parameters, values) { p.variable.value = v }
    }

    /// Adds the parameters' values under their names.
    public mutating func store(_ parameters: [NamedParameter], prefix: String = "") {
        for p in parameters { tensors[prefix + p.name] = p.variable.value }
    }

    /// The CRC-32 of `data` (zlib's).
    public static func checksum(_ data: Data) -> UInt { crc32(data) }

    static func crc32(_ data: Data) -> UInt {
        data.withUnsafeBytes { raw in
            var crc: UInt = CZlib.crc32(0, nil, 0)
            var offset = 0
            while offset < raw.count {
                let chunk = min(raw.count - offset, Int(Int32.max))
                crc = CZlib.crc32(crc, raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, UInt32(chunk))
                offset += chunk
            }
            return crc
        }
    }
}

extension Checkpoint {
    /// Adds the optimizer's state tensors (under `optimizer.`) and its step count.
    public mutating func store(_ optimizer: any Optimizer) {
        for (name, t) in optimizer.stateTensors() { tensors["optimizer.\(name)"] = t }
        metadata["optimizer.step"] = String(optimizer.stepCount)
    }

    /// Restores optimizer state written by `store(_:)`.
    public func restore(_ optimizer: any Optimizer, path: String) throws {
        guard let step = metadata["optimizer.step"].flatMap(Int.init) else {
            throw CheckpointError.corrupt(path: path, reason: "no optimizer step count in the metadata")
        }
        var state: [String: Tensor] = [:]
        for (name, t) in tensors where name.hasPrefix("optimizer.") { state[String(name.dropFirst("optimizer.".count))] = t }
        optimizer.loadState(state, stepCount: step)
    }

    /// Stores a random generator's state under `key`.
    public mutating func store(_ generator: RandomGenerator, key: String) {
        metadata[key] = generator.stateWords.map { String($0) }.joined(separator: ",")
    }

    /// The random generator stored under `key`.
    public func generator(_ key: String, path: String) throws -> RandomGenerator {
        guard let words = metadata[key]?.split(separator: ",").compactMap({ UInt64($0) }), words.count == 4, words.contains(where: { $0 != 0 }) else {
            throw CheckpointError.corrupt(path: path, reason: "no valid random generator state '\(key)' in the metadata")
        }
        return RandomGenerator(stateWords: words)
    }
}
