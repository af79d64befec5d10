//! End-to-end tests: the real `witm` binary on loopback, real curl, a real
//! origin server, and plugins built from the repository's sources.
//!
//! One test binary (faster to link); each module covers one area.

mod budgets;
mod cli;
mod events;
mod examples;
mod exhaustion;
mod flow_api;
mod grpc;
mod header_case;
mod held_budget;
mod https;
mod live_streams;
mod mitmproxy_export;
mod modes;
mod new_project;
mod onboarding;
mod outbound;
mod page_faults;
mod plugins;
mod raw_tunnels;
mod sandbox;
mod saved_flows;
mod shared_server_connections;
mod timeouts;
mod trailers;

use std::path::Path;

use witm_test_support::{Witm, guests};

/// The `witm` binary cargo built for these tests.
fn witm_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_witm"))
}

/// Starts witm with the given Rust test/example plugins (by crate name, each
/// optionally followed by arguments, as with `-s`).
fn start_with(plugins: &[&str]) -> Witm {
    start_with_args(plugins, &[])
}

/// As [`start_with`], with more command-line arguments.
fn start_with_args(plugins: &[&str], extra: &[&str]) -> Witm {
    let specs: Vec<String> = plugins
        .iter()
        .map(|spec| {
            let mut words = spec.splitn(2, ' ');
            let name = words.next().unwrap();
            let path = guests().rust(name);
            match words.next() {
                Some(args) => format!("{} {args}", path.display()),
                None => path.display().to_string(),
            }
        })
        .collect();
    let mut args = extra.to_vec();
    for spec in &specs {
        args.push("-s");
        args.push(spec.as_str());
    }
    Witm::start(witm_binary(), &args)
        .unwrap_or_else(|(status, log)| panic!("witm exited ({status}):\n{log}"))
}
