//! Proxy authentication and tenants, end to end at the crate level: the
//! proxy engine with native hooks, a real origin, and the real curl.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

use witm_flow::{Events, Flow, FlowCtx, FlowHooks};
use witm_proxy::{Authenticator, Proxy, ProxyOptions, TlsOptions};
use witm_test_support::{HELLO, Origin, TestCa, curl, target_dir};
use witm_tls::{CertificateAuthority, Upstream, UpstreamTrust};

/// One flow event the hooks saw: its name, the flow's URL and tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    event: &'static str,
    url: String,
    tenant: Option<String>,
    /// Whether the flow's request still carried `Proxy-Authorization`.
    credentials: bool,
}

/// Hooks that record the tenant of every flow event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn note(&self, event: &'static str, flow: &Flow, ctx: FlowCtx<'_, ()>) {
        self.0.lock().unwrap().push(Seen {
            event,
            url: flow.request.url(),
            tenant: ctx.tenant.map(|t| t.to_string()),
            credentials: flow.request.headers.get("proxy-authorization").is_some(),
        });
    }

    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// (event, tenant) of every event, in order.
    fn tenants(&self) -> Vec<(&'static str, Option<String>)> {
        self.seen()
            .into_iter()
            .map(|s| (s.event, s.tenant))
            .collect()
    }
}

impl FlowHooks for Recorder {
    type Ctx = ();
    fn subscriptions(&self) -> Events {
        Events::REQUEST_HEADERS | Events::REQUEST | Events::HTTP_CONNECT | Events::ERROR
    }

    async fn request_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, ()>) {
        self.note("request-headers", flow, ctx);
    }

    async fn request(&self, flow: &mut Flow, ctx: FlowCtx<'_, ()>) {
        self.note("request", flow, ctx);
    }

    async fn http_connect(&self, flow: &mut Flow, ctx: FlowCtx<'_, ()>) {
        self.note("http-connect", flow, ctx);
    }

    async fn error(&self, flow: &mut Flow, ctx: FlowCtx<'_, ()>) {
        self.note("error", flow, ctx);
    }
}

/// alice:pw is tenant "a", bob:p:w (a password with ':') is tenant "b".
fn alice_and_bob() -> Authenticator {
    Arc::new(|user, password| match (user, password) {
        ("alice", "pw") => Some(Arc::from("a")),
        ("bob", "p:w") => Some(Arc::from("b")),
        _ => None,
    })
}

/// The proxy on its own thread and runtime, stopped when dropped.
struct TestProxy {
    address: SocketAddr,
    hooks: Recorder,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestProxy {
    fn start(options: ProxyOptions) -> TestProxy {
        let hooks = Recorder::default();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let proxy_hooks = hooks.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                address_tx.send(listener.local_addr().unwrap()).unwrap();
                let proxy = Proxy::new(proxy_hooks, options);
                let stop = async {
                    let _ = shutdown_rx.await;
                };
                proxy.serve(listener, stop).await.unwrap();
            });
        });
        TestProxy {
            address: address_rx.recv().expect("proxy address"),
            hooks,
            _shutdown: shutdown,
        }
    }

    fn authenticating() -> TestProxy {
        TestProxy::start(ProxyOptions {
            flow_lines: false,
            authenticate: Some(alice_and_bob()),
            ..ProxyOptions::default()
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

fn some(tenant: &str) -> Option<String> {
    Some(tenant.to_owned())
}

#[test]
fn a_request_without_credentials_gets_a_407_and_reaches_nobody() {
    let origin = Origin::start();
    let proxy = TestProxy::authenticating();
    let response = curl(&proxy.url(), &[&origin.url("/secret")]);
    assert_eq!(response.status, 407);
    assert_eq!(
        response.header_values("proxy-authenticate"),
        ["Basic realm=\"witm\""]
    );
    assert!(
        response.body.contains("requires credentials"),
        "{}",
        response.body
    );
    assert!(origin.seen().is_empty());
    assert!(proxy.hooks.seen().is_empty());
}

#[test]
fn wrong_or_malformed_credentials_get_a_407() {
    let origin = Origin::start();
    let proxy = TestProxy::authenticating();
    for user in ["alice:wrong", "carol:pw", "bob:p"] {
        let response = curl(&proxy.url(), &["--proxy-user", user, &origin.url("/x")]);
        assert_eq!(response.status, 407, "{user}");
        assert!(response.body.contains("wrong"), "{}", response.body);
        assert_eq!(
            response.header_values("proxy-authenticate"),
            ["Basic realm=\"witm\""]
        );
    }
    let response = curl(
        &proxy.url(),
        &["-H", "Proxy-Authorization: Bearer abc", &origin.url("/x")],
    );
    assert_eq!(response.status, 407);
    assert!(response.body.contains("malformed"), "{}", response.body);
    assert!(origin.seen().is_empty());
    assert!(proxy.hooks.seen().is_empty());
}

#[test]
fn credentials_name_the_tenant_of_the_flow() {
    let origin = Origin::start();
    let proxy = TestProxy::authenticating();
    let alice = curl(
        &proxy.url(),
        &["--proxy-user", "alice:pw", &origin.url("/alice")],
    );
    assert_eq!((alice.status, alice.body.as_str()), (200, HELLO));
    let bob = curl(
        &proxy.url(),
        &["--proxy-user", "bob:p:w", &origin.url("/bob")],
    );
    assert_eq!((bob.status, bob.body.as_str()), (200, HELLO));
    assert_eq!(
        proxy.hooks.tenants(),
        [
            ("request-headers", some("a")),
            ("request", some("a")),
            ("request-headers", some("b")),
            ("request", some("b")),
        ]
    );
    // The credentials are the proxy's: neither plugins nor the origin see them.
    assert!(proxy.hooks.seen().iter().all(|s| !s.credentials));
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|r| r.header_values("proxy-authorization").is_empty())
    );
}

/// witm's CA, in a folder of this test process, made once (tests run in
/// parallel and would race to create it).
fn witm_ca() -> Arc<CertificateAuthority> {
    static CA: std::sync::OnceLock<Arc<CertificateAuthority>> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let dir = target_dir().join(format!("e2e-files/auth-confdir-{}", std::process::id()));
        CertificateAuthority::load_or_create(&dir).expect("witm CA")
    })
    .clone()
}

/// A proxy that authenticates and intercepts HTTPS (trusting any server).
fn intercepting(ca: Arc<CertificateAuthority>) -> TestProxy {
    let tls = TlsOptions::new(ca, Upstream::new(&UpstreamTrust::Insecure));
    TestProxy::start(ProxyOptions {
        flow_lines: false,
        authenticate: Some(alice_and_bob()),
        tls: Some(Arc::new(tls)),
        ..ProxyOptions::default()
    })
}

#[test]
fn flows_in_a_connect_tunnel_belong_to_the_connects_tenant() {
    let origin = Origin::start();
    let proxy = intercepting(witm_ca());
    // -p: curl CONNECTs first, then speaks plain HTTP in the tunnel (two
    // requests, one tunnel).
    let response = curl(
        &proxy.url(),
        &[
            "-p",
            "--proxy-user",
            "bob:p:w",
            &origin.url("/one"),
            &origin.url("/two"),
        ],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.body, format!("{HELLO}{HELLO}"));
    assert_eq!(
        proxy.hooks.tenants(),
        [
            ("http-connect", some("b")),
            ("request-headers", some("b")),
            ("request", some("b")),
            ("request-headers", some("b")),
            ("request", some("b")),
        ]
    );
    assert!(proxy.hooks.seen().iter().all(|s| !s.credentials));
    assert_eq!(origin.seen().len(), 2);
}

#[test]
fn a_connect_without_credentials_gets_a_407() {
    let origin = Origin::start();
    let proxy = intercepting(witm_ca());
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-p", "-x", &proxy.url()])
        .arg(origin.url("/x"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("407"), "{stderr}");
    assert!(origin.seen().is_empty());
    assert!(proxy.hooks.seen().is_empty());
}

#[test]
fn intercepted_https_over_http1_and_http2_inherits_the_tenant() {
    let test_ca = TestCa::new("auth-origin");
    let origin = Origin::start_https(&test_ca);
    let ca = witm_ca();
    let ca_pem = ca.cert_pem_path().display().to_string();
    let proxy = intercepting(ca);
    for (version, user) in [("--http1.1", "alice:pw"), ("--http2", "bob:p:w")] {
        let response = curl(
            &proxy.url(),
            &[
                "--cacert",
                &ca_pem,
                version,
                "--proxy-user",
                user,
                &origin.https_url("/tls"),
            ],
        );
        assert_eq!((response.status, response.body.as_str()), (200, HELLO));
    }
    assert_eq!(
        proxy.hooks.tenants(),
        [
            ("http-connect", some("a")),
            ("request-headers", some("a")),
            ("request", some("a")),
            ("http-connect", some("b")),
            ("request-headers", some("b")),
            ("request", some("b")),
        ]
    );
    let versions: Vec<String> = origin.seen().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["HTTP/1.1", "HTTP/2.0"]);
}

/// A raw HTTP/1.1 client on one connection.
struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(proxy: &TestProxy) -> Raw {
        let stream = TcpStream::connect(proxy.address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        Raw {
            reader: BufReader::new(stream),
        }
    }

    /// Sends `head` (lines without the final blank line) and reads the
    /// response: status, headers (lower-cased names) and body by
    /// content-length (none for a 2xx to CONNECT).
    fn exchange(&mut self, head: &[&str]) -> (u16, Vec<(String, String)>, String) {
        let mut request = head.join("\r\n");
        request.push_str("\r\n\r\n");
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, headers, String::from_utf8(body).unwrap())
    }
}

/// "Basic …" for `user:password`.
fn basic(credentials: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    format!("Proxy-Authorization: Basic {encoded}")
}

#[test]
fn after_a_407_the_client_retries_on_the_same_connection() {
    let origin = Origin::start();
    let proxy = intercepting(witm_ca());
    let url = origin.url("/retry");
    let host = format!("Host: {}", origin.address);
    let get = format!("GET {url} HTTP/1.1");

    let mut client = Raw::connect(&proxy);
    let (status, headers, _) = client.exchange(&[&get, &host]);
    assert_eq!(status, 407);
    assert!(headers.contains(&("proxy-authenticate".into(), "Basic realm=\"witm\"".into())));
    let (status, _, body) = client.exchange(&[&get, &host, &basic("alice:pw")]);
    assert_eq!((status, body.as_str()), (200, HELLO));

    // The same for a CONNECT, then a request inside the tunnel.
    let mut client = Raw::connect(&proxy);
    let connect = format!("CONNECT {} HTTP/1.1", origin.address);
    let (status, _, _) = client.exchange(&[&connect, &host, &basic("bob:wrong")]);
    assert_eq!(status, 407);
    let (status, _, _) = client.exchange(&[&connect, &host, &basic("bob:p:w")]);
    assert_eq!(status, 200);
    let (status, _, body) = client.exchange(&["GET /in-tunnel HTTP/1.1", &host]);
    assert_eq!((status, body.as_str()), (200, HELLO));

    assert_eq!(
        proxy.hooks.tenants(),
        [
            ("request-headers", some("a")),
            ("request", some("a")),
            ("http-connect", some("b")),
            ("request-headers", some("b")),
            ("request", some("b")),
        ]
    );
    let paths: Vec<String> = origin.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/retry", "/in-tunnel"]);
}

#[test]
fn curl_answers_the_challenge_with_proxy_anyauth() {
    let origin = Origin::start();
    let proxy = TestProxy::authenticating();
    let output = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "30", "--proxy-anyauth"])
        .args(["--proxy-user", "alice:pw", "-x", &proxy.url()])
        .arg(origin.url("/anyauth"))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), HELLO);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The first try has no credentials; curl retries on the same connection.
    assert!(stderr.contains("407"), "{stderr}");
    assert_eq!(stderr.matches("Connected to").count(), 1, "{stderr}");
    assert_eq!(
        proxy.hooks.tenants(),
        [("request-headers", some("a")), ("request", some("a"))]
    );
}

#[test]
fn a_listener_tenant_applies_without_authentication() {
    let origin = Origin::start();
    let proxy = TestProxy::start(ProxyOptions {
        flow_lines: false,
        tenant: Some(Arc::from("by-port")),
        ..ProxyOptions::default()
    });
    let response = curl(&proxy.url(), &[&origin.url("/no-credentials")]);
    assert_eq!(response.status, 200);
    assert_eq!(
        proxy.hooks.tenants(),
        [
            ("request-headers", some("by-port")),
            ("request", some("by-port"))
        ]
    );

    // With both, the credentials' tenant wins.
    let proxy = TestProxy::start(ProxyOptions {
        flow_lines: false,
        tenant: Some(Arc::from("by-port")),
        authenticate: Some(alice_and_bob()),
        ..ProxyOptions::default()
    });
    let response = curl(&proxy.url(), &[&origin.url("/no-credentials")]);
    assert_eq!(response.status, 407);
    let response = curl(
        &proxy.url(),
        &["--proxy-user", "alice:pw", &origin.url("/alice")],
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        proxy.hooks.tenants(),
        [("request-headers", some("a")), ("request", some("a"))]
    );
}

#[test]
fn without_tenants_flows_have_none() {
    let origin = Origin::start();
    let proxy = TestProxy::start(ProxyOptions {
        flow_lines: false,
        ..ProxyOptions::default()
    });
    let response = curl(&proxy.url(), &[&origin.url("/plain")]);
    assert_eq!(response.status, 200);
    assert_eq!(
        proxy.hooks.tenants(),
        [("request-headers", None), ("request", None)]
    );
}
