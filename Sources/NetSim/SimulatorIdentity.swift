// The simulator's own throwaway TLS identity (self-signed, used only between simulated
// endpoints in one process; the private key is public on purpose).
enum SimulatorIdentity {
    static let certificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIBfzCCASWgAwIBAgIUX7t2HqxKa6Ev3BPaYJzRswhohJowCgYIKoZIzj0EAwIw
        FDESMBAGA1UEAwwJdHF1aWMtc2ltMCAXDTI2MTEyNTA4MzQ0OFoYDzIxMjYxMTAx
        MDgzNDQ4WjAUMRIwEAYDVQQDDAl0cXVpYy1zaW0wWTATBgcqhkjOPQIBBggqhkjO
        PQMBBwNCAAQ1zDdGeeM2w61O7MaSmBIbomYVJKBJNKE4FWs+kbVzevHT12Z19JoD
        wd6QFT31HFdhACb7l5ODvy0hhPviB3Mro1MwUTAdBgNVHQ4EFgQUvdzLsJUXCUdJ
        3WsMFM8PsBIE6IwwHwYDVR0jBBgwFoAUvdzLsJUXCUdJ3WsMFM8PsBIE6IwwDwYD
        VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBfH4zF+kMpTYstsz+wbeGF
        h8I+b5xNsKx5ZpCj3UCV+gIhAOY6HdlbccrjSrsqxxyA0BVGx+QVkICoHGpE/jCE
        JZ8Z
        -----END CERTIFICATE-----
        """
    static let privateKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwgEQbzG0RDKaHC1i
        VvbhNT9btuVTZb7t03wy1aZEwNOhRANCAAQ1zDdGeeM2w61O7MaSmBIbomYVJKBJ
        NKE4FWs+kbVzevHT12Z19JoDwd6QFT31HFdhACb7l5ODvy0hhPviB3Mr
        -----END PRIVATE KEY-----
        """
}
