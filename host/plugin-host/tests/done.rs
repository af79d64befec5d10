//! `done` is a plugin's last event: what comes while it runs, or after it
//! (a pooled server connection closing on a worker thread at exit), is
//! dropped, and no instance is started again for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use witm_flow::testing::tflow;
use witm_flow::{FlowHooks, FlowState};
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSpec, RuntimeOptions};
use witm_test_support::guests;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_racing_done_start_no_instance_again() {
    for _ in 0..10 {
        let runtime = PluginRuntime::new(RuntimeOptions::default()).unwrap();
        let spec = PluginSpec {
            path: guests().rust("tag"),
            args: vec!["v1".into()],
            settings: Default::default(),
        };
        let chain = Arc::new(PluginChain::load(&runtime, &[spec]).await.unwrap());
        // Flows keep asking for the one instance while `done` takes it.
        let senders: Vec<_> = (0..8)
            .map(|_| {
                let chain = chain.clone();
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let mut flow = tflow("http://example.com/");
                        chain.request(&mut flow, FlowState::default().ctx()).await;
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        chain.done().await;
        for sender in senders {
            sender.await.unwrap();
        }
        let plugins = chain.plugins();
        let started = plugins[0].stats().instances_started.load(Ordering::Relaxed);
        assert_eq!(started, 1, "an instance started again after done");
    }
}
