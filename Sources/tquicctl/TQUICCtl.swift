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
        abstract: "Keys and status for tquicd.",
        subcommands: [GenKey.self, PubKey.self, Status.self])
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

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Paths (RTT, loss, rate, state), scheduler and tenants of the running tquicd.")

    @Option(name: .long, help: "The daemon's control socket (control-socket in /etc/tquic.conf).")
    var socket: String = "/run/tquic/tquic.sock"

    func run() throws {
        do {
            print(try ControlSocketClient.request("status", path: socket), terminator: "")
        } catch {
            print("tquicctl: \(socket): \(error)")
            throw ExitCode(1)
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
