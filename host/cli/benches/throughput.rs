//! Requests per second through witm, measured with wrk on loopback:
//! straight to the origin, through witm with no plugin, and through witm
//! with examples/add-header — same load tool, same run, same origin.
//!
//! `cargo bench -p witm --bench throughput` (needs `wrk`; `WITM_BENCH_SECS`
//! sets the duration of each run, default 10).
//!
//! `WITM_BENCH_BASE=/path/to/an/older/witm` measures that binary beside
//! this build, turn about, `WITM_BENCH_ROUNDS` times (default 3), and
//! prints the medians and their ratio: on a noisy machine only a ratio from
//! one run says whether a change cost speed. (An older binary may not load
//! plugins built for today's WIT; its row then says so.)

use std::path::{Path, PathBuf};

use witm_test_support::{
    Origin, Witm, guests, median, wrk, wrk_line, wrk_rate as rate, wrk_seconds,
};

fn main() {
    let Some(seconds) = wrk_seconds() else {
        return;
    };
    let origin = Origin::start_unrecorded();
    let target = origin.url("/");
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let base = std::env::var_os("WITM_BENCH_BASE").map(PathBuf::from);
    let add_header = guests().rust("add-header").display().to_string();

    println!("wrk, 2 threads, 50 connections, {seconds} s per run, keep-alive, loopback");
    println!(
        "{:<46} {:>12} {:>14}",
        "setup", "requests/s", "mean latency"
    );
    report("origin directly", &wrk(&target, None, seconds));
    let setups = [
        ("witm, no plugin", vec!["-q"]),
        (
            "witm, add-header (Rust)",
            vec!["-q", "-s", add_header.as_str()],
        ),
        (
            "witm, add-header, flow lines on",
            vec!["-s", add_header.as_str()],
        ),
    ];
    for (label, args) in &setups {
        match &base {
            None => {
                if let Some(output) = run(binary, args, &target, seconds) {
                    report(label, &output);
                }
            }
            Some(base) => compare(label, binary, base, args, &target, seconds),
        }
    }
}

/// One wrk run through `binary` started with `args`; `None` when it did
/// not start.
fn run(binary: &Path, args: &[&str], target: &str, seconds: u32) -> Option<String> {
    let mut witm = match Witm::start(binary, args) {
        Ok(witm) => witm,
        Err((status, log)) => {
            println!(
                "  {} did not start ({status}): {}",
                binary.display(),
                log.lines().last().unwrap_or("")
            );
            return None;
        }
    };
    let output = wrk(target, Some(witm.port), seconds);
    witm.stop();
    Some(output)
}

/// This build and `base` in turns; the median requests/s of each and the
/// ratio.
fn compare(label: &str, binary: &Path, base: &Path, args: &[&str], target: &str, seconds: u32) {
    let rounds: usize = std::env::var("WITM_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (mut this, mut before) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (binary, rates) in [(binary, &mut this), (base, &mut before)] {
            if let Some(rate) = run(binary, args, target, seconds).as_deref().and_then(rate) {
                rates.push(rate);
            }
        }
    }
    let (Some(this), Some(before)) = (median(&mut this), median(&mut before)) else {
        println!("{label:<46} no comparison (a binary did not run)");
        return;
    };
    println!(
        "{label:<46} {this:>12.0} this build, {before:.0} base: {:.3} of base (medians of {rounds})",
        this / before
    );
}

fn report(label: &str, wrk_output: &str) {
    println!("{}", wrk_line(label, wrk_output));
}
