//! End-to-end tests: the real `witm` binary on loopback, real curl, a real
//! origin server, and plugins built from the repository's sources.
//!
//! One test binary (faster to link); each module covers one area.

mod budgets;
mod cli;
mod events;
mod exhaustion;
mod flow_api;
mod grpc;
mod held_budget;
mod https;
mod live_streams;
mod plugins;
mod sandbox;
mod saved_flows;
mod timeouts;
mod trailers;

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The Python of the tools venv (`$WITM_TOOLS/py-clients`, default
/// `~/.cache/witm`), with each `(module, pip package)` installed on first
/// use: the real Python clients and servers some tests drive.
fn tools_python(packages: &[(&str, &str)]) -> PathBuf {
    let tools = std::env::var_os("WITM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/witm"));
    let venv = tools.join("py-clients");
    let python = venv.join("bin/python");
    // Tests run in threads: one installs at a time.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(module, _)| {
            !Command::new(&python)
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return python;
    }
    if !python.exists() {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success(), "python3 -m venv failed");
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(&missing)
        .status()
        .unwrap();
    assert!(installed.success(), "pip install {missing:?} failed");
    python
}
