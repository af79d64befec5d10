//! Isolation and concurrency, measured with wrk on loopback:
//!
//! - requests/s of tenant A (examples/add-header on its own port) alone, and
//!   while tenant B's plugin spins in every event until its deadline (B is
//!   kept busy by 4 clients requesting `/loop` of tests/plugins/hostile);
//! - requests/s through a plugin that costs CPU in every event
//!   (tests/plugins/bench-ops reading a header 1000 times), as one instance
//!   and as a stateless pool of 4.
//!
//! `cargo bench -p witm --bench isolation` (needs `wrk`; `WITM_BENCH_SECS`
//! sets the duration of each run, default 10).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use witm_test_support::{Origin, Witm, guests, target_dir, wrk, wrk_line, wrk_seconds};

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
    let alone = wrk(&target, Some(witm.port), seconds);
    let attacking = Arc::new(AtomicBool::new(true));
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let (attacking, url) = (attacking.clone(), origin.url("/loop"));
            std::thread::spawn(move || {
                while attacking.load(Ordering::Relaxed) {
                    let _ = Command::new("curl")
                        .args(["-s", "-o", "/dev/null", "-x"])
                        .arg(format!("http://127.0.0.1:{b_port}"))
                        .arg(&url)
                        .status();
                }
            })
        })
        .collect();
    let under_attack = wrk(&target, Some(witm.port), seconds);
    attacking.store(false, Ordering::Relaxed);
    for attacker in attackers {
        attacker.join().unwrap();
    }
    witm.stop();
    let deadline_hits = witm
        .stderr()
        .iter()
        .find(|l| l.contains("[hostile]") && l.contains("deadline hits"))
        .cloned()
        .unwrap_or_default();
    println!(
        "{:<46} {:>12} {:>14}",
        "setup", "requests/s", "mean latency"
    );
    report("tenant A alone", &alone);
    report(
        "tenant A while B's plugin spins (100 ms each)",
        &under_attack,
    );
    println!("  B's plugin at exit: {}", deadline_hits.trim());

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
