//! The CA certificate as a PKCS#12 (PFX) file holding the certificate and
//! nothing else, like mitmproxy's `mitmproxy-ca-cert.p12`: what Windows,
//! macOS, iOS and Firefox import as a CA to trust.
//!
//! Written here with `yasna` (already built for rcgen) and `ring` (already
//! the crypto provider) rather than with the `p12-keystore` crate: a
//! certificate-only PFX has one fixed shape (RFC 7292), about a page of
//! DER, while that crate would bring a second ASN.1 stack and a dozen
//! RustCrypto crates for the key encryption this file must never need.
//!
//! The shape: `PFX { version 3, authSafe: data { AuthenticatedSafe {
//! data { SafeContents { CertBag(x509) } } } }, macData }`. The
//! certificate bag is not encrypted (it is public), and there is no key
//! bag at all. The MAC is HMAC-SHA1 with the empty password: it protects
//! nothing, but some importers refuse a PFX without one, and SHA-1 is the
//! MAC every importer knows (old Android and Windows read no other).

use ring::{digest, hmac, rand::SecureRandom};
use yasna::models::ObjectIdentifier;

use crate::CaError;

/// `id-data` (PKCS#7): content carried as an OCTET STRING.
const ID_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
/// `certBag` (PKCS#12 bag types).
const CERT_BAG: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 3];
/// `x509Certificate` (PKCS#9 certificate types).
const X509_CERTIFICATE: &[u64] = &[1, 2, 840, 113549, 1, 9, 22, 1];
/// `friendlyName` (PKCS#9): the name importers show.
const FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113549, 1, 9, 20];
/// Oracle's "trusted key usage" attribute: Java's keytool makes a bag with
/// it a trusted certificate entry (what `cryptography` writes for CAs too).
const JAVA_TRUSTED_KEY_USAGE: &[u64] = &[2, 16, 840, 1, 113894, 746875, 1, 1];
/// `anyExtendedKeyUsage`: trusted for every purpose.
const ANY_EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37, 0];
/// SHA-1, the MAC's digest.
const SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];

/// PBKDF iterations for the MAC key (OpenSSL's default).
const MAC_ITERATIONS: u32 = 2048;
/// Length of the MAC's random salt.
const SALT_LEN: usize = 8;

fn oid(components: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(components)
}

/// A PFX holding `cert_der` only, shown as `name`, with the empty password.
pub fn certificate_only(cert_der: &[u8], name: &str) -> Result<Vec<u8>, CaError> {
    let mut salt = [0u8; SALT_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| CaError("no randomness for the PKCS#12 salt".into()))?;
    let safe_contents = yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(CERT_BAG));
                w.next().write_tagged(yasna::Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_oid(&oid(X509_CERTIFICATE));
                        w.next()
                            .write_tagged(yasna::Tag::context(0), |w| w.write_bytes(cert_der));
                    });
                });
                w.next().write_set_of(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(FRIENDLY_NAME));
                        w.next().write_set_of(|w| w.next().write_bmp_string(name));
                    });
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(JAVA_TRUSTED_KEY_USAGE));
                        w.next()
                            .write_set_of(|w| w.next().write_oid(&oid(ANY_EXTENDED_KEY_USAGE)));
                    });
                });
            });
        });
    });
    let authenticated_safe = yasna::construct_der(|w| {
        w.write_sequence_of(|w| data_content_info(w.next(), &safe_contents));
    });
    let mac = hmac::sign(
        &hmac::Key::new(
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            &mac_key(&salt, MAC_ITERATIONS),
        ),
        &authenticated_safe,
    );
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u32(3);
            data_content_info(w.next(), &authenticated_safe);
            w.next().write_sequence(|w| {
                // DigestInfo { AlgorithmIdentifier { sha1, NULL }, digest }
                w.next().write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(SHA1));
                        w.next().write_null();
                    });
                    w.next().write_bytes(mac.as_ref());
                });
                w.next().write_bytes(&salt);
                w.next().write_u32(MAC_ITERATIONS);
            });
        });
    }))
}

/// `ContentInfo { id-data, [0] EXPLICIT OCTET STRING content }`.
fn data_content_info(w: yasna::DERWriter, content: &[u8]) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(ID_DATA));
        w.next()
            .write_tagged(yasna::Tag::context(0), |w| w.write_bytes(content));
    });
}

/// The MAC key for the empty password: RFC 7292 appendix B.2 with SHA-1
/// (u = 20, v = 64), ID 3 (MAC material), 20 bytes — one block, so only
/// A1 is needed.
fn mac_key(salt: &[u8], iterations: u32) -> [u8; 20] {
    const V: usize = 64;
    // The password as a BMPString with its two-byte terminator: "" is 00 00.
    let password = [0u8, 0u8];
    let repeat = |bytes: &[u8]| -> Vec<u8> {
        let len = V * bytes.len().div_ceil(V);
        bytes.iter().copied().cycle().take(len).collect()
    };
    let mut input = vec![3u8; V];
    input.extend(repeat(salt));
    input.extend(repeat(&password));
    let mut block = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    for _ in 1..iterations {
        block = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, block.as_ref());
    }
    let mut key = [0u8; 20];
    key.copy_from_slice(block.as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key OpenSSL derives for the same salt, iterations and empty
    /// password (given as its BMPString, 00 00, as PKCS12KDF takes it).
    #[test]
    fn the_mac_key_is_pkcs12_kdf_with_the_empty_password() {
        let Ok(output) = std::process::Command::new("openssl")
            .args([
                "kdf",
                "-keylen",
                "20",
                "-kdfopt",
                "digest:SHA1",
                "-kdfopt",
                "hexpass:0000",
                "-kdfopt",
                "hexsalt:0102030405060708",
                "-kdfopt",
                "iter:2048",
                "-kdfopt",
                "id:3",
                "PKCS12KDF",
            ])
            .output()
        else {
            eprintln!("no openssl: PKCS12KDF not compared");
            return;
        };
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected: String = String::from_utf8_lossy(&output.stdout)
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .to_ascii_lowercase();
        let ours: String = mac_key(&[1, 2, 3, 4, 5, 6, 7, 8], 2048)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(ours, expected);
    }
}
