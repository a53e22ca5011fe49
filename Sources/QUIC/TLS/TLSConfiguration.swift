// What a QUIC endpoint needs from TLS 1.3 (RFC 9001 §4): certificates, ALPN, peer verification,
// cipher suites, session resumption and 0-RTT. `TLSContext` turns it into a BoringSSL SSL_CTX
// shared by all connections of an endpoint.
import CNIOBoringSSL

public struct TLSConfiguration: Sendable {
    public enum PeerVerification: Sendable {
        /// Accept any certificate (tests and `--insecure`).
        case none
        /// Verify the chain against the PEM CA file and the server name.
        case caFile(String)
        /// Accept a certificate whose SubjectPublicKeyInfo SHA-256 is one of these (32 bytes each).
        case pinnedPublicKeySHA256([[UInt8]])
        /// Accept a certificate whose SubjectPublicKeyInfo SHA-256 this function accepts (the
        /// VPS's tenant table, which a reload may change while connections come and go).
        case pinnedBy(@Sendable ([UInt8]) -> Bool)
    }

    /// ALPN protocols, in preference order (RFC 9001 §8.1: required).
    public var alpnProtocols: [String]
    public var certificateChainFile: String?
    public var privateKeyFile: String?
    /// The same as PEM text, for callers without files (the simulator).
    public var certificateChainPEM: String?
    public var privateKeyPEM: String?
    /// The client verifies the server with it; a server with anything but `.none` asks for a
    /// client certificate and refuses a client without one that passes (mutual TLS).
    public var verification: PeerVerification = .none
    /// A raw Ed25519 identity (TunnelKey.swift) used instead of certificate files: the context
    /// makes a self-signed certificate for it.
    public var identity: TunnelKey? = nil
    /// TLS 1.3 cipher suites to offer or accept; nil keeps BoringSSL's defaults.
    public var cipherSuites: [CipherSuite]? = nil
    /// Server: allow 0-RTT on resumed sessions. Client: send 0-RTT when a session allows it.
    public var enableEarlyData: Bool = false
    /// NSS key log lines (SSLKEYLOGFILE format) for Wireshark.
    public var keyLog: (@Sendable (String) -> Void)? = nil

    public init(alpnProtocols: [String]) {
        self.alpnProtocols = alpnProtocols
    }
}

extension TLSConfiguration.PeerVerification {
    var isPinned: Bool {
        switch self {
        case .pinnedPublicKeySHA256, .pinnedBy: return true
        case .none, .caFile: return false
        }
    }
}

public struct TLSConfigurationError: Error, CustomStringConvertible {
    public var description: String
    init(_ what: String) {
        var detail = ""
        let code = ERR_get_error()
        if code != 0 {
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            detail = ": " + String(cString: buf)
        }
        ERR_clear_error()
        description = what + detail
    }
}

/// An SSL_CTX configured for QUIC. One per endpoint; connections share it.
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let configuration: TLSConfiguration
    public let isServer: Bool
    /// ALPN list in wire format (length-prefixed strings).
    let alpnWire: [UInt8]

    public init(configuration: TLSConfiguration, isServer: Bool) throws {
        guard let ctx = SSL_CTX_new(TLS_method()) else { throw TLSConfigurationError("SSL_CTX_new") }
        self.ctx = ctx
        self.configuration = configuration
        self.isServer = isServer
        var wire: [UInt8] = []
        for p in configuration.alpnProtocols {
            let b = Array(p.utf8)
            guard !b.isEmpty, b.count < 256 else { throw TLSConfigurationError("invalid ALPN \(p)") }
            wire.append(UInt8(b.count))
            wire += b
        }
        alpnWire = wire
        // RFC 9001 §4.2: QUIC requires TLS 1.3 or later.
        SSL_CTX_set_min_proto_version(ctx, UInt16(TLS1_3_VERSION))
        SSL_CTX_set_max_proto_version(ctx, UInt16(TLS1_3_VERSION))
        if let suites = configuration.cipherSuites {
            let ids = suites.map { $0.rawValue }
            guard SSL_CTX_set1_tls13_ciphers(ctx, ids, nil, ids.count) == 1 else {
                throw TLSConfigurationError("cannot restrict TLS 1.3 cipher suites")
            }
        }
        if let chain = configuration.certificateChainFile {
            guard SSL_CTX_use_certificate_chain_file(ctx, chain) == 1 else {
                throw TLSConfigurationError("cannot load certificate chain \(chain)")
            }
        }
        if let key = configuration.privateKeyFile {
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
                throw TLSConfigurationError("cannot load private key \(key)")
            }
        }
        if let pem = configuration.certificateChainPEM {
            try TLSContext.useCertificateChain(pem: pem, ctx: ctx)
        }
        if let pem = configuration.privateKeyPEM {
            let bytes = Array(pem.utf8)
            let bio = bytes.withUnsafeBufferPointer { BIO_new_mem_buf($0.baseAddress, Int($0.count)) }
            defer { BIO_free(bio) }
            guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else { throw TLSConfigurationError("cannot parse private key PEM") }
            defer { EVP_PKEY_free(key) }
            guard SSL_CTX_use_PrivateKey(ctx, key) == 1 else { throw TLSConfigurationError("cannot use private key") }
        }
        if let identity = configuration.identity {
            let (certificate, key) = try identity.makeCertificate()
            defer {
                X509_free(certificate)
                EVP_PKEY_free(key)
            }
            guard SSL_CTX_use_certificate(ctx, certificate) == 1, SSL_CTX_use_PrivateKey(ctx, key) == 1 else {
                throw TLSConfigurationError("cannot use the tunnel key")
            }
        }
        if configuration.identity != nil || configuration.verification.isPinned {
            // BoringSSL leaves Ed25519 out of the signature algorithms it accepts unless asked;
            // tunnel keys are Ed25519, so both ends list it first (RFC 8446 §4.2.3).
            let prefs: [UInt16] = [
                UInt16(SSL_SIGN_ED25519), UInt16(SSL_SIGN_ECDSA_SECP256R1_SHA256), UInt16(SSL_SIGN_RSA_PSS_RSAE_SHA256),
                UInt16(SSL_SIGN_RSA_PKCS1_SHA256), UInt16(SSL_SIGN_ECDSA_SECP384R1_SHA384), UInt16(SSL_SIGN_RSA_PSS_RSAE_SHA384),
                UInt16(SSL_SIGN_RSA_PKCS1_SHA384), UInt16(SSL_SIGN_RSA_PSS_RSAE_SHA512), UInt16(SSL_SIGN_RSA_PKCS1_SHA512),
            ]
            guard SSL_CTX_set_verify_algorithm_prefs(ctx, prefs, prefs.count) == 1 else {
                throw TLSConfigurationError("cannot set signature algorithms")
            }
        }
        if isServer {
            guard configuration.certificateChainFile != nil || configuration.certificateChainPEM != nil || configuration.identity != nil
            else {
                throw TLSConfigurationError("a server needs a certificate")
            }
            SSL_CTX_set_alpn_select_cb(ctx, alpnSelectCallback, nil)
            SSL_CTX_set_early_data_enabled(ctx, configuration.enableEarlyData ? 1 : 0)
            switch configuration.verification {
            case .none: break
            case .caFile(let path):
                guard SSL_CTX_load_verify_locations(ctx, path, nil) == 1 else {
                    throw TLSConfigurationError("cannot load CA file \(path)")
                }
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
            case .pinnedPublicKeySHA256, .pinnedBy:
                SSL_CTX_set_custom_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, pinnedKeyVerifyCallback)
            }
        } else {
            // Client-side session cache: BoringSSL hands each ticket to the new-session callback.
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT)
            SSL_CTX_sess_set_new_cb(ctx, newSessionCallback)
            SSL_CTX_set_early_data_enabled(ctx, configuration.enableEarlyData ? 1 : 0)
            switch configuration.verification {
            case .none:
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            case .caFile(let path):
                guard SSL_CTX_load_verify_locations(ctx, path, nil) == 1 else {
                    throw TLSConfigurationError("cannot load CA file \(path)")
                }
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            case .pinnedPublicKeySHA256, .pinnedBy:
                SSL_CTX_set_custom_verify(ctx, SSL_VERIFY_PEER, pinnedKeyVerifyCallback)
            }
        }
        if configuration.keyLog != nil {
            SSL_CTX_set_keylog_callback(ctx, keyLogCallback)
        }
    }

    deinit { SSL_CTX_free(ctx) }

    private static func useCertificateChain(pem: String, ctx: OpaquePointer) throws {
        let bytes = Array(pem.utf8)
        let bio = bytes.withUnsafeBufferPointer { BIO_new_mem_buf($0.baseAddress, Int($0.count)) }
        defer { BIO_free(bio) }
        guard let leaf = PEM_read_bio_X509(bio, nil, nil, nil) else { throw TLSConfigurationError("cannot parse certificate PEM") }
        defer { X509_free(leaf) }
        guard SSL_CTX_use_certificate(ctx, leaf) == 1 else { throw TLSConfigurationError("cannot use certificate") }
        while let extra = PEM_read_bio_X509(bio, nil, nil, nil) {
            // SSL_CTX_add_extra_chain_cert takes ownership.
            guard SSL_CTX_add_extra_chain_cert(ctx, extra) == 1 else {
                X509_free(extra)
                throw TLSConfigurationError("cannot add chain certificate")
            }
        }
        ERR_clear_error()
    }
}

// MARK: - C callbacks (no captures: they find the Swift session through SSL ex_data)

private let alpnSelectCallback:
    @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
        UnsafeMutablePointer<UInt8>?, UnsafePointer<UInt8>?, UInt32,
        UnsafeMutableRawPointer?
    ) -> Int32 = { ssl, out, outLen, inp, inLen, _ in
        guard let session = TLSSession.from(ssl) else { return SSL_TLSEXT_ERR_ALERT_FATAL }
        let offered = Array(UnsafeBufferPointer(start: inp, count: Int(inLen)))
        // Server preference order: first of ours that the client offered.
        let ours = session.context.configuration.alpnProtocols
        var i = 0
        var offeredNames: [[UInt8]] = []
        while i < offered.count {
            let n = Int(offered[i])
            guard i + 1 + n <= offered.count else { break }
            offeredNames.append(Array(offered[(i + 1)..<(i + 1 + n)]))
            i += 1 + n
        }
        for p in ours {
            let b = Array(p.utf8)
            if let idx = offeredNames.firstIndex(of: b) {
                // Point into the client's buffer (BoringSSL copies it).
                var pos = 0
                for k in 0..<idx { pos += 1 + offeredNames[k].count }
                out?.pointee = inp! + pos + 1
                outLen?.pointee = UInt8(b.count)
                return SSL_TLSEXT_ERR_OK
            }
        }
        // RFC 9001 §8.1: no common protocol → no_application_protocol alert.
        return SSL_TLSEXT_ERR_ALERT_FATAL
    }

private let newSessionCallback: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32 = { ssl, session in
    guard let s = TLSSession.from(ssl), let session else { return 0 }
    var data: UnsafeMutablePointer<UInt8>? = nil
    var len = 0
    if SSL_SESSION_to_bytes(session, &data, &len) == 1, let data {
        s.receivedSessionTickets.append(Array(UnsafeBufferPointer(start: data, count: len)))
        OPENSSL_free(data)
    }
    return 0  // we did not take ownership of `session`
}

private let keyLogCallback: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Void = { ssl, line in
    guard let s = TLSSession.from(ssl), let line, let log = s.context.configuration.keyLog else { return }
    log(String(cString: line))
}

private let pinnedKeyVerifyCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?) -> ssl_verify_result_t = { ssl, alert in
    guard let s = TLSSession.from(ssl), let digest = peerPublicKeySHA256(ssl) else {
        alert?.pointee = UInt8(SSL_AD_BAD_CERTIFICATE)
        return ssl_verify_invalid
    }
    let accepted: Bool
    switch s.context.configuration.verification {
    case .pinnedPublicKeySHA256(let pins): accepted = pins.contains(digest)
    case .pinnedBy(let accepts): accepted = accepts(digest)
    case .none, .caFile: accepted = false
    }
    if accepted { return ssl_verify_ok }
    alert?.pointee = UInt8(SSL_AD_BAD_CERTIFICATE)
    return ssl_verify_invalid
}

/// SHA-256 of the SubjectPublicKeyInfo of the peer's leaf certificate (kept in a resumed
/// session too), nil without one.
func peerPublicKeySHA256(_ ssl: OpaquePointer?) -> [UInt8]? {
    guard let chain = SSL_get0_peer_certificates(ssl), sk_CRYPTO_BUFFER_num(chain) > 0,
        let leaf = sk_CRYPTO_BUFFER_value(chain, 0)
    else { return nil }
    let der = UnsafeBufferPointer(start: CRYPTO_BUFFER_data(leaf), count: CRYPTO_BUFFER_len(leaf))
    var p: UnsafePointer<UInt8>? = der.baseAddress
    guard let x509 = d2i_X509(nil, &p, der.count) else { return nil }
    defer { X509_free(x509) }
    var spki: UnsafeMutablePointer<UInt8>? = nil
    let spkiLen = i2d_PUBKEY(X509_get0_pubkey(x509), &spki)
    guard spkiLen > 0, let spki else { return nil }
    defer { OPENSSL_free(spki) }
    var digest = [UInt8](repeating: 0, count: 32)
    SHA256(spki, Int(spkiLen), &digest)
    return digest
}
