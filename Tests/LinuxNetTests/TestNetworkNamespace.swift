import Foundation
import Glibc
// A throw-away network namespace for the TUN and rtnetlink tests: made with `ip netns add`, used
// by a dedicated thread that entered it (setns is per thread, so the test runner's other
// threads, and the host's interfaces, are never touched), and deleted when the test ends,
// however it ends. Names are "tquic-t-<pid>-<n>"; ones a crashed earlier run left behind (their
// pid gone) are deleted by the next run.
import XCTest

@testable import LinuxNet

final class TestNetworkNamespace {
    let name: String
    private static let counter = NSLock()
    nonisolated(unsafe) private static var created = 0
    nonisolated(unsafe) private static var sweptStale = false

    /// Skips the test unless it runs as root: namespaces, TUN devices and netlink changes need
    /// CAP_SYS_ADMIN and CAP_NET_ADMIN. CI runs the tests as root, so there they run.
    static func requireRoot() throws {
        if getuid() != 0 {
            throw XCTSkip("needs root (creates a network namespace, a TUN device and netlink changes); CI runs as root")
        }
    }

    /// Makes the namespace and has `test` delete it when the test ends, passed or failed (also
    /// if a worker thread that still holds this object hangs).
    init(for test: XCTestCase) throws {
        try TestNetworkNamespace.requireRoot()
        TestNetworkNamespace.counter.lock()
        TestNetworkNamespace.created += 1
        let n = TestNetworkNamespace.created
        let sweep = !TestNetworkNamespace.sweptStale
        TestNetworkNamespace.sweptStale = true
        TestNetworkNamespace.counter.unlock()
        if sweep { TestNetworkNamespace.deleteStale() }
        name = "tquic-t-\(getpid())-\(n)"
        try TestNetworkNamespace.run(["ip", "netns", "add", name])
        let name = self.name
        test.addTeardownBlock { _ = try? TestNetworkNamespace.run(["ip", "netns", "del", name]) }
    }

    /// `ip netns del` (again at teardown: a second delete fails quietly); the namespace itself
    /// lives on until the last thread, socket or TUN in it ends.
    func delete() {
        _ = try? TestNetworkNamespace.run(["ip", "netns", "del", name])
    }

    /// Runs `body` on a new thread that entered the namespace first and returns its result;
    /// fails the test if it takes longer than `timeout` (the thread is then abandoned).
    func run<T>(timeout: TimeInterval = 30, _ body: @escaping () throws -> T) throws -> T {
        let outcome = ThreadOutcome<T>()
        let finished = DispatchSemaphore(value: 0)
        let path = "/run/netns/\(name)"
        let thread = Thread {
            outcome.result = Result {
                try NetworkNamespace.enter(path: path)
                return try body()
            }
            finished.signal()
        }
        thread.name = name
        thread.start()
        guard finished.wait(timeout: .now() + timeout) == .success else {
            delete()
            throw TestError("the work in namespace \(name) did not finish within \(Int(timeout)) s")
        }
        return try outcome.result!.get()
    }

    /// `ip -n NAME args...`: the namespace seen by iproute2, independent of our netlink code.
    @discardableResult
    func ip(_ arguments: String...) throws -> String {
        try TestNetworkNamespace.run(["ip", "-n", name] + arguments)
    }

    /// `ip -n NAME -j args...`, parsed.
    func ipJSON(_ arguments: String...) throws -> [[String: Any]] {
        let text = try TestNetworkNamespace.run(["ip", "-n", name, "-j"] + arguments)
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return [] }
        guard let list = try JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [[String: Any]] else {
            throw TestError("ip -j \(arguments.joined(separator: " ")) printed no JSON list: \(text)")
        }
        return list
    }

    /// Runs a command (found in /usr/sbin, /usr/bin) and returns its output; throws with its
    /// stderr if it fails, or if it takes more than 10 s.
    @discardableResult
    static func run(_ command: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            throw TestError("\(command.joined(separator: " ")) did not finish within 10 s")
        }
        guard process.terminationStatus == 0 else {
            throw TestError(
                "\(command.joined(separator: " ")) failed (\(process.terminationStatus)): \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Deletes test namespaces whose process is gone (a run that crashed before its cleanup).
    private static func deleteStale() {
        guard let list = try? run(["ip", "netns", "list"]) else { return }
        for line in list.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            let parts = name.split(separator: "-")
            guard parts.count == 4, parts[0] == "tquic", parts[1] == "t", let pid = Int32(parts[2]) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                _ = try? run(["ip", "netns", "del", name])
            }
        }
    }
}

/// What a namespace thread's work returned, handed to the waiting test (the semaphore orders it).
private final class ThreadOutcome<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Waits until `fd` is readable, up to `milliseconds`.
func waitReadable(_ fd: Int32, milliseconds: Int32) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, milliseconds) > 0 && p.revents & Int16(POLLIN) != 0
}
