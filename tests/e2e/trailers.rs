//! HTTP/1.1 trailers (after a chunked body) through witm both ways, streamed
//! and held by a plugin. (HTTP/2's are in `grpc.rs`.) The client and the
//! origin speak HTTP/1.1 by hand so the test sees the chunked framing and
//! the trailer section as they went on the wire.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use witm_test_support::Origin;

use crate::sandbox::Bystander;
use crate::start_with;

/// The origin's answer: a chunked body with a trailer it names.
const CHUNKED_WITH_TRAILER: &str = "HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n";

/// Reads until `end` has arrived (or the peer closes or goes quiet).
fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(end.len()).any(|w| w == end) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// An origin answering one request (read up to the end of its trailer
/// section) with [`CHUNKED_WITH_TRAILER`]; it sends the request's bytes back
/// on `seen`.
fn origin() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // The head, then the body up to the blank line after trailers.
            let mut request = read_until(&mut stream, b"\r\n\r\n");
            let head_end = request
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(0)
                + 4;
            if !request[head_end..].windows(4).any(|w| w == b"\r\n\r\n") {
                let rest = read_until(&mut stream, b"\r\n\r\n");
                request.extend_from_slice(&rest);
            }
            let _ = seen.send(String::from_utf8_lossy(&request).into_owned());
            let _ = stream.write_all(CHUNKED_WITH_TRAILER.as_bytes());
        }
    });
    (port, received)
}

/// Sends a chunked request with a trailer through the proxy, saying it
/// takes trailers (`TE: trailers`: an HTTP/1.1 client that does not say so
/// gets none, RFC 9110 §6.5.1); returns what the origin got and what the
/// client got, both verbatim.
fn exchange(proxy_port: u16) -> (String, String) {
    let (port, seen) = origin();
    let mut client = TcpStream::connect(("127.0.0.1", proxy_port)).unwrap();
    let request = format!(
        "POST http://127.0.0.1:{port}/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         TE: trailers\r\nTrailer: X-Req-Sum\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         3\r\nabc\r\n0\r\nX-Req-Sum: 42\r\n\r\n"
    );
    client.write_all(request.as_bytes()).unwrap();
    let response = read_until(&mut client, b"\r\n0\r\n");
    let mut response = String::from_utf8_lossy(&response).into_owned();
    // The trailer section ends with a blank line after the last chunk.
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    response += &String::from_utf8_lossy(&rest);
    let seen = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    (seen, response)
}

/// The trailer section of a chunked message (after its last chunk), lower-cased.
fn trailer_section(message: &str) -> String {
    message
        .split_once("\r\n0\r\n")
        .map(|(_, t)| t.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("no last chunk in {message:?}"))
}

#[test]
fn http1_trailers_go_through_streamed_and_held() {
    for plugins in [&[][..], &["trailers"][..]] {
        let witm = start_with(plugins);
        let other = Origin::start_unrecorded();
        let bystander = Bystander::start(witm.proxy_url(), other.url("/bystander"));
        let (seen, response) = exchange(witm.port);
        let to_origin = trailer_section(&seen);
        assert!(to_origin.contains("x-req-sum: 42"), "{plugins:?}: {seen:?}");
        assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
        assert!(response.contains("hello"), "{response:?}");
        let to_client = trailer_section(&response);
        assert!(
            to_client.contains("x-checksum: abc"),
            "{plugins:?}: {response:?}"
        );
        if plugins.is_empty() {
            assert!(!to_client.contains("x-witm-trailer"), "{response:?}");
        } else {
            assert!(to_client.contains("x-witm-trailer: seen"), "{response:?}");
            assert!(
                witm.wait_for_log("request-trailers x-req-sum=42", 1),
                "{}",
                witm.stderr().join("\n")
            );
        }
        bystander.finish().assert_unharmed(1);
    }
}
