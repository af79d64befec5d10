//! Test helpers shared by witm's end-to-end tests and benchmarks.
//!
//! - [`guests`]: builds the plugin components from source (Rust guests with
//!   cargo, Python with `plugins/build-python.sh`) once per process;
//! - [`Origin`]: a real HTTP server on loopback that records what it sees;
//! - [`Witm`]: the real `witm` binary, started on a free port and stopped
//!   with SIGTERM, with its stdout and stderr captured;
//! - [`curl`]: the real curl, through the proxy;
//! - [`TestCa`]: a private CA for HTTPS origins;
//! - [`GrpcOrigin`], [`grpc_call`]: a real gRPC service and client (grpcio),
//!   in the Python of [`tools_python`].

mod connect_proxy;
mod curl;
mod grpc;
mod guests;
mod origin;
mod python_tools;
mod raw_origin;
mod tcp_server;
mod test_ca;
mod websocket;
mod witm;
mod wrk;

pub use connect_proxy::connect_proxy;
pub use curl::{CurlResponse, curl};
pub use grpc::{GrpcCalled, GrpcOrigin, grpc_call};
pub use guests::{Guests, guests, repo_root, target_dir};
pub use origin::{GZIP_TEXT, HELLO, JSON, Origin, PAGE, SeenRequest};
pub use python_tools::tools_python;
pub use raw_origin::{RAW_RESPONSE, RawOrigin, field_names};
pub use tcp_server::tcp_server;
pub use test_ca::TestCa;
pub use websocket::{websocket_close_code, websocket_exchange};
pub use witm::Witm;
pub use wrk::{median, wrk, wrk_line, wrk_rate, wrk_seconds};

/// The number in environment variable `name` (a bench's setting), or
/// `default` when it is unset or not a number.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A loopback port free right now (bound and released), for a listener a
/// test configures witm with.
///
/// Taken below the kernel's ephemeral range: a port of that range, once
/// released, may become the local port of any connection another test
/// opens before witm binds it (witm then fails to listen: a flaky test).
/// Each call in a process takes the next port of its own sequence, so two
/// tests of one run are not handed the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000, ephemeral_low.max(10_001));
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..1000 {
        let port = low + start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % (high - low);
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            return listener.local_addr().unwrap().port();
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
