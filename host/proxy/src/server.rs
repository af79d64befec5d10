//! Listening and connection lifecycle.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use witm_flow::{ClientConn, Events, Flow, FlowHooks, Replayer};

use crate::accept::AcceptErrors;
use crate::connection::{self, Protocol};
use crate::forward;
use crate::intercept::Connected;
use crate::liveness::Liveness;
use crate::mode::Mode;
pub use crate::shared::ProxyOptions;
use crate::shared::Shared;
use crate::{reverse, socks5, tunnel};

/// How long a SOCKS5 client may take over its handshake.
const SOCKS5_HANDSHAKE: Duration = Duration::from_secs(30);

/// Serves proxy clients on `listener` until `shutdown` resolves (see
/// [`Proxy::serve`]).
pub async fn serve<H: FlowHooks>(
    listener: TcpListener,
    hooks: H,
    options: ProxyOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    Proxy::new(hooks, options).serve(listener, shutdown).await
}

/// The proxy engine: its hooks, options and upstream pool.
pub struct Proxy<H> {
    shared: Arc<Shared<H>>,
}

impl<H: FlowHooks> Proxy<H> {
    /// A proxy calling `hooks`.
    pub fn new(hooks: H, options: ProxyOptions) -> Self {
        Self {
            shared: Arc::new(Shared::new(hooks, options)),
        }
    }

    /// What this proxy counts (its timeouts), for `/metrics`.
    pub fn counters(&self) -> Arc<crate::counters::Counters> {
        self.shared.counters.clone()
    }

    /// A function that sends a flow's request again through this proxy,
    /// with its events (for plugins' `replay-request`): the future it
    /// returns does it; the caller runs it (and bounds how many at once).
    ///
    /// It holds the proxy weakly: the hooks keep the replayer (the plugin
    /// runtime does) and the proxy keeps the hooks, so a strong reference
    /// would be a cycle that is never freed. Once the proxy is gone, it does
    /// nothing.
    ///
    /// Replayed flows belong to `tenant` (the plugin's, on a listener of
    /// several tenants).
    pub fn replayer(&self, tenant: Option<Arc<str>>) -> Replayer {
        let shared = Arc::downgrade(&self.shared);
        Arc::new(move |flow| match shared.upgrade() {
            Some(shared) => Box::pin(forward::replay(shared, flow, tenant.clone())),
            None => Box::pin(async {}),
        })
    }

    /// Sends `flow`'s request again through the hooks and to its server,
    /// as a client would (client replay); resolves once the response has
    /// been read.
    pub fn replay(&self, flow: Flow) -> impl Future<Output = ()> + Send + 'static {
        forward::replay(self.shared.clone(), flow, None)
    }

    /// Serves proxy clients on `listener` until `shutdown` resolves, then
    /// stops accepting, lets flows in flight finish (up to the grace period)
    /// and returns. The caller runs the plugins' `done` afterwards.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        serve_listener(self.shared.clone(), listener, shutdown).await
    }

    /// Serves one client connection on `io`, as if accepted from `address`,
    /// until it and everything it opened (tunnels, WebSocket relays) have
    /// ended: how the fuzzer hands the proxy a client's bytes without a
    /// socket.
    pub async fn serve_stream<IO>(&self, io: IO, address: SocketAddr)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (alive, _all_closed) = tokio::sync::mpsc::channel::<()>(1);
        let (_closing_tx, closing) = tokio::sync::watch::channel(false);
        serve_connection(self.shared.clone(), io, (address, None), (alive, closing)).await;
    }
}

async fn serve_listener<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Each connection task holds a clone of `alive`; when all are dropped,
    // `all_closed` yields None. `closing` tells connections to finish.
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    let mut accept_errors = AcceptErrors::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().ok().map(|a| a.ip());
                    let guard = (alive.clone(), closing.clone());
                    let served = shared.clone();
                    let serve = move |stream| serve_connection(served, stream, (address, local), guard);
                    match &shared.options.workers {
                        Some(workers) => workers.serve(stream, serve),
                        None => {
                            tokio::spawn(serve(stream));
                        }
                    }
                }
                Err(e) => accept_errors.pause("proxy listener", &e).await,
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(alive);
    let _ = closing_tx.send(true);
    let grace = shared.options.shutdown_grace;
    if tokio::time::timeout(grace, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!("flows still in flight after {grace:?}; stopping anyway");
    }
    Ok(())
}

/// One client connection: its events around the connection's service. The
/// connection ends for `client-disconnect` when its tunnel or WebSocket
/// relay (if any) has ended too, not when hyper hands them the socket.
///
/// Every connection's task is as large as this future's largest state, for
/// as long as the connection is open (idle keep-alive ones too), so what
/// only some connections await is boxed: the hooks' connection events, a
/// reverse proxy's service and a SOCKS5 tunnel. Unboxed, the tunnel alone
/// made every task 14 KB (`-Zprint-type-sizes`); boxed, a regular
/// connection's task is ~0.4 KB.
async fn serve_connection<H, IO>(
    shared: Arc<Shared<H>>,
    mut stream: IO,
    (address, local): (SocketAddr, Option<IpAddr>),
    (alive, closing): (
        tokio::sync::mpsc::Sender<()>,
        tokio::sync::watch::Receiver<bool>,
    ),
) where
    H: FlowHooks,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(ClientConn::new(address));
    let events = shared.hooks.subscriptions();
    if events.contains(Events::CLIENT_CONNECT) {
        Box::pin(shared.hooks.client_connect(&conn)).await;
    }
    // Shutdown waits for this connection's own events too, not only for
    // the tasks serving it.
    let _listening = alive.clone();
    let (live, all_ended) = Liveness::new(alive, closing);
    match &shared.options.mode {
        Mode::Regular | Mode::Upstream(_) => {
            connection::serve(
                shared.clone(),
                conn.clone(),
                None,
                stream,
                Protocol::Http1,
                Some(live),
            )
            .await;
        }
        Mode::Reverse(server) => {
            let target = (server, local);
            Box::pin(reverse::serve(
                shared.clone(),
                conn.clone(),
                stream,
                target,
                Some(live),
            ))
            .await;
        }
        Mode::Socks5 => {
            let options = &shared.options;
            let handshake = socks5::handshake(
                &mut stream,
                options.authenticate.as_ref(),
                options.tenant.as_ref(),
            );
            match tokio::time::timeout(SOCKS5_HANDSHAKE, handshake).await {
                Ok(Ok(target)) => {
                    let target = Connected {
                        host: target.host,
                        port: target.port,
                        tenant: target.tenant,
                        live: Some(live),
                        route: shared.default_route.clone(),
                    };
                    Box::pin(tunnel::take_over(
                        shared.clone(),
                        stream,
                        conn.clone(),
                        target,
                    ))
                    .await;
                }
                Ok(Err(refused)) => {
                    tracing::info!(client = %address, "SOCKS5: {}", refused.0);
                }
                Err(_) => {
                    tracing::info!(client = %address, "SOCKS5: no handshake within {SOCKS5_HANDSHAKE:?}");
                }
            }
        }
    }
    all_ended.wait().await;
    if shared
        .hooks
        .subscriptions()
        .contains(Events::CLIENT_DISCONNECT)
    {
        Box::pin(shared.hooks.client_disconnect(&conn)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProxyOptions;

    /// An idle keep-alive connection holds its task, as large as
    /// `serve_connection`'s largest state: the paths only some connections
    /// take must stay boxed (issue 14: 10,000 idle connections in < 300 MB).
    #[tokio::test]
    async fn a_connections_task_stays_small() {
        let proxy = Proxy::new(witm_flow::NoHooks, ProxyOptions::default());
        let (stream, _client) = tokio::io::duplex(64);
        let (alive, _all_closed) = tokio::sync::mpsc::channel::<()>(1);
        let (_closing_tx, closing) = tokio::sync::watch::channel(false);
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        let future = serve_connection(
            proxy.shared.clone(),
            stream,
            (address, None),
            (alive, closing),
        );
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1024, "serve_connection's future is {size} bytes");
    }
}
