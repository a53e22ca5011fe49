// One tunnel over one multipath QUIC connection, sans-I/O: what tquicd runs per router (and per
// tenant on the VPS) and what tquic-sim runs over simulated links. The owner feeds datagrams into
// the connection, calls `process` after every input or timer, and sleeps until `nextTimeout`;
// the engine handles the connection's events, path health, the sending way (TunnelSender.swift)
// and the receiving way (TunnelReceiver.swift).
import Bonding
import Congestion
import QUIC

public final class TunnelEngine {
    public let connection: Connection
    public let configuration: TunnelConfiguration
    public let sender: TunnelSender
    public let receiver: TunnelReceiver
    public let paths: PathHealth
    private let sendPool: PacketBufferPool
    private let receivePool: PacketBufferPool

    /// - Parameters:
    ///   - links: the router's WAN links (link 0 rides the handshake's path 0), or nil on the VPS,
    ///     whose links are the paths the router opens.
    public init(connection: Connection, configuration: TunnelConfiguration, links: [TunnelLink]?) {
        self.connection = connection
        self.configuration = configuration
        sendPool = PacketBufferPool(count: configuration.sendBufferCount, bufferSize: configuration.packetBufferSize)
        receivePool = PacketBufferPool(count: configuration.receiveBufferCount, bufferSize: configuration.packetBufferSize)
        sender = TunnelSender(configuration: configuration, pool: sendPool)
        receiver = TunnelReceiver(configuration: configuration, pool: receivePool)
        paths = PathHealth(role: links == nil ? .followsPeer : .opensPaths, links: links ?? [], configuration: configuration)
        let receiver = self.receiver
        // Stage 1 of the receiving way, zero-copy from the connection's receive buffer.
        connection.onDatagram = { bytes, pathID in receiver.take(bytes, pathID: pathID) }
    }

    /// How many times a path's MTU changed (the owner compares it with the last value it saw to
    /// resize the TUN at once rather than on a timer).
    public private(set) var pathMTUChanges = 0
    /// Whether `innerPacketCapacityIsSettled` was true once: from then on an oversized packet is
    /// answered even while a path searches again after a black hole (its sender must back off
    /// now, and a real MTU change is what it must hear about).
    public private(set) var capacityWasSettled = false

    /// Free packet buffers (for diagnostics and leak tests).
    public var freePacketBuffers: (send: Int, receive: Int) { (sendPool.available, receivePool.available) }

    /// After every datagram given to the connection and every timer: the connection's events,
    /// path health, then the receiving way (`deliver` gets each inner packet in order, with the
    /// path it came on) and the sending way (inner packets from `enqueue` and from `source`).
    public func process(now: Timestamp, source: InnerPacketSource?, deliver: (UnsafeRawBufferPointer, UInt32) -> Void) {
        while let e = connection.pollEvent() {
            switch e {
            case .datagramAcknowledged(let tag): sender.onDatagramAcknowledged(tag: tag)
            case .datagramLost(let tag): sender.onDatagramLost(tag: tag, connection: connection, paths: paths)
            case .pathMTUChanged: pathMTUChanges &+= 1
            default: break
            }
        }
        guard connection.isMultipathEnabled || connection.handshakeConfirmed else { return }
        paths.update(connection: connection, now: now)
        paths.takeFailedPaths { sender.onPathsFailed($0, now: now) }
        receiver.process(connection: connection, now: now, deliver: deliver)
        sender.pump(connection: connection, paths: paths, source: source, now: now)
    }

    /// One inner packet pushed in (the VPS's shared TUN, where the tenant is known only per
    /// packet) and sent at once if a path has room; queued otherwise. False: dropped (queue full
    /// or too large), counted in the sender's statistics.
    @discardableResult
    public func send(_ packet: UnsafeRawBufferPointer, now: Timestamp) -> Bool {
        guard sender.enqueue(packet, now: now) else { return false }
        if connection.isMultipathEnabled || connection.handshakeConfirmed {
            sender.pump(connection: connection, paths: paths, source: nil, now: now)
        }
        return true
    }

    /// The largest inner packet every usable path carries now (each path's MTU minus the QUIC and
    /// tunnel headers): what the TUN MTU should follow. Paths in their first MTU search (a new or
    /// revived path starts at 1200 bytes) do not count while another path's MTU is known:
    /// the sender gives them only packets they carry, and counting them would shrink the TUN for
    /// the moment of their search. nil while no path is usable.
    public var innerPacketCapacity: Int? {
        var settled: Int?
        var searching: Int?
        for (i, link) in paths.links.enumerated() where paths.isUsable(link: i) {
            // A path that takes no datagram yet (0: the peer's limit not known) says nothing.
            guard let id = link.pathID, let st = connection.pathCondition(id), st.state == .active,
                let room = connection.maxDatagramPayloadSize(onPath: id), room > TunnelFrame.headerLength
            else { continue }
            // A path searching again after a black hole does count: its old MTU is gone, and
            // the LAN hosts must hear the smaller one now, not after its search (seconds of
            // probe timeouts).
            if st.mtuSettled || st.mtuBlackHoles > 0 {
                settled = min(settled ?? room, room)
            } else {
                searching = min(searching ?? room, room)
            }
        }
        var smallest = settled ?? searching
        if smallest == nil, connection.handshakeConfirmed, connection.maxDatagramPayloadSize > TunnelFrame.headerLength {
            smallest = connection.maxDatagramPayloadSize
        }
        if settled != nil { capacityWasSettled = true }
        return smallest.map { $0 - TunnelFrame.headerLength }
    }

    /// Whether some usable path has finished its MTU search, so `innerPacketCapacity` is what a
    /// path really carries rather than the 1200 bytes every path starts from. Until the first
    /// search has finished an oversized inner packet is dropped without an ICMP answer: one
    /// naming the starting size would pin the LAN host to it for minutes (Linux caches a path
    /// MTU for 10).
    public var innerPacketCapacityIsSettled: Bool {
        for (i, link) in paths.links.enumerated() where paths.isUsable(link: i) {
            guard let id = link.pathID, let st = connection.pathCondition(id), st.state == .active else { continue }
            if st.mtuSettled {
                capacityWasSettled = true
                return true
            }
        }
        return false
    }

    /// Whether an inner packet larger than `innerPacketCapacity` should get an ICMP answer: once
    /// a path's MTU was known, from then on (a real MTU change is what the sender must hear of).
    public var answersTooBig: Bool { capacityWasSettled || innerPacketCapacityIsSettled }

    /// When `process` must run again by itself (besides the connection's own `nextTimeout`): a
    /// reorder hold expiring, the sender's pacing or source wake-up.
    public var nextTimeout: Timestamp? {
        switch (receiver.nextDeadline, sender.wakeUp) {
        case (let a?, let b?): return min(a, b)
        case (let a, let b): return a ?? b
        }
    }
}
