//! A soak: witm under steady load for a long time, recording every flow
//! (`-w`) and running a `response` plugin (examples/add-header), with its
//! resident memory and open file descriptors sampled as it goes. Both must
//! stay flat: a leak per flow, per connection or per recorded flow shows as
//! a slope.
//!
//! `cargo bench -p witm --bench soak` (needs `wrk`). `WITM_SOAK_SECS` sets
//! the length (default 1800), `WITM_SOAK_RATE` the target requests per
//! second (default 400), `WITM_SOAK_SAMPLE_SECS` the sampling interval
//! (default 60).
//!
//! The load is wrk with a Lua script: 8 connections, each pausing between
//! requests so the total rate is steady, cycling through a small GET, an
//! HTML page, a gzip body, a 404, a 16 KiB POST and a request that closes
//! its connection (so connections come and go too).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use witm_test_support::{Origin, Witm, env_number, guests, target_dir, wrk_line};

const CONNECTIONS: u32 = 8;

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed (apt-get install wrk); skipping the soak");
        return;
    }
    let seconds = env_number("WITM_SOAK_SECS", 1800);
    let rate = env_number("WITM_SOAK_RATE", 400).max(1);
    let sample = env_number("WITM_SOAK_SAMPLE_SECS", 60).max(1);
    let origin = Origin::start_unrecorded();
    let dir = target_dir().join("bench-soak");
    std::fs::create_dir_all(&dir).unwrap();
    let flows = dir.join("soak.witm");
    let _ = std::fs::remove_file(&flows);
    let add_header = guests().rust("add-header").display().to_string();
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let mut witm = Witm::start(
        binary,
        &["-q", "-s", &add_header, "-w", flows.to_str().unwrap()],
    )
    .expect("witm starts");

    let script = dir.join("soak.lua");
    std::fs::write(&script, lua_script(&origin.url(""), rate)).unwrap();
    println!(
        "soak: {seconds} s at ~{rate} requests/s, {CONNECTIONS} connections, -w and add-header, \
         sampled every {sample} s"
    );
    println!(
        "{:>7} {:>10} {:>6} {:>14}",
        "seconds", "RSS KiB", "fds", "flow file KiB"
    );
    let load = {
        let script = script.clone();
        let proxy = format!("http://127.0.0.1:{}", witm.port);
        std::thread::spawn(move || {
            let output = Command::new("wrk")
                .args([
                    "-t2",
                    &format!("-c{CONNECTIONS}"),
                    &format!("-d{seconds}s"),
                    "--timeout",
                    "10s",
                    "-s",
                ])
                .arg(&script)
                .arg(proxy)
                .output()
                .expect("run wrk");
            String::from_utf8_lossy(&output.stdout).into_owned()
        })
    };

    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        let at = started.elapsed().as_secs();
        let flow_kib = std::fs::metadata(&flows)
            .map(|m| m.len() / 1024)
            .unwrap_or(0);
        let point = (at, witm.rss_kib(), witm.open_fds());
        println!(
            "{:>7} {:>10} {:>6} {:>14}",
            point.0, point.1, point.2, flow_kib
        );
        samples.push(point);
        if load.is_finished() || at >= seconds {
            break;
        }
        std::thread::sleep(Duration::from_secs(sample.min(seconds - at).max(1)));
    }
    let report = load.join().unwrap();
    let total = report
        .lines()
        .find(|l| l.contains("requests in"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    println!("{}", wrk_line("wrk through witm", &report));
    println!("{total}");
    summarise(&samples);
    let status = witm.stop();
    println!("witm exited: {status}");
    // Nothing recorded is lost: every flow wrk made is in the file.
    let listed = Command::new(binary)
        .arg("flows")
        .arg(&flows)
        .output()
        .expect("run witm flows");
    let recorded = listed.stdout.iter().filter(|&&b| b == b'\n').count();
    println!(
        "flows in the file: {recorded} ({} KiB); the file is removed unless WITM_SOAK_KEEP is set",
        std::fs::metadata(&flows)
            .map(|m| m.len() / 1024)
            .unwrap_or(0)
    );
    if std::env::var_os("WITM_SOAK_KEEP").is_none() {
        let _ = std::fs::remove_file(&flows);
    }
}

/// RSS and fds after the first sample taken past a tenth of the run (the
/// warm-up: caches, pools and the flow writer fill) beside the last, as
/// ratios.
fn summarise(samples: &[(u64, u64, u64)]) {
    let (Some(last), Some(first)) = (samples.last(), samples.iter().find(|s| s.0 > 0)) else {
        return;
    };
    let warm = samples.iter().find(|s| s.0 * 10 >= last.0).unwrap_or(first);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!(
        "RSS: {} KiB at {} s, {} KiB at {} s (ratio {:.3}), peak {} KiB; fds: {} then {}",
        warm.1,
        warm.0,
        last.1,
        last.0,
        last.1 as f64 / warm.1.max(1) as f64,
        peak,
        warm.2,
        last.2
    );
}

/// wrk's script: absolute-form requests to the origin through the proxy,
/// a mix of shapes, and a pause per connection that sets the rate.
fn lua_script(origin: &str, rate: u64) -> String {
    let delay_ms = (u64::from(CONNECTIONS) * 1000 / rate).max(1);
    format!(
        r#"local origin = "{origin}"
local post = string.rep("x", 16384)
local shapes = {{
  function() return wrk.format("GET", origin .. "/") end,
  function() return wrk.format("GET", origin .. "/page") end,
  function() return wrk.format("GET", origin .. "/gzip") end,
  function() return wrk.format("GET", origin .. "/status/404") end,
  function() return wrk.format("POST", origin .. "/upload", {{["Content-Type"] = "text/plain"}}, post) end,
  function() return wrk.format("GET", origin .. "/", {{["Connection"] = "close"}}) end,
}}
local n = 0
function request()
  n = n + 1
  return shapes[(n % #shapes) + 1]()
end
function delay()
  return {delay_ms}
end
"#
    )
}
