//! A test-only certificate authority for HTTPS origins, separate from
//! witm's own CA: tests give it to witm with `--upstream-ca`, as a user
//! would for a private server.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA whose certificate is written to a PEM file.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub cert_pem_path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
}

impl TestCa {
    /// A new CA named `name`, its certificate written under the target folder.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let dir = crate::target_dir().join("e2e-files");
        std::fs::create_dir_all(&dir).unwrap();
        let cert_pem_path = dir.join(format!("{name}-{}-ca.pem", std::process::id()));
        std::fs::write(&cert_pem_path, cert.pem()).unwrap();
        TestCa {
            cert_pem_path,
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1` and its key.
    fn server_cert(&self) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        (params.signed_by(&key, &self.issuer).unwrap(), key)
    }

    /// A server certificate chain and key as PEM files, for servers that are
    /// not Rust (the gRPC origin): `(chain, key)`.
    pub fn server_pem_files(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.server_cert();
        let dir = crate::target_dir().join("e2e-files");
        let stem = format!("{name}-{}", std::process::id());
        let (chain_path, key_path) = (
            dir.join(format!("{stem}-chain.pem")),
            dir.join(format!("{stem}-key.pem")),
        );
        std::fs::write(&chain_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (chain_path, key_path)
    }

    /// A server config for `localhost` and `127.0.0.1`, offering h2 and http/1.1.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.server_cert();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), self.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
