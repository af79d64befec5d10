//! A reverse proxy's client connection (`--mode reverse:URL`): the client
//! talks to witm as to the server itself, in plain HTTP or in HTTPS (told
//! apart by the first byte), HTTP/1.1 or HTTP/2; every request goes to the
//! one server of the mode, over the shared pool (kept-alive connections,
//! HTTP/2 where the server offers it, TLS when the URL is `https`).
//!
//! The client's certificate is minted by witm's CA for the name it asked
//! for (SNI), or for the address it connected to when it sent none. As in
//! mitmproxy, the request's `Host` is rewritten to the server's unless
//! `keep_host_header` is set (see `forward`).

use std::net::IpAddr;
use std::sync::Arc;

use witm_flow::{ClientConn, ClientTls, FlowHooks, ServerUrl};
use witm_tls::{ALPN_H2, ALPN_HTTP1};

use crate::client_tls;
use crate::connection::{self, Protocol};
use crate::liveness::Liveness;
use crate::opening;
use crate::prefixed::Peeked;
use crate::shared::Shared;
use crate::upstream::Tunnel;

/// Serves one client connection of a reverse proxy for `server`.
/// `local` is the address the client connected to.
pub(crate) async fn serve<H, IO>(
    shared: Arc<Shared<H>>,
    conn: Arc<ClientConn>,
    mut io: IO,
    (server, local): (&ServerUrl, Option<IpAddr>),
    live: Option<Liveness>,
) where
    H: FlowHooks,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // A client that says nothing is held no longer than one that sends
    // no request head.
    let timeout = connection::HEADER_READ_TIMEOUT;
    let Some(first) = opening::client_first(&mut io, timeout).await else {
        return;
    };
    let tunnel = Arc::new(Tunnel {
        scheme: server.scheme,
        host: server.host.clone(),
        port: server.port,
        link: None,
        link_error: None,
        tenant: shared.options.tenant.clone(),
        route: shared.default_route.clone(),
        reverse: true,
        authority: Default::default(),
    });
    let tls_hello = first[0] == 0x16;
    let h2c = opening::is_h2_preface(&first);
    let mut io = Peeked::new(first, io);
    io.take_recorded();
    let Some(tls) = shared.options.tls.clone().filter(|_| tls_hello) else {
        let protocol = Protocol::http2_if(h2c);
        connection::serve(shared, conn, Some(tunnel), io, protocol, live).await;
        return;
    };
    let started = client_tls::read_hello(io, tls.handshake_timeout, &conn, "reverse proxy");
    let Some(started) = started.await else {
        return;
    };
    let hello = started.client_hello();
    let sni = hello.server_name().map(str::to_owned);
    let offers = |p: &[u8]| hello.alpn().is_some_and(|mut a| a.any(|o| o == p));
    let alpn = if offers(ALPN_H2) {
        Some(ALPN_H2)
    } else if offers(ALPN_HTTP1) {
        Some(ALPN_HTTP1)
    } else {
        None
    };
    let name = sni
        .clone()
        .or_else(|| local.map(|ip| ip.to_string()))
        .unwrap_or_else(|| server.host.clone());
    let config = match tls.ca.server_config_for(&name, alpn) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("reverse proxy: certificate for {name}: {e}");
            return;
        }
    };
    let finished = client_tls::finish(started, config, tls.handshake_timeout, &conn, &name);
    let Some(stream) = finished.await else {
        return;
    };
    let mut inner = (*conn).clone();
    inner.tls = Some(ClientTls {
        sni,
        alpn: alpn.map(|p| String::from_utf8_lossy(p).into_owned()),
    });
    let protocol = Protocol::http2_if(alpn == Some(ALPN_H2));
    connection::serve(
        shared,
        Arc::new(inner),
        Some(tunnel),
        stream,
        protocol,
        live,
    )
    .await;
}
