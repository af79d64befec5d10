//! Tunnels that carry neither TLS nor HTTP are relayed untouched: a
//! protocol whose server speaks first (SMTP-like: the client waits for the
//! greeting) and one whose client speaks first with bytes that are not HTTP
//! (SSH-like). Interception is on, as by default.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::start_with_args;

/// A line server on loopback: greets with `greeting` (if any), then
/// answers each line upper-cased. Its port.
fn line_server(greeting: Option<&'static str>) -> u16 {
    witm_test_support::tcp_server(move |mut stream| {
        if let Some(greeting) = greeting {
            stream.write_all(greeting.as_bytes()).unwrap();
        }
        let mut lines = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = stream.write_all(line.to_uppercase().as_bytes());
            line.clear();
        }
    })
}

/// A CONNECT to `127.0.0.1:port` through witm, its 200 read.
fn tunnel(proxy_port: u16, port: u16) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut byte = [0u8];
        reader.read_exact(&mut byte).unwrap();
        head.push(byte[0] as char);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    reader
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

#[test]
fn a_server_that_speaks_first_gets_through_a_connect() {
    let server = line_server(Some("220 ready\r\n"));
    let witm = start_with_args(&[], &[]);
    let mut client = tunnel(witm.port, server);
    // The client waits for the greeting, as an SMTP client does.
    assert_eq!(read_line(&mut client), "220 ready\r\n");
    client.get_mut().write_all(b"ehlo me\r\n").unwrap();
    assert_eq!(read_line(&mut client), "EHLO ME\r\n");
}

#[test]
fn a_client_speaking_neither_tls_nor_http_is_relayed() {
    let server = line_server(None);
    let witm = start_with_args(&[], &[]);
    let mut client = tunnel(witm.port, server);
    client
        .get_mut()
        .write_all(b"SSH-2.0-witm_test\r\n")
        .unwrap();
    assert_eq!(read_line(&mut client), "SSH-2.0-WITM_TEST\r\n");
    client.get_mut().write_all(b"second line\r\n").unwrap();
    assert_eq!(read_line(&mut client), "SECOND LINE\r\n");
    // HTTP in a tunnel is still HTTP (and intercepted).
    let mut http = tunnel(witm.port, server);
    http.get_mut()
        .write_all(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = http.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 502"),
        "the line server is no HTTP server: {answer}"
    );
}
