//! Proxy modes with real curl: reverse (HTTP and HTTPS on the listener,
//! HTTP and HTTPS to the server), upstream (through a second witm, with and
//! without the credentials it asks for), SOCKS5 (with and without login),
//! several listeners of different modes in one process, a plugin choosing
//! the upstream per flow, and SIGHUP and a graceful stop with every mode.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use witm_test_support::{
    HELLO, Origin, TestCa, Witm, connect_proxy, curl, free_port, guests, target_dir,
};

use crate::https::witm_ca;
use crate::sandbox::start_with_config;
use crate::start_with_args;

fn scratch(name: &str) -> PathBuf {
    let dir = target_dir().join("e2e-modes").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// curl with no proxy at all (a reverse proxy is the server to its client).
const NO_PROXY: &str = "";

#[test]
fn reverse_mode_over_http_and_https_rewrites_host_unless_kept() {
    let origin = Origin::start();
    let mode = format!("reverse:{}", origin.url(""));
    let witm = start_with_args(&[], &["--mode", &mode]);
    let front = format!("127.0.0.1:{}", witm.port);

    let plain = curl(NO_PROXY, &[&format!("http://{front}/page?plain")]);
    assert_eq!(plain.status, 200);
    assert!(plain.body.contains("hello from origin"), "{}", plain.body);
    let seen = origin.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/page?plain");
    assert_eq!(
        last.header_values("host"),
        [origin.url("").trim_start_matches("http://")],
        "the server sees its own name"
    );

    // HTTPS on the same listener, with a certificate from witm's CA, in
    // HTTP/1.1 and HTTP/2.
    let ca = witm_ca();
    for version in ["--http1.1", "--http2"] {
        let secure = curl(
            NO_PROXY,
            &[
                "--cacert",
                &ca,
                version,
                "--resolve",
                &format!("front.test:{}:127.0.0.1", witm.port),
                &format!("https://front.test:{}/tls{version}", witm.port),
            ],
        );
        assert_eq!(secure.status, 200, "{version}");
        assert!(secure.body.contains(HELLO.trim()), "{}", secure.body);
    }
    assert!(origin.seen().iter().any(|r| r.path == "/tls--http2"));
    assert!(witm.wait_for_flow_line("/tls--http2"));

    // --keep-host-header: the client's Host goes on.
    let kept = start_with_args(&[], &["--mode", &mode, "--keep-host-header"]);
    curl(NO_PROXY, &[&format!("http://127.0.0.1:{}/kept", kept.port)]);
    let seen = origin.seen();
    let last = seen.iter().rev().find(|r| r.path == "/kept").unwrap();
    assert_eq!(
        last.header_values("host"),
        [format!("127.0.0.1:{}", kept.port)]
    );
}

#[test]
fn reverse_mode_to_an_https_server() {
    let ca = TestCa::new("reverse-backend");
    let origin = Origin::start_https(&ca);
    let ca_path = ca.cert_pem_path.display().to_string();
    let mode = format!("reverse:{}", origin.https_url(""));
    let witm = start_with_args(&[], &["--mode", &mode, "--upstream-ca", &ca_path]);
    let answered = curl(
        NO_PROXY,
        &[&format!("http://127.0.0.1:{}/over-tls", witm.port)],
    );
    assert_eq!(answered.status, 200);
    assert!(origin.seen().iter().any(|r| r.path == "/over-tls"));
    // A server witm cannot verify is a 502, not a pass.
    let untrusted = start_with_args(&[], &["--mode", &mode]);
    let refused = curl(
        NO_PROXY,
        &[&format!("http://127.0.0.1:{}/untrusted", untrusted.port)],
    );
    assert_eq!(refused.status, 502, "{}", refused.body);
}

/// A second witm as the upstream proxy, trusting `upstream_ca` for servers
/// and, with `credentials`, asking for them.
fn upstream_witm(credentials: Option<&str>, upstream_ca: &str) -> Witm {
    match credentials {
        None => start_with_args(&[], &["--upstream-ca", upstream_ca]),
        Some(credentials) => {
            let dir = scratch(&format!("upstream-{}", free_port()));
            let config = format!(
                "[[tenants]]\nname = \"corp\"\ncredentials = [{credentials:?}]\n\
                 [[tenants.plugins]]\npath = {tag:?}\nargs = [\"corp\"]\n",
                tag = guests().rust("tag"),
            );
            start_with_config(&dir, &config, &["--upstream-ca", upstream_ca], &[])
        }
    }
}

#[test]
fn upstream_mode_chains_http_and_https_through_a_second_witm() {
    let ca = TestCa::new("upstream-origin");
    let origin = Origin::start_https(&ca);
    let plain_origin = Origin::start();
    let upstream = upstream_witm(None, &ca.cert_pem_path.display().to_string());
    let mode = format!("upstream:http://127.0.0.1:{}", upstream.port);
    // The front witm sees the servers' certificates as the upstream witm
    // mints them: it trusts witm's CA.
    let front = start_with_args(&[], &["--mode", &mode, "--upstream-ca", &witm_ca()]);
    let proxy = front.proxy_url();

    let plain = curl(&proxy, &[&plain_origin.url("/chained-plain")]);
    assert_eq!(plain.status, 200);
    assert!(
        upstream.wait_for_flow_line("/chained-plain"),
        "the upstream carried it"
    );

    let secure = curl(
        &proxy,
        &["--cacert", &witm_ca(), &origin.https_url("/chained-tls")],
    );
    assert_eq!(secure.status, 200, "{}", secure.body);
    assert!(front.wait_for_flow_line("/chained-tls"));
    assert!(
        upstream.wait_for_flow_line("/chained-tls"),
        "the upstream intercepted the CONNECT the front made"
    );
    assert!(origin.seen().iter().any(|r| r.path == "/chained-tls"));
}

/// `request` as raw bytes to witm's listener on `port`; the answer's head
/// line.
fn ask_raw(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn upstream_mode_sends_host_over_http1_and_not_over_http2() {
    // A proxy that only tunnels, so the origins see witm's own HTTP.
    let ca = TestCa::new("upstream-host-origin");
    let h2 = Origin::start_https(&ca);
    let h1 = Origin::start_https_http1(&ca);
    let mode = format!("upstream:http://127.0.0.1:{}", connect_proxy());
    let ca_path = ca.cert_pem_path.display().to_string();
    let front = start_with_args(&[], &["--mode", &mode, "--upstream-ca", &ca_path]);
    // `https://` URLs asked of the proxy itself: the upstream route's pool
    // sends them, through a tunnel.
    let ask = |origin: &Origin, path: &str, host: &str| {
        let url = origin.https_url(path);
        let request = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = ask_raw(front.port, &request);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let seen = origin.seen();
        seen.into_iter().find(|r| r.path == path).unwrap()
    };
    let h2_authority = format!("localhost:{}", h2.address.port());
    let over_h2 = ask(&h2, "/via-h2", &h2_authority);
    assert_eq!(over_h2.version, "HTTP/2.0");
    // nginx refuses a `host` beside `:authority` (400).
    assert!(over_h2.header_values("host").is_empty(), "{over_h2:?}");

    let h1_authority = format!("localhost:{}", h1.address.port());
    let over_h1 = ask(&h1, "/via-h1", &h1_authority);
    assert_eq!(over_h1.version, "HTTP/1.1");
    assert_eq!(over_h1.header_values("host"), [h1_authority]);
    // A `host` that names another server (a virtual host) goes as it is,
    // over HTTP/1.1 even to a server that offers HTTP/2 (where it could not
    // go beside `:authority`).
    let virtual_host = ask(&h1, "/virtual-host", "other.example");
    assert_eq!(virtual_host.header_values("host"), ["other.example"]);
    let virtual_host = ask(&h2, "/virtual-host-h2", "other.example");
    assert_eq!(virtual_host.version, "HTTP/1.1");
    assert_eq!(virtual_host.header_values("host"), ["other.example"]);
    // The server's own name still goes over HTTP/2 afterwards.
    let again = ask(&h2, "/via-h2-again", &h2_authority);
    assert_eq!(again.version, "HTTP/2.0");
    // A WebSocket upgrade, which HTTP/2 cannot carry as it is, goes over
    // HTTP/1.1 too, and is switched.
    let mut stream = TcpStream::connect(("127.0.0.1", front.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let upgrade = format!(
        "GET {} HTTP/1.1\r\nHost: {h2_authority}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        h2.https_url("/ws")
    );
    stream.write_all(upgrade.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(String::from_utf8_lossy(&head), "HTTP/1.1 101");
}

#[test]
fn upstream_mode_sends_the_credentials_the_upstream_asks_for() {
    let origin = Origin::start();
    let upstream = upstream_witm(Some("corp:s3cret"), &witm_ca());

    let with = format!("upstream:http://corp:s3cret@127.0.0.1:{}", upstream.port);
    let front = start_with_args(&[], &["--mode", &with]);
    let answered = curl(&front.proxy_url(), &[&origin.url("/with-credentials")]);
    assert_eq!(answered.status, 200);
    assert_eq!(
        answered.header_values("x-tag"),
        ["corp"],
        "the upstream's tenant"
    );
    assert!(
        !front.stderr().join("\n").contains("s3cret"),
        "credentials are never logged"
    );

    let without = format!("upstream:http://127.0.0.1:{}", upstream.port);
    let front = start_with_args(&[], &["--mode", &without]);
    let refused = curl(&front.proxy_url(), &[&origin.url("/without")]);
    assert_eq!(refused.status, 407, "the upstream's refusal comes back");
    // HTTPS: the CONNECT to the upstream is refused; the client gets 502.
    let refused = curl(
        &front.proxy_url(),
        &["--cacert", &witm_ca(), "https://localhost:1/"],
    );
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(refused.body.contains("407"), "{}", refused.body);
}

#[test]
fn socks5_with_and_without_login_beside_a_regular_listener() {
    let origin = Origin::start();
    let ca = TestCa::new("socks-origin");
    let tls_origin = Origin::start_https(&ca);
    let socks_port = free_port();
    let socks = format!("socks5@{socks_port}");
    let witm = start_with_args(
        &["tag via-socks"],
        &[
            "--mode",
            "regular",
            "--mode",
            &socks,
            "--upstream-ca",
            &ca.cert_pem_path.display().to_string(),
        ],
    );
    let socks_proxy = format!("socks5h://127.0.0.1:{socks_port}");
    let plain = curl(&socks_proxy, &[&origin.url("/socks-plain")]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header_values("x-tag"), ["via-socks"]);
    let secure = curl(
        &socks_proxy,
        &["--cacert", &witm_ca(), &tls_origin.https_url("/socks-tls")],
    );
    assert_eq!(secure.status, 200);
    assert_eq!(secure.header_values("x-tag"), ["via-socks"], "intercepted");
    // The regular listener of the same process still serves.
    let regular = curl(&witm.proxy_url(), &[&origin.url("/regular")]);
    assert_eq!(regular.header_values("x-tag"), ["via-socks"]);

    // With login: the credentials name the tenant.
    let dir = scratch("socks-login");
    let login_port = free_port();
    let config = format!(
        "mode = [\"regular\", \"socks5@{login_port}\"]\n\
         [[tenants]]\nname = \"a\"\ncredentials = [\"alice:wonder\"]\n\
         [[tenants.plugins]]\npath = {tag:?}\nargs = [\"tenant-a\"]\n",
        tag = guests().rust("tag"),
    );
    let _login = start_with_config(&dir, &config, &[], &[]);
    let with_login = format!("socks5h://alice:wonder@127.0.0.1:{login_port}");
    let admitted = curl(&with_login, &[&origin.url("/socks-login")]);
    assert_eq!(admitted.header_values("x-tag"), ["tenant-a"]);
    for refused in [
        format!("socks5h://alice:nope@127.0.0.1:{login_port}"),
        format!("socks5h://127.0.0.1:{login_port}"),
    ] {
        let output = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-x", &refused])
            .arg(origin.url("/socks-refused"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "{refused} got through");
    }
    assert!(!origin.seen().iter().any(|r| r.path == "/socks-refused"));
}

#[test]
fn a_plugin_chooses_the_upstream_per_flow() {
    let origin = Origin::start();
    let ca = TestCa::new("router-origin");
    let tls_origin = Origin::start_https(&ca);
    let ca_path = ca.cert_pem_path.display().to_string();
    let upstream = upstream_witm(None, &ca_path);
    let via = format!("http://127.0.0.1:{}", upstream.port);
    let front = start_with_args(
        &["router"],
        &["--upstream-ca", &witm_ca(), "--upstream-ca", &ca_path],
    );
    let proxy = front.proxy_url();

    let routed = curl(
        &proxy,
        &["-H", &format!("x-route: {via}"), &origin.url("/routed")],
    );
    assert_eq!(routed.status, 200);
    assert!(upstream.wait_for_flow_line("/routed"));
    let direct = curl(&proxy, &[&origin.url("/direct")]);
    assert_eq!(direct.status, 200);
    assert!(front.wait_for_flow_line("/direct"));
    assert!(
        !upstream.stdout().iter().any(|l| l.contains("/direct")),
        "not chosen: straight to the server"
    );

    // HTTPS: the CONNECT's header routes the whole tunnel.
    let secure = curl(
        &proxy,
        &[
            "--proxy-header",
            &format!("x-route: {via}"),
            "--cacert",
            &witm_ca(),
            &tls_origin.https_url("/routed-tunnel"),
        ],
    );
    assert_eq!(secure.status, 200, "{}", secure.body);
    assert!(upstream.wait_for_flow_line("/routed-tunnel"));

    // A malformed URL is refused at the call; the flow goes on as it was.
    let bad = curl(
        &proxy,
        &["-H", "x-route: ftp://nowhere", &origin.url("/bad-route")],
    );
    assert_eq!(bad.status, 200);
    assert!(
        front.wait_for_log("set-upstream ftp://nowhere: HostError::Invalid", 1),
        "{}",
        front.stderr().join("\n")
    );
}

#[test]
fn sighup_and_a_graceful_stop_with_every_mode() {
    let origin = Origin::start();
    let (reverse_port, socks_port) = (free_port(), free_port());
    let reverse = format!("reverse:{}@{reverse_port}", origin.url(""));
    let socks = format!("socks5@{socks_port}");
    let mut witm = start_with_args(
        &["tag before"],
        &["--mode", "regular", "--mode", &reverse, "--mode", &socks],
    );
    let ask = |witm: &Witm| {
        [
            curl(&witm.proxy_url(), &[&origin.url("/r")]),
            curl(NO_PROXY, &[&format!("http://127.0.0.1:{reverse_port}/v")]),
            curl(
                &format!("socks5h://127.0.0.1:{socks_port}"),
                &[&origin.url("/s")],
            ),
        ]
    };
    for answered in ask(&witm) {
        assert_eq!(answered.header_values("x-tag"), ["before"]);
    }
    // SIGHUP reads the configuration again; every listener keeps serving.
    let pid = witm.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(witm.wait_for_log("SIGHUP: reading the configuration again", 1));
    for answered in ask(&witm) {
        assert_eq!(answered.status, 200);
    }
    // A request in flight on the reverse listener finishes after SIGTERM.
    let slow = std::thread::spawn(move || {
        curl(
            NO_PROXY,
            &[&format!("http://127.0.0.1:{reverse_port}/slow")],
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    witm.terminate();
    let slow = slow.join().unwrap();
    assert_eq!(slow.status, 200, "finished, not cut");
    assert!(witm.stop().success());
}

#[test]
fn the_python_javascript_and_go_sdks_choose_the_upstream_too() {
    let origin = Origin::start();
    let upstream = upstream_witm(None, &witm_ca());
    let via = format!("http://127.0.0.1:{}", upstream.port);
    for path in [
        "tests/plugins-py/router.py",
        "tests/plugins-js/router.js",
        "tests/plugins-go/router.go",
    ] {
        let plugin = guests().script(path).display().to_string();
        let front = Witm::start(crate::witm_binary(), &["-s", &plugin])
            .unwrap_or_else(|(status, log)| panic!("{path}: witm exited ({status}):\n{log}"));
        let wanted = format!("/sdk-routed?{path}");
        let routed = curl(
            &front.proxy_url(),
            &["-H", &format!("x-route: {via}"), &origin.url(&wanted)],
        );
        assert_eq!(routed.status, 200, "{path}");
        assert!(
            upstream.wait_for_flow_line(&wanted),
            "{path}: not through the upstream"
        );
        let seen = origin.seen();
        let request = seen.iter().rev().find(|r| r.path == wanted).unwrap();
        assert_eq!(
            request.header_values("x-upstream-seen"),
            [via.as_str()],
            "{path}"
        );
        assert!(request.header_values("x-route").is_empty(), "{path}");

        let straight = format!("/sdk-direct?{path}");
        curl(
            &front.proxy_url(),
            &["-H", "x-route: direct", &origin.url(&straight)],
        );
        let seen = origin.seen();
        let request = seen.iter().rev().find(|r| r.path == straight).unwrap();
        assert_eq!(
            request.header_values("x-upstream-seen"),
            ["direct"],
            "{path}"
        );
        assert!(!upstream.stdout().iter().any(|l| l.contains(&straight)));
    }
}

#[test]
fn each_listener_carries_its_own_tenant_and_chain_from_the_configuration() {
    let origin = Origin::start();
    let dir = scratch("listener-tenants");
    let reverse_port = free_port();
    let config = format!(
        "mode = [\"regular\", \"reverse:{origin}@{reverse_port}\"]\n\
         [[tenants]]\nname = \"gateway\"\nlisten_port = {reverse_port}\n\
         [[tenants.plugins]]\npath = {tag:?}\nargs = [\"gateway\"]\n\
         [[tenants]]\nname = \"office\"\ncredentials = [\"bob:builder\"]\n\
         [[tenants.plugins]]\npath = {tag:?}\nargs = [\"office\"]\n",
        origin = origin.url(""),
        tag = guests().rust("tag"),
    );
    let witm = start_with_config(&dir, &config, &[], &[]);
    assert!(witm.wait_for_log(&format!("127.0.0.1:{reverse_port} for tenants gateway"), 1));
    let gateway = curl(NO_PROXY, &[&format!("http://127.0.0.1:{reverse_port}/gw")]);
    assert_eq!(gateway.header_values("x-tag"), ["gateway"]);
    let office = curl(
        &witm.proxy_url(),
        &["--proxy-user", "bob:builder", &origin.url("/office")],
    );
    assert_eq!(office.header_values("x-tag"), ["office"]);
}

/// Python's TLS in front of a plain-TCP port: an upstream proxy reached
/// over TLS (`upstream:https://`), as a TLS-terminating load balancer in
/// front of a corporate proxy would be.
const TLS_FRONT: &str = r#"
import socket, ssl, sys, threading
cert, key, backend = sys.argv[1], sys.argv[2], int(sys.argv[3])
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
print(listener.getsockname()[1], flush=True)

def pump(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for end in (sink, source):
        try:
            end.close()
        except OSError:
            pass

def serve(client):
    try:
        client = tls.wrap_socket(client, server_side=True)
    except OSError:
        return
    upstream = socket.create_connection(("127.0.0.1", backend))
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    pump(upstream, client)

while True:
    accepted, _ = listener.accept()
    threading.Thread(target=serve, args=(accepted,), daemon=True).start()
"#;

/// A child process killed when the test ends, passed or not.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn upstream_mode_reaches_its_proxy_over_tls() {
    use std::io::BufRead;
    let origin = Origin::start();
    let ca = TestCa::new("tls-front");
    let tls_origin = Origin::start_https(&ca);
    let ca_path = ca.cert_pem_path.display().to_string();
    let upstream = upstream_witm(None, &ca_path);
    let (cert, key) = ca.server_pem_files("tls-front");
    let mut front_tls = KilledOnDrop(
        std::process::Command::new("python3")
            .args(["-c", TLS_FRONT])
            .arg(&cert)
            .arg(&key)
            .arg(upstream.port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut port = String::new();
    std::io::BufReader::new(front_tls.0.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let mode = format!("upstream:https://localhost:{}", port.trim());
    let front = start_with_args(
        &[],
        &[
            "--mode",
            &mode,
            "--upstream-ca",
            &ca_path,
            "--upstream-ca",
            &witm_ca(),
        ],
    );
    let plain = curl(&front.proxy_url(), &[&origin.url("/over-tls-plain")]);
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert!(upstream.wait_for_flow_line("/over-tls-plain"));
    let secure = curl(
        &front.proxy_url(),
        &[
            "--cacert",
            &witm_ca(),
            &tls_origin.https_url("/over-tls-secure"),
        ],
    );
    assert_eq!(secure.status, 200, "{}", secure.body);
    assert!(upstream.wait_for_flow_line("/over-tls-secure"));
}
