//! The connection pools of flows that go through an upstream proxy, one per
//! proxy, so that kept-alive connections are keyed by the upstream as well
//! as by the server (a flow routed through proxy A never reuses a
//! connection made through proxy B, or made directly).
//!
//! Plain-HTTP requests go to the proxy in absolute form (with
//! `Proxy-Authorization` added by `forward`); HTTPS requests go through a
//! CONNECT tunnel the proxy opens (`dial`), then TLS to the server.
//! Direct flows use the shared pool of `shared`.
//!
//! Bounded: at most [`MAX_PROXIES`] pools; past it the pool of some other
//! proxy is dropped (its idle connections close) to make room.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use witm_flow::{ProxyUrl, Route};
use witm_tls::Upstream;

use crate::body::ProxyBody;
use crate::dial::{self, BoxStream};
use crate::server_events::{ServerEvents, Watched};
use crate::server_http::ServerHttp;
use crate::server_pool::watched_https;

/// Pools of upstream proxies at once (a proxy has up to two: one whose
/// connections may speak HTTP/2 to servers, one that offers HTTP/1.1 alone).
const MAX_PROXIES: usize = 64;

/// A pool of connections through one upstream proxy.
pub(crate) type ViaClient = Client<Watched<HttpsConnector<ViaConnector>>, ProxyBody>;

/// The pools of every upstream proxy in use.
pub(crate) struct ViaPools {
    /// By proxy, and whether the pool offers servers HTTP/1.1 alone.
    pools: Mutex<HashMap<(Arc<ProxyUrl>, bool), ViaClient>>,
    trust: Upstream,
    connect_timeout: Duration,
    http: ServerHttp,
    events: Arc<dyn ServerEvents>,
}

impl ViaPools {
    pub(crate) fn new(
        trust: Upstream,
        connect_timeout: Duration,
        http: ServerHttp,
        events: Arc<dyn ServerEvents>,
    ) -> Self {
        Self {
            pools: Mutex::default(),
            trust,
            connect_timeout,
            http,
            events,
        }
    }

    /// The pool for flows through `proxy`, made on first use; with
    /// `http1_only`, one whose TLS connections offer servers HTTP/1.1
    /// alone, for requests HTTP/2 cannot carry as they are (a WebSocket
    /// upgrade, a `host` naming another server than the URL's: this pool
    /// is hyper_util's, which picks the protocol only once the request is
    /// handed to it, so the request cannot be made to fit afterwards).
    pub(crate) fn client(&self, proxy: &Arc<ProxyUrl>, http1_only: bool) -> ViaClient {
        let key = (proxy.clone(), http1_only);
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = pools.get(&key) {
            return client.clone();
        }
        if pools.len() >= MAX_PROXIES
            && let Some(some) = pools.keys().next().cloned()
        {
            pools.remove(&some);
        }
        let connector = ViaConnector {
            proxy: proxy.clone(),
            trust: self.trust.clone(),
            timeout: self.connect_timeout,
        };
        let https = watched_https(connector, &self.trust, self.events.clone(), !http1_only);
        let client = self.http.pool_builder().build(https);
        pools.insert(key, client.clone());
        client
    }
}

/// Connects through one upstream proxy: a CONNECT tunnel for `https`
/// URIs (hyper-rustls adds TLS over it), the proxy itself for `http`.
#[derive(Clone)]
pub(crate) struct ViaConnector {
    proxy: Arc<ProxyUrl>,
    trust: Upstream,
    timeout: Duration,
}

impl tower_service::Service<Uri> for ViaConnector {
    type Response = Dialed;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Dialed>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let https = uri.scheme_str() == Some("https");
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            if https {
                let route = Route::Via(this.proxy.clone());
                let io = dial::dial(&route, &host, port, &this.trust, this.timeout).await?;
                return Ok(Dialed::new(io, false));
            }
            let io = tokio::time::timeout(this.timeout, dial::to_proxy(&this.proxy, &this.trust))
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting to upstream proxy {} timed out", this.proxy),
                    )
                })??;
            Ok(Dialed::new(io, true))
        })
    }
}

/// A connection made by [`ViaConnector`]; `proxied` tells hyper to send
/// requests in absolute form (to the proxy itself).
pub(crate) struct Dialed {
    io: TokioIo<BoxStream>,
    proxied: bool,
}

impl Dialed {
    fn new(io: BoxStream, proxied: bool) -> Self {
        Self {
            io: TokioIo::new(io),
            proxied,
        }
    }
}

impl Connection for Dialed {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Dialed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Dialed {
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
}
