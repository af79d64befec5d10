//! An origin that speaks HTTP/1.1 by hand, so a test can see request heads
//! exactly as they arrived (hyper would lower-case the names).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

/// Records each request head verbatim; answers every request with
/// [`RAW_RESPONSE`] (or a response of the test's) and closes the connection.
pub struct RawOrigin {
    /// Where it listens.
    pub address: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

/// The response, with header names in mixed case and a set order.
pub const RAW_RESPONSE: &str = "HTTP/1.1 200 OK\r\nX-Mixed-Case: 1\r\nzz-last-lower: 2\r\nAnother-Header: 3\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

impl RawOrigin {
    /// Starts it on a free loopback port.
    pub fn start() -> RawOrigin {
        Self::start_with(RAW_RESPONSE)
    }

    /// As [`RawOrigin::start`], answering every request with `response`
    /// (bytes as they go on the wire).
    pub fn start_with(response: &'static str) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
                    head.push(byte[0]);
                }
                recorded
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = stream.write_all(response.as_bytes());
            }
        });
        RawOrigin { address, heads }
    }

    /// The request heads received so far, verbatim.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// The names of a head's fields as they are in it (case and order), its
/// first line left out: of [`RawOrigin::heads`] or a `CurlResponse`'s
/// `head`.
pub fn field_names(head: &str) -> Vec<&str> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, _)| n)
        .collect()
}
