//! The client-facing TLS configurations, one per intercepted host and ALPN
//! protocol, kept so that clients can resume their sessions.
//!
//! A configuration made afresh for every tunnel has a session store of its
//! own, so no client ever resumes: each new connection pays a full
//! handshake (an ECDSA signature by witm, a certificate check by the
//! client). Kept per host and protocol, and sharing one bounded session
//! store, a returning client resumes as it would with the real server.
//! Sharing the store is safe here because rustls resumes a session only
//! under the server name it was made for, and the configuration (so the
//! certificate) is chosen by that same name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::sign::CertifiedKey;

/// Configurations kept at most; beyond it the cache starts afresh.
const CAPACITY: usize = 4096;

/// Sessions kept for resumption, for all hosts together (a few hundred
/// bytes each).
const SESSIONS: usize = 8192;

/// The client-facing configuration for one intercepted connection: our
/// leaf for the host, and the one ALPN protocol the server agreed to (so
/// client and server speak the same HTTP version), if any. Made afresh;
/// [`ServerConfigs`] keeps them.
pub fn server_config(
    leaf: Arc<CertifiedKey>,
    alpn: Option<Vec<u8>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(leaf)));
    config.alpn_protocols = alpn.into_iter().collect();
    Ok(Arc::new(config))
}

/// A configuration's key: the host (lower-cased) and the ALPN protocol.
type HostAndAlpn = (String, Option<Vec<u8>>);

/// Configurations by host and ALPN protocol, with one session store.
pub(crate) struct ServerConfigs {
    sessions: Arc<dyn StoresServerSessions>,
    configs: Mutex<HashMap<HostAndAlpn, Arc<ServerConfig>>>,
}

impl ServerConfigs {
    pub(crate) fn new() -> Self {
        Self {
            sessions: ServerSessionMemoryCache::new(SESSIONS),
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration for `host` (already lower-cased, as the leaf
    /// cache keys it) offering `alpn`, made with `leaf` when not kept.
    pub(crate) fn get_or_make(
        &self,
        host: &str,
        alpn: Option<&[u8]>,
        leaf: impl FnOnce() -> Result<Arc<CertifiedKey>, crate::CaError>,
    ) -> Result<Arc<ServerConfig>, crate::CaError> {
        let key = (host.to_owned(), alpn.map(<[u8]>::to_vec));
        if let Some(config) = self.configs.lock().unwrap().get(&key) {
            return Ok(config.clone());
        }
        let mut config = Arc::unwrap_or_clone(
            server_config(leaf()?, key.1.clone())
                .map_err(|e| crate::CaError(format!("TLS configuration for {host}: {e}")))?,
        );
        config.session_storage = self.sessions.clone();
        let config = Arc::new(config);
        let mut configs = self.configs.lock().unwrap();
        if configs.len() >= CAPACITY {
            configs.clear();
        }
        configs.insert(key, config.clone());
        Ok(config)
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
