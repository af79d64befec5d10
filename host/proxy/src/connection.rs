//! The one place that serves a client connection — the listener's own and
//! those inside tunnels, plain or TLS, HTTP/1.1 or HTTP/2 — and that decides
//! what each request on it is: a CONNECT (for `tunnel`) or a request to
//! forward (for `forward`). The only circle of the engine passes here: a
//! CONNECT's tunnel is intercepted and its inner connection served again by
//! [`serve`], whose future is boxed for it, once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{Either, ready};
use http::Method;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use witm_flow::{ClientConn, FlowHooks};

use crate::auth;
use crate::body::{self, ProxyBody};
use crate::counters::Timeout;
use crate::forward;
use crate::liveness::Liveness;
use crate::respond::FlowKilled;
use crate::shared::Shared;
use crate::spawn::BoxedSpawn;
use crate::timeouts::{InFlight, InFlightGuard, NEVER};
use crate::tunnel;
use crate::upstream::Tunnel;
use crate::wire_heads::{Heads, Side, Tapped};

/// How long a client may take to send a request head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    /// HTTP/2 when the client chose it (ALPN "h2", or h2c's preface).
    pub(crate) fn http2_if(http2: bool) -> Self {
        if http2 {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    }
}

/// Serves requests on `io` until the client closes it; when witm stops
/// (`live` says so), the request in flight finishes and the connection
/// closes. `tunnel` is set for a connection inside a CONNECT tunnel.
pub(crate) fn serve<H, IO>(
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    tunnel: Option<Arc<Tunnel>>,
    io: IO,
    protocol: Protocol,
    live: Option<Liveness>,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    H: FlowHooks,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(async move {
        let address = conn.address;
        // HTTP/1 heads are read again off the wire for their case and
        // order, when flows are made of them.
        let heads = Heads::for_flows(Side::Requests, shared.hooks.subscriptions().wants_flows());
        let timeouts = shared.options.timeouts.clone();
        let keep_header_case = shared.options.keep_header_case;
        let counters = shared.counters.clone();
        // HTTP/2 connections close when idle; HTTP/1's head timer does that.
        let in_flight = Arc::new(InFlight::default());
        let service = {
            let live = live.clone();
            let tapped = (protocol == Protocol::Http1).then(|| heads.clone());
            let counted = (protocol == Protocol::Http2).then(|| in_flight.clone());
            service_fn(move |mut request| {
                if let Some(heads) = &tapped {
                    heads.mark_request(&mut request);
                }
                let guard = counted.as_ref().map(|c| c.start());
                // Boxed: hyper keeps room for the service's future in every
                // connection, idle or not; boxed, an idle keep-alive
                // connection holds a pointer. A function of the arguments,
                // not an `async` block around `dispatch`'s future, which
                // would hold that future twice (as what the block captured
                // and as what it awaits).
                Box::pin(answer(
                    shared.clone(),
                    conn.clone(),
                    tunnel.clone(),
                    live.clone(),
                    request,
                    guard,
                ))
            })
        };
        let closing = async {
            match &live {
                Some(live) => live.closing().await,
                None => std::future::pending().await,
            }
        };
        let ended = match protocol {
            Protocol::Http1 => {
                let mut served = std::pin::pin!(
                    http1::Builder::new()
                        // hyper's record of the names' case, which the
                        // request carries to the server's connection.
                        .preserve_header_case(keep_header_case)
                        // A client that closes its side after sending its
                        // request still gets the answer (hyper would drop it).
                        .half_close(true)
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(Tapped::new(TokioIo::new(io), heads), service)
                        .with_upgrades()
                );
                tokio::select! {
                    ended = served.as_mut() => ended,
                    () = closing => {
                        served.as_mut().graceful_shutdown();
                        served.await
                    }
                }
            }
            Protocol::Http2 => {
                let mut served = std::pin::pin!(
                    http2::Builder::new(BoxedSpawn)
                        .timer(TokioTimer::new())
                        .keep_alive_interval(timeouts.h2_keepalive)
                        .keep_alive_timeout(timeouts.h2_keepalive.unwrap_or(NEVER))
                        .serve_connection(TokioIo::new(io), service)
                );
                let idle = in_flight.idle_for(timeouts.connection_idle);
                tokio::select! {
                    ended = served.as_mut() => ended,
                    () = closing => {
                        served.as_mut().graceful_shutdown();
                        served.await
                    }
                    () = idle => {
                        counters.timed_out(Timeout::ConnectionIdle);
                        tracing::info!(
                            client = %address,
                            "HTTP/2 connection idle for {:?}: closing",
                            timeouts.connection_idle
                        );
                        served.as_mut().graceful_shutdown();
                        served.await
                    }
                }
            }
        };
        if let Err(e) = ended {
            if e.is_timeout() {
                // hyper's: a head not read in time, or a ping unanswered.
                let kind = match protocol {
                    Protocol::Http1 => Timeout::ClientHead,
                    Protocol::Http2 => Timeout::H2Ping,
                };
                counters.timed_out(kind);
            }
            tracing::debug!(client = %address, "connection ended: {e}");
        }
    })
}

/// The answer to one request, as hyper's service returns it.
///
/// What serves a request is plain functions that return the future of the
/// step that does the waiting ([`dispatch`], [`forward::handle`]), not
/// `async fn`s around it: rustc's state machine of an `async fn` keeps its
/// arguments for its whole life beside the future it awaits, so each layer
/// carried the request again, and hyper's box copies the whole future for
/// every request (6.7 KB through four such layers; see bench/README.md).
type Answer = Result<hyper::Response<ProxyBody>, FlowKilled>;

/// [`dispatch`]es one request; its response holds `guard` (HTTP/2's count
/// of requests in flight) until its body has gone.
fn answer<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    tunnel: Option<Arc<Tunnel>>,
    live: Option<Liveness>,
    request: hyper::Request<Incoming>,
    guard: Option<InFlightGuard>,
) -> impl Future<Output = Answer> + Send + 'static {
    dispatch(shared, conn, tunnel, live, request).map(move |answered| {
        answered.map(|response| match guard {
            Some(guard) => response.map(|b| body::keeping(b, guard)),
            None => response,
        })
    })
}

/// What one request is: a CONNECT (outside a tunnel) opens a tunnel; any
/// other request is forwarded. Requests that came straight to the proxy are
/// authenticated here; those in a tunnel belong to its tenant.
fn dispatch<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    tunnel: Option<Arc<Tunnel>>,
    live: Option<Liveness>,
    mut request: hyper::Request<Incoming>,
) -> impl Future<Output = Answer> + Send + 'static {
    let tenant = match &tunnel {
        Some(tunnel) => tunnel.tenant.clone(),
        None => {
            let options = &shared.options;
            let admitted = auth::admit(
                options.authenticate.as_ref(),
                options.tenant.as_ref(),
                request.headers_mut(),
                conn.address,
            );
            match admitted {
                Ok(tenant) => tenant,
                Err(refused) => return Either::Left(ready(Ok(refused.response()))),
            }
        }
    };
    if request.method() == Method::CONNECT && tunnel.is_none() {
        // Boxed: one per tunnel, it need not make every request's future
        // as large as its own.
        let connecting = Box::pin(tunnel::connect(shared, request, conn, tenant, live));
        return Either::Right(Either::Left(connecting));
    }
    Either::Right(Either::Right(forward::handle(
        shared, conn, tunnel, tenant, live, request,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `answer` returns, from its type alone: no request
    /// need be made.
    fn size_of_answer<F, R>(_: F) -> usize
    where
        F: FnOnce(
            Arc<Shared<witm_flow::NoHooks>>,
            Arc<ClientConn>,
            Option<Arc<Tunnel>>,
            Option<Liveness>,
            hyper::Request<Incoming>,
            Option<InFlightGuard>,
        ) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// hyper's box takes a copy of this future for every request: it was
    /// 6.7 KB while each step of the way was an `async fn` that kept its
    /// arguments beside the next step's future.
    #[test]
    fn every_requests_future_stays_small() {
        let size = size_of_answer(answer::<witm_flow::NoHooks>);
        assert!(size <= 3 << 10, "a request's future is {size} bytes");
    }
}
