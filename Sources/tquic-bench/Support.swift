import CAllocationCounter

// Small helpers for tquic-bench: a monotonic wall clock, allocation counter snapshots, an
// optimisation barrier, number formatting and a minimal JSON writer (no Foundation, so the
// benchmark itself pulls in as little as possible).
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Monotonic wall-clock time in nanoseconds (CLOCK_MONOTONIC).
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// CPU time consumed by the calling thread, in nanoseconds (CLOCK_THREAD_CPUTIME_ID). Unlike the
/// wall clock it does not advance while the thread waits for a core, so figures stay meaningful
/// on a loaded machine (caches and frequency are still shared).
@inline(__always)
func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// 1-minute load average (nil if unavailable).
func loadAverage() -> Double? {
    var l = [Double](repeating: 0, count: 3)
    return getloadavg(&l, 3) >= 1 ? l[0] : nil
}

/// Keeps the optimiser from discarding a computed value.
@inline(never)
func blackHole<T>(_ x: T) {
    withExtendedLifetime(x) {}
}

/// Heap allocation counters read from the interposed malloc family (CAllocationCounter).
struct AllocationSnapshot {
    var allocations: UInt64
    var frees: UInt64
    var bytes: UInt64

    static var supported: Bool { tquic_allocation_counter_supported() != 0 }

    @inline(__always)
    static func now() -> AllocationSnapshot {
        AllocationSnapshot(allocations: tquic_allocation_count(), frees: tquic_free_count(), bytes: tquic_allocated_bytes())
    }

    static func - (a: AllocationSnapshot, b: AllocationSnapshot) -> AllocationSnapshot {
        AllocationSnapshot(allocations: a.allocations &- b.allocations, frees: a.frees &- b.frees, bytes: a.bytes &- b.bytes)
    }

    /// Checks that interposition really works: an array of fresh storage must be counted.
    static func selfTest() -> Bool {
        guard supported else { return false }
        let before = tquic_allocation_count()
        let a = [UInt8](repeating: 1, count: Int(before % 7) + 4096)
        blackHole(a)
        return tquic_allocation_count() > before
    }
}

// MARK: - Formatting

/// Fixed-point decimal rendering (no Foundation `String(format:)`).
func fmt(_ x: Double, _ decimals: Int = 2) -> String {
    guard x.isFinite else { return x.isNaN ? "n/a" : (x > 0 ? "inf" : "-inf") }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = x < 0
    let scaled = (abs(x) * scale).rounded()
    guard scaled < 9.0e18 else { return String(x) }
    let n = UInt64(scaled)
    let s = UInt64(scale)
    var out = String(n / s)
    if decimals > 0 {
        var frac = String(n % s)
        while frac.count < decimals { frac = "0" + frac }
        out += "." + frac
    }
    return negative && n != 0 ? "-" + out : out
}

/// Integer with thousands separators.
func grouped<T: BinaryInteger>(_ v: T) -> String {
    let s = String(v.magnitude)
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return v < 0 ? "-" + out : out
}

func pad(_ s: String, _ width: Int, right: Bool = true) -> String {
    guard s.count < width else { return s }
    let fill = String(repeating: " ", count: width - s.count)
    return right ? fill + s : s + fill
}

// MARK: - JSON

/// A JSON value with object keys kept in insertion order.
indirect enum JSON {
    /// A number already rendered as JSON text.
    case number(String)
    case integer(Int64)
    case string(String)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    static func num(_ x: Double, _ decimals: Int = 3) -> JSON { x.isFinite ? .number(fmt(x, decimals)) : .null }
    static func int<T: BinaryInteger>(_ v: T) -> JSON { .integer(Int64(v)) }

    func render(indent: Int = 0, pretty: Bool = false) -> String {
        let nl = pretty ? "\n" : ""
        let ind = pretty ? String(repeating: "  ", count: indent + 1) : ""
        let indEnd = pretty ? String(repeating: "  ", count: indent) : ""
        let sep = pretty ? ": " : ":"
        switch self {
        case .number(let text): return text
        case .integer(let v): return String(v)
        case .string(let s): return JSON.quote(s)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[" + nl + items.map { ind + $0.render(indent: indent + 1, pretty: pretty) }.joined(separator: "," + nl) + nl + indEnd
                + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            return "{" + nl
                + fields.map { ind + JSON.quote($0.0) + sep + $0.1.render(indent: indent + 1, pretty: pretty) }
                .joined(separator: "," + nl) + nl + indEnd + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
