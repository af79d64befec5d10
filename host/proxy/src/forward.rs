//! One request through the proxy: from the client, through the plugins, to
//! the server and back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::future::{Either, ready};
use http::{Method, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use witm_flow::message::canonical_reason;
use witm_flow::{
    Body, ClientConn, ErrorKind, Events, Flow, FlowHooks, FlowState, Headers, Request, Response,
    Route,
};

use crate::answers::{self, Failure, plain_response};
use crate::body::{self, BoxError, ProxyBody};
use crate::dial;
use crate::flow_log::{FlowLine, LoggedBody};
use crate::held_budget::HeldBytes;
use crate::liveness::Liveness;
use crate::onboarding;
use crate::respond::{FlowKilled, killed, respond};
use crate::server_pool::{self, OpenStream, Served};
use crate::shared::Shared;
use crate::target::{Target, UrlParts, addressed};
use crate::timeouts;
use crate::upstream::{ServerLink, Tunnel};
use crate::websocket;
use crate::wire::{self, ReceivedHead};
use crate::wire_heads::{Heads, ResponseHeads, WireHeaders};

/// Serves one request of a client connection. Never fails: every problem
/// becomes a response that says what went wrong.
///
/// `tunnel` is set for requests inside a CONNECT tunnel: they default to its
/// scheme, host and port and go over its server connection. `tenant` is the
/// flow's (from the credentials, the listener or the tunnel); `live` is held
/// by a WebSocket relay the request opens.
///
/// Not an `async fn`: it returns the future of what waits (the pass-through
/// or the flow), which would otherwise carry this function's arguments
/// beside it (see `connection::answer`).
pub(crate) fn handle<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    tunnel: Option<Arc<Tunnel>>,
    tenant: Option<Arc<str>>,
    live: Option<Liveness>,
    request: hyper::Request<Incoming>,
) -> impl Future<Output = Result<hyper::Response<ProxyBody>, FlowKilled>> + Send + 'static {
    let started = Instant::now();
    let (mut parts, incoming) = request.into_parts();
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();
    let target = match Target::of(&parts.uri, tunnel.as_deref()) {
        Ok(target) => target,
        Err((status, reason)) => {
            tracing::info!(client = %conn.address, "refused {} {}: {reason}", parts.method, parts.uri);
            return Either::Left(ready(Ok(plain_response(status, reason))));
        }
    };
    let onboarding_host = shared.options.onboarding_host.as_deref();
    if let Some(host) = onboarding_host.filter(|h| onboarding::is_for(Some(h), &target.host)) {
        tracing::debug!(client = %conn.address, "onboarding: {} {}", parts.method, target.path);
        let tls = shared.options.tls.as_deref();
        let answer = onboarding::answer(&parts.method, &target.path, host, tls);
        return Either::Left(ready(Ok(answer)));
    }
    if needs_no_flow(&shared) && !parts.headers.contains_key(http::header::UPGRADE) {
        // The wire's copy of the head is for the flow: there is none.
        parts.extensions.remove::<WireHeaders>();
        let through = PassThrough {
            shared,
            conn,
            tunnel,
            target,
            started,
        };
        return Either::Right(Either::Left(through.run(parts, incoming).map(Ok)));
    }
    // Boxed, and made by a plain function: a flow's future is large, and
    // as a local of this one it would make every request's future (the
    // pass-through's too) as large, copied whole into hyper's box.
    let flow = start_flow(
        shared,
        Arrived {
            conn,
            tunnel,
            tenant,
            live,
            parts,
            upgrade: client_upgrade,
            target,
            started,
        },
        incoming,
    );
    Either::Right(Either::Right(flow))
}

/// A request a flow is made for, as [`handle`] has it.
struct Arrived {
    conn: Arc<ClientConn>,
    tunnel: Option<Arc<Tunnel>>,
    tenant: Option<Arc<str>>,
    live: Option<Liveness>,
    parts: http::request::Parts,
    upgrade: Option<OnUpgrade>,
    target: Target,
    started: Instant,
}

/// The flow of a request, and its future ([`run`]) boxed.
fn start_flow<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    arrived: Arrived,
    incoming: Incoming,
) -> Pin<Box<impl Future<Output = Result<hyper::Response<ProxyBody>, FlowKilled>> + Send + 'static>>
{
    let Arrived {
        conn,
        tunnel,
        tenant,
        live,
        mut parts,
        upgrade: client_upgrade,
        target,
        started,
    } = arrived;
    let wire_head = parts.extensions.remove::<WireHeaders>().map(|w| w.0);
    let (headers, received) = wire::received(std::mem::take(&mut parts.headers), wire_head);
    // hyper keeps the original case of header names here; it goes on to the
    // server with the request so untouched names keep their case on the wire.
    let extensions = std::mem::take(&mut parts.extensions);
    let mut request = Request {
        method: parts.method.as_str().to_owned(),
        scheme: target.scheme,
        host: target.host,
        port: target.port,
        path: target.path,
        http_version: wire::version_text(parts.version).to_owned(),
        headers,
        // Not read yet: `request-headers` sees the head only.
        body: Body::Streamed,
        trailers: None,
        timestamp_start: witm_flow::now_ms(),
        timestamp_end: None,
        stream: false,
    };
    if names_the_server(&shared, tunnel.as_deref()) && request.headers.contains("host") {
        // As mitmproxy: the server sees its own name, not the proxy's.
        let authority = request.authority();
        request.headers.set("host", authority);
    }
    // Boxed: the flow is moved into each step's future, and each would
    // otherwise carry a copy of it (680 bytes) in the flow's box.
    let mut flow = Box::new(Flow::new(conn, request));
    let state = FlowState::new(tenant);
    if let Some(link) = tunnel.as_ref().and_then(|t| t.link.as_ref()) {
        flow.server_conn = Some(link.info.clone());
    }
    let side = ClientSide {
        upgrade: client_upgrade.filter(|_| websocket::is_upgrade(&flow.request)),
        extensions,
        received: Some(received),
        uri: target.received,
        live,
        held: HeldBytes::new(shared.counters.clone(), shared.options.max_held_bytes),
    };
    Box::pin(async move {
        let tunnel = tunnel.as_deref();
        run(shared, flow, state, Some(incoming), side, tunnel, started).await
    })
}

/// True when no flow of a request is wanted: no hook subscribes to an
/// event of one. Its request and response then go through as hyper read
/// them ([`PassThrough`]), with no copy into a [`Flow`] and back (the flow
/// line, if any, needs none).
fn needs_no_flow<H: FlowHooks>(shared: &Shared<H>) -> bool {
    !shared.hooks.subscriptions().wants_flows()
}

/// A request no flow is wanted for ([`needs_no_flow`]; not an upgrade):
/// what [`run`] does for it with no hook to call, without the flow. Its
/// fields go on as hyper parsed them, minus what [`wire::outgoing_headers`]
/// leaves out of a streamed message ([`wire::forwarded_headers`]), with
/// hyper's record of their case: on the wire, the same bytes as through
/// the flow.
struct PassThrough<H: FlowHooks> {
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    tunnel: Option<Arc<Tunnel>>,
    target: Target,
    started: Instant,
}

impl<H: FlowHooks> PassThrough<H> {
    /// Not an `async fn` (see `connection::answer`): what can be done at
    /// once is ([`PassThrough::outgoing`]), and the future that waits for
    /// the server ([`pass_through`]) holds only what it needs.
    fn run(
        self,
        parts: http::request::Parts,
        incoming: Incoming,
    ) -> impl Future<Output = hyper::Response<ProxyBody>> + Send + 'static {
        // The line `respond` and `fail` log: its client, request and start.
        let line = self.shared.options.flow_lines.then(|| {
            let url = self.target.url();
            (self.conn.address, parts.method.clone(), url, self.started)
        });
        let exchanged = match self.outgoing(parts, incoming) {
            Ok(outgoing) => {
                let PassThrough {
                    shared,
                    tunnel,
                    target,
                    ..
                } = self;
                Either::Left(pass_through(shared, tunnel, target, outgoing))
            }
            Err(failure) => Either::Right(ready(Err(failure))),
        };
        exchanged.map(move |exchanged| {
            let (response, failed) = match exchanged {
                Ok(response) => (response, None),
                Err(failure) => {
                    // What `fail` answers with no `error` hook.
                    let status = failure.status();
                    let message = failure.message;
                    let response = plain_response(status, format!("witm: {message}"));
                    (response, Some(message))
                }
            };
            let Some((address, method, url, started)) = line else {
                return response;
            };
            let status = response.status().as_u16();
            let head = match failed {
                None => format!("{address} {method} {url} {status}"),
                Some(message) => format!("{address} {method} {url} {status} ({message})"),
            };
            let line = FlowLine { head, started };
            response.map(|b| body::boxed(LoggedBody::new(b, line)))
        })
    }

    /// The request to send, as hyper read it, and where it goes.
    fn outgoing(
        &self,
        parts: http::request::Parts,
        incoming: Incoming,
    ) -> Result<Outgoing, Failure> {
        let shared = &self.shared;
        let http::request::Parts {
            method,
            headers,
            extensions,
            ..
        } = parts;
        let target = &self.target;
        let tunnel = self.tunnel.as_deref();
        let route = tunnel.map_or_else(|| shared.default_route.clone(), |t| t.route.clone());
        let via_tunnel =
            tunnel.filter(|t| t.serves_target((&target.scheme, &target.host, target.port), &route));
        if let Some(failure) = via_tunnel.and_then(|t| t.link_error.clone()) {
            return Err(failure);
        }
        let timeouts = &shared.options.timeouts;
        let (body, sent) = if http_body::Body::is_end_stream(&incoming) {
            // No body (a GET): nothing to time or wait for; hyper would
            // drop the streamed one unread at once.
            (body::empty(), None)
        } else {
            let (ended, sent) = tokio::sync::oneshot::channel();
            let body = timeouts::timed(
                body::streamed(incoming),
                timeouts::Sender::Client,
                (timeouts.body_idle, timeouts.request_body),
                shared.counters.clone(),
                Some(ended),
            );
            (body::from_client(body), Some(sent))
        };
        let mut request = hyper::Request::new(body);
        *request.extensions_mut() = extensions;
        *request.method_mut() = method;
        *request.headers_mut() = wire::forwarded_headers(headers);
        Ok(Outgoing {
            request,
            sent,
            route,
            via_tunnel: via_tunnel.is_some(),
            server_host: names_the_server(shared, tunnel),
        })
    }
}

/// True when a request's `host` is to name the server, not the proxy, as
/// mitmproxy does for a reverse proxy unless `keep_host_header` is set:
/// the flow's `set` ([`start_flow`]) and the pass-through's
/// ([`with_server_host`]) alike.
fn names_the_server<H: FlowHooks>(shared: &Shared<H>, tunnel: Option<&Tunnel>) -> bool {
    tunnel.is_some_and(|t| t.reverse) && !shared.options.keep_host_header
}

/// `request` with the server's own name in `host`, not the proxy's, as
/// mitmproxy does for a reverse proxy: in place of the first `host`, the
/// others dropped, as the flow's `set` does. A request without one gets
/// none.
fn with_server_host(
    mut request: hyper::Request<ProxyBody>,
    authority: &str,
) -> hyper::Request<ProxyBody> {
    let headers = request.headers_mut();
    if headers.contains_key(http::header::HOST) {
        match http::HeaderValue::from_str(authority) {
            Ok(value) => drop(headers.insert(http::header::HOST, value)),
            // The flow's copy would be refused on the wire: none goes.
            Err(_) => drop(headers.remove(http::header::HOST)),
        }
    }
    request
}

/// A pass-through's request, ready to send ([`PassThrough::outgoing`]).
struct Outgoing {
    request: hyper::Request<ProxyBody>,
    /// Fires when the request body has gone (none without a body).
    sent: Option<tokio::sync::oneshot::Receiver<()>>,
    route: Route,
    /// It goes over the tunnel's own server connection.
    via_tunnel: bool,
    /// Its `host` is to name the server ([`with_server_host`]).
    server_host: bool,
}

/// Sends a pass-through's request and makes the client's response of the
/// server's.
async fn pass_through<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    tunnel: Option<Arc<Tunnel>>,
    target: Target,
    outgoing: Outgoing,
) -> Result<hyper::Response<ProxyBody>, Failure> {
    let Outgoing {
        request,
        sent,
        route,
        via_tunnel,
        server_host,
    } = outgoing;
    let (absolute, authority) =
        (target.addressed()).map_err(|e| Failure::new(ErrorKind::Client, e))?;
    let request = if server_host {
        with_server_host(request, &authority)
    } else {
        request
    };
    let link = (tunnel.as_deref().filter(|_| via_tunnel)).and_then(|t| t.link.as_ref());
    let to = Destination {
        scheme: &target.scheme,
        authority: &authority,
        absolute,
        for_flow: false,
    };
    let response = send(&shared, request, to, sent, (link, &route)).await?;
    let (mut parts, incoming) = response.into_parts();
    parts.extensions.remove::<OnUpgrade>();
    if let (_, Some(heads)) = came_over(&mut parts.extensions) {
        // Keeps the connection's tap in step with hyper.
        heads.skip_response(parts.status.as_u16(), parts.headers.len());
    }
    let open = OpenStream::take(parts.version, &mut parts.extensions);
    let mut outgoing = hyper::Response::new(from_server(&shared, incoming, open));
    *outgoing.status_mut() = parts.status;
    *outgoing.headers_mut() = wire::forwarded_headers(parts.headers);
    // hyper's: the names' case, the reason phrase when not the usual.
    *outgoing.extensions_mut() = parts.extensions;
    Ok(outgoing)
}

/// Sends a copy of a flow's request again, with its events, as if a client
/// had sent it (mitmproxy's client replay); the response goes nowhere but
/// the flow line.
///
/// `tenant` is the tenant the replay is for (a plugin's, on a listener of
/// several tenants).
pub(crate) async fn replay<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    mut flow: Flow,
    tenant: Option<Arc<str>>,
) {
    flow.response = None;
    flow.error = None;
    flow.killed = false;
    flow.server_conn = None;
    flow.is_replay = Some(witm_flow::ReplaySide::Request);
    if flow.request.body == Body::Streamed {
        flow.request.body = Body::default();
    }
    if let Ok(response) = run(
        shared,
        Box::new(flow),
        FlowState::new(tenant),
        None,
        ClientSide::default(),
        None,
        Instant::now(),
    )
    .await
    {
        // Reading the body to its end writes the flow line.
        let _ = response.into_body().collect().await;
    }
}

/// A flow from its request head on: the events, the server, the answer.
/// `incoming` is the request body still to read (none for a replay, whose
/// body is in the flow).
async fn run<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    mut flow: Box<Flow>,
    mut state: FlowState<H::Ctx>,
    incoming: Option<Incoming>,
    mut side: ClientSide,
    tunnel: Option<&Tunnel>,
    started: Instant,
) -> Result<hyper::Response<ProxyBody>, FlowKilled> {
    let events = shared.hooks.subscriptions();
    if events.contains(Events::REQUEST_HEADERS) {
        shared.hooks.request_headers(&mut flow, state.ctx()).await;
        killed(&shared, &flow)?;
    }
    let limit = shared.options.max_buffered_body;
    let mut request_body = None;
    let holds = events.contains(Events::REQUEST) && !flow.request.stream && flow.response.is_none();
    let incoming = match incoming {
        Some(incoming) if !http_body::Body::is_end_stream(&incoming) => incoming,
        // No body to read (a GET): nothing to time, stream or wait for, as
        // in the pass-through; a `request` hook gets it whole and empty.
        bodiless => {
            if bodiless.is_some() && holds {
                flow.request.body = Body::Buffered(Bytes::new());
                flow.request.timestamp_end = Some(witm_flow::now_ms());
            }
            let sent = Sent::Whole;
            return run_after_request_body(shared, flow, state, sent, side, tunnel, started).await;
        }
    };
    let (ended, sent) = tokio::sync::oneshot::channel();
    let timeouts = &shared.options.timeouts;
    let incoming = timeouts::timed(
        body::streamed(incoming),
        timeouts::Sender::Client,
        (timeouts.body_idle, timeouts.request_body),
        shared.counters.clone(),
        Some(ended),
    );
    if holds {
        let max_held = shared.options.max_held_bytes;
        match hold(incoming, limit, &mut side.held, max_held).await {
            Ok(Held::Whole(bytes, trailers)) => {
                flow.request.body = Body::Buffered(bytes);
                flow.request.trailers = trailers;
                flow.request.timestamp_end = Some(witm_flow::now_ms());
            }
            Ok(Held::OverLimit(body, over)) => {
                over.warn("request body", &flow.request);
                request_body = Some(body::from_client(body));
            }
            Err(e) => {
                let failure = Failure::new(
                    ErrorKind::Client,
                    format!("request body from the client: {e}"),
                );
                return fail(&shared, flow, state, failure, started).await;
            }
        }
    } else {
        request_body = Some(body::from_client(incoming));
    }
    let sent = match request_body {
        Some(body) => Sent::Streaming(body, sent),
        // Read to its end already: `sent` has fired.
        None => Sent::Whole,
    };
    run_after_request_body(shared, flow, state, sent, side, tunnel, started).await
}

/// The request body on its way to the server: whole in the flow, or still
/// streaming from the client (and when it will have gone out, for the
/// server's clock).
enum Sent {
    Whole,
    Streaming(ProxyBody, tokio::sync::oneshot::Receiver<()>),
}

/// The rest of [`run`], once the request body is held or streaming.
async fn run_after_request_body<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    mut flow: Box<Flow>,
    mut state: FlowState<H::Ctx>,
    request_body: Sent,
    side: ClientSide,
    tunnel: Option<&Tunnel>,
    started: Instant,
) -> Result<hyper::Response<ProxyBody>, FlowKilled> {
    let events = shared.hooks.subscriptions();
    let limit = shared.options.max_buffered_body;
    let ClientSide {
        upgrade: client_upgrade,
        extensions,
        received,
        uri,
        live,
        mut held,
    } = side;
    let mut response_extensions = http::Extensions::new();
    let mut received_head = None;
    if events.contains(Events::REQUEST) {
        shared.hooks.request(&mut flow, state.ctx()).await;
        killed(&shared, &flow)?;
    }

    let mut response_body = None;
    let mut server_upgrade = None;
    if flow.response.is_none() {
        // A plugin's choice, else the tunnel's route, else the listener's.
        let route = match (&flow.route, tunnel) {
            (Some(route), _) => route.clone(),
            (None, Some(tunnel)) => tunnel.route.clone(),
            (None, None) => shared.default_route.clone(),
        };
        let via_tunnel = tunnel.filter(|t| t.serves(&flow, &route));
        if let Some(failure) = via_tunnel.and_then(|t| t.link_error.clone()) {
            return fail(&shared, flow, state, failure, started).await;
        }
        let link = via_tunnel.and_then(|t| t.link.as_ref());
        let exchanged = exchange(
            &shared,
            (&flow.request, uri.as_ref()),
            (request_body, received),
            extensions,
            (link, &route),
        );
        let (incoming, open) = match exchanged.await {
            Ok(Exchanged {
                response,
                body,
                upgrade,
                extensions,
                received,
                served,
                open: stream,
            }) => {
                received_head = Some(received);
                if flow.server_conn.is_none() || via_tunnel.is_none() {
                    flow.server_conn =
                        Some(served.unwrap_or_else(|| {
                            pooled_server(&flow.request, &response, &extensions)
                        }));
                }
                flow.response = Some(response);
                server_upgrade = upgrade;
                response_extensions = extensions;
                (body, stream)
            }
            Err(failure) => return fail(&shared, flow, state, failure, started).await,
        };
        let incoming = from_server(&shared, incoming, open);
        if events.contains(Events::RESPONSE) {
            stream_if_live(flow.response.as_mut().expect("set above"), &flow.request);
        }
        if events.contains(Events::RESPONSE_HEADERS) {
            shared.hooks.response_headers(&mut flow, state.ctx()).await;
            killed(&shared, &flow)?;
        }
        let response = flow.response.as_mut().expect("set above");
        if response.body != Body::Streamed {
            // A plugin replaced the response in `response-headers`.
        } else if events.contains(Events::RESPONSE) && !response.stream {
            let max_held = shared.options.max_held_bytes;
            match hold(incoming, limit, &mut held, max_held).await {
                Ok(Held::Whole(bytes, trailers)) => {
                    response.body = Body::Buffered(bytes);
                    response.trailers = trailers;
                    response.timestamp_end = Some(witm_flow::now_ms());
                }
                Ok(Held::OverLimit(body, over)) => {
                    over.warn("response body", &flow.request);
                    response_body = Some(body);
                }
                Err(e) => {
                    let message = format!("response from {}: {e}", flow.request.authority());
                    let failure = Failure::new(answers::kind_of_upstream(&*e.0), message);
                    return fail(&shared, flow, state, failure, started).await;
                }
            }
        } else {
            response_body = Some(incoming);
        }
    }
    if events.contains(Events::RESPONSE) {
        shared.hooks.response(&mut flow, state.ctx()).await;
        killed(&shared, &flow)?;
    }
    if let (Some(client), Some(server)) = (client_upgrade, server_upgrade)
        && flow.response.as_ref().is_some_and(|r| r.status == 101)
    {
        let mut response = respond(&shared, &flow, (None, received_head), started);
        response.extensions_mut().extend(response_extensions);
        websocket::keep_upgrade_headers(response.headers_mut());
        let shared = shared.clone();
        // The liveness guard is held until the relay has delivered its flow:
        // when witm stops, the relay ends and the flow is still saved.
        tokio::spawn(async move {
            let closing = async {
                match &live {
                    Some(live) => live.closing().await,
                    None => std::future::pending().await,
                }
            };
            websocket::relay(shared, *flow, state, (client, server), closing).await;
            drop(live);
        });
        return Ok(response);
    }
    if flow.is_websocket() && events.contains(Events::WEBSOCKET_END) {
        // A 101 that is not relayed (an upgrade missing on one side) ends
        // its WebSocket here, so that it is still delivered whole.
        shared.hooks.websocket_end(&mut flow, state.ctx()).await;
    }
    let mut response = respond(&shared, &flow, (response_body, received_head), started);
    response.extensions_mut().extend(response_extensions);
    if held.bytes() > 0 {
        // The held bytes live on in the response body until it is sent.
        response = response.map(|b| body::keeping(b, held));
    }
    Ok(response)
}

/// Marks a live stream (Server-Sent Events…) to be streamed, not held for
/// a `response` subscriber: held, it would reach the client all at once at
/// its end. `response-headers` may still ask for it to be held. Said once
/// per process, then at debug level.
fn stream_if_live(response: &mut Response, request: &Request) {
    static SAID: std::sync::Once = std::sync::Once::new();
    if !wire::is_live_stream(&response.headers) {
        return;
    }
    response.stream = true;
    let mut said = false;
    SAID.call_once(|| {
        said = true;
        tracing::info!(
            "{}: a live stream ({}): streamed to the client as it comes, plugins see body-streamed (said once)",
            request.url(),
            response.headers.get("content-type").unwrap_or_default()
        );
    });
    if !said {
        tracing::debug!("{}: a live stream, streamed", request.url());
    }
}

/// What the proxy keeps of the client's request besides the flow.
#[derive(Default)]
pub(crate) struct ClientSide {
    /// The client's side of a WebSocket upgrade.
    upgrade: Option<OnUpgrade>,
    /// hyper's extensions of the request (the original case of header names).
    extensions: http::Extensions,
    /// hyper's parse of the request's fields, which the request goes out
    /// from while the flow's copy of them is as it came
    /// ([`wire::outgoing_headers_from`]); none for a replay.
    received: Option<ReceivedHead>,
    /// The request's URI as it came, when it was the URL of its target
    /// ([`Target::received`]): the request goes out with it while the
    /// flow's target is unchanged.
    uri: Option<Uri>,
    /// Who serves the client's connection: a WebSocket relay holds it.
    live: Option<Liveness>,
    /// The bytes of this flow's bodies held for plugins, against the
    /// budget of all flows; given back once the response has gone out.
    held: HeldBytes,
}

/// The server's answer, head read, body not yet.
struct Exchanged {
    response: Response,
    body: Incoming,
    /// The server's side of a WebSocket upgrade (for a 101).
    upgrade: Option<OnUpgrade>,
    /// hyper's extensions of the response (the original case of header names).
    extensions: http::Extensions,
    /// hyper's parse of the response's head, which the flow's copy of its
    /// fields came from.
    received: ReceivedHead,
    /// The pooled connection it came over, made once for all its flows
    /// (none over a tunnel's connection or an upstream proxy's pool).
    served: Option<Arc<witm_flow::ServerConn>>,
    /// Its stream's count on a pooled HTTP/2 connection, to go with the body.
    open: Option<OpenStream>,
}

/// A body read for plugins: whole (with its trailers, if any), or, past the
/// limit, streamed on from where reading stopped (nothing read is lost).
enum Held {
    Whole(Bytes, Option<Headers>),
    OverLimit(ProxyBody, Over),
}

/// Which limit a body that could not be held met.
#[derive(Clone, Copy)]
enum Over {
    /// The flow's own: `--stream-large-bodies`.
    Flow(usize),
    /// All flows': `--max-held-bytes`.
    Budget(usize),
}

impl Over {
    /// Says in the log that a body of `flow` was streamed, not held.
    fn warn(self, what: &str, request: &Request) {
        match self {
            Over::Flow(limit) => tracing::warn!(
                "{}: {what} over {limit} bytes: streamed, not held for plugins",
                request.url()
            ),
            Over::Budget(max) => tracing::warn!(
                "{}: {what} streamed, not held for plugins: bodies held by all flows are at --max-held-bytes ({max} bytes)",
                request.url()
            ),
        }
    }
}

/// A body that failed while it was held: the reason, and its cause (which
/// says whose fault it was, [`answers::kind_of_upstream`]).
struct BrokeOff(BoxError);

impl std::fmt::Display for BrokeOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "body broke off: {}", self.0)
    }
}

/// Reads a whole body and its trailers, unless it grows past `limit` bytes
/// or past what the budget (`held`) has room for. The body is gathered
/// once: a body of one chunk is kept as it came, a longer one copied into
/// one buffer sized from its length (`Content-Length`) when it is known.
async fn hold(
    mut incoming: ProxyBody,
    limit: usize,
    held: &mut HeldBytes,
    max_held: usize,
) -> Result<Held, BrokeOff> {
    let expected = http_body::Body::size_hint(&incoming)
        .exact()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= limit)
        .unwrap_or(0);
    let mark = held.bytes();
    let mut first: Option<Bytes> = None;
    let mut gathered = BytesMut::new();
    let mut size = 0;
    let mut trailers = None;
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(BrokeOff)?;
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(fields) = frame.into_trailers() {
                    trailers = Some(Headers::from_header_map(&fields));
                }
                continue;
            }
        };
        size += data.len();
        let over = if size > limit {
            Some(Over::Flow(limit))
        } else if !held.grow(data.len()) {
            Some(Over::Budget(max_held))
        } else {
            None
        };
        if let Some(over) = over {
            // What was read stays counted until it has gone on.
            let read_so_far = held.split_off(mark);
            let read: Vec<Bytes> = first
                .into_iter()
                .chain(Some(gathered.freeze()).filter(|g| !g.is_empty()))
                .chain(Some(data))
                .collect();
            let body = body::keeping(body::replay_then(read, incoming), read_so_far);
            return Ok(Held::OverLimit(body, over));
        }
        match first.take() {
            None if gathered.is_empty() => first = Some(data),
            Some(chunk) => {
                gathered.reserve(expected.max(chunk.len() + data.len()));
                gathered.extend_from_slice(&chunk);
                gathered.extend_from_slice(&data);
            }
            None => gathered.extend_from_slice(&data),
        }
    }
    let bytes = first.unwrap_or_else(|| gathered.freeze());
    Ok(Held::Whole(bytes, trailers))
}

/// Sends the flow's request to its server and reads the response head; the
/// body is left to the caller.
async fn exchange<H: FlowHooks>(
    shared: &Shared<H>,
    (request, received_uri): (&Request, Option<&Uri>),
    (request_body, received): (Sent, Option<ReceivedHead>),
    extensions: http::Extensions,
    (link, route): (Option<&ServerLink>, &Route),
) -> Result<Exchanged, Failure> {
    let (streamed_body, sent) = match request_body {
        Sent::Whole => (None, None),
        Sent::Streaming(body, sent) => (Some(body), Some(sent)),
    };
    let (absolute, authority) = addressed(received_uri, UrlParts::of(request))
        .map_err(|e| Failure::new(ErrorKind::Client, e))?;
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        Failure::new(
            ErrorKind::Client,
            format!("invalid method {:?}", request.method),
        )
    })?;
    let body = match (streamed_body, &request.body) {
        (Some(streamed), _) => streamed,
        (None, Body::Buffered(bytes)) => {
            body::full_with_trailers(bytes.clone(), request.trailers.as_ref())
        }
        (None, Body::Streamed) => body::empty(),
    };
    let mut outgoing = hyper::Request::new(body);
    *outgoing.extensions_mut() = extensions;
    *outgoing.method_mut() = method;
    *outgoing.headers_mut() = wire::outgoing_headers_from(
        received,
        &request.headers,
        &request.body,
        request.trailers.as_ref(),
        false,
    );
    if websocket::is_upgrade(request) {
        websocket::keep_upgrade_headers(outgoing.headers_mut());
    }
    let to = Destination {
        scheme: &request.scheme,
        authority: &authority,
        absolute,
        for_flow: true,
    };
    let response = send(shared, outgoing, to, sent, (link, route)).await?;
    let (mut parts, incoming) = response.into_parts();
    let upgrade = parts
        .extensions
        .remove::<OnUpgrade>()
        .filter(|_| parts.status == StatusCode::SWITCHING_PROTOCOLS);
    let (served, heads) = came_over(&mut parts.extensions);
    let open = OpenStream::take(parts.version, &mut parts.extensions);
    let wire_head =
        heads.and_then(|heads| heads.take_response(parts.status.as_u16(), parts.headers.len()));
    let (headers, received) = wire::received(std::mem::take(&mut parts.headers), wire_head);
    // As on the wire: HTTP/2 has no reason phrase; HTTP/1's is hyper's
    // extension when it is not the usual one.
    let reason = match parts.extensions.get::<hyper::ext::ReasonPhrase>() {
        _ if parts.version == Version::HTTP_2 => String::new(),
        Some(reason) => String::from_utf8_lossy(reason.as_bytes()).into_owned(),
        None => canonical_reason(parts.status.as_u16()).to_owned(),
    };
    Ok(Exchanged {
        response: Response {
            status: parts.status.as_u16(),
            reason,
            http_version: wire::version_text(parts.version).to_owned(),
            headers,
            // Not read yet: `response-headers` sees the head only.
            body: Body::Streamed,
            trailers: None,
            timestamp_start: witm_flow::now_ms(),
            timestamp_end: None,
            stream: false,
        },
        body: incoming,
        upgrade,
        extensions: parts.extensions,
        received,
        served,
        open,
    })
}

/// What a response's extensions say of the connection it came over: the
/// server, for a pooled connection ([`Served`]), and its tap, if it follows
/// the wire (a pooled connection's, or a tunnel's: [`ResponseHeads`]).
/// Taken out, so that neither goes on with the response.
fn came_over(
    extensions: &mut http::Extensions,
) -> (Option<Arc<witm_flow::ServerConn>>, Option<Arc<Heads>>) {
    match extensions.remove::<Served>() {
        Some(served) => (Some(served.server), served.heads),
        None => (
            None,
            extensions.remove::<ResponseHeads>().map(|heads| heads.0),
        ),
    }
}

/// Where a request goes: its scheme, its authority (for `host` and
/// errors) and its absolute URL.
struct Destination<'a> {
    scheme: &'a str,
    authority: &'a str,
    absolute: Uri,
    /// The exchange makes a flow, which records the server connection's
    /// details (the pool sets them in the response only then).
    for_flow: bool,
}

/// Sends `outgoing` (method, fields, body and extensions set) to its
/// server and waits for the response head (within the response-head
/// timeout, counted from when the request body has gone: `sent`).
///
/// With a `link` (the tunnel's own server connection), the request goes over
/// it in the link's HTTP version; otherwise through the shared pool.
async fn send<H: FlowHooks>(
    shared: &Shared<H>,
    outgoing: hyper::Request<ProxyBody>,
    to: Destination<'_>,
    sent: Option<tokio::sync::oneshot::Receiver<()>>,
    (link, route): (Option<&ServerLink>, &Route),
) -> Result<hyper::Response<Incoming>, Failure> {
    let Destination {
        scheme,
        authority,
        absolute,
        for_flow,
    } = to;
    // The request is rewritten for each way by plain functions: a request
    // borrowed in the `async` block would be kept in its future once per
    // way, and the future is part of every request's.
    let send = async {
        let unsent = match link {
            Some(link) => {
                let outgoing = for_link(outgoing, link.is_http2(), &absolute, authority);
                match link.send(outgoing).await {
                    Ok(sent) => return sent.map_err(|e| describe_upstream_error(authority, &e)),
                    Err(mut unsent) => {
                        // A virtual host goes back into `host`.
                        wire::authority_into_host(&mut unsent);
                        unsent
                    }
                }
            }
            None => outgoing,
        };
        // No tunnel connection (or it closed): the route's pool.
        let outgoing = for_pool(unsent, absolute, authority);
        match route {
            Route::Direct => shared
                .upstream()
                .request(outgoing, for_flow)
                .await
                .map_err(|e| describe_upstream_error(authority, &e)),
            Route::Via(proxy) => {
                let (outgoing, http1_only) = for_proxy(outgoing, scheme, proxy);
                (shared.via.client(proxy, http1_only))
                    .request(outgoing)
                    .await
                    .map_err(|e| describe_upstream_error(authority, &e))
            }
        }
    };
    let limit = shared.options.timeouts.response_head;
    timeouts::answered_within(send, sent, limit, &shared.counters, authority).await
}

/// `outgoing` as a tunnel's own server connection takes it: HTTP/2 carries
/// the authority in the URI, not in `host`; HTTP/1.1 wants `host` and the
/// origin form.
fn for_link(
    mut outgoing: hyper::Request<ProxyBody>,
    http2: bool,
    absolute: &Uri,
    authority: &str,
) -> hyper::Request<ProxyBody> {
    if http2 {
        *outgoing.version_mut() = Version::HTTP_2;
        *outgoing.uri_mut() = absolute.clone();
        wire::host_into_authority(&mut outgoing);
    } else {
        *outgoing.version_mut() = Version::HTTP_11;
        ensure_host(outgoing.headers_mut(), authority);
        *outgoing.uri_mut() = absolute
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/"));
    }
    outgoing
}

/// `outgoing` as a pool takes it: HTTP/1.1 (a pool's HTTP/2 connection
/// sets its own), `host`, and the absolute URI the pool finds its
/// server by.
fn for_pool(
    mut outgoing: hyper::Request<ProxyBody>,
    absolute: Uri,
    authority: &str,
) -> hyper::Request<ProxyBody> {
    *outgoing.version_mut() = Version::HTTP_11;
    ensure_host(outgoing.headers_mut(), authority);
    *outgoing.uri_mut() = absolute;
    outgoing
}

/// `outgoing` for an upstream proxy's pool: plain HTTP goes to the proxy
/// itself, which wants its credentials on every request; HTTPS goes
/// through a tunnel to the server, perhaps over HTTP/2. With whether it
/// must take that proxy's pool that offers servers HTTP/1.1 alone: that
/// pool (hyper_util's) picks the protocol after the request is handed to
/// it, so a request HTTP/2 cannot carry as it is (an upgrade, a `host`
/// naming another server) cannot be made to fit afterwards.
fn for_proxy(
    mut outgoing: hyper::Request<ProxyBody>,
    scheme: &str,
    proxy: &witm_flow::ProxyUrl,
) -> (hyper::Request<ProxyBody>, bool) {
    if scheme == "http" {
        if let Some(value) =
            dial::proxy_authorization(proxy).and_then(|v| http::HeaderValue::try_from(v).ok())
        {
            outgoing
                .headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, value);
        }
        return (outgoing, false);
    }
    let virtual_host = match outgoing.headers().get(http::header::HOST) {
        // hyper_util adds `host` for HTTP/1 and keeps one on HTTP/2, where
        // nginx refuses it beside `:authority` (400): the server's own
        // name goes, to be put back on HTTP/1.1 alone.
        Some(host) if wire::host_names_the_uri(host.as_bytes(), outgoing.uri()) => {
            outgoing.headers_mut().remove(http::header::HOST);
            false
        }
        // A virtual host (a plugin's) stays, over HTTP/1.1.
        Some(_) => true,
        None => false,
    };
    let http1_only = virtual_host || server_pool::upgrade_over_https(&outgoing);
    (outgoing, http1_only)
}

/// A response body as the server sends it, timed: it may pause at most
/// the idle timeout between bytes. With its HTTP/2 stream's count in the
/// pool (`open`), kept until the body is dropped.
fn from_server<H: FlowHooks>(
    shared: &Shared<H>,
    incoming: Incoming,
    open: Option<OpenStream>,
) -> ProxyBody {
    let timeouts = &shared.options.timeouts;
    let streamed = body::streamed(incoming);
    timeouts::timed(
        match open {
            Some(open) => open.hold(streamed),
            None => streamed,
        },
        timeouts::Sender::Server,
        (timeouts.body_idle, None),
        shared.counters.clone(),
        None,
    )
}

/// The server of a flow that went through an upstream proxy's pool (witm's
/// own pool made it once for the connection: [`Served`]), from the
/// response's `extensions` (hyper_util's extras).
fn pooled_server(
    request: &Request,
    response: &Response,
    extensions: &http::Extensions,
) -> Arc<witm_flow::ServerConn> {
    let to = (
        request.host.as_str(),
        request.port,
        request.scheme == "https",
    );
    let h2 = response.http_version == "HTTP/2.0";
    Arc::new(server_pool::server_conn(to, h2, extensions))
}

/// HTTP/1 needs `host`; a request that came over HTTP/2 has none.
fn ensure_host(headers: &mut http::HeaderMap, authority: &str) {
    if !headers.contains_key(http::header::HOST)
        && let Ok(value) = http::HeaderValue::from_str(authority)
    {
        headers.insert(http::header::HOST, value);
    }
}

/// "cannot connect to host:port: Connection refused" rather than hyper's
/// nested error chain, with where it came from.
fn describe_upstream_error(authority: &str, error: &(dyn std::error::Error + 'static)) -> Failure {
    let kind = answers::kind_of_upstream(error);
    let connect = error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(|e| e.is_connect())
        || error
            .downcast_ref::<crate::server_pool::PoolError>()
            .is_some_and(|e| e.is_connect());
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let message = if kind == ErrorKind::Client {
        format!("request body from the client: {cause}")
    } else if connect {
        format!("cannot connect to {authority}: {cause}")
    } else {
        format!("server {authority} failed: {cause}")
    };
    Failure::new(kind, message)
}

/// The flow failed: run the `error` event and tell the client with a 502.
async fn fail<H: FlowHooks>(
    shared: &Shared<H>,
    mut flow: Box<Flow>,
    mut state: FlowState<H::Ctx>,
    failure: Failure,
    started: Instant,
) -> Result<hyper::Response<ProxyBody>, FlowKilled> {
    flow.error = Some(failure.to_flow_error());
    if shared.hooks.subscriptions().contains(Events::ERROR) {
        shared.hooks.error(&mut flow, state.ctx()).await;
        killed(shared, &flow)?;
    }
    let status = failure.status();
    let message = failure.message;
    let response = plain_response(status, format!("witm: {message}"));
    if !shared.options.flow_lines {
        return Ok(response);
    }
    let head = format!(
        "{} {} {} {} ({message})",
        flow.client.address,
        flow.request.method,
        flow.request.url(),
        status.as_u16()
    );
    Ok(response.map(|b| body::boxed(LoggedBody::new(b, FlowLine { head, started }))))
}
