//! Costs seen from a Rust guest:
//! - one `response` event delivered to examples/add-header (3 host calls and
//!   2 handle drops per event);
//! - one `headers.get` and one `headers.set` call (tests/plugins/bench-ops
//!   repeats the call 1000 times per event);
//! - reading a 1 MiB body into the guest (`response.body()`).
//!
//! `cargo bench -p witm-plugin-host --bench event`

use std::time::Instant;

use witm_flow::testing::{tflow, with_response};
use witm_flow::{Flow, FlowHooks, FlowState};
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSpec, RuntimeOptions};
use witm_test_support::guests;

const ROUNDS: usize = 7;
const CALLS: usize = 100_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let plugins = PluginRuntime::new(RuntimeOptions::default()).expect("runtime");
        let add_header = median_ns_per_event(&plugins, "add-header", &[], sample_flow(5), CALLS).await;
        println!("response event, Rust add-header: {add_header:.0} ns per event (median of {ROUNDS} rounds of {CALLS})");

        const REPEAT: u32 = 1000;
        let repeat = REPEAT.to_string();
        let nothing = median_ns_per_event(&plugins, "bench-ops", &["nothing", &repeat], sample_flow(5), 20_000).await;
        for op in ["header-get", "header-set"] {
            let total = median_ns_per_event(&plugins, "bench-ops", &[op, &repeat], sample_flow(5), 200).await;
            println!("{op}: {:.0} ns per call", (total - nothing) / f64::from(REPEAT));
        }
        let body = median_ns_per_event(&plugins, "bench-ops", &["body", "1"], sample_flow(1 << 20), 2_000).await;
        println!("body read of 1 MiB: {:.1} µs per call ({:.2} GB/s)", body / 1000.0, (1 << 20) as f64 / body);
    });
}

/// Median nanoseconds per `response` event of guest `name` with `args`.
async fn median_ns_per_event(
    plugins: &PluginRuntime,
    name: &str,
    args: &[&str],
    mut flow: Flow,
    calls: usize,
) -> f64 {
    let spec = PluginSpec {
        path: guests().rust(name),
        args: args.iter().map(|a| a.to_string()).collect(),
        settings: Default::default(),
    };
    let chain = PluginChain::load(plugins, &[spec])
        .await
        .expect("load plugin");
    // One flow's context for all its events, as the proxy keeps it.
    let mut state = FlowState::default();
    for _ in 0..calls / 10 {
        chain.response(&mut flow, state.ctx()).await;
    }
    let mut per_call = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..calls {
            chain.response(&mut flow, state.ctx()).await;
        }
        per_call.push(started.elapsed().as_nanos() as f64 / calls as f64);
    }
    per_call.sort_by(f64::total_cmp);
    per_call[ROUNDS / 2]
}

/// A flow with a response whose body is `body_len` bytes.
fn sample_flow(body_len: usize) -> Flow {
    with_response(tflow("http://example.com/"), 200, vec![b'x'; body_len])
}
