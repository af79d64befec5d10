//! The client-facing TLS configurations, sharing one session store so
//! that clients can resume their sessions.
//!
//! A configuration made afresh for every tunnel has a session store of its
//! own, so no client ever resumes: each new connection pays a full
//! handshake (an ECDSA signature by witm, a certificate check by the
//! client). With one bounded store behind every configuration, a returning
//! client resumes as it would with the real server. Sharing the store is
//! safe here because rustls resumes a session only under the server name
//! it was made for, and the certificate is chosen by that same name. (The
//! configurations themselves are cheap to make beside a handshake; the
//! leaf they carry is what is cached, per host, in [`crate::leaf`].)

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::sign::CertifiedKey;

/// Sessions kept for resumption, for all hosts together (a few hundred
/// bytes each).
const SESSIONS: usize = 8192;

/// The client-facing configuration for one intercepted connection: our
/// leaf for the host, and the one ALPN protocol the server agreed to (so
/// client and server speak the same HTTP version), if any. Its session
/// store is its own; [`Sessions::config`] shares one.
pub fn server_config(
    leaf: Arc<CertifiedKey>,
    alpn: Option<Vec<u8>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    Ok(Arc::new(config(leaf, alpn)?))
}

fn config(leaf: Arc<CertifiedKey>, alpn: Option<Vec<u8>>) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(leaf)));
    config.alpn_protocols = alpn.into_iter().collect();
    Ok(config)
}

/// The one session store behind every client-facing configuration.
pub(crate) struct Sessions(Arc<dyn StoresServerSessions>);

impl Sessions {
    pub(crate) fn new() -> Self {
        Self(ServerSessionMemoryCache::new(SESSIONS))
    }

    /// A configuration for `leaf` offering `alpn`, resuming from the store.
    pub(crate) fn config(
        &self,
        leaf: Arc<CertifiedKey>,
        alpn: Option<&[u8]>,
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        let mut config = config(leaf, alpn.map(<[u8]>::to_vec))?;
        config.session_storage = self.0.clone();
        Ok(Arc::new(config))
    }
}

/// Always the same certificate: the one minted for this connection's host.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
