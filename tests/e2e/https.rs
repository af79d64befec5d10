//! HTTPS interception: witm's CA, HTTP/1.1 and HTTP/2 through the tunnel,
//! real clients (curl, Python requests, headless Chromium), pass-through and
//! bad server certificates.

use std::process::Command;

use witm_test_support::{HELLO, Origin, TestCa, curl, target_dir};

use crate::sandbox::Bystander;
use crate::{start_with, start_with_args, witm_binary};

/// An HTTPS origin with a test CA of its own.
pub(crate) struct HttpsOrigin {
    ca: TestCa,
    pub(crate) origin: Origin,
}

impl HttpsOrigin {
    pub(crate) fn start(name: &str) -> Self {
        let ca = TestCa::new(name);
        let origin = Origin::start_https(&ca);
        Self { ca, origin }
    }

    /// One that takes at most `streams` requests at once on an HTTP/2
    /// connection.
    pub(crate) fn start_with_streams(name: &str, streams: u32) -> Self {
        let ca = TestCa::new(name);
        let origin = Origin::start_https_with_streams(&ca, streams);
        Self { ca, origin }
    }

    /// The origin's CA certificate file.
    fn ca_path(&self) -> String {
        self.ca.cert_pem_path.display().to_string()
    }

    /// witm with `plugins`, trusting this origin's CA (`--upstream-ca`),
    /// with `extra` arguments.
    pub(crate) fn witm(&self, plugins: &[&str], extra: &[&str]) -> witm_test_support::Witm {
        let ca = self.ca_path();
        let mut args = vec!["--upstream-ca", ca.as_str()];
        args.extend_from_slice(extra);
        start_with_args(plugins, &args)
    }
}

/// What `python -c script args…` printed; it must succeed.
pub(crate) fn python_prints(python: &std::ffi::OsStr, script: &str, args: &[&str]) -> String {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// witm's CA certificate, as the tests' shared confdir holds it.
pub(crate) fn witm_ca() -> String {
    target_dir()
        .join("e2e-confdir/witm-ca-cert.pem")
        .display()
        .to_string()
}

#[test]
fn requests_in_a_tunnel_are_recorded_with_the_case_and_order_of_the_wire() {
    let https = HttpsOrigin::start("origin-order");
    let origin = &https.origin;
    let file = target_dir().join("e2e-https-order.witm");
    let _ = std::fs::remove_file(&file);
    let mut witm = https.witm(&[], &["-w", file.to_str().unwrap()]);
    let url = origin.https_url("/order");
    // Two POSTs on one connection: the second head lies past a body.
    let response = curl(
        &witm.proxy_url(),
        &[
            "--cacert",
            &witm_ca(),
            "--http1.1",
            "-d",
            "a body",
            "-H",
            "X-B: 1",
            "-H",
            "x-a: 2",
            "-H",
            "X-B: 3",
            &url,
            &url,
        ],
    );
    assert_eq!(response.status, 200);
    witm.stop();
    let flows: Vec<witm_flow::Flow> = witm_store::FlowFile::open(&file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(flows.len(), 2);
    for flow in &flows {
        let names: Vec<&str> = flow
            .request
            .headers
            .iter()
            .map(|(n, _)| n)
            .filter(|n| n.eq_ignore_ascii_case("x-a") || n.eq_ignore_ascii_case("x-b"))
            .collect();
        assert_eq!(names, ["X-B", "x-a", "X-B"], "{:?}", flow.request.headers);
    }
}

#[test]
fn curl_over_http1_sees_a_plugins_change_and_plugins_see_tls_facts() {
    let https = HttpsOrigin::start("origin-h1");
    let origin = &https.origin;
    let witm = https.witm(&["add-header", "recorder"], &[]);
    let response = curl(
        &witm.proxy_url(),
        &[
            "--cacert",
            &witm_ca(),
            "--http1.1",
            "-w",
            "|%{http_version}",
            &origin.https_url("/h1"),
        ],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header_values("newheader"), ["foo"]);
    assert_eq!(response.body, format!("{HELLO}|1.1"));
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].path.as_str(), seen[0].version.as_str()),
        ("/h1", "HTTP/1.1")
    );
    let expected = format!(
        "tls sni=localhost client-alpn=http/1.1 server=localhost:{} server-alpn=http/1.1 cert-sans=localhost,127.0.0.1 cert-issuer=CN=origin-h1 test CA",
        origin.address.port()
    );
    assert!(
        witm.wait_for_log(&expected, 1),
        "{expected}\n{}",
        witm.stderr().join("\n")
    );
    assert!(witm.wait_for_flow_line(&format!("GET {} 200", origin.https_url("/h1"))));
}

#[test]
fn curl_over_http2_speaks_http2_on_both_sides() {
    let https = HttpsOrigin::start("origin-h2");
    let origin = &https.origin;
    let witm = https.witm(&["tag h2", "recorder"], &[]);
    let response = curl(
        &witm.proxy_url(),
        &[
            "--cacert",
            &witm_ca(),
            "--http2",
            "-H",
            "te: trailers",
            "-w",
            "|%{http_version}",
            &origin.https_url("/h2"),
        ],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header_values("x-tag"), ["h2"]);
    assert_eq!(response.body, format!("{HELLO}|2"));
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, "HTTP/2.0");
    // The request plugin's change crossed HTTP/2 to the origin too.
    assert_eq!(seen[0].header_values("x-tag"), ["h2"]);
    // So did `te: trailers` (what gRPC servers require), hop-by-hop or not.
    assert_eq!(seen[0].header_values("te"), ["trailers"]);
    assert!(
        witm.wait_for_log("client-alpn=h2", 1),
        "{}",
        witm.stderr().join("\n")
    );
    assert_eq!(witm.log_count("server-alpn=h2"), 1);
}

#[test]
fn a_host_a_plugin_sets_is_the_http2_servers_authority() {
    // mitmproxy's HTTP/2 client makes `:authority` from `host`: a virtual
    // host a plugin sets reaches the server, over the tunnel's own
    // connection and over the pool's shared one.
    let https = HttpsOrigin::start("origin-virtual-host");
    let origin = &https.origin;
    for (i, extra) in [&[][..], &["--share-server-connections"][..]]
        .into_iter()
        .enumerate()
    {
        let witm = https.witm(&["tag vh host=virtual.example"], extra);
        let path = format!("/virtual-{i}");
        let response = curl(
            &witm.proxy_url(),
            &["--cacert", &witm_ca(), "--http2", &origin.https_url(&path)],
        );
        assert_eq!(response.status, 200, "{extra:?}");
        let seen = origin.seen();
        let request = seen.iter().find(|r| r.path == path).unwrap();
        assert_eq!(request.version, "HTTP/2.0");
        assert_eq!(
            request.authority.as_deref(),
            Some("virtual.example"),
            "{extra:?}"
        );
        assert!(request.header_values("host").is_empty(), "{request:?}");
    }
}

#[test]
fn python_requests_trusts_witm_ca() {
    let https = HttpsOrigin::start("origin-py");
    let origin = &https.origin;
    let witm = https.witm(&["add-header"], &[]);
    let script = r#"
import sys, requests
proxy, ca, url = sys.argv[1:]
r = requests.get(url, proxies={"https": proxy}, verify=ca, timeout=30)
print(r.status_code, r.headers.get("newheader"), r.text.strip())
"#;
    let python = witm_test_support::tools_python(&[("requests", "requests")]);
    let stdout = python_prints(
        python.as_os_str(),
        script,
        &[&witm.proxy_url(), &witm_ca(), &origin.https_url("/py")],
    );
    assert_eq!(stdout.trim(), "200 foo hello from origin");
}

#[test]
fn chromium_loads_a_page_through_witm_and_shows_a_plugins_change() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "this test needs Debian's chromium (apt-get install chromium); .ci/run installs it",
        );
    let https = HttpsOrigin::start("origin-browser");
    let origin = &https.origin;
    let witm = https.witm(&["inject"], &[]);
    let profile = target_dir().join(format!("e2e-chromium-{}", std::process::id()));
    let nssdb = profile.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    // Trust witm's CA the way a user would: in the NSS database Chromium reads.
    let added = Command::new("certutil")
        .args([
            "-d",
            &format!("sql:{}", nssdb.display()),
            "-N",
            "--empty-password",
        ])
        .status()
        .and_then(|_| {
            Command::new("certutil")
                .args([
                    "-d",
                    &format!("sql:{}", nssdb.display()),
                    "-A",
                    "-t",
                    "C,,",
                    "-n",
                    "witm",
                    "-i",
                    &witm_ca(),
                ])
                .status()
        })
        .expect("run certutil (apt-get install libnss3-tools)");
    assert!(added.success());
    let output = Command::new(chromium)
        .env("HOME", &profile)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.join("data").display()),
            &format!("--proxy-server={}", witm.proxy_url()),
            // Chromium skips the proxy for loopback unless told not to.
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=5000",
            "--dump-dom",
            &origin.https_url("/page"),
        ])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&output.stdout);
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        dom.contains("hello from origin"),
        "the page did not load: {dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dom.contains(r#"<p id="witm">injected by witm</p>"#),
        "{dom}"
    );
}

#[test]
fn ignored_hosts_pass_through_with_the_servers_own_certificate() {
    let https = HttpsOrigin::start("origin-ignored");
    let origin = &https.origin;
    // No --upstream-ca: witm never talks TLS to an ignored host itself.
    let witm = start_with_args(&["add-header"], &["--ignore-hosts", "^localhost:"]);
    // The client sees the origin's certificate: it verifies with the origin's CA …
    let origin_ca = https.ca_path();
    let response = curl(
        &witm.proxy_url(),
        &["--cacert", &origin_ca, &origin.https_url("/through")],
    );
    assert_eq!(response.status, 200);
    assert!(
        response.header_values("newheader").is_empty(),
        "plugins do not see ignored hosts"
    );
    // … and not with witm's.
    let output = Command::new("curl")
        .args([
            "-sS",
            "-x",
            &witm.proxy_url(),
            "--cacert",
            &witm_ca(),
            &origin.https_url("/through"),
        ])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "witm's CA must not verify a passed-through host"
    );
}

#[test]
fn an_untrusted_server_certificate_gives_502_and_the_error_event() {
    let trusted_ca = TestCa::new("trusted");
    let trusted = Origin::start_https(&trusted_ca);
    let untrusted = Origin::start_https(&TestCa::new("untrusted"));
    let upstream_ca = trusted_ca.cert_pem_path.display().to_string();
    let witm = start_with_args(&["recorder"], &["--upstream-ca", &upstream_ca]);
    let response = curl(
        &witm.proxy_url(),
        &["--cacert", &witm_ca(), &untrusted.https_url("/bad")],
    );
    assert_eq!(response.status, 502);
    assert!(response.body.contains("certificate"), "{}", response.body);
    assert!(
        response
            .body
            .contains(&format!("localhost:{}", untrusted.address.port())),
        "{}",
        response.body
    );
    assert!(
        witm.wait_for_log("event=error kind=tls message=TLS handshake with server", 1),
        "{}",
        witm.stderr().join("\n")
    );
    assert!(untrusted.seen().is_empty());
    // The proxy goes on serving.
    let fine = curl(
        &witm.proxy_url(),
        &["--cacert", &witm_ca(), &trusted.https_url("/fine")],
    );
    assert_eq!(fine.status, 200);
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_timed_out_and_logged() {
    use std::io::{Read, Write};
    let origin = Origin::start();
    let witm = start_with_args(&[], &["--tls-handshake-timeout-ms", "300"]);
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", witm.port)).unwrap();
    stalled
        .write_all(b"CONNECT stalled.test:443 HTTP/1.1\r\nHost: stalled.test:443\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // The first byte of a TLS record, then nothing.
    stalled.write_all(&[0x16]).unwrap();
    assert!(
        witm.wait_for_log("stalled.test:443: TLS handshake timed out", 1),
        "{}",
        witm.stderr().join("\n")
    );
    // Meanwhile and after, everyone else is served.
    let response = curl(&witm.proxy_url(), &[&origin.url("/after")]);
    assert_eq!(response.status, 200);
}

#[test]
fn plain_http_inside_a_connect_tunnel_is_intercepted_too() {
    let origin = Origin::start();
    let witm = start_with(&["add-header"]);
    // -p: curl opens a CONNECT tunnel even for http://.
    let response = curl(&witm.proxy_url(), &["-p", &origin.url("/tunnelled")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header_values("newheader"), ["foo"]);
    assert_eq!(origin.seen()[0].path, "/tunnelled");
}

#[test]
fn a_tunnel_carries_requests_to_its_own_target_only() {
    let origin = Origin::start();
    let elsewhere = Origin::start();
    let witm = start_with(&["add-header"]);
    let other = Origin::start_unrecorded();
    let bystander = Bystander::start(witm.proxy_url(), other.url("/bystander"));
    // Inside CONNECT origin, a request naming another server: 421, and the
    // other server sees nothing.
    let misdirected = curl(
        &witm.proxy_url(),
        &[
            "-p",
            "--request-target",
            &elsewhere.url("/secret"),
            &origin.url("/"),
        ],
    );
    assert_eq!(misdirected.status, 421, "{}", misdirected.body);
    assert!(
        misdirected.body.contains("this tunnel goes to"),
        "{}",
        misdirected.body
    );
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    // Absolute-form for the tunnel's own target is fine.
    let own = curl(
        &witm.proxy_url(),
        &[
            "-p",
            "--request-target",
            &origin.url("/own"),
            &origin.url("/"),
        ],
    );
    assert_eq!(own.status, 200);
    assert_eq!(origin.seen().last().unwrap().path, "/own");
    bystander.finish().assert_unharmed(1);
}

#[test]
fn witm_ca_says_where_the_certificate_is() {
    let confdir = target_dir().join(format!("e2e-ca-{}", std::process::id()));
    let output = Command::new(witm_binary())
        .args(["ca", "--confdir", confdir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&confdir.join("witm-ca-cert.pem").display().to_string()),
        "{text}"
    );
    assert!(
        !text.contains("witm-ca-key.pem"),
        "the key's path is not advertised"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(confdir.join("witm-ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(&confdir);
}

#[test]
fn a_plugin_can_refuse_a_connect() {
    let witm = start_with(&["gatekeeper"]);
    let output = Command::new("curl")
        .args([
            "-sS",
            "-v",
            "-x",
            &witm.proxy_url(),
            "https://blocked.test/",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("< HTTP/1.1 403"), "{stderr}");
    assert!(
        witm.wait_for_flow_line("CONNECT http://blocked.test:443 403"),
        "{:?}",
        witm.stdout()
    );
}

#[test]
fn a_plugin_can_pass_a_tls_connection_through_from_its_client_hello() {
    let https = HttpsOrigin::start("origin-hello");
    let origin = &https.origin;
    // The gatekeeper passes through TLS whose SNI is "localhost".
    let witm = https.witm(&["gatekeeper localhost", "add-header"], &[]);
    let origin_ca = https.ca_path();
    let response = curl(
        &witm.proxy_url(),
        &["--cacert", &origin_ca, &origin.https_url("/passed")],
    );
    assert_eq!(
        response.status, 200,
        "the client verified the origin's own certificate"
    );
    assert!(
        response.header_values("newheader").is_empty(),
        "no plugin saw the flow"
    );
    assert!(
        witm.wait_for_log("clienthello sni=localhost alpn=h2,http/1.1", 1),
        "{}",
        witm.stderr().join("\n")
    );
    // Another name is intercepted as usual (127.0.0.1 is in the origin's
    // certificate too, but the SNI differs).
    let url = format!("https://127.0.0.1:{}/intercepted", origin.address.port());
    let intercepted = curl(&witm.proxy_url(), &["--cacert", &witm_ca(), &url]);
    assert_eq!(intercepted.status, 200);
    assert_eq!(intercepted.header_values("newheader"), ["foo"]);
}

#[test]
fn ssl_insecure_accepts_a_server_nobody_vouches_for() {
    let origin = Origin::start_https(&TestCa::new("unvouched"));
    let witm = start_with_args(&["add-header"], &["--ssl-insecure"]);
    let response = curl(
        &witm.proxy_url(),
        &["--cacert", &witm_ca(), &origin.https_url("/insecure")],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header_values("newheader"), ["foo"]);
}

#[test]
fn allow_hosts_intercepts_only_matching_hosts() {
    let https = HttpsOrigin::start("origin-allow");
    let origin = &https.origin;
    let pattern = format!("^127\\.0\\.0\\.1:{}$", origin.address.port());
    let witm = https.witm(&["add-header"], &["--allow-hosts", &pattern]);
    // localhost does not match: passed through, the origin's own certificate.
    let origin_ca = https.ca_path();
    let through = curl(
        &witm.proxy_url(),
        &["--cacert", &origin_ca, &origin.https_url("/through")],
    );
    assert!(through.header_values("newheader").is_empty());
    // 127.0.0.1 matches: intercepted.
    let url = format!("https://127.0.0.1:{}/intercepted", origin.address.port());
    let intercepted = curl(&witm.proxy_url(), &["--cacert", &witm_ca(), &url]);
    assert_eq!(intercepted.header_values("newheader"), ["foo"]);
}

#[test]
fn an_http1_client_is_translated_to_http2_for_a_retargeted_request() {
    // The client speaks HTTP/1.1 to witm; a plugin sends the request to
    // another HTTPS origin, which witm reaches through its pool (HTTP/2,
    // since the origin offers it).
    let ca = TestCa::new("origin-translate");
    let first = Origin::start_https(&ca);
    let second = Origin::start_https(&ca);
    let upstream_ca = ca.cert_pem_path.display().to_string();
    let base = format!("https://localhost:{}", second.address.port());
    let witm = start_with_args(
        &[&format!("retarget {base}")],
        &["--upstream-ca", &upstream_ca],
    );
    let response = curl(
        &witm.proxy_url(),
        &[
            "--cacert",
            &witm_ca(),
            "--http1.1",
            &first.https_url("/elsewhere"),
        ],
    );
    assert_eq!(response.status, 200);
    assert!(first.seen().is_empty());
    let seen = second.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].version, "HTTP/2.0",
        "witm spoke HTTP/2 to the second origin"
    );
}

#[test]
fn a_tunnels_connection_ends_after_its_flows_and_shutdown_waits_for_them() {
    let https = HttpsOrigin::start("origin-lifecycle");
    let origin = &https.origin;
    let mut witm = https.witm(&["recorder"], &[]);
    let ca = witm_ca();
    let proxy = witm.proxy_url();

    // The tunnel's connection ends once, after its flow, not when it opens.
    let response = curl(&proxy, &["--cacert", &ca, &origin.https_url("/a")]);
    assert_eq!(response.status, 200);
    assert!(witm.wait_for_log("event=client-disconnect", 1));
    let log = witm.stderr();
    let at = |needle: &str| log.iter().position(|l| l.contains(needle)).unwrap();
    assert!(
        at("event=client-disconnect") > at("event=response status=200"),
        "{}",
        log.join("\n")
    );
    assert_eq!(witm.log_count("event=client-disconnect"), 1);

    // Stopping witm while an HTTPS flow is in flight: it finishes, and
    // `done` comes after it.
    let url = origin.https_url("/slow");
    let slow = {
        let (proxy, ca) = (proxy.clone(), ca.clone());
        std::thread::spawn(move || curl(&proxy, &["--cacert", &ca, &url]))
    };
    let started = std::time::Instant::now();
    while !origin.seen().iter().any(|r| r.path == "/slow") {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    witm.terminate();
    let response = slow.join().unwrap();
    assert_eq!(response.status, 200, "the flow in flight finished");
    assert!(witm.stop().success());
    let log = witm.stderr();
    let last = |needle: &str| log.iter().rposition(|l| l.contains(needle)).unwrap();
    assert!(
        last("event=done") > last("event=response status=200"),
        "{}",
        log.join("\n")
    );
    assert_eq!(witm.log_count("event=client-disconnect"), 2);
}

#[test]
fn tunnels_one_after_another_share_a_server_connection_and_clients_resume_tls() {
    let https = HttpsOrigin::start("origin-reuse");
    let origin = &https.origin;
    // Two worker threads: tunnels one after another go to each in turn,
    // and each thread keeps its own server connections (whose tasks run
    // on it), as Envoy's workers keep their own pools.
    let mut witm = https.witm(&[], &["--workers", "2"]);
    let proxy = witm.proxy_url();
    let ca = witm_ca();
    // Four curl processes: four tunnels, one after another. The first two
    // tunnels' server connections (one per thread) serve the next two.
    let sent = ["/one", "/two", "/three", "/four"];
    for path in sent {
        let response = curl(&proxy, &["--cacert", &ca, &origin.https_url(path)]);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, HELLO);
    }
    let paths: Vec<String> = origin.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, sent);
    assert_eq!(
        origin.connections(),
        2,
        "one server connection per worker thread for four tunnels"
    );

    // A client's second tunnel resumes the TLS session of its first: witm
    // keeps its configuration (and session store) per host.
    let script = r#"
import socket, ssl, sys
proxy_port, port, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.create_default_context(cafile=cafile)
def get(session=None):
    s = socket.create_connection(("127.0.0.1", proxy_port))
    s.sendall(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    t = context.wrap_socket(s, server_hostname="localhost", session=session)
    t.sendall(f"GET /resume HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n".encode())
    answer = b""
    while chunk := t.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    session, reused, cipher = t.session, t.session_reused, t.cipher()[0]
    t.close()
    return session, reused, cipher
first, reused_first, cipher = get()
_, reused_second, _ = get(first)
print(reused_first, reused_second, cipher)
"#;
    let port = origin.address.port().to_string();
    let printed = python_prints(
        "python3".as_ref(),
        script,
        &[&witm.port.to_string(), &port, &ca],
    );
    // OpenSSL offers AES-256-GCM first; witm chooses AES-128-GCM (its
    // own order: host/tls/src/lib.rs).
    assert_eq!(
        printed.trim(),
        "False True TLS_AES_128_GCM_SHA256",
        "the second handshake resumed, on witm's suite"
    );
    witm.stop();
}
