//! CONNECT: intercepted (see `intercept`) or, for ignored hosts and when
//! interception is off, a raw tunnel the proxy does not look into.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use witm_flow::{Body, ClientConn, Events, Flow, FlowHooks, FlowState, Request};

use crate::answers::plain_response;
use crate::body::{self, ProxyBody};
use crate::intercept::{self, Connected};
use crate::liveness::Liveness;
use crate::relay;
use crate::respond::{FlowKilled, killed, respond};
use crate::shared::Shared;
use crate::wire;

/// Answers a CONNECT: 200 and a tunnel, a plugin's refusal (from
/// `http-connect`), or 400 for a target that is not "host:port".
///
/// `tenant` (from the CONNECT's credentials or the listener) is the tenant
/// of the CONNECT's flow and of every flow in the tunnel; `live`, held by
/// the tunnel's task, keeps the client connection open for its events.
pub(crate) async fn connect<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    mut request: hyper::Request<Incoming>,
    conn: Arc<ClientConn>,
    tenant: Option<Arc<str>>,
    live: Option<Liveness>,
) -> Result<hyper::Response<ProxyBody>, FlowKilled> {
    let started = std::time::Instant::now();
    let Some((host, port)) = request.uri().authority().and_then(|a| {
        Some((
            a.host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            a.port_u16()?,
        ))
    }) else {
        return Ok(plain_response(
            http::StatusCode::BAD_REQUEST,
            "CONNECT needs a host:port target",
        ));
    };
    let mut route = shared.default_route.clone();
    if shared.hooks.subscriptions().contains(Events::HTTP_CONNECT) {
        let connect = Request {
            method: "CONNECT".into(),
            scheme: "http".into(),
            host: host.clone(),
            port,
            path: String::new(),
            http_version: wire::version_text(request.version()).to_owned(),
            headers: {
                let mut extensions = std::mem::take(request.extensions_mut());
                let headers = wire::incoming_headers(request.headers(), &mut extensions);
                *request.extensions_mut() = extensions;
                headers
            },
            body: Body::default(),
            trailers: None,
            timestamp_start: witm_flow::now_ms(),
            timestamp_end: None,
            stream: false,
        };
        let mut flow = Flow::new(conn.clone(), connect);
        let mut state = FlowState::<H::Ctx>::new(tenant.clone());
        shared.hooks.http_connect(&mut flow, state.ctx()).await;
        killed(&shared, &flow)?;
        if flow.response.is_some() {
            return Ok(respond(&shared, &flow, (None, None), started));
        }
        if let Some(chosen) = flow.route.take() {
            route = chosen;
        }
    }
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(request).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(client = %conn.address, "CONNECT {host}:{port}: upgrade failed: {e}");
                return;
            }
        };
        let target = Connected {
            host,
            port,
            tenant,
            live,
            route,
        };
        take_over(shared, TokioIo::new(upgraded), conn, target).await;
    });
    Ok(hyper::Response::new(body::empty()))
}

/// Serves a tunnel the client has opened (a CONNECT's 200, or a SOCKS5
/// handshake): intercepted when witm intercepts its target, else relayed
/// untouched to the target along the tunnel's route.
pub(crate) async fn take_over<H, IO>(
    shared: Arc<Shared<H>>,
    io: IO,
    conn: Arc<ClientConn>,
    target: Connected,
) where
    H: FlowHooks,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tls = shared
        .options
        .tls
        .clone()
        .filter(|tls| tls.intercepts(&target.host, target.port));
    if let Some(tls) = tls {
        intercept::intercept(shared, tls, conn, io, target).await;
        return;
    }
    let Connected {
        host,
        port,
        live,
        route,
        ..
    } = target;
    let idle = relay::Idle::of(&shared, &route);
    // Not intercepted (an ignored host): relayed, not recorded, as
    // mitmproxy does not record ignored connections.
    let relayed = relay::relay_with(io, &[], (&host, port), idle, None);
    // A raw tunnel carries no flows witm could let finish: it is cut when
    // witm stops.
    let cut = async {
        match &live {
            Some(live) => live.closing().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        relayed = relayed => if let Err(e) = relayed {
            tracing::info!(client = %conn.address, "tunnel to {host}:{port}: {e}");
        },
        () = cut => {}
    }
}
