//! One request through the proxy: from the client, through the plugins, to
//! the server and back.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use witm_flow::message::{canonical_reason, default_port};
use witm_flow::{Body, ClientConn, Events, Flow, FlowError, FlowHooks, Request, Response};

use crate::body::{self, ProxyBody};
use crate::flow_log::{FlowLine, LoggedBody};
use crate::intercept::{ServerLink, Tunnel};
use crate::server::Shared;
use crate::tunnel;
use crate::wire;

/// Serves one request of a client connection. Never fails: every problem
/// becomes a response that says what went wrong.
///
/// `tunnel` is set for requests inside a CONNECT tunnel: they default to its
/// scheme, host and port, and go over its server connection.
pub(crate) async fn handle<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    tunnel: Option<Arc<Tunnel>>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<ProxyBody>, FlowKilled> {
    let started = Instant::now();
    if request.method() == Method::CONNECT && tunnel.is_none() {
        return tunnel::connect(shared, request, conn).await;
    }
    let (parts, incoming) = request.into_parts();
    let target = match Target::of(&parts.uri, tunnel.as_deref()) {
        Ok(target) => target,
        Err(reason) => {
            tracing::info!(client = %conn.address, "refused {} {}: {reason}", parts.method, parts.uri);
            return Ok(plain_response(StatusCode::BAD_REQUEST, reason));
        }
    };
    let events = shared.hooks.subscriptions();
    let mut streamed_request = None;
    let body = if events.contains(Events::REQUEST) {
        match collect(incoming, shared.options.max_buffered_body).await {
            Ok(bytes) => Body::Buffered(bytes),
            Err(reason) => {
                return Ok(plain_response(StatusCode::PAYLOAD_TOO_LARGE, reason));
            }
        }
    } else {
        streamed_request = Some(incoming);
        Body::Streamed
    };
    let request = Request {
        method: parts.method.as_str().to_owned(),
        scheme: target.scheme,
        host: target.host,
        port: target.port,
        path: target.path,
        http_version: wire::version_text(parts.version).to_owned(),
        headers: wire::incoming_headers(&parts.headers),
        body,
        timestamp_start: witm_flow::now_ms(),
    };
    let mut flow = Flow::new(conn, request);
    if let Some(link) = tunnel.as_ref().and_then(|t| t.link.as_ref()) {
        flow.server_conn = Some(link.info.clone());
    }
    if events.contains(Events::REQUEST) {
        shared.hooks.request(&mut flow).await;
        killed(&shared, &flow)?;
    }

    let mut streamed_response = None;
    if flow.response.is_none() {
        let via_tunnel = tunnel.as_deref().filter(|t| t.serves(&flow.request));
        if let Some(message) = via_tunnel.and_then(|t| t.link_error.clone()) {
            return fail(&shared, flow, message, started).await;
        }
        let link = via_tunnel.and_then(|t| t.link.as_ref());
        match exchange(&shared, &flow.request, streamed_request, link, events).await {
            Ok((response, streamed)) => {
                flow.response = Some(response);
                streamed_response = streamed;
            }
            Err(message) => return fail(&shared, flow, message, started).await,
        }
    }
    if events.contains(Events::RESPONSE) {
        shared.hooks.response(&mut flow).await;
        killed(&shared, &flow)?;
    }
    Ok(respond(&shared, &flow, streamed_response, started))
}

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

/// Where an absolute-form request goes.
struct Target {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    /// From an absolute URI (absolute-form, or HTTP/2's :scheme and
    /// :authority), or from the tunnel for origin-form requests in one.
    fn of(uri: &Uri, tunnel: Option<&Tunnel>) -> Result<Target, String> {
        let path = || {
            uri.path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into())
        };
        let scheme = match (uri.scheme_str(), tunnel) {
            (Some(s @ ("http" | "https")), _) => s,
            (Some(other), _) => return Err(format!("unsupported scheme {other:?}")),
            (None, Some(tunnel)) => {
                return Ok(Target {
                    scheme: tunnel.scheme.to_owned(),
                    host: tunnel.host.clone(),
                    port: tunnel.port,
                    path: path(),
                });
            }
            (None, None) => {
                return Err("witm is a proxy: send absolute-form requests, e.g. curl -x http://127.0.0.1:8080 http://example.com/".into());
            }
        };
        let host = uri.host().ok_or("the request URL has no host")?;
        Ok(Target {
            scheme: scheme.to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or_else(|| default_port(scheme)),
            path: path(),
        })
    }
}

/// Reads a whole body, refusing one larger than `limit`.
async fn collect(body: Incoming, limit: usize) -> Result<Bytes, String> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(format!(
            "body larger than the {limit}-byte limit for bodies held for plugins"
        )),
        Err(e) => Err(format!("body broke off: {e}")),
    }
}

/// Sends the flow's request to its server and reads the response head (and
/// the body, when a plugin needs it whole).
///
/// With a `link` (the tunnel's own server connection), the request goes over
/// it in the link's HTTP version; otherwise through the shared pool.
async fn exchange<H: FlowHooks>(
    shared: &Shared<H>,
    request: &Request,
    streamed_body: Option<Incoming>,
    link: Option<&ServerLink>,
    events: Events,
) -> Result<(Response, Option<Incoming>), String> {
    let url = request.url();
    let absolute: Uri = url.parse().map_err(|e| format!("invalid URL {url}: {e}"))?;
    let method = Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", request.method))?;
    let body = match (streamed_body, &request.body) {
        (Some(incoming), _) => body::streamed(incoming),
        (None, Body::Buffered(bytes)) => body::full(bytes.clone()),
        (None, Body::Streamed) => body::empty(),
    };
    let mut outgoing = hyper::Request::new(body);
    *outgoing.method_mut() = method;
    *outgoing.headers_mut() = wire::outgoing_headers(&request.headers, &request.body, false);
    let outgoing = match link {
        Some(link) => {
            if link.is_http2().await {
                // HTTP/2 carries the authority in the URI, not in `host`.
                *outgoing.version_mut() = Version::HTTP_2;
                outgoing.headers_mut().remove(http::header::HOST);
                *outgoing.uri_mut() = absolute.clone();
            } else {
                *outgoing.version_mut() = Version::HTTP_11;
                ensure_host(outgoing.headers_mut(), request);
                *outgoing.uri_mut() = absolute
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .parse()
                    .unwrap_or_else(|_| Uri::from_static("/"));
            }
            link.send(outgoing).await
        }
        None => Err(outgoing),
    };
    let response = match outgoing {
        Ok(sent) => sent.map_err(|e| describe_upstream_error(&request.authority(), &e))?,
        Err(mut outgoing) => {
            // No tunnel connection (or it closed): the shared pool.
            *outgoing.version_mut() = Version::HTTP_11;
            ensure_host(outgoing.headers_mut(), request);
            *outgoing.uri_mut() = absolute;
            shared
                .upstream
                .request(outgoing)
                .await
                .map_err(|e| describe_upstream_error(&request.authority(), &e))?
        }
    };
    let (parts, incoming) = response.into_parts();
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .unwrap_or_else(|| canonical_reason(parts.status.as_u16()).to_owned());
    let (body, streamed) = if events.contains(Events::RESPONSE) {
        let bytes = collect(incoming, shared.options.max_buffered_body)
            .await
            .map_err(|e| format!("response from {}: {e}", request.authority()))?;
        (Body::Buffered(bytes), None)
    } else {
        (Body::Streamed, Some(incoming))
    };
    Ok((
        Response {
            status: parts.status.as_u16(),
            reason,
            http_version: wire::version_text(parts.version).to_owned(),
            headers: wire::incoming_headers(&parts.headers),
            body,
            timestamp_start: witm_flow::now_ms(),
        },
        streamed,
    ))
}

/// HTTP/1 needs `host`; a request that came over HTTP/2 has none.
fn ensure_host(headers: &mut http::HeaderMap, request: &Request) {
    if !headers.contains_key(http::header::HOST)
        && let Ok(value) = http::HeaderValue::from_str(&request.authority())
    {
        headers.insert(http::header::HOST, value);
    }
}

/// "cannot connect to host:port: Connection refused" rather than hyper's
/// nested error chain.
fn describe_upstream_error(authority: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let connect = error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(|e| e.is_connect());
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if connect {
        format!("cannot connect to {authority}: {cause}")
    } else {
        format!("server {authority} failed: {cause}")
    }
}

/// The flow failed: run the `error` event and tell the client with a 502.
async fn fail<H: FlowHooks>(
    shared: &Shared<H>,
    mut flow: Flow,
    message: String,
    started: Instant,
) -> Result<hyper::Response<ProxyBody>, FlowKilled> {
    flow.error = Some(FlowError::new(message.clone()));
    if shared.hooks.subscriptions().contains(Events::ERROR) {
        shared.hooks.error(&mut flow).await;
        killed(shared, &flow)?;
    }
    let response = plain_response(StatusCode::BAD_GATEWAY, format!("witm: {message}"));
    if !shared.options.flow_lines {
        return Ok(response);
    }
    let head = format!(
        "{} {} {} 502 ({message})",
        flow.client.address,
        flow.request.method,
        flow.request.url()
    );
    Ok(response.map(|b| body::boxed(LoggedBody::new(b, FlowLine { head, started }))))
}

/// The client's response, from the flow's.
pub(crate) fn respond<H: FlowHooks>(
    shared: &Shared<H>,
    flow: &Flow,
    streamed: Option<Incoming>,
    started: Instant,
) -> hyper::Response<ProxyBody> {
    let response = flow
        .response
        .as_ref()
        .expect("a response was set or fetched");
    let no_content = wire::response_has_no_content(&flow.request.method, response.status);
    let body = match streamed {
        Some(incoming) => body::streamed(incoming),
        None if no_content => body::empty(),
        None => body::full(wire::buffered_bytes(&response.body)),
    };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut outgoing = hyper::Response::new(body);
    *outgoing.status_mut() = status;
    *outgoing.headers_mut() = wire::outgoing_headers(&response.headers, &response.body, no_content);
    if response.reason != canonical_reason(response.status)
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

/// A short text response from the proxy itself.
pub(crate) fn plain_response(
    status: StatusCode,
    text: impl Into<String>,
) -> hyper::Response<ProxyBody> {
    let mut text = text.into();
    text.push('\n');
    let mut response = hyper::Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
