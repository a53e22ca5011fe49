// tquicctl: keys for /etc/tquic.conf (like `wg genkey` / `wg pubkey`) and the running daemon's
// status over its control socket (root or the `tquic` group).
import ArgumentParser
import Glibc
import LinuxNet
import QUIC

@main
struct TQUICCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tquicctl",
        abstract: "Keys for /etc/tquic.conf, and the running tquicd: status, paths, tenants, scheduler, congestion control.",
        version: "0.5.0",
        subcommands: [GenKey.self, PubKey.self, Status.self, Paths.self, Tenants.self, Scheduler.self, Congestion.self, Monitor.self])
}

struct GenKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genkey", abstract: "Print a new private key (base64) for `private-key =`.",
        discussion: "tquicctl genkey | tee private.key | tquicctl pubkey")

    func run() throws {
        // The key must not be readable by others if redirected to a new file.
        umask(0o077)
        print(TunnelKey.generate().base64)
    }
}

struct PubKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pubkey", abstract: "Read a private key on standard input, print its public key (for the peer's config).")

    func run() throws {
        guard let line = readLine(strippingNewline: true) else { throw ValidationError("no private key on standard input") }
        let text = line.trimmingCharacters(in: " \t\r")
        guard let key = TunnelKey(base64: text) else {
            throw ValidationError("not a private key: expected 44 characters of base64 as `tquicctl genkey` prints")
        }
        print(key.publicKeyBase64)
    }
}

/// Where the daemon listens (control-socket in /etc/tquic.conf).
struct SocketOption: ParsableArguments {
    @Option(name: .long, help: "The daemon's control socket (control-socket in /etc/tquic.conf).")
    var socket: String = "/run/tquic/tquic.sock"

    /// Sends one request and prints the answer; an `error:` answer exits 1.
    func ask(_ request: String) throws {
        let answer: String
        do { answer = try ControlSocketClient.request(request, path: socket) } catch {
            print("tquicctl: \(socket): \(error)")
            throw ExitCode(1)
        }
        print(answer, terminator: "")
        if answer.hasPrefix("error:") { throw ExitCode(1) }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Paths (RTT, loss, rate, state), scheduler and tenants of the running tquicd.")
    @OptionGroup var target: SocketOption
    @Flag(name: .long, help: "JSON for scripts.") var json = false
    func run() throws { try target.ask(json ? "status --json" : "status") }
}

struct Tenants: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tenants", abstract: "The VPS's tenants, their paths and counters.")
    @OptionGroup var target: SocketOption
    @Flag(name: .long, help: "JSON for scripts.") var json = false
    func run() throws { try target.ask(json ? "tenants --json" : "tenants") }
}

struct Paths: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paths", abstract: "The paths (like `ss -ti`), and the userspace path manager.",
        subcommands: [Show.self, Add.self, Del.self, Set.self], defaultSubcommand: Show.self)

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Per path: state, RTT, cwnd, rate, loss, MTU.")
        @OptionGroup var target: SocketOption
        @Flag(name: .long, help: "JSON for scripts.") var json = false
        func run() throws { try target.ask(json ? "paths --json" : "paths") }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add", abstract: "Put a WAN interface into service (until restart or reload).")
        @Argument(help: "The interface.") var interface: String
        @Flag(name: .long, help: "Only while no other path is usable.") var backup = false
        @Option(name: .long, help: "Share for scheduler = weighted (1-100).") var weight: Int = 1
        @OptionGroup var target: SocketOption
        func run() throws { try target.ask("paths add \(interface)\(backup ? " backup" : "") weight \(weight)") }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "del", abstract: "Take a WAN out of service at once (its traffic moves to the others).")
        @Argument(help: "The interface.") var interface: String
        @OptionGroup var target: SocketOption
        func run() throws { try target.ask("paths del \(interface)") }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Mark a WAN backup or available.")
        @Argument(help: "The interface.") var interface: String
        @Argument(help: "backup or available.") var status: String
        @OptionGroup var target: SocketOption
        func validate() throws {
            guard status == "backup" || status == "available" else { throw ValidationError("expected backup or available, got \(status)") }
        }
        func run() throws { try target.ask("paths set \(interface) \(status)") }
    }
}

struct Scheduler: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler", abstract: "Change the scheduler of the running tunnel.",
        subcommands: [SetName.self])
    struct SetName: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: "aggregate, minrtt, roundrobin, weighted, blest, ecf, redundant")
        @Argument(help: "The scheduler.") var name: String
        @OptionGroup var target: SocketOption
        func run() throws { try target.ask("scheduler set \(name)") }
    }
}

struct Congestion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "congestion", abstract: "Change every path's congestion controller.",
        subcommands: [SetName.self])
    struct SetName: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "bbr, cubic, newreno, copa, westwood")
        @Argument(help: "The controller.") var name: String
        @OptionGroup var target: SocketOption
        func run() throws { try target.ask("congestion set \(name)") }
    }
}

struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor", abstract: "Stream the running tunnel's events as they happen (like `ip monitor`).",
        discussion:
            "Paths added, removed, changing state or becoming backups; the connection or tenants connecting and leaving; scheduler and congestion changes; control requests and reloads. Runs until interrupted (Ctrl-C)."
    )
    @OptionGroup var target: SocketOption
    @Flag(name: .long, help: "One JSON object per line for scripts.") var json = false
    @Flag(name: .long, help: "Begin with the events the daemon still keeps (default: only new ones).") var past = false
    @Option(name: .long, help: "Stop after this many events.") var count: Int?
    @Option(name: .long, help: "Stop after this many seconds.") var seconds: Double?

    func run() throws {
        let start = MonotonicClock.now()
        var after: UInt64? = past ? 0 : nil
        var shown = 0
        while true {
            let answer: String
            do { answer = try ControlSocketClient.request("events after \(after ?? UInt64.max / 2)", path: target.socket) } catch {
                print("tquicctl: \(target.socket): \(error)")
                throw ExitCode(1)
            }
            if answer.hasPrefix("error:") {
                print(answer, terminator: "")
                throw ExitCode(1)
            }
            for line in answer.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                if parts.first == "next", parts.count == 2, let n = UInt64(parts[1]) {
                    // The first answer only tells where "now" is, unless --past.
                    if after == nil {
                        after = n
                        break
                    }
                    after = n
                } else if parts.first == "lost", parts.count == 2 {
                    print(json ? "{\"lost\":\(parts[1])}" : "(\(parts[1]) events lost: the daemon keeps the last 512)")
                } else if parts.count == 3 {
                    print(
                        json
                            ? "{\"sequence\":\(parts[0]),\"time\":\"\(parts[1])\",\"event\":\(QlogWriter.quote(parts[2]))}"
                            : "\(parts[1]) \(parts[2])")
                    shown += 1
                    if let c = count, shown >= c { return }
                }
            }
            fflush(nil)  // a pipe's reader sees each event as it comes
            if let s = seconds, Double(MonotonicClock.now().nanoseconds - start.nanoseconds) / 1e9 >= s { return }
            usleep(200_000)
        }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
