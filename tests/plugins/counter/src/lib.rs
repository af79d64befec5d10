//! Counts requests in the context's key-value store (which survives an
//! instance restart, unlike a global), notes the count in the flow's
//! metadata in `request`, and reads it back in `response` as `x-count`.
//! Traps on paths containing `/trap`, to show the store outliving it.

use witm_sdk::{Context, Events, Flow, Plugin};

struct Counter;

impl Plugin for Counter {
    fn events() -> Events {
        Events::REQUEST | Events::RESPONSE
    }

    fn request(ctx: &Context, flow: &Flow) {
        let count: u64 = ctx
            .kv_get("count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
            + 1;
        let _ = ctx.kv_set("count", Some(&count.to_string()));
        flow.set_metadata("count", Some(&count.to_string()));
        if flow.request().path().contains("/trap") {
            core::arch::wasm32::unreachable();
        }
    }

    fn response(_ctx: &Context, flow: &Flow) {
        let count = flow.metadata("count").unwrap_or_default();
        if let Some(response) = flow.response() {
            let _ = response.headers().set("x-count", &count);
        }
    }
}

witm_sdk::export_plugin!(Counter);
