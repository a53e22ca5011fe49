// One connection's TLS 1.3 handshake through BoringSSL's QUIC API (RFC 9001 §4): CRYPTO frame
// bytes go in with `provide`, and BoringSSL hands back handshake bytes per encryption level and
// the traffic secrets, which the connection turns into packet protection keys.
import CNIOBoringSSL

/// RFC 9001 §4.1.4: encryption levels, numbered like BoringSSL's `ssl_encryption_level_t`.
public enum EncryptionLevel: Int, Sendable, CaseIterable {
    case initial = 0
    case earlyData = 1
    case handshake = 2
    case application = 3

    var boring: ssl_encryption_level_t { ssl_encryption_level_t(rawValue: UInt32(rawValue)) }

    public var space: PacketNumberSpaceID {
        switch self {
        case .initial: return .initial
        case .handshake: return .handshake
        case .earlyData, .application: return .applicationData
        }
    }
}

public final class TLSSession {
    /// A secret BoringSSL installed, to become packet keys.
    struct Secret {
        var level: EncryptionLevel
        var isWrite: Bool
        var suite: CipherSuite
        var secret: [UInt8]
    }

    let context: TLSContext
    let ssl: OpaquePointer
    var isServer: Bool { context.isServer }

    // Filled by BoringSSL's callbacks, drained by the connection.
    var newSecrets: [Secret] = []
    var outgoingHandshakeData: [(level: EncryptionLevel, data: [UInt8])] = []
    var alert: UInt8?
    var receivedSessionTickets: [[UInt8]] = []

    public private(set) var handshakeComplete = false

    private static let exDataIndex: Int32 = SSL_get_ex_new_index(0, nil, nil, nil, nil)

    static func from(_ ssl: OpaquePointer?) -> TLSSession? {
        guard let ssl, let p = SSL_get_ex_data(ssl, exDataIndex) else { return nil }
        return Unmanaged<TLSSession>.fromOpaque(p).takeUnretainedValue()
    }

    /// - Parameters:
    ///   - transportParameters: our encoded transport parameters (RFC 9001 §8.2).
    ///   - serverName: client only: SNI and the name the certificate must match.
    ///   - session: client only: a serialized session from an earlier connection, for resumption.
    init(
        context: TLSContext, transportParameters: [UInt8], serverName: String?, session: [UInt8]?,
        earlyDataContext: [UInt8]
    ) throws {
        self.context = context
        guard let ssl = SSL_new(context.ctx) else { throw TLSConfigurationError("SSL_new") }
        self.ssl = ssl
        SSL_set_ex_data(ssl, TLSSession.exDataIndex, Unmanaged.passUnretained(self).toOpaque())
        guard SSL_set_quic_method(ssl, quicMethod) == 1 else { throw TLSConfigurationError("SSL_set_quic_method") }
        // RFC 9001 §8.2: quic_transport_parameters extension, codepoint 0x39 (not the draft one).
        SSL_set_quic_use_legacy_codepoint(ssl, 0)
        let ok = transportParameters.withUnsafeBufferPointer { SSL_set_quic_transport_params(ssl, $0.baseAddress, $0.count) }
        guard ok == 1 else { throw TLSConfigurationError("SSL_set_quic_transport_params") }
        if context.isServer {
            SSL_set_accept_state(ssl)
            if context.configuration.enableEarlyData {
                // RFC 9001 §4.6.1: 0-RTT is only accepted when the context (our transport
                // parameters and application settings) matches the ticket's.
                _ = earlyDataContext.withUnsafeBufferPointer { SSL_set_quic_early_data_context(ssl, $0.baseAddress, $0.count) }
            }
        } else {
            SSL_set_connect_state(ssl)
            if let serverName {
                let isIPLiteral = SocketAddress.parseIP(serverName) != nil && serverName != "localhost"
                if isIPLiteral {
                    // RFC 6066 §3: SNI carries host names only; check the certificate's IP SAN instead.
                    if case .caFile = context.configuration.verification {
                        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName)
                    }
                } else {
                    SSL_set_tlsext_host_name(ssl, serverName)
                    if case .caFile = context.configuration.verification { SSL_set1_host(ssl, serverName) }
                }
            }
            _ = context.alpnWire.withUnsafeBufferPointer { SSL_set_alpn_protos(ssl, $0.baseAddress, $0.count) }
            if let session {
                let s = session.withUnsafeBufferPointer { SSL_SESSION_from_bytes($0.baseAddress, $0.count, context.ctx) }
                if let s {
                    SSL_set_session(ssl, s)
                    SSL_SESSION_free(s)
                }
            }
        }
    }

    deinit { SSL_free(ssl) }

    /// Feeds CRYPTO frame bytes received at `level` (in order).
    func provide(level: EncryptionLevel, data: ArraySlice<UInt8>) throws {
        let ok = data.withUnsafeBufferPointer { SSL_provide_quic_data(ssl, level.boring, $0.baseAddress, $0.count) }
        guard ok == 1 else { throw handshakeError() }
    }

    /// Runs the handshake (or post-handshake processing) as far as the input allows.
    func advance() throws {
        if !handshakeComplete {
            let rc = SSL_do_handshake(ssl)
            if rc == 1 {
                // A client sending 0-RTT gets 1 back while still in early data (RFC 9001 §4.6.1);
                // the handshake goes on when the server's flight arrives.
                if SSL_in_early_data(ssl) == 1 { return }
                handshakeComplete = true
            } else {
                let err = SSL_get_error(ssl, rc)
                if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE { return }
                if err == SSL_ERROR_EARLY_DATA_REJECTED {
                    // RFC 9001 §4.6.2: the client discards 0-RTT state and continues the handshake.
                    SSL_reset_early_data_reject(ssl)
                    earlyDataRejected = true
                    return try advance()
                }
                throw handshakeError()
            }
        }
        if handshakeComplete {
            // RFC 9001 §4.1.3: post-handshake messages (NewSessionTicket).
            guard SSL_process_quic_post_handshake(ssl) == 1 else { throw handshakeError() }
        }
    }

    public private(set) var earlyDataRejected = false

    private func handshakeError() -> TransportError {
        var detail = ""
        let code = ERR_get_error()
        if code != 0 {
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            detail = String(cString: buf)
        }
        ERR_clear_error()
        // RFC 9001 §4.8: TLS alerts become CRYPTO_ERROR 0x100 + alert.
        let alertCode = alert ?? 80  // internal_error
        return TransportError(.cryptoError(alert: alertCode), frameType: FrameType.crypto, "TLS handshake failed: \(detail)")
    }

    var peerTransportParameters: [UInt8]? {
        var p: UnsafePointer<UInt8>? = nil
        var len = 0
        SSL_get_peer_quic_transport_params(ssl, &p, &len)
        guard let p, len > 0 else { return nil }
        return Array(UnsafeBufferPointer(start: p, count: len))
    }

    public var negotiatedALPN: String? {
        var p: UnsafePointer<UInt8>? = nil
        var len: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &len)
        guard let p, len > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(len)), as: UTF8.self)
    }

    public var isResumed: Bool { SSL_session_reused(ssl) == 1 }
    /// SHA-256 of the peer certificate's SubjectPublicKeyInfo (nil before it arrived).
    var peerPublicKeySHA256: [UInt8]? { QUIC.peerPublicKeySHA256(ssl) }
    public var earlyDataAccepted: Bool { SSL_early_data_accepted(ssl) == 1 }

    public var cipherSuite: CipherSuite? {
        guard let c = SSL_get_current_cipher(ssl) else { return nil }
        return CipherSuite(rawValue: UInt16(truncatingIfNeeded: SSL_CIPHER_get_protocol_id(c)))
    }
}

// MARK: - SSL_QUIC_METHOD

private func suite(_ cipher: OpaquePointer?) -> CipherSuite? {
    guard let cipher else { return nil }
    return CipherSuite(rawValue: UInt16(truncatingIfNeeded: SSL_CIPHER_get_protocol_id(cipher)))
}

private let quicMethod: UnsafeMutablePointer<SSL_QUIC_METHOD> = {
    let m = UnsafeMutablePointer<SSL_QUIC_METHOD>.allocate(capacity: 1)
    m.initialize(
        to: SSL_QUIC_METHOD(
            set_read_secret: { ssl, level, cipher, secret, len in
                guard let s = TLSSession.from(ssl), let cs = suite(cipher), let secret,
                    let lvl = EncryptionLevel(rawValue: Int(level.rawValue))
                else { return 0 }
                s.newSecrets.append(
                    .init(level: lvl, isWrite: false, suite: cs, secret: Array(UnsafeBufferPointer(start: secret, count: len))))
                return 1
            },
            set_write_secret: { ssl, level, cipher, secret, len in
                guard let s = TLSSession.from(ssl), let cs = suite(cipher), let secret,
                    let lvl = EncryptionLevel(rawValue: Int(level.rawValue))
                else { return 0 }
                s.newSecrets.append(
                    .init(level: lvl, isWrite: true, suite: cs, secret: Array(UnsafeBufferPointer(start: secret, count: len))))
                return 1
            },
            add_handshake_data: { ssl, level, data, len in
                guard let s = TLSSession.from(ssl), let lvl = EncryptionLevel(rawValue: Int(level.rawValue)) else { return 0 }
                s.outgoingHandshakeData.append((lvl, Array(UnsafeBufferPointer(start: data, count: len))))
                return 1
            },
            flush_flight: { _ in 1 },
            send_alert: { ssl, _, alert in
                TLSSession.from(ssl)?.alert = alert
                return 1
            }
        ))
    return m
}()
