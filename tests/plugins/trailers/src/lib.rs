//! Holds every body (it subscribes to `request` and `response`), logs the
//! trailers that came with it, and adds `x-witm-trailer: seen` to the
//! trailers of a response that had some: the client sees a plugin's
//! trailer, and that the server's survived being held.

use witm_sdk::{Context, Events, Flow, Headers, Level, Plugin};

struct Trailers;

fn shown(trailers: &Headers) -> String {
    let entries: Vec<String> = trailers
        .entries()
        .into_iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    entries.join(",")
}

impl Plugin for Trailers {
    fn events() -> Events {
        Events::REQUEST | Events::RESPONSE
    }

    fn request(ctx: &Context, flow: &Flow) {
        let trailers = flow.request().trailers();
        ctx.log(
            Level::Info,
            &format!("request-trailers {}", shown(&trailers)),
        );
    }

    fn response(ctx: &Context, flow: &Flow) {
        let Some(response) = flow.response() else {
            return;
        };
        let trailers = response.trailers();
        ctx.log(
            Level::Info,
            &format!("response-trailers {}", shown(&trailers)),
        );
        if !trailers.entries().is_empty() {
            let _ = trailers.append("x-witm-trailer", "seen");
        }
    }
}

witm_sdk::export_plugin!(Trailers);
