//! The onboarding page: `http://witm.it/` through the proxy, answered by
//! witm itself with its CA certificate as PEM, DER and PKCS#12 — with curl
//! and with headless Chromium — and never a plugin's or a server's.

use std::path::{Path, PathBuf};
use std::process::Command;

use witm_test_support::target_dir;

use crate::start_with_args;

/// What `curl` got: status, head (as text) and body (as bytes).
struct Fetched {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Fetched {
    /// The value of header `name` (the last one; names compared without case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .next_back()
    }
}

/// `curl -x proxy ARGS… URL`, keeping the body's bytes as they came.
fn fetch(proxy: &str, args: &[&str], url: &str) -> Fetched {
    let body_file = scratch("onboarding-body");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-x", proxy, "-D", "-", "-o"])
        .arg(&body_file)
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let head = String::from_utf8_lossy(&output.stdout).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = std::fs::read(&body_file).unwrap_or_default();
    let _ = std::fs::remove_file(&body_file);
    Fetched { status, head, body }
}

/// A file under the target dir, unique to this process and call.
fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    target_dir().join(format!(
        "e2e-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The shared confdir of the tests' witm (see `Witm::start`).
fn confdir() -> PathBuf {
    target_dir().join("e2e-confdir")
}

/// `openssl ARGS…` on `file`: its stdout, or its stderr as the error.
fn openssl(args: &[&str], file: &Path) -> Result<String, String> {
    let output = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .expect("run openssl");
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
    }
}

/// The base64 lines of the PEM blocks in `text` (headers, footers and any
/// text around the blocks left out).
fn pem_lines(text: &str) -> Vec<String> {
    let mut inside = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        match line.starts_with("-----BEGIN ") || line.starts_with("-----END ") {
            true => inside = line.starts_with("-----BEGIN "),
            false if inside => lines.push(line.trim().to_owned()),
            false => {}
        }
    }
    lines
}

/// With plugins that answer `/answered` themselves and inject a paragraph
/// into every HTML page: neither touches witm.it, whose page and files are
/// witm's own — the CA certificate as the confdir holds it, and nothing of
/// its key.
#[test]
fn curl_gets_the_page_and_the_ca_certificate_as_pem_der_and_pkcs12() {
    let witm = start_with_args(&["inject", "answer"], &[]);
    let proxy = witm.proxy_url();
    let key_pem = std::fs::read_to_string(confdir().join("witm-ca-key.pem")).unwrap();
    let key_lines = pem_lines(&key_pem);
    let no_key_in = |what: &str, body: &[u8]| {
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains("PRIVATE KEY"), "{what}: {text}");
        for line in &key_lines {
            assert!(!text.contains(line.as_str()), "{what} holds the key");
        }
    };

    let page = fetch(&proxy, &[], "http://witm.it/");
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8_lossy(&page.body).into_owned();
    for needle in [
        r#"href="/cert/pem""#,
        r#"href="/cert/cer""#,
        r#"href="/cert/p12""#,
        "Windows",
        "macOS",
        "Linux",
        "update-ca-certificates",
        "iOS",
        "Android",
        "Firefox",
        "Chromium",
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    assert!(!html.contains("injected by witm"), "a plugin saw the page");
    no_key_in("the page", &page.body);

    let pem = fetch(&proxy, &[], "http://witm.it/cert/pem");
    assert_eq!(pem.status, 200, "{}", pem.head);
    assert_eq!(
        pem.header("content-type"),
        Some("application/x-x509-ca-cert")
    );
    assert_eq!(
        pem.header("content-disposition"),
        Some(r#"attachment; filename="witm-ca-cert.pem""#)
    );
    let pem_file = std::fs::read(confdir().join("witm-ca-cert.pem")).unwrap();
    assert_eq!(pem.body, pem_file);
    no_key_in("the PEM", &pem.body);

    let cer = fetch(&proxy, &[], "http://witm.it/cert/cer");
    assert_eq!(cer.status, 200, "{}", cer.head);
    assert_eq!(
        cer.header("content-type"),
        Some("application/x-x509-ca-cert")
    );
    assert_eq!(
        cer.header("content-disposition"),
        Some(r#"attachment; filename="witm-ca-cert.cer""#)
    );
    assert_eq!(
        cer.body,
        std::fs::read(confdir().join("witm-ca-cert.cer")).unwrap()
    );
    no_key_in("the DER", &cer.body);

    let p12 = fetch(&proxy, &[], "http://witm.it/cert/p12");
    assert_eq!(p12.status, 200, "{}", p12.head);
    assert_eq!(p12.header("content-type"), Some("application/x-pkcs12"));
    assert_eq!(
        p12.header("content-disposition"),
        Some(r#"attachment; filename="witm-ca-cert.p12""#)
    );
    no_key_in("the PKCS#12", &p12.body);
    let p12_file = scratch("onboarding.p12");
    std::fs::write(&p12_file, &p12.body).unwrap();
    let certs = openssl(&["pkcs12", "-nokeys", "-passin", "pass:", "-in"], &p12_file)
        .unwrap_or_else(|e| panic!("openssl reads the PKCS#12: {e}"));
    assert_eq!(certs.matches("-----BEGIN ").count(), 1, "{certs}");
    assert_eq!(
        pem_lines(&certs),
        pem_lines(&String::from_utf8_lossy(&pem_file)),
        "the PKCS#12 holds the CA certificate only: {certs}"
    );
    assert!(certs.contains("friendlyName: witm CA"), "{certs}");
    let keys = openssl(
        &["pkcs12", "-nocerts", "-nodes", "-passin", "pass:", "-in"],
        &p12_file,
    )
    .unwrap_or_else(|e| panic!("openssl reads the PKCS#12: {e}"));
    assert!(!keys.contains("PRIVATE KEY"), "{keys}");
    let _ = std::fs::remove_file(&p12_file);

    // HEAD: the head of GET, no body (curl -I writes the head as its output).
    let head = fetch(&proxy, &["-I"], "http://witm.it/cert/pem");
    assert_eq!(head.status, 200, "{}", head.head);
    assert_eq!(
        head.header("content-length"),
        Some(pem_file.len().to_string().as_str())
    );
    assert!(!String::from_utf8_lossy(&head.body).contains("BEGIN CERTIFICATE"));

    // Any port, any case; the plugin's /answered is not the plugin's here.
    let other_port = fetch(&proxy, &[], "http://WITM.it:8081/");
    assert_eq!(other_port.status, 200);
    for path in ["/answered", "/cert/key", "/cert/", "/witm-ca-key.pem"] {
        let missing = fetch(&proxy, &[], &format!("http://witm.it{path}"));
        assert_eq!(missing.status, 404, "{path}: {}", missing.head);
        no_key_in(path, &missing.body);
    }
    let traversal = fetch(
        &proxy,
        &["--path-as-is"],
        "http://witm.it/cert/../../witm-ca-key.pem",
    );
    assert_eq!(traversal.status, 404);
    no_key_in("a path out", &traversal.body);

    let post = fetch(&proxy, &["-d", "x=1"], "http://witm.it/cert/pem");
    assert_eq!(post.status, 405, "{}", post.head);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    no_key_in("POST", &post.body);

    // The plugin still answers elsewhere: it was loaded and running.
    let elsewhere = fetch(&proxy, &[], "http://example.invalid/answered");
    assert_eq!(
        String::from_utf8_lossy(&elsewhere.body),
        "answered by plugin\n"
    );
}

/// Inside an intercepted tunnel, with witm's CA trusted: the same page.
#[test]
fn https_to_witm_it_through_the_proxy_gets_the_page_too() {
    let witm = start_with_args(&[], &[]);
    let ca = confdir().join("witm-ca-cert.pem");
    let page = fetch(
        &witm.proxy_url(),
        &["--cacert", ca.to_str().unwrap()],
        "https://witm.it/cert/cer",
    );
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(
        page.body,
        std::fs::read(confdir().join("witm-ca-cert.cer")).unwrap()
    );
}

/// Another name, or none: `--onboarding-host` and `--no-onboarding`.
#[test]
fn the_onboarding_host_can_be_renamed_or_turned_off() {
    let renamed = start_with_args(&[], &["--onboarding-host", "ca.witm.test"]);
    let page = fetch(&renamed.proxy_url(), &[], "http://ca.witm.test/");
    assert_eq!(page.status, 200, "{}", page.head);
    assert!(String::from_utf8_lossy(&page.body).contains("http://ca.witm.test/cert/pem"));
    let off = start_with_args(&[], &["--no-onboarding"]);
    // Forwarded like any request: to a host that does not resolve here.
    let forwarded = fetch(&off.proxy_url(), &[], "http://witm.it/");
    assert_eq!(forwarded.status, 502, "{}", forwarded.head);
    // `witm ca` points at the page, under its name.
    let ca = Command::new(crate::witm_binary())
        .args(["--onboarding-host", "ca.witm.test", "ca", "--confdir"])
        .arg(confdir())
        .output()
        .unwrap();
    assert!(ca.status.success());
    let ca = String::from_utf8_lossy(&ca.stdout);
    assert!(ca.contains("open http://ca.witm.test/"), "{ca}");
    let refused = Command::new(crate::witm_binary())
        .args(["--onboarding-host", "<script>", "options"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

/// Headless Chromium through the proxy opens http://witm.it/: a screenshot
/// (kept under the target dir, to look at) and the DOM with the links.
#[test]
fn chromium_shows_the_onboarding_page() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect(
            "this test needs Debian's chromium (apt-get install chromium); .ci/run installs it",
        );
    let witm = start_with_args(&["inject"], &[]);
    let profile = target_dir().join(format!("e2e-chromium-onboarding-{}", std::process::id()));
    let screenshot = target_dir().join("e2e-onboarding.png");
    let _ = std::fs::remove_file(&screenshot);
    let run = |mode: &str| {
        Command::new(chromium)
            .env("HOME", &profile)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1000,1500",
                &format!("--user-data-dir={}", profile.join("data").display()),
                &format!("--proxy-server={}", witm.proxy_url()),
                "--virtual-time-budget=5000",
                mode,
                "http://witm.it/",
            ])
            .output()
            .expect("run chromium")
    };
    let shot = run(&format!("--screenshot={}", screenshot.display()));
    let dom = run("--dump-dom");
    let _ = std::fs::remove_dir_all(&profile);
    let png = std::fs::read(&screenshot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {}: {e}\n{}",
            screenshot.display(),
            String::from_utf8_lossy(&shot.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // IHDR: width and height, big-endian, after the signature and chunk head.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width >= 800 && height >= 800, "{width}x{height}");
    // A blank page compresses to almost nothing; text and buttons do not.
    assert!(png.len() > 20_000, "{} bytes: a blank page?", png.len());
    let dom = String::from_utf8_lossy(&dom.stdout);
    for link in [
        r#"href="/cert/pem""#,
        r#"href="/cert/cer""#,
        r#"href="/cert/p12""#,
    ] {
        assert!(dom.contains(link), "{link} in {dom}");
    }
    assert!(dom.contains("Install witm's CA certificate"), "{dom}");
    assert!(!dom.contains("injected by witm"), "a plugin saw the page");
}
