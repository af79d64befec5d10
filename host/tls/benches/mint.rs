//! Time to mint a leaf certificate for a new host (one ECDSA P-256
//! signature; the leaf key is shared), and to fetch one from the cache.
//!
//! `cargo bench -p witm-tls --bench mint`

use std::time::Instant;

use witm_tls::CertificateAuthority;

fn main() {
    let dir = std::env::temp_dir().join(format!("witm-mint-bench-{}", std::process::id()));
    let ca = CertificateAuthority::load_or_create(&dir).expect("CA");
    const HOSTS: usize = 2000;
    let started = Instant::now();
    for i in 0..HOSTS {
        ca.leaf_for(&format!("host-{i}.example.com")).unwrap();
    }
    let mint = started.elapsed().as_nanos() as f64 / HOSTS as f64 / 1000.0;
    let started = Instant::now();
    for _ in 0..100 {
        for i in 0..HOSTS {
            ca.leaf_for(&format!("host-{i}.example.com")).unwrap();
        }
    }
    let cached = started.elapsed().as_nanos() as f64 / (HOSTS * 100) as f64;
    println!(
        "leaf certificate: {mint:.1} µs to mint (mean of {HOSTS} hosts), {cached:.0} ns from the cache"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
