// tquic-netem: a userspace WAN link emulator for the lab, where the kernel has no netem. It
// bridges two interfaces of the namespace it runs in (addressless veths, AF_PACKET) and applies
// per direction the link of a `--link` specification, the syntax tquic-sim takes
// (docs/link-syntax.md), through NetSim's link model; it counts every drop by cause and prints
// them on SIGUSR1, every --stats-interval, and when SIGTERM/SIGINT end it.
import ArgumentParser
import Congestion
import Glibc
import LinuxNet
import NetSim

@main
struct TQUICNetem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tquic-netem",
        abstract: "Bridge two interfaces through an emulated WAN link (rate, delay, jitter, loss, queue, outages).",
        discussion: """
            Run it in a namespace that holds both interfaces, without addresses on them. Frames from \
            --a leave on --b through --link; frames from --b leave on --a through --link-back (or the \
            same --link). DELAY is one-way. Offloads may stay on: a GSO/TSO super-frame is cut into \
            MTU-sized frames before the link sees it, and a frame whose checksum is left to the \
            hardware is sent on with that request; turning them off on the veths that send into \
            it (ethtool -K IF gso off tso off tx off) saves that work. Times in outage= and rate@ \
            count from the `ready` line.
            """)

    @Option(name: .customLong("a"), help: "First interface.") var interfaceA: String
    @Option(name: .customLong("b"), help: "Second interface.") var interfaceB: String
    @Option(
        name: .customLong("link"),
        help: ArgumentHelp("The a → b link: [NAME=]RATE,DELAY[,OPTION...] (docs/link-syntax.md).", valueName: "spec"))
    var link: String
    @Option(name: .customLong("link-back"), help: ArgumentHelp("The b → a link (default: the same as --link).", valueName: "spec"))
    var linkBack: String?
    @Option(help: "Seed of the links' random streams (loss, jitter, corruption).") var seed: UInt64 = 1
    @Option(help: "Frame buffers per direction (frames held in queue and delay at once).") var buffers: Int = 16384
    @Option(help: "Frames per recvmmsg/sendmmsg call.") var batch: Int = 64
    @Option(help: "Print the statistics to standard error every SECONDS (0: only on SIGUSR1 and at exit).")
    var statsInterval: Double = 0
    @Option(help: "Receive and send buffer of each packet socket, bytes.") var socketBuffer: Int = 8 << 20
    @Option(
        help: ArgumentHelp(
            "Run the packet loop under SCHED_FIFO at this priority (1-99): frames then leave on time even when iperf3 and the kernel keep every core busy (the loop sleeps between frames, so it never holds a core). 0: the normal scheduler.",
            valueName: "priority"))
    var realtime: Int32 = 0

    func validate() throws {
        guard buffers >= 16, buffers <= 1 << 22 else { throw ValidationError("--buffers: 16 to 4194304") }
        guard batch >= 1, batch <= 1024 else { throw ValidationError("--batch: 1 to 1024") }
        guard statsInterval == 0 || (statsInterval >= 0.01 && statsInterval.isFinite) else {
            throw ValidationError("--stats-interval: 0, or at least 0.01 s")
        }
        guard interfaceA != interfaceB else { throw ValidationError("--a and --b must be two interfaces") }
        guard (0...99).contains(realtime) else { throw ValidationError("--realtime: 0 (off) or 1 to 99") }
    }

    func run() throws {
        let forward: LinkSpecification
        let back: LinkSpecification
        do {
            forward = try LinkSpecification(parsing: link, option: "--link")
            back = try linkBack.map { try LinkSpecification(parsing: $0, option: "--link-back") } ?? forward
        } catch let error as LinkSpecificationError {
            throw ValidationError(error.description)
        }
        // Signals first, before any other thread could exist: they stay blocked and arrive on the fd.
        let signals = try SignalDescriptor(signals: [SIGTERM, SIGINT, SIGUSR1])
        let a = try PacketSocket(interface: interfaceA, bufferBytes: socketBuffer, offloadHeader: true)
        let b = try PacketSocket(interface: interfaceB, bufferBytes: socketBuffer, offloadHeader: true)
        // A slot takes a frame of the larger MTU: the Ethernet header and a VLAN tag on top.
        let frameCapacity = max(a.mtu, b.mtu) + Direction.ethernetHeader + 4
        let directions = [
            Direction(
                label: "a→b", input: a, output: b, specification: forward, seed: SimRandom.derive(seed, 1),
                buffers: buffers, frameCapacity: frameCapacity, batchSize: batch),
            Direction(
                label: "b→a", input: b, output: a, specification: back, seed: SimRandom.derive(seed, 2),
                buffers: buffers, frameCapacity: frameCapacity, batchSize: batch),
        ]
        PacketSocket.setTimerSlack(nanoseconds: 1_000)
        if realtime > 0 {
            var parameters = sched_param()
            parameters.sched_priority = realtime
            if sched_setscheduler(0, SCHED_FIFO, &parameters) != 0 {
                log("--realtime \(realtime): sched_setscheduler failed (\(String(cString: strerror(errno)))); going on without it")
            }
        }
        let loop = try EpollLoop()
        try loop.add(fd: a.fd, events: .readable, token: 0)
        try loop.add(fd: b.fd, events: .readable, token: 1)
        try loop.add(fd: signals.fd, events: .readable, token: 2)

        let origin = MonotonicClock.now()
        let clock = { Timestamp(nanoseconds: MonotonicClock.now().nanoseconds &- origin.nanoseconds) }
        log(
            "ready: \(interfaceA) ⇄ \(interfaceB), MTU \(a.mtu)/\(b.mtu), seed \(seed)"
                + (realtime > 0 ? ", SCHED_FIFO \(realtime)" : "") + "; "
                + "a→b \(forward); b→a \(back)")

        let statsEvery = statsInterval > 0 ? Congestion.Duration.seconds(statsInterval) : nil
        var nextStats = statsEvery.map { clock() + $0 }
        var running = true
        var failure: Error?
        while running {
            let now = clock()
            for d in directions { d.releaseDue(at: now) }
            if let due = nextStats, now >= due {
                printStatistics(directions, prefix: "stats")
                nextStats = now + statsEvery!
            }
            var deadline = nextStats
            for d in directions {
                if let r = d.link.nextRelease { deadline = deadline.map { min($0, r) } ?? r }
            }
            let timeout = deadline.map { Int64(($0 - clock()).nanoseconds) }
            try loop.wait(timeoutNanoseconds: timeout) { token, _, _, _ in
                do {
                    switch token {
                    case 0, 1:
                        let d = directions[token]
                        _ = try d.receive(clock: clock)
                        // A frame due at once (no delay, idle link) leaves in the same wake-up.
                        d.releaseDue(at: clock())
                    default:
                        for signal in try signals.read() {
                            if signal == SIGUSR1 { printStatistics(directions, prefix: "stats") } else { running = false }
                        }
                    }
                } catch {
                    failure = error
                    running = false
                }
            }
        }
        printStatistics(directions, prefix: "final")
        if let failure { throw failure }
    }

    func printStatistics(_ directions: [Direction], prefix: String) {
        for d in directions { d.collectKernelDrops() }
        log("\(prefix): " + directions.map(\.statisticsLine).joined(separator: "; "))
    }

    func log(_ line: String) {
        fputs("tquic-netem: \(line)\n", stderr)
    }
}
