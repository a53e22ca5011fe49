// tquicd's life: read /etc/tquic.conf, set up the host (HostSetup.swift), run the role's data
// plane in one epoll loop with the signals and the control socket, tell systemd (READY, STATUS,
// WATCHDOG, RELOADING, STOPPING), and undo the host changes at the end however it ends.
//
// One thread: the data plane, the control socket and signals share the loop, so the tunnel's
// state has one owner and needs no locks (DESIGN.md "Threads": one connection's state owned by one
// thread). Control requests are small and bounded (ControlSocketServer).
import Congestion
import Glibc
import LinuxNet
import QUIC
import Tunnel

public final class Daemon {
    public let path: String
    private var configuration: DaemonConfiguration
    private var log: Log
    private let notifier = SystemdNotifier()
    private var stopping = false
    /// What `tquicctl monitor` streams (EventLog.swift), and when a monitor last asked: the
    /// status is compared every 100 ms while one watches, else once a second (building it
    /// allocates, and an idle or busy tunnel should not pay for a watcher who is not there).
    private var events = EventLog()
    private var lastEventsRequest: Timestamp?

    public init(configurationPath: String) throws {
        path = configurationPath
        configuration = try ConfigLoader.load(configurationPath)
        log = Log(level: Log.Level(name: configuration.logLevel) ?? .info)
    }

    /// Runs until SIGTERM/SIGINT; returns the process exit status.
    public func run() -> Int32 {
        // First of all, on the only thread there is: the threads started later (the metrics
        // listener's) are made in the namespace too. Failing here is fatal: carrying on in the
        // starting namespace would set up routes and a firewall where no one asked for them.
        if let ns = configuration.networkNamespace {
            do { try NetworkNamespace.enter(named: ns) } catch {
                log.error("\(path): netns = \(ns): \(error) (is there a /run/netns/\(ns)? `ip netns add \(ns)` makes one)")
                return 1
            }
            log.info("running in network namespace \(ns)")
        }
        let signals: SignalDescriptor
        do { signals = try SignalDescriptor() } catch {
            log.error("signals: \(error)")
            return 1
        }
        guard let key = TunnelKey(seed: configuration.privateKey) else {
            log.error("\(path): unusable private-key")
            return 1
        }
        let setup: HostSetup
        do {
            setup = try HostSetup(configuration: configuration, log: log)
            try setup.apply()
        } catch {
            log.error("setting up the host: \(error)")
            return 1
        }
        defer {
            setup.undo()
            log.info("stopped; \(setup.tableName) and \(configuration.tunnel.name) removed")
        }
        do {
            return try loop(setup: setup, key: key, signals: signals)
        } catch {
            log.error("\(error)")
            try? notifier.stopping()
            return 1
        }
    }

    private func loop(setup: HostSetup, key: TunnelKey, signals: SignalDescriptor) throws -> Int32 {
        let now = MonotonicClock.now()
        guard let tun = setup.tun else { return 1 }
        let plane: DataPlane
        switch configuration.role {
        case .router:
            plane = try RouterDataPlane(
                configuration: configuration, key: key, tun: tun, netlink: setup.netlink,
                initialMTU: setup.initialMTU, maximumMTU: setup.maximumMTU, log: log, now: now)
        case .vps:
            plane = try VPSDataPlane(configuration: configuration, key: key, tun: tun, maxInnerPacket: setup.initialMTU, log: log, now: now)
        }
        let loop = try EpollLoop()
        try plane.register(in: loop)
        try loop.add(fd: signals.fd, events: .readable, token: DaemonToken.signals)
        let control = try ControlSocketServer(path: configuration.controlSocket) { [unowned self] request in
            self.answer(request, plane: plane)
        }
        defer { control.close() }
        try loop.add(fd: control.fd, events: .readable, token: DaemonToken.control)
        // /metrics and the dashboard (Observe/): their own thread, fed once a second below.
        var observer: (server: ObservationServer, exporter: MetricsExporter, board: ObservationBoard)?
        if let a = configuration.metricsAddress {
            let exporter = MetricsExporter()
            let board = ObservationBoard()
            do {
                let server = try ObservationServer(host: a.ipString, port: Int(a.port), exporter: exporter, board: board)
                observer = (server, exporter, board)
                log.notice("metrics on http://\(a)/metrics, dashboard on http://\(a)/")
            } catch {
                log.error("metrics = \(a): \(error) (the tunnel runs without /metrics)")
            }
        }
        defer { observer?.server.close() }
        let started = MonotonicClock.now()
        var nextObservation = started
        // Events come from comparing the status figures on a wake-up: every 100 ms while a
        // monitor watches, else once a second (the loop wakes for it).
        var lastObservation: Observation?
        var nextEventCheck = started
        log.notice("\(configuration.role.rawValue) running (\(path)); control socket \(configuration.controlSocket)")
        try? notifier.ready()
        let watchdog = notifier.watchdogInterval.map { Congestion.Duration(nanoseconds: Congestion.Duration($0).nanoseconds / 2) }
        var nextWatchdog = watchdog.map { MonotonicClock.now() + $0 }
        var nextStatus = MonotonicClock.now()
        var stopDeadline: Timestamp?
        var reloadRequested = false
        // The descriptors of one wake-up, kept between wake-ups (no array per wake-up).
        var fired: [Int] = []
        fired.reserveCapacity(128)
        func earliest(_ a: Timestamp?, _ b: Timestamp?) -> Timestamp? {
            guard let a else { return b }
            guard let b else { return a }
            return min(a, b)
        }

        while true {
            var now = MonotonicClock.now()
            let deadline = earliest(
                earliest(earliest(earliest(plane.nextTimeout, nextWatchdog), stopDeadline), nextStatus),
                earliest(nextEventCheck, observer == nil ? nil : nextObservation))
            let wait: Int64? = deadline.map { $0 > now ? Int64(clamping: ($0 - now).nanoseconds) : 0 }
            fired.removeAll(keepingCapacity: true)
            _ = try loop.wait(timeoutNanoseconds: min(wait ?? 1_000_000_000, 1_000_000_000)) { token, _, _, _ in
                fired.append(token)
            }
            now = MonotonicClock.now()
            for token in fired {
                switch token {
                case DaemonToken.signals:
                    for s in (try? signals.read()) ?? [] {
                        if s == SIGHUP {
                            reloadRequested = true
                        } else if !stopping {
                            log.notice("signal \(s): closing the tunnel")
                            stopping = true
                            try? notifier.stopping()
                            plane.shutdown(now: now)
                            // Long enough to send CONNECTION_CLOSE, short enough for systemd.
                            stopDeadline = now + .milliseconds(300)
                        }
                    }
                case DaemonToken.control:
                    do { try control.service() } catch { log.warning("control socket: \(error)") }
                default:
                    plane.readable(token: token, now: now)
                }
            }
            if reloadRequested {
                reloadRequested = false
                reload(plane: plane, setup: setup, now: now)
            }
            plane.run(now: now)
            if let d = stopDeadline, now >= d { return 0 }
            if let w = watchdog, let t = nextWatchdog, now >= t {
                try? notifier.watchdog()
                nextWatchdog = now + w
            }
            let metricsDue = observer != nil && now >= nextObservation
            if now >= nextEventCheck || metricsDue {
                let observation = plane.observation
                for text in EventDetector.events(from: lastObservation, to: observation) { events.append(text) }
                lastObservation = observation
                let watched = lastEventsRequest.map { now < $0 + .seconds(2) } ?? false
                nextEventCheck = now + .milliseconds(watched ? 100 : 1000)
                if metricsDue, let o = observer {
                    o.exporter.update(TunnelMetrics.samples(observation))
                    o.exporter.update(histograms: TunnelMetrics.histograms(observation))
                    o.board.publish(observation.json(sampledAt: Double((now - started).nanoseconds) / 1e9))
                    nextObservation = now + .seconds(1)
                }
            }
            if now >= nextStatus {
                try? notifier.status(plane.summary(now: now))
                nextStatus = now + .seconds(5)
            }
        }
    }

    /// SIGHUP: the file again; a bad file changes nothing (its error is logged with its line).
    private func reload(plane: DataPlane, setup: HostSetup, now: Timestamp) {
        try? notifier.reloading()
        defer { try? notifier.ready() }
        let new: DaemonConfiguration
        do { new = try ConfigLoader.load(path) } catch {
            log.error("reload refused, keeping the running configuration: \(error)")
            return
        }
        guard new.networkNamespace == configuration.networkNamespace else {
            log.error("reload refused: netns changed; restart tquicd for that")
            return
        }
        guard new.role == configuration.role, new.tunnel == configuration.tunnel || new.role == .vps else {
            log.error("reload refused: the role or the [tunnel] section changed; restart tquicd for that")
            return
        }
        do {
            if new.role == .vps { try setup.updateTenantRoutes(old: configuration, new: new) }
            try plane.reload(new, now: now)
            configuration = new
            log.level = Log.Level(name: new.logLevel) ?? log.level
            log.notice("reloaded \(path)")
            events.append("reloaded \(path)")
        } catch {
            log.error("reload: \(error)")
        }
    }

    /// The control socket's requests (ControlSocketServer hands one line, sends the answer).
    private func answer(_ request: String, plane: DataPlane) -> String {
        let now = MonotonicClock.now()
        switch ControlCommand.parse(request) {
        case .failure(let e): return "error: \(e)\n"
        case .success(.ping): return "pong\n"
        case .success(.status(json: false)): return plane.status(now: now)
        case .success(.events(let after)):
            lastEventsRequest = now
            return events.answer(after: after)
        case .success(let command):
            let answer = plane.control(command, now: now)
            if command.changesState {
                let line = "control: \(request.trimmingSpaces()) -> \(answer.trimmingSpaces())"
                log.notice(line)
                events.append(line)
            }
            return answer
        }
    }

    /// `tquicd --check-config`: the file's first error, or a summary of what it configures.
    public static func check(path: String) -> (ok: Bool, text: String) {
        do {
            let c = try ConfigLoader.load(path)
            var text =
                "\(path): ok, role \(c.role.rawValue), tunnel \(c.tunnel.name) \(c.tunnel.addresses.map(\.description).joined(separator: ", "))"
            if let r = c.router { text += ", server \(r.server), WANs \(r.wans.map(\.interface).joined(separator: ", "))" }
            if let v = c.vps {
                text += ", listen \(v.listen), egress \(v.egress), tenants \(v.tenants.map(\.name).joined(separator: ", "))"
            }
            return (true, text)
        } catch {
            return (false, "\(error)")
        }
    }
}
