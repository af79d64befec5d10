//! wrk, the load generator the throughput benchmarks share.

use std::process::Command;

/// Seconds per wrk run (`WITM_BENCH_SECS`, default 10), or `None` when wrk
/// is not installed (the benchmark says so and skips itself).
pub fn wrk_seconds() -> Option<u32> {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed (apt-get install wrk); skipping this benchmark");
        return None;
    }
    Some(
        std::env::var("WITM_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

/// Runs `wrk -t2 -c50` for `seconds` against `target`, through the proxy on
/// `proxy_port` if given (a Lua script makes the request line
/// absolute-form); returns wrk's report.
pub fn wrk(target: &str, proxy_port: Option<u16>, seconds: u32) -> String {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c50", &format!("-d{seconds}s")]);
    match proxy_port {
        Some(port) => {
            let script = crate::target_dir().join("bench-absolute-form.lua");
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

/// One line: `label`, requests/s and mean latency from wrk's report, and
/// any errors it counted.
pub fn wrk_line(label: &str, wrk_output: &str) -> String {
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
    format!(
        "{label:<46} {:>12} {:>14}{errors}",
        field("Requests/sec:", 1),
        field("Latency", 1)
    )
}

/// Requests per second from wrk's report, if it has the line.
pub fn wrk_rate(wrk_output: &str) -> Option<f64> {
    wrk_output
        .lines()
        .find(|l| l.trim_start().starts_with("Requests/sec:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The median of `values` (the upper one of an even count), if any.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}
