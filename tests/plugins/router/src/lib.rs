//! Chooses each flow's upstream proxy per request (mitmproxy#4840): the
//! request's (or the CONNECT's) `x-route` header names the proxy URL, or
//! `direct`; the header is removed before the request goes on. The chosen
//! route is noted in the flow's metadata (`route`), as `upstream` reads it
//! back, and a refused URL is logged.

use witm_sdk::{Context, Events, Flow, Level, Plugin};

struct Router;

impl Plugin for Router {
    fn events() -> Events {
        Events::REQUEST | Events::HTTP_CONNECT
    }

    fn http_connect(ctx: &Context, flow: &Flow) {
        route(ctx, flow);
    }

    fn request(ctx: &Context, flow: &Flow) {
        route(ctx, flow);
    }
}

fn route(ctx: &Context, flow: &Flow) {
    let headers = flow.request().headers();
    let Some(chosen) = headers.get("x-route") else {
        return;
    };
    headers.remove("x-route");
    let proxy = (chosen != "direct").then_some(chosen.as_str());
    match flow.set_upstream(proxy) {
        Ok(()) => {
            let seen = flow.upstream().unwrap_or_else(|| "direct".into());
            flow.set_metadata("route", Some(&seen));
        }
        Err(e) => ctx.log(Level::Error, &format!("set-upstream {chosen}: {e:?}")),
    }
}

witm_sdk::export_plugin!(Router);
