//! Timeouts on either side, each against a real slow or silent peer, while
//! another client keeps being served: a request body that trickles or
//! stops, an origin that never answers or stops mid-body, an idle HTTP/2
//! connection inside a tunnel, an HTTP/2 server that stops answering
//! pings, an idle raw tunnel. Each must be cut in
//! about its time, answered with the status of whose fault it was, and
//! counted in `/metrics`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use witm_test_support::{Origin, Witm, curl, free_port, guests};

use crate::sandbox::{Bystander, metric, scratch, start_with_config};

/// Short timeouts, so that each test takes seconds.
const SHORT: [&str; 10] = [
    "--body-idle-timeout-ms",
    "800",
    "--request-body-timeout-ms",
    "2000",
    "--response-timeout-ms",
    "1000",
    "--idle-timeout-ms",
    "1000",
    "--tunnel-idle-timeout-ms",
    "1000",
];

/// witm with [`SHORT`] timeouts, `extra` arguments and an admin port;
/// a bystander client asking the origin through it all along.
struct Slow {
    witm: Witm,
    admin_port: u16,
    bystander: Bystander,
    _origin: Origin,
}

impl Slow {
    fn start(test: &str, extra: &[&str]) -> Slow {
        let dir = scratch(&format!("timeouts-{test}"));
        let admin_port = free_port();
        let mut args = SHORT.to_vec();
        args.extend_from_slice(extra);
        let witm = start_with_config(&dir, &format!("admin_port = {admin_port}\n"), &args, &[]);
        let origin = Origin::start_unrecorded();
        let bystander = Bystander::start(witm.proxy_url(), origin.url("/bystander"));
        Slow {
            witm,
            admin_port,
            bystander,
            _origin: origin,
        }
    }

    /// The `kind` timeout count in `/metrics`.
    fn count(&self, kind: &str) -> u64 {
        metric(self.admin_port, &format!("kind=\"{kind}\"}}"))
    }

    /// The bystander was served every time, promptly, all along.
    fn finish(self) {
        self.bystander.finish().assert_unharmed(6);
    }
}

/// Sends `head` then `body` through the proxy in `pieces` with `gap`
/// between them, and returns the status line it got and when.
fn trickle(proxy_port: u16, head: &str, pieces: usize, gap: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut client = TcpStream::connect(("127.0.0.1", proxy_port)).unwrap();
    client.write_all(head.as_bytes()).unwrap();
    client.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    for _ in 0..pieces {
        // A write fails once witm has answered and closed: stop then.
        if client.write_all(b"x").is_err() {
            break;
        }
        std::thread::sleep(gap);
        let mut buf = [0u8; 1024];
        if let Ok(n) = client.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
            if n > 0 {
                break;
            }
        }
    }
    client.set_nonblocking(false).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1024];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    (
        text.lines().next().unwrap_or("").to_owned(),
        started.elapsed(),
    )
}

fn post_head(origin: &Origin, length: usize) -> String {
    format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {length}\r\n\r\n",
        origin.url("/upload"),
        origin.address
    )
}

#[test]
fn request_bodies_that_stop_or_trickle_are_cut_as_the_clients_fault() {
    let trailers = guests().rust("trailers").display().to_string();
    // Streamed (no plugin) and held (a plugin subscribed to `request`).
    for plugins in [vec![], vec!["-s", trailers.as_str()]] {
        let slow = Slow::start("request-body", &plugins);
        let origin = Origin::start();
        // Three bytes, then silence: cut after the idle time (0.8 s).
        let (status, took) = trickle(
            slow.witm.port,
            &post_head(&origin, 100),
            3,
            Duration::from_millis(100),
        );
        assert!(
            status.starts_with("HTTP/1.1 400"),
            "{plugins:?}: {status:?}"
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
        // A byte every 0.3 s, never quiet for 0.8 s: cut at the total (2 s).
        let (status, took) = trickle(
            slow.witm.port,
            &post_head(&origin, 100),
            100,
            Duration::from_millis(300),
        );
        assert!(
            status.starts_with("HTTP/1.1 400"),
            "{plugins:?}: {status:?}"
        );
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
            "{took:?}"
        );
        assert_eq!(slow.count("request_body_idle"), 1);
        assert_eq!(slow.count("request_body_total"), 1);
        assert!(
            slow.witm
                .wait_for_log("the client sent no body bytes for 800ms", 1)
        );
        assert!(
            slow.witm
                .wait_for_log("the client took over 2s to send its body", 1)
        );
        slow.finish();
    }
}

/// An origin that reads each request and answers with `answer` (maybe
/// nothing, maybe a head and part of a body), then keeps the connection
/// open without a word.
fn silent_origin(answer: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer.as_bytes());
            held.push(stream);
        }
    });
    port
}

#[test]
fn a_silent_origin_gets_504_and_one_that_stops_mid_body_is_cut() {
    let trailers = guests().rust("trailers").display().to_string();
    let slow = Slow::start("origin", &["-s", trailers.as_str()]);
    let silent = silent_origin("");
    let started = Instant::now();
    let response = curl(
        &slow.witm.proxy_url(),
        &[&format!("http://127.0.0.1:{silent}/")],
    );
    assert_eq!(response.status, 504, "{response:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        response.body.contains("sent no response within"),
        "{response:?}"
    );
    // Held for the plugin: the body never ends, so the flow fails: 504.
    let stalling = silent_origin("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
    let response = curl(
        &slow.witm.proxy_url(),
        &[&format!("http://127.0.0.1:{stalling}/")],
    );
    assert_eq!(response.status, 504, "{response:?}");
    assert_eq!(slow.count("response_head"), 1);
    assert_eq!(slow.count("response_body_idle"), 1);
    slow.finish();

    // Streamed (no plugin): the client has the head and part of the body,
    // then the response is cut.
    let slow = Slow::start("origin-streamed", &[]);
    let mut client = TcpStream::connect(("127.0.0.1", slow.witm.port)).unwrap();
    write!(
        client,
        "GET http://127.0.0.1:{stalling}/ HTTP/1.1\r\nHost: 127.0.0.1:{stalling}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let cut = closed_after(&mut client);
    assert!(cut < Duration::from_secs(3), "{cut:?}");
    assert_eq!(slow.count("response_body_idle"), 1);
    slow.finish();
}

/// A TCP server that echoes what it reads.
fn echo_server() -> u16 {
    witm_test_support::tcp_server(|mut stream| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
}

/// Opens a CONNECT tunnel to `port` through the proxy.
fn connect(proxy_port: u16, port: u16) -> TcpStream {
    let mut tunnel = TcpStream::connect(("127.0.0.1", proxy_port)).unwrap();
    write!(
        tunnel,
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tunnel.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tunnel
}

/// How long until the peer closes `stream` (reads return 0).
fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) => panic!("not closed after {:?}: {e}", started.elapsed()),
        }
    }
}

#[test]
fn an_idle_raw_tunnel_is_closed_and_a_busy_one_is_not() {
    let echo = echo_server();
    let ignored = format!("127.0.0.1:{echo}");
    let slow = Slow::start("tunnel", &["--ignore-hosts", &ignored]);
    let mut tunnel = connect(slow.witm.port, echo);
    // Busy for 2 s (twice the idle time): a word every 0.4 s comes back.
    for _ in 0..5 {
        tunnel.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        tunnel.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        std::thread::sleep(Duration::from_millis(400));
    }
    let quiet = closed_after(&mut tunnel);
    assert!(quiet < Duration::from_secs(3), "{quiet:?}");
    assert_eq!(slow.count("tunnel_idle"), 1);
    assert!(slow.witm.wait_for_log("nothing either way for 1s", 1));
    slow.finish();
}

#[test]
fn an_idle_http2_connection_in_a_tunnel_is_closed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(h2c_origin());
    let slow = Slow::start("h2-idle", &[]);
    let tunnel = connect(slow.witm.port, origin);
    let idle_for = runtime.block_on(async {
        let (response, _sender, connection) = h2c_get(tunnel, origin).await;
        assert_eq!(response.status(), 200);
        // Nothing more: witm closes the connection after its idle time.
        let idle = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), connection)
            .await
            .expect("the idle connection was not closed")
            .unwrap()
            .unwrap();
        idle.elapsed()
    });
    assert!(idle_for < Duration::from_secs(3), "{idle_for:?}");
    assert_eq!(slow.count("connection_idle"), 1);
    slow.finish();
}

/// `GET /` of the origin at `port` over HTTP/2 with prior knowledge in
/// `tunnel`: its response head, the connection's sender (held, so that the
/// client does not close the connection itself) and its task (it ends when
/// the connection closes).
async fn h2c_get(
    tunnel: TcpStream,
    port: u16,
) -> (
    http::Response<hyper::body::Incoming>,
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    tunnel.set_nonblocking(true).unwrap();
    let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::from_std(tunnel).unwrap());
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://127.0.0.1:{port}/"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    (response, sender, connection)
}

/// An HTTP/2 prior-knowledge origin answering 200 to everything.
async fn h2c_origin() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(|_request| async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }),
                    ),
            );
        }
    });
    port
}

/// An HTTP/2 prior-knowledge origin that answers the first request with a
/// head and three bytes of a body, then reads and writes nothing more: it
/// answers no ping.
fn deaf_h2c_origin() -> u16 {
    witm_test_support::tcp_server(|mut stream| {
        let mut preface = [0u8; 24];
        if stream.read_exact(&mut preface).is_err() {
            return;
        }
        // An empty SETTINGS, and the ACK of the client's.
        let _ = stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]);
        // Frames until the request's HEADERS (type 1).
        loop {
            let mut header = [0u8; 9];
            if stream.read_exact(&mut header).is_err() {
                return;
            }
            let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut payload = vec![0u8; length];
            if stream.read_exact(&mut payload).is_err() {
                return;
            }
            if header[3] == 1 {
                break;
            }
        }
        // HEADERS on stream 1, END_HEADERS, `:status: 200` (HPACK index
        // 8), then DATA "abc" on stream 1 with no END_STREAM.
        let _ = stream.write_all(&[0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88]);
        let _ = stream.write_all(&[0, 0, 3, 0, 0, 0, 0, 0, 1, b'a', b'b', b'c']);
        // Deaf from here on, the connection held open.
        std::thread::sleep(Duration::from_secs(30));
    })
}

#[test]
fn a_server_that_stops_answering_http2_pings_is_cut_before_its_body_idles_out() {
    let origin = deaf_h2c_origin();
    let dir = scratch("timeouts-h2-deaf");
    let admin_port = free_port();
    // The body's idle time far longer than a ping's round: the ping must be
    // what cuts it.
    let witm = start_with_config(
        &dir,
        &format!("admin_port = {admin_port}\n"),
        &[
            "--h2-keepalive-ms",
            "300",
            "--body-idle-timeout-ms",
            "20000",
        ],
        &[],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tunnel = connect(witm.port, origin);
    let (first, cut_after) = runtime.block_on(async {
        let (response, _sender, _connection) = h2c_get(tunnel, origin).await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = http_body_util::BodyExt::frame(&mut body).await;
        let first = first.and_then(|f| f.ok()).and_then(|f| f.into_data().ok());
        let waiting = Instant::now();
        let rest = tokio::time::timeout(
            Duration::from_secs(10),
            http_body_util::BodyExt::frame(&mut body),
        )
        .await
        .expect("the body of a server that answers no ping was not cut");
        assert!(!matches!(rest, Some(Ok(_))), "{rest:?}");
        (first, waiting.elapsed())
    });
    assert_eq!(first.as_deref(), Some(&b"abc"[..]));
    assert!(cut_after < Duration::from_secs(3), "{cut_after:?}");
}
