//! witm's TLS side: the certificate authority that signs a certificate for
//! every intercepted host, and the rustls configurations for both ends.
//!
//! Layout:
//! - [`ca`]: load or create the CA under the config folder; `witm ca` help text;
//! - [`leaf`]: leaf certificates per host name, minted on demand and cached;
//! - [`pkcs12`]: the CA certificate alone as a PKCS#12 file, for importers
//!   that take no PEM or DER;
//! - [`server`]: the client-facing configurations, sharing one session
//!   store so that clients resume their sessions;
//! - `session_store`: the bounded session store behind them, whose take
//!   does not scan;
//! - [`upstream`]: how witm verifies servers (webpki and system roots, extra
//!   CAs, or not at all with `--ssl-insecure`);
//!
//! The CA's private key stays inside [`ca::CertificateAuthority`]: nothing
//! here hands it out, so it cannot reach a plugin, a log or a flow file.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ca;
pub mod leaf;
pub mod pkcs12;
pub mod server;
mod session_store;
pub mod upstream;

pub use ca::{CaError, CertificateAuthority};
pub use server::server_config;
pub use upstream::{Upstream, UpstreamTrust};

use std::sync::Arc;

/// ALPN protocol ids witm speaks on either side.
pub const ALPN_H2: &[u8] = b"h2";
/// See [`ALPN_H2`].
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The crypto provider used everywhere (one provider for rustls and rcgen):
/// ring's, with the AES-128-GCM suites first.
///
/// ring's default order puts AES-256-GCM with SHA-384 first, and its
/// SHA-384 has no accelerated path on AMD processors: with a new HTTPS
/// connection per request, SHA-512 blocks were 7 % of witm's CPU (`perf
/// record`), where SHA-256 runs on the SHA extensions. AES-128-GCM is the
/// suite every TLS 1.3 peer must implement, and the one Go's TLS server
/// prefers on hardware with AES instructions. witm's servers choose by this
/// order ([`server`]); as a client it offers it, and servers that follow the
/// client's order (nginx's default) pick it too.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Made once: every connection's configuration shares it.
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = rustls::crypto::ring::default_provider();
            // A stable sort: the rest keep ring's order.
            provider
                .cipher_suites
                .sort_by_key(|suite| !is_aes_128_gcm(suite.suite()));
            Arc::new(provider)
        })
        .clone()
}

fn is_aes_128_gcm(suite: rustls::CipherSuite) -> bool {
    use rustls::CipherSuite::*;
    matches!(
        suite,
        TLS13_AES_128_GCM_SHA256
            | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    )
}
