// The ranges of an ACK frame (RFC 9000 §19.3), the first two held inline: without loss or
// reordering an ACK carries one range, so building, encoding and decoding one allocates nothing.
// More ranges spill into an array.

public struct AckRanges: RandomAccessCollection, ExpressibleByArrayLiteral, Equatable, Sendable, CustomStringConvertible {
    public typealias Element = ClosedRange<UInt64>
    private var r0: Element = 0...0, r1: Element = 0...0
    private var overflow: [Element] = []
    public private(set) var count = 0

    static let inlineCapacity = 2

    public init() {}
    public init<S: Sequence>(_ ranges: S) where S.Element == Element { for r in ranges { append(r) } }
    public init(arrayLiteral ranges: Element...) { self.init(ranges) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(i: Int) -> Element {
        precondition(i >= 0 && i < count, "AckRanges index out of range")
        switch i {
        case 0: return r0
        case 1: return r1
        default: return overflow[i - AckRanges.inlineCapacity]
        }
    }

    public mutating func append(_ r: Element) {
        switch count {
        case 0: r0 = r
        case 1: r1 = r
        default: overflow.append(r)
        }
        count += 1
    }

    /// Drops the last (lowest) range: how an ACK frame is trimmed to fit a packet.
    public mutating func removeLast() {
        precondition(count > 0, "removeLast on empty AckRanges")
        if count > AckRanges.inlineCapacity { overflow.removeLast() }
        count -= 1
    }

    public static func == (a: AckRanges, b: AckRanges) -> Bool { a.elementsEqual(b) }

    public var description: String { "[" + map { "\($0.lowerBound)...\($0.upperBound)" }.joined(separator: ", ") + "]" }
}
