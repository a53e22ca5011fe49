import Foundation
import Glibc
import QUIC
import Synchronization
// TUN offloads: the fast Internet checksum against RFC 1071's byte-by-byte definition; a TSO
// packet cut into segments whose checksums verify, then joined back by TCPCoalescer into the very
// packet it was; what the coalescer must refuse; and, through the kernel, a TCP transfer between
// two namespaces whose only link is a userspace relay between two offloading TUNs.
import XCTest

@testable import LinuxNet

final class TUNOffloadTests: XCTestCase {
    // MARK: The checksum

    func testTheFastChecksumEqualsTheByteByByteSumAtEveryLengthAndAlignment() {
        var generator = SplitMix64(seed: 7)
        let bytes = (0..<2100).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        bytes.withUnsafeBytes { all in
            for offset in 0..<4 {
                for count in 0...2000 where count % 7 == 0 || count < 40 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + count)])
                    let fast = ~InternetChecksum.sum(slice.baseAddress!, count: count)
                    XCTAssertEqual(fast, IPv4.checksum(slice), "offset \(offset), \(count) bytes")
                }
            }
        }
        // All ones sums to 0xFFFF, not 0 (the fold keeps one's complement's negative zero).
        let ones = [UInt8](repeating: 0xFF, count: 64)
        XCTAssertEqual(ones.withUnsafeBytes { InternetChecksum.sum($0.baseAddress!, count: 64) }, 0xFFFF)
    }

    // MARK: Cutting and joining

    /// A TSO packet as a TUN with offloads hands it over: one TCP flow's `payload` behind one set
    /// of headers, the TCP checksum field holding the pseudo-header sum (NEEDS_CSUM).
    func superPacket(ipv6: Bool, payload: [UInt8], mss: Int, flags: UInt8 = 0x18) -> ([UInt8], VirtioNetHeader) {
        let tcp = TCPHeader(flags: flags)
        var p =
            ipv6
            ? IPv6Header(payloadLength: tcp.bytes.count + payload.count).bytes
            : IPv4Header(totalLength: 20 + tcp.bytes.count + payload.count).bytes
        let l4 = p.count
        p += tcp.bytes + payload
        let pseudo = p.withUnsafeBytes {
            InternetChecksum.pseudoHeaderSum(
                addresses: $0.baseAddress! + (ipv6 ? 8 : 12), addressBytes: ipv6 ? 32 : 8,
                protocolNumber: 6, length: p.count - l4)
        }
        p[l4 + 16] = UInt8(pseudo >> 8)
        p[l4 + 17] = UInt8(pseudo & 0xFF)
        let header = VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum, gsoType: ipv6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4,
            headerLength: UInt16(l4 + 32), gsoSize: UInt16(mss), checksumStart: UInt16(l4), checksumOffset: 16)
        return (p, header)
    }

    /// The segments `GSOFrame` cuts from the packet, checksums completed.
    func cut(_ packet: [UInt8], _ header: VirtioNetHeader) throws -> [[UInt8]] {
        try packet.withUnsafeBytes { raw in
            let g = try XCTUnwrap(GSOFrame(packet: raw, header: header), "a TSO packet GSOFrame cannot cut")
            return (0..<g.segmentCount).map { i in
                var out = [UInt8](repeating: 0, count: g.segmentLength(i))
                out.withUnsafeMutableBytes { g.writeCompleteSegment(i, to: $0.baseAddress!) }
                return out
            }
        }
    }

    /// The TCP checksum over the pseudo-header and segment verifies (RFC 9293 §3.1).
    func tcpChecksumVerifies(_ s: [UInt8]) -> Bool {
        let ipv6 = s[0] >> 4 == 6
        let l4 = ipv6 ? 40 : Int(s[0] & 0x0F) * 4
        var pseudo = Array(s[(ipv6 ? 8 : 12)..<(ipv6 ? 40 : 20)])
        let length = s.count - l4
        pseudo += [0, 6, UInt8(length >> 8), UInt8(length & 0xFF)]
        return IPv4.checksum(pseudo + Array(s[l4...])) == 0
    }

    func testATSOPacketIsCutIntoSegmentsWhoseChecksumsVerify_AndJoinedBackIntoThePacketItWas() throws {
        for ipv6 in [false, true] {
            let payload = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
            let mss = 1348
            let (packet, header) = superPacket(ipv6: ipv6, payload: payload, mss: mss)
            let segments = try cut(packet, header)
            XCTAssertEqual(segments.count, 8, "10 000 bytes at 1348 a segment")
            let l4 = ipv6 ? 40 : 20
            var joined: [UInt8] = []
            for (i, s) in segments.enumerated() {
                XCTAssertTrue(tcpChecksumVerifies(s), "segment \(i) (IPv\(ipv6 ? 6 : 4)): TCP checksum")
                if !ipv6 { XCTAssertEqual(IPv4.checksum(s[0..<20]), 0, "segment \(i): IPv4 header checksum") }
                let sequence = UInt32(s[l4 + 4]) << 24 | UInt32(s[l4 + 5]) << 16 | UInt32(s[l4 + 6]) << 8 | UInt32(s[l4 + 7])
                XCTAssertEqual(sequence, TCPHeader.firstSequence &+ UInt32(i * mss), "segment \(i): sequence number")
                XCTAssertEqual(s[l4 + 13] & 0x08 != 0, i == segments.count - 1, "segment \(i): PSH on the last only")
                joined += s[(l4 + 32)...]
            }
            XCTAssertEqual(joined, payload, "the segments carry the payload in order")

            // Joined back: the same packet, its GSO header the kernel's.
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: TCPCoalescer.capacity, alignment: 16)
            defer { buffer.deallocate() }
            var coalescer = TCPCoalescer(buffer: buffer)
            for s in segments { XCTAssertTrue(s.withUnsafeBytes { coalescer.append($0) }, "each next segment joins") }
            let written = coalescer.finish()
            XCTAssertEqual(coalescer.segments, 0, "finish empties it")
            let back = VirtioNetHeader(loading: written.baseAddress!)
            XCTAssertEqual(back, header, "the GSO header of the packet it was")
            var rebuilt = Array(written[VirtioNetHeader.size...])
            var original = packet
            if !ipv6 {
                // The IPv4 ID is the first segment's (the kernel counts up from it again).
                XCTAssertEqual(IPv4.checksum(rebuilt[0..<20]), 0, "the joined packet's IPv4 header checksum")
                rebuilt[10] = 0
                rebuilt[11] = 0
                original[10] = 0
                original[11] = 0
            }
            XCTAssertEqual(rebuilt, original, "IPv\(ipv6 ? 6 : 4): joined back byte for byte, pseudo-header sum included")
        }
    }

    func testTheCoalescerJoinsOnlyWhatTheKernelsGROWould() throws {
        let (packet, header) = superPacket(ipv6: false, payload: [UInt8](repeating: 1, count: 4000), mss: 1000)
        let segments = try cut(packet, header)  // four of 1000 bytes, PSH on the last
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: TCPCoalescer.capacity, alignment: 16)
        defer { buffer.deallocate() }
        func joins(_ first: [UInt8], _ second: [UInt8], _ why: String) -> Bool {
            var c = TCPCoalescer(buffer: buffer)
            XCTAssertTrue(first.withUnsafeBytes { c.append($0) }, "\(why): the first segment is taken")
            return second.withUnsafeBytes { c.append($0) }
        }
        XCTAssertTrue(joins(segments[0], segments[1], "the next segment"))
        XCTAssertFalse(joins(segments[0], segments[2], "a gap"), "a gap in the sequence numbers ends the run")
        XCTAssertFalse(joins(segments[1], segments[0], "out of order"), "a segment from before does not join")
        XCTAssertFalse(joins(segments[3], segments[0], "after PSH"), "nothing joins after a PSH segment")
        var otherAck = segments[1]
        otherAck[20 + 11] &+= 1
        XCTAssertFalse(joins(segments[0], otherAck, "another ack"))
        var otherWindow = segments[1]
        otherWindow[20 + 15] &+= 1
        XCTAssertFalse(joins(segments[0], otherWindow, "another window"))
        var otherOption = segments[1]
        otherOption[20 + 25] &+= 1  // a timestamp byte
        XCTAssertFalse(joins(segments[0], otherOption, "other options"))
        var ce = segments[1]
        ce[1] |= 0x03
        XCTAssertFalse(joins(segments[0], ce, "a CE mark"), "ECN marks differ: both must reach the receiver as they are")
        var fin = segments[1]
        fin[20 + 13] |= 0x01
        XCTAssertFalse(joins(segments[0], fin, "FIN"), "FIN is not coalesced")
        var fragmentable = segments[0]
        fragmentable[6] = 0
        XCTAssertFalse(fragmentable.withUnsafeBytes { TCPCoalescer.isCandidate($0) }, "without DF nothing is taken")
        let udp = IPv4.udpPacket(
            from: SocketAddress(ip: [10, 0, 0, 1], port: 1), to: SocketAddress(ip: [10, 0, 0, 2], port: 2), payload: [1, 2, 3])
        XCTAssertFalse(udp.withUnsafeBytes { TCPCoalescer.isCandidate($0) }, "UDP is written as it is")

        // A short segment is the last one: it joins, and nothing joins after it.
        var c = TCPCoalescer(buffer: buffer)
        let (shortPacket, shortHeader) = superPacket(ipv6: false, payload: [UInt8](repeating: 2, count: 2500), mss: 1000, flags: 0x10)
        let three = try cut(shortPacket, shortHeader)
        XCTAssertTrue(three.allSatisfy { s in s.withUnsafeBytes { c.append($0) } }, "1000 + 1000 + 500 join")
        // The segment that would come next (sequence 2500, 500 bytes), cut from another packet.
        let fourth = try cut(
            superPacket(ipv6: false, payload: [UInt8](repeating: 2, count: 3500), mss: 500, flags: 0x10).0,
            VirtioNetHeader(
                flags: 1, gsoType: VirtioNetHeader.gsoTCPv4, headerLength: 52, gsoSize: 500,
                checksumStart: 20, checksumOffset: 16))[5]
        XCTAssertFalse(fourth.withUnsafeBytes { c.append($0) }, "after a short segment the run is over")
        XCTAssertEqual(c.segments, 3)
    }

    // MARK: Through the kernel

    /// Two namespaces whose only link is this process copying packets between their TUNs (each
    /// with or without offloads); a TCP transfer from one to the other must arrive whole.
    func relayedTransfer(senderOffloads: Bool, receiverOffloads: Bool, bytes: Int) throws -> (sent: TUNDevice, received: TUNDevice) {
        let a = try TestNetworkNamespace(for: self)
        let b = try TestNetworkNamespace(for: self)
        func tun(_ ns: TestNetworkNamespace, _ address: String, offloads: Bool) throws -> TUNDevice {
            try ns.run {
                let t = try TUNDevice(name: "tquic%d", offloads: offloads)
                XCTAssertEqual(t.offloads, offloads, "this kernel takes IFF_VNET_HDR with TSO (6.x does)")
                let netlink = try RouteNetlink()
                try netlink.setLinkUp("lo", up: true)
                try netlink.addAddress(IPPrefix(address)!, to: t.name)
                try netlink.setLinkUp(t.name, up: true)
                return t
            }
        }
        let ta = try tun(a, "10.77.0.1/24", offloads: senderOffloads)
        let tb = try tun(b, "10.77.0.2/24", offloads: receiverOffloads)
        // Before the relay starts: both TUNs up (IPv6 is off on them: no address, nothing sent).
        let stop = StopFlag()
        let finished = DispatchSemaphore(value: 0)
        let relay = Thread {
            defer { finished.signal() }
            var buffer = [UInt8](repeating: 0, count: 1500)
            var fds = [pollfd(fd: ta.fd, events: Int16(POLLIN), revents: 0), pollfd(fd: tb.fd, events: Int16(POLLIN), revents: 0)]
            while !stop.value.load(ordering: .relaxed) {
                _ = poll(&fds, 2, 50)
                for (from, to) in [(ta, tb), (tb, ta)] {
                    var moved = 0
                    while moved < 256, let n = try? buffer.withUnsafeMutableBytes({ try from.read(into: $0) }) {
                        _ = try? buffer.withUnsafeBytes { try to.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                        moved += 1
                    }
                    try? to.flushWrites()
                }
            }
        }
        relay.start()
        defer {
            stop.value.store(true, ordering: .relaxed)
            _ = finished.wait(timeout: .now() + 5)
        }

        let receiver = Process()
        receiver.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        receiver.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        receiver.arguments = [
            "ip", "netns", "exec", b.name, "timeout", "30", "python3", "-c",
            """
            import hashlib, socket, sys
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("10.77.0.2", 5201)); s.listen(1); s.settimeout(20)
            c, _ = s.accept(); c.settimeout(20); h = hashlib.sha256(); n = 0
            while True:
                d = c.recv(1 << 20)
                if not d: break
                h.update(d); n += len(d)
            print(n, h.hexdigest())
            """,
        ]
        let out = Pipe()
        receiver.standardOutput = out
        try receiver.run()
        usleep(300_000)
        let sender = try TestNetworkNamespace.run([
            "ip", "netns", "exec", a.name, "timeout", "30", "python3", "-c",
            """
            import hashlib, socket, time
            data = bytes((i * 7 + 3) & 255 for i in range(1 << 20))
            for _ in range(50):
                try:
                    s = socket.create_connection(("10.77.0.2", 5201), timeout=20); break
                except OSError: time.sleep(0.1)
            h = hashlib.sha256(); left = \(bytes)
            while left:
                d = data[:min(left, len(data))]; s.sendall(d); h.update(d); left -= len(d)
            s.shutdown(socket.SHUT_WR); s.recv(1); print(\(bytes), h.hexdigest())
            """,
        ])
        let deadline = Date().addingTimeInterval(20)
        while receiver.isRunning && Date() < deadline { usleep(10_000) }
        if receiver.isRunning { receiver.terminate() }
        let received = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(
            received.trimmingCharacters(in: .whitespacesAndNewlines), sender.trimmingCharacters(in: .whitespacesAndNewlines),
            "the receiver got every byte the sender sent, in order (count and SHA-256)")
        return (ta, tb)
    }

    func testATCPTransferThroughTwoOffloadingTUNsArrivesWhole_InFewerLargerPackets() throws {
        let (ta, tb) = try relayedTransfer(senderOffloads: true, receiverOffloads: true, bytes: 8 << 20)
        XCTAssertGreaterThan(ta.superPacketsRead, 0, "the sender's kernel handed over TSO packets")
        XCTAssertGreaterThan(ta.segmentsCut, 4 * ta.superPacketsRead, "each cut into several segments")
        XCTAssertGreaterThan(tb.coalescedWrites, 0, "the receiver's kernel took coalesced packets")
        XCTAssertGreaterThan(tb.segmentsCoalesced, 4 * tb.coalescedWrites, "of several segments each")
        XCTAssertEqual(ta.malformedReads + tb.malformedReads, 0)
        XCTAssertEqual(tb.heldPacketsDropped, 0)
    }

    func testSegmentsCutFromTSOPacketsPassAPlainTUNsChecksumCheck() throws {
        // A plain TUN's kernel verifies every TCP checksum: a wrong one would stall the transfer.
        let (ta, tb) = try relayedTransfer(senderOffloads: true, receiverOffloads: false, bytes: 4 << 20)
        XCTAssertGreaterThan(ta.superPacketsRead, 0)
        XCTAssertEqual(tb.coalescedWrites, 0)
    }

    func testAPlainSenderReachesAnOffloadingReceiver() throws {
        let (_, tb) = try relayedTransfer(senderOffloads: false, receiverOffloads: true, bytes: 4 << 20)
        XCTAssertGreaterThan(tb.coalescedWrites, 0, "single segments from a plain TUN are joined too")
    }
}

/// Tells the relay thread to stop.
final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}

// MARK: Hand-built headers

/// IPv4 without options: DF, TTL 64, TCP, 10.77.0.1 → 10.77.0.2, header checksum filled in.
struct IPv4Header {
    var totalLength: Int
    var bytes: [UInt8] {
        var p: [UInt8] = [
            0x45, 0, UInt8(totalLength >> 8), UInt8(totalLength & 0xFF), 0x30, 0x39, 0x40, 0, 64, 6, 0, 0,
            10, 77, 0, 1, 10, 77, 0, 2,
        ]
        let c = IPv4.checksum(p)
        p[10] = UInt8(c >> 8)
        p[11] = UInt8(c & 0xFF)
        return p
    }
}

/// IPv6: TCP, fd77::1 → fd77::2, hop limit 64.
struct IPv6Header {
    var payloadLength: Int
    var bytes: [UInt8] {
        [0x60, 0, 0, 0, UInt8(payloadLength >> 8), UInt8(payloadLength & 0xFF), 6, 64]
            + [0xFD, 0x77] + [UInt8](repeating: 0, count: 13) + [1]
            + [0xFD, 0x77] + [UInt8](repeating: 0, count: 13) + [2]
    }
}

/// TCP 40000 → 5201 with a timestamp option (32 bytes, as Linux sends), checksum field zero.
struct TCPHeader {
    static let firstSequence: UInt32 = 0xFFFF_F000  // wraps inside the packet
    var flags: UInt8
    var bytes: [UInt8] {
        let s = TCPHeader.firstSequence
        return [
            0x9C, 0x40, 0x14, 0x51, UInt8(s >> 24), UInt8(s >> 16 & 0xFF), UInt8(s >> 8 & 0xFF), UInt8(s & 0xFF),
            0, 0, 0x10, 0x00, 0x80, flags, 0x01, 0xF5, 0, 0, 0, 0,
            1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78,
        ]
    }
}
