//! The budget for bodies held in memory for plugins (`--max-held-bytes`):
//! ten slow readers of 30 MiB responses with a `response` plugin loaded
//! hold at most the budget together (the rest stream), each gets its whole
//! body, the budget is given back, memory stays near the budget, and
//! another client is served all along.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use witm_test_support::{Origin, free_port, guests};

use crate::sandbox::{Bystander, metric, scratch, start_with_config};

const READERS: usize = 10;
const MIB_EACH: usize = 30;
const BUDGET_MIB: usize = 64;

/// Reads one response to its end; returns its body's length.
fn read_response(stream: &mut TcpStream) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no length in {head}"));
    let mut body = got.len() - head_end;
    while body < length {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {body} of {length} bytes");
        body += n;
    }
    body
}

#[test]
fn bodies_held_for_plugins_stay_within_the_budget_with_slow_readers() {
    let dir = scratch("held-budget");
    let admin_port = free_port();
    let trailers = guests().rust("trailers").display().to_string();
    let budget = format!("{BUDGET_MIB}m");
    let witm = start_with_config(
        &dir,
        &format!("admin_port = {admin_port}\n"),
        &["-q", "--max-held-bytes", &budget, "-s", &trailers],
        &[],
    );
    let origin = Origin::start_unrecorded();
    let held = |what: &str| metric(admin_port, &format!("{what}{{listener=\"{}\"}}", witm.port));
    let bystander = Bystander::start(witm.proxy_url(), origin.url("/page"));
    let rss_before_mib = witm.rss_kib() / 1024;
    witm.reset_peak_rss();

    // Each asks for its body and reads nothing yet.
    let mut readers: Vec<TcpStream> = (0..READERS)
        .map(|i| {
            let mut stream = TcpStream::connect(("127.0.0.1", witm.port)).unwrap();
            let url = origin.url(&format!("/big/{MIB_EACH}?reader={i}"));
            write!(
                stream,
                "GET {url} HTTP/1.1\r\nHost: {}\r\n\r\n",
                origin.address
            )
            .unwrap();
            stream
        })
        .collect();
    // Each body is held whole, or streamed once the budget has no room for
    // it (what it read stays counted until sent): at most two are held
    // whole. With no reader reading, the gauge settles; it never passes
    // the budget.
    let started = Instant::now();
    let mut last = (u64::MAX, u64::MAX);
    loop {
        let now = (
            held("witm_proxy_held_bytes"),
            held("witm_proxy_held_over_budget_total"),
        );
        assert!(now.0 <= (BUDGET_MIB << 20) as u64, "{now:?}");
        // The gauge settles; the over-budget count may go on growing with
        // the bystander's pages once the budget is full to the byte.
        if now.0 == last.0 && now.1 >= (READERS - BUDGET_MIB / MIB_EACH) as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "held {} bytes, {} over budget\n{}",
            now.0,
            now.1,
            witm.stderr().join("\n")
        );
        last = now;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(witm.wait_for_log("are at --max-held-bytes", 1));

    // Every reader gets its whole body, held or streamed.
    for reader in &mut readers {
        assert_eq!(read_response(reader), MIB_EACH << 20);
    }
    drop(readers);
    let started = Instant::now();
    while held("witm_proxy_held_bytes") != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the budget was not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let peak_mib = witm.peak_rss_kib() / 1024;
    let served = bystander.finish();
    eprintln!(
        "held budget: RSS {rss_before_mib} MiB before, peak {peak_mib} MiB ({READERS} readers of \
         {MIB_EACH} MiB, budget {BUDGET_MIB} MiB); bystander {} answered, {} failed, p99 {:?}",
        served.answered,
        served.failed,
        served.quantile(0.99)
    );
    // Without the budget the ten bodies alone are 300 MiB.
    assert!(
        peak_mib < rss_before_mib + BUDGET_MIB as u64 + 64,
        "peak {peak_mib} MiB from {rss_before_mib} MiB"
    );
    assert_eq!(served.failed, 0, "{served:?}");
    assert!(served.quantile(0.99) < Duration::from_secs(1), "{served:?}");
}
