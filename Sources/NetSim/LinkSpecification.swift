// The one link syntax of the simulator (`tquic-sim --link`), the emulator (`tquic-netem --link`)
// and the lab: a WAN direction written as text, parsed into a `LinkModel`, so a simulator scenario
// and a lab profile with the same words describe the same link. docs/link-syntax.md has the
// reference and examples. Grammar (units are case-insensitive; keys are lower case):
//
//     SPEC     = [NAME "="] RATE "," DELAY *("," OPTION)
//     NAME     = 1*32 of A-Z a-z 0-9 _ . -         (what reports call the link)
//     RATE     = NUMBER ("bit" | "kbit" | "mbit" | "gbit") | "unlimited"   (×1000 steps, as tc)
//     DELAY    = DURATION                          ONE-WAY propagation delay, after serialisation
//     DURATION = NUMBER ("ns" | "us" | "ms" | "s") | "0"
//     PERCENT  = NUMBER "%"
//     OPTION   = "jitter=" DURATION                uniform ±D on the delay, order kept
//              | "jitter-hold=" DURATION           keep each jitter draw this long (default 0)
//              | "jitter-dist=" ("symmetric" | "positive")         (default symmetric)
//              | "reorder"                         jitter may reorder packets (netem's behaviour)
//              | "loss=" PERCENT                   independent random loss
//              | "burst=" PERCENT ":" NUMBER       Gilbert burst loss: mean loss rate, mean burst
//                                                  length in packets
//              | "ge=" PERCENT "/" PERCENT ["/" PERCENT ["/" PERCENT]]
//                                                  Gilbert–Elliott p(good→bad) / r(bad→good) /
//                                                  loss in bad (100%) / loss in good (0%)
//              | "queue=" (BYTES | DURATION | NUMBER "pkt" | "unlimited")   drop-tail queue;
//                                                  a DURATION is that long at the initial rate,
//                                                  "pkt" counts 1500-byte packets
//              | "corrupt=" PERCENT                flip one byte of a delivered packet
//              | "outage=" DURATION "-" [DURATION] cut from..to (no end: for good); repeatable
//              | "rate@" DURATION "=" RATE         the rate from that time on; repeatable
//              | "ecn=" DURATION                   CE-mark ECN-capable packets queued that long
//              | "overhead=" INTEGER               link-layer bytes per IP packet (default 0)
//              | "backup"                          tquic-sim: a backup path (tquic-netem ignores it)
//     BYTES    = INTEGER ["b" | "kb" | "kib" | "mb" | "mib"]
//
// Rates and queues count IP packets (IP header included) plus `overhead`. Times in `outage` and
// `rate@` count from the start of the run (the simulator's time zero; tquic-netem's start).
// Without `queue=`, the queue holds one bandwidth-delay product of the round trip 2 × DELAY at the
// initial rate, at least 10 full-size packets (the simulator scenarios' rule, `Scenario.wanLink`).
import Congestion

/// One direction of one link as the user wrote it, parsed.
public struct LinkSpecification: Sendable, Equatable, CustomStringConvertible {
    /// The link's name ("fibre"); nil when the text gave none.
    public var name: String?
    /// What the link does, with rates and queue counted in IP-packet bytes plus `overhead=`:
    /// `overheadBytes` holds only the link-layer overhead the text gave (default 0). Use
    /// `model(perPacketOverhead:)` for a caller whose packets are not whole IP packets.
    public var model: LinkModel
    /// `backup`: in tquic-sim, a path that is meant to carry traffic only when no other is up.
    public var isBackup = false

    public init(name: String?, model: LinkModel, isBackup: Bool = false) {
        self.name = name
        self.model = model
        self.isBackup = isBackup
    }

    /// The model for packets that lack `bytes` of header the link carries: the simulator offers
    /// UDP payloads, so it adds `LinkModel.ipv4UDPOverhead`; tquic-netem offers IP packets (0).
    public func model(perPacketOverhead bytes: Int) -> LinkModel {
        var m = model
        m.overheadBytes += bytes
        return m
    }

    // MARK: Parsing

    /// Every option key, in the order the documentation lists them (for "known: ..." in errors).
    public static let optionKeys = [
        "jitter", "jitter-hold", "jitter-dist", "reorder", "loss", "burst", "ge", "queue", "corrupt",
        "outage", "rate@T", "ecn", "overhead", "backup",
    ]

    /// Full-size packet for `queue=Npkt` and the default queue's minimum.
    public static let fullPacketBytes = 1500

    /// Parses `text` (see the file header for the grammar).
    /// - Parameter option: the command-line option the text came with, for error messages.
    /// - Throws: `LinkSpecificationError`, whose description names the option, the link and what
    ///   is wrong ("--link lte: `jiter` is not a link option (known: jitter, ...)").
    public init(parsing text: String, option: String = "--link") throws {
        var fields = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var name: String?
        if let eq = fields.first?.firstIndex(of: "=") {
            let n = String(fields[0][..<eq])
            fields[0] = String(fields[0][fields[0].index(after: eq)...])
            name = n
        }
        let context = option + (name.map { " " + $0 } ?? "")
        func fail(_ message: String) -> LinkSpecificationError {
            LinkSpecificationError(context: context, message: message)
        }
        if let name {
            guard !name.isEmpty, name.count <= 32,
                name.unicodeScalars.allSatisfy({ Self.nameCharacters.contains(Character($0)) })
            else {
                throw fail("`\(name)` is not a link name (1 to 32 of A-Z a-z 0-9 _ . -)")
            }
        }
        guard fields.count >= 2, !fields[0].isEmpty, !fields[1].isEmpty, !fields[1].contains("=") else {
            throw fail("`\(text)` needs [NAME=]RATE,DELAY[,OPTION...], e.g. lte=30mbit,40ms,jitter=15ms,loss=1%")
        }
        var model = LinkModel()
        do {
            model.rateBitsPerSecond = try Self.rate(fields[0])
            model.delay = try Self.duration(fields[1], what: "delay")
        } catch let error as LinkSpecificationError {
            throw fail(error.message)
        }

        var isBackup = false
        var seen = Set<String>()
        var queue: String?
        var jitterHold: Duration?
        var jitterDistribution: Jitter.Distribution?
        var reorder = false
        var jitterAmplitude: Duration?
        for field in fields.dropFirst(2) {
            let key: String
            let value: String?
            if let eq = field.firstIndex(of: "=") {
                key = String(field[..<eq])
                value = String(field[field.index(after: eq)...])
            } else {
                key = field
                value = nil
            }
            let known = key.hasPrefix("rate@") ? "rate@T" : key
            guard Self.optionKeys.contains(known) else {
                if field.isEmpty { throw fail("empty option (two commas in a row, or one at the end)") }
                var message = "`\(key)` is not a link option (known: \(Self.optionKeys.joined(separator: ", ")))"
                if let guess = Self.closest(to: key) { message += "; did you mean `\(guess)`?" }
                throw fail(message)
            }
            let flags = ["reorder", "backup"]
            if flags.contains(known) {
                guard value == nil else { throw fail("`\(key)` takes no value") }
            } else if value == nil || value!.isEmpty {
                throw fail("`\(key)` needs a value (\(key)=...)")
            }
            let repeatable = ["outage", "rate@T"]
            if !repeatable.contains(known) {
                guard seen.insert(known).inserted else { throw fail("`\(key)` is given twice") }
            }
            do {
                switch known {
                case "jitter": jitterAmplitude = try Self.duration(value!, what: "jitter")
                case "jitter-hold": jitterHold = try Self.duration(value!, what: "jitter-hold")
                case "jitter-dist":
                    guard let d = Jitter.Distribution(rawValue: value!) else {
                        throw LinkSpecificationError(message: "jitter-dist=\(value!): known: symmetric, positive")
                    }
                    jitterDistribution = d
                case "reorder": reorder = true
                case "loss": model.lossProbability = try Self.percent(value!, what: "loss")
                case "burst":
                    guard !seen.contains("ge") else {
                        throw LinkSpecificationError(message: "`burst` and `ge` both set the burst-loss model: give one")
                    }
                    model.burstLoss = try Self.burst(value!)
                case "ge":
                    guard !seen.contains("burst") else {
                        throw LinkSpecificationError(message: "`burst` and `ge` both set the burst-loss model: give one")
                    }
                    model.burstLoss = try Self.gilbertElliott(value!)
                case "queue": queue = value!
                case "corrupt": model.corruptionProbability = try Self.percent(value!, what: "corrupt")
                case "outage": model.addOutage(try Self.outage(value!))
                case "rate@T":
                    let at = try Self.duration(String(key.dropFirst("rate@".count)), what: "rate change time")
                    model.addRateChange(RateChange(at: .zero + at, rateBitsPerSecond: try Self.rate(value!)))
                case "ecn": model.ecnMarkingThreshold = try Self.duration(value!, what: "ecn threshold")
                case "overhead":
                    guard let n = Int(value!), n >= 0, n <= 1000 else {
                        throw LinkSpecificationError(message: "overhead=\(value!): a whole number of bytes, 0 to 1000")
                    }
                    model.overheadBytes = n
                case "backup": isBackup = true
                default: fatalError("option key \(known) listed but not handled")
                }
            } catch let error as LinkSpecificationError {
                throw fail(error.message)
            }
        }
        if let amplitude = jitterAmplitude {
            model.jitter = Jitter(
                amplitude: amplitude, distribution: jitterDistribution ?? .symmetric,
                ordering: reorder ? .reordering : .preserved, holdTime: jitterHold ?? .zero)
        } else if jitterHold != nil || jitterDistribution != nil || reorder {
            throw fail("jitter-hold, jitter-dist and reorder need jitter=D")
        }
        do {
            model.queueCapacityBytes =
                try queue.map { try Self.queue($0, rate: model.rateBitsPerSecond) }
                ?? Self.defaultQueue(rate: model.rateBitsPerSecond, delay: model.delay)
        } catch let error as LinkSpecificationError {
            throw fail(error.message)
        }
        self.init(name: name, model: model, isBackup: isBackup)
    }

    /// One bandwidth-delay product of 2 × `delay` at `rate`, at least 10 full-size packets;
    /// unbounded (nil) for an unlimited rate, which never queues.
    public static func defaultQueue(rate: UInt64, delay: Duration) -> Int? {
        guard rate > 0 else { return nil }
        return max(LinkModel.bandwidthDelayProduct(rate: rate, rtt: delay * 2), 10 * fullPacketBytes)
    }

    // MARK: Rendering

    /// The specification in canonical form (every value explicit, the default queue written out),
    /// which parses back to the same model: what tquic-sim and tquic-netem print at start.
    public var description: String {
        let m = model
        var parts = [(name.map { $0 + "=" } ?? "") + Self.format(rate: m.rateBitsPerSecond), Self.format(m.delay)]
        if m.jitter.amplitude.nanoseconds > 0 {
            parts.append("jitter=" + Self.format(m.jitter.amplitude))
            if m.jitter.holdTime.nanoseconds > 0 { parts.append("jitter-hold=" + Self.format(m.jitter.holdTime)) }
            if m.jitter.distribution != .symmetric { parts.append("jitter-dist=" + m.jitter.distribution.rawValue) }
            if m.jitter.ordering == .reordering { parts.append("reorder") }
        }
        if m.lossProbability > 0 { parts.append("loss=" + Self.format(percent: m.lossProbability)) }
        if let ge = m.burstLoss {
            var text = "ge=" + Self.format(percent: ge.goodToBad) + "/" + Self.format(percent: ge.badToGood)
            if ge.lossInBad != 1 || ge.lossInGood != 0 { text += "/" + Self.format(percent: ge.lossInBad) }
            if ge.lossInGood != 0 { text += "/" + Self.format(percent: ge.lossInGood) }
            parts.append(text)
        }
        parts.append("queue=" + (m.queueCapacityBytes.map { "\($0)b" } ?? "unlimited"))
        if m.corruptionProbability > 0 { parts.append("corrupt=" + Self.format(percent: m.corruptionProbability)) }
        for o in m.outages {
            parts.append("outage=" + Self.format(o.start - .zero) + "-" + (o.isPermanent ? "" : Self.format(o.end - .zero)))
        }
        for c in m.rateChanges { parts.append("rate@" + Self.format(c.time - .zero) + "=" + Self.format(rate: c.rateBitsPerSecond)) }
        if let ecn = m.ecnMarkingThreshold { parts.append("ecn=" + Self.format(ecn)) }
        if m.overheadBytes != 0 { parts.append("overhead=\(m.overheadBytes)") }
        if isBackup { parts.append("backup") }
        return parts.joined(separator: ",")
    }

    static func format(rate: UInt64) -> String {
        if rate == 0 { return "unlimited" }
        for (unit, scale) in [("gbit", 1_000_000_000 as UInt64), ("mbit", 1_000_000), ("kbit", 1_000)] where rate % scale == 0 {
            return "\(rate / scale)\(unit)"
        }
        return "\(rate)bit"
    }

    static func format(_ d: Duration) -> String {
        let ns = d.nanoseconds
        if ns == 0 { return "0" }
        for (unit, scale) in [("s", 1_000_000_000 as UInt64), ("ms", 1_000_000), ("us", 1_000)] where ns % scale == 0 {
            return "\(ns / scale)\(unit)"
        }
        return "\(ns)ns"
    }

    static func format(percent p: Double) -> String {
        let x = p * 100
        let rounded = (x * 1_000_000).rounded() / 1_000_000
        return rounded == rounded.rounded() ? "\(Int(rounded))%" : "\(rounded)%"
    }

    // MARK: Values

    private static let nameCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")

    /// A non-negative finite decimal number ("1.5"); no sign, exponent, hex, inf or nan.
    static func number(_ text: Substring) -> Double? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            text.filter({ $0 == "." }).count <= 1, let x = Double(text), x.isFinite
        else { return nil }
        return x
    }

    /// Splits "30mbit" into (30, "mbit").
    static func split(_ text: String) -> (Double?, String) {
        let digits = text.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        return (number(digits), text.dropFirst(digits.count).lowercased())
    }

    static func rate(_ text: String) throws -> UInt64 {
        if text.lowercased() == "unlimited" { return 0 }
        let (value, unit) = split(text)
        let scales: [String: Double] = ["bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9]
        guard let value, let scale = scales[unit] else {
            if ["bps", "kbps", "mbps", "gbps"].contains(unit) {
                throw LinkSpecificationError(
                    message:
                        "rate `\(text)` is ambiguous (tc reads \(unit) as bytes per second): write \(text.dropLast(unit.count))\(unit.dropLast(2))it"
                )
            }
            throw LinkSpecificationError(message: "rate `\(text)`: a number and one of bit, kbit, mbit, gbit (×1000 steps), or unlimited")
        }
        let bits = value * scale
        guard bits >= 1, bits < 1e15 else {
            throw LinkSpecificationError(message: "rate `\(text)` is out of range (1bit to 1000000gbit; `unlimited` for no limit)")
        }
        return UInt64(bits.rounded())
    }

    static func duration(_ text: String, what: String) throws -> Duration {
        if text == "0" { return .zero }
        let (value, unit) = split(text)
        let scales: [String: Double] = ["ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9]
        guard let value, let scale = scales[unit] else {
            throw LinkSpecificationError(message: "\(what) `\(text)`: a number and one of ns, us, ms, s (e.g. 40ms)")
        }
        let ns = value * scale
        guard ns < 1e15 else { throw LinkSpecificationError(message: "\(what) `\(text)` is out of range") }
        return Duration(nanoseconds: UInt64(ns.rounded()))
    }

    static func percent(_ text: String, what: String) throws -> Double {
        guard text.hasSuffix("%"), let value = number(text.dropLast()), value <= 100 else {
            throw LinkSpecificationError(message: "\(what)=\(text): a percentage from 0% to 100% (e.g. \(what)=1%)")
        }
        return value / 100
    }

    /// "2%:5": mean loss 2 %, bursts of 5 packets on average (Gilbert: lossless good state, every
    /// packet in the bad state lost): r = 1/length, p = r·loss / (1 − loss).
    static func burst(_ text: String) throws -> GilbertElliott {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let rate = try? percent(String(parts[0]), what: "burst"), rate < 1,
            let length = number(parts[1]), length >= 1
        else {
            throw LinkSpecificationError(
                message: "burst=\(text): MEAN_LOSS%:MEAN_BURST_PACKETS, e.g. burst=2%:5 (loss below 100%, length at least 1)")
        }
        let r = 1 / length
        return GilbertElliott(goodToBad: min(1, r * rate / (1 - rate)), badToGood: r)
    }

    /// "p%/r%[/lossInBad%[/lossInGood%]]".
    static func gilbertElliott(_ text: String) throws -> GilbertElliott {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...4).contains(parts.count) else {
            throw LinkSpecificationError(message: "ge=\(text): P%/R%[/LOSS_IN_BAD%[/LOSS_IN_GOOD%]], e.g. ge=1%/30%")
        }
        let values = try parts.map { try percent($0, what: "ge") }
        return GilbertElliott(
            goodToBad: values[0], badToGood: values[1],
            lossInBad: values.count > 2 ? values[2] : 1, lossInGood: values.count > 3 ? values[3] : 0)
    }

    static func outage(_ text: String) throws -> Outage {
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else {
            throw LinkSpecificationError(message: "outage=\(text): FROM-TO or FROM- (for good), e.g. outage=5s-10s")
        }
        let from = try duration(parts[0], what: "outage start")
        guard !parts[1].isEmpty else { return Outage(from: .zero + from) }
        let to = try duration(parts[1], what: "outage end")
        guard to > from else { throw LinkSpecificationError(message: "outage=\(text) ends before it starts") }
        return Outage(from: .zero + from, to: .zero + to)
    }

    static func queue(_ text: String, rate: UInt64) throws -> Int? {
        if text.lowercased() == "unlimited" { return nil }
        let (value, unit) = split(text)
        if value != nil, ["ns", "us", "ms", "s"].contains(unit) {
            guard rate > 0 else {
                throw LinkSpecificationError(message: "queue=\(text): a queue in time needs a rate (this link is unlimited)")
            }
            return LinkModel.bandwidthDelayProduct(rate: rate, rtt: try duration(text, what: "queue"))
        }
        let scales: [String: Double] = [
            "": 1, "b": 1, "kb": 1e3, "kib": 1024, "mb": 1e6, "mib": 1_048_576,
            "pkt": Double(fullPacketBytes),
        ]
        guard let value, let scale = scales[unit], value * scale < 1e12 else {
            throw LinkSpecificationError(
                message: "queue=\(text): bytes (65536, 64kb, 1mib), packets (40pkt), a time at the initial rate (50ms), or unlimited")
        }
        return Int((value * scale).rounded())
    }

    /// The option key nearest to `key` by edit distance, when it is a plausible typo (≤ 2 edits).
    static func closest(to key: String) -> String? {
        let candidates = optionKeys.map { $0 == "rate@T" ? "rate@" : $0 }
        let scored = candidates.map { ($0, editDistance(Array(key), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
        return best.0 == "rate@" ? "rate@T" : best.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(1, b.count) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}

/// What is wrong with a link specification, in words the user can act on.
public struct LinkSpecificationError: Error, CustomStringConvertible, Equatable {
    /// "--link lte": the option and the link's name.
    public var context: String
    public var message: String

    public init(context: String = "", message: String) {
        self.context = context
        self.message = message
    }

    public var description: String { context.isEmpty ? message : "\(context): \(message)" }
}

// MARK: - Paths and scenarios from specifications

extension LinkSpecification {
    /// The paths of `--link` (and `--link-back`, matched by name) specifications for the
    /// simulator: each `--link` is a path, router → VPS; its VPS → router direction is the
    /// `--link-back` of the same name, or the same specification. Unnamed links are called
    /// path0, path1, ... by position. The simulator's datagrams are UDP payloads: the models get
    /// `LinkModel.ipv4UDPOverhead` added, so the rate counts the same IP bytes as tquic-netem's.
    public static func paths(links: [LinkSpecification], back: [LinkSpecification]) throws -> [PathLinks] {
        var names: [String] = []
        for (i, link) in links.enumerated() {
            let name = link.name ?? "path\(i)"
            guard !names.contains(name) else {
                throw LinkSpecificationError(context: "--link \(name)", message: "two links have this name")
            }
            names.append(name)
        }
        var backByName: [String: LinkSpecification] = [:]
        for b in back {
            guard let name = b.name else {
                throw LinkSpecificationError(context: "--link-back", message: "`\(b)` needs the NAME= of the --link it returns on")
            }
            guard names.contains(name) else {
                throw LinkSpecificationError(
                    context: "--link-back \(name)", message: "no --link has this name (links: \(names.joined(separator: ", ")))")
            }
            guard backByName[name] == nil else {
                throw LinkSpecificationError(context: "--link-back \(name)", message: "given twice")
            }
            backByName[name] = b
        }
        return zip(links, names).map { link, name in
            let down = backByName[name] ?? link
            return PathLinks(
                name: name, up: link.model(perPacketOverhead: LinkModel.ipv4UDPOverhead),
                down: down.model(perPacketOverhead: LinkModel.ipv4UDPOverhead), isBackup: link.isBackup)
        }
    }
}

extension Scenario {
    /// A scenario made of `--link` specifications (see `LinkSpecification.paths`).
    /// - Parameter duration: nil: 10 s, or 5 s past the last outage edge or rate change if later.
    public static func fromLinks(
        _ links: [LinkSpecification], back: [LinkSpecification] = [],
        duration: Duration? = nil
    ) throws -> Scenario {
        guard !links.isEmpty else { throw LinkSpecificationError(context: "--link", message: "give at least one link") }
        let paths = try LinkSpecification.paths(links: links, back: back)
        var events: [ScenarioEvent] = []
        var last = Timestamp.zero
        for (i, p) in paths.enumerated() {
            for o in p.up.outages {
                events.append(.outage(path: i, o))
                last = max(last, o.isPermanent ? o.start : o.end)
            }
            for c in p.up.rateChanges {
                events.append(.rateChange(path: i, c))
                last = max(last, c.time)
            }
            for o in p.down.outages { last = max(last, o.isPermanent ? o.start : o.end) }
            for c in p.down.rateChanges { last = max(last, c.time) }
        }
        let run = duration ?? max(.seconds(10), (last - .zero) + .seconds(5))
        return Scenario(
            name: "links", summary: links.map(\.description).joined(separator: " "),
            duration: run, paths: paths, events: events, eventsInModels: true)
    }
}

extension LinkModel {
    /// The model with `bytes` taken off `overheadBytes` (back from a simulator path's model to
    /// what its specification said).
    public func withoutOverhead(_ bytes: Int) -> LinkModel {
        var m = self
        m.overheadBytes = max(0, m.overheadBytes - bytes)
        return m
    }
}
