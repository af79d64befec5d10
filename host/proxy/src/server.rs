//! Listening and connection lifecycle.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use witm_flow::{ClientConn, Events, Flow, FlowHooks, Replayer};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use witm_tls::{Upstream, UpstreamTrust};

use crate::accept::AcceptErrors;
use crate::auth::Authenticator;
use crate::body::ProxyBody;
use crate::forward;
use crate::liveness::Liveness;
use crate::server_events::{HookEvents, ServerEvents, Watched};
use crate::tls::TlsOptions;

/// How the proxy behaves; every field has a default that suits a person at
/// a terminal.
#[derive(Clone)]
pub struct ProxyOptions {
    /// Print one line per flow on stdout.
    pub flow_lines: bool,
    /// Largest body held in memory for a plugin; a larger one is streamed
    /// through (what was read so far first) and plugins see it as streamed.
    pub max_buffered_body: usize,
    /// How long to wait for a server's TCP connection.
    pub connect_timeout: Duration,
    /// How long flows in flight may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// HTTPS interception; `None` tunnels every CONNECT untouched.
    pub tls: Option<Arc<TlsOptions>>,
    /// When set, every client must authenticate with `Proxy-Authorization: Basic`; the
    /// function gets user and password and returns the tenant name, or None to refuse.
    pub authenticate: Option<Authenticator>,
    /// The tenant of every flow on this listener (tenants chosen by port).
    /// With `authenticate` set too, the credentials' tenant wins.
    pub tenant: Option<Arc<str>>,
}

impl std::fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            flow_lines,
            max_buffered_body,
            connect_timeout,
            shutdown_grace,
            tls,
            authenticate,
            tenant,
        } = self;
        f.debug_struct("ProxyOptions")
            .field("flow_lines", flow_lines)
            .field("max_buffered_body", max_buffered_body)
            .field("connect_timeout", connect_timeout)
            .field("shutdown_grace", shutdown_grace)
            .field("tls", tls)
            .field(
                "authenticate",
                &authenticate.as_ref().map(|_| "Fn(user, password)"),
            )
            .field("tenant", tenant)
            .finish()
    }
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            flow_lines: true,
            max_buffered_body: 128 << 20,
            connect_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            tls: None,
            authenticate: None,
            tenant: None,
        }
    }
}

/// What every connection task shares.
pub(crate) struct Shared<H> {
    pub hooks: Arc<H>,
    pub options: ProxyOptions,
    /// Pooled keep-alive connections to servers, HTTP or HTTPS (HTTP/2
    /// where the server offers it), reporting server-connect/disconnect.
    pub upstream: Client<Watched<HttpsConnector<HttpConnector>>, ProxyBody>,
    /// Where the tunnels' own server connections report opening and closing.
    pub server_events: Arc<dyn ServerEvents>,
}

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

    /// A function that sends a flow's request again through this proxy,
    /// with its events (for plugins' `replay-request`): the future it
    /// returns does it; the caller runs it (and bounds how many at once).
    ///
    /// It holds the proxy weakly: the hooks keep the replayer (the plugin
    /// runtime does) and the proxy keeps the hooks, so a strong reference
    /// would be a cycle that is never freed. Once the proxy is gone, it does
    /// nothing.
    pub fn replayer(&self) -> Replayer {
        let shared = Arc::downgrade(&self.shared);
        Arc::new(move |flow| match shared.upgrade() {
            Some(shared) => Box::pin(forward::replay(shared, flow)),
            None => Box::pin(async {}),
        })
    }

    /// Sends `flow`'s request again through the hooks and to its server,
    /// as a client would (client replay); resolves once the response has
    /// been read.
    pub fn replay(&self, flow: Flow) -> impl Future<Output = ()> + Send + 'static {
        forward::replay(self.shared.clone(), flow)
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
}

impl<H: FlowHooks> Shared<H> {
    fn new(hooks: H, options: ProxyOptions) -> Self {
        let hooks = Arc::new(hooks);
        let server_events: Arc<dyn ServerEvents> = Arc::new(HookEvents(hooks.clone()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.connect_timeout));
        connector.enforce_http(false);
        let trust = match &options.tls {
            Some(tls) => tls.upstream.clone(),
            None => Upstream::new(&UpstreamTrust::Verify),
        };
        // hyper-rustls sets ALPN itself (h2, http/1.1) from enable_http1/2.
        let client_tls = (*trust.client_config(Vec::new())).clone();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(client_tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let upstream = Client::builder(TokioExecutor::new())
            .http1_preserve_header_case(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(Watched::new(connector, server_events.clone()));
        Shared {
            hooks,
            options,
            upstream,
            server_events,
        }
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
                    let guard = (alive.clone(), closing.clone());
                    tokio::spawn(serve_connection(shared.clone(), stream, address, guard));
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

/// One client connection: its events around hyper's HTTP/1 server. The
/// connection ends for `client-disconnect` when its tunnel or WebSocket
/// relay (if any) has ended too, not when hyper hands them the socket.
async fn serve_connection<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    stream: tokio::net::TcpStream,
    address: SocketAddr,
    (alive, closing): (
        tokio::sync::mpsc::Sender<()>,
        tokio::sync::watch::Receiver<bool>,
    ),
) {
    let conn = Arc::new(ClientConn::new(address));
    let events = shared.hooks.subscriptions();
    if events.contains(Events::CLIENT_CONNECT) {
        shared.hooks.client_connect(&conn).await;
    }
    // Shutdown waits for this connection's own events too, not only for
    // the tasks serving it.
    let _listening = alive.clone();
    let (live, all_ended) = Liveness::new(alive, closing);
    let service = {
        let (shared, conn, live) = (shared.clone(), conn.clone(), live.clone());
        service_fn(move |mut request| {
            request.extensions_mut().insert(live.clone());
            forward::handle(shared.clone(), conn.clone(), None, request)
        })
    };
    let mut connection = Box::pin(
        http1::Builder::new()
            .preserve_header_case(true)
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades(),
    );
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = live.closing() => {
            // Finish the request in flight, then close.
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(client = %address, "client connection ended: {e}");
    }
    drop(connection);
    drop(live);
    all_ended.wait().await;
    if shared
        .hooks
        .subscriptions()
        .contains(Events::CLIENT_DISCONNECT)
    {
        shared.hooks.client_disconnect(&conn).await;
    }
}
