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
pub use raw_origin::{RAW_RESPONSE, RawOrigin};
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
