//! Requests per second through witm, measured with wrk on loopback:
//! straight to the origin, through witm with no plugin, and through witm
//! with examples/add-header — same load tool, same run, same origin.
//!
//! `cargo bench -p witm --bench throughput` (needs `wrk`; `WITM_BENCH_SECS`
//! sets the duration of each run, default 10).

use std::path::Path;

use witm_test_support::{Origin, Witm, guests, wrk, wrk_line, wrk_seconds};

fn main() {
    let Some(seconds) = wrk_seconds() else {
        return;
    };
    let origin = Origin::start_unrecorded();
    let target = origin.url("/");
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let add_header = guests().rust("add-header").display().to_string();

    println!("wrk, 2 threads, 50 connections, {seconds} s per run, keep-alive, loopback");
    println!(
        "{:<46} {:>12} {:>14}",
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

fn report(label: &str, wrk_output: &str) {
    println!("{}", wrk_line(label, wrk_output));
}
