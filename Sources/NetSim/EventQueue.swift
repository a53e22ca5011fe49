// The simulator's agenda: a binary min-heap of timed events. Events are ordered by time, and events
// at the same time by the order they were pushed, so a run never depends on heap internals.
import Congestion

/// A priority queue of events keyed by (time, insertion sequence).
///
/// Two events scheduled for the same instant come out in the order they were pushed: that tie rule is
/// what makes a simulation repeatable.
public struct EventQueue<Payload> {
    @usableFromInline
    struct Entry {
        var time: Timestamp
        var sequence: UInt64
        var payload: Payload

        @inline(__always)
        func precedes(_ other: Entry) -> Bool {
            time < other.time || (time == other.time && sequence < other.sequence)
        }
    }

    private var heap: [Entry] = []
    private var nextSequence: UInt64 = 0

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }

    /// Time of the earliest event, or nil when the queue is empty.
    public var nextTime: Timestamp? { heap.first?.time }

    /// Schedules `payload` at `time`.
    /// - Returns: the insertion sequence number, which breaks ties between events at the same time.
    @discardableResult
    public mutating func push(_ payload: Payload, at time: Timestamp) -> UInt64 {
        let sequence = nextSequence
        nextSequence += 1
        heap.append(Entry(time: time, sequence: sequence, payload: payload))
        siftUp(heap.count - 1)
        return sequence
    }

    /// Removes and returns the earliest event (lowest time, then lowest sequence).
    public mutating func popFirst() -> (time: Timestamp, sequence: UInt64, payload: Payload)? {
        guard !heap.isEmpty else { return nil }
        let last = heap.removeLast()
        guard !heap.isEmpty else { return (last.time, last.sequence, last.payload) }
        let first = heap[0]
        heap[0] = last
        siftDown(0)
        return (first.time, first.sequence, first.payload)
    }

    /// Removes every event; the sequence counter keeps counting so ties stay ordered across clears.
    public mutating func removeAll() {
        heap.removeAll(keepingCapacity: true)
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        let entry = heap[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard entry.precedes(heap[parent]) else { break }
            heap[child] = heap[parent]
            child = parent
        }
        heap[child] = entry
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        let entry = heap[parent]
        let n = heap.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { break }
            let right = left + 1
            var best = left
            if right < n && heap[right].precedes(heap[left]) { best = right }
            guard heap[best].precedes(entry) else { break }
            heap[parent] = heap[best]
            parent = best
        }
        heap[parent] = entry
    }
}

extension EventQueue: Sendable where Payload: Sendable {}
extension EventQueue.Entry: Sendable where Payload: Sendable {}
