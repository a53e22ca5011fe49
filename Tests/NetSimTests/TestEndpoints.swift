// Endpoints and helpers the NetSim tests drive the simulator with: a recording endpoint with an
// outbox and timers, and shorthands for times.
import Congestion
import NetSim

func ms(_ value: UInt64) -> Timestamp { Timestamp(nanoseconds: value * 1_000_000) }
func us(_ value: UInt64) -> Timestamp { Timestamp(nanoseconds: value * 1_000) }
func seconds(_ value: Double) -> Timestamp { .zero + .seconds(value) }

/// An endpoint that sends what is put in its outbox and records what it receives. Optional hooks
/// answer received datagrams and handle timers.
final class RecordingEndpoint: SimulatedEndpoint {
    struct Received: Equatable {
        var bytes: [UInt8]
        var path: Int
        var time: Timestamp
    }

    var outbox: [OutgoingDatagram] = []
    private(set) var received: [Received] = []
    var timers: [Timestamp] = []
    private(set) var timeoutsHandled: [Timestamp] = []
    var onReceive: ((RecordingEndpoint, [UInt8], Int, Timestamp) -> Void)?
    var onTimeout: ((RecordingEndpoint, Timestamp) -> Void)?

    func receive(_ datagram: [UInt8], path: Int, now: Timestamp) {
        received.append(Received(bytes: datagram, path: path, time: now))
        onReceive?(self, datagram, path, now)
    }

    func poll(now: Timestamp) -> OutgoingDatagram? {
        outbox.isEmpty ? nil : outbox.removeFirst()
    }

    var nextTimeout: Timestamp? { timers.min() }

    func handleTimeout(now: Timestamp) {
        timeoutsHandled.append(now)
        timers.removeAll { $0 <= now }
        onTimeout?(self, now)
    }

    func send(_ size: Int, path: Int = 0, tag: UInt32 = 0) {
        var bytes = [UInt8](repeating: 0, count: size)
        withUnsafeBytes(of: tag.bigEndian) { raw in
            for (i, b) in raw.enumerated() where i < size { bytes[i] = b }
        }
        outbox.append(OutgoingDatagram(bytes, path: path))
    }

    var receivedBytes: Int { received.reduce(0) { $0 + $1.bytes.count } }
}

/// The 32-bit tag `RecordingEndpoint.send` writes at the start of a datagram.
func tag(of bytes: [UInt8]) -> UInt32 {
    bytes.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
}

/// A simulator with one path (the same model both ways) between two recording endpoints.
func onePathSimulator(_ model: LinkModel, seed: UInt64 = 1) -> (Simulator, RecordingEndpoint, RecordingEndpoint) {
    let router = RecordingEndpoint()
    let vps = RecordingEndpoint()
    let sim = Simulator(topology: Topology(router: router, vps: vps, paths: [.symmetric(model)]), seed: seed)
    return (sim, router, vps)
}
