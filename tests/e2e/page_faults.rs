//! witm's allocator keeps the memory a request frees for the next one
//! (`host/cli/src/allocator.rs`): returned to the system at once, each
//! request's pages were faulted in again (~0.9 page faults per request, a
//! sixth of witm's CPU with add-header).

use std::io::{Read, Write};
use std::net::TcpStream;

use witm_test_support::Origin;

use crate::start_with;

/// Keep-alive connections at once, and the requests each sends to warm up
/// and then while the faults are counted. The churn comes with load
/// (memory freed on the other worker thread, pages emptied and taken
/// again): returning freed memory at once, one connection took no faults
/// and 16 × 400 requests 0.024 per request, but 32 × 1,000 took 0.53
/// (0.034 as witm is).
const CLIENTS: usize = 32;
const REQUESTS: usize = 1000;

#[test]
fn keep_alive_requests_reuse_freed_memory_without_page_faults() {
    let origin = Origin::start_unrecorded();
    let witm = start_with(&["add_header"]);
    let port = witm.proxy_url().rsplit(':').next().unwrap().to_owned();
    let url = origin.url("/");
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let client = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
            client.set_nodelay(true).unwrap();
            // A proxy that stops answering fails the test, not hangs it.
            client
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            client
        })
        .collect();
    let clients = load(clients, &url);
    let before = minor_faults(witm.pid());
    load(clients, &url);
    let requests = CLIENTS * REQUESTS;
    let per_request = (minor_faults(witm.pid()) - before) as f64 / requests as f64;
    println!("page faults: {per_request:.3} per request over {requests} (add-header)");
    assert!(
        per_request < 0.2,
        "{per_request:.3} page faults per request: freed memory goes back too soon"
    );
}

/// [`REQUESTS`] on each connection, all at once; the connections back.
fn load(clients: Vec<TcpStream>, url: &str) -> Vec<TcpStream> {
    std::thread::scope(|scope| {
        let running: Vec<_> = clients
            .into_iter()
            .map(|mut client| {
                scope.spawn(move || {
                    for _ in 0..REQUESTS {
                        exchange(&mut client, url);
                    }
                    client
                })
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// One request through the proxy and its whole response (the origin's
/// answers carry a `content-length`).
fn exchange(client: &mut TcpStream, url: &str) {
    // One write: a head in pieces waits on the peer's delayed ACK.
    let request = format!("GET {url} HTTP/1.1\r\nhost: origin\r\n\r\n");
    client.write_all(request.as_bytes()).unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = client.read(&mut chunk).unwrap();
        assert!(n > 0, "the proxy closed the connection");
        received.extend_from_slice(&chunk[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap())
                .expect("a content-length");
            break (end + 4, length);
        }
    };
    while received.len() < head_end + length {
        let n = client.read(&mut chunk).unwrap();
        assert!(n > 0, "the proxy closed the connection mid-body");
        received.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        received.len(),
        head_end + length,
        "one response per request"
    );
}

/// The process's minor page faults so far (`/proc/PID/stat`, field 10).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(7).unwrap().parse().unwrap()
}
