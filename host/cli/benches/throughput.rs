//! Requests per second through witm, measured with wrk on loopback:
//! straight to the origin, through witm with no plugin, and through witm
//! with examples/add-header — same load tool, same run, same origin.
//!
//! `cargo bench -p witm --bench throughput` (needs `wrk`; `WITM_BENCH_SECS`
//! sets the duration of each run, default 10).

use std::path::Path;
use std::process::Command;

use witm_test_support::{Origin, Witm, guests, target_dir};

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed (apt-get install wrk); skipping the throughput benchmark");
        return;
    }
    let seconds: u32 = std::env::var("WITM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let origin = Origin::start_unrecorded();
    let target = origin.url("/");
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let add_header = guests().rust("add-header").display().to_string();

    println!("wrk, 2 threads, 50 connections, {seconds} s per run, keep-alive, loopback");
    println!(
        "{:<32} {:>12} {:>14}",
        "setup", "requests/s", "mean latency"
    );
    report("origin directly", &wrk(&target, None, seconds));
    for (label, args) in [
        ("witm, no plugin", vec!["-q"]),
        (
            "witm, add-header (Rust)",
            vec!["-q", "-s", add_header.as_str()],
        ),
        (
            "witm, add-header, flow lines on",
            vec!["-s", add_header.as_str()],
        ),
    ] {
        let mut witm = Witm::start(binary, &args).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
        report(label, &wrk(&target, Some(witm.port), seconds));
        witm.stop();
    }
}

/// Runs wrk against `target`, through the proxy on `proxy_port` if given
/// (a Lua script turns the request line into absolute form).
fn wrk(target: &str, proxy_port: Option<u16>, seconds: u32) -> String {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c50", &format!("-d{seconds}s")]);
    match proxy_port {
        Some(port) => {
            let script = target_dir().join("bench-absolute-form.lua");
            std::fs::write(&script, format!("wrk.path = \"{target}\"\n")).unwrap();
            command
                .arg("-s")
                .arg(&script)
                .arg(format!("http://127.0.0.1:{port}"));
        }
        None => {
            command.arg(target);
        }
    }
    let output = command.output().expect("run wrk");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn report(label: &str, wrk_output: &str) {
    let field = |prefix: &str, index: usize| {
        wrk_output
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(index))
            .unwrap_or("?")
            .to_owned()
    };
    let errors = wrk_output
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(|l| format!("  ({})", l.trim()))
        .unwrap_or_default();
    println!(
        "{label:<32} {:>12} {:>14}{errors}",
        field("Requests/sec:", 1),
        field("Latency", 1)
    );
}
