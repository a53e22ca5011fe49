// Where the sender's inner IP packets come from: the TUN device in tquicd, a traffic model in
// tquic-sim. The sender pulls a packet only when it is about to schedule one, so a saturating
// source never builds a queue inside the tunnel; a source whose own queue is a plain FIFO (the
// TUN's ring) asks to be drained at once instead, so that its interactive packets get ahead of
// bulk ones and the bulk queue is the one CoDel manages.
import Congestion

public protocol InnerPacketSource: AnyObject {
    /// Writes the next inner IP packet into `buffer` and returns its length; nil when none is
    /// ready now (a non-blocking TUN read that found nothing, a rate limit).
    func readPacket(into buffer: UnsafeMutableRawBufferPointer, now: Timestamp) -> Int?
    /// Inner bytes that were waiting when the last packet was read, that packet included, if the
    /// source knows (ECF's backlog for the `aggregate` scheduler); nil: unknown, taken as large.
    var backlogBytes: Int? { get }
    /// When a packet will be ready, if the source knows (a rate-limited model); the engine wakes then.
    var nextPacketTime: Timestamp? { get }
    /// Read everything it has at every round (into the interactive and the managed bulk queue),
    /// not only when a path has room: its own queue would hold a ping behind bulk packets.
    var drainsEagerly: Bool { get }
}

extension InnerPacketSource {
    public var backlogBytes: Int? { nil }
    public var nextPacketTime: Timestamp? { nil }
    public var drainsEagerly: Bool { false }
}
