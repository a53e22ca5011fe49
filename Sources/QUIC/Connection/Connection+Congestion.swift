// Runtime selection of congestion control (the daemon's `congestion =` and `coupling =` settings):
// per connection, per path, and the coupled group the loss-based controllers share.
import Congestion

extension Connection {
    static func makeCoupling(_ algorithm: CouplingAlgorithm) -> CongestionCoupling? {
        algorithm == .none ? nil : CongestionCoupling(algorithm: algorithm)
    }

    /// A fresh controller for a path; loss-based ones join the coupled group if there is one.
    static func makeController(
        _ algorithm: CongestionAlgorithm, maxDatagramSize: Int,
        coupling: CongestionCoupling?, random: RandomSource
    ) -> CongestionController {
        let member = algorithm.isLossBased ? coupling?.join() : nil
        return algorithm.makeController(maxDatagramSize: maxDatagramSize, coupling: member, randomSeed: random.nextUInt64())
    }

    func makeController(_ algorithm: CongestionAlgorithm, maxDatagramSize: Int) -> CongestionController {
        Connection.makeController(algorithm, maxDatagramSize: maxDatagramSize, coupling: congestionCoupling, random: random)
    }

    /// The datagram size a path's controller counts with: the path's own with path MTU
    /// discovery, else `maxUDPPayloadSize` (as before discovery existed).
    func controllerDatagramSize(_ pathMTU: Int) -> Int {
        config.pmtuDiscovery ? pathMTU : config.maxUDPPayloadSize
    }

    /// The coupling the paths currently use.
    public var coupling: CouplingAlgorithm { congestionCoupling?.algorithm ?? .none }

    /// Switches one path to another controller. The new controller starts from its initial
    /// window: the old one's state means nothing to a different algorithm.
    public func setCongestionControl(_ algorithm: CongestionAlgorithm, onPath id: UInt32) throws(PathError) {
        guard let p = paths[id] else { throw .noSuchPath(id) }
        replaceController(of: p, with: algorithm)
    }

    /// Switches every path (and paths opened later) to `algorithm` and `coupling`.
    public func setCongestionControl(_ algorithm: CongestionAlgorithm, coupling: CouplingAlgorithm) {
        congestionDefault = algorithm
        if coupling != self.coupling { congestionCoupling = Connection.makeCoupling(coupling) }
        for p in paths.values { replaceController(of: p, with: algorithm) }
    }

    private func replaceController(of p: Path, with algorithm: CongestionAlgorithm) {
        leaveCoupling(p.congestion)
        p.congestion = makeController(algorithm, maxDatagramSize: controllerDatagramSize(p.maxDatagramSize))
        p.congestionAlgorithm = algorithm
    }

    /// A closed path's controller stops counting in the coupled group.
    func leaveCoupling(_ controller: CongestionController) {
        (controller as? CoupledController)?.coupling?.leave()
    }
}

/// Loss-based controllers that may belong to a coupled group.
public protocol CoupledController: CongestionController {
    var coupling: CouplingMember? { get }
}

extension NewReno: CoupledController {}
extension Cubic: CoupledController {}
extension Westwood: CoupledController {}
