//! A real WebSocket client (tungstenite) through witm.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tungstenite::Message;

/// Opens `ws://127.0.0.1:{origin_port}/ws` through the proxy on
/// `proxy_port` (in a CONNECT tunnel, as browsers do), sends each text
/// message, and returns the replies received within a short wait.
pub fn websocket_exchange(proxy_port: u16, origin_port: u16, messages: &[&str]) -> Vec<String> {
    let mut socket = open(proxy_port, origin_port);
    for message in messages {
        socket.send(Message::text(*message)).unwrap();
    }
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut replies = Vec::new();
    while let Ok(message) = socket.read() {
        if let Ok(text) = message.to_text() {
            replies.push(text.to_owned());
        }
        if replies.len() == messages.len() {
            break;
        }
    }
    let _ = socket.close(None);
    replies
}

/// Sends one binary message of `len` bytes (as one frame) and returns the
/// close code the connection then gets, if any, within 10 s.
pub fn websocket_close_code(proxy_port: u16, origin_port: u16, len: usize) -> Option<u16> {
    let mut socket = open(proxy_port, origin_port);
    socket.send(Message::binary(vec![0x5a; len])).ok()?;
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        match socket.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

fn open(proxy_port: u16, origin_port: u16) -> tungstenite::WebSocket<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy_port)).expect("connect to witm");
    let target = format!("127.0.0.1:{origin_port}");
    write!(
        stream,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let (socket, response) = tungstenite::client(format!("ws://{target}/ws"), stream)
        .expect("WebSocket handshake through witm");
    assert_eq!(response.status(), 101);
    socket
}
