import CLinuxNet
// Network namespaces (network_namespaces(7)) as the tests and the namespace lab use them: a
// thread moves itself into a named namespace (`ip netns add NAME` makes /run/netns/NAME), and
// the sockets, TUN devices and netlink sockets it opens from then on live there. The namespace
// is a per-thread attribute: the process's other threads stay where they were.
import Glibc

public enum NetworkNamespace {
    /// Moves the calling thread into the network namespace at `path` (setns(2), CLONE_NEWNET).
    /// - Throws: `SystemError` (ENOENT: no such namespace; EPERM: not CAP_SYS_ADMIN).
    public static func enter(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        defer { close(fd) }
        guard CLinuxNet_enterNetworkNamespace(fd) == 0 else { throw SystemError("setns \(path)") }
    }

    /// `enter(path:)` for a namespace that `ip netns add name` made.
    public static func enter(named name: String) throws {
        try enter(path: "/run/netns/\(name)")
    }
}
