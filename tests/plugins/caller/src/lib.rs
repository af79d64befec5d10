//! Makes the `http-send` calls a request asks for and answers the client
//! with their outcome, without going to the server:
//! `x-call-url` (where), `x-call-count` (how many, default 1),
//! `x-call-timeout` (ms, default 0: the plugin's), `x-call-method`,
//! `x-call-body`. The answer's body has one line per call:
//! `ok STATUS BYTES BODY` or `err KIND: MESSAGE`.

use witm_sdk::{Context, Events, Flow, HostError, OutgoingRequest, Plugin, Response};

struct Caller;

impl Plugin for Caller {
    fn events() -> Events {
        Events::REQUEST
    }

    fn request(ctx: &Context, flow: &Flow) {
        let headers = flow.request().headers();
        let Some(url) = headers.get("x-call-url") else {
            return;
        };
        let number = |name: &str| headers.get(name).and_then(|v| v.parse().ok());
        let count: u32 = number("x-call-count").unwrap_or(1);
        let request = OutgoingRequest {
            method: headers.get("x-call-method").unwrap_or_else(|| "GET".into()),
            url,
            headers: vec![("x-from".into(), "caller".into())],
            body: headers.get("x-call-body").unwrap_or_default().into_bytes(),
            timeout_ms: number("x-call-timeout").unwrap_or(0),
        };
        let mut lines = String::new();
        for _ in 0..count {
            lines += &match ctx.http_send(&request) {
                Ok(answer) => format!(
                    "ok {} {} {}\n",
                    answer.status,
                    answer.body.len(),
                    String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).trim()
                ),
                Err(e) => format!("err {}\n", describe(&e)),
            };
        }
        flow.set_response(Response::new(
            200,
            &[("content-type".into(), "text/plain".into())],
            lines.as_bytes(),
        ));
    }
}

fn describe(e: &HostError) -> String {
    match e {
        HostError::Denied(m) => format!("denied: {m}"),
        HostError::Invalid(m) => format!("invalid: {m}"),
        HostError::OverBudget(m) => format!("over-budget: {m}"),
        HostError::TimedOut(m) => format!("timed-out: {m}"),
        HostError::Unreachable(m) => format!("unreachable: {m}"),
        other => format!("{other:?}"),
    }
}

witm_sdk::export_plugin!(Caller);
