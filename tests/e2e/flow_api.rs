//! The flow API beyond the seed: decoded content, kill, metadata and the
//! plugin's key-value store.

use std::process::Command;

use witm_test_support::{GZIP_TEXT, Origin, curl};

use crate::start_with;

#[test]
fn gzip_content_is_decoded_changed_and_re_encoded() {
    let origin = Origin::start();
    let witm = start_with(&["rewrite"]);
    // curl --compressed decodes what witm re-encoded.
    let decoded = curl(&witm.proxy_url(), &["--compressed", &origin.url("/gzip")]);
    assert_eq!(decoded.status, 200);
    assert_eq!(decoded.body, GZIP_TEXT.replace("world", "witm"));
    assert_eq!(decoded.header_values("content-encoding"), ["gzip"]);
    // On the wire it is still gzip, with a content-length that fits.
    let raw = Command::new("curl")
        .args([
            "-sS",
            "-x",
            &witm.proxy_url(),
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            &origin.url("/gzip"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&raw.stdout);
    let size = text.lines().last().unwrap();
    let length = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .expect("content-length");
    assert_eq!(length, size, "{text}");
    assert!(
        witm.stderr().iter().all(|l| !l.contains("failed")),
        "{}",
        witm.stderr().join("\n")
    );
}

#[test]
fn a_killed_flow_gets_no_answer_and_the_proxy_goes_on() {
    let origin = Origin::start();
    let witm = start_with(&["kill"]);
    let output = Command::new("curl")
        .args(["-sS", "-x", &witm.proxy_url(), &origin.url("/kill/me")])
        .output()
        .unwrap();
    // curl: (52) Empty reply from server.
    assert_eq!(
        output.status.code(),
        Some(52),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        origin.seen().is_empty(),
        "a flow killed in `request` never reaches the server"
    );
    let fine = curl(&witm.proxy_url(), &[&origin.url("/fine")]);
    assert_eq!(fine.status, 200);
    assert!(
        witm.stdout().iter().any(|l| l.ends_with("/kill/me killed")),
        "{:?}",
        witm.stdout()
    );
}

#[test]
fn metadata_follows_the_flow_and_the_store_survives_a_restart() {
    let origin = Origin::start();
    let witm = start_with(&["counter"]);
    let first = curl(&witm.proxy_url(), &[&origin.url("/a")]);
    assert_eq!(
        first.header_values("x-count"),
        ["1"],
        "metadata set in `request` is read in `response`"
    );
    // The plugin counts this one, then traps: its metadata is rolled back
    // with the flow, the count in the store stays.
    let trapped = curl(&witm.proxy_url(), &[&origin.url("/trap")]);
    assert_eq!(trapped.status, 200);
    assert_eq!(trapped.header_values("x-count"), [""]);
    let third = curl(&witm.proxy_url(), &[&origin.url("/b")]);
    assert_eq!(
        third.header_values("x-count"),
        ["3"],
        "the store outlived the instance"
    );
}
