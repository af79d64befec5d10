//! Plugins that call out (`http-send`), in one run beside their baselines:
//!
//! 1. **Latency an outbound call adds**, on loopback: one keep-alive
//!    client sends requests one after another through witm running the
//!    caller test plugin, which answers each request itself — with no
//!    call, or after one `http-send` to a local origin. The rows alternate
//!    in rounds; p50 and p99 of each, and their difference, are printed.
//! 2. **Throughput of unrelated flows while 100 flows wait** on slow
//!    outbound calls: tenant b's flows (add-header) under wrk, alone and
//!    while 100 of tenant a's flows each wait on a call that takes longer
//!    than the wrk run (a pool of 100 caller instances).
//!
//! `cargo bench -p witm --bench outbound` (part 2 needs `wrk`;
//! `WITM_BENCH_SECS` sets each wrk run, default 10; `WITM_BENCH_REQUESTS`
//! the requests per latency row, default 2000).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use witm_test_support::{
    Origin, Witm, env_number, free_port, guests, tcp_server, wrk, wrk_line, wrk_rate, wrk_seconds,
};

fn main() {
    let origin = Origin::start_unrecorded();
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let dir = std::env::temp_dir().join(format!("witm-bench-outbound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    latency(binary, &dir, &origin);
    if let Some(seconds) = wrk_seconds() {
        waiting(binary, &dir, &origin, seconds);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// witm with `config` written to `dir`.
fn start(binary: &Path, dir: &Path, config: &str) -> Witm {
    let path: PathBuf = dir.join("witm.toml");
    std::fs::write(&path, config).unwrap();
    Witm::start(binary, &["-q", "--config", path.to_str().unwrap()]).expect("witm starts")
}

fn latency(binary: &Path, dir: &Path, origin: &Origin) {
    let requests = env_number("WITM_BENCH_REQUESTS", 2000) as usize;
    let port = origin.address.port();
    let config = format!(
        "[[plugins]]\npath = {:?}\nallowed_hosts = [\"127.0.0.1:{port}\"]\n\
         max_outbound_per_event = 1\n",
        guests().rust("caller").to_str().unwrap()
    );
    let witm = start(binary, dir, &config);
    let call = format!("x-call-url: {}\r\n", origin.url("/"));
    let rows = [
        ("answered, no call", format!("{call}x-call-count: 0\r\n")),
        ("answered after one http-send", call),
    ];
    let mut samples: [Vec<Duration>; 2] = Default::default();
    let mut client = Client::connect(witm.port);
    for _ in 0..requests / 200 {
        for (index, (_, headers)) in rows.iter().enumerate() {
            for _ in 0..200 {
                samples[index].push(client.get(&origin.url("/"), headers));
            }
        }
    }
    println!(
        "latency through witm + caller plugin, one keep-alive client, {requests} requests per row, loopback"
    );
    let mut percentiles = Vec::new();
    for ((label, _), samples) in rows.iter().zip(samples.iter_mut()) {
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        let (p50, p99) = (at(0.5), at(0.99));
        println!(
            "{label:<30} p50 {:>8.1} µs   p99 {:>8.1} µs",
            micros(p50),
            micros(p99)
        );
        percentiles.push((p50, p99));
    }
    let (base, with_call) = (percentiles[0], percentiles[1]);
    println!(
        "an http-send adds {:.1} µs at p50 and {:.1} µs at p99",
        micros(with_call.0) - micros(base.0),
        micros(with_call.1) - micros(base.1)
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn waiting(binary: &Path, dir: &Path, origin: &Origin, seconds: u32) {
    let hold = Duration::from_secs(u64::from(seconds) + 5);
    let slow = tcp_server(move |stream| {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 2 {
            line.clear();
        }
        std::thread::sleep(hold);
        let mut stream = stream;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
    });
    let (a_port, b_port) = (free_port(), free_port());
    let hold_ms = hold.as_millis() + 5000;
    let config = format!(
        "[[tenants]]\nname = \"a\"\nlisten_port = {a_port}\n\
         [[tenants.plugins]]\npath = {caller:?}\ninstances = 100\ntimeout_ms = {hold_ms}\n\
         queue_timeout_ms = {hold_ms}\nallowed_hosts = [\"127.0.0.1:{slow}\"]\n\
         outbound_timeout_ms = {hold_ms}\nmax_outbound_in_flight = 100\n\
         [[tenants]]\nname = \"b\"\nlisten_port = {b_port}\n\
         [[tenants.plugins]]\npath = {add_header:?}\n",
        caller = guests().rust("caller").to_str().unwrap(),
        add_header = guests().rust("add-header").to_str().unwrap(),
    );
    let witm = start(binary, dir, &config);
    assert!(witm.wait_for_log("for tenants b", 1));
    let target = origin.url("/");
    println!("wrk, 2 threads, 50 connections, {seconds} s per run, tenant b (add-header)");
    let alone = wrk(&target, Some(b_port), seconds);
    println!("{}", wrk_line("alone", &alone));

    let url = format!("http://127.0.0.1:{slow}/");
    let waiters: Vec<_> = (0..100)
        .map(|_| {
            let (url, target) = (url.clone(), target.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(a_port);
                client.get(&target, &format!("x-call-url: {url}\r\n"))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = wrk(&target, Some(b_port), seconds);
    println!("{}", wrk_line("while 100 of a's flows wait", &during));
    for waiter in waiters {
        let took = waiter.join().unwrap();
        assert!(took >= hold, "a waiting flow came back after {took:?}");
    }
    if let (Some(alone), Some(during)) = (wrk_rate(&alone), wrk_rate(&during)) {
        println!(
            "tenant b: {during:.0} req/s while 100 flows wait, {alone:.0} alone: {:.3} of alone",
            during / alone
        );
    }
}

/// A keep-alive HTTP/1.1 client through the proxy on one port.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// GETs `url` (absolute form) with extra `headers` ("name: value\r\n"
    /// each); returns how long the whole response took.
    fn get(&mut self, url: &str, headers: &str) -> Duration {
        let started = Instant::now();
        let host = url.split('/').nth(2).unwrap();
        write!(
            self.reader.get_mut(),
            "GET {url} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n"
        )
        .unwrap();
        let mut length = 0;
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        started.elapsed()
    }
}
