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
//!    through the shared pool. With `--share-server-connections` they all
//!    go through the shared pool, and the connection of step 2 waits for the
//!    next tunnel's step 2.
//!
//! The connection of step 2 is kept for the next tunnel to the same server
//! when this one ends ([`crate::link_pool`]), so a client that opens a
//! tunnel per request does not make witm open a server connection per
//! request too.
//!
//! A tunnel whose first bytes are not a TLS handshake is served as plain
//! HTTP, or relayed untouched when they are not HTTP either, or when the
//! server speaks first (see `opening`).

use std::sync::Arc;

use witm_flow::{ClientConn, ClientHello, ClientTls, Events, FlowHooks};
use witm_tls::{ALPN_H2, ALPN_HTTP1};

use crate::answers::Failure;
use crate::client_tls;
use crate::connection::{self, Protocol};
use crate::dial;
use crate::link_pool::LinkKey;
use crate::liveness::Liveness;
use crate::opening::{self, Opening};
use crate::prefixed::Peeked;
use crate::relay;
use crate::shared::Shared;
use crate::tcp_flow::Recorder;
use crate::tls::TlsOptions;
use crate::upstream::{ServerLink, Tunnel, connect_h2c, connect_server};

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
    /// How the server connection is made (direct or through a proxy).
    pub route: witm_flow::Route,
}

/// Takes over a tunnel's stream to `host:port` (a CONNECT's or SOCKS5's).
pub(crate) async fn intercept<H, IO>(
    shared: Arc<Shared<H>>,
    tls: Arc<TlsOptions>,
    conn: Arc<ClientConn>,
    mut io: IO,
    target: Connected,
) where
    H: FlowHooks,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Connected {
        host,
        port,
        tenant,
        live,
        route,
    } = target;
    let dial_server = || {
        let timeout = shared.options.connect_timeout;
        dial::dial(&route, &host, port, &shared.trust, timeout)
    };
    let first = match opening::open(&mut io, tls.handshake_timeout, dial_server).await {
        Opening::Client(first) => first,
        Opening::Server(server, greeting) => {
            tracing::debug!(client = %conn.address, "{host}:{port}: the server spoke first: relayed untouched");
            let idle = relay::Idle::of(&shared, &route);
            let mut recorder = Recorder::wanted(&shared, &conn, (&host, port));
            let relayed = relay::relay_greeted(
                io,
                server,
                &greeting,
                (&host, port),
                idle,
                recorder.as_mut(),
            )
            .await;
            if let Err(e) = &relayed {
                tracing::info!(client = %conn.address, "{host}:{port}: {e}");
            }
            if let Some(recorder) = recorder {
                recorder
                    .finish(&shared, tenant, relayed.err().as_ref())
                    .await;
            }
            return;
        }
        Opening::Nothing => {
            tracing::info!(client = %conn.address, "{host}:{port}: neither side said anything after CONNECT; closing");
            return;
        }
    };
    let tls_hello = first[0] == 0x16;
    let h2c = opening::is_h2_preface(&first);
    if !tls_hello && !h2c && !opening::looks_like_http(&first) {
        // Neither TLS nor HTTP (SSH, a database…): relayed untouched.
        tracing::debug!(client = %conn.address, "{host}:{port}: not TLS or HTTP: relayed untouched");
        let idle = relay::Idle::of(&shared, &route);
        let mut recorder = Recorder::wanted(&shared, &conn, (&host, port));
        let relayed = relay::relay_with(io, &first, (&host, port), idle, recorder.as_mut()).await;
        if let Err(e) = &relayed {
            tracing::info!(client = %conn.address, "{host}:{port}: {e}");
        }
        if let Some(recorder) = recorder {
            recorder
                .finish(&shared, tenant, relayed.err().as_ref())
                .await;
        }
        return;
    }
    let mut io = Peeked::new(first, io);
    if !tls_hello {
        io.take_recorded();
        // Not a TLS handshake: plain HTTP through the tunnel (e.g. to port
        // 80), HTTP/1 or, after HTTP/2's preface, h2c — whose requests go
        // to the server in h2c too (gRPC without TLS).
        let (link, link_error) = match h2c {
            false => (None, None),
            true => {
                let linked = connect_h2c(
                    (&route, &tls.upstream),
                    tls.handshake_timeout,
                    shared.server_http,
                    &shared.server_events,
                    &host,
                    port,
                )
                .await;
                announce(&shared, &conn, &host, port, linked).await
            }
        };
        let tunnel = Arc::new(Tunnel {
            scheme: "http",
            host,
            port,
            link,
            link_error,
            tenant,
            route,
            reverse: false,
            authority: Default::default(),
        });
        let protocol = Protocol::http2_if(h2c);
        connection::serve(shared, conn, Some(tunnel), io, protocol, live).await;
        return;
    }

    let what = format!("{host}:{port}");
    let Some(mut started) = client_tls::read_hello(io, tls.handshake_timeout, &conn, &what).await
    else {
        return;
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
        let idle = relay::Idle::of(&shared, &route);
        if let Err(e) = relay::relay_with(started.io, &recorded, (&host, port), idle, None).await {
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
    let key = LinkKey {
        host: host.to_ascii_lowercase(),
        port,
        server_name: server_name.clone(),
        alpn: offered.clone(),
        tenant: tenant.clone(),
        route: route.clone(),
    };
    let (mut link, link_error) = match shared.links().take(&key) {
        Some(link) => (Some(link), None),
        None => {
            let linked = connect_server(
                (&tls, &route),
                &shared.server_events,
                &host,
                port,
                &server_name,
                offered.clone(),
                shared.server_http,
            )
            .await;
            announce(&shared, &conn, &host, port, linked).await
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
    let config = match tls
        .ca
        .server_config_for(&server_name, client_alpn.as_deref())
    {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{host}:{port}: {e}");
            return;
        }
    };
    let finished =
        client_tls::finish(started, config, tls.handshake_timeout, &conn, &server_name).await;
    let Some(stream) = finished else {
        return;
    };
    let mut inner = (*conn).clone();
    inner.tls = Some(ClientTls {
        sni,
        alpn: client_alpn
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    });
    let conn = Arc::new(inner);
    if shares_server_connections(&tls, &route, &server_name, &host) {
        // The tunnel's requests go through the thread's pool; the
        // connection that told the certificate waits for the next tunnel.
        if let Some(link) = link.take() {
            shared.links().put(key.clone(), link);
        }
    }
    let tunnel = Arc::new(Tunnel {
        scheme: "https",
        host,
        port,
        link,
        link_error,
        tenant,
        route,
        reverse: false,
        authority: Default::default(),
    });
    let protocol = Protocol::http2_if(client_alpn.as_deref() == Some(ALPN_H2));
    let links = shared.clone();
    connection::serve(shared, conn, Some(tunnel.clone()), stream, protocol, live).await;
    // The server connection waits for the next tunnel to the same server
    // (unless something still holds the tunnel, or the connection is busy).
    if let Ok(Tunnel {
        link: Some(link), ..
    }) = Arc::try_unwrap(tunnel)
    {
        links.links().put(key, link);
    }
}

/// True when a tunnel's requests go through the thread's pool of server
/// connections, shared by every client, rather than over the tunnel's own
/// (`--share-server-connections`): only where the pool's connection is the
/// one the tunnel would have made, to the CONNECT target under its own name
/// (the pool sends the host as SNI), straight (an upstream proxy's pool is
/// hyper_util's).
fn shares_server_connections(
    tls: &TlsOptions,
    route: &witm_flow::Route,
    server_name: &str,
    host: &str,
) -> bool {
    tls.share_server_connections
        && *route == witm_flow::Route::Direct
        && server_name.eq_ignore_ascii_case(host)
}

/// A tunnel's server connection as the tunnel keeps it: `server-connect`
/// reported when it opened, the failure logged (and kept for each flow's
/// 502) when it did not.
async fn announce<H: FlowHooks>(
    shared: &Shared<H>,
    conn: &ClientConn,
    host: &str,
    port: u16,
    linked: Result<ServerLink, Failure>,
) -> (Option<ServerLink>, Option<Failure>) {
    match linked {
        Ok(link) => {
            shared.server_events.connected(link.info.clone()).await;
            (Some(link), None)
        }
        Err(e) => {
            tracing::warn!(client = %conn.address, "{host}:{port}: {}", e.message);
            (None, Some(e))
        }
    }
}
