// Sender side, at the tunnel's entry: CoDel (RFC 8289) on the bulk queue. The LAN's TCP flows
// fill whatever queue sits in front of the slowest link; without active queue management that
// queue is the TUN's ring or ours, and every ping or VoIP packet behind it waits. CoDel lets a
// queue absorb bursts but drops from its head once packets have waited longer than `target` for
// a whole `interval`, more often the longer that lasts, so the inner TCP backs off while the
// queue is still short. Interactive packets have a queue of their own and are never dropped here.
import Congestion

/// The CoDel state machine of one FIFO (RFC 8289 §5), sans-I/O: the queue asks it about each
/// packet as that packet leaves.
public struct CoDel: Sendable, Equatable {
    public struct Parameters: Sendable, Equatable {
        /// RFC 8289 §4.4: TARGET, the acceptable standing queue delay (5 ms).
        public var target: Duration = .milliseconds(5)
        /// RFC 8289 §4.5: INTERVAL, on the order of a worst-case RTT (100 ms).
        public var interval: Duration = .milliseconds(100)
        public init() {}
    }

    public let parameters: Parameters
    /// In the dropping state (RFC 8289 §5.5).
    public private(set) var isDropping = false
    /// Packets CoDel dropped.
    public private(set) var drops: UInt64 = 0
    private var count: UInt32 = 0
    private var lastCount: UInt32 = 0
    /// When the sojourn time first stayed above target, plus one interval (nil: it is below).
    private var firstAboveTime: Timestamp?
    private var dropNext = Timestamp.zero

    public init(parameters: Parameters = Parameters()) {
        self.parameters = parameters
    }

    /// The packet at the head leaves the queue now, after `sojourn` in it, leaving `backlogBytes`
    /// behind; true: drop it instead of sending it (the caller then asks about the next one).
    /// `maxPacketBytes`: a queue holding no more than one packet is never dropped from (RFC 8289
    /// §4.2: that would empty the link).
    ///
    /// `allowance`: queueing delay that is the scheduler's choice, not congestion. In front of
    /// paths whose one-way delays differ (fibre 5 ms, satellite 300 ms), a bulk packet waits for
    /// the fast path until waiting would cost more than the slow path's extra delay; only then does
    /// the slow path pay (ECF). A queue kept at 5 ms never gets there and the slow path is never
    /// used. So the target grows by the allowance and the interval, "on the order of a worst-case
    /// RTT" (RFC 8289 §4.5), by twice it.
    public mutating func shouldDrop(
        sojourn: Duration, backlogBytes: Int, maxPacketBytes: Int, now: Timestamp, allowance: Duration = .zero
    ) -> Bool {
        let target = parameters.target + allowance
        let interval = parameters.interval + allowance * 2
        let okToDrop = isAboveTargetLongEnough(
            sojourn: sojourn, target: target, interval: interval, backlogBytes: backlogBytes, maxPacketBytes: maxPacketBytes, now: now)
        if isDropping {
            if !okToDrop {
                // RFC 8289 §5.5: below target again: leave the dropping state.
                isDropping = false
                return false
            }
            guard now >= dropNext else { return false }
            // The next drop comes sooner each time (interval / sqrt(count)), until the queue falls
            // below target. (RFC 8289's loop advances drop_next once it has seen the next packet;
            // here it advances with the drop, which differs only when that packet ends the state.)
            count &+= 1
            dropNext = controlLaw(dropNext, count, interval: interval)
            drops += 1
            return true
        }
        guard okToDrop else { return false }
        // RFC 8289 §5.6: enter the dropping state; if it was left only recently, resume near the
        // drop rate it had reached rather than from 1.
        isDropping = true
        let delta = count &- lastCount
        count = delta > 1 && now - dropNext < interval * 16 ? delta : 1  // saturating: 0 if dropNext is ahead
        dropNext = controlLaw(now, count, interval: interval)
        lastCount = count
        drops += 1
        return true
    }

    /// The queue ran empty (RFC 8289 §5.4: the sojourn time is below target by definition).
    public mutating func queueEmptied() {
        firstAboveTime = nil
        isDropping = false
    }

    /// RFC 8289 §5.4 (dodequeue's ok_to_drop).
    private mutating func isAboveTargetLongEnough(
        sojourn: Duration, target: Duration, interval: Duration, backlogBytes: Int, maxPacketBytes: Int, now: Timestamp
    ) -> Bool {
        if sojourn < target || backlogBytes <= maxPacketBytes {
            firstAboveTime = nil
            return false
        }
        guard let first = firstAboveTime else {
            firstAboveTime = now + interval
            return false
        }
        return now >= first
    }

    /// RFC 8289 §5.5: t + interval / sqrt(count).
    private func controlLaw(_ t: Timestamp, _ count: UInt32, interval: Duration) -> Timestamp {
        t + Duration(nanoseconds: UInt64(Double(interval.nanoseconds) / Double(max(count, 1)).squareRoot()))
    }
}
