// Reading rtnetlink messages (rtnetlink(7)) out of a received buffer: link and address messages
// become NetworkInterface / InterfaceAddress values, NLMSG_ERROR and NLMSG_DONE end a request.
// Shared by RouteNetlink.swift (answers to requests and dumps) and NetlinkMonitor.swift (events).
// Every length comes from the kernel or from whoever fed the buffer, so each one is checked
// before it is used: a malformed message is skipped, a lying length ends the walk, nothing traps.
import CMnl
import QUIC

/// The header fields of one netlink message (struct nlmsghdr) that the readers act on.
struct RouteMessageHeader {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var portID: UInt32

    /// NLM_F_DUMP_INTR: the tables changed while the kernel dumped them; the dump may be
    /// inconsistent and is worth repeating.
    var dumpWasInterrupted: Bool { flags & UInt16(NLM_F_DUMP_INTR) != 0 }
}

/// An address as an RTM_NEWADDR / RTM_DELADDR message gives it, before the interface's name is
/// looked up.
struct AddressRecord: Equatable {
    var interfaceIndex: Int32
    var prefix: IPPrefix
    /// IFA_FLAGS when present (all 32 bits), else ifa_flags.
    var flags: UInt32
    /// IFA_LABEL (IPv4 only): the interface's name or an alias of it ("eth0:1").
    var label: String?

    /// Not usable yet (IPv6 duplicate address detection running) or never (DAD failed): a
    /// socket cannot bind to it.
    var isTentative: Bool { flags & UInt32(IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0 }
}

/// One rtnetlink message, decoded as far as LinuxNet needs.
enum RouteMessage {
    /// RTM_NEWLINK (a dump's entry or a change) or RTM_DELLINK.
    case link(NetworkInterface, removed: Bool)
    /// RTM_NEWADDR or RTM_DELADDR of an IPv4 or IPv6 address.
    case address(AddressRecord, removed: Bool)
    /// NLMSG_ERROR with error 0: the request succeeded.
    case acknowledgement
    /// NLMSG_ERROR with an errno, and the kernel's explanation if it sent one (extended ack).
    case failure(errno: Int32, message: String?)
    /// NLMSG_DONE: the end of a dump.
    case done
    /// Anything else (routes, neighbours, NLMSG_NOOP), and messages too short for their type.
    case other

    /// Calls `body` for each message in `buffer` (what one recv returned), in order. A message
    /// whose own length is impossible (shorter than its header, or past the end of the buffer)
    /// ends the walk, since the next one cannot be found; a message that is well framed but
    /// malformed inside is reported as `.other` and the walk goes on.
    /// - Precondition: none; a buffer that does not start on a 4-byte boundary (never one the
    ///   kernel filled) is ignored as a whole.
    static func forEach(in buffer: UnsafeRawBufferPointer, _ body: (RouteMessageHeader, RouteMessage) -> Void) {
        guard let base = buffer.baseAddress, Int(bitPattern: base) % 4 == 0, buffer.count <= Int(Int32.max) else { return }
        var remaining = Int32(buffer.count)
        var message = base.assumingMemoryBound(to: nlmsghdr.self)
        // mnl_nlmsg_ok compares nlmsg_len as a signed int, so it passes a length of 2 GiB and
        // more ("negative"): check it against the bytes left ourselves as well.
        while mnl_nlmsg_ok(message, remaining) && message.pointee.nlmsg_len <= UInt32(remaining) {
            let h = message.pointee
            let header = RouteMessageHeader(type: h.nlmsg_type, flags: h.nlmsg_flags, sequence: h.nlmsg_seq, portID: h.nlmsg_pid)
            body(header, decode(message))
            // mnl_nlmsg_next subtracts the aligned length from `remaining`; negative ends the walk.
            message = UnsafePointer(mnl_nlmsg_next(message, &remaining))
        }
    }

    /// Decodes one message that `mnl_nlmsg_ok` accepted (its nlmsg_len lies within the buffer).
    static func decode(_ message: UnsafePointer<nlmsghdr>) -> RouteMessage {
        switch Int(message.pointee.nlmsg_type) {
        case Int(RTM_NEWLINK), Int(RTM_DELLINK):
            guard let link = decodeLink(message) else { return .other }
            return .link(link, removed: Int(message.pointee.nlmsg_type) == Int(RTM_DELLINK))
        case Int(RTM_NEWADDR), Int(RTM_DELADDR):
            guard let address = decodeAddress(message) else { return .other }
            return .address(address, removed: Int(message.pointee.nlmsg_type) == Int(RTM_DELADDR))
        case Int(NLMSG_ERROR):
            return decodeError(message)
        case Int(NLMSG_DONE):
            // A dump that failed part-way ends with NLMSG_DONE carrying a negative errno.
            if payloadLength(message) >= MemoryLayout<Int32>.size {
                let error = payload(of: message).loadUnaligned(as: Int32.self)
                if error < 0 { return .failure(errno: -error, message: nil) }
            }
            return .done
        default:
            return .other
        }
    }

    // MARK: - Links (struct ifinfomsg + IFLA_* attributes)

    static func decodeLink(_ message: UnsafePointer<nlmsghdr>) -> NetworkInterface? {
        guard payloadLength(message) >= MemoryLayout<ifinfomsg>.size else { return nil }
        let info = payload(of: message).loadUnaligned(as: ifinfomsg.self)
        var name: String?
        var mtu = 0
        forEachAttribute(of: message, afterHeaderOf: MemoryLayout<ifinfomsg>.size) { attribute in
            switch Int(mnl_attr_get_type(attribute)) {
            case Int(IFLA_IFNAME): name = string(attribute)
            case Int(IFLA_MTU): if let v = uint32(attribute) { mtu = Int(v) }
            default: break
            }
        }
        guard let name, !name.isEmpty, info.ifi_index > 0 else { return nil }
        let flags = info.ifi_flags
        return NetworkInterface(
            index: info.ifi_index, name: name,
            isUp: flags & UInt32(IFF_UP) != 0,
            hasCarrier: flags & (UInt32(IFF_RUNNING) | UInt32(CMnl_IFF_LOWER_UP)) != 0,
            mtu: mtu, flags: flags)
    }

    // MARK: - Addresses (struct ifaddrmsg + IFA_* attributes)

    static func decodeAddress(_ message: UnsafePointer<nlmsghdr>) -> AddressRecord? {
        guard payloadLength(message) >= MemoryLayout<ifaddrmsg>.size else { return nil }
        let info = payload(of: message).loadUnaligned(as: ifaddrmsg.self)
        let byteCount: Int
        switch Int32(info.ifa_family) {
        case AF_INET: byteCount = 4
        case AF_INET6: byteCount = 16
        default: return nil
        }
        var local: SocketAddress?
        var address: SocketAddress?
        var flags = UInt32(info.ifa_flags)
        var label: String?
        forEachAttribute(of: message, afterHeaderOf: MemoryLayout<ifaddrmsg>.size) { attribute in
            switch Int(mnl_attr_get_type(attribute)) {
            case Int(IFA_LOCAL): local = ipAddress(attribute, byteCount: byteCount) ?? local
            case Int(IFA_ADDRESS): address = ipAddress(attribute, byteCount: byteCount) ?? address
            case Int(IFA_FLAGS): if let v = uint32(attribute) { flags = v }
            case Int(IFA_LABEL): label = string(attribute)
            default: break
            }
        }
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the same, or the peer of a
        // point-to-point link, and the only one IPv6 usually sends.
        guard let ip = local ?? address, info.ifa_index <= UInt32(Int32.max),
            let prefix = IPPrefix(address: ip, length: Int(info.ifa_prefixlen))
        else { return nil }
        return AddressRecord(interfaceIndex: Int32(info.ifa_index), prefix: prefix, flags: flags, label: label)
    }

    // MARK: - Acknowledgements and errors (struct nlmsgerr, extended ack attributes)

    static func decodeError(_ message: UnsafePointer<nlmsghdr>) -> RouteMessage {
        guard payloadLength(message) >= MemoryLayout<Int32>.size else { return .other }
        let payload = payload(of: message)
        let error = payload.loadUnaligned(as: Int32.self)
        if error == 0 { return .acknowledgement }
        var text: String?
        let flags = Int32(message.pointee.nlmsg_flags)
        if flags & NLM_F_ACK_TLVS != 0, payloadLength(message) >= MemoryLayout<nlmsgerr>.size {
            // The attributes follow the echoed request: its header only when the ack is capped
            // (NETLINK_CAP_ACK, which RouteNetlink sets), else the whole request.
            var echoed = MemoryLayout<nlmsgerr>.size
            if flags & NLM_F_CAPPED == 0 {
                let request = payload.loadUnaligned(fromByteOffset: MemoryLayout<Int32>.size, as: nlmsghdr.self)
                echoed = MemoryLayout<Int32>.size + Int(request.nlmsg_len)
            }
            forEachAttribute(of: message, afterHeaderOf: echoed) { attribute in
                if Int(mnl_attr_get_type(attribute)) == Int(NLMSGERR_ATTR_MSG.rawValue) {
                    text = string(attribute)
                }
            }
        }
        // The kernel sends -errno; a positive value would be a sender's mistake, keep its size.
        return .failure(errno: error == Int32.min ? Int32.max : abs(error), message: text)
    }

    // MARK: - Attributes

    /// Where the message's payload (its family header) starts: mnl_nlmsg_get_payload.
    static func payload(of message: UnsafePointer<nlmsghdr>) -> UnsafeRawPointer {
        UnsafeRawPointer(message) + CMnl_messageHeaderLength()
    }

    /// The bytes after the netlink header that the message's nlmsg_len covers.
    static func payloadLength(_ message: UnsafePointer<nlmsghdr>) -> Int {
        Int(message.pointee.nlmsg_len) - CMnl_messageHeaderLength()
    }

    /// Calls `body` for each well-formed attribute after the family header (ifinfomsg,
    /// ifaddrmsg, ...) of `headerSize` bytes, up to the end of the message; the first attribute
    /// whose length runs past the end stops the walk.
    static func forEachAttribute(
        of message: UnsafePointer<nlmsghdr>, afterHeaderOf headerSize: Int, _ body: (UnsafePointer<nlattr>) -> Void
    ) {
        let start = CMnl_messageHeaderLength() + CMnl_align(headerSize)
        let end = Int(message.pointee.nlmsg_len)
        guard start < end else { return }
        let base = UnsafeRawPointer(message)
        var offset = start
        while offset < end {
            let attribute = (base + offset).assumingMemoryBound(to: nlattr.self)
            guard mnl_attr_ok(attribute, Int32(end - offset)) else { return }
            body(attribute)
            offset += CMnl_align(Int(attribute.pointee.nla_len))
        }
    }

    /// A NUL-terminated string attribute (IFLA_IFNAME, IFA_LABEL): the bytes before the first
    /// NUL, or all of them if the sender forgot it.
    static func string(_ attribute: UnsafePointer<nlattr>) -> String {
        let bytes = UnsafeRawBufferPointer(start: mnl_attr_get_payload(attribute), count: Int(mnl_attr_get_payload_len(attribute)))
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    static func uint32(_ attribute: UnsafePointer<nlattr>) -> UInt32? {
        mnl_attr_get_payload_len(attribute) >= 4 ? mnl_attr_get_u32(attribute) : nil
    }

    /// An address attribute of the message's family, or nil if its size does not match.
    static func ipAddress(_ attribute: UnsafePointer<nlattr>, byteCount: Int) -> SocketAddress? {
        guard Int(mnl_attr_get_payload_len(attribute)) == byteCount else { return nil }
        return SocketAddress(ipBytes: UnsafeRawBufferPointer(start: mnl_attr_get_payload(attribute), count: byteCount), port: 0)
    }
}
