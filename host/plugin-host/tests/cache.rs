//! The compiled-code cache: a file loaded many times is not recompressed in
//! the background (wasmtime's worker would, at zstd level 20, inside a
//! serving proxy).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use witm_plugin_host::{PluginChain, PluginRuntime, PluginSpec, RuntimeOptions};
use witm_test_support::{guests, target_dir};

/// wasmtime's `*.stats` file beside each cached component, as its worker
/// writes it: `usages = N` and `optimized-compression = LEVEL`.
fn stats_file(cache: &Path) -> Option<PathBuf> {
    let modules = std::fs::read_dir(cache.join("modules")).ok()?;
    let versions = modules.flatten().map(|e| e.path());
    versions
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "stats"))
}

/// A figure of a stats file; `None` while the worker is still writing it.
fn stat(stats: &str, key: &str) -> Option<u64> {
    stats.lines().find_map(|l| {
        l.strip_prefix(key)?
            .trim()
            .strip_prefix('=')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits until `ready` holds for the stats file's text.
fn wait_for_stats(cache: &Path, ready: impl Fn(&str) -> bool) -> (PathBuf, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(path) = stats_file(cache)
            && let Ok(text) = std::fs::read_to_string(&path)
            && ready(&text)
        {
            return (path, text);
        }
        assert!(Instant::now() < deadline, "no stats in {}", cache.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Loads the tag plugin `times` times on one new runtime over `cache`.
async fn load(cache: &Path, times: usize) {
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    for _ in 0..times {
        let spec = PluginSpec {
            path: guests().rust("tag"),
            args: vec!["cached".into()],
            settings: Default::default(),
        };
        PluginChain::load(&runtime, &[spec]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_component_used_often_keeps_its_compression_level() {
    let cache = target_dir().join("plugin-host-cache");
    let _ = std::fs::remove_dir_all(&cache);
    // Compiled and written to the cache, at zstd's default level.
    load(&cache, 1).await;
    let level_of = |s: &str| stat(s, "optimized-compression");
    let (path, written) = wait_for_stats(&cache, |s| {
        stat(s, "usages").is_some() && level_of(s).is_some()
    });
    let level = level_of(&written).unwrap();

    // Past wasmtime's threshold for recompressing (256 uses), then loaded
    // twice more: the worker takes its events in order, so once the second
    // use is counted, the first one's recompression would be done.
    std::fs::write(
        &path,
        format!("usages = 1000\noptimized-compression = {level}\n"),
    )
    .unwrap();
    load(&cache, 2).await;
    let (_, used) = wait_for_stats(&cache, |s| {
        stat(s, "usages").is_some_and(|n| n >= 1002) && level_of(s).is_some()
    });
    assert_eq!(
        level_of(&used),
        Some(level),
        "the cache file was recompressed: {used}"
    );
}
