//! Leaf certificates per host, minted on demand and cached.
//!
//! All leaves share one key pair made at start (as mitmproxy does), so
//! minting a leaf is one signature, not a key generation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ca::CaError;

/// Leaves kept at most; beyond it the cache starts afresh (a proxy seeing
/// that many hosts mints a few again, it does not grow without bound).
const CAPACITY: usize = 4096;

/// Minted leaves by host name.
pub(crate) struct LeafCache {
    key_pair: KeyPair,
    signing_key: Arc<dyn SigningKey>,
    leaves: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl LeafCache {
    pub(crate) fn new() -> Result<Self, CaError> {
        let key_pair = KeyPair::generate()
            .map_err(|e| CaError(format!("cannot generate the leaf key: {e}")))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let signing_key = crate::provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| CaError(format!("cannot load the leaf key: {e}")))?;
        Ok(Self {
            key_pair,
            signing_key,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn get_or_mint(
        &self,
        host: &str,
        issuer: &Issuer<'static, KeyPair>,
        ca_der: &CertificateDer<'static>,
    ) -> Result<Arc<CertifiedKey>, CaError> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if let Some(leaf) = self.leaves.lock().unwrap().get(&host) {
            return Ok(leaf.clone());
        }
        let leaf = Arc::new(self.mint(&host, issuer, ca_der)?);
        let mut leaves = self.leaves.lock().unwrap();
        if leaves.len() >= CAPACITY {
            leaves.clear();
        }
        leaves.insert(host, leaf.clone());
        Ok(leaf)
    }

    fn mint(
        &self,
        host: &str,
        issuer: &Issuer<'static, KeyPair>,
        ca_der: &CertificateDer<'static>,
    ) -> Result<CertifiedKey, CaError> {
        let mut params = CertificateParams::new(vec![host.to_owned()])
            .map_err(|e| CaError(format!("cannot make a certificate for {host:?}: {e}")))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, host);
        name.push(DnType::OrganizationName, "witm");
        params.distinguished_name = name;
        let now = time::OffsetDateTime::now_utc();
        // Browsers refuse leaves valid for more than 398 days.
        params.not_before = now - time::Duration::days(2);
        params.not_after = now + time::Duration::days(365);
        params.serial_number = Some(random_serial());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&self.key_pair, issuer)
            .map_err(|e| CaError(format!("cannot sign a certificate for {host:?}: {e}")))?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), ca_der.clone()],
            self.signing_key.clone(),
        ))
    }
}

/// A random positive 128-bit serial: leaves share a key, so serials must
/// not be derived from it (browsers reject a reused issuer+serial).
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use crate::CertificateAuthority;

    #[test]
    fn leaves_are_cached_per_host_and_chain_to_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let a = ca.leaf_for("example.com").unwrap();
        let again = ca.leaf_for("EXAMPLE.com").unwrap();
        assert!(std::sync::Arc::ptr_eq(&a, &again));
        assert_eq!(&a.cert[1], ca.cert_der());
        let other = ca.leaf_for("127.0.0.1").unwrap();
        assert_ne!(a.cert[0], other.cert[0]);
    }
}
