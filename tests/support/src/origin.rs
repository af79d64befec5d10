//! A real origin server on loopback that records the requests it gets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;

/// What the origin saw of one request.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// "HTTP/1.1" or "HTTP/2.0".
    pub version: String,
    /// The request target's authority: HTTP/2's `:authority`; none for
    /// HTTP/1.1's origin form.
    pub authority: Option<String>,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// Every value of header `name`.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An HTTP/1.1 server on 127.0.0.1, on its own thread and runtime.
///
/// A request with `sec-websocket-key` opens a WebSocket that echoes every
/// message. Routes: `/big/N` answers N MiB of zeros, streamed; `/slow` answers after one second; `/status/NNN` answers with
/// status NNN; `/page…` answers an HTML page; `/gzip…` answers
/// [`GZIP_TEXT`] gzip-encoded; `/json…` answers [`JSON`] gzip-encoded;
/// everything else answers 200 `hello from origin`.
pub struct Origin {
    /// Where it listens.
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// The body of the origin's ordinary answer.
pub const HELLO: &str = "hello from origin\n";

/// The text served gzip-encoded under `/gzip`.
pub const GZIP_TEXT: &str = "hello gzip world\n";

/// What `/json` answers, gzip-encoded.
pub const JSON: &str = r#"{"hello": "world", "n": 1}"#;

fn gzip(data: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    Bytes::from(encoder.finish().unwrap())
}

/// Requests an origin takes at once on an HTTP/2 connection, unless told
/// otherwise: Apache's and h2o's limit (nginx allows 128).
const MOST_STREAMS: u32 = 100;

/// The HTML page served under `/page`.
pub const PAGE: &str = "<!doctype html><html><head><title>origin</title></head><body><p id=\"origin\">hello from origin</p></body></html>\n";

impl Origin {
    /// Starts the server on a free port.
    pub fn start() -> Origin {
        Self::start_with(true, None, MOST_STREAMS)
    }

    /// Starts a server that records nothing, for load tests.
    pub fn start_unrecorded() -> Origin {
        Self::start_with(false, None, MOST_STREAMS)
    }

    /// Starts an HTTPS server (HTTP/1.1 and HTTP/2) with a certificate from `ca`.
    pub fn start_https(ca: &crate::TestCa) -> Origin {
        Self::start_with(true, Some(ca.server_config()), MOST_STREAMS)
    }

    /// An HTTPS origin that offers HTTP/1.1 alone (no `h2` in ALPN).
    pub fn start_https_http1(ca: &crate::TestCa) -> Origin {
        let mut config = (*ca.server_config()).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::start_with(true, Some(std::sync::Arc::new(config)), MOST_STREAMS)
    }

    /// An HTTPS server that records nothing, for load tests.
    pub fn start_https_unrecorded(ca: &crate::TestCa) -> Origin {
        Self::start_with(false, Some(ca.server_config()), MOST_STREAMS)
    }

    /// An HTTPS origin that takes at most `streams` requests at once on
    /// an HTTP/2 connection (its `SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub fn start_https_with_streams(ca: &crate::TestCa, streams: u32) -> Origin {
        Self::start_with(true, Some(ca.server_config()), streams)
    }

    fn start_with(record: bool, tls: Option<Arc<rustls::ServerConfig>>, streams: u32) -> Origin {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let (shutdown, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let recorded = seen.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("origin runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
                address_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let _ = stream.set_nodelay(true);
                            let recorded = recorded.clone();
                            let tls = tls.clone();
                            tokio::spawn(async move {
                                let service = service_fn(move |req| answer(record.then(|| recorded.clone()), req));
                                let mut builder = auto::Builder::new(TokioExecutor::new());
                                builder.http2().max_concurrent_streams(streams);
                                match tls {
                                    None => {
                                        let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
                                    }
                                    Some(config) => {
                                        let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await else {
                                            return;
                                        };
                                        let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
                                    }
                                }
                            });
                        }
                        _ = &mut shutdown_rx => break,
                    }
                }
            });
        });
        let address = address_rx.recv().expect("origin address");
        Origin {
            address,
            seen,
            connections: counted,
            _shutdown: shutdown,
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `https://localhost:PORT` followed by `path`, for an HTTPS origin.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.address.port())
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

/// Answers a WebSocket handshake with 101 and echoes every message.
fn websocket_echo(
    request: &mut hyper::Request<hyper::body::Incoming>,
    key: &[u8],
) -> hyper::Response<BoxBody<Bytes, Infallible>> {
    use futures_util::{SinkExt, StreamExt};
    let upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = socket.next().await {
            if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut response = hyper::Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert("connection", http::HeaderValue::from_static("Upgrade"));
    headers.insert("upgrade", http::HeaderValue::from_static("websocket"));
    headers.insert(
        "sec-websocket-accept",
        tungstenite::handshake::derive_accept_key(key)
            .parse()
            .unwrap(),
    );
    response
}

/// `megabytes` MiB of zeros, sent in 64 KiB frames without being held.
struct Zeros {
    remaining: usize,
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl http_body::Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.remaining.min(ZEROS.len());
        self.remaining -= n;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            &ZEROS[..n],
        )))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining as u64)
    }
}

async fn answer(
    seen: Option<Arc<Mutex<Vec<SeenRequest>>>>,
    mut request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if let Some(key) = request.headers().get("sec-websocket-key").cloned() {
        return Ok(websocket_echo(&mut request, key.as_bytes()));
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    if let Some(seen) = seen {
        seen.lock().unwrap().push(SeenRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            version: format!("{:?}", parts.version),
            authority: parts.uri.authority().map(|a| a.to_string()),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        });
    }
    if let Some(megabytes) = path
        .strip_prefix("/big/")
        .and_then(|n| n.split('?').next().unwrap_or(n).parse::<usize>().ok())
    {
        let mut response = hyper::Response::new(
            Zeros {
                remaining: megabytes << 20,
            }
            .boxed(),
        );
        response
            .headers_mut()
            .insert("content-length", (megabytes << 20).into());
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/octet-stream"),
        );
        return Ok(response);
    }
    let mut status = 200;
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else if let Some(ms) = path.strip_prefix("/sleep/").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    } else if let Some(code) = path.strip_prefix("/status/") {
        status = code.parse().unwrap_or(400);
    }
    let (content_type, body) = if path.starts_with("/page") {
        ("text/html", Bytes::from_static(PAGE.as_bytes()))
    } else if path.starts_with("/gzip") {
        ("text/plain; charset=utf-8", gzip(GZIP_TEXT.as_bytes()))
    } else if path.starts_with("/json") {
        ("application/json", gzip(JSON.as_bytes()))
    } else {
        ("text/plain", Bytes::from_static(HELLO.as_bytes()))
    };
    let gzipped = path.starts_with("/gzip") || path.starts_with("/json");
    let mut response = hyper::Response::new(Full::new(body).boxed());
    if gzipped {
        response
            .headers_mut()
            .insert("content-encoding", http::HeaderValue::from_static("gzip"));
    }
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
        .headers_mut()
        .insert("content-type", http::HeaderValue::from_static(content_type));
    Ok(response)
}
