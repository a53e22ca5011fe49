import Glibc
// SIGHUP and friends as a readable descriptor: blocked in the thread's mask, pending signals read
// back as numbers, the descriptor readable in the epoll loop.
import XCTest

@testable import LinuxNet

final class SignalDescriptorTests: XCTestCase {
    func testRaisedSignalsAreReadBackInsteadOfKillingTheProcess() throws {
        var saved = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }

        // SIGHUP's default action ends the process: this test only survives if it is blocked.
        let signals = try SignalDescriptor(signals: [SIGHUP, SIGUSR2])
        var mask = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &mask)
        XCTAssertEqual(sigismember(&mask, SIGHUP), 1, "SIGHUP is not blocked in this thread")
        XCTAssertEqual(try signals.read(), [], "nothing pending yet")

        let loop = try EpollLoop()
        try loop.add(fd: signals.fd, events: .readable, token: 9)
        // raise() is directed at this thread, so no other thread of the test process sees it.
        XCTAssertEqual(raise(SIGUSR2), 0)
        XCTAssertEqual(raise(SIGHUP), 0)
        XCTAssertEqual(raise(SIGHUP), 0)
        var tokens: [Int] = []
        try loop.wait(timeoutNanoseconds: 1_000_000_000) { token, _, _, _ in tokens.append(token) }
        XCTAssertEqual(tokens, [9])
        XCTAssertEqual(Set(try signals.read()), [SIGHUP, SIGUSR2], "a standard signal raised twice is pending once")
        XCTAssertEqual(try signals.read(), [])
    }

    func testTheDefaultSetIsTermIntAndHup() throws {
        var saved = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        XCTAssertEqual(try SignalDescriptor().signals, [SIGTERM, SIGINT, SIGHUP])
    }
}
