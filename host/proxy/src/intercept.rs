//! HTTPS interception inside a CONNECT tunnel, the way mitmproxy does it:
//!
//! 1. read the client's TLS ClientHello (SNI, ALPN offers);
//! 2. connect to the server with that SNI, offering the client's ALPN
//!    protocols, and learn the protocol the server picks and its certificate;
//! 3. finish the client's handshake with a leaf certificate for the SNI (or
//!    the IP), offering only the protocol the server picked, so both sides
//!    speak the same HTTP version where they can;
//! 4. serve HTTP/1.1 or HTTP/2 to the client; requests to the tunnel's host
//!    go over the connection of step 2, others (re-targeted by a plugin)
//!    through the shared pool.
//!
//! A tunnel whose first byte is not a TLS handshake is served as plain HTTP.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::{http1 as client_http1, http2 as client_http2};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::{LazyConfigAcceptor, TlsConnector};
use witm_flow::{ClientConn, ClientHello, ClientTls, ErrorKind, Events, FlowHooks, ServerConn};
use witm_tls::{ALPN_H2, ALPN_HTTP1};

use crate::answers::{self, Failure};
use crate::body::ProxyBody;
use crate::forward;
use crate::liveness::Liveness;
use crate::prefixed::Peeked;
use crate::server::Shared;
use crate::server_events::ServerEvents;
use crate::tls::TlsOptions;

/// What requests inside a tunnel default to, and the server connection
/// opened for it.
pub(crate) struct Tunnel {
    /// "https" or "http".
    pub scheme: &'static str,
    /// The CONNECT target.
    pub host: String,
    /// The CONNECT target's port.
    pub port: u16,
    /// The connection made to the server during the handshake, if it worked.
    pub link: Option<ServerLink>,
    /// Why there is no server connection, for each flow's 502 and `error`.
    pub link_error: Option<Failure>,
    /// The tenant of the CONNECT, and so of every flow in the tunnel.
    pub tenant: Option<Arc<str>>,
}

impl Tunnel {
    /// True when `request` goes where this tunnel's server connection goes
    /// (a plugin may have re-targeted it elsewhere).
    pub(crate) fn serves(&self, request: &witm_flow::Request) -> bool {
        request.scheme == self.scheme
            && request.port == self.port
            && request.host.eq_ignore_ascii_case(&self.host)
    }
}

/// A connection to the tunnel's server, reused for the tunnel's requests.
pub(crate) struct ServerLink {
    sender: tokio::sync::Mutex<Sender>,
    /// What plugins learn of the server.
    pub info: Arc<ServerConn>,
}

enum Sender {
    Http1(client_http1::SendRequest<ProxyBody>),
    Http2(client_http2::SendRequest<ProxyBody>),
}

impl ServerLink {
    /// True when the link's protocol is HTTP/2.
    pub(crate) async fn is_http2(&self) -> bool {
        matches!(*self.sender.lock().await, Sender::Http2(_))
    }

    /// Sends over the link; gives the request back if the link has closed
    /// (the server ended the keep-alive), for the caller to use the pool.
    pub(crate) async fn send(
        &self,
        request: hyper::Request<ProxyBody>,
    ) -> Result<
        Result<hyper::Response<hyper::body::Incoming>, hyper::Error>,
        hyper::Request<ProxyBody>,
    > {
        let mut sender = self.sender.lock().await;
        match &mut *sender {
            Sender::Http2(h2) => {
                if h2.ready().await.is_err() {
                    return Err(request);
                }
                let mut h2 = h2.clone();
                drop(sender);
                Ok(h2.send_request(request).await)
            }
            Sender::Http1(h1) => {
                if h1.ready().await.is_err() {
                    return Err(request);
                }
                Ok(h1.send_request(request).await)
            }
        }
    }
}

/// Takes over an upgraded CONNECT stream to `host:port`.
///
/// Boxed: requests in the tunnel can CONNECT again, and the compiler cannot
/// see through that cycle of `async fn`s to prove the future `Send`.
pub(crate) fn intercept<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    tls: Arc<TlsOptions>,
    conn: Arc<ClientConn>,
    upgraded: Upgraded,
    target: Connected,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(intercept_tunnel(shared, tls, conn, upgraded, target))
}

/// A CONNECT that got its 200: where to, for whom, and who serves it.
pub(crate) struct Connected {
    /// The CONNECT target.
    pub host: String,
    /// The CONNECT target's port.
    pub port: u16,
    /// The tenant of the CONNECT, and so of every flow in the tunnel.
    pub tenant: Option<Arc<str>>,
    /// Held while the tunnel serves (see `liveness`).
    pub live: Option<Liveness>,
}

async fn intercept_tunnel<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    tls: Arc<TlsOptions>,
    conn: Arc<ClientConn>,
    upgraded: Upgraded,
    target: Connected,
) {
    let Connected {
        host,
        port,
        tenant,
        live,
    } = target;
    let mut io = TokioIo::new(upgraded);
    let mut first = [0u8; 1];
    match tokio::time::timeout(tls.handshake_timeout, io.read(&mut first)).await {
        Ok(Ok(1)) => {}
        Ok(_) => return,
        Err(_) => {
            tracing::info!(client = %conn.address, "{host}:{port}: the client sent nothing after CONNECT; closing");
            return;
        }
    }
    let mut io = Peeked::new(first[0], io);
    if first[0] != 0x16 {
        io.take_recorded();
        // Not a TLS handshake: plain HTTP through the tunnel (e.g. to port 80).
        let tunnel = Arc::new(Tunnel {
            scheme: "http",
            host,
            port,
            link: None,
            link_error: None,
            tenant,
        });
        serve_http1(shared, conn, tunnel, io, live).await;
        return;
    }

    let mut started = match tokio::time::timeout(
        tls.handshake_timeout,
        LazyConfigAcceptor::new(Default::default(), io),
    )
    .await
    {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            tracing::info!(client = %conn.address, "{host}:{port}: not a TLS ClientHello: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(client = %conn.address, "{host}:{port}: TLS handshake timed out");
            return;
        }
    };
    let client_hello = started.client_hello();
    let mut hello = ClientHello {
        sni: client_hello.server_name().map(str::to_owned),
        alpn: client_hello
            .alpn()
            .map(|protocols| {
                protocols
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            })
            .unwrap_or_default(),
        ignore_connection: false,
    };
    if shared
        .hooks
        .subscriptions()
        .contains(Events::TLS_CLIENTHELLO)
    {
        shared.hooks.tls_clienthello(&conn, &mut hello).await;
    }
    let recorded = started.io.take_recorded();
    if hello.ignore_connection {
        tracing::debug!(client = %conn.address, "{host}:{port}: passed through at a plugin's request");
        if let Err(e) = crate::tunnel::relay_with(started.io, &recorded, &host, port).await {
            tracing::info!(client = %conn.address, "{host}:{port}: {e}");
        }
        return;
    }
    let sni = hello.sni.clone();
    let offered: Vec<Vec<u8>> = hello
        .alpn
        .iter()
        .map(|p| p.as_bytes())
        .filter(|p| *p == ALPN_H2 || *p == ALPN_HTTP1)
        .map(<[u8]>::to_vec)
        .collect();

    let server_name = sni.clone().unwrap_or_else(|| host.clone());
    let (link, link_error) = match connect_server(
        &tls,
        &shared.server_events,
        &host,
        port,
        &server_name,
        offered.clone(),
    )
    .await
    {
        Ok(link) => {
            shared.server_events.connected(link.info.clone()).await;
            (Some(link), None)
        }
        Err(e) => {
            tracing::warn!(client = %conn.address, "{host}:{port}: {}", e.message);
            (None, Some(e))
        }
    };
    // Offer the client only what the server agreed to; with no server (or no
    // ALPN from it), HTTP/1.1 if the client offered it.
    let server_alpn = link.as_ref().and_then(|l| l.info.alpn.clone());
    let client_alpn = match &server_alpn {
        Some(p) if offered.iter().any(|o| o == p.as_bytes()) => Some(p.as_bytes().to_vec()),
        _ if offered.iter().any(|o| o == ALPN_HTTP1) => Some(ALPN_HTTP1.to_vec()),
        _ => None,
    };
    let leaf = match tls.ca.leaf_for(&server_name) {
        Ok(leaf) => leaf,
        Err(e) => {
            tracing::error!("{host}:{port}: {e}");
            return;
        }
    };
    let config = match witm_tls::server_config(leaf, client_alpn.clone()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{host}:{port}: TLS configuration: {e}");
            return;
        }
    };
    let stream = match tokio::time::timeout(tls.handshake_timeout, started.into_stream(config))
        .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(
                client = %conn.address,
                "{server_name}: TLS handshake with the client failed: {e} (does the client trust witm's CA? see `witm ca`)"
            );
            return;
        }
        Err(_) => {
            tracing::warn!(client = %conn.address, "{server_name}: TLS handshake with the client timed out");
            return;
        }
    };
    let mut inner = (*conn).clone();
    inner.tls = Some(ClientTls {
        sni,
        alpn: client_alpn
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    });
    let conn = Arc::new(inner);
    let tunnel = Arc::new(Tunnel {
        scheme: "https",
        host,
        port,
        link,
        link_error,
        tenant,
    });
    if client_alpn.as_deref() == Some(ALPN_H2) {
        let address = conn.address;
        let service = inner_service(shared, conn, tunnel, live.clone());
        let mut served = Box::pin(
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service),
        );
        let served = tokio::select! {
            served = served.as_mut() => served,
            () = closing(&live) => {
                served.as_mut().graceful_shutdown();
                served.await
            }
        };
        if let Err(e) = served {
            tracing::debug!(client = %address, "HTTP/2 connection ended: {e}");
        }
    } else {
        serve_http1(shared, conn, tunnel, stream, live).await;
    }
}

/// The service for requests inside a tunnel: each carries the connection's
/// liveness, for a WebSocket relay to hold.
fn inner_service<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    tunnel: Arc<Tunnel>,
    live: Option<Liveness>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<ProxyBody>,
    Error = forward::FlowKilled,
    Future = impl std::future::Future<Output = Result<hyper::Response<ProxyBody>, forward::FlowKilled>>
             + Send,
> + Clone {
    service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        if let Some(live) = &live {
            request.extensions_mut().insert(live.clone());
        }
        forward::handle(shared.clone(), conn.clone(), Some(tunnel.clone()), request)
    })
}

/// Resolves when witm stops, never without a liveness (a replay).
async fn closing(live: &Option<Liveness>) {
    match live {
        Some(live) => live.closing().await,
        None => std::future::pending().await,
    }
}

async fn serve_http1<H, IO>(
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    tunnel: Arc<Tunnel>,
    io: IO,
    live: Option<Liveness>,
) where
    H: FlowHooks,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let address = conn.address;
    let service = inner_service(shared, conn, tunnel, live.clone());
    let mut served = Box::pin(
        http1::Builder::new()
            .preserve_header_case(true)
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades(),
    );
    let served = tokio::select! {
        served = served.as_mut() => served,
        () = closing(&live) => {
            // Finish the request in flight, then close.
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(client = %address, "connection in tunnel ended: {e}");
    }
}

/// Drives a server connection, then reports that it closed.
async fn report_close<F: std::future::Future>(
    connection: F,
    events: Arc<dyn ServerEvents>,
    server: Arc<ServerConn>,
) {
    let _ = connection.await;
    events.disconnected(server);
}

/// Connects to the server over TLS and sets up HTTP on it. The error text
/// names the host and the reason (refused, bad certificate, timeout).
async fn connect_server(
    tls: &TlsOptions,
    events: &Arc<dyn ServerEvents>,
    host: &str,
    port: u16,
    server_name: &str,
    alpn: Vec<Vec<u8>>,
) -> Result<ServerLink, Failure> {
    let address = format!("{host}:{port}");
    let connect = async {
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
            Failure::new(
                answers::kind_of_upstream(&e),
                format!("cannot connect to {address}: {e}"),
            )
        })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
            Failure::new(
                ErrorKind::Client,
                format!("invalid server name {server_name:?}: {e}"),
            )
        })?;
        let alpn = if alpn.is_empty() {
            vec![ALPN_HTTP1.to_vec()]
        } else {
            alpn
        };
        let connector = TlsConnector::from(tls.upstream.client_config(alpn));
        connector.connect(name, tcp).await.map_err(|e| {
            Failure::new(
                ErrorKind::Tls,
                format!("TLS handshake with server {address} failed: {e}"),
            )
        })
    };
    let stream = tokio::time::timeout(tls.handshake_timeout, connect)
        .await
        .map_err(|_| {
            Failure::new(
                ErrorKind::Timeout,
                format!("connecting to {address} timed out"),
            )
        })??;
    let (_, session) = stream.get_ref();
    let alpn = session
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let cert = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(crate::cert_info::cert_info);
    let info = Arc::new(ServerConn {
        address: address.clone(),
        sni: Some(server_name.to_owned()),
        alpn: alpn.clone(),
        cert,
    });
    let io = TokioIo::new(stream);
    let sender = if alpn.as_deref() == Some("h2") {
        let (sender, connection) = client_http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| {
                Failure::new(
                    ErrorKind::Server,
                    format!("HTTP/2 with {address} failed: {e}"),
                )
            })?;
        tokio::spawn(report_close(connection, events.clone(), info.clone()));
        Sender::Http2(sender)
    } else {
        let (sender, connection) = client_http1::Builder::new()
            .preserve_header_case(true)
            .handshake(io)
            .await
            .map_err(|e| {
                Failure::new(
                    ErrorKind::Server,
                    format!("HTTP/1.1 with {address} failed: {e}"),
                )
            })?;
        tokio::spawn(report_close(
            connection.with_upgrades(),
            events.clone(),
            info.clone(),
        ));
        Sender::Http1(sender)
    };
    Ok(ServerLink {
        sender: tokio::sync::Mutex::new(sender),
        info,
    })
}
