import Congestion
// The real clock and randomness that the daemon and tools inject into the sans-I/O core.
import Glibc
import QUIC

/// CLOCK_REALTIME, for converting the kernel's receive timestamps (SO_TIMESTAMPNS) to the
/// monotonic clock: subtract the difference of the two read back to back.
public enum RealTimeClock {
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

public enum MonotonicClock {
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Timestamp(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }
}

/// Kernel randomness (/dev/urandom): for connection IDs, tokens and challenges in production.
public final class SystemRandom: RandomSource {
    private let fd: Int32
    public init() {
        fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        precondition(fd >= 0, "cannot open /dev/urandom")
    }
    deinit { close(fd) }
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var done = 0
        while done < buffer.count {
            let n = read(fd, buffer.baseAddress! + done, buffer.count - done)
            if n > 0 { done += n } else if errno != EINTR { fatalError("reading /dev/urandom failed: \(errno)") }
        }
    }
}
