//! HTTPS through witm's interception, beside the same load straight to the
//! origin: requests per second with keep-alive and with one connection per
//! request, and the latency a new intercepted connection adds.
//!
//! `cargo bench -p witm --bench https` (`WITM_BENCH_SECS`, default 5).
//! The client is written here (tokio-rustls + hyper) because wrk cannot
//! tunnel through a proxy; it speaks HTTP/1.1 on both paths.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use witm_test_support::{Origin, TestCa, Witm, target_dir};

const WORKERS: usize = 16;

#[derive(Clone)]
struct Route {
    /// The proxy's port, or none to go straight to the origin.
    proxy: Option<u16>,
    origin_port: u16,
    tls: TlsConnector,
}

fn main() {
    let seconds: u64 = std::env::var("WITM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ca = TestCa::new("bench-https");
    let origin = Origin::start_https_unrecorded(&ca);
    let upstream_ca = ca.cert_pem_path.display().to_string();
    let mut witm = Witm::start(
        Path::new(env!("CARGO_BIN_EXE_witm")),
        &["-q", "--upstream-ca", &upstream_ca],
    )
    .unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let witm_ca = target_dir().join("e2e-confdir/witm-ca-cert.pem");
    let direct = Route {
        proxy: None,
        origin_port: origin.address.port(),
        tls: connector(&ca.cert_pem_path),
    };
    let proxied = Route {
        proxy: Some(witm.port),
        tls: connector(&witm_ca),
        ..direct.clone()
    };
    println!(
        "HTTPS, HTTP/1.1, {WORKERS} concurrent clients, {seconds} s per run, loopback, no plugin"
    );
    println!("{:<44} {:>12}", "setup", "requests/s");
    runtime.block_on(async {
        for (label, route, keep_alive) in [
            ("origin directly, keep-alive", &direct, true),
            ("through witm, keep-alive", &proxied, true),
            ("origin directly, new connection per request", &direct, false),
            ("through witm, new connection per request", &proxied, false),
        ] {
            let rate = load(route, keep_alive, Duration::from_secs(seconds)).await;
            println!("{label:<44} {rate:>12.0}");
        }
        let direct_ms = connection_latency(&direct).await;
        let proxied_ms = connection_latency(&proxied).await;
        println!(
            "new connection + TLS handshake + GET, one at a time: direct {direct_ms:.3} ms, through witm {proxied_ms:.3} ms (interception adds {:.3} ms)",
            proxied_ms - direct_ms
        );
    });
    witm.stop();
}

fn connector(ca_pem: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to the origin, through a CONNECT tunnel when proxied.
async fn open(route: &Route) -> TlsStream<TcpStream> {
    let target = format!("localhost:{}", route.origin_port);
    let mut tcp = TcpStream::connect(("127.0.0.1", route.proxy.unwrap_or(route.origin_port)))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    if route.proxy.is_some() {
        tcp.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
    }
    route
        .tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

async fn get(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>, port: u16) {
    let request = hyper::Request::get("/")
        .header("host", format!("localhost:{port}"))
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
}

async fn one_connection(route: &Route, deadline: Option<Instant>, done: &AtomicU64) {
    let stream = open(route).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    loop {
        get(&mut sender, route.origin_port).await;
        done.fetch_add(1, Ordering::Relaxed);
        match deadline {
            Some(deadline) if Instant::now() < deadline => sender.ready().await.unwrap(),
            _ => break,
        }
    }
}

/// Requests per second from WORKERS clients for `length`.
async fn load(route: &Route, keep_alive: bool, length: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + length;
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (route, done) = (route.clone(), done.clone());
            tokio::spawn(async move {
                if keep_alive {
                    one_connection(&route, Some(deadline), &done).await;
                } else {
                    while Instant::now() < deadline {
                        one_connection(&route, None, &done).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Mean milliseconds for connect + handshake + one GET, sequentially.
async fn connection_latency(route: &Route) -> f64 {
    let done = AtomicU64::new(0);
    for _ in 0..50 {
        one_connection(route, None, &done).await;
    }
    const ROUNDS: u32 = 300;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        one_connection(route, None, &done).await;
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(ROUNDS)
}
