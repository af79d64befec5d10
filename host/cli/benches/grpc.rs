//! gRPC calls per second (grpcio client and server, Python), unary and
//! server-streaming (5 messages a call), straight to the service and
//! through witm, over h2c (HTTP/2 prior knowledge in a tunnel) and TLS (an
//! intercepted tunnel), with no plugin and with tests/plugins/trailers
//! (which holds every body and adds a trailer). One client, calls one
//! after another: the figure is mostly latency.
//!
//! `cargo bench -p witm --bench grpc` (`WITM_BENCH_SECS` per run, default 5).

use std::path::Path;

use witm_test_support::{GrpcOrigin, TestCa, Witm, grpc_call, guests, target_dir};

fn main() {
    let seconds: f64 = std::env::var("WITM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let trailers = guests().rust("trailers").display().to_string();
    let witm_ca = target_dir()
        .join("e2e-confdir/witm-ca-cert.pem")
        .display()
        .to_string();
    println!("one grpcio client, {seconds} s per run");
    println!(
        "{:<40} {:>10} {:>8} {:>10} {:>8}",
        "setup", "unary/s", "ratio", "stream/s", "ratio"
    );
    let ca = TestCa::new("grpc-bench");
    let ca_pem = ca.cert_pem_path.display().to_string();
    for tls in [false, true] {
        let origin = GrpcOrigin::start(tls.then_some(&ca));
        let (host, name) = if tls {
            ("localhost", "TLS")
        } else {
            ("127.0.0.1", "h2c")
        };
        let target = format!("{host}:{}", origin.port);
        let direct = grpc_call(&target, None, tls.then_some(ca_pem.as_str()), seconds);
        let direct = (rate(&direct, "unary_per_s"), rate(&direct, "stream_per_s"));
        print_row(&format!("{name}: direct"), direct, direct);
        let mut base = vec!["-q"];
        if tls {
            base.extend(["--upstream-ca", ca_pem.as_str()]);
        }
        for (label, plugin) in [("no plugin", None), ("trailers plugin", Some(&trailers))] {
            let mut args = base.clone();
            if let Some(plugin) = plugin {
                args.extend(["-s", plugin.as_str()]);
            }
            let mut witm = Witm::start(binary, &args).expect("witm starts");
            let through = grpc_call(
                &target,
                Some(&witm.proxy_url()),
                tls.then_some(witm_ca.as_str()),
                seconds,
            );
            witm.stop();
            let through = (
                rate(&through, "unary_per_s"),
                rate(&through, "stream_per_s"),
            );
            print_row(&format!("{name}: through witm, {label}"), through, direct);
        }
    }
}

fn rate(called: &witm_test_support::GrpcCalled, key: &str) -> f64 {
    called.get(key).parse().unwrap_or(0.0)
}

fn print_row(label: &str, (unary, stream): (f64, f64), (unary_base, stream_base): (f64, f64)) {
    println!(
        "{label:<40} {unary:>10.0} {:>8.3} {stream:>10.0} {:>8.3}",
        unary / unary_base.max(1e-9),
        stream / stream_base.max(1e-9)
    );
}
