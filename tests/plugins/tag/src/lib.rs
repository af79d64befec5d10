//! Appends `x-tag: <argument>` to each request (seen by the origin) and each
//! response (seen by the client): two instances show the chain's order.

use std::sync::OnceLock;

use witm_sdk::{Context, Events, Flow, Plugin};

static TAG: OnceLock<String> = OnceLock::new();

struct Tag;

impl Plugin for Tag {
    fn events() -> Events {
        Events::REQUEST | Events::RESPONSE
    }

    fn start(_ctx: &Context, args: Vec<String>) -> Result<(), String> {
        let tag = args.first().cloned().ok_or("usage: tag.wasm <tag>")?;
        let _ = TAG.set(tag);
        Ok(())
    }

    fn request(_ctx: &Context, flow: &Flow) {
        let _ = flow.request().headers().append("x-tag", TAG.get().unwrap());
    }

    fn response(_ctx: &Context, flow: &Flow) {
        if let Some(response) = flow.response() {
            let _ = response.headers().append("x-tag", TAG.get().unwrap());
        }
    }
}

witm_sdk::export_plugin!(Tag);
