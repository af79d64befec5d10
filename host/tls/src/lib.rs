//! witm's TLS side: the certificate authority that signs a certificate for
//! every intercepted host, and the rustls configurations for both ends.
//!
//! Layout:
//! - [`ca`]: load or create the CA under the config folder; `witm ca` help text;
//! - [`leaf`]: leaf certificates per host name, minted on demand and cached;
//! - [`upstream`]: how witm verifies servers (webpki and system roots, extra
//!   CAs, or not at all with `--ssl-insecure`);
//!
//! The CA's private key stays inside [`ca::CertificateAuthority`]: nothing
//! here hands it out, so it cannot reach a plugin, a log or a flow file.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ca;
pub mod leaf;
pub mod upstream;

pub use ca::{CaError, CertificateAuthority};
pub use upstream::{Upstream, UpstreamTrust};

use std::sync::Arc;

/// ALPN protocol ids witm speaks on either side.
pub const ALPN_H2: &[u8] = b"h2";
/// See [`ALPN_H2`].
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The client-facing TLS config for one intercepted connection: our leaf
/// for the host, and the one ALPN protocol the server agreed to (so client
/// and server speak the same HTTP version), if any.
pub fn server_config(
    leaf: Arc<rustls::sign::CertifiedKey>,
    alpn: Option<Vec<u8>>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(leaf)));
    config.alpn_protocols = alpn.into_iter().collect();
    Ok(Arc::new(config))
}

/// Always the same certificate: the one minted for this connection's host.
#[derive(Debug)]
struct FixedCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The crypto provider used everywhere (one provider for rustls and rcgen).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
