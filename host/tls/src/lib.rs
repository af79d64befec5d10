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
pub mod upstream;

pub use ca::{CaError, CertificateAuthority};
pub use server::server_config;
pub use upstream::{Upstream, UpstreamTrust};

use std::sync::Arc;

/// ALPN protocol ids witm speaks on either side.
pub const ALPN_H2: &[u8] = b"h2";
/// See [`ALPN_H2`].
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The crypto provider used everywhere (one provider for rustls and rcgen).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Made once: every connection's configuration shares it.
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
