//! The Python clients and servers some tests and benchmarks drive (grpcio,
//! requests), in a venv of their own.

use std::path::PathBuf;
use std::process::Command;

/// The Python of the tools venv (`$WITM_TOOLS/py-clients`, default
/// `~/.cache/witm`), with each `(module, pip package)` installed on first
/// use.
pub fn tools_python(packages: &[(&str, &str)]) -> PathBuf {
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
