//! The cost of one `response` event delivered to a Rust guest
//! (examples/add-header: 3 host calls and 2 handle drops per event).
//!
//! `cargo bench -p witm-plugin-host --bench event`

use std::time::Instant;

use witm_flow::{Flow, FlowHooks, Headers, Request, Response};
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
        let spec = PluginSpec {
            path: guests().rust("add-header"),
            args: Vec::new(),
        };
        let chain = PluginChain::load(&plugins, &[spec]).await.expect("load add-header");
        let mut flow = sample_flow();
        for _ in 0..10_000 {
            chain.response(&mut flow).await;
        }
        assert_eq!(
            flow.response.as_ref().unwrap().headers.get("newheader").as_deref(),
            Some("foo")
        );
        let mut per_call = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            for _ in 0..CALLS {
                chain.response(&mut flow).await;
            }
            per_call.push(started.elapsed().as_nanos() as f64 / CALLS as f64);
        }
        per_call.sort_by(f64::total_cmp);
        println!(
            "response event, Rust add-header: median {:.0} ns per event (min {:.0}, max {:.0}; {ROUNDS} rounds of {CALLS})",
            per_call[ROUNDS / 2],
            per_call[0],
            per_call[ROUNDS - 1]
        );
    });
}

fn sample_flow() -> Flow {
    let request = Request {
        method: "GET".into(),
        scheme: "http".into(),
        host: "example.com".into(),
        port: 80,
        path: "/".into(),
        http_version: "HTTP/1.1".into(),
        headers: Headers::from_pairs([("Host", "example.com"), ("Accept", "*/*")]),
        ..Request::default()
    };
    let mut flow = Flow::new(Default::default(), request);
    flow.response = Some(Response::make(
        200,
        Headers::from_pairs([("Content-Type", "text/plain"), ("Content-Length", "5")]),
        &b"hello"[..],
    ));
    flow
}
