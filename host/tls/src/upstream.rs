//! How witm checks the servers it connects to.

use std::sync::Arc;

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

/// The client side of witm's TLS, built once.
#[derive(Clone, Debug)]
pub struct Upstream {
    roots: Option<Arc<RootCertStore>>,
}

impl Upstream {
    /// Gathers the roots to trust (reading the system store once).
    pub fn new(trust: &UpstreamTrust) -> Self {
        let extra = match trust {
            UpstreamTrust::Insecure => return Self { roots: None },
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
        }
    }

    /// A client config offering `alpn` to the server.
    pub fn client_config(&self, alpn: Vec<Vec<u8>>) -> Arc<ClientConfig> {
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
