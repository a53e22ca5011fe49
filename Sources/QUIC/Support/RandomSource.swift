// Randomness is injected: the core asks a `RandomSource` for bytes (connection IDs, PATH_CHALLENGE
// data, packet number skips, loss in simulations). Tests use `SeededRandom` for exact repeatability;
// the executables pass a cryptographically secure source.

public protocol RandomSource: AnyObject {
    func fill(_ buffer: UnsafeMutableRawBufferPointer)
}

extension RandomSource {
    public func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    public func nextUInt64() -> UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { fill($0) }
        return v
    }

    /// Uniform in 0..<bound.
    public func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        return nextUInt64() % bound
    }

    /// Uniform in [0, 1).
    public func nextUnit() -> Double { Double(nextUInt64() >> 11) / Double(1 << 53) }
}

/// xoshiro256** seeded through splitmix64: deterministic, fast, not for cryptographic use.
public final class SeededRandom: RandomSource {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9e37_79b9_7f4a_7c15
            var z = x
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var i = 0
        while i < buffer.count {
            var v = next()
            withUnsafeBytes(of: &v) { b in
                for k in 0..<min(8, buffer.count - i) { buffer[i + k] = b[k] }
            }
            i += 8
        }
    }
}
