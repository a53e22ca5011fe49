import CLinuxNet
// SIGTERM, SIGINT and SIGHUP as a readable descriptor (signalfd(2)) in tquicd's epoll loop: stop
// on TERM/INT, reload the config on HUP, with no code running in signal-handler context.
import Glibc

public final class SignalDescriptor {
    public let fd: Int32
    public let signals: [Int32]
    /// Room for the signals one `read` collects; more wait for the next read.
    private let buffer: UnsafeMutablePointer<signalfd_siginfo>
    private static let bufferCount = 8

    /// Blocks `signals` in the calling thread's signal mask (so they stay pending instead of
    /// running their default action, which would kill the process) and opens a non-blocking
    /// signalfd for them.
    ///
    /// - Precondition: called before the daemon starts its other threads. Threads inherit the
    ///   mask of the thread that creates them; a thread that does not block these signals would
    ///   receive a process-directed signal (`kill`, `systemctl stop`) and die by its default
    ///   action, since the signalfd only sees signals no thread accepted.
    public init(signals: [Int32] = [SIGTERM, SIGINT, SIGHUP]) throws {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        let rc = pthread_sigmask(SIG_BLOCK, &mask, nil)
        guard rc == 0 else { throw SystemError("pthread_sigmask", errno: rc) }
        let fd = signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        guard fd >= 0 else { throw SystemError("signalfd") }
        self.fd = fd
        self.signals = signals
        buffer = .allocate(capacity: SignalDescriptor.bufferCount)
    }

    deinit {
        close(fd)
        buffer.deallocate()
    }

    /// The signals pending for this thread or the process, in arrival order (empty when none). A
    /// signal sent several times before a read is reported once (standard signals do not queue).
    public func read() throws -> [Int32] {
        var pending: [Int32] = []
        let size = MemoryLayout<signalfd_siginfo>.size
        while true {
            let n = Glibc.read(fd, buffer, size * SignalDescriptor.bufferCount)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return pending }
                throw SystemError("read signalfd")
            }
            for i in 0..<(n / size) { pending.append(Int32(bitPattern: buffer[i].ssi_signo)) }
            if n < size * SignalDescriptor.bufferCount { return pending }
        }
    }
}
