import CLinuxNet
// tquicd's Unix control socket (/run/tquic/tquic.sock) and the client `tquicctl` uses: one request
// line in, the handler's response text out, then close. The server never blocks: its descriptor
// (an epoll set of its own) goes into the daemon's loop, requests are bounded in size, each
// connection in time and their number in total, so a slow or hostile client cannot wedge the
// daemon. Access: root, the daemon's own user, and members of the socket's group ("tquic").
import Glibc

/// A control socket failure that is not one system call's errno.
public struct ControlSocketError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class ControlSocketServer {
    /// The most bytes of one request, its newline included.
    public static let requestLimit = 4096

    public let path: String
    /// The socket file's group (getgrnam of the group asked for), nil when that group does not
    /// exist: the socket is then root's alone (0600).
    public let group: gid_t?
    /// Register this descriptor readable in the daemon's loop and call `service()` when it is.
    public var fd: Int32 { events.fd }

    private let listener: Int32
    private let timer: Int32
    private let events: EpollLoop
    private let handler: (String) -> String
    private let timeoutNanoseconds: UInt64
    private let maximumConnections: Int
    private var connections: [Int: Connection] = [:]
    private var nextToken = 2
    private var armedDeadline: UInt64 = 0
    /// The socket file bind created (device, inode): `close` unlinks the path only while it is still
    /// that file, not the socket of a tquicd started after this one.
    private var boundFile: (dev_t, ino_t)?
    private var isClosed = false
    private static let listenerToken = 0, timerToken = 1

    private final class Connection {
        let fd: Int32
        let deadline: UInt64
        var request: [UInt8] = []
        var response: [UInt8] = []
        var written = 0
        var writing = false
        init(fd: Int32, deadline: UInt64) {
            self.fd = fd
            self.deadline = deadline
        }
    }

    /// Binds and listens at `path`.
    ///
    /// Creates the parent directory (0750, in the group when it exists) if it is missing; replaces
    /// a stale socket file nobody listens on (left by a crash), but refuses when a server answers
    /// there ("another tquicd is running") or the path is not a socket.
    /// - Parameters:
    ///   - group: the group whose members may connect (socket 0660); when nil or not a group on
    ///     this system, the socket is 0600.
    ///   - connectionTimeout: how long one connection may take from accept to the response's
    ///     last byte; a connection still open then is closed.
    ///   - maximumConnections: connections served at once; more are answered "error: busy".
    ///   - handler: the response to one request line (without its newline), called on the thread
    ///     that calls `service()`.
    public init(
        path: String, group: String? = "tquic", connectionTimeout: Duration = .seconds(2),
        maximumConnections: Int = 16, handler: @escaping (String) -> String
    ) throws {
        let address = try ControlSocketServer.address(path)
        self.path = path
        self.handler = handler
        self.maximumConnections = maximumConnections
        let (seconds, attoseconds) = connectionTimeout.components
        timeoutNanoseconds = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        self.group = group.flatMap { name in getgrnam(name).map { $0.pointee.gr_gid } }
        try ControlSocketServer.makeParentDirectory(of: path, group: self.group)
        try ControlSocketServer.removeStaleSocket(path)

        events = try EpollLoop(capacity: 32)
        listener = socket(AF_UNIX, Int32(CLinuxNet_SOCK_STREAM) | Int32(CLinuxNet_SOCK_NONBLOCK) | Int32(CLinuxNet_SOCK_CLOEXEC), 0)
        guard listener >= 0 else { throw SystemError("socket AF_UNIX") }
        timer = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        // Every stored property is set: from here a throw runs deinit, which closes the descriptors.
        guard timer >= 0 else { throw SystemError("timerfd_create") }
        // bind creates the file with the socket inode's mode (less the umask): 0600 until the
        // group is set below, so no one else can connect in between.
        _ = fchmod(listener, 0o600)
        var addr = address
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw SystemError("bind \(path)") }
        var st = stat()
        if lstat(path, &st) == 0 { boundFile = (st.st_dev, st.st_ino) }
        if let gid = self.group {
            guard chown(path, uid_t.max, gid) == 0 else { throw SystemError("chown \(path)") }
            guard chmod(path, 0o660) == 0 else { throw SystemError("chmod \(path)") }
        } else {
            guard chmod(path, 0o600) == 0 else { throw SystemError("chmod \(path)") }
        }
        guard listen(listener, 16) == 0 else { throw SystemError("listen \(path)") }
        try events.add(fd: listener, events: .readable, token: ControlSocketServer.listenerToken)
        try events.add(fd: timer, events: .readable, token: ControlSocketServer.timerToken)
    }

    deinit { close() }

    /// Stops listening: closes every connection and the socket, and removes the socket file.
    public func close() {
        for connection in connections.values { Glibc.close(connection.fd) }
        connections.removeAll()
        guard !isClosed else { return }
        isClosed = true
        if let (dev, ino) = boundFile {
            var st = stat()
            if lstat(path, &st) == 0, st.st_dev == dev, st.st_ino == ino { unlink(path) }
            boundFile = nil
        }
        if listener >= 0 { Glibc.close(listener) }
        if timer >= 0 { Glibc.close(timer) }
    }

    /// How many connections are open.
    public var openConnections: Int { connections.count }

    /// Accepts, reads, answers and times out whatever is ready, without blocking.
    public func service() throws {
        var ready: [(token: Int, hangup: Bool)] = []
        try events.wait(timeoutNanoseconds: 0) { token, _, _, hangup in ready.append((token, hangup)) }
        for (token, hangup) in ready {
            switch token {
            case ControlSocketServer.listenerToken: try acceptPending()
            case ControlSocketServer.timerToken:
                var expirations: UInt64 = 0
                _ = Glibc.read(timer, &expirations, MemoryLayout<UInt64>.size)
            default:
                guard let connection = connections[token] else { continue }
                if connection.writing { flush(connection, token: token, hangup: hangup) } else { receive(connection, token: token) }
            }
        }
        expire()
        armTimer()
    }

    private func acceptPending() throws {
        while true {
            let client = CLinuxNet_accept_nonblocking(listener)
            if client < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK: return
                // The client gave up before we accepted; or we are out of descriptors, where
                // waiting for the next readiness is all we can do.
                case ECONNABORTED, EMFILE, ENFILE, ENOBUFS, ENOMEM: return
                default: throw SystemError("accept \(path)")
                }
            }
            if let refusal = refusal(of: client) {
                // A fresh socket's send buffer is empty: one short line always fits.
                _ = refusal.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                Glibc.close(client)
                continue
            }
            let token = nextToken
            nextToken += 1
            let connection = Connection(fd: client, deadline: ControlSocketServer.now() + timeoutNanoseconds)
            do { try events.add(fd: client, events: .readable, token: token) } catch {
                Glibc.close(client)
                throw error
            }
            connections[token] = connection
        }
    }

    /// Why `client` may not talk to us, as the line to send it; nil when it may.
    private func refusal(of client: Int32) -> [UInt8]? {
        if connections.count >= maximumConnections { return Array("error: busy\n".utf8) }
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard CLinuxNet_peer_credentials(client, &pid, &uid, &gid) == 0 else {
            return Array("error: no peer credentials\n".utf8)
        }
        if ControlSocketServer.mayConnect(
            uid: uid, gid: gid, groups: { ControlSocketServer.peerGroups(client) },
            socketGroup: group, daemonUser: geteuid())
        {
            return nil
        }
        return Array("error: permission denied (uid \(uid) is not root or in the socket's group)\n".utf8)
    }

    /// Who may talk to tquicd: root, the user tquicd runs as, and members of the socket's group
    /// (as primary or supplementary group, `groups` read only when needed).
    static func mayConnect(uid: uid_t, gid: gid_t, groups: () -> [gid_t], socketGroup: gid_t?, daemonUser: uid_t) -> Bool {
        if uid == 0 || uid == daemonUser { return true }
        guard let socketGroup else { return false }
        return gid == socketGroup || groups().contains(socketGroup)
    }

    private static func peerGroups(_ fd: Int32) -> [gid_t] {
        var groups = [gid_t](repeating: 0, count: 64)
        while true {
            let capacity = groups.count
            let n = Int(groups.withUnsafeMutableBufferPointer { CLinuxNet_peer_groups(fd, $0.baseAddress, Int32(capacity)) })
            if n < 0 { return [] }
            if n <= capacity { return Array(groups.prefix(n)) }
            groups = [gid_t](repeating: 0, count: n)
        }
    }

    private func receive(_ connection: Connection, token: Int) {
        let limit = ControlSocketServer.requestLimit
        var chunk = [UInt8](repeating: 0, count: limit)
        let room = limit - connection.request.count
        let n = chunk.withUnsafeMutableBytes { Glibc.read(connection.fd, $0.baseAddress, room) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
            return finish(token)
        }
        if n == 0 {
            // The client closed its side: what it sent is the request, if anything.
            if connection.request.isEmpty { return finish(token) }
            return respond(connection, token: token, line: connection.request)
        }
        connection.request += chunk[0..<n]
        if let newline = connection.request.firstIndex(of: UInt8(ascii: "\n")) {
            respond(connection, token: token, line: Array(connection.request[..<newline]))
        } else if connection.request.count >= limit {
            connection.response = Array("error: request longer than \(limit) bytes\n".utf8)
            startWriting(connection, token: token)
        }
    }

    private func respond(_ connection: Connection, token: Int, line: [UInt8]) {
        var line = line
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        connection.response = Array(handler(String(decoding: line, as: UTF8.self)).utf8)
        startWriting(connection, token: token)
    }

    private func startWriting(_ connection: Connection, token: Int) {
        connection.writing = true
        flush(connection, token: token, hangup: false)
        if connections[token] != nil {
            try? events.modify(fd: connection.fd, events: .writable, token: token)
        }
    }

    private func flush(_ connection: Connection, token: Int, hangup: Bool) {
        while connection.written < connection.response.count {
            let n = connection.response.withUnsafeBytes {
                send(connection.fd, $0.baseAddress! + connection.written, $0.count - connection.written, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if (errno == EAGAIN || errno == EWOULDBLOCK) && !hangup { return }
                return finish(token)
            }
            connection.written += n
        }
        finish(token)
    }

    private func finish(_ token: Int) {
        guard let connection = connections.removeValue(forKey: token) else { return }
        // Closing removes it from the epoll set.
        Glibc.close(connection.fd)
    }

    private func expire() {
        let now = ControlSocketServer.now()
        for (token, connection) in connections where connection.deadline <= now {
            if !connection.writing {
                let line = Array("error: timed out\n".utf8)
                _ = line.withUnsafeBytes { send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            }
            finish(token)
        }
    }

    /// The timer fires at the earliest connection deadline (CLOCK_MONOTONIC, absolute), which
    /// makes `fd` readable then; disarmed while no connection is open.
    private func armTimer() {
        let earliest = connections.values.lazy.map(\.deadline).min() ?? 0
        guard earliest != armedDeadline else { return }
        armedDeadline = earliest
        var spec = itimerspec()
        spec.it_value = timespec(tv_sec: Int(earliest / 1_000_000_000), tv_nsec: Int(earliest % 1_000_000_000))
        _ = timerfd_settime(timer, Int32(TFD_TIMER_ABSTIME), &spec, nil)
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw ControlSocketError("control socket path \"\(path)\" is empty or longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    private static func makeParentDirectory(of path: String, group: gid_t?) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        if mkdir(directory, 0o750) == 0 {
            // Exactly 0750 whatever the umask; group members may enter to reach the socket.
            _ = chmod(directory, 0o750)
            if let group { _ = chown(directory, uid_t.max, group) }
        } else if errno != EEXIST {
            throw SystemError("mkdir \(directory)")
        }
    }

    /// Removes a socket file at `path` that no server listens on; throws when one does.
    private static func removeStaleSocket(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw SystemError("stat \(path)")
        }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw ControlSocketError("\(path) exists and is not a socket")
        }
        let probe = socket(AF_UNIX, Int32(CLinuxNet_SOCK_STREAM) | Int32(CLinuxNet_SOCK_NONBLOCK) | Int32(CLinuxNet_SOCK_CLOEXEC), 0)
        guard probe >= 0 else { throw SystemError("socket AF_UNIX") }
        defer { Glibc.close(probe) }
        var addr = try address(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        // Accepted, or a listener whose backlog is full: a server is there.
        if rc == 0 || errno == EAGAIN {
            throw ControlSocketError("another tquicd is running (\(path) answers)")
        }
        guard errno == ECONNREFUSED else { throw SystemError("connect \(path)") }
        guard unlink(path) == 0 || errno == ENOENT else { throw SystemError("unlink stale \(path)") }
    }
}

/// `tquicctl`'s side: one request line, the whole response.
public enum ControlSocketClient {
    /// The most response bytes read (a status of many tenants and paths fits easily).
    public static let responseLimit = 1 << 20

    /// Sends `line` (no newline in it) to the server at `path` and returns its response text as
    /// sent, "error: …" lines of the server included.
    /// - Throws: `ControlSocketError` for a line that is too long or has a newline, or when the
    ///   whole exchange takes longer than `timeout`; `SystemError` when the connection fails.
    public static func request(_ line: String, path: String, timeout: Duration = .seconds(5)) throws -> String {
        let request = Array((line + "\n").utf8)
        guard !line.contains(where: \.isNewline) else { throw ControlSocketError("a request is one line") }
        guard request.count <= ControlSocketServer.requestLimit else {
            throw ControlSocketError("request longer than \(ControlSocketServer.requestLimit) bytes")
        }
        var address = try ControlSocketServer.address(path)
        let fd = socket(AF_UNIX, Int32(CLinuxNet_SOCK_STREAM) | Int32(CLinuxNet_SOCK_CLOEXEC), 0)
        guard fd >= 0 else { throw SystemError("socket AF_UNIX") }
        defer { close(fd) }
        let (seconds, attoseconds) = timeout.components
        let deadline = now() + UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        // Blocking calls, each bounded by what is left of the deadline (SO_SNDTIMEO bounds
        // connect too, while the server's backlog is full).
        func limitNextCall() throws {
            let current = now()
            guard current < deadline else { throw ControlSocketError("no answer from \(path) within \(timeout)") }
            let left = deadline - current
            var tv = timeval(tv_sec: Int(left / 1_000_000_000), tv_usec: Int(max(1, (left % 1_000_000_000) / 1_000)))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        func timedOut() -> Bool { errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS }

        try limitNextCall()
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            if timedOut() { throw ControlSocketError("no answer from \(path) within \(timeout)") }
            throw SystemError("connect \(path)")
        }
        var sent = 0
        while sent < request.count {
            try limitNextCall()
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if timedOut() { throw ControlSocketError("no answer from \(path) within \(timeout)") }
                // The server refused us (busy, permission) and closed before our line went out:
                // its error line is waiting to be read.
                if errno == EPIPE || errno == ECONNRESET { break }
                throw SystemError("send \(path)")
            }
            sent += n
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while response.count < responseLimit {
            try limitNextCall()
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                if timedOut() { throw ControlSocketError("no answer from \(path) within \(timeout)") }
                // A server that closes with our request unread (it refused us) resets the
                // connection after its answer: the answer is what we have.
                if errno == ECONNRESET && !response.isEmpty { break }
                throw SystemError("recv \(path)")
            }
            response += chunk[0..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
