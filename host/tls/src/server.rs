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
use rustls::server::StoresServerSessions;
use rustls::sign::CertifiedKey;

use crate::session_store::SessionStore;

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
    // The suite is witm's choice, not the client's: see [`crate::provider`].
    config.ignore_client_order = true;
    Ok(config)
}

/// The one session store behind every client-facing configuration.
pub(crate) struct Sessions(Arc<dyn StoresServerSessions>);

impl Sessions {
    pub(crate) fn new() -> Self {
        Self(Arc::new(SessionStore::new(SESSIONS)))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConnection};

    use crate::CertificateAuthority;

    /// Runs a handshake in memory; the suite the two agreed on.
    fn handshake(client: ClientConfig, ca: &CertificateAuthority) -> rustls::CipherSuite {
        let server = ca.server_config_for("localhost", None).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client: Connection = ClientConnection::new(Arc::new(client), name)
            .unwrap()
            .into();
        let mut server: Connection = ServerConnection::new(server).unwrap().into();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!server.is_handshaking(), "the handshake did not finish");
        server.negotiated_cipher_suite().unwrap().suite()
    }

    #[test]
    fn witm_chooses_aes_128_gcm_over_a_client_preferring_aes_256() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        // ring's own order, AES-256-GCM first, as most clients offer it.
        let client_provider = Arc::new(rustls::crypto::ring::default_provider());
        assert_eq!(
            client_provider.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        for (versions, expected) in [
            (
                &rustls::version::TLS13,
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            ),
            (
                &rustls::version::TLS12,
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ),
        ] {
            let client = ClientConfig::builder_with_provider(client_provider.clone())
                .with_protocol_versions(&[versions])
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            assert_eq!(handshake(client, &ca), expected);
        }
    }
}
