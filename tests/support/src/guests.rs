//! Builds the plugin components the tests and benchmarks load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// Paths of the built components.
#[derive(Debug)]
pub struct Guests {
    dir: PathBuf,
    /// Where components built by scripts (Python, JavaScript) go.
    by_script: PathBuf,
    /// `tests/plugins-py/hostile`, the Python twin of the hostile plugin.
    pub hostile_py: PathBuf,
    /// The script-built examples so far, by file name.
    built: Mutex<HashMap<String, PathBuf>>,
}

impl Guests {
    /// The component of the Rust guest crate `name` (e.g. "add-header").
    pub fn rust(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.wasm", name.replace('-', "_")))
    }

    /// The component of the Python example `name` (`examples/NAME/NAME.py`
    /// with `_` for `-`, on the witm SDK), built on first use.
    pub fn python(&self, name: &str) -> PathBuf {
        self.script(&format!("examples/{name}/{}.py", name.replace('-', "_")))
    }

    /// The component of the JavaScript example `name`
    /// (`examples/NAME/NAME.js`), built on first use.
    pub fn js(&self, name: &str) -> PathBuf {
        self.script(&format!("examples/{name}/{}.js", name.replace('-', "_")))
    }

    /// The component of the Go example `name` (`examples/NAME/NAME.go`),
    /// built on first use.
    pub fn go(&self, name: &str) -> PathBuf {
        self.script(&format!("examples/{name}/{}.go", name.replace('-', "_")))
    }

    /// The component of a Python, JavaScript or Go plugin at `path` (from
    /// the repository's top), built on first use by its language's script.
    pub fn script(&self, path: &str) -> PathBuf {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(out) = built.get(path) {
            return out.clone();
        }
        let source = repo_root().join(path);
        let extension = source.extension().and_then(|e| e.to_str()).unwrap_or("");
        // Named after the file (a plugin's name is its component's stem),
        // in a folder named after the file's.
        let stem = source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin");
        let folder = Path::new(path).parent().unwrap_or(Path::new(""));
        let out = self
            .by_script
            .join(extension)
            .join(folder)
            .join(format!("{stem}.wasm"));
        match extension {
            "py" => build_python(&repo_root(), &source, &out),
            "js" => build_by_script("build-js.sh", &js_sources(), &source, &out),
            "go" => build_by_script("build-go.sh", &go_sources(), &source, &out),
            _ => panic!("{path}: not a Python, JavaScript or Go plugin"),
        }
        built.insert(path.to_owned(), out.clone());
        out
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
        let hostile_py = guest_target.join("python/hostile_py.wasm");
        build_python(&root, &root.join("tests/plugins-py/hostile"), &hostile_py);
        Guests {
            dir: guest_target.join("wasm32-wasip2/release"),
            by_script: guest_target.clone(),
            hostile_py,
            built: Mutex::default(),
        }
    })
}

/// Runs `plugins/build-python.sh` on `plugin` (a module on the witm SDK,
/// or a folder whose `app.py` is the raw world) unless `out` is newer than
/// its sources.
fn build_python(root: &Path, plugin: &Path, out: &Path) {
    let mut sources = vec![
        root.join("plugins/python/witm_sdk.py"),
        root.join("plugins/python/witm/__init__.py"),
        root.join("plugins/python/witm/_world.py"),
        root.join("plugins/build-python.sh"),
        root.join("wit/plugin.wit"),
    ];
    sources.push(match plugin.is_dir() {
        true => plugin.join("app.py"),
        false => plugin.to_owned(),
    });
    if is_newer_than(out, &sources) {
        return;
    }
    let output = Command::new(root.join("plugins/build-python.sh"))
        .arg(plugin)
        .arg(out)
        .output()
        .expect("run plugins/build-python.sh");
    assert!(
        output.status.success(),
        "building the Python plugin {} failed:\n{}",
        plugin.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What a JavaScript component is built from, beside the plugin.
fn js_sources() -> Vec<PathBuf> {
    let root = repo_root();
    [
        "plugins/js/witm.js",
        "plugins/js/componentize.mjs",
        "plugins/js/preopens.mjs",
        "plugins/js/package.json",
        "plugins/js-tools.sh",
        "plugins/capped.sh",
        "plugins/build-js.sh",
        "wit/plugin.wit",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect()
}

/// What a Go component is built from, beside the plugin.
fn go_sources() -> Vec<PathBuf> {
    let root = repo_root();
    [
        "plugins/go/witm/witm.go",
        "plugins/go/witm/dispatch.go",
        "plugins/go/export_wit_world/exports.go",
        "plugins/js-tools.sh",
        "plugins/capped.sh",
        "plugins/build-go.sh",
        "wit/plugin.wit",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect()
}

/// Runs `plugins/SCRIPT PLUGIN OUT` unless `out` is newer than `sources`
/// and the plugin.
fn build_by_script(script: &str, sources: &[PathBuf], plugin: &Path, out: &Path) {
    let mut sources = sources.to_vec();
    sources.push(plugin.to_owned());
    if is_newer_than(out, &sources) {
        return;
    }
    let output = Command::new(repo_root().join("plugins").join(script))
        .arg(plugin)
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("run plugins/{script}: {e}"));
    assert!(
        output.status.success(),
        "plugins/{script} {} failed:\n{}",
        plugin.display(),
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
