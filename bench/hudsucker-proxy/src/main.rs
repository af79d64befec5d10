//! hudsucker-proxy PORT CA_CERT.pem CA_KEY.pem UPSTREAM_CA.pem
//!
//! Intercepts HTTP and HTTPS (with the CA given, as witm does), trusts
//! servers signed by UPSTREAM_CA, and adds `newheader: foo` to every
//! response. Prints "listening" once it accepts connections.
//!
//! Like hudsucker's own connector (its default `http2` feature), it speaks
//! HTTP/2 to a server that offers it, and its client pool then carries the
//! requests of every client connection over one server connection. witm,
//! as mitmproxy, gives each client's tunnel its own server connection.
//! `WITM_HUDSUCKER_UPSTREAM=http1` makes it speak HTTP/1.1 to servers, so
//! each request in flight has a server connection of its own, as in witm:
//! the two then do the same work per request on both sides.

use std::net::SocketAddr;
use std::sync::Arc;

use hudsucker::certificate_authority::RcgenAuthority;
use hudsucker::hyper::Response;
use hudsucker::hyper::header::HeaderValue;
use hudsucker::hyper_util::client::legacy::connect::HttpConnector;
use hudsucker::rcgen::{Issuer, KeyPair};
use hudsucker::rustls::crypto::aws_lc_rs;
use hudsucker::{Body, HttpContext, HttpHandler, Proxy};

#[derive(Clone)]
struct AddHeader;

impl HttpHandler for AddHeader {
    async fn handle_response(
        &mut self,
        _ctx: &HttpContext,
        mut res: Response<Body>,
    ) -> Response<Body> {
        res.headers_mut()
            .insert("newheader", HeaderValue::from_static("foo"));
        res
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, cert, key, upstream] = &args[..] else {
        eprintln!("usage: hudsucker-proxy PORT CA_CERT.pem CA_KEY.pem UPSTREAM_CA.pem");
        std::process::exit(2);
    };
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let key_pair = KeyPair::from_pem(&read(key)).expect("CA key");
    let issuer = Issuer::from_ca_cert_pem(&read(cert), key_pair).expect("CA certificate");
    let ca = RcgenAuthority::new(issuer, 1_000, aws_lc_rs::default_provider());

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut read(upstream).as_bytes()) {
        roots.add(cert.expect("upstream CA")).expect("upstream CA");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // TCP_NODELAY to the origin, as witm sets it: without it each new
    // HTTP/1.1 connection's TLS handshake waits on delayed ACKs (~40 ms).
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let http1 = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    let connector = match std::env::var_os("WITM_HUDSUCKER_UPSTREAM") {
        None => http1.enable_http2().wrap_connector(tcp),
        Some(v) if v == "http1" => http1.wrap_connector(tcp),
        Some(other) => {
            eprintln!("WITM_HUDSUCKER_UPSTREAM: http1 or unset, not {other:?}");
            std::process::exit(2);
        }
    };

    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("port");
    let proxy = Proxy::builder()
        .with_addr(addr)
        .with_ca(ca)
        .with_http_connector(connector)
        .with_http_handler(AddHeader)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .build()
        .expect("proxy");
    println!("listening on {addr}");
    proxy.start().await.expect("proxy");
}
