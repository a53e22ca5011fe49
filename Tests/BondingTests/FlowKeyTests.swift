// Inner flow keys from real IPv4/IPv6 packet bytes: TCP, UDP, ICMP echo, IPv6 extension
// headers, fragments; and garbage, which must give the fallback lane and never trap.
import Bonding
import XCTest

final class FlowKeyTests: XCTestCase {
    private func key(_ packet: [UInt8]) -> FlowKey? { packet.withRaw { FlowKey(packet: $0) } }

    func testIPv4TCPGivesTheFiveTuple() {
        let packet = PacketBuilder.ipv4(
            proto: 6, transport: PacketBuilder.tcp(sourcePort: 51000, destinationPort: 443, payload: [1, 2, 3]))
        XCTAssertEqual(
            key(packet),
            FlowKey(
                family: .ipv4, sourceLow: 0xc0a8_010a, destinationLow: 0x5db8_d822,
                transportProtocol: 6, sourcePort: 51000, destinationPort: 443))
    }

    func testIPv4UDPWithOptionsSkipsTheOptions() {
        let packet = PacketBuilder.ipv4(
            proto: 17, transport: PacketBuilder.udp(sourcePort: 40000, destinationPort: 5060),
            options: [0x94, 0x04, 0, 0])  // router alert
        let k = key(packet)
        XCTAssertEqual(k?.sourcePort, 40000)
        XCTAssertEqual(k?.destinationPort, 5060)
        XCTAssertEqual(k?.transportProtocol, 17)
    }

    func testIPv4ICMPEchoIsKeyedByItsIdentifier() {
        let request = key(PacketBuilder.ipv4(proto: 1, transport: PacketBuilder.echo(type: 8, identifier: 0x1234, sequence: 1)))
        let next = key(PacketBuilder.ipv4(proto: 1, transport: PacketBuilder.echo(type: 8, identifier: 0x1234, sequence: 2)))
        let otherPing = key(PacketBuilder.ipv4(proto: 1, transport: PacketBuilder.echo(type: 8, identifier: 0x9999, sequence: 1)))
        XCTAssertEqual(request?.sourcePort, 0x1234)
        XCTAssertEqual(request, next, "the echo sequence number is not part of the flow")
        XCTAssertNotEqual(request, otherPing)
        // Not an echo (destination unreachable): addresses and protocol only.
        let unreachable = key(PacketBuilder.ipv4(proto: 1, transport: [3, 4, 0, 0, 0, 0, 0x05, 0xdc]))
        XCTAssertEqual(unreachable?.sourcePort, 0)
    }

    func testIPv4FragmentsAreKeyedWithoutPortsSoTheyShareALane() {
        let udp = PacketBuilder.udp(sourcePort: 1111, destinationPort: 2222, payload: [UInt8](repeating: 0, count: 16))
        let first = key(PacketBuilder.ipv4(proto: 17, transport: udp, fragmentField: 0x2000))  // MF, offset 0
        let later = key(PacketBuilder.ipv4(proto: 17, transport: Array(udp[8...]), fragmentField: 0x0003))  // offset 24 bytes
        XCTAssertEqual(first?.sourcePort, 0)
        XCTAssertEqual(first, later)
        XCTAssertEqual(first?.lane(), later?.lane())
    }

    func testIPv6UDPAndTCPAndEcho() {
        let udp = key(PacketBuilder.ipv6(nextHeader: 17, payload: PacketBuilder.udp(sourcePort: 53000, destinationPort: 53)))
        XCTAssertEqual(udp?.family, .ipv6)
        XCTAssertEqual(udp?.sourceHigh, 0x2001_0db8_0000_0000)
        XCTAssertEqual(udp?.sourceLow, 1)
        XCTAssertEqual(udp?.destinationHigh, 0x2606_2800_0220_0001)
        XCTAssertEqual(udp?.destinationLow, 0x0248_1893_25c8_1946)
        XCTAssertEqual(udp?.sourcePort, 53000)
        XCTAssertEqual(udp?.destinationPort, 53)

        let tcp = key(PacketBuilder.ipv6(nextHeader: 6, payload: PacketBuilder.tcp(sourcePort: 50000, destinationPort: 443)))
        XCTAssertEqual(tcp?.transportProtocol, 6)
        XCTAssertEqual(tcp?.destinationPort, 443)

        let echo = key(PacketBuilder.ipv6(nextHeader: 58, payload: PacketBuilder.echo(type: 128, identifier: 77, sequence: 1)))
        XCTAssertEqual(echo?.transportProtocol, 58)
        XCTAssertEqual(echo?.sourcePort, 77)
        // An ICMP (v4) echo type inside ICMPv6 is not an echo there.
        let neighbour = key(PacketBuilder.ipv6(nextHeader: 58, payload: [135, 0, 0, 0, 0, 7, 0, 0]))
        XCTAssertEqual(neighbour?.sourcePort, 0)
    }

    func testIPv6ExtensionHeadersAreWalkedToTheTransportHeader() {
        let hopByHop: [UInt8] = [60, 0, 5, 2, 0, 0, 1, 0]  // next: destination options; router alert
        let destinationOptions: [UInt8] = [17, 0, 1, 4, 0, 0, 0, 0]  // next: UDP; PadN
        let packet = PacketBuilder.ipv6(
            nextHeader: 0, payload: hopByHop + destinationOptions + PacketBuilder.udp(sourcePort: 4500, destinationPort: 4500))
        let k = key(packet)
        XCTAssertEqual(k?.transportProtocol, 17)
        XCTAssertEqual(k?.sourcePort, 4500)
    }

    func testIPv6FragmentsAreKeyedWithoutPorts() {
        let udp = PacketBuilder.udp(sourcePort: 1234, destinationPort: 5678, payload: [UInt8](repeating: 1, count: 8))
        let firstFragment: [UInt8] = [17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]  // offset 0, M=1
        let laterFragment: [UInt8] = [17, 0, 0x00, 0x10, 0xde, 0xad, 0xbe, 0xef]  // offset 2 (16 bytes), M=0
        let first = key(PacketBuilder.ipv6(nextHeader: 44, payload: firstFragment + udp))
        let later = key(PacketBuilder.ipv6(nextHeader: 44, payload: laterFragment + Array(udp[8...])))
        XCTAssertEqual(first?.transportProtocol, 17)
        XCTAssertEqual(first?.sourcePort, 0)
        XCTAssertEqual(first, later)
        // An atomic fragment (offset 0, M=0) is a whole datagram: ports count.
        let atomic = key(PacketBuilder.ipv6(nextHeader: 44, payload: [17, 0, 0, 0, 1, 2, 3, 4] + udp))
        XCTAssertEqual(atomic?.sourcePort, 1234)
    }

    func testTheSameFlowAlwaysGetsTheSameLaneAndDifferentFlowsSpread() {
        var lanes = Set<UInt16>()
        for port in UInt16(10000)..<10500 {
            let packet = PacketBuilder.ipv4(proto: 6, transport: PacketBuilder.tcp(sourcePort: port, destinationPort: 443))
            let lane = packet.withRaw { FlowKey.lane(of: $0) }
            XCTAssertEqual(lane, packet.withRaw { FlowKey.lane(of: $0) })
            XCTAssertGreaterThanOrEqual(lane, 1)
            XCTAssertLessThan(Int(lane), TunnelFrame.laneCount)
            lanes.insert(lane)
        }
        // 500 flows into 4095 lanes: about 30 collide by the birthday bound; far fewer than 100.
        XCTAssertGreaterThan(lanes.count, 440, "the lane hash spreads flows")
    }

    func testTheSeedChangesTheLaneMapping() {
        let packet = PacketBuilder.ipv4(proto: 17, transport: PacketBuilder.udp(sourcePort: 1, destinationPort: 2))
        let lanes = Set((0..<16).map { seed in packet.withRaw { FlowKey.lane(of: $0, seed: UInt64(seed)) } })
        XCTAssertGreaterThan(lanes.count, 12)
    }

    func testUnparseablePacketsGoToTheFallbackLane() {
        let garbage: [[UInt8]] = [
            [], [0x45], [0x45] + [UInt8](repeating: 0, count: 18),  // IPv4 shorter than 20
            [0x4f] + [UInt8](repeating: 0, count: 40),  // IHL 60 > length 41
            [0x44] + [UInt8](repeating: 0, count: 40),  // IHL 16 < 20
            [0x60] + [UInt8](repeating: 0, count: 30),  // IPv6 shorter than 40
            [0x00, 1, 2, 3], [0xff, 0xff],  // not IP
        ]
        for g in garbage {
            XCTAssertNil(key(g), "\(g)")
            XCTAssertEqual(g.withRaw { FlowKey.lane(of: $0) }, FlowKey.fallbackLane)
        }
    }

    func testTruncatedTransportHeadersKeepAddressesButNoPorts() {
        // IPv4 claiming UDP with 2 bytes of it.
        let v4 = PacketBuilder.ipv4(proto: 17, transport: [0x13, 0x88])
        XCTAssertEqual(key(v4)?.sourcePort, 0)
        XCTAssertEqual(key(v4)?.transportProtocol, 17)
        // IPv6 hop-by-hop header that claims more bytes than there are.
        let v6 = PacketBuilder.ipv6(nextHeader: 0, payload: [17, 9, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(key(v6)?.sourcePort, 0)
    }

    func testRandomAndMutatedPacketsNeverTrap() {
        var rng = Xoshiro256(seed: 42)
        let seeds: [[UInt8]] = [
            PacketBuilder.ipv4(proto: 6, transport: PacketBuilder.tcp(sourcePort: 1, destinationPort: 2)),
            PacketBuilder.ipv6(
                nextHeader: 0,
                payload: [44, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 1, 0, 0, 0, 0] + PacketBuilder.udp(sourcePort: 3, destinationPort: 4)),
            PacketBuilder.ipv6(
                nextHeader: 51, payload: [17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] + PacketBuilder.udp(sourcePort: 3, destinationPort: 4)),
        ]
        var parsed = 0
        for round in 0..<30_000 {
            var bytes: [UInt8]
            if round % 3 == 0 {
                bytes = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if !bytes.isEmpty { bytes[0] = [0x45, 0x60, 0x4f, 0x6f][Int.random(in: 0...3, using: &rng)] }
            } else {
                bytes = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...4, using: &rng) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            }
            let lane = bytes.withRaw { FlowKey.lane(of: $0, seed: 7) }
            XCTAssertLessThan(Int(lane), TunnelFrame.laneCount)
            if lane != FlowKey.fallbackLane { parsed += 1 }
        }
        XCTAssertGreaterThan(parsed, 1000, "the fuzz inputs reach the transport parsers")
    }
}
