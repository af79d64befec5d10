//! What the add-header example costs in each plugin language, in one run:
//! component size, build time, proxy start-up with a cold and a warm
//! compiled-code cache (their difference is wasmtime's compile time),
//! nanoseconds per `response` event, resident memory per plugin loaded
//! once more (its code and one instance: the mean of 20 loads), the guest
//! memory (linear memory and tables) of one instance once started, and
//! requests per second through the proxy (wrk) beside no plugin.
//!
//! `cargo bench -p witm --bench languages` (needs `wrk` for the last
//! column; `WITM_BENCH_SECS` sets each wrk run, default 10).
//!
//! Build time: Python's and JavaScript's builds are always from scratch
//! (componentize-py; esbuild and componentize-js); Go's reuses Go's cache
//! of compiled packages;
//! Rust's is the rebuild of the plugin crate after its source changed,
//! with the SDK and wit-bindgen already built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use witm_flow::testing::{trequest, with_response};
use witm_flow::{FlowHooks, FlowState};
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSettings, PluginSpec, RuntimeOptions};
use witm_test_support::{Origin, Witm, guests, repo_root, target_dir, wrk, wrk_seconds};

/// Instances loaded at once to measure memory per instance.
const INSTANCES: usize = 20;
const EVENTS: usize = 20_000;

#[derive(Clone, Copy, Debug)]
enum Language {
    Rust,
    Python,
    JavaScript,
    Go,
}

impl Language {
    fn add_header(self) -> PathBuf {
        match self {
            Language::Rust => guests().rust("add-header"),
            Language::Python => guests().python("add-header"),
            Language::JavaScript => guests().js("add-header"),
            Language::Go => guests().go("add-header"),
        }
    }

    /// Builds add-header again and returns how long it took.
    fn build(self) -> Duration {
        let root = repo_root();
        let started = Instant::now();
        let status = match self {
            Language::Rust => {
                let source = root.join("examples/add-header/src/lib.rs");
                let text = std::fs::read(&source).unwrap();
                std::fs::write(&source, &text).unwrap();
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                    .args([
                        "build",
                        "--release",
                        "--target",
                        "wasm32-wasip2",
                        "-p",
                        "add-header",
                    ])
                    .arg("--manifest-path")
                    .arg(root.join("plugins/Cargo.toml"))
                    .env("CARGO_TARGET_DIR", target_dir().join("guests"))
                    .env_remove("RUSTFLAGS")
                    .env_remove("CARGO_ENCODED_RUSTFLAGS")
                    .output()
                    .unwrap()
                    .status
            }
            // Go caches compiled packages (GOCACHE): like Rust's, its build
            // is a rebuild with the SDK and the runtime already compiled.
            Language::Python | Language::JavaScript | Language::Go => {
                let (script, extension) = match self {
                    Language::Python => ("build-python.sh", "py"),
                    Language::JavaScript => ("build-js.sh", "js"),
                    _ => ("build-go.sh", "go"),
                };
                Command::new(root.join("plugins").join(script))
                    .arg(root.join(format!("examples/add-header/add_header.{extension}")))
                    .arg(target_dir().join(format!("bench-languages/add_header_{extension}.wasm")))
                    .output()
                    .unwrap()
                    .status
            }
        };
        assert!(status.success(), "{self:?}: the build failed");
        started.elapsed()
    }
}

fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let dir = target_dir().join("bench-languages");
    std::fs::create_dir_all(&dir).unwrap();
    let origin = Origin::start_unrecorded();
    let seconds = wrk_seconds();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline = seconds.map(|s| requests_per_s(binary, None, &origin, s));
    if let Some(rps) = baseline {
        println!("through witm with no plugin: {rps:.0} requests/s");
    }
    println!(
        "{:<8} {:>9} {:>8} {:>10} {:>10} {:>10} {:>12} {:>9} {:>10} {:>8}",
        "language",
        "size KB",
        "build s",
        "cold ms",
        "warm ms",
        "compile ms",
        "ns/event",
        "KiB/load",
        "KiB/inst.",
        "req/s"
    );
    for language in [
        Language::Rust,
        Language::Python,
        Language::JavaScript,
        Language::Go,
    ] {
        let plugin = language.add_header();
        let size = std::fs::metadata(&plugin).unwrap().len() / 1000;
        let build = language.build();
        let confdir = dir.join(format!("confdir-{language:?}"));
        let _ = std::fs::remove_dir_all(&confdir);
        let cold = start_up(binary, &confdir, &plugin);
        let warm = start_up(binary, &confdir, &plugin);
        let (per_event, per_load, per_instance) = runtime.block_on(in_process(&plugin));
        let rps = seconds.map(|s| requests_per_s(binary, Some(&plugin), &origin, s));
        println!(
            "{:<8} {size:>9} {:>8.1} {:>10.0} {:>10.0} {:>10.0} {per_event:>12.0} {per_load:>9} {per_instance:>10} {:>8}",
            format!("{language:?}"),
            build.as_secs_f64(),
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            (cold.saturating_sub(warm)).as_secs_f64() * 1e3,
            match (rps, baseline) {
                (Some(rps), Some(base)) => format!("{rps:.0} ({:.2})", rps / base),
                _ => "-".into(),
            }
        );
    }
}

/// Time from starting witm with `plugin` until it listens.
fn start_up(binary: &Path, confdir: &Path, plugin: &Path) -> Duration {
    let started = Instant::now();
    let mut witm = Witm::start_in(
        binary,
        confdir,
        &["-q", "-s", plugin.to_str().unwrap()],
        &[],
    )
    .unwrap_or_else(|(status, log)| panic!("{status}: {log}"));
    let took = started.elapsed();
    witm.stop();
    took
}

/// The median nanoseconds per `response` event, the resident memory one
/// more load of the plugin costs (its code and its one instance; the mean
/// over [`INSTANCES`] loads kept at once), and the KiB of linear memory
/// and tables one instance holds once started (what each instance of a
/// pool adds).
async fn in_process(plugin: &Path) -> (f64, u64, u64) {
    let cache = target_dir().join("bench-languages/cache");
    let plugins = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let spec = || PluginSpec {
        path: plugin.to_owned(),
        args: Vec::new(),
        settings: PluginSettings::default(),
    };
    let chain = PluginChain::load(&plugins, &[spec()]).await.expect("load");
    let guest_memory = chain.plugins()[0]
        .stats()
        .instance_memory_bytes
        .load(std::sync::atomic::Ordering::Relaxed)
        / 1024;
    let mut flow = with_response(trequest("GET", "http://example.com/", ""), 200, "hello");
    let mut state = FlowState::default();
    for _ in 0..EVENTS / 10 {
        chain.response(&mut flow, state.ctx()).await;
    }
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..EVENTS / 5 {
            chain.response(&mut flow, state.ctx()).await;
        }
        rounds.push(started.elapsed().as_nanos() as f64 / (EVENTS / 5) as f64);
    }
    rounds.sort_by(f64::total_cmp);
    let before = resident_kib();
    let mut chains = Vec::new();
    for _ in 0..INSTANCES {
        chains.push(PluginChain::load(&plugins, &[spec()]).await.expect("load"));
    }
    let per_load = resident_kib().saturating_sub(before) / INSTANCES as u64;
    drop(chains);
    (rounds[2], per_load, guest_memory)
}

fn requests_per_s(binary: &Path, plugin: Option<&Path>, origin: &Origin, seconds: u32) -> f64 {
    let mut args = vec!["-q".to_owned()];
    if let Some(plugin) = plugin {
        args.extend(["-s".to_owned(), plugin.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut witm = Witm::start(binary, &args).expect("witm starts");
    let report = wrk(&origin.url("/"), Some(witm.port), seconds);
    witm.stop();
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
