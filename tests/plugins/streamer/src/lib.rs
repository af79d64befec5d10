//! In `response-headers`, asks for bodies over 1 MiB to be streamed; in
//! `response`, logs whether the body was held or streamed, and for a
//! request whose URL has `replace`, puts a response of its own in place of
//! the server's.

use witm_sdk::{Context, Events, Flow, HostError, Level, Plugin, Response};

struct Streamer;

impl Plugin for Streamer {
    fn events() -> Events {
        Events::RESPONSE_HEADERS | Events::RESPONSE
    }

    fn response_headers(_ctx: &Context, flow: &Flow) {
        let Some(response) = flow.response() else {
            return;
        };
        let length: u64 = response
            .headers()
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if length > 1 << 20 {
            response.set_stream_body(true);
        }
    }

    fn response(ctx: &Context, flow: &Flow) {
        let Some(response) = flow.response() else {
            return;
        };
        let seen = match response.body() {
            Ok(body) => format!("held {} bytes", body.len()),
            Err(HostError::BodyStreamed) => "streamed".to_owned(),
            Err(e) => format!("error {e:?}"),
        };
        ctx.log(Level::Info, &format!("body: {seen}"));
        if flow.request().url().contains("replace") {
            flow.set_response(Response::new(
                200,
                &[("content-type".to_owned(), "text/plain".to_owned())],
                b"replaced by the plugin\n",
            ));
        }
    }
}

witm_sdk::export_plugin!(Streamer);
