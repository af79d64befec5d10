//! Reloads in process: a flow stays with the plugin version it started on,
//! for which events it gets as well as for who handles them.

use witm_flow::testing::{tflow, with_response};
use witm_flow::{FlowHooks, FlowState};
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSpec, RuntimeOptions};
use witm_test_support::{guests, target_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_gets_the_events_of_its_version_after_a_reload_that_drops_them() {
    let dir = target_dir().join("plugin-host-reload");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plugin.wasm");
    std::fs::copy(guests().rust("tag"), &path).unwrap();
    let runtime = PluginRuntime::new(RuntimeOptions::default()).unwrap();
    let spec = PluginSpec {
        path: path.clone(),
        args: vec!["v1".into()],
        settings: Default::default(),
    };
    let chain = PluginChain::load(&runtime, &[spec]).await.unwrap();

    // The flow's context, kept for all its events (as the proxy does).
    let mut state = FlowState::default();
    let mut flow = tflow("http://example.com/pinned");
    chain.request(&mut flow, state.ctx()).await;
    assert_eq!(flow.request.headers.get("x-tag").as_deref(), Some("v1"));

    // Version 2 (the hostile plugin) subscribes to `request` only.
    std::fs::copy(guests().rust("hostile"), &path).unwrap();
    chain.reload_changed(&runtime).await;
    assert!(
        !chain.plugins()[0]
            .subscriptions()
            .contains(witm_flow::Events::RESPONSE)
    );

    // The flow that started on version 1 still gets its `response`.
    let mut flow = with_response(flow, 200, "ok");
    chain.response(&mut flow, state.ctx()).await;
    let response = flow.response.as_ref().unwrap();
    assert_eq!(response.headers.get("x-tag").as_deref(), Some("v1"));

    // A new flow goes to version 2, which takes no `response`.
    let mut fresh = with_response(tflow("http://example.com/fresh"), 200, "ok");
    chain.response(&mut fresh, FlowState::default().ctx()).await;
    assert_eq!(fresh.response.unwrap().headers.get("x-tag"), None);
}
