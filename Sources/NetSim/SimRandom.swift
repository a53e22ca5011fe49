// The simulator's only source of randomness: xoshiro256** seeded through splitmix64, so a run is a
// pure function of its seed. Every link owns separate streams (loss, burst, jitter) derived from the
// simulator seed, so switching one feature on never shifts the random draws of another.

/// A small, fast, seedable pseudo-random generator (xoshiro256**, Blackman & Vigna).
///
/// Not cryptographic. The same seed gives the same sequence on every platform and every run.
public struct SimRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// Seeds the four state words from `seed` through splitmix64, as the xoshiro authors advise.
    public init(seed: UInt64) {
        var x = seed
        s0 = SimRandom.splitmix64(&x)
        s1 = SimRandom.splitmix64(&x)
        s2 = SimRandom.splitmix64(&x)
        s3 = SimRandom.splitmix64(&x)
    }

    /// One step of splitmix64: advances `state` and returns a well-mixed 64-bit value.
    public static func splitmix64(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Derives an independent seed from a parent seed and a label (a path index, a stream number).
    public static func derive(_ seed: UInt64, _ label: UInt64) -> UInt64 {
        var x = seed ^ (label &* 0xD1B5_4A32_D192_ED03)
        _ = splitmix64(&x)
        return splitmix64(&x)
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    /// A uniform `Double` in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// True with probability `p` (always draws exactly one value, so streams stay aligned per packet).
    public mutating func chance(_ p: Double) -> Bool {
        nextUnit() < p
    }

    /// A uniform integer in 0...bound (inclusive), without modulo bias.
    public mutating func nextInclusive(_ bound: UInt64) -> UInt64 {
        if bound == .max { return next() }
        return next(upperBound: bound + 1)
    }

    /// A new generator whose seed is drawn from this one.
    public mutating func fork() -> SimRandom {
        SimRandom(seed: next())
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}
