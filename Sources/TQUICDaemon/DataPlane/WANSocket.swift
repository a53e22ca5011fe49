// One WAN link of the router: its configuration, whether it can carry a path now (interface up
// with carrier and an address of the server's family), and the UDP socket bound to it with
// SO_BINDTODEVICE, so the kernel sends the path's datagrams out of that link whatever the
// routing table says. The socket exists only while the interface does (binding to a missing
// interface fails), and is made again when it comes back.
import LinuxNet
import QUIC

final class WANSocket {
    let configuration: WANConfiguration
    let family6: Bool
    private(set) var socket: UDPSocket?
    private(set) var batch: UDPSendBatch?
    /// The interface is up, has carrier and an address of the server's family.
    var isUsable = false
    var interfaceIndex: Int32?
    var addresses: [IPPrefix] = []
    private(set) var openError: String?

    init(configuration: WANConfiguration, serverIsIPv6: Bool) {
        self.configuration = configuration
        family6 = serverIsIPv6
    }

    var name: String { configuration.interface }

    /// Opens the socket if it is not open; false (with `openError`) when the kernel refuses.
    func open() -> Bool {
        if socket != nil { return true }
        let wildcard = SocketAddress(ip: family6 ? [UInt8](repeating: 0, count: 16) : [0, 0, 0, 0], port: 0)
        do {
            let s = try UDPSocket(bindTo: configuration.source ?? wildcard, interface: configuration.interface)
            _ = s.setReceiveOffload(true)
            s.setDontFragment()
            socket = s
            batch = UDPSendBatch(socket: s)
            openError = nil
            return true
        } catch {
            openError = "\(error)"
            return false
        }
    }

    func close() {
        socket = nil
        batch = nil
    }

    /// The local address paths from this WAN are opened from (the kernel picks the IP when the
    /// socket is bound to the wildcard; the port is the socket's).
    var localAddress: SocketAddress? {
        guard let s = socket else { return nil }
        if let src = configuration.source { return SocketAddress(ip: src.ip, port: s.localPort) }
        guard let a = addresses.first(where: { $0.isIPv6 == family6 }) else { return nil }
        return SocketAddress(ip: a.address.ip, port: s.localPort)
    }
}
