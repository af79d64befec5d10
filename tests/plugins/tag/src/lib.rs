//! Appends `x-tag: <argument>` to each request (seen by the origin) and each
//! response (seen by the client): two instances show the chain's order.
//! With a second argument `touch`, it first sets the response's `zz-last`
//! to the value it has: a change that changes nothing, for tests that
//! compare the proxy's way for untouched fields with its way for changed
//! ones. With a second argument `host=NAME`, it sets each request's `host`
//! to NAME (a virtual host).

use std::sync::OnceLock;

use witm_sdk::{Context, Events, Flow, Plugin};

static TAG: OnceLock<String> = OnceLock::new();
static TOUCH: OnceLock<bool> = OnceLock::new();
static HOST: OnceLock<Option<String>> = OnceLock::new();

struct Tag;

impl Plugin for Tag {
    fn events() -> Events {
        Events::REQUEST | Events::RESPONSE
    }

    fn start(_ctx: &Context, args: Vec<String>) -> Result<(), String> {
        let tag = args.first().cloned().ok_or("usage: tag.wasm <tag>")?;
        let _ = TAG.set(tag);
        let _ = TOUCH.set(args.get(1).is_some_and(|a| a == "touch"));
        let host = args.get(1).and_then(|a| a.strip_prefix("host="));
        let _ = HOST.set(host.map(str::to_owned));
        Ok(())
    }

    fn request(_ctx: &Context, flow: &Flow) {
        let headers = flow.request().headers();
        if let Some(Some(host)) = HOST.get() {
            let _ = headers.set("host", host);
        }
        let _ = headers.append("x-tag", TAG.get().unwrap());
    }

    fn response(_ctx: &Context, flow: &Flow) {
        if let Some(response) = flow.response() {
            let headers = response.headers();
            if TOUCH.get() == Some(&true)
                && let Some(value) = headers.get("zz-last")
            {
                let _ = headers.set("zz-last", &value);
            }
            let _ = headers.append("x-tag", TAG.get().unwrap());
        }
    }
}

witm_sdk::export_plugin!(Tag);
