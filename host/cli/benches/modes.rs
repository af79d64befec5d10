//! Requests per second through witm in reverse mode beside regular mode,
//! in one run (reverse is the gateway deployment: it must not cost more):
//! wrk straight to the origin, through a regular witm as its proxy, and to
//! a reverse witm in front of the origin — each with no plugin and with
//! examples/add-header. The rows alternate, `WITM_BENCH_ROUNDS` times
//! (default 3), and each setup's median is printed with its ratio to
//! regular mode.
//!
//! `cargo bench -p witm --bench modes` (needs `wrk`; `WITM_BENCH_SECS`
//! sets each run's duration, default 10).

use std::path::Path;

use witm_test_support::{
    Origin, Witm, guests, median, wrk, wrk_line, wrk_rate as rate, wrk_seconds,
};

fn main() {
    let Some(seconds) = wrk_seconds() else {
        return;
    };
    let rounds: usize = std::env::var("WITM_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let origin = Origin::start_unrecorded();
    let target = origin.url("/");
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let add_header = guests().rust("add-header").display().to_string();
    let reverse = format!("reverse:{}", origin.url(""));

    println!(
        "wrk, 2 threads, 50 connections, {seconds} s per run, keep-alive, loopback, {rounds} rounds"
    );
    println!(
        "{}",
        wrk_line("origin directly", &wrk(&target, None, seconds))
    );
    let plugins: [(&str, Vec<&str>); 2] = [
        ("no plugin", vec![]),
        ("add-header (Rust)", vec!["-s", add_header.as_str()]),
    ];
    for (plugin, plugin_args) in &plugins {
        let (mut regular, mut reversed) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let mut args = vec!["-q"];
            args.extend_from_slice(plugin_args);
            let witm = Witm::start(binary, &args).expect("witm starts");
            let output = wrk(&target, Some(witm.port), seconds);
            println!("{}", wrk_line(&format!("regular mode, {plugin}"), &output));
            regular.extend(rate(&output));
            drop(witm);

            args.extend_from_slice(&["--mode", reverse.as_str()]);
            let witm = Witm::start(binary, &args).expect("witm starts");
            let front = format!("http://127.0.0.1:{}/", witm.port);
            let output = wrk(&front, None, seconds);
            println!("{}", wrk_line(&format!("reverse mode, {plugin}"), &output));
            reversed.extend(rate(&output));
        }
        if let (Some(regular), Some(reversed)) = (median(&mut regular), median(&mut reversed)) {
            println!(
                "{plugin}: reverse {reversed:.0} req/s, regular {regular:.0} req/s (medians): reverse = {:.3} of regular",
                reversed / regular
            );
        }
    }
}
