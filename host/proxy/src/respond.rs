//! What the client gets back for a flow: the flow's response on the wire
//! (with the server's streamed body only while it is the server's
//! response), or nothing when a plugin killed the flow.

use std::time::Instant;

use http::StatusCode;
use witm_flow::message::canonical_reason;
use witm_flow::{Body, Flow, FlowHooks};

use crate::body::{self, ProxyBody};
use crate::flow_log::{FlowLine, LoggedBody};
use crate::shared::Shared;
use crate::wire::{self, ReceivedHead};

/// A plugin killed the flow. The service fails with it, and hyper drops the
/// client connection (HTTP/2: resets the stream) instead of answering.
#[derive(Debug)]
pub(crate) struct FlowKilled;

impl std::fmt::Display for FlowKilled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("flow killed by a plugin")
    }
}

impl std::error::Error for FlowKilled {}

/// `Err(FlowKilled)` if a plugin killed the flow; logs the flow's line.
pub(crate) fn killed<H: FlowHooks>(shared: &Shared<H>, flow: &Flow) -> Result<(), FlowKilled> {
    if !flow.killed {
        return Ok(());
    }
    if shared.options.flow_lines {
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout().lock(),
            "{} {} {} killed",
            flow.client.address,
            flow.request.method,
            flow.request.url()
        );
    }
    Err(FlowKilled)
}

/// The client's response, from the flow's: with the server's body still
/// streaming (`streamed`), and hyper's parse of the server's head
/// (`received`), which its fields go out from while they are as they came
/// (plus any a plugin appended) instead of converting the flow's copy back.
pub(crate) fn respond<H: FlowHooks>(
    shared: &Shared<H>,
    flow: &Flow,
    (streamed, received): (Option<ProxyBody>, Option<ReceivedHead>),
    started: Instant,
) -> hyper::Response<ProxyBody> {
    let response = flow
        .response
        .as_ref()
        .expect("a response was set or fetched");
    let no_content = wire::response_has_no_content(&flow.request.method, response.status);
    // The server's streamed body goes out only with the server's response:
    // a response a plugin (or the failure policy) put in its place carries
    // its own body, and the server's is dropped.
    let body = match streamed {
        Some(streamed) if response.body == Body::Streamed => streamed,
        _ if no_content => body::empty(),
        _ => body::full_with_trailers(
            wire::buffered_bytes(&response.body),
            response.trailers.as_ref(),
        ),
    };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut outgoing = hyper::Response::new(body);
    *outgoing.status_mut() = status;
    *outgoing.headers_mut() = wire::outgoing_headers_from(
        received,
        &response.headers,
        &response.body,
        response.trailers.as_ref(),
        no_content,
    );
    // An empty reason (an HTTP/2 server's) goes out as the usual one, as
    // mitmproxy does: not every HTTP/1 client takes an empty one.
    if !response.reason.is_empty()
        && response.reason != canonical_reason(response.status)
        && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(response.reason.as_bytes())
    {
        outgoing.extensions_mut().insert(reason);
    }
    if !shared.options.flow_lines {
        return outgoing;
    }
    let head = format!(
        "{} {} {} {}",
        flow.client.address,
        flow.request.method,
        flow.request.url(),
        response.status
    );
    outgoing.map(|b| body::boxed(LoggedBody::new(b, FlowLine { head, started })))
}
