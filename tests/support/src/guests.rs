//! Builds the plugin components the tests and benchmarks load.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// Paths of the built components.
#[derive(Debug)]
pub struct Guests {
    dir: PathBuf,
    /// `examples/add-header-py`, built with componentize-py.
    pub add_header_py: PathBuf,
    /// `tests/plugins-py/hostile`, the Python twin of the hostile plugin.
    pub hostile_py: PathBuf,
}

impl Guests {
    /// The component of the Rust guest crate `name` (e.g. "add-header").
    pub fn rust(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.wasm", name.replace('-', "_")))
    }
}

/// The repository's top folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Cargo's target folder for the host workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Builds every guest once per process and returns where they are. Panics
/// with the build's output if a build fails: a test cannot go on without
/// its plugins.
pub fn guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| {
        let root = repo_root();
        let guest_target = target_dir().join("guests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(root.join("plugins/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &guest_target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("run cargo to build the guest plugins");
        assert!(
            output.status.success(),
            "building the Rust guests failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let add_header_py = guest_target.join("python/add_header_py.wasm");
        build_python(&root, &root.join("examples/add-header-py"), &add_header_py);
        let hostile_py = guest_target.join("python/hostile_py.wasm");
        build_python(&root, &root.join("tests/plugins-py/hostile"), &hostile_py);
        Guests {
            dir: guest_target.join("wasm32-wasip2/release"),
            add_header_py,
            hostile_py,
        }
    })
}

/// Runs `plugins/build-python.sh` unless `out` is newer than its sources.
fn build_python(root: &Path, app_dir: &Path, out: &Path) {
    let sources = [
        app_dir.join("app.py"),
        root.join("plugins/python/witm_sdk.py"),
        root.join("wit/plugin.wit"),
    ];
    if is_newer_than(out, &sources) {
        return;
    }
    let output = Command::new(root.join("plugins/build-python.sh"))
        .arg(app_dir)
        .arg(out)
        .output()
        .expect("run plugins/build-python.sh");
    assert!(
        output.status.success(),
        "building the Python plugin {} failed:\n{}",
        app_dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_newer_than(out: &Path, sources: &[PathBuf]) -> bool {
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let Some(built) = modified(out) else {
        return false;
    };
    sources
        .iter()
        .all(|s| modified(s).unwrap_or(SystemTime::UNIX_EPOCH) <= built)
}
