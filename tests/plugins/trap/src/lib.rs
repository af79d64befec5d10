//! Changes the request, then traps, on paths containing `/trap`: the proxy
//! must undo the change, replace the instance and go on serving.

use witm_sdk::{Context, Events, Flow, Level, Plugin};

struct Trap;

impl Plugin for Trap {
    fn events() -> Events {
        Events::REQUEST
    }

    fn start(ctx: &Context, _args: Vec<String>) -> Result<(), String> {
        ctx.log(Level::Info, "trap plugin started");
        Ok(())
    }

    fn request(_ctx: &Context, flow: &Flow) {
        let request = flow.request();
        if request.path().contains("/trap") {
            let _ = request.headers().set("x-half-done", "yes");
            core::arch::wasm32::unreachable();
        }
    }
}

witm_sdk::export_plugin!(Trap);
