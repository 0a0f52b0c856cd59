//! Which cipher suite the gate picks when a client offers several.
//!
//! rustls takes the client's order by default, and rustls' and OpenSSL's clients both put
//! TLS_AES_256_GCM_SHA384 first. Its SHA-384 key schedule (a dozen HMACs per handshake) was
//! the largest single cost of a resumed STARTTLS session in the gate's profile: ring runs
//! SHA-512 without SIMD on AMD processors, while SHA-256 uses the SHA extensions that both
//! AMD and Intel server processors have. So the gate chooses, preferring AES-128-GCM with
//! SHA-256 (TLS 1.3's mandatory suite; 128-bit security, and fewer AES rounds per record),
//! then AES-256-GCM, then ChaCha20-Poly1305 (fastest only where AES has no hardware support,
//! which no server processor of the last decade lacks). Every suite rustls offers stays
//! available; only the order changes.

use rustls::crypto::CryptoProvider;
use rustls::CipherSuite;

/// The gate's order, most preferred first; suites not listed keep their place after these.
const ORDER: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

/// ring's provider with its cipher suites in the gate's order (used with
/// `ignore_client_order`).
pub(super) fn server_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    let rank = |s: &rustls::SupportedCipherSuite| {
        ORDER
            .iter()
            .position(|c| *c == s.suite())
            .unwrap_or(ORDER.len())
    };
    provider.cipher_suites.sort_by_key(rank);
    provider
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_sha256_comes_first_and_no_suite_is_lost() {
        let default = rustls::crypto::ring::default_provider().cipher_suites;
        let ours = server_provider().cipher_suites;
        assert_eq!(ours[0].suite(), CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(ours.len(), default.len());
        for s in &default {
            assert!(
                ours.iter().any(|o| o.suite() == s.suite()),
                "{:?}",
                s.suite()
            );
        }
    }
}
