//! Attacks on witm from clients and servers, each while a bystander keeps
//! asking for a page through the same proxy: a table of the attack, what
//! the attacker got, and what the bystander got (requests answered and
//! failed, median and p99 time).
//!
//! `cargo bench -p witm --bench attacks`. The timeouts are shortened so the
//! run takes a minute or two (`--body-idle-timeout-ms 2000`,
//! `--request-body-timeout-ms 6000`, `--response-timeout-ms 3000`); the
//! defaults are 60 s, 600 s and 60 s, and the head timeout stays 30 s.
//! The bystander is one client on fresh connections, one request after
//! another (5 ms apart); an attack that is over at once is repeated for
//! 3 s.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use witm_test_support::{Origin, Witm};

fn main() {
    let origin = Origin::start();
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let witm = Witm::start(
        binary,
        &[
            "-q",
            "--body-idle-timeout-ms",
            "2000",
            "--request-body-timeout-ms",
            "6000",
            "--response-timeout-ms",
            "3000",
        ],
    )
    .expect("witm starts");
    let proxy: SocketAddr = format!("127.0.0.1:{}", witm.port).parse().unwrap();
    let target = origin.address;
    println!(
        "{:<52} | {:<58} | bystander: ok/failed, p50, p99",
        "attack", "what the attacker got"
    );
    let origin = &origin;
    let attacks: [(&str, Attack<'_>); 10] = [
        (
            "slowloris: 200 heads at 1 byte/s",
            Box::new(move || slowloris(proxy, target, 200)),
        ),
        (
            "header flood: 10,000 fields (600 KB head)",
            Box::new(move || header_flood(proxy, target)),
        ),
        (
            "smuggling: Content-Length + Transfer-Encoding",
            Box::new(move || smuggle_cl_te(proxy, origin)),
        ),
        (
            "smuggling: two different Content-Lengths",
            Box::new(move || {
                one_request(
                    proxy,
                    &format!(
                        "POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nContent-Length: 3\r\n\
                         Content-Length: 5\r\n\r\nabcde"
                    ),
                )
            }),
        ),
        (
            "smuggling: Transfer-Encoding: xchunked",
            Box::new(move || {
                one_request(
                    proxy,
                    &format!(
                        "POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nTransfer-Encoding: xchunked\r\n\
                         \r\n3\r\nabc\r\n0\r\n\r\n"
                    ),
                )
            }),
        ),
        (
            "request body trickle: 1 byte/s of 100",
            Box::new(move || trickle(proxy, target)),
        ),
        (
            "silent origin: accepts, never answers",
            Box::new(move || silent_origin(proxy)),
        ),
        (
            "HTTP/2 rapid reset: streams opened and reset (h2c)",
            Box::new(move || rapid_reset(proxy, target)),
        ),
        (
            "tunnel misuse: CONNECT a, then ask for b",
            Box::new(move || misdirected(proxy, target)),
        ),
        (
            "connection flood: 800 idle connections",
            Box::new(move || connection_flood(proxy, 800)),
        ),
    ];
    let page = format!("http://{target}/page");
    for (label, attack) in attacks.iter() {
        let bystander = Bystander::start(proxy, page.clone());
        // A quick attack is repeated for 3 s, so the bystander's figures
        // cover more than one request.
        let started = Instant::now();
        let mut outcomes: Vec<(String, usize)> = Vec::new();
        while outcomes.is_empty() || started.elapsed() < Duration::from_secs(3) {
            let got = attack();
            match outcomes.iter_mut().find(|(seen, _)| *seen == got) {
                Some((_, count)) => *count += 1,
                None => outcomes.push((got, 1)),
            }
        }
        outcomes.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        let got = outcomes
            .iter()
            .take(3)
            .map(|(got, count)| match count {
                1 => got.clone(),
                _ => format!("{got} x{count}"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let served = bystander.finish();
        println!(
            "{label:<52} | {got:<58} | {}/{}, {:.1} ms, {:.1} ms",
            served.answered,
            served.failed,
            served.quantile(0.5).as_secs_f64() * 1e3,
            served.quantile(0.99).as_secs_f64() * 1e3,
        );
    }
}

/// One attack: runs it once and says what the attacker got.
type Attack<'a> = Box<dyn Fn() -> String + 'a>;

/// A client that asks for `url` through `proxy` on a new connection, one
/// request after another, until stopped.
struct Bystander {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Served>,
}

struct Served {
    answered: usize,
    failed: usize,
    latencies: Vec<Duration>,
}

impl Served {
    fn quantile(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        self.latencies
            .get(((last as f64) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

impl Bystander {
    fn start(proxy: SocketAddr, url: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut served = Served {
                answered: 0,
                failed: 0,
                latencies: Vec::new(),
            };
            let host = url
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or("")
                .to_owned();
            while !stopped.load(Ordering::Relaxed) {
                let started = Instant::now();
                let answer = exchange(
                    proxy,
                    format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                    Duration::from_secs(10),
                );
                served.latencies.push(started.elapsed());
                if answer.starts_with("HTTP/1.1 200") {
                    served.answered += 1;
                } else {
                    served.failed += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            served.latencies.sort();
            served
        });
        Self { stop, thread }
    }

    fn finish(self) -> Served {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Sends `request` on a new connection and reads the answer until the
/// proxy closes it or `limit` passes.
fn exchange(proxy: SocketAddr, request: &[u8], limit: Duration) -> String {
    let Ok(mut stream) = TcpStream::connect(proxy) else {
        return "connect failed".into();
    };
    let _ = stream.set_read_timeout(Some(limit));
    if stream.write_all(request).is_err() {
        return "cut off while sending".into();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_line(answer: &str) -> String {
    match answer.lines().next() {
        Some(line) if !line.is_empty() => line.trim().to_owned(),
        _ => "closed, no answer".into(),
    }
}

fn one_request(proxy: SocketAddr, request: &str) -> String {
    status_line(&exchange(
        proxy,
        request.as_bytes(),
        Duration::from_secs(10),
    ))
}

/// `count` connections, each sending a request head one byte a second:
/// when were they closed, and with what.
fn slowloris(proxy: SocketAddr, target: SocketAddr, count: usize) -> String {
    let head = format!(
        "GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(200)
    );
    let started = Instant::now();
    let threads: Vec<_> = (0..count)
        .map(|_| {
            let head = head.clone();
            std::thread::spawn(move || {
                let Ok(mut stream) = TcpStream::connect(proxy) else {
                    return None;
                };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
                for byte in head.as_bytes() {
                    if stream.write_all(&[*byte]).is_err() {
                        return Some(started.elapsed());
                    }
                    let mut buf = [0u8; 1024];
                    match stream.read(&mut buf) {
                        Ok(0) => return Some(started.elapsed()),
                        Ok(_) => return Some(started.elapsed()),
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => return Some(started.elapsed()),
                    }
                    std::thread::sleep(Duration::from_millis(990));
                    if started.elapsed() > Duration::from_secs(45) {
                        return None;
                    }
                }
                None
            })
        })
        .collect();
    let closed: Vec<Duration> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap())
        .collect();
    let latest = closed.iter().max().copied().unwrap_or_default();
    format!(
        "{} of {count} closed by witm, the last at {:.0} s",
        closed.len(),
        latest.as_secs_f64()
    )
}

fn header_flood(proxy: SocketAddr, target: SocketAddr) -> String {
    let mut request = format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n");
    for i in 0..10_000 {
        request.push_str(&format!("X-Flood-{i}: {}\r\n", "f".repeat(40)));
    }
    request.push_str("\r\n");
    one_request(proxy, &request)
}

/// A request with both framings: what the client got, and how the origin
/// received it.
fn smuggle_cl_te(proxy: SocketAddr, origin: &Origin) -> String {
    let target = origin.address;
    // The chunked body is "abc"; a Content-Length reader would stop after
    // 4 bytes and read "abc\r\n0..." as a second request.
    let request = format!(
        "POST http://{target}/smuggle HTTP/1.1\r\nHost: {target}\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
    let answer = exchange(proxy, request.as_bytes(), Duration::from_secs(10));
    let responses = answer.matches("HTTP/1.1 ").count();
    let seen = origin
        .seen()
        .iter()
        .rev()
        .find(|r| r.path.starts_with("/smuggle"))
        .map(|r| {
            format!(
                "body {:?}, Content-Length {:?}",
                String::from_utf8_lossy(&r.body),
                r.header_values("content-length")
            )
        })
        .unwrap_or_else(|| "nothing".into());
    format!(
        "{} ({responses} response); origin got {seen}",
        status_line(&answer)
    )
}

/// A request body of 100 bytes sent a byte a second.
fn trickle(proxy: SocketAddr, target: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(proxy) else {
        return "connect failed".into();
    };
    let started = Instant::now();
    let head =
        format!("POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nContent-Length: 100\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
    let mut answer = Vec::new();
    for _ in 0..100 {
        if stream.write_all(b"x").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(990));
    }
    format!(
        "{} after {:.1} s",
        status_line(&String::from_utf8_lossy(&answer)),
        started.elapsed().as_secs_f64()
    )
}

/// An origin that accepts connections and reads, but never answers.
fn silent_origin(proxy: SocketAddr) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let answer = exchange(
        proxy,
        format!("GET http://{address}/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(20),
    );
    format!(
        "{} after {:.1} s",
        status_line(&answer),
        started.elapsed().as_secs_f64()
    )
}

/// A CONNECT to the origin, then HTTP/2 prior knowledge inside, then
/// HEADERS + RST_STREAM pairs as fast as the socket takes them: how many
/// streams before witm said GOAWAY, and with what code.
fn rapid_reset(proxy: SocketAddr, target: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(proxy) else {
        return "connect failed".into();
    };
    let connect = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    let _ = stream.write_all(connect.as_bytes());
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return format!(
            "CONNECT refused: {}",
            String::from_utf8_lossy(&head).lines().next().unwrap_or("")
        );
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    let _ = stream.write_all(&out);
    let reader = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 16384];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
                // Frames: 9-byte header, then the payload.
                let mut at = 0;
                while buffer.len() >= at + 9 {
                    let length = u32::from_be_bytes([0, buffer[at], buffer[at + 1], buffer[at + 2]])
                        as usize;
                    if buffer.len() < at + 9 + length {
                        break;
                    }
                    if buffer[at + 3] == 0x7 && length >= 8 {
                        let payload = &buffer[at + 9..at + 9 + length];
                        let code =
                            u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                        return Some(code);
                    }
                    at += 9 + length;
                }
                buffer.drain(..at);
            }
        })
    };
    let authority = target.to_string();
    let mut block = vec![0x82, 0x86, 0x84, 0x41, authority.len() as u8];
    block.extend_from_slice(authority.as_bytes());
    let started = Instant::now();
    let mut sent = 0u32;
    for i in 0..100_000u32 {
        let id = 2 * i + 1;
        let mut pair = frame(0x1, 0x5, id, &block);
        pair.extend(frame(0x3, 0, id, &8u32.to_be_bytes()));
        if stream.write_all(&pair).is_err() {
            break;
        }
        sent += 1;
    }
    let elapsed = started.elapsed();
    let goaway = reader.join().unwrap();
    // The count varies with how much the socket took before witm read;
    // it is given to the thousand.
    let within = sent.div_ceil(1000) * 1000;
    match goaway {
        Some(0xb) => format!("GOAWAY ENHANCE_YOUR_CALM within {within} pairs"),
        Some(code) => format!("GOAWAY (code {code:#x}) within {within} pairs"),
        None => format!(
            "no GOAWAY; {sent} pairs sent in {:.1} s",
            elapsed.as_secs_f64()
        ),
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A tunnel to the origin carrying a request for another port.
fn misdirected(proxy: SocketAddr, target: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(proxy) else {
        return "connect failed".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let connect = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    let _ = stream.write_all(connect.as_bytes());
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
        head.push(byte[0]);
    }
    let other = "127.0.0.1:1";
    let _ = stream.write_all(
        format!("GET http://{other}/ HTTP/1.1\r\nHost: {other}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    status_line(&String::from_utf8_lossy(&answer))
}

/// `count` connections opened and left idle for 5 s.
fn connection_flood(proxy: SocketAddr, count: usize) -> String {
    let mut held = Vec::new();
    for _ in 0..count {
        match TcpStream::connect(proxy) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
    }
    let opened = held.len();
    std::thread::sleep(Duration::from_secs(5));
    let mut open = 0;
    for stream in &held {
        let _ = stream.set_nonblocking(true);
        let mut buf = [0u8; 1];
        match (&*stream).read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => open += 1,
            _ => {}
        }
    }
    format!("{opened} opened, {open} still open after 5 s")
}
