//! `-s "retarget.wasm BASE"`: a request whose path starts with `/elsewhere`
//! is sent to BASE + its path instead (`set-url` re-targets the request,
//! host and all).

use std::sync::OnceLock;

use witm_sdk::{Context, Events, Flow, Level, Plugin};

static BASE: OnceLock<String> = OnceLock::new();

struct Retarget;

impl Plugin for Retarget {
    fn events() -> Events {
        Events::REQUEST
    }

    fn start(_ctx: &Context, args: Vec<String>) -> Result<(), String> {
        let base = args
            .first()
            .cloned()
            .ok_or("usage: retarget.wasm BASE-URL")?;
        let _ = BASE.set(base);
        Ok(())
    }

    fn request(ctx: &Context, flow: &Flow) {
        let request = flow.request();
        let path = request.path();
        if path.starts_with("/elsewhere") {
            let target = format!("{}{path}", BASE.get().unwrap());
            if let Err(e) = request.set_url(&target) {
                ctx.log(Level::Error, &format!("set-url {target}: {e:?}"));
            }
        }
    }
}

witm_sdk::export_plugin!(Retarget);
