// libFuzzer harness for transport parameters. Built by scripts/fuzz.sh together with the pure wire
// sources (one module, so no import); never part of the SwiftPM test target.
//
// Decodes the input as sent by a client and as sent by a server. A rejection must be a
// TRANSPORT_PARAMETER_ERROR; an accepted set must survive encode → decode unchanged, with and
// without a GREASE parameter. Any violation crashes via fatalError.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for sentByServer in [false, true] {
        let params: TransportParameters
        do {
            params = try TransportParameters.decode(bytes, isServer: sentByServer)
        } catch let error as TransportError {
            guard error.code == .transportParameterError else { fatalError("decode threw unexpected \(error)") }
            continue
        } catch {
            fatalError("decode threw a non-TransportError: \(error)")
        }
        for grease in [false, true] {
            do {
                let again = try TransportParameters.decode(params.encode(grease: grease), isServer: sentByServer)
                guard again == params else { fatalError("decode(encode(p)) != p (grease \(grease)): \(params) became \(again)") }
            } catch {
                fatalError("re-encoded parameters failed to decode (grease \(grease)): \(error)")
            }
        }
    }
    return 0
}
