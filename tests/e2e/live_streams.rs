//! Server-Sent Events through witm with a `response` plugin loaded: each
//! event reaches the client as the origin sends it, not all at once when
//! the stream ends (which is what holding the body for the plugin did).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use witm_test_support::Origin;

use crate::sandbox::Bystander;
use crate::start_with;

/// Events the origin sends, and the gap between two.
const EVENTS: usize = 5;
const GAP: Duration = Duration::from_millis(400);

/// An origin answering each request with an event stream: one event every
/// [`GAP`], then the end.
fn sse_origin() -> u16 {
    witm_test_support::tcp_server(|mut stream| {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = stream.write_all(head.as_bytes());
        for n in 0..EVENTS {
            let event = format!("data: {n}\n\n");
            let _ = write!(stream, "{:x}\r\n{event}\r\n", event.len());
            std::thread::sleep(GAP);
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    })
}

#[test]
fn server_sent_events_arrive_live_with_a_response_plugin() {
    let origin = sse_origin();
    let witm = start_with(&["trailers"]);
    let other = Origin::start_unrecorded();
    let bystander = Bystander::start(witm.proxy_url(), other.url("/bystander"));
    let mut client = TcpStream::connect(("127.0.0.1", witm.port)).unwrap();
    let started = Instant::now();
    write!(
        client,
        "GET http://127.0.0.1:{origin}/events HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n\r\n"
    )
    .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(7).any(|w| w == b"data: 0") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => panic!("no first event: {}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let first = started.elapsed();
    // The whole stream takes EVENTS × GAP (2 s); the first event comes at once.
    assert!(first < GAP * 2, "the first event took {first:?}");
    assert!(
        witm.wait_for_log("a live stream (text/event-stream)", 1),
        "{}",
        witm.stderr().join("\n")
    );
    // The plugin's `response` ran (its body was streamed, trailers none).
    assert!(witm.wait_for_log("response-trailers", 1));
    bystander.finish().assert_unharmed(1);
}
