//! Changes the request, then traps, on paths containing `/trap`. On paths
//! containing `/trap-response` it changes the response's headers instead,
//! then traps: it adds and changes fields, first inserting one if the path
//! says `insert`, and only adds them if it says `add-only`. The proxy must
//! undo the changes, replace the instance and go on serving.

use witm_sdk::{Context, Events, Flow, Level, Plugin};

struct Trap;

impl Plugin for Trap {
    fn events() -> Events {
        Events::REQUEST | Events::RESPONSE
    }

    fn start(ctx: &Context, _args: Vec<String>) -> Result<(), String> {
        ctx.log(Level::Info, "trap plugin started");
        Ok(())
    }

    fn request(_ctx: &Context, flow: &Flow) {
        let request = flow.request();
        let path = request.path();
        if path.contains("/trap") && !path.contains("/trap-response") {
            let _ = request.headers().set("x-half-done", "yes");
            core::arch::wasm32::unreachable();
        }
    }

    fn response(_ctx: &Context, flow: &Flow) {
        if !flow.request().path().contains("/trap-response") {
            return;
        }
        if let Some(response) = flow.response() {
            let path = flow.request().path();
            let headers = response.headers();
            if path.contains("insert") {
                let _ = headers.insert(0, "x-half-done", "first");
            }
            let _ = headers.set("x-half-done", "yes");
            if !path.contains("add-only") {
                let _ = headers.set("content-type", "changed/by-trap");
            }
            let _ = headers.append("x-half-done", "again");
            core::arch::wasm32::unreachable();
        }
    }
}

witm_sdk::export_plugin!(Trap);
