import CAllocator

/// Process-wide allocator tuning for the tensor engine.
public enum Allocator {
    /// Keeps large tensor buffers in the heap instead of fresh `mmap`s.
    ///
    /// glibc serves allocations above 128 KiB–32 MiB with `mmap` and returns them to the kernel on
    /// free, so every step of a training loop page-faults its activations in anew (measured: a
    /// 7 MB zero-filled buffer cost ~4 ms, more than the copy it was for). Raising the mmap and
    /// trim thresholds lets freed buffers be reused. Call once at start-up (the CLI does).
    public static func keepLargeBuffers() {
        mallopt(M_MMAP_THRESHOLD, 1 << 30)
        mallopt(M_TRIM_THRESHOLD, Int32.max)
        mallopt(M_TOP_PAD, 64 << 20)
    }
}
