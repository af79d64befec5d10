//! Saved flows: flows per second written and read in witm's format and
//! written in mitmproxy's (flow format 21, `witm export --mitmproxy`,
//! `-w out.flow`), and `witm replay` of examples/add-header over 100,000
//! flows (wall time and peak memory of the witm process).
//!
//! `cargo bench -p witm --bench saved_flows` (`WITM_BENCH_FLOWS` sets the
//! number of flows, default 100000). The flows are copies of the mitmproxy
//! fixture's ten (gzip JSON, a 10 KB text, a form POST, HTTP/2, an error),
//! each with its own id: 3.3 KB per flow on average.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use witm_flow::Flow;
use witm_store::{FlowFile, FlowWriter};
use witm_test_support::{guests, repo_root, target_dir};

fn main() {
    let count: usize = std::env::var("WITM_BENCH_FLOWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let fixture = repo_root().join("tests/fixtures/mitmproxy/mitm-capture.flow");
    let templates: Vec<Flow> = FlowFile::open(&fixture)
        .expect("fixture")
        .collect::<Result<_, _>>()
        .expect("fixture flows");
    let dir = target_dir().join("bench-saved-flows");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input.witm");

    // Write: one unbuffered write per flow, as `witm -w` does.
    let started = Instant::now();
    let mut writer = FlowWriter::create(&input).unwrap();
    for i in 0..count {
        let mut flow = templates[i % templates.len()].clone();
        flow.id = Flow::new_id();
        writer.write(&flow).unwrap();
    }
    writer.finish().unwrap();
    let write = started.elapsed();
    let size = std::fs::metadata(&input).unwrap().len();

    // Read: decode every record back into a flow.
    let started = Instant::now();
    let mut read = 0;
    for flow in FlowFile::open(&input).unwrap() {
        std::hint::black_box(flow.unwrap());
        read += 1;
    }
    let read_time = started.elapsed();
    assert_eq!(read, count);

    // Write as mitmproxy's format, as `-w out.flow` does.
    let capture = dir.join("output.flow");
    let started = Instant::now();
    let mut writer =
        FlowWriter::for_path(std::fs::File::create(&capture).unwrap(), &capture).unwrap();
    for i in 0..count {
        writer.write(&templates[i % templates.len()]).unwrap();
    }
    writer.finish().unwrap();
    let export = started.elapsed();

    println!(
        "{count} flows, {:.1} MB ({} bytes per flow)",
        size as f64 / 1e6,
        size / count as u64
    );
    println!(
        "write: {:>9.0} flows/s ({:.2} s)",
        count as f64 / write.as_secs_f64(),
        write.as_secs_f64()
    );
    println!(
        "read:  {:>9.0} flows/s ({:.2} s)",
        count as f64 / read_time.as_secs_f64(),
        read_time.as_secs_f64()
    );
    println!(
        "write as mitmproxy's .flow: {:>9.0} flows/s ({:.2} s, {:.1} MB)",
        count as f64 / export.as_secs_f64(),
        export.as_secs_f64(),
        std::fs::metadata(&capture).unwrap().len() as f64 / 1e6
    );

    let output = dir.join("output.witm");
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let add_header = guests().rust("add-header");
    let run = Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(binary)
        .arg("--confdir")
        .arg(target_dir().join("e2e-confdir"))
        .args(["replay", "-q", "-r"])
        .arg(&input)
        .arg("-s")
        .arg(&add_header)
        .arg("-w")
        .arg(&output)
        .output();
    match run {
        Ok(out) if out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or_default();
            let mut fields = last.split_whitespace();
            let seconds: f64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
            let kib: u64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            println!(
                "witm replay -s add-header -w: {seconds:.2} s ({:.0} flows/s), peak RSS {:.1} MiB",
                count as f64 / seconds,
                kib as f64 / 1024.0
            );
        }
        Ok(out) => eprintln!(
            "witm replay failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("cannot run /usr/bin/time ({e}); skipping the replay figure"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
