import CLinuxNet
import Foundation
import Glibc
// tquicd's control socket with tquicctl's client: a request line answered and the connection
// closed; oversized, silent and unauthorized clients refused without holding the daemon; a stale
// socket file replaced but a running server's never taken over.
import XCTest

@testable import LinuxNet

final class ControlSocketTests: XCTestCase {
    private var directory = ""
    private var path: String { directory + "/run/tquic.sock" }

    override func setUpWithError() throws {
        directory = "/tmp/tquic-control-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(directory, 0o755), 0)
    }

    override func tearDown() {
        _ = try? FirewallTestNamespace.command(["rm", "-rf", directory])
    }

    /// Services `server` from this thread (through a loop, as tquicd does) until `done` or 10 s.
    private func serve(_ server: ControlSocketServer, until done: () -> Bool) throws {
        let loop = try EpollLoop()
        try loop.add(fd: server.fd, events: .readable, token: 1)
        let start = MonotonicClock.now().nanoseconds
        while !done() {
            guard MonotonicClock.now().nanoseconds - start < 10_000_000_000 else {
                return XCTFail("the exchange did not finish within 10 s")
            }
            try loop.wait(timeoutNanoseconds: 10_000_000) { _, _, _, _ in }
            try server.service()
        }
    }

    /// Runs `ControlSocketClient.request` on another thread while this one serves.
    private func request(_ line: String, server: ControlSocketServer, timeout: Duration = .seconds(5)) throws -> String {
        let result = LockedBox<Result<String, Error>?>(nil)
        let path = self.path
        Thread {
            let answer = Result { try ControlSocketClient.request(line, path: path, timeout: timeout) }
            result.update { $0 = answer }
        }.start()
        try serve(server) { result.update { $0 != nil } }
        return try XCTUnwrap(result.update { $0 }).get()
    }

    /// A raw client that sends `bytes` and reads until the server closes (or 5 s pass).
    private func rawExchange(_ bytes: [UInt8], server: ControlSocketServer) throws -> String {
        let result = LockedBox<String?>(nil)
        let path = self.path
        Thread {
            let fd = socket(AF_UNIX, Int32(CLinuxNet_SOCK_STREAM), 0)
            defer { close(fd) }
            var address = try! ControlSocketServer.address(path)
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var response: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                response += chunk[0..<n]
            }
            result.update { $0 = String(decoding: response, as: UTF8.self) }
        }.start()
        try serve(server) { result.update { $0 != nil } }
        return try XCTUnwrap(result.update { $0 })
    }

    func testARequestLineIsAnsweredAndTheConnectionClosed() throws {
        let server = try ControlSocketServer(path: path, group: nil) { "status of \($0): 3 paths up\n" }
        XCTAssertEqual(try request("status", server: server), "status of status: 3 paths up\n")
        XCTAssertEqual(try request("paths --json", server: server), "status of paths --json: 3 paths up\n")
        XCTAssertEqual(server.openConnections, 0, "a connection stayed open after its response")
    }

    func testWithoutTheGroupTheSocketIsRootsAloneInA0750Directory() throws {
        let server = try ControlSocketServer(path: path, group: "no-such-group-tquic") { $0 }
        defer { server.close() }
        XCTAssertNil(server.group)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertEqual(stat(directory + "/run", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o750, "the parent directory tquicd created")
    }

    func testWithTheGroupTheSocketIsGroupReadableAndWritable() throws {
        let server = try ControlSocketServer(path: path, group: "daemon") { $0 }
        let gid = try XCTUnwrap(getgrnam("daemon")?.pointee.gr_gid, "no group daemon on this system")
        XCTAssertEqual(server.group, gid)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o660)
        XCTAssertEqual(st.st_gid, gid)
        XCTAssertEqual(stat(directory + "/run", &st), 0)
        XCTAssertEqual(st.st_gid, gid, "group members cannot reach the socket through its directory")
    }

    func testAnOversizedRequestIsAnsweredWithAnErrorAndClosed() throws {
        let server = try ControlSocketServer(path: path, group: nil) { _ in "never\n" }
        let response = try rawExchange([UInt8](repeating: UInt8(ascii: "a"), count: 6000), server: server)
        XCTAssertEqual(response, "error: request longer than 4096 bytes\n")
        XCTAssertEqual(server.openConnections, 0)
        // 4095 bytes and the newline: the largest request there is. The client refuses a longer
        // line before it connects.
        let largest = String(repeating: "b", count: 4095)
        XCTAssertThrowsError(try ControlSocketClient.request(largest + "b", path: path), "the client sent an oversized line")
        XCTAssertThrowsError(try ControlSocketClient.request("two\nlines", path: path), "the client sent two lines")
        XCTAssertEqual(try request(largest, server: server), "never\n")
    }

    func testASilentClientIsTimedOutWithoutBlockingTheServer() throws {
        let server = try ControlSocketServer(path: path, group: nil, connectionTimeout: .milliseconds(200)) { "pong \($0)\n" }
        // Connected, but says nothing.
        let silent = socket(AF_UNIX, Int32(CLinuxNet_SOCK_STREAM), 0)
        defer { close(silent) }
        var address = try ControlSocketServer.address(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(silent, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(rc, 0)
        // Another client is served meanwhile.
        XCTAssertEqual(try request("ping", server: server), "pong ping\n")
        let start = MonotonicClock.now().nanoseconds
        try serve(server) { server.openConnections == 0 }
        XCTAssertLessThan(MonotonicClock.now().nanoseconds - start, 2_000_000_000, "the silent client was not timed out")
        var buffer = [UInt8](repeating: 0, count: 100)
        let n = buffer.withUnsafeMutableBytes { recv(silent, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        XCTAssertEqual(n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : "", "error: timed out\n")
    }

    func testBeyondTheConnectionLimitAClientIsToldItIsBusy() throws {
        let server = try ControlSocketServer(path: path, group: nil, maximumConnections: 1) { "pong \($0)\n" }
        var silent = socket(AF_UNIX, Int32(CLinuxNet_SOCK_STREAM), 0)
        defer { if silent >= 0 { close(silent) } }
        var address = try ControlSocketServer.address(path)
        XCTAssertEqual(
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(silent, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }, 0)
        try serve(server) { server.openConnections == 1 }
        XCTAssertEqual(try request("ping", server: server), "error: busy\n")
        close(silent)
        silent = -1
        try serve(server) { server.openConnections == 0 }
        XCTAssertEqual(try request("ping", server: server), "pong ping\n")
    }

    func testAStaleSocketFileIsReplacedButARunningServerIsNot() throws {
        XCTAssertEqual(mkdir(directory + "/run", 0o750), 0)
        // A socket file nobody listens on: what a crashed tquicd leaves.
        let stale = socket(AF_UNIX, Int32(CLinuxNet_SOCK_STREAM), 0)
        var address = try ControlSocketServer.address(path)
        XCTAssertEqual(
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }, 0)
        close(stale)

        let server = try ControlSocketServer(path: path, group: nil) { _ in "first\n" }
        XCTAssertThrowsError(try ControlSocketServer(path: path, group: nil) { _ in "second\n" }) { error in
            XCTAssertTrue("\(error)".contains("another tquicd is running"), "\(error)")
        }
        try serve(server) { server.openConnections == 0 }  // the probe's connection
        XCTAssertEqual(try request("who", server: server), "first\n", "the second server took over the socket")

        server.close()
        XCTAssertNotEqual(access(path, F_OK), 0, "close left the socket file")
        _ = FileManager.default.createFile(atPath: path, contents: Data("not a socket".utf8))
        XCTAssertThrowsError(try ControlSocketServer(path: path, group: nil) { $0 }, "replaced a regular file")
    }

    func testOnlyRootTheDaemonsUserAndTheSocketsGroupMayConnect() {
        func may(_ uid: uid_t, _ gid: gid_t, _ groups: [gid_t], socketGroup: gid_t?) -> Bool {
            ControlSocketServer.mayConnect(uid: uid, gid: gid, groups: { groups }, socketGroup: socketGroup, daemonUser: 0)
        }
        XCTAssertTrue(may(0, 0, [], socketGroup: nil))
        XCTAssertTrue(may(1000, 900, [], socketGroup: 900), "primary group")
        XCTAssertTrue(may(1000, 100, [27, 900], socketGroup: 900), "supplementary group")
        XCTAssertFalse(may(1000, 100, [27], socketGroup: 900))
        XCTAssertFalse(may(1000, 900, [900], socketGroup: nil), "no group: root only")
        XCTAssertTrue(
            ControlSocketServer.mayConnect(uid: 998, gid: 998, groups: { [] }, socketGroup: nil, daemonUser: 998),
            "the daemon's own user")
    }

    func testAnotherUsersConnectionIsRefusedWithAnErrorLine() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root to connect as another user") }
        // The directory and socket open to all, so that only the credential check stands between.
        XCTAssertEqual(chmod(directory, 0o755), 0)
        for (group, expected) in [
            ("daemon", "error: permission denied (uid 65534 is not root or in the socket's group)\n"),
            ("nogroup", "ok\n"),
        ] {
            let server = try ControlSocketServer(path: path, group: group) { _ in "ok\n" }
            XCTAssertEqual(chmod(directory + "/run", 0o755), 0)
            XCTAssertEqual(chmod(path, 0o666), 0)
            let client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            client.arguments = [
                "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                """
                import socket, sys
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(5)
                s.connect(sys.argv[1])
                try:
                    s.sendall(b"status\\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused before the line went out; the error line is waiting
                out = b""
                while True:
                    try:
                        b = s.recv(4096)
                    except ConnectionResetError:
                        break
                    if not b:
                        break
                    out += b
                sys.stdout.write(out.decode())
                """, path,
            ]
            let output = Pipe()
            client.standardOutput = output
            let exited = LockedBox(false)
            client.terminationHandler = { _ in exited.update { $0 = true } }
            try client.run()
            try serve(server) { exited.update { $0 } }
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(text, expected, "uid 65534 gid 65534 against a socket of group \(group)")
            server.close()
        }
    }
}
