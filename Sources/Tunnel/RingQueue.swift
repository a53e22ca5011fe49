// A FIFO of fixed capacity over storage allocated once: the sender's bulk queue, which may hold
// thousands of packets (an array's removeFirst would move all of them for every packet sent).

struct RingQueue<Element> {
    private var storage: [Element]
    private var head = 0
    private(set) var count = 0

    /// `placeholder` fills the unused slots (the storage is allocated here, never again).
    init(capacity: Int, placeholder: Element) {
        storage = [Element](repeating: placeholder, count: max(capacity, 1))
    }

    var capacity: Int { storage.count }
    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == storage.count }

    var first: Element? { count > 0 ? storage[head] : nil }

    /// False (and nothing stored) when full.
    @discardableResult
    mutating func append(_ e: Element) -> Bool {
        guard count < storage.count else { return false }
        var i = head + count
        if i >= storage.count { i -= storage.count }
        storage[i] = e
        count += 1
        return true
    }

    @discardableResult
    mutating func removeFirst() -> Element {
        precondition(count > 0, "removeFirst on an empty RingQueue")
        let e = storage[head]
        head += 1
        if head == storage.count { head = 0 }
        count -= 1
        return e
    }
}
