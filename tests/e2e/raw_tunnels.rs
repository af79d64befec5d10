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

/// Reads a capture with mitmproxy: per flow its type, then what each side
/// sent, its messages joined (TCP is a stream: chunking may differ).
const TCP_SIDES: &str = r#"
import sys
from mitmproxy import io
with open(sys.argv[1], "rb") as f:
    for flow in io.FlowReader(f).stream():
        print(flow.type, flow.server_conn.address[1])
        for side in (True, False):
            sent = b"".join(m.content for m in flow.messages if m.from_client == side)
            print("client" if side else "server", repr(sent))
"#;

#[test]
fn a_tcp_exchange_where_the_server_speaks_first_is_saved_listed_filtered_and_read_by_mitmproxy() {
    let server = line_server(Some("220 ready\r\n"));
    let dir = crate::sandbox::scratch("tcp-saved");
    let saved = dir.join("tcp.witm");
    let mut witm = start_with_args(&[], &["-w", saved.to_str().unwrap()]);
    let mut client = tunnel(witm.port, server);
    assert_eq!(read_line(&mut client), "220 ready\r\n");
    for (line, answer) in [("ehlo me\r\n", "EHLO ME\r\n"), ("quit\r\n", "QUIT\r\n")] {
        client.get_mut().write_all(line.as_bytes()).unwrap();
        assert_eq!(read_line(&mut client), answer);
    }
    // The flow is saved when the tunnel closes.
    drop(client);
    std::thread::sleep(Duration::from_millis(500));
    witm.stop();

    let flows = |filter: Option<&str>| {
        let mut command = std::process::Command::new(crate::witm_binary());
        command.arg("flows").arg(&saved);
        if let Some(filter) = filter {
            command.args(["--filter", filter]);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = flows(None);
    assert!(
        listed.contains(&format!("TCP tcp://127.0.0.1:{server} ")),
        "{listed}"
    );
    assert!(listed.contains("5 messages, 15b up, 26b down"), "{listed}");
    assert_eq!(flows(Some("~tcp & ~bs EHLO & ~bq ehlo")), listed);
    assert_eq!(flows(Some("~http")), "");
    assert_eq!(flows(Some("~bq EHLO")), "", "the client sent it lower-case");

    let out = dir.join("tcp.flow");
    crate::mitmproxy_export::export(&saved, &out);
    let read = crate::mitmproxy_export::mitmproxy_python(TCP_SIDES, &[&out]);
    assert_eq!(
        read.lines().collect::<Vec<_>>(),
        [
            format!("tcp {server}").as_str(),
            r"client b'ehlo me\r\nquit\r\n'",
            r"server b'220 ready\r\nEHLO ME\r\nQUIT\r\n'",
        ]
    );
}

#[test]
fn tcp_messages_past_the_held_bytes_budget_are_counted_not_kept() {
    let server = line_server(Some("220 ready\r\n"));
    let dir = crate::sandbox::scratch("tcp-budget");
    let saved = dir.join("tcp.witm");
    // A budget of 11 bytes: the greeting is kept, the rest only counted.
    let mut witm = start_with_args(
        &[],
        &["-w", saved.to_str().unwrap(), "--max-held-bytes", "11"],
    );
    let mut client = tunnel(witm.port, server);
    assert_eq!(read_line(&mut client), "220 ready\r\n");
    client.get_mut().write_all(b"ehlo me\r\n").unwrap();
    assert_eq!(
        read_line(&mut client),
        "EHLO ME\r\n",
        "relayed, kept or not"
    );
    drop(client);
    std::thread::sleep(Duration::from_millis(500));
    witm.stop();
    let shown = std::process::Command::new(crate::witm_binary())
        .args(["replay", "-r"])
        .arg(&saved)
        .args(["--flow", "1"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("< 220 ready\\r\\n\n"), "{shown}");
    assert!(shown.contains("2 more messages not kept"), "{shown}");
}
