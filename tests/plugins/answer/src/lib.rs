//! Answers `/answered` itself (mitmproxy's `Response.make` in `request`):
//! the client gets the plugin's response and the server sees nothing.

use witm_sdk::{Context, Events, Flow, Plugin, Response};

struct Answer;

impl Plugin for Answer {
    fn events() -> Events {
        Events::REQUEST
    }

    fn request(_ctx: &Context, flow: &Flow) {
        if flow.request().path().starts_with("/answered") {
            let response = Response::new(
                200,
                &[("content-type".into(), "text/plain".into())],
                b"answered by plugin\n",
            );
            flow.set_response(response);
        }
    }
}

witm_sdk::export_plugin!(Answer);
