// Helpers shared by the Bonding tests: a seeded random generator (splitmix64 seeding
// xoshiro256**), so property tests are repeatable, and time shorthands.
import Bonding
import Congestion

/// xoshiro256** seeded through splitmix64: small, fast, and the same sequence everywhere.
struct Xoshiro256: RandomNumberGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9e37_79b9_7f4a_7c15
            var z = x
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
}

func ms(_ v: UInt64) -> Duration { .milliseconds(v) }
func at(_ milliseconds: Double) -> Timestamp { Timestamp(nanoseconds: UInt64(milliseconds * 1e6)) }

/// Builds real inner IP packets, byte by byte, for the flow-key and framing tests.
enum PacketBuilder {
    static func ipv4(
        source: [UInt8] = [192, 168, 1, 10], destination: [UInt8] = [93, 184, 216, 34], proto: UInt8,
        transport: [UInt8], fragmentField: UInt16 = 0x4000, options: [UInt8] = []
    ) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let headerLength = 20 + options.count
        let total = headerLength + transport.count
        var p: [UInt8] = [
            0x40 | UInt8(headerLength / 4), 0, UInt8(total >> 8), UInt8(total & 0xff),
            0x12, 0x34, UInt8(fragmentField >> 8), UInt8(fragmentField & 0xff),
            64, proto, 0, 0,
        ]
        p += source + destination + options
        var sum: UInt32 = 0
        for i in stride(from: 0, to: headerLength, by: 2) { sum += UInt32(p[i]) << 8 | UInt32(p[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        p[10] = UInt8(checksum >> 8)
        p[11] = UInt8(checksum & 0xff)
        return p + transport
    }

    static func ipv6(
        source: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1],
        destination: [UInt8] = [0x26, 0x06, 0x28, 0x00, 0x02, 0x20, 0, 1, 0x2, 0x48, 0x18, 0x93, 0x25, 0xc8, 0x19, 0x46],
        nextHeader: UInt8, payload: [UInt8]
    ) -> [UInt8] {
        var p: [UInt8] = [0x60, 0x0a, 0xbc, 0xde, UInt8(payload.count >> 8), UInt8(payload.count & 0xff), nextHeader, 64]
        p += source + destination
        return p + payload
    }

    static func tcp(sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8] = []) -> [UInt8] {
        var h: [UInt8] = [
            UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xff),
            0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ]
        h += payload
        return h
    }

    static func udp(sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8] = []) -> [UInt8] {
        let length = 8 + payload.count
        return [
            UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xff),
            UInt8(length >> 8), UInt8(length & 0xff), 0, 0,
        ] + payload
    }

    /// ICMP (type 8 request / 0 reply) or ICMPv6 (128/129) echo.
    static func echo(type: UInt8, identifier: UInt16, sequence: UInt16) -> [UInt8] {
        [type, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
            + [UInt8](repeating: 0xab, count: 16)
    }
}

extension Array where Element == UInt8 {
    /// Runs `body` over the bytes as a raw buffer (test shorthand).
    func withRaw<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }
}
