//! A real gRPC service and client (grpcio, `peers/grpc_peer.py`): the
//! origin answers unary and server-streaming calls and sets a trailer; the
//! client reports what it got and, when asked, calls per second.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{TestCa, repo_root, tools_python};

fn peer() -> PathBuf {
    repo_root().join("tests/support/peers/grpc_peer.py")
}

fn python() -> PathBuf {
    tools_python(&[("grpc", "grpcio")])
}

/// A grpcio server on loopback, TLS with a certificate from `ca` or h2c.
pub struct GrpcOrigin {
    child: Child,
    /// Where it listens (on 127.0.0.1).
    pub port: u16,
}

impl GrpcOrigin {
    /// Starts it and waits for its port.
    pub fn start(ca: Option<&TestCa>) -> GrpcOrigin {
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
pub struct GrpcCalled(Vec<(String, String)>);

impl GrpcCalled {
    /// The value printed for `key` (panics if there is none).
    pub fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.0))
    }
}

/// Calls the service at `target` (through `proxy` if given, trusting `ca`
/// for TLS if given): one unary and one streaming call, then each kind for
/// `seconds` to count calls per second.
pub fn grpc_call(target: &str, proxy: Option<&str>, ca: Option<&str>, seconds: f64) -> GrpcCalled {
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
    GrpcCalled(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}
