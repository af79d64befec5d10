//! The certificate authority: created on first run, reused after.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

use crate::leaf::LeafCache;
use crate::server::Sessions;

/// File names under the config folder, like mitmproxy's `mitmproxy-ca*`.
const KEY_FILE: &str = "witm-ca-key.pem";
const CERT_PEM_FILE: &str = "witm-ca-cert.pem";
const CERT_DER_FILE: &str = "witm-ca-cert.cer";

/// Why the CA could not be loaded or created; one line for the user.
#[derive(Debug)]
pub struct CaError(pub String);

impl std::fmt::Display for CaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaError {}

/// The CA that signs witm's leaf certificates.
pub struct CertificateAuthority {
    /// The CA's certificate and private key, as rcgen's signer. Private to
    /// this module: the key never leaves it.
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem_path: PathBuf,
    cert_der_path: PathBuf,
    leaves: LeafCache,
    sessions: Sessions,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert", &self.cert_pem_path)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the CA from `confdir`, creating it (and the folder) on first run.
    /// The key file is written with mode 0600.
    pub fn load_or_create(confdir: &Path) -> Result<Arc<Self>, CaError> {
        let key_path = confdir.join(KEY_FILE);
        let cert_pem_path = confdir.join(CERT_PEM_FILE);
        let cert_der_path = confdir.join(CERT_DER_FILE);
        let (issuer, cert_der) = match (key_path.exists(), cert_pem_path.exists()) {
            (true, true) => load(&key_path, &cert_pem_path)?,
            // Several witm may start at once on a new confdir: one makes the
            // CA, the others wait for it and load it.
            _ if !Creating::take(confdir)? => load(&key_path, &cert_pem_path)?,
            (false, false) => {
                let made = create(confdir, &key_path, &cert_pem_path, &cert_der_path);
                Creating::done(confdir);
                made?
            }
            (true, false) => {
                Creating::done(confdir);
                return Err(CaError(format!(
                    "{} exists but {} is missing: restore it, or remove both to make a new CA",
                    key_path.display(),
                    cert_pem_path.display()
                )));
            }
            (false, true) => {
                Creating::done(confdir);
                return Err(CaError(format!(
                    "{} exists but its key {} is missing: restore it, or remove both to make a new CA",
                    cert_pem_path.display(),
                    key_path.display()
                )));
            }
        };
        if !cert_der_path.exists() {
            // Another witm may write it at the same moment: the same bytes.
            match write_file(&cert_der_path, &cert_der, 0o644) {
                Err(_) if cert_der_path.exists() => {}
                written => written?,
            }
        }
        Ok(Arc::new(Self {
            issuer,
            cert_der,
            cert_pem_path,
            cert_der_path,
            leaves: LeafCache::new()?,
            sessions: Sessions::new(),
        }))
    }

    /// The CA certificate (DER), to add to a client's trust store.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate as PEM (64-column base64, `\n` line ends), as
    /// witm writes `witm-ca-cert.pem`.
    pub fn cert_pem(&self) -> String {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.cert_der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        // Base64 is ASCII: every 64-byte chunk is a whole line of text.
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// The CA certificate alone as a PKCS#12 file with the empty password
    /// (see [`crate::pkcs12`]): no key goes in it.
    pub fn cert_pkcs12(&self) -> Result<Vec<u8>, CaError> {
        crate::pkcs12::certificate_only(&self.cert_der, "witm CA")
    }

    /// Where the CA certificate is, as PEM.
    pub fn cert_pem_path(&self) -> &Path {
        &self.cert_pem_path
    }

    /// Where the CA certificate is, as DER.
    pub fn cert_der_path(&self) -> &Path {
        &self.cert_der_path
    }

    /// A certificate for `host` (a DNS name or an IP address), signed by this
    /// CA, from the cache or minted now.
    pub fn leaf_for(&self, host: &str) -> Result<Arc<rustls::sign::CertifiedKey>, CaError> {
        self.leaves.get_or_mint(host, &self.issuer, &self.cert_der)
    }

    /// The client-facing TLS configuration for `host` offering `alpn`
    /// (the protocol the server agreed to), with the session store all
    /// configurations share, so that clients resume (see [`crate::server`]).
    pub fn server_config_for(
        &self,
        host: &str,
        alpn: Option<&[u8]>,
    ) -> Result<Arc<rustls::ServerConfig>, CaError> {
        self.sessions
            .config(self.leaf_for(host)?, alpn)
            .map_err(|e| CaError(format!("TLS configuration for {host}: {e}")))
    }

    /// How to trust this CA, for `witm ca`.
    pub fn trust_instructions(&self) -> String {
        let pem = self.cert_pem_path.display();
        let der = self.cert_der_path.display();
        format!(
            "witm's CA certificate:\n  PEM: {pem}\n  DER: {der}\n\n\
             Trust it to let witm intercept HTTPS:\n\
             - curl:      curl --proxy http://127.0.0.1:8080 --cacert {pem} https://example.com/\n\
             - Python:    requests.get(url, proxies={{\"https\": \"http://127.0.0.1:8080\"}}, verify=\"{pem}\")\n\
             \x20            (or REQUESTS_CA_BUNDLE / SSL_CERT_FILE={pem})\n\
             - Chromium:  certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n witm -i {pem}\n\
             - Firefox:   Settings > Privacy & Security > Certificates > Import {pem}\n\
             \x20            (or certutil -d sql:<profile dir> -A -t C,, -n witm -i {pem})\n\
             - Debian/Ubuntu system store:\n\
             \x20            sudo cp {pem} /usr/local/share/ca-certificates/witm.crt && sudo update-ca-certificates\n\n\
             Anyone holding the key next to it can intercept the traffic of whoever trusts it: keep it private."
        )
    }
}

fn load(
    key_path: &Path,
    cert_path: &Path,
) -> Result<(Issuer<'static, KeyPair>, CertificateDer<'static>), CaError> {
    let read = |p: &Path| {
        fs::read_to_string(p).map_err(|e| CaError(format!("cannot read {}: {e}", p.display())))
    };
    let key_pem = read(key_path)?;
    let cert_pem = read(cert_path)?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        CaError(format!(
            "{} is not a usable private key: {e}",
            key_path.display()
        ))
    })?;
    let cert_der =
        rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            CaError(format!(
                "{} is not a PEM certificate: {e}",
                cert_path.display()
            ))
        })?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| {
        CaError(format!(
            "{} is not a usable CA certificate: {e}",
            cert_path.display()
        ))
    })?;
    Ok((issuer, cert_der))
}

/// Makes the CA and writes its key and PEM certificate. The DER copy is
/// left to [`CertificateAuthority::load_or_create`]'s common path: the
/// others started together load the CA as soon as the PEM is there, and
/// may write the DER at the same moment, which only that path allows for.
/// A DER copy left by a CA removed since is not this one's: it goes before
/// the PEM appears, so the copy written after is the new CA's.
fn create(
    confdir: &Path,
    key_path: &Path,
    cert_pem_path: &Path,
    cert_der_path: &Path,
) -> Result<(Issuer<'static, KeyPair>, CertificateDer<'static>), CaError> {
    fs::create_dir_all(confdir)
        .map_err(|e| CaError(format!("cannot create {}: {e}", confdir.display())))?;
    match fs::remove_file(cert_der_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(CaError(format!(
                "cannot remove the old {}: {e}",
                cert_der_path.display()
            )));
        }
        _ => {}
    }
    let key =
        KeyPair::generate().map_err(|e| CaError(format!("cannot generate the CA key: {e}")))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "witm CA");
    name.push(DnType::OrganizationName, "witm");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(2);
    params.not_after = now + time::Duration::days(3650);
    params.serial_number = Some(crate::leaf::random_serial());
    let cert = params
        .self_signed(&key)
        .map_err(|e| CaError(format!("cannot create the CA certificate: {e}")))?;
    write_file(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_pem_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!("created a new CA in {} (see `witm ca`)", confdir.display());
    let issuer = Issuer::new(params, key);
    Ok((issuer, cert.der().clone()))
}

/// The lock one witm holds while it makes a confdir's CA (a file made
/// with `create_new`), so that witm started together make one CA.
struct Creating;

impl Creating {
    const FILE: &str = "witm-ca.lock";
    /// How long a witm waits for another to make the CA.
    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// True when this process now holds the lock (it makes the CA, then
    /// calls [`Creating::done`]); false once another has made the CA
    /// meanwhile (both files are there to load).
    fn take(confdir: &Path) -> Result<bool, CaError> {
        fs::create_dir_all(confdir)
            .map_err(|e| CaError(format!("cannot create {}: {e}", confdir.display())))?;
        let lock = confdir.join(Self::FILE);
        let made = || confdir.join(KEY_FILE).exists() && confdir.join(CERT_PEM_FILE).exists();
        let started = std::time::Instant::now();
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(_) if made() => {
                    Self::done(confdir);
                    return Ok(false);
                }
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if started.elapsed() > Self::WAIT {
                        return Err(CaError(format!(
                            "{} is held: another witm is making the CA, or one stopped while it did (then remove it)",
                            lock.display()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(CaError(format!("cannot create {}: {e}", lock.display())));
                }
            }
        }
    }

    fn done(confdir: &Path) {
        let _ = fs::remove_file(confdir.join(Self::FILE));
    }
}

/// Writes a file created with `mode` from the start, so the key is never
/// readable by others, not even for a moment; under a name of its own,
/// then linked in place (never over a file already there), so that no one
/// reads it half written.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nth = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}-{nth}.partial", std::process::id()));
    let partial = Path::new(&partial);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(partial)
        .map_err(|e| CaError(format!("cannot create {}: {e}", partial.display())))?;
    let written = file
        .write_all(bytes)
        .map_err(|e| CaError(format!("cannot write {}: {e}", partial.display())))
        .and_then(|()| {
            fs::hard_link(partial, path)
                .map_err(|e| CaError(format!("cannot create {}: {e}", path.display())))
        });
    let _ = fs::remove_file(partial);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    /// witm started together on a new confdir (as the e2e tests do) make
    /// one CA and all use it.
    #[test]
    fn started_together_they_make_one_ca() {
        // Many rounds: the maker's last write and the others' first ones
        // meet in a window of microseconds.
        for _ in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let made: Vec<_> = (0..8)
                .map(|_| {
                    let dir = dir.path().to_owned();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        CertificateAuthority::load_or_create(&dir).map(|ca| ca.cert_der().to_vec())
                    })
                })
                .collect();
            let made: Vec<_> = made.into_iter().map(|t| t.join().unwrap()).collect();
            let first = made[0].as_ref().unwrap();
            for ca in &made {
                assert_eq!(ca.as_ref().unwrap(), first);
            }
            assert!(!dir.path().join(Creating::FILE).exists());
        }
    }

    /// A `.cer` left behind by a CA whose key and PEM were removed is
    /// replaced by the new CA's, not kept beside it.
    #[test]
    fn a_new_ca_replaces_a_left_over_der_copy() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CERT_DER_FILE), b"an older CA").unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let on_disk = fs::read(dir.path().join(CERT_DER_FILE)).unwrap();
        assert_eq!(on_disk, ca.cert_der().to_vec());
    }

    #[test]
    fn created_once_then_reused_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let second = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert_eq!(first.cert_der(), second.cert_der());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(dir.path().join(CERT_DER_FILE).exists());
        assert!(first.trust_instructions().contains(CERT_PEM_FILE));
        assert!(!first.trust_instructions().contains(KEY_FILE));
    }

    #[test]
    fn pem_and_der_are_the_files_and_the_same_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let on_disk = fs::read_to_string(dir.path().join(CERT_PEM_FILE)).unwrap();
        assert_eq!(ca.cert_pem(), on_disk);
        let parsed: CertificateDer =
            rustls_pki_types::pem::PemObject::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        assert_eq!(&parsed, ca.cert_der());
        let der_file = fs::read(dir.path().join(CERT_DER_FILE)).unwrap();
        assert_eq!(der_file, ca.cert_der().as_ref());
        assert!(!ca.cert_pem().contains("PRIVATE KEY"));
    }

    /// The PKCS#12 file, read back by OpenSSL (when installed) and by a
    /// walk of its DER: the CA certificate, and no key bag of any kind.
    #[test]
    fn the_pkcs12_file_holds_the_certificate_and_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let p12 = ca.cert_pkcs12().unwrap();
        // The CA key's secret (P-256: ECPrivateKey's `02 01 01 04 20`, then
        // 32 bytes; the rest of PKCS#8 is the public key, in the certificate
        // too): no 16 bytes of it appear in the file.
        let key_der = {
            let pem = fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
            KeyPair::from_pem(&pem).unwrap().serialize_der()
        };
        let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
        let at = key_der
            .windows(marker.len())
            .position(|w| w == marker)
            .expect("a P-256 PKCS#8 key")
            + marker.len();
        let secret = &key_der[at..at + 32];
        assert!(!p12.windows(16).any(|w| secret.windows(16).any(|k| k == w)));
        // Key bag OIDs: keyBag and pkcs8ShroudedKeyBag (1.2.840.113549.1.12.10.1.1/2).
        for bag in [1u8, 2] {
            let oid = [
                0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, bag,
            ];
            assert!(!p12.windows(oid.len()).any(|w| w == oid), "key bag {bag}");
        }
        assert!(
            p12.windows(ca.cert_der().len())
                .any(|w| w == ca.cert_der().as_ref())
        );
        let path = dir.path().join("witm-ca-cert.p12");
        fs::write(&path, &p12).unwrap();
        let Ok(output) = std::process::Command::new("openssl")
            .args(["pkcs12", "-nokeys", "-passin", "pass:", "-in"])
            .arg(&path)
            .output()
        else {
            eprintln!("no openssl: the PKCS#12 file was not read back by it");
            return;
        };
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains(&ca.cert_pem()), "{text}");
        assert!(text.contains("friendlyName: witm CA"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        // The MAC checks out with the empty password, and only with it.
        let wrong = std::process::Command::new("openssl")
            .args(["pkcs12", "-nokeys", "-passin", "pass:wrong", "-in"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!wrong.status.success());
    }

    #[test]
    fn a_half_present_ca_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        CertificateAuthority::load_or_create(dir.path()).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let error = CertificateAuthority::load_or_create(dir.path()).unwrap_err();
        assert!(error.0.contains("key"), "{error}");
    }
}
