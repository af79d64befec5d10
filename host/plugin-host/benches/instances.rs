//! Instances: how long a fresh instance takes to be ready (instantiate +
//! `start`), and how much memory one costs.
//!
//! - instantiation: a `request` event that traps makes the host drop the
//!   instance and start a new one before the event returns; its time minus
//!   an ordinary event's is the replacement (tests/plugins/trap);
//! - memory: a stateless pool of 200 instances of tests/plugins/hostile is
//!   filled by 200 events sleeping at once; the process's resident memory
//!   grows by that many instances.
//!
//! `cargo bench -p witm-plugin-host --bench instances`

use std::sync::Arc;
use std::time::{Duration, Instant};

use witm_flow::testing::tflow;
use witm_flow::{Flow, FlowHooks, FlowState};
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSettings, PluginSpec, RuntimeOptions};
use witm_test_support::guests;

const POOL: usize = 200;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let plugins = PluginRuntime::new(RuntimeOptions::default()).expect("runtime");
        let trap = PluginChain::load(&plugins, &[spec("trap", 1)])
            .await
            .expect("trap");
        let ordinary = median(&trap, &["/ok"], 2000).await;
        // An ordinary event between traps keeps the plugin from backing off
        // (three failures in a row would make it skip events).
        let replaced = median(&trap, &["/ok", "/trap"], 500).await;
        println!(
            "instance replaced after a trap (instantiate + start, Rust guest): {:.1} µs \
             (trapping event {:.1} µs, ordinary event {:.1} µs)",
            (replaced - ordinary) / 1000.0,
            replaced / 1000.0,
            ordinary / 1000.0
        );

        let before = resident_kib();
        let pool = Arc::new(
            PluginChain::load(&plugins, &[spec("hostile", POOL)])
                .await
                .expect("hostile"),
        );
        let loaded = resident_kib();
        let started = Instant::now();
        let events: Vec<_> = (0..POOL)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut flow = flow(&format!("/slow?ms=1500&i={i}"));
                    pool.request(&mut flow, FlowState::default().ctx()).await;
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let filled = resident_kib();
        for event in events {
            event.await.unwrap();
        }
        let plugins = pool.plugins();
        let stats = plugins[0].stats();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{} instances started, {:.1} µs each on average (instantiate + start, from the \
             plugin's own counters); {:.0} ms from the first event to the last instance",
            load(&stats.instances_started),
            load(&stats.instance_start_ns) as f64 / 1e3 / load(&stats.instances_started) as f64,
            started.elapsed().as_millis().saturating_sub(1500),
        );
        println!(
            "memory per instance: {:.0} KiB \
             (resident {} MiB before the plugin, {} MiB with one instance, {} MiB with {POOL})",
            (filled - loaded) as f64 / (POOL - 1) as f64,
            before / 1024,
            loaded / 1024,
            filled / 1024,
        );
    });
}

fn spec(name: &str, instances: usize) -> PluginSpec {
    PluginSpec {
        path: guests().rust(name),
        args: Vec::new(),
        settings: PluginSettings {
            instances,
            ..PluginSettings::default()
        },
    }
}

fn flow(path: &str) -> Flow {
    tflow(&format!("http://example.com{path}"))
}

/// Median nanoseconds of a `request` event on the last of `paths`, each
/// time after untimed events on the others.
async fn median(chain: &PluginChain, paths: &[&str], calls: usize) -> f64 {
    let (timed, before) = paths.split_last().expect("a path");
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        for path in before {
            chain
                .request(&mut flow(path), FlowState::default().ctx())
                .await;
        }
        let mut flow = flow(timed);
        let started = Instant::now();
        chain.request(&mut flow, FlowState::default().ctx()).await;
        times.push(started.elapsed().as_nanos() as f64);
    }
    times.sort_by(f64::total_cmp);
    times[calls / 2]
}

/// This process's resident memory (VmRSS), in KiB.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
