//! How witm checks the servers it connects to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What to trust upstream.
#[derive(Clone, Debug, Default)]
pub enum UpstreamTrust {
    /// The webpki roots and the system's roots.
    #[default]
    Verify,
    /// As `Verify`, plus extra CA certificates.
    VerifyWith(Vec<CertificateDer<'static>>),
    /// Accept any certificate (`--ssl-insecure`): for testing only.
    Insecure,
}

/// Client configurations kept at most (one per ALPN offer; witm makes a
/// handful).
const CONFIGS: usize = 16;

/// The client side of witm's TLS, built once.
///
/// Its configurations are kept per ALPN offer, so that they keep their
/// session caches: a connection to a server witm spoke to before resumes
/// its TLS session instead of a full handshake and certificate check.
#[derive(Clone, Debug)]
pub struct Upstream {
    roots: Option<Arc<RootCertStore>>,
    configs: Arc<Mutex<ConfigsByAlpn>>,
}

/// Client configurations by the ALPN protocols they offer.
type ConfigsByAlpn = HashMap<Vec<Vec<u8>>, Arc<ClientConfig>>;

impl Upstream {
    /// Gathers the roots to trust (reading the system store once).
    pub fn new(trust: &UpstreamTrust) -> Self {
        let extra = match trust {
            UpstreamTrust::Insecure => {
                return Self {
                    roots: None,
                    configs: Arc::default(),
                };
            }
            UpstreamTrust::Verify => &[][..],
            UpstreamTrust::VerifyWith(extra) => extra.as_slice(),
        };
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!("{added} system root certificates");
        let (_, refused) = roots.add_parsable_certificates(extra.iter().cloned());
        if refused > 0 {
            tracing::warn!("{refused} upstream CA certificate(s) could not be used");
        }
        Self {
            roots: Some(Arc::new(roots)),
            configs: Arc::default(),
        }
    }

    /// The client config offering `alpn` to the server, kept (see above).
    pub fn client_config(&self, alpn: Vec<Vec<u8>>) -> Arc<ClientConfig> {
        let mut configs = self.configs.lock().unwrap();
        if let Some(config) = configs.get(&alpn) {
            return config.clone();
        }
        if configs.len() >= CONFIGS {
            configs.clear();
        }
        let config = self.make_client_config(alpn.clone());
        configs.insert(alpn, config.clone());
        config
    }

    fn make_client_config(&self, alpn: Vec<Vec<u8>>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions");
        let mut config = match &self.roots {
            Some(roots) => builder
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(crate::provider())))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn;
        Arc::new(config)
    }
}

/// `--ssl-insecure`: signatures are still checked, the chain is not.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
