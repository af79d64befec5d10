//! For a request to `/replay-me`, duplicates the flow, marks the copy and
//! sends it again through the proxy (`replay-request`); logs each response
//! with whether it belongs to a replay.

use witm_sdk::{Context, Events, Flow, Level, Plugin};

struct Replayer;

impl Plugin for Replayer {
    fn events() -> Events {
        Events::REQUEST | Events::RESPONSE
    }

    fn request(ctx: &Context, flow: &Flow) {
        if flow.request().path() != "/replay-me" || flow.metadata("replayed").is_some() {
            return;
        }
        let copy = ctx.duplicate_flow(flow);
        copy.set_metadata("replayed", Some("yes"));
        let _ = copy.request().headers().set("x-replayed", "yes");
        if let Err(e) = ctx.replay_request(&copy) {
            ctx.log(Level::Error, &format!("replay failed: {e:?}"));
        }
    }

    fn response(ctx: &Context, flow: &Flow) {
        let status = flow.response().map(|r| r.status()).unwrap_or(0);
        let replayed = flow.metadata("replayed").unwrap_or_else(|| "no".into());
        ctx.log(
            Level::Info,
            &format!(
                "event=response status={status} replayed={replayed} id={}",
                flow.id()
            ),
        );
    }
}

witm_sdk::export_plugin!(Replayer);
