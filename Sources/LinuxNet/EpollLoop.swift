import CLinuxNet
// The readiness loop under each of tquicd's threads (DESIGN.md, Threads): one epoll set of
// non-blocking sockets, the TUN device, the signal descriptor and the control socket, waited on
// with a timeout in nanoseconds (the next QUIC or pacing deadline), and woken from other threads
// through an eventfd. Level-triggered; waiting allocates nothing.
import Glibc

public final class EpollLoop {
    /// What a descriptor is watched for.
    public struct Interest: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Interest(rawValue: EPOLLIN.rawValue)
        public static let writable = Interest(rawValue: EPOLLOUT.rawValue)
    }

    /// The token of the loop's own eventfd, which `add` and `modify` refuse. `wait` consumes its
    /// wake-ups itself and never reports this token.
    public static let reservedToken = Int.min

    /// The epoll descriptor: itself pollable, so a loop can sit inside another loop's set.
    public let fd: Int32
    /// Wakes `wait` from any thread; hand it to the threads that feed this one's queues.
    public let waker: EpollWaker
    private let events: UnsafeMutablePointer<epoll_event>
    private let capacity: Int32
    /// epoll_pwait2 (Linux 5.11, glibc 2.35) until it answers ENOSYS; then epoll_wait with the
    /// timeout rounded *up* to whole milliseconds, so a deadline is never woken for early.
    public private(set) var nanosecondTimeouts = true

    /// - Parameter capacity: the most events one `wait` reports (more stay ready for the next).
    public init(capacity: Int = 128) throws {
        precondition(capacity > 0 && capacity <= Int(Int32.max))
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw SystemError("epoll_create1") }
        let waker: EpollWaker
        do { waker = try EpollWaker() } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.waker = waker
        self.capacity = Int32(capacity)
        events = .allocate(capacity: capacity)
        events.initialize(repeating: epoll_event(), count: capacity)
        // From here a throw runs deinit.
        try control(EPOLL_CTL_ADD, fd: waker.fd, interest: .readable, token: EpollLoop.reservedToken)
    }

    deinit {
        close(fd)
        events.deallocate()
    }

    /// Watches `fd` for `events`; `wait` reports it with `token`.
    public func add(fd: Int32, events: Interest, token: Int) throws {
        precondition(token != EpollLoop.reservedToken, "EpollLoop.reservedToken is the loop's own")
        try control(EPOLL_CTL_ADD, fd: fd, interest: events, token: token)
    }

    /// Changes what `fd` is watched for, or its token (say, writable only while a send is blocked).
    public func modify(fd: Int32, events: Interest, token: Int) throws {
        precondition(token != EpollLoop.reservedToken, "EpollLoop.reservedToken is the loop's own")
        try control(EPOLL_CTL_MOD, fd: fd, interest: events, token: token)
    }

    /// Stops watching `fd`. (Closing a descriptor removes it too, once no duplicate of it is open.)
    public func remove(fd: Int32) throws {
        var event = epoll_event()
        guard epoll_ctl(self.fd, EPOLL_CTL_DEL, fd, &event) == 0 else { throw SystemError("epoll_ctl DEL \(fd)") }
    }

    /// Waits until a descriptor is ready, `wake()` is called, or the timeout passes, and calls
    /// `body` once per ready descriptor (hangup: EPOLLHUP or EPOLLERR; read or write then to learn
    /// which). A wake-up is consumed here and not reported.
    /// - Parameter timeoutNanoseconds: nil waits without a limit, 0 only polls.
    /// - Returns: how many descriptors `body` was called for: 0 after a timeout, a wake-up or a
    ///   signal (EINTR).
    @discardableResult
    public func wait(
        timeoutNanoseconds: Int64?,
        _ body: (_ token: Int, _ readable: Bool, _ writable: Bool, _ hangup: Bool) -> Void
    ) throws -> Int {
        let n = waitForEvents(timeoutNanoseconds)
        if n < 0 {
            if errno == EINTR { return 0 }
            throw SystemError("epoll_wait")
        }
        var reported = 0
        for i in 0..<Int(n) {
            let event = events[i]
            let token = Int(Int64(bitPattern: event.data.u64))
            if token == EpollLoop.reservedToken {
                waker.consume()
                continue
            }
            let flags = event.events
            body(
                token,
                flags & EPOLLIN.rawValue != 0,
                flags & EPOLLOUT.rawValue != 0,
                flags & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0)
            reported += 1
        }
        return reported
    }

    /// Wakes the thread in (or next entering) `wait`, from any thread.
    public func wake() { waker.wake() }

    private func waitForEvents(_ timeoutNanoseconds: Int64?) -> Int32 {
        guard let timeout = timeoutNanoseconds else { return epoll_wait(fd, events, capacity, -1) }
        if timeout <= 0 { return epoll_wait(fd, events, capacity, 0) }
        if nanosecondTimeouts {
            var ts = timespec(tv_sec: Int(timeout / 1_000_000_000), tv_nsec: Int(timeout % 1_000_000_000))
            let n = CLinuxNet_epoll_pwait2(fd, events, capacity, &ts)
            if n >= 0 || errno != ENOSYS { return n }
            nanosecondTimeouts = false
        }
        let milliseconds = min((timeout + 999_999) / 1_000_000, Int64(Int32.max))
        return epoll_wait(fd, events, capacity, Int32(milliseconds))
    }

    private func control(_ operation: Int32, fd target: Int32, interest: Interest, token: Int) throws {
        var event = epoll_event()
        event.events = interest.rawValue
        event.data.u64 = UInt64(bitPattern: Int64(token))
        guard epoll_ctl(fd, operation, target, &event) == 0 else {
            throw SystemError("epoll_ctl \(operation == EPOLL_CTL_ADD ? "ADD" : "MOD") \(target)")
        }
    }
}

/// The eventfd that wakes an `EpollLoop`: safe to call from any thread, and it stays valid as long
/// as someone holds it, even after its loop is gone (the wake-up then reaches nobody).
public final class EpollWaker: Sendable {
    let fd: Int32

    init() throws {
        fd = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard fd >= 0 else { throw SystemError("eventfd") }
    }

    deinit { close(fd) }

    public func wake() {
        var one: UInt64 = 1
        // EAGAIN (the counter at its maximum) means a wake-up is already pending.
        _ = Glibc.write(fd, &one, MemoryLayout<UInt64>.size)
    }

    /// Resets the counter (all wake-ups since the last one collapse into this one).
    func consume() {
        var count: UInt64 = 0
        _ = Glibc.read(fd, &count, MemoryLayout<UInt64>.size)
    }
}
