//! The proxy's TLS settings: which CONNECT tunnels to intercept, and how.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use witm_tls::{CertificateAuthority, Upstream};

/// How witm intercepts HTTPS.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// Signs a certificate for each intercepted host.
    pub ca: Arc<CertificateAuthority>,
    /// How servers are verified.
    pub upstream: Upstream,
    /// Tunnels to "host:port" matching this pass through untouched.
    pub ignore_hosts: Option<Regex>,
    /// When set, only tunnels to "host:port" matching this are intercepted.
    pub allow_hosts: Option<Regex>,
    /// How long a TLS handshake (either side) may take.
    pub handshake_timeout: Duration,
    /// Requests in intercepted tunnels go through each thread's pool of
    /// server connections, shared by every client (HTTP/2 where the server
    /// offers it), as Envoy's and hudsucker's do; otherwise over the
    /// tunnel's own connection, as mitmproxy's. The tunnel still connects
    /// first, to learn the certificate and protocol, and leaves that
    /// connection for the next tunnel ([`crate::link_pool`]).
    pub share_server_connections: bool,
}

impl TlsOptions {
    /// Interception with the given CA and upstream trust, nothing ignored.
    pub fn new(ca: Arc<CertificateAuthority>, upstream: Upstream) -> Self {
        Self {
            ca,
            upstream,
            ignore_hosts: None,
            allow_hosts: None,
            handshake_timeout: Duration::from_secs(10),
            share_server_connections: false,
        }
    }

    /// Whether a CONNECT to `host:port` is intercepted (else tunnelled raw).
    pub fn intercepts(&self, host: &str, port: u16) -> bool {
        let address = format!("{host}:{port}");
        let ignored = self
            .ignore_hosts
            .as_ref()
            .is_some_and(|r| r.is_match(&address));
        let allowed = self
            .allow_hosts
            .as_ref()
            .is_none_or(|r| r.is_match(&address));
        allowed && !ignored
    }
}
