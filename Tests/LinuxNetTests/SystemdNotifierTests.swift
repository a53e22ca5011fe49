import CLinuxNet
import Glibc
// sd_notify as systemd receives it: a datagram socket at NOTIFY_SOCKET gets READY=1, STATUS=…,
// RELOADING=1 with MONOTONIC_USEC; without NOTIFY_SOCKET every call does nothing.
import XCTest

@testable import LinuxNet

final class SystemdNotifierTests: XCTestCase {
    private var socketFD: Int32 = -1
    private var socketPath = ""

    override func setUpWithError() throws {
        socketPath = "/tmp/tquic-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        socketFD = socket(AF_UNIX, Int32(CLinuxNet_SOCK_DGRAM) | Int32(CLinuxNet_SOCK_CLOEXEC), 0)
        XCTAssertGreaterThanOrEqual(socketFD, 0)
        var address = try ControlSocketServer.address(socketPath)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(rc, 0, "bind \(socketPath)")
    }

    override func tearDown() {
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
        unsetenv("WATCHDOG_PID")
        if socketFD >= 0 { close(socketFD) }
        unlink(socketPath)
    }

    /// The next datagram systemd would read, or nil after `timeoutMs`.
    private func nextMessage(timeoutMs: Int32 = 2000) -> String? {
        var poller = pollfd(fd: socketFD, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, timeoutMs) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(socketFD, $0.baseAddress, $0.count, 0) }
        return n < 0 ? nil : String(decoding: buffer[0..<n], as: UTF8.self)
    }

    func testReadyStatusStoppingAndWatchdogReachTheNotifySocket() throws {
        setenv("NOTIFY_SOCKET", socketPath, 1)
        let notifier = SystemdNotifier()
        XCTAssertTrue(notifier.isEnabled)
        try notifier.ready()
        try notifier.status("3 paths up\nREADY=1")
        try notifier.watchdog()
        try notifier.stopping()
        XCTAssertEqual(nextMessage(), "READY=1")
        XCTAssertEqual(nextMessage(), "STATUS=3 paths up READY=1", "a newline in a status must not start an assignment")
        XCTAssertEqual(nextMessage(), "WATCHDOG=1")
        XCTAssertEqual(nextMessage(), "STOPPING=1")
    }

    func testReloadingCarriesTheMonotonicClockInMicroseconds() throws {
        setenv("NOTIFY_SOCKET", socketPath, 1)
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let before = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        try SystemdNotifier().reloading()
        let message = try XCTUnwrap(nextMessage())
        let lines = message.split(separator: "\n")
        XCTAssertEqual(lines.first, "RELOADING=1")
        XCTAssertEqual(lines.count, 2, message)
        let stamp = try XCTUnwrap(lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil }, message)
        XCTAssertGreaterThanOrEqual(stamp, before)
        XCTAssertLessThan(stamp, before + 10_000_000, "MONOTONIC_USEC is not CLOCK_MONOTONIC in µs")
    }

    func testWithoutNotifySocketEveryCallIsANoOp() throws {
        unsetenv("NOTIFY_SOCKET")
        let notifier = SystemdNotifier()
        XCTAssertFalse(notifier.isEnabled)
        try notifier.ready()
        try notifier.status("idle")
        try notifier.reloading()
        try notifier.stopping()
        XCTAssertNil(nextMessage(timeoutMs: 100))
    }

    func testTheWatchdogIntervalComesFromWatchdogUsecForThisProcessOnly() {
        XCTAssertNil(SystemdNotifier().watchdogInterval)
        setenv("WATCHDOG_USEC", "2500000", 1)
        setenv("WATCHDOG_PID", "\(getpid())", 1)
        XCTAssertEqual(SystemdNotifier().watchdogInterval, .milliseconds(2500))
        setenv("WATCHDOG_PID", "\(getpid() + 1)", 1)
        XCTAssertNil(SystemdNotifier().watchdogInterval, "a watchdog meant for another process")
    }
}
