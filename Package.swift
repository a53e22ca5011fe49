// swift-tools-version:6.1
// TQUIC: WAN bonding over one multipath QUIC connection. See README.md and DESIGN.md.
import PackageDescription

// Release builds of the per-packet modules skip Swift's dynamic exclusivity checks: they were
// 29 % of the instructions of the in-memory DATAGRAM transfer (swift_beginAccess on every class
// property touched per packet; scripts/bench.sh section 2, callgrind). Each connection is owned
// by one thread, and the static checks and the debug builds (where the tests run) keep the
// dynamic ones, so a violation is still caught there.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "tquic",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "QUIC", targets: ["QUIC"]),
        .library(name: "Congestion", targets: ["Congestion"]),
        .library(name: "LinuxNet", targets: ["LinuxNet"]),
        .library(name: "NetSim", targets: ["NetSim"]),
        .library(name: "Tunnel", targets: ["Tunnel"]),
        .executable(name: "tquic-peer", targets: ["tquic-peer"]),
        .executable(name: "tquic-bench", targets: ["tquic-bench"]),
        .executable(name: "tquic-sim", targets: ["tquic-sim"]),
        .executable(name: "tquic-netem", targets: ["tquic-netem"]),
        .executable(name: "tquicd", targets: ["tquicd"]),
        .executable(name: "tquicctl", targets: ["tquicctl"]),
    ],
    dependencies: [
        // BoringSSL (vendored by swift-nio-ssl as CNIOBoringSSL): TLS 1.3 QUIC API, AEADs, HKDF.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        // tquicd's /metrics and dashboard: an HTTP/1.1 server (NIOHTTP1) and the Prometheus text
        // format (swift-prometheus, on swift-metrics).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.65.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Pure congestion controllers: no clock, no I/O.
        .target(name: "Congestion", swiftSettings: hotPathSettings + [
            // The QUIC module calls the pacer, the delivery-rate estimator and the time types per
            // packet: let it inline them.
            .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
        ]),
        // Sans-I/O QUIC transport.
        .target(
            name: "QUIC",
            dependencies: [
                "Congestion",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: hotPathSettings
        ),
        // What Swift's Glibc module does not import: recvmmsg/sendmmsg/ppoll/setns (_GNU_SOURCE
        // only) and the TUNSETIFF ioctl (variadic).
        .target(name: "CLinuxNet"),
        // libmnl and the rtnetlink headers (rtnetlink requests and events for LinuxNet).
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        // libnftables: the tables tquicd owns (forwarding, masquerade, MSS clamp).
        .systemLibrary(name: "CNftables", pkgConfig: "libnftables", providers: [.apt(["libnftables-dev"])]),
        // libsystemd: sd_notify for Type=notify units.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // Linux platform layer: sockets (batched, GSO/GRO, ECN), clock, randomness, TUN device,
        // rtnetlink, nftables, sysctl, sd_notify, epoll loop, signals, the control socket.
        .target(name: "LinuxNet", dependencies: ["QUIC", "Congestion", "CLinuxNet", "CMnl", "CNftables", "CSystemd"]),
        .testTarget(name: "LinuxNetTests", dependencies: ["LinuxNet", "QUIC", "CMnl", "CLinuxNet"]),
        // QUIC interop endpoint: sockets + clock around the sans-I/O core.
        .executableTarget(
            name: "tquic-peer",
            dependencies: [
                "QUIC",
                "Congestion",
                "LinuxNet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Counts heap allocations for tquic-bench by interposing malloc/free (glibc).
        .target(name: "CAllocationCounter"),
        .executableTarget(
            name: "tquic-bench",
            dependencies: ["QUIC", "Congestion", "Tunnel", "CAllocationCounter"]
        ),
        .testTarget(name: "QUICTests", dependencies: ["QUIC"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CongestionTests", dependencies: ["Congestion"]),
        // Deterministic discrete-event network simulator (links, scenarios) for bonding studies.
        // Bonding: tunnel framing, path schedulers, reorder buffer, reinjection (pure).
        .target(name: "Bonding", dependencies: ["Congestion"], swiftSettings: hotPathSettings),
        .testTarget(name: "BondingTests", dependencies: ["Bonding", "Congestion"]),
        // The tunnel engine (sans-I/O): sender, receiver, path health over QUIC and Bonding; driven
        // by tquicd and by NetSim alike.
        .target(name: "Tunnel", dependencies: ["QUIC", "Bonding", "Congestion"], swiftSettings: hotPathSettings),
        .testTarget(name: "TunnelTests", dependencies: ["Tunnel", "NetSim", "QUIC", "Bonding", "Congestion"]),
        .target(name: "NetSim", dependencies: ["Congestion", "QUIC", "Bonding", "Tunnel"]),
        .executableTarget(name: "tquic-sim", dependencies: ["NetSim", "Bonding", "Congestion",
                                                            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "NetSimTests", dependencies: ["NetSim", "Congestion", "QUIC"]),
        // The lab's WAN link emulator: NetSim's link model (EmulatedLink) between two interfaces
        // bridged with AF_PACKET sockets (LinuxNet).
        .executableTarget(name: "tquic-netem", dependencies: ["NetSim", "Congestion", "LinuxNet",
                                                              .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: hotPathSettings),
        // tquicd's parts: /etc/tquic.conf, the router and VPS roles around the Tunnel engine, the
        // path manager, the control socket. Swift 6 mode: it runs threads.
        .target(
            name: "TQUICDaemon",
            dependencies: ["QUIC", "Congestion", "Bonding", "Tunnel", "LinuxNet",
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(name: "tquicd", dependencies: ["TQUICDaemon", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "tquicctl", dependencies: ["QUIC", "LinuxNet", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: [.swiftLanguageMode(.v6)]),
        .testTarget(name: "TQUICDaemonTests", dependencies: ["TQUICDaemon", "QUIC", "Bonding", "Congestion", "Tunnel"]),
    ],
    swiftLanguageModes: [.v5]
)
