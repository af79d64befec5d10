//! Rewrites "world" to "witm" in response text: the body is decoded from its
//! content-encoding, changed, and encoded back by the host.

use witm_sdk::{Context, Events, Flow, Level, Plugin};

struct Rewrite;

impl Plugin for Rewrite {
    fn events() -> Events {
        Events::RESPONSE
    }

    fn response(ctx: &Context, flow: &Flow) {
        let Some(response) = flow.response() else {
            return;
        };
        match response.text() {
            Ok(text) if text.contains("world") => {
                if let Err(e) = response.set_text(&text.replace("world", "witm")) {
                    ctx.log(Level::Warn, &format!("set-text failed: {e:?}"));
                }
            }
            Ok(_) => {}
            Err(e) => ctx.log(Level::Warn, &format!("text failed: {e:?}")),
        }
    }
}

witm_sdk::export_plugin!(Rewrite);
