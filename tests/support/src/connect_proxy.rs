//! A plain CONNECT proxy on loopback: it opens the tunnel each CONNECT asks
//! for and copies bytes both ways, touching none of them. An upstream proxy
//! for witm that, unlike a second witm, lets the server see witm's own TLS
//! and HTTP/2 (what witm sends is what the origin records).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};

use crate::tcp_server;

/// Starts the proxy; returns its port.
pub fn connect_proxy() -> u16 {
    tcp_server(|client: TcpStream| {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let mut words = request_line.split_whitespace();
        let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
            let _ = (&client).write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
            return;
        };
        let Ok(server) = TcpStream::connect(target) else {
            let _ = (&client).write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
            return;
        };
        if (&client)
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            return;
        }
        // Bytes the client sent after its head are in `reader`'s buffer.
        let mut to_server = server.try_clone().unwrap();
        let upward = std::thread::spawn(move || {
            let _ = std::io::copy(&mut reader, &mut to_server);
            let _ = to_server.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut &server, &mut &client);
        let _ = client.shutdown(Shutdown::Write);
        let _ = upward.join();
    })
}
