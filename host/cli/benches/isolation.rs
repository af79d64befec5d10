//! Isolation and concurrency, measured with wrk on loopback:
//!
//! - requests/s of tenant A (examples/add-header on its own port) alone, and
//!   while tenant B's plugin spins in every event until its deadline (B is
//!   kept busy by 4 clients requesting `/loop` of tests/plugins/hostile,
//!   then `/loop` and a quick request in turn so that it never backs off);
//! - requests/s through a plugin that costs CPU in every event
//!   (tests/plugins/bench-ops reading a header 1000 times), as one instance
//!   and as a stateless pool of 4.
//!
//! `cargo bench -p witm --bench isolation` (needs `wrk`; `WITM_BENCH_SECS`
//! sets the duration of each run, default 10).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use witm_test_support::{Origin, Witm, free_port, guests, target_dir, wrk, wrk_line, wrk_seconds};

fn main() {
    let Some(seconds) = wrk_seconds() else {
        return;
    };
    let origin = Origin::start_unrecorded();
    let target = origin.url("/");
    let dir = target_dir().join("bench-isolation");
    std::fs::create_dir_all(&dir).unwrap();
    println!("wrk, 2 threads, 50 connections, {seconds} s per run, keep-alive, loopback");

    // Tenants by port: A (add-header) on the main port, B (hostile) on its own.
    let b_port = free_port();
    let config = format!(
        "[[tenants]]\nname = \"a\"\nlisten_port = 0\n[[tenants.plugins]]\npath = {:?}\n\
         [[tenants]]\nname = \"b\"\nlisten_port = {b_port}\n[[tenants.plugins]]\npath = {:?}\n\
         timeout_ms = 100\n",
        guests().rust("add-header"),
        guests().rust("hostile"),
    );
    let mut witm = start(&dir, &config);
    println!(
        "{:<46} {:>12} {:>14}",
        "setup", "requests/s", "mean latency"
    );
    report("tenant A alone", &wrk(&target, Some(witm.port), seconds));
    // Only /loop: after 3 failures in a row B's plugin is skipped (backing
    // off), which is what protects everyone else.
    let loops = origin.url("/loop");
    let attack = Attack::start(b_port, &[&loops]);
    report(
        "tenant A, B's clients asking /loop",
        &wrk(&target, Some(witm.port), seconds),
    );
    attack.stop();
    // /loop and a quick request in turn: the successes keep B's plugin from
    // backing off, so it spins to its deadline again and again.
    let quick = origin.url("/passwd");
    let attack = Attack::start(b_port, &[&loops, &quick]);
    report(
        "tenant A, B's plugin spinning without back-off",
        &wrk(&target, Some(witm.port), seconds),
    );
    attack.stop();
    witm.stop();
    let summary = witm
        .stderr()
        .iter()
        .find(|l| l.contains("[hostile]") && l.contains("deadline hits"))
        .cloned()
        .unwrap_or_default();
    println!("  B's plugin at exit: {}", summary.trim());

    // One instance versus a pool, for a plugin that costs CPU.
    for instances in [1, 4] {
        let config = format!(
            "[[plugins]]\npath = {:?}\nargs = [\"header-get\", \"1000\"]\ninstances = {instances}\n",
            guests().rust("bench-ops"),
        );
        let mut witm = start(&dir, &config);
        let result = wrk(&target, Some(witm.port), seconds);
        witm.stop();
        report(
            &format!("bench-ops (1000 header reads), {instances} instance(s)"),
            &result,
        );
    }
}

/// Four clients of tenant B on keep-alive connections, asking for `urls` in
/// turn (in-process, so the attack costs no process start-ups).
struct Attack {
    running: Arc<AtomicBool>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Attack {
    fn start(port: u16, urls: &[&str]) -> Attack {
        let running = Arc::new(AtomicBool::new(true));
        let clients = (0..4)
            .map(|_| {
                let running = running.clone();
                let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
                std::thread::spawn(move || {
                    while running.load(Ordering::Relaxed) {
                        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
                            continue;
                        };
                        let mut reader = BufReader::new(stream);
                        for url in urls.iter().cycle() {
                            if !running.load(Ordering::Relaxed) || !exchange(&mut reader, url) {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        Attack { running, clients }
    }

    fn stop(self) {
        self.running.store(false, Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
    }
}

/// One request through the proxy and its whole response; false if the
/// connection is no longer usable.
fn exchange(reader: &mut BufReader<TcpStream>, url: &str) -> bool {
    let request = format!("GET {url} HTTP/1.1\r\nHost: bench\r\n\r\n");
    if reader.get_mut().write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).is_ok()
}

fn start(dir: &Path, config: &str) -> Witm {
    let path = dir.join("witm.toml");
    std::fs::write(&path, config).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    Witm::start(binary, &["-q", "--config", path.to_str().unwrap()])
        .unwrap_or_else(|(status, log)| panic!("{status}: {log}"))
}

fn report(label: &str, wrk_output: &str) {
    println!("{}", wrk_line(label, wrk_output));
}
