import Congestion
// Path MTU discovery per path (DPLPMTUD: RFC 8899 with RFC 9000 §14.3/§14.4's PING + PADDING
// probes): the search state machine on its own, then end to end in the simulated network, where
// a link's MTU is the largest UDP payload it carries: two paths of one connection find their own
// sizes, lost probes are no congestion signal, a path whose MTU falls mid-run detects the black
// hole, falls back to 1200 and finds the new size while its traffic goes on, and nothing of it
// happens with the feature off.
import XCTest

@testable import QUIC

final class PathMTUDiscoveryTests: XCTestCase {
    let secondAddress = SocketAddress(ip: [10, 0, 0, 3], port: 40001)

    // MARK: - The state machine alone

    /// Drives the search against a path that carries `mtu` bytes; returns the probe sizes sent.
    private func search(_ d: inout PathMTUDiscovery, mtu: Int) -> [Int] {
        var sizes: [Int] = []
        var pn: UInt64 = 0
        let now = Timestamp(nanoseconds: 1)
        while let size = d.nextProbeSize, sizes.count < 100 {
            sizes.append(size)
            d.onProbeSent(packetNumber: pn, size: size, deadline: now)
            XCTAssertNil(d.nextProbeSize, "one probe in flight at a time")
            if size <= mtu {
                _ = d.onProbeAcknowledged(packetNumber: pn, timeSent: now, now: now)
            } else {
                d.onProbeLost(packetNumber: pn, now: now)
            }
            pn += 1
        }
        return sizes
    }

    func testSearchTriesTheMaximumFirstThenBisectsToWithinItsGranularity() {
        var d = PathMTUDiscovery(maximum: 1500, raiseInterval: .seconds(600))
        XCTAssertEqual(d.current, 1200, "RFC 9000 §14.3: BASE_PLPMTU is QUIC's 1200 bytes")
        d.start(now: .zero)
        let sizes = search(&d, mtu: 1400)
        XCTAssertEqual(Array(sizes.prefix(3)), [1500, 1500, 1500], "the maximum first, MAX_PROBES (3) times before giving up on it")
        XCTAssertEqual(d.phase, .searchComplete)
        XCTAssertLessThanOrEqual(d.current, 1400, "never a size the path did not acknowledge")
        XCTAssertGreaterThan(d.current, 1400 - PathMTUDiscovery.searchGranularity, "within the search granularity of the real MTU")
        XCTAssertNotNil(d.raiseAt, "RFC 8899 §5.1.1: PMTU_RAISE_TIMER armed after a search below the maximum")
        for size in Set(sizes) where size > 1400 {
            XCTAssertEqual(
                sizes.filter { $0 == size }.count, PathMTUDiscovery.maxProbes, "a failing size \(size) is tried MAX_PROBES times")
        }
    }

    func testAPathCarryingTheMaximumCompletesWithOneProbe() {
        var d = PathMTUDiscovery(maximum: 1452, raiseInterval: .seconds(600))
        d.start(now: .zero)
        XCTAssertEqual(search(&d, mtu: 1500), [1452])
        XCTAssertEqual(d.current, 1452)
        XCTAssertNil(d.raiseAt, "nothing to raise to above the maximum")
    }

    func testTheRaiseTimerSearchesUpwardsAgain() {
        var d = PathMTUDiscovery(maximum: 1500, raiseInterval: .seconds(600))
        d.start(now: .zero)
        _ = search(&d, mtu: 1300)
        let raise = try! XCTUnwrap(d.raiseAt)
        XCTAssertEqual(raise, Timestamp(nanoseconds: 1) + .seconds(600))
        d.onRaiseTimer(now: raise)
        XCTAssertEqual(d.phase, .searching)
        XCTAssertEqual(d.nextProbeSize, 1500, "RFC 8899 §5.2: SEARCH_COMPLETE → SEARCHING, failed sizes forgotten")
        _ = search(&d, mtu: 1500)
        XCTAssertEqual(d.current, 1500, "the path's MTU grew meanwhile")
    }

    func testBlackHoleNeedsRepeatedLargeLossesWithoutALargePacketGettingThrough() {
        var d = PathMTUDiscovery(maximum: 1500, raiseInterval: .seconds(600))
        d.start(now: .zero)
        _ = search(&d, mtu: 1500)
        let t = Timestamp(nanoseconds: 1_000)
        XCTAssertFalse(d.onSuspiciousLoss(smallest: 1500, earliest: t))
        XCTAssertFalse(d.onSuspiciousLoss(smallest: 1500, earliest: t))
        d.onPacketAcknowledged(size: 1500, timeSent: t + .milliseconds(1))
        XCTAssertFalse(
            d.onSuspiciousLoss(smallest: 1500, earliest: t + .milliseconds(2)),
            "a full-size packet got through: those were congestion losses")
        d.onPacketAcknowledged(size: 1250, timeSent: t + .milliseconds(3))
        d.onPacketAcknowledged(size: 1500, timeSent: t)
        XCTAssertFalse(
            d.onSuspiciousLoss(smallest: 1500, earliest: t + .milliseconds(4)),
            "smaller packets, or large ones sent before the losses, prove nothing")
        XCTAssertTrue(d.onSuspiciousLoss(smallest: 1500, earliest: t + .milliseconds(5)), "the third event in a row is a black hole")
        d.onBlackHole(now: t)
        XCTAssertEqual(d.current, 1200, "RFC 8899 §4.3: back to BASE_PLPMTU")
        XCTAssertEqual(d.phase, .searching)
        XCTAssertEqual(d.nextProbeSize, 1350, "searching again below the size that stopped working")
        XCTAssertFalse(d.onSuspiciousLoss(smallest: 1250, earliest: t), "at the base size there is nothing to fall back from")
    }

    // MARK: - End to end

    private func network(
        seed: UInt64 = 81, multipath: Bool = false, pmtu: Bool = true, maxUDPPayload: Int = 1500,
        configure: ((inout ConnectionConfiguration) -> Void)? = nil
    ) throws -> SimulatedNetwork {
        let net = try SimulatedNetwork(
            seed: seed,
            clientConfig: {
                $0.pmtuDiscovery = pmtu
                $0.maxUDPPayloadSize = maxUDPPayload
                if multipath { $0.maxPathID = 4 }
                configure?(&$0)
            },
            serverConfig: {
                $0.connection.pmtuDiscovery = pmtu
                $0.connection.maxUDPPayloadSize = maxUDPPayload
                if multipath { $0.connection.maxPathID = 4 }
            })
        net.clientDatagramLog = []
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed && net.serverConnection?.handshakeConfirmed == true })
        return net
    }

    private func openSecondPath(_ net: SimulatedNetwork) throws -> UInt32 {
        net.run(for: .milliseconds(100)) { false }  // let PATH_NEW_CONNECTION_ID arrive
        let id = try XCTUnwrap(net.client.openPath(local: secondAddress, now: net.now), "openPath")
        XCTAssertTrue(
            net.run(for: .seconds(3)) {
                net.client.pathStatistics(id)?.state == .active && net.serverConnection?.pathStatistics(id)?.state == .active
            }, "path \(id) must be validated on both sides")
        return id
    }

    private func searchDone(_ c: Connection?, _ id: UInt32) -> Bool { c?.pathStatistics(id)?.pmtuSearchComplete == true }

    /// Sends one datagram as large as path `id` takes now, every `interval`, while `body` runs.
    private final class Traffic {
        var next = Timestamp.zero
        var sent = 0
        func pump(_ net: SimulatedNetwork, onPath id: UInt32, every interval: Duration = .milliseconds(5)) {
            guard net.now >= next, let size = net.client.maxDatagramPayloadSize(onPath: id) else { return }
            next = net.now + interval
            if (try? net.client.sendDatagram(pattern(size, seed: sent), onPath: id)) != nil { sent += 1 }
        }
    }

    func testEachPathOfAConnectionDiscoversItsOwnMTU() throws {
        let net = try network(multipath: true)
        net.pathMaxDatagramSize[secondAddress] = 1400  // an LTE link; path 0 carries the configured 1500
        let id = try openSecondPath(net)
        XCTAssertEqual(net.client.pathMTU(id), 1200, "a new path starts at the base PLPMTU")
        XCTAssertTrue(
            net.run(for: .seconds(60)) {
                self.searchDone(net.client, 0) && self.searchDone(net.client, id)
                    && self.searchDone(net.serverConnection, 0) && self.searchDone(net.serverConnection, id)
            }, "both sides finish the search on both paths")
        XCTAssertEqual(net.client.pathMTU(0), 1500, "path 0 reaches the configured maximum")
        let second = try XCTUnwrap(net.client.pathMTU(id))
        XCTAssertTrue((1400 - PathMTUDiscovery.searchGranularity)...1400 ~= second, "path 1 finds its 1400 bytes, got \(second)")
        XCTAssertEqual(net.serverConnection?.pathMTU(0), 1500, "the server discovers its direction on its own")
        XCTAssertTrue((1400 - PathMTUDiscovery.searchGranularity)...1400 ~= net.serverConnection?.pathMTU(id) ?? 0)
        XCTAssertEqual(net.client.pathCondition(id)?.mtu, second, "PathCondition carries the path's MTU")
        net.collectEvents()
        XCTAssertTrue(net.clientEvents.contains(.pathMTUChanged(pathID: 0, mtu: 1500)))
        XCTAssertTrue(net.clientEvents.contains(.pathMTUChanged(pathID: id, mtu: second)))
        XCTAssertEqual(
            net.client.maxDatagramPayloadSize(onPath: id), (net.client.maxDatagramPayloadSize(onPath: 0) ?? 0) - (1500 - second),
            "the DATAGRAM room follows each path's MTU")
        // RFC 8899 §3 item 1: nothing but probes larger than the path's PLPMTU.
        let stats = try XCTUnwrap(net.client.pathStatistics(id))
        XCTAssertGreaterThanOrEqual(stats.pmtuProbesLost, 3, "sizes above 1400 were probed and lost")
        XCTAssertEqual(stats.packetsLost, 0, "lost probes are not the path's losses")
        XCTAssertGreaterThan(net.droppedTooBig, 0)
    }

    func testAPathSendsAtMost1200BytesUntilItsMTUIsDiscovered() throws {
        let net = try SimulatedNetwork(
            seed: 82,
            clientConfig: {
                $0.pmtuDiscovery = true
                $0.maxUDPPayloadSize = 1500
            },
            serverConfig: {
                $0.connection.pmtuDiscovery = true
                $0.connection.maxUDPPayloadSize = 1500
            })
        net.clientDatagramLog = []
        net.maxDatagramSize = 1200  // a path that carries only QUIC's minimum, from the handshake on
        XCTAssertTrue(net.run(for: .seconds(5)) { net.client.handshakeConfirmed })
        var received = 0
        net.serverConnection?.onDatagram = { _, _ in received += 1 }
        for i in 0..<50 { try net.client.sendDatagram(pattern(net.client.maxDatagramPayloadSize, seed: i)) }
        XCTAssertTrue(net.run(for: .seconds(30)) { received == 50 && self.searchDone(net.client, 0) })
        XCTAssertEqual(net.client.pathMTU(0), 1200, "no probe got through: the path stays at the base size")
        let log = try XCTUnwrap(net.clientDatagramLog)
        let larger = log.filter { $0.count > 1200 }
        XCTAssertEqual(larger.count, Int(net.client.stats.pmtuProbesSent), "RFC 8899 §3 item 1: only probes exceed the PLPMTU")
        XCTAssertEqual(net.client.stats.pmtuProbesLost, net.client.stats.pmtuProbesSent)
        XCTAssertFalse(net.client.isClosed)
    }

    func testLostProbesDoNotReduceTheCongestionWindow() throws {
        let net = try network()
        net.maxDatagramSize = 1300
        let traffic = Traffic()
        var smallestWindowSeen = Int.max
        var shrank = false
        XCTAssertTrue(
            net.run(for: .seconds(30)) {
                traffic.pump(net, onPath: 0)
                let w = net.client.pathCondition(0)?.congestionWindow ?? 0
                if w < smallestWindowSeen && smallestWindowSeen != Int.max { shrank = true }
                smallestWindowSeen = min(smallestWindowSeen, w)
                return self.searchDone(net.client, 0)
            })
        let stats = try XCTUnwrap(net.client.pathStatistics(0))
        XCTAssertGreaterThanOrEqual(stats.pmtuProbesLost, 3)
        XCTAssertFalse(shrank, "RFC 9000 §14.4: a lost probe triggers no congestion response")
        XCTAssertEqual(stats.packetsLost, 0, "nor counts as a loss of the path")
        XCTAssertEqual(stats.consecutiveProbeTimeouts, 0)
        XCTAssertTrue((1300 - PathMTUDiscovery.searchGranularity)...1300 ~= net.client.pathMTU(0) ?? 0)
    }

    func testAnMTUThatFallsMidRunIsABlackHoleThePathRecoversFrom() throws {
        let net = try network()
        var received = 0
        net.serverConnection?.onDatagram = { _, _ in received += 1 }
        let traffic = Traffic()
        XCTAssertTrue(
            net.run(for: .seconds(10)) {
                traffic.pump(net, onPath: 0)
                return self.searchDone(net.client, 0)
            })
        XCTAssertEqual(net.client.pathMTU(0), 1500)
        // `ip link set mtu` on the WAN: full-size packets vanish from now on, without an ICMP.
        net.maxDatagramSize = 1380
        net.clientEvents.removeAll()
        XCTAssertTrue(
            net.run(for: .seconds(10)) {
                traffic.pump(net, onPath: 0)
                return net.client.pathMTU(0) == 1200
            },
            "the black hole is detected and the path falls back to the base size")
        XCTAssertEqual(net.client.stats.pmtuBlackHolesDetected, 1)
        net.collectEvents()
        XCTAssertTrue(net.clientEvents.contains(.pathMTUChanged(pathID: 0, mtu: 1200)))
        let afterFallback = received
        XCTAssertTrue(
            net.run(for: .seconds(60)) {
                traffic.pump(net, onPath: 0)
                return self.searchDone(net.client, 0)
            })
        let mtu = try XCTUnwrap(net.client.pathMTU(0))
        XCTAssertTrue((1380 - PathMTUDiscovery.searchGranularity)...1380 ~= mtu, "the lower MTU is found again, got \(mtu)")
        net.collectEvents()
        XCTAssertTrue(net.clientEvents.contains(.pathMTUChanged(pathID: 0, mtu: mtu)))
        let beforeEnd = received
        net.run(for: .seconds(2)) {
            traffic.pump(net, onPath: 0)
            return false
        }
        XCTAssertGreaterThan(beforeEnd, afterFallback, "datagrams kept arriving while the path searched again")
        XCTAssertGreaterThan(received, beforeEnd + 100, "and at the new size")
        XCTAssertFalse(net.client.isClosed)
    }

    func testALocallyRefusedSizeFallsBackAtOnceAndSearchesBelowIt() {
        var d = PathMTUDiscovery(maximum: 1472, raiseInterval: .seconds(600))
        d.start(now: .zero)
        XCTAssertEqual(search(&d, mtu: 1500), [1472])
        XCTAssertFalse(d.onLocalRefusal(size: 1100, now: .zero), "below the base size: nothing to learn")
        XCTAssertEqual(d.current, 1472)
        XCTAssertTrue(d.onLocalRefusal(size: 1472, now: .zero), "the path's own size refused: a black hole at once")
        XCTAssertEqual(d.current, 1200)
        XCTAssertEqual(d.phase, .searching)
        let sizes = search(&d, mtu: 1252)
        XCTAssertTrue(sizes.allSatisfy { $0 < 1472 }, "no probe at the refused size: \(sizes)")
        XCTAssertTrue((1252 - PathMTUDiscovery.searchGranularity)...1252 ~= d.current, "found again: \(d.current)")
    }

    func testAProbeTheInterfaceRefusesFailsWithoutWaitingForItsTimer() {
        var d = PathMTUDiscovery(maximum: 1472, raiseInterval: .seconds(600))
        d.start(now: .zero)
        let size = d.nextProbeSize!
        d.onProbeSent(packetNumber: 7, size: size, deadline: Timestamp(nanoseconds: 1) + .seconds(3))
        XCTAssertFalse(d.onLocalRefusal(size: size, now: .zero), "the path still sends 1200: no black hole")
        XCTAssertNil(d.probe, "the probe never left")
        let next = try! XCTUnwrap(d.nextProbeSize, "the search goes on at once")
        XCTAssertLessThan(next, size)
        d.onProbeLost(packetNumber: 7, now: .zero)  // its loss, later, changes nothing
        XCTAssertEqual(d.nextProbeSize, next)
    }

    func testAConnectionToldOfALocalRefusalStopsSendingThatSizeAtOnce() throws {
        let net = try network()
        let traffic = Traffic()
        XCTAssertTrue(
            net.run(for: .seconds(10)) {
                traffic.pump(net, onPath: 0)
                return self.searchDone(net.client, 0)
            })
        XCTAssertEqual(net.client.pathMTU(0), 1500)
        net.maxDatagramSize = 1380
        net.clientEvents.removeAll()
        net.client.datagramRefusedAsTooLarge(pathID: 0, size: 1500, now: net.now)
        XCTAssertEqual(net.client.pathMTU(0), 1200, "no waiting for loss events")
        XCTAssertEqual(net.client.stats.pmtuBlackHolesDetected, 1)
        net.collectEvents()
        XCTAssertTrue(net.clientEvents.contains(.pathMTUChanged(pathID: 0, mtu: 1200)))
        XCTAssertTrue(
            net.run(for: .seconds(60)) {
                traffic.pump(net, onPath: 0)
                return self.searchDone(net.client, 0)
            })
        let mtu = try XCTUnwrap(net.client.pathMTU(0))
        XCTAssertTrue((1380 - PathMTUDiscovery.searchGranularity)...1380 ~= mtu, "the lower MTU is found, got \(mtu)")
        XCTAssertFalse(net.client.isClosed)
    }

    func testAfterTheRaiseIntervalAPathProbesUpwardsAgain() throws {
        let net = try network(configure: { $0.pmtuRaiseInterval = .seconds(20) })
        net.maxDatagramSize = 1300
        XCTAssertTrue(net.run(for: .seconds(30)) { self.searchDone(net.client, 0) })
        XCTAssertLessThanOrEqual(net.client.pathMTU(0) ?? 0, 1300)
        net.maxDatagramSize = nil  // the route changed: the path carries 1500 again
        let before = net.now
        XCTAssertTrue(net.run(for: .seconds(60)) { net.client.pathMTU(0) == 1500 }, "RFC 8899 §5.1.1: PMTU_RAISE_TIMER")
        XCTAssertGreaterThanOrEqual(net.now - before, .seconds(10), "not before the raise interval")
    }

    func testWithoutTheFeatureNoProbesAndTheConfiguredSize() throws {
        let net = try network(pmtu: false, maxUDPPayload: 1350)
        let traffic = Traffic()
        net.run(for: .seconds(5)) {
            traffic.pump(net, onPath: 0)
            return false
        }
        XCTAssertEqual(net.client.stats.pmtuProbesSent, 0)
        XCTAssertEqual(net.serverConnection?.stats.pmtuProbesSent, 0)
        XCTAssertEqual(net.client.pathMTU(0), 1350, "every path sends the configured size from the start")
        let largest = try XCTUnwrap(net.clientDatagramLog?.map(\.count).max())
        XCTAssertTrue(1340...1350 ~= largest, "datagrams fill the configured 1350 bytes, got \(largest)")
        XCTAssertFalse(
            net.clientEvents.contains {
                if case .pathMTUChanged = $0 { return true }
                return false
            })
    }

    func testADatagramLargerThanItsPathTakesIsRefused() throws {
        let net = try network(multipath: true)
        net.pathMaxDatagramSize[secondAddress] = 1300
        let id = try openSecondPath(net)
        XCTAssertTrue(net.run(for: .seconds(30)) { self.searchDone(net.client, 0) && self.searchDone(net.client, id) })
        let room0 = try XCTUnwrap(net.client.maxDatagramPayloadSize(onPath: 0))
        let room1 = try XCTUnwrap(net.client.maxDatagramPayloadSize(onPath: id))
        XCTAssertGreaterThan(room0, room1)
        XCTAssertThrowsError(try net.client.sendDatagram(pattern(room1 + 1), onPath: id)) { e in
            XCTAssertEqual(e as? DatagramError, .tooLarge(size: room1 + 1, max: room1))
        }
        XCTAssertNoThrow(try net.client.sendDatagram(pattern(room1 + 1), onPath: 0))
        let offered = try net.client.sendDatagram(onPath: id) { $0.count }
        XCTAssertEqual(offered, room1, "the zero-copy buffer is the path's room")
        XCTAssertNil(net.client.maxDatagramPayloadSize(onPath: 9))
        XCTAssertNil(net.client.pathMTU(9))
    }
}
