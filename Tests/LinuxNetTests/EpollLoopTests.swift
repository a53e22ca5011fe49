import CLinuxNet
import Glibc
// The daemon's readiness loop: descriptors reported with their tokens, interest changed and
// removed, hangups seen, wake-ups from another thread, and timeouts finer than a millisecond.
import XCTest

@testable import LinuxNet

final class EpollLoopTests: XCTestCase {
    private var pipes: [Int32] = []

    override func tearDown() {
        for fd in pipes { close(fd) }
        pipes = []
    }

    private func makePipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        pipes += fds
        return (fds[0], fds[1])
    }

    private func ready(_ loop: EpollLoop, timeoutNanoseconds: Int64? = 0) throws -> [(
        token: Int, readable: Bool, writable: Bool, hangup: Bool
    )] {
        var seen: [(Int, Bool, Bool, Bool)] = []
        let n = try loop.wait(timeoutNanoseconds: timeoutNanoseconds) { seen.append(($0, $1, $2, $3)) }
        XCTAssertEqual(n, seen.count, "wait's count differs from the events it reported")
        return seen.map { (token: $0.0, readable: $0.1, writable: $0.2, hangup: $0.3) }
    }

    func testAReadableDescriptorIsReportedWithItsToken() throws {
        let loop = try EpollLoop()
        let p = makePipe()
        try loop.add(fd: p.read, events: .readable, token: 42)
        XCTAssertTrue(try ready(loop).isEmpty, "an empty pipe is not readable")
        XCTAssertEqual(write(p.write, "x", 1), 1)
        let events = try ready(loop)
        XCTAssertEqual(events.map(\.token), [42])
        XCTAssertEqual(events.first?.readable, true)
        XCTAssertEqual(events.first?.writable, false)
        // Level-triggered: still readable until read.
        XCTAssertEqual(try ready(loop).map(\.token), [42])
    }

    func testModifyChangesInterestAndTokenAndRemoveStopsReports() throws {
        let loop = try EpollLoop()
        let p = makePipe()
        try loop.add(fd: p.write, events: .readable, token: 1)
        XCTAssertTrue(try ready(loop).isEmpty)
        try loop.modify(fd: p.write, events: [.readable, .writable], token: 2)
        let events = try ready(loop)
        XCTAssertEqual(events.map(\.token), [2])
        XCTAssertEqual(events.first?.writable, true)
        try loop.remove(fd: p.write)
        XCTAssertTrue(try ready(loop).isEmpty)
        XCTAssertThrowsError(try loop.remove(fd: p.write), "removing twice is an error (ENOENT)")
    }

    func testAClosedWriterIsAHangupOfTheReader() throws {
        let loop = try EpollLoop()
        let p = makePipe()
        try loop.add(fd: p.read, events: .readable, token: 7)
        close(p.write)
        pipes.removeAll { $0 == p.write }
        let events = try ready(loop)
        XCTAssertEqual(events.map(\.token), [7])
        XCTAssertEqual(events.first?.hangup, true)
    }

    func testWakeFromAnotherThreadEndsAnUnlimitedWaitWithoutAToken() throws {
        let loop = try EpollLoop()
        let waker = loop.waker
        let thread = Thread {
            usleep(50_000)
            waker.wake()
        }
        thread.start()
        let start = MonotonicClock.now()
        XCTAssertTrue(try ready(loop, timeoutNanoseconds: nil).isEmpty, "the wake-up was reported as a descriptor")
        XCTAssertLessThan(MonotonicClock.now().nanoseconds - start.nanoseconds, 10_000_000_000)
        // Consumed: the next poll finds nothing.
        XCTAssertTrue(try ready(loop).isEmpty)
        // Several wake-ups before a wait collapse into one.
        loop.wake()
        loop.wake()
        XCTAssertTrue(try ready(loop, timeoutNanoseconds: 1_000_000_000).isEmpty)
        XCTAssertTrue(try ready(loop).isEmpty)
    }

    func testASubMillisecondTimeoutIsNotRoundedToAMillisecond() throws {
        let loop = try EpollLoop()
        var shortest = UInt64.max
        for _ in 0..<20 {
            let start = MonotonicClock.now()
            XCTAssertTrue(try ready(loop, timeoutNanoseconds: 200_000).isEmpty)
            let elapsed = MonotonicClock.now().nanoseconds - start.nanoseconds
            XCTAssertGreaterThanOrEqual(elapsed, 200_000, "woke before the timeout")
            shortest = min(shortest, elapsed)
        }
        XCTAssertTrue(loop.nanosecondTimeouts, "epoll_pwait2 is missing (kernel < 5.11 or glibc < 2.35)")
        // On a busy machine a wait may overshoot; the best of 20 shows the kernel's granularity.
        XCTAssertLessThan(shortest, 1_000_000, "a 200 µs wait took a whole millisecond or more: rounded to ms")
    }

    func testReadinessBeyondTheEventCapacityIsReportedByTheNextWait() throws {
        let loop = try EpollLoop(capacity: 2)
        var readers: [Int: Int32] = [:]
        for token in 0..<3 {
            let p = makePipe()
            XCTAssertEqual(write(p.write, "x", 1), 1)
            try loop.add(fd: p.read, events: .readable, token: token)
            readers[token] = p.read
        }
        let first = try ready(loop).map(\.token)
        XCTAssertEqual(first.count, 2, "one wait reports at most `capacity` descriptors")
        for token in first { try loop.remove(fd: readers[token]!) }
        let second = try ready(loop).map(\.token)
        XCTAssertEqual(Set(first + second), [0, 1, 2])
    }
}
