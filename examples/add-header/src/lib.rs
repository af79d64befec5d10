//! Adds `newheader: foo` to every response — the seed's `add_header.py`.
//!
//! Try it: `make run`, then `curl -si -x localhost:8080 http://example.com/`.

use witm_sdk::{Context, Events, Flow, Plugin};

struct AddHeader;

impl Plugin for AddHeader {
    fn events() -> Events {
        Events::RESPONSE
    }

    fn response(_ctx: &Context, flow: &Flow) {
        if let Some(response) = flow.response() {
            let _ = response.headers().set("newheader", "foo");
        }
    }
}

witm_sdk::export_plugin!(AddHeader);
