import CLinuxNet
// A network namespace of the nftables/sysctl tests' own (`ip netns add tquic-t-<pid>-<n>`) and a thread inside it:
// the nftables and sysctl tests change only that namespace, never the host's ruleset. setns(2)
// moves one thread, and libnftables opens its netlink socket in the calling thread's namespace.
import Foundation
import Glibc
import XCTest

final class FirewallTestNamespace {
    let name: String
    private static let counter = LockedBox(0)

    /// Creates the namespace; skips the test when not root.
    init() throws {
        guard geteuid() == 0 else { throw XCTSkip("network namespaces need root") }
        let n = FirewallTestNamespace.counter.update {
            $0 += 1
            return $0
        }
        name = "tquic-t-\(getpid())-\(n)"
        let result = try FirewallTestNamespace.command(["ip", "netns", "add", name])
        guard result.status == 0 else { throw TestFailure("ip netns add \(name): \(result.output)") }
    }

    /// Deletes the namespace (and with it every table and sysctl set in it).
    func remove() {
        _ = try? FirewallTestNamespace.command(["ip", "netns", "delete", name])
    }

    /// `ip netns exec NAME args…`: status and stdout + stderr.
    func exec(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try FirewallTestNamespace.command(["ip", "netns", "exec", name] + arguments)
    }

    /// `nft -j list table inet TABLE` in the namespace, parsed; nil when there is no such table.
    func listTable(_ table: String) throws -> NFTablesListing? {
        let result = try exec(["nft", "-j", "list", "table", "inet", table])
        guard result.status == 0 else { return nil }
        return try NFTablesListing(json: result.output)
    }

    /// Runs `body` on a new thread that entered the namespace, waiting at most `timeout` seconds.
    func run<T>(timeout: Double = 30, _ body: @escaping () throws -> T) throws -> T {
        let box = LockedBox<Result<T, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let path = "/run/netns/\(name)"
        let thread = Thread {
            let result = Result { () throws -> T in
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
                defer { close(fd) }
                guard CLinuxNet_enter_network_namespace(fd) == 0 else { throw TestFailure("setns \(path): errno \(errno)") }
                return try body()
            }
            box.update { $0 = result }
            done.signal()
        }
        thread.start()
        guard done.wait(timeout: .now() + timeout) == .success else {
            throw TestFailure("the thread in namespace \(name) did not finish within \(timeout) s")
        }
        return try box.update { $0 }!.get()
    }

    /// Runs a tool (found on PATH by env) with a time limit; output is stdout and stderr together.
    static func command(_ arguments: [String], timeout: Double = 20) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        // Read while it runs: a full pipe would stall the tool.
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        if exited.wait(timeout: .now() + timeout) != .success {
            process.terminate()
            throw TestFailure("\(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}

/// A table as `nft -j list table` shows it: its chains (with hook) and each chain's rules.
struct NFTablesListing {
    struct Chain: Equatable {
        var name: String
        var type: String?
        var hook: String?
        var policy: String?
    }
    var tables: [String] = []
    var chains: [Chain] = []
    /// Each rule as its chain and its expression JSON (re-serialized, sorted keys).
    var rules: [(chain: String, expression: String)] = []

    init(json: String) throws {
        guard let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let items = root["nftables"] as? [[String: Any]]
        else { throw TestFailure("not nft JSON: \(json.prefix(200))") }
        for item in items {
            if let table = item["table"] as? [String: Any], let name = table["name"] as? String { tables.append(name) }
            if let chain = item["chain"] as? [String: Any], let name = chain["name"] as? String {
                chains.append(
                    Chain(name: name, type: chain["type"] as? String, hook: chain["hook"] as? String, policy: chain["policy"] as? String))
            }
            if let rule = item["rule"] as? [String: Any], let chain = rule["chain"] as? String {
                let expression = try JSONSerialization.data(withJSONObject: rule["expr"] ?? [], options: [.sortedKeys])
                rules.append((chain, String(decoding: expression, as: UTF8.self)))
            }
        }
    }

    func rules(in chain: String) -> [String] { rules.filter { $0.chain == chain }.map(\.expression) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A value shared between the test thread and a helper thread.
final class LockedBox<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    @discardableResult
    func update<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
