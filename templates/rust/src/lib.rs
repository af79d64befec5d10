//! {{name}}: adds `x-{{name}}: hello` to every response.

use witm_sdk::{Context, Events, Flow, Plugin};

struct Header;

impl Plugin for Header {
    fn events() -> Events {
        Events::RESPONSE
    }

    fn response(_ctx: &Context, flow: &Flow) {
        if let Some(response) = flow.response() {
            let _ = response.headers().set("x-{{name}}", "hello");
        }
    }
}

witm_sdk::export_plugin!(Header);
