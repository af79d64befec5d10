//! Budget tests in process: the hostile plugin (tests/plugins/hostile) is
//! driven through a real `PluginChain` with flows built in one line, no
//! network. Each act reports what it got in the `x-hostile` request header;
//! a trap leaves the request as it was (no header) and counts a failure.

use std::sync::atomic::Ordering;

use witm_flow::FlowHooks;
use witm_flow::testing::tflow;
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSettings, PluginSpec, RuntimeOptions};
use witm_test_support::guests;

fn hostile(settings: PluginSettings, args: &[&str]) -> PluginSpec {
    PluginSpec {
        path: guests().rust("hostile"),
        args: args.iter().map(|a| a.to_string()).collect(),
        settings,
    }
}

fn small() -> PluginSettings {
    PluginSettings {
        memory_bytes: 32 << 20,
        host_memory_bytes: 4 << 20,
        kv_bytes: 2 << 20,
        max_handles: 1000,
        event_deadline: std::time::Duration::from_secs(5),
        ..PluginSettings::default()
    }
}

/// Runs the `request` event for `path` and returns x-hostile (None: the
/// call failed and the flow went on as before it).
async fn act(chain: &PluginChain, path: &str) -> Option<String> {
    let mut flow = tflow(&format!("http://example.com{path}"));
    chain
        .request(&mut flow, witm_flow::FlowState::default().ctx())
        .await;
    flow.request.headers.get("x-hostile")
}

fn runtime() -> PluginRuntime {
    PluginRuntime::new(RuntimeOptions::default()).expect("runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_store_is_bounded_in_bytes() {
    let runtime = runtime();
    let chain = PluginChain::load(&runtime, &[hostile(small(), &[])])
        .await
        .unwrap();
    let got = act(&chain, "/kv-flood").await.expect("kv-flood reports");
    // 2 MiB of keys and values: two entries of just under 1 MiB fit.
    assert!(got.starts_with("stored 2 MiB"), "{got}");
    assert!(got.contains("key-value store"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_a_plugin_writes_stop_at_the_wire_limits() {
    let runtime = runtime();
    let chain = PluginChain::load(&runtime, &[hostile(small(), &[])])
        .await
        .unwrap();
    let got = act(&chain, "/header-flood")
        .await
        .expect("header-flood reports");
    // 256 KiB of header bytes at most: about 250 fields of 1 KiB.
    let appended: usize = got
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.trim_end_matches(';').parse().ok())
        .unwrap_or_else(|| panic!("{got}"));
    assert!((200..=256).contains(&appended), "{got}");
    assert!(got.contains("header"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_responses_duplicates_and_handles_end_the_call_at_the_budget() {
    let runtime = runtime();
    let chain = PluginChain::load(&runtime, &[hostile(small(), &[])])
        .await
        .unwrap();
    let plugin = chain.plugins()[0].clone();
    for path in [
        "/response-flood",
        "/dup-flood",
        "/handle-flood",
        "/many-headers",
        "/metadata-flood",
    ] {
        let failures = plugin.stats().failures.load(Ordering::Relaxed);
        let got = act(&chain, path).await;
        let failed = plugin.stats().failures.load(Ordering::Relaxed) > failures;
        assert!(
            failed
                || got
                    .as_deref()
                    .is_some_and(|g| g.contains("budget") || g.contains("handles")),
            "{path}: the act must be stopped (got {got:?}, no failure counted)"
        );
        // A success in between, so the failures do not add up to a back-off.
        assert!(act(&chain, "/env").await.unwrap().starts_with("denied"));
    }
    // The plugin still serves after each act ended.
    assert!(act(&chain, "/env").await.unwrap().starts_with("denied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_denied_without_allowed_hosts() {
    let runtime = runtime();
    let chain = PluginChain::load(&runtime, &[hostile(small(), &[])])
        .await
        .unwrap();
    let got = act(&chain, "/replay-flood")
        .await
        .expect("replay-flood reports");
    assert!(
        got.contains("replayed 0") && got.contains("allowed_hosts"),
        "{got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_kept_by_a_plugin_does_not_keep_its_old_version_alive() {
    let runtime = runtime();
    let chain = PluginChain::load(&runtime, &[hostile(small(), &[])])
        .await
        .unwrap();
    let plugin = chain.plugins()[0].clone();
    assert_eq!(act(&chain, "/keep-dup").await.as_deref(), Some("kept"));
    assert_eq!(plugin.stats().versions_alive.load(Ordering::Relaxed), 1);
    chain
        .reconfigure(
            &runtime,
            &[hostile(
                PluginSettings {
                    kv_bytes: 3 << 20,
                    ..small()
                },
                &[],
            )],
        )
        .await;
    // The flow of /keep-dup is gone; its copy lives on in the old instance.
    assert_eq!(
        plugin.stats().versions_alive.load(Ordering::Relaxed),
        1,
        "the old version is freed after the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_cannot_restart_backs_off() {
    let runtime = runtime();
    let chain = PluginChain::load(&runtime, &[hostile(small(), &["fail-restart"])])
        .await
        .unwrap();
    let plugin = chain.plugins()[0].clone();
    assert_eq!(act(&chain, "/crash").await, None);
    for _ in 0..50 {
        act(&chain, "/env").await;
    }
    let stats = plugin.stats();
    let starts = stats.start_failures.load(Ordering::Relaxed);
    assert!(
        (1..=3).contains(&starts),
        "{starts} failed starts for 51 events: the plugin backs off instead of retrying each time"
    );
    assert!(stats.skipped.load(Ordering::Relaxed) >= 45);
}

/// The encoding test's event deadline: long beside the guest's own work,
/// so that a stalled worker shows.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

// One worker: a decode on it would stall the ticker below.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn encoding_a_body_stops_at_the_deadline_without_holding_a_worker() {
    let runtime = runtime();
    let settings = PluginSettings {
        // Time for the guest to make its 64 MiB, not for the host to encode
        // it 100 times.
        event_deadline: DEADLINE,
        memory_bytes: 256 << 20,
        ..small()
    };
    let chain = PluginChain::load(&runtime, &[hostile(settings, &[])])
        .await
        .unwrap();
    let chain = std::sync::Arc::new(chain);
    let plugin = chain.plugins()[0].clone();
    // On a brotli request, one encoding takes a good part of the deadline.
    let (took, gap) = rezip_beside_a_ticker(&chain).await;
    assert!(
        took < DEADLINE + std::time::Duration::from_millis(1500),
        "100 encodings stop at the deadline: {took:?}"
    );
    assert_eq!(plugin.stats().deadline_hits.load(Ordering::Relaxed), 1);
    // Encodings on the worker would stall the ticker for the whole event
    // (3 s); off it, the longest gap is the guest's own work and copies
    // (~0.4 s here, with or without a coding).
    assert!(
        gap < DEADLINE.as_millis() as u64 / 2,
        "the worker kept serving other tasks while the host encoded: longest gap {gap} ms"
    );
    eprintln!("budget-figure: encoding attack took {took:?}, longest gap of another task {gap} ms");
}

/// Runs the hostile plugin's `/rezip` (64 MiB of content set 100 times on
/// a brotli request) on the worker beside a task that ticks every 5 ms: how long
/// the event took and the ticker's longest gap in ms.
async fn rezip_beside_a_ticker(chain: &std::sync::Arc<PluginChain>) -> (std::time::Duration, u64) {
    let mut flow = witm_flow::testing::trequest("POST", "http://example.com/rezip", "");
    flow.request.headers.set("Content-Encoding", "br");
    let started = std::time::Instant::now();
    let (longest_gap_ms, last_ms) = (
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let (gap, last) = (longest_gap_ms.clone(), last_ms.clone());
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let now = started.elapsed().as_millis() as u64;
            gap.fetch_max(now - last.swap(now, Ordering::Relaxed), Ordering::Relaxed);
        }
    });
    // On the worker, beside the ticker (the test's own thread is not one).
    let on_worker = chain.clone();
    tokio::spawn(async move {
        on_worker
            .request(&mut flow, witm_flow::FlowState::default().ctx())
            .await
    })
    .await
    .unwrap();
    let took = started.elapsed();
    ticker.abort();
    let gap = longest_gap_ms
        .load(Ordering::Relaxed)
        .max(took.as_millis() as u64 - last_ms.load(Ordering::Relaxed));
    (took, gap)
}
