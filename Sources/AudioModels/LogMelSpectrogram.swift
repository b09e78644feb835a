import Foundation

/// Log-mel spectrogram frames, the local-conditioning features of a vocoder-style WaveNet.
///
/// Frames of `frameLength` samples every `hop` samples (centred: frame f covers samples around
/// f·hop), Hann window, power spectrum by a radix-2 FFT of `fftSize` (next power of two ≥ frame
/// length), `bands` triangular mel filters (HTK mel scale, 0 Hz … Nyquist), natural log with floor 1e-5.
public struct LogMelSpectrogram: Codable, Sendable, Equatable {
    public var sampleRate: Int
    public var frameLength: Int
    public var hop: Int
    public var bands: Int

    public init(sampleRate: Int, frameLength: Int? = nil, hop: Int? = nil, bands: Int = 40) {
        self.sampleRate = sampleRate
        self.frameLength = frameLength ?? max(16, sampleRate / 40)  // 25 ms
        self.hop = hop ?? max(1, sampleRate / 100)                  // 10 ms
        self.bands = bands
    }

    public var fftSize: Int {
        var n = 1
        while n < frameLength { n <<= 1 }
        return n
    }

    /// The number of frames for `sampleCount` samples: one per hop, covering every sample.
    public func frameCount(samples sampleCount: Int) -> Int { sampleCount / hop + 1 }

    /// Features `[frames][bands]` (frame-major) of `samples`.
    public func frames(_ samples: [Float]) -> [[Float]] {
        let n = fftSize
        let window = (0..<frameLength).map { 0.5 - 0.5 * cos(2 * Float.pi * Float($0) / Float(frameLength)) }
        let filters = melFilters()
        var real = [Float](repeating: 0, count: n), imaginary = [Float](repeating: 0, count: n)
        var result: [[Float]] = []
        for f in 0..<frameCount(samples: samples.count) {
            let start = f * hop - frameLength / 2
            for i in 0..<n {
                let s = start + i
                real[i] = i < frameLength && s >= 0 && s < samples.count ? samples[s] * window[i] : 0
                imaginary[i] = 0
            }
            FFT.transform(&real, &imaginary)
            let power = (0...(n / 2)).map { real[$0] * real[$0] + imaginary[$0] * imaginary[$0] }
            result.append(filters.map { filter in
                var e: Float = 0
                for (bin, weight) in filter { e += weight * power[bin] }
                return Foundation.log(max(e, 1e-5))
            })
        }
        return result
    }

    /// For each band, its (FFT bin, weight) pairs.
    func melFilters() -> [[(Int, Float)]] {
        func mel(_ hz: Double) -> Double { 2595 * log10(1 + hz / 700) }
        func hz(_ mel: Double) -> Double { 700 * (pow(10, mel / 2595) - 1) }
        let n = fftSize
        let top = mel(Double(sampleRate) / 2)
        let edges = (0...(bands + 1)).map { hz(top * Double($0) / Double(bands + 1)) }
        let binHz = Double(sampleRate) / Double(n)
        return (0..<bands).map { b in
            let (low, centre, high) = (edges[b], edges[b + 1], edges[b + 2])
            var pairs: [(Int, Float)] = []
            for bin in 0...(n / 2) {
                let f = Double(bin) * binHz
                let w = f <= centre ? (f - low) / (centre - low) : (high - f) / (high - centre)
                if w > 0 { pairs.append((bin, Float(w))) }
            }
            if pairs.isEmpty { pairs.append((min(n / 2, Int((centre / binHz).rounded())), 1)) }
            return pairs
        }
    }

    /// Features upsampled to the sample rate by repetition: `[bands, sampleCount]` (row-major),
    /// sample t taking frame ⌊t / hop⌋ (clamped to the last frame).
    public static func upsample(_ frames: [[Float]], hop: Int, samples sampleCount: Int, from offset: Int = 0) -> [Float] {
        let bands = frames.first?.count ?? 0
        var out = [Float](repeating: 0, count: bands * sampleCount)
        for t in 0..<sampleCount {
            let frame = frames[min(frames.count - 1, max(0, (offset + t) / hop))]
            for b in 0..<bands { out[b * sampleCount + t] = frame[b] }
        }
        return out
    }
}

/// In-place iterative radix-2 complex FFT (length a power of two).
enum FFT {
    static func transform(_ real: inout [Float], _ imaginary: inout [Float]) {
        let n = real.count
        precondition(n > 0 && n & (n - 1) == 0, "FFT: length \(n) must be a power of two")
        var j = 0
        for i in 1..<n {
            var bit = n >> 1
            while j & bit != 0 { j ^= bit; bit >>= 1 }
            j |= bit
            if i < j { real.swapAt(i, j); imaginary.swapAt(i, j) }
        }
        var length = 2
        while length <= n {
            let angle = -2 * Double.pi / Double(length)
            let (wr, wi) = (Float(cos(angle)), Float(sin(angle)))
            var start = 0
            while start < n {
                var (cr, ci): (Float, Float) = (1, 0)
                for k in 0..<(length / 2) {
                    let a = start + k, b = a + length / 2
                    let tr = real[b] * cr - imaginary[b] * ci
                    let ti = real[b] * ci + imaginary[b] * cr
                    real[b] = real[a] - tr; imaginary[b] = imaginary[a] - ti
                    real[a] += tr; imaginary[a] += ti
                    (cr, ci) = (cr * wr - ci * wi, cr * wi + ci * wr)
                }
                start += length
            }
            length <<= 1
        }
    }
}
