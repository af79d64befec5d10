//! The replayer a proxy hands its hooks (for plugins' `replay-request`)
//! must not keep the proxy alive: the hooks hold the replayer and the proxy
//! holds the hooks.

use std::sync::{Arc, OnceLock};

use witm_flow::{Events, FlowHooks, Replayer};
use witm_proxy::{Proxy, ProxyOptions};

/// Hooks that keep the proxy's replayer, as the plugin runtime does.
#[derive(Default)]
struct KeepsReplayer(OnceLock<Replayer>);

impl FlowHooks for KeepsReplayer {
    type Ctx = ();
    fn subscriptions(&self) -> Events {
        Events::NONE
    }
}

#[tokio::test]
async fn hooks_holding_the_replayer_are_freed_with_the_proxy() {
    let hooks = Arc::new(KeepsReplayer::default());
    let proxy = Proxy::new(hooks.clone(), ProxyOptions::default());
    assert!(hooks.0.set(proxy.replayer(None)).is_ok());
    let alive = Arc::downgrade(&hooks);
    drop(hooks);
    drop(proxy);
    assert!(
        alive.upgrade().is_none(),
        "a reference cycle keeps the hooks (and the plugin runtime) alive"
    );
}

/// Counts the `request` events it gets.
#[derive(Default)]
struct CountsRequests(std::sync::atomic::AtomicUsize);

impl FlowHooks for CountsRequests {
    type Ctx = ();
    fn subscriptions(&self) -> Events {
        Events::REQUEST
    }
    async fn request(&self, _flow: &mut witm_flow::Flow, _ctx: witm_flow::FlowCtx<'_, ()>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_replayer_outliving_its_proxy_does_nothing() {
    let hooks = Arc::new(CountsRequests::default());
    let proxy = Proxy::new(hooks.clone(), ProxyOptions::default());
    let replayer = proxy.replayer(None);
    let count = || hooks.0.load(std::sync::atomic::Ordering::Relaxed);
    // While the proxy lives, a replay runs its events.
    replayer(witm_flow::testing::tflow("http://127.0.0.1:1/")).await;
    assert_eq!(count(), 1);
    drop(proxy);
    replayer(witm_flow::testing::tflow("http://127.0.0.1:1/")).await;
    assert_eq!(count(), 1, "a replay ran after its proxy was dropped");
}
