//! gRPC through witm with real grpcio clients and servers (Python): over
//! TLS (HTTP/2 in an intercepted tunnel) and h2c (HTTP/2 prior knowledge in
//! a plain tunnel), with no plugin and with a plugin that holds every body —
//! the case where trailers (`grpc-status`) used to be lost.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use witm_test_support::{TestCa, guests, repo_root, target_dir};

use crate::start_with_args;

fn peer() -> PathBuf {
    repo_root().join("tests/e2e/grpc_peer.py")
}

fn python() -> PathBuf {
    crate::tools_python(&[("grpc", "grpcio")])
}

/// A grpcio server on loopback, TLS with a certificate from `ca` or h2c.
struct GrpcOrigin {
    child: Child,
    port: u16,
}

impl GrpcOrigin {
    fn start(ca: Option<&TestCa>) -> GrpcOrigin {
        let mut command = Command::new(python());
        command.arg(peer()).arg("serve");
        if let Some(ca) = ca {
            let (chain, key) = ca.server_pem_files("grpc-origin");
            command.arg("--cert").arg(chain).arg("--key").arg(key);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the gRPC origin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the gRPC origin printed {line:?}, not its port")
        });
        GrpcOrigin { child, port }
    }
}

impl Drop for GrpcOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `grpc_peer.py call` printed, by key.
struct Called(Vec<(String, String)>);

impl Called {
    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.0))
    }
}

fn call(target: &str, proxy: Option<&str>, ca: Option<&str>, seconds: f64) -> Called {
    let mut command = Command::new(python());
    command
        .arg(peer())
        .args(["call", target, "--seconds", &seconds.to_string()])
        // No proxy from the environment: only the one asked for.
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("grpc_proxy")
        .env("no_grpc_proxy", "");
    if let Some(proxy) = proxy {
        command.args(["--proxy", proxy]);
    }
    if let Some(ca) = ca {
        command.args(["--ca", ca]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "gRPC call failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Called(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn witm_ca() -> String {
    target_dir()
        .join("e2e-confdir/witm-ca-cert.pem")
        .display()
        .to_string()
}

/// Unary and streaming calls through witm, without and with the trailers
/// plugin (which holds every body, logs trailers and adds one); the origin's
/// trailer must reach the client either way.
fn calls_go_through(origin_ca: Option<&TestCa>, target_host: &str) {
    let origin = GrpcOrigin::start(origin_ca);
    let target = format!("{target_host}:{}", origin.port);
    let upstream_ca = origin_ca.map(|ca| ca.cert_pem_path.display().to_string());
    let mut args = Vec::new();
    if let Some(ca) = &upstream_ca {
        args.extend(["--upstream-ca", ca.as_str()]);
    }
    let client_ca = origin_ca.map(|_| witm_ca());
    let trailers = guests().rust("trailers").display().to_string();
    for plugins in [vec![], vec![trailers.as_str()]] {
        let mut full_args = args.clone();
        for plugin in &plugins {
            full_args.extend(["-s", plugin]);
        }
        let witm = start_with_args(&[], &full_args);
        let called = call(&target, Some(&witm.proxy_url()), client_ca.as_deref(), 0.0);
        assert_eq!(called.get("reply"), "olleh");
        assert_eq!(called.get("stream"), "0,1,2,3,4");
        let got = called.get("trailers");
        assert!(got.contains("x-origin-trailer=yes"), "{got}");
        if plugins.is_empty() {
            assert!(!got.contains("x-witm-trailer"), "{got}");
        } else {
            assert!(got.contains("x-witm-trailer=seen"), "{got}");
            assert!(
                witm.wait_for_log("response-trailers grpc-status=0", 1),
                "{}",
                witm.stderr().join("\n")
            );
        }
    }
}

#[test]
fn grpc_over_tls_keeps_its_trailers_with_and_without_a_body_holding_plugin() {
    let ca = TestCa::new("grpc-tls");
    calls_go_through(Some(&ca), "localhost");
}

#[test]
fn grpc_over_h2c_in_a_tunnel_keeps_its_trailers_with_and_without_a_plugin() {
    calls_go_through(None, "127.0.0.1");
}
