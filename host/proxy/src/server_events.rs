//! `server-connect` / `server-disconnect` for every connection witm opens:
//! pooled ones (through a connector wrapper) and tunnels' own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use witm_flow::{Events, FlowHooks, ServerConn};

use crate::wire_heads::{Heads, Side, Tapped};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where server events go; object-safe so the connector need not know `H`.
pub(crate) trait ServerEvents: Send + Sync {
    /// Whether anyone subscribed to either event.
    fn wanted(&self) -> bool;
    /// Whether anyone subscribed to an event of a flow (then responses are
    /// read again off the wire for the case and order of their fields).
    fn flows_wanted(&self) -> bool;
    /// Runs `server-connect`.
    fn connected(&self, server: Arc<ServerConn>) -> BoxFuture;
    /// Runs `server-disconnect` in the background (called from `Drop`).
    fn disconnected(&self, server: Arc<ServerConn>);
}

/// [`ServerEvents`] delivered to the proxy's hooks.
pub(crate) struct HookEvents<H>(pub Arc<H>);

impl<H: FlowHooks> ServerEvents for HookEvents<H> {
    fn wanted(&self) -> bool {
        let events = self.0.subscriptions();
        events.contains(Events::SERVER_CONNECT) || events.contains(Events::SERVER_DISCONNECT)
    }

    fn flows_wanted(&self) -> bool {
        self.0.subscriptions().wants_flows()
    }

    fn connected(&self, server: Arc<ServerConn>) -> BoxFuture {
        let hooks = self.0.clone();
        Box::pin(async move {
            if hooks.subscriptions().contains(Events::SERVER_CONNECT) {
                hooks.server_connect(&server).await;
            }
        })
    }

    fn disconnected(&self, server: Arc<ServerConn>) {
        let hooks = self.0.clone();
        if hooks.subscriptions().contains(Events::SERVER_DISCONNECT)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { hooks.server_disconnect(&server).await });
        }
    }
}

/// A connector whose connections report opening and closing.
#[derive(Clone)]
pub(crate) struct Watched<C> {
    inner: C,
    events: Arc<dyn ServerEvents>,
}

impl<C> Watched<C> {
    pub(crate) fn new(inner: C, events: Arc<dyn ServerEvents>) -> Self {
        Self { inner, events }
    }
}

impl<C, IO> tower_service::Service<Uri> for Watched<C>
where
    C: tower_service::Service<Uri, Response = IO> + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Send + 'static,
    IO: Send + 'static,
{
    type Response = WatchedIo<Tapped<IO>>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let start = witm_flow::now_ms();
        let connecting = self.inner.call(uri.clone());
        let events = self.events.clone();
        Box::pin(async move {
            // Responses are read again off the wire for the case and order
            // of their fields; each carries the tap in its extensions.
            let heads = Heads::for_flows(Side::Responses, events.flows_wanted());
            let io = Tapped::new(connecting.await?, heads);
            let times = ConnectTimes {
                start,
                done: witm_flow::now_ms(),
            };
            if !events.wanted() {
                return Ok(WatchedIo {
                    io,
                    times,
                    closed: None,
                });
            }
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            let https = uri.scheme_str() == Some("https");
            let server = Arc::new(ServerConn {
                address: format!("{}:{port}", uri.host().unwrap_or_default()),
                sni: https.then(|| uri.host().unwrap_or_default().to_owned()),
                ..times.server_conn(https)
            });
            events.connected(server.clone()).await;
            Ok(WatchedIo {
                io,
                times,
                closed: Some((events, server)),
            })
        })
    }
}

/// When a pooled connection began and was up (for HTTPS, its TLS done:
/// the connector does both), in each response's extensions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectTimes {
    start: u64,
    done: u64,
}

impl ConnectTimes {
    /// A server conn with these times: for HTTPS, `done` is the TLS
    /// handshake's end and the TCP set-up's time is not known apart.
    pub(crate) fn server_conn(self, https: bool) -> ServerConn {
        ServerConn {
            timestamp_start: Some(self.start),
            timestamp_tcp_setup: (!https).then_some(self.done),
            timestamp_tls_setup: https.then_some(self.done),
            ..ServerConn::default()
        }
    }
}

/// A connection that runs `server-disconnect` when hyper drops it.
pub(crate) struct WatchedIo<IO> {
    io: IO,
    times: ConnectTimes,
    closed: Option<(Arc<dyn ServerEvents>, Arc<ServerConn>)>,
}

impl<IO> Drop for WatchedIo<IO> {
    fn drop(&mut self) {
        if let Some((events, server)) = self.closed.take() {
            events.disconnected(server);
        }
    }
}

impl<IO: Read + Unpin> Read for WatchedIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: Write + Unpin> Write for WatchedIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl<IO: Connection> Connection for WatchedIo<IO> {
    fn connected(&self) -> Connected {
        self.io.connected().extra(self.times)
    }
}
