// tquicd: the TQUIC daemon, router or VPS as /etc/tquic.conf says (TQUICDaemon module).
import ArgumentParser
import Glibc
import TQUICDaemon

@main
struct TQUICD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tquicd",
        abstract: "TQUIC bonding daemon: the router's or the VPS's end of one multipath QUIC tunnel.",
        discussion:
            "Runs until SIGTERM or SIGINT (CONNECTION_CLOSE to the peer, TUN and nftables table removed); SIGHUP re-reads the configuration.",
        version: TQUICVersion.string)

    @Option(name: .long, help: "The configuration file.")
    var config: String = "/etc/tquic.conf"

    @Flag(name: .long, help: "Check the configuration and exit: 0 if it is valid, 1 with the file, line and problem if not.")
    var checkConfig = false

    func run() throws {
        if checkConfig {
            let (ok, text) = Daemon.check(path: config)
            print(ok ? text : journalError(text))
            throw ExitCode(ok ? 0 : 1)
        }
        guard getuid() == 0 else {
            print("tquicd: needs root (TUN device, routes, nftables); `tquicd --check-config` does not")
            throw ExitCode(1)
        }
        let daemon: Daemon
        do { daemon = try Daemon(configurationPath: config) } catch {
            print(journalError("tquicd: \(error)"))
            throw ExitCode(1)
        }
        throw ExitCode(daemon.run())
    }
}

/// A refusal as the journal should file it: under systemd (ExecStartPre=, ExecStart=, where
/// standard output is a journal stream) with the `<3>` prefix of sd-daemon(3), so
/// `journalctl -p err -u tquic` shows what to edit; elsewhere unchanged.
private func journalError(_ text: String) -> String {
    getenv("JOURNAL_STREAM") == nil ? text : "<3>" + text
}
