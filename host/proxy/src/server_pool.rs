//! One thread's pool of connections to servers (see [`crate::shared::Shared::upstream`]):
//! what hyper_util's `Client` did for witm's direct route, without what
//! a pool of one thread does not need.
//!
//! hyper_util's pool is made for many threads sharing it: each request
//! hashed its key three times with SipHash (byte by byte, as `Authority`
//! hashes), raced a checkout against a lazy connect, and spawned a task to
//! give an HTTP/1 connection back once its response body was read. Here an
//! HTTP/1 connection goes back into the list as soon as its request is
//! handed to it, and a checkout takes the newest one that is ready (not
//! still reading a response) and drops the closed ones: about 10,000
//! instructions less per request (bench/README.md).
//!
//! What it keeps of hyper_util's behaviour: the header case preserved
//! (unless `--lowercase-header-names`: [`ServerHttp`]),
//! HTTP/2 when the server's ALPN says so (one connection shared by its
//! requests), upgrades (WebSocket) on HTTP/1 (over HTTPS, a connection that
//! offers HTTP/1.1 alone: [`Connectors`]), a request that a reused
//! connection closed before sending it sent again on a new one, the
//! connector's extras (the address connected to, [`ConnectTimes`], the
//! response tap) for the responses that read them, and unused connections
//! closed after 90 s. The extras are read once, when the connection is
//! made, into the [`Served`] those responses carry: hyper_util put each in
//! each response (three boxed extensions), and each flow made its server
//! of them again.
//! Bounded: at most [`MAX_PER_SERVER`] connections kept per server and
//! [`MAX_KEPT`] in all, shared out between the threads' pools; past it, a
//! connection closes once its response is done. Making a connection (TCP, TLS, the HTTP
//! handshake) takes at most the pool's `setup` time: a server that takes
//! the TCP connection and then says nothing fails the request (hyper_util
//! bounded only the TCP part).
//!
//! [`ConnectTimes`]: crate::server_events::ConnectTimes

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::FutureExt;
use http::{Method, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector, HttpInfo};
use tokio::time::Instant;
use witm_flow::ServerConn;
use witm_tls::Upstream;

use crate::body::{BoxError, ProxyBody};
use crate::server_events::{ConnectTimes, ServerEvents, Watched};
use crate::server_http::ServerHttp;
use crate::wire_heads::{Heads, ResponseHeads};

/// How servers are connected to: TCP, TLS for HTTPS (ALPN h2 and
/// http/1.1, or http/1.1 alone: [`Connectors`]), each connection
/// reporting its events.
pub(crate) type Connector = Watched<HttpsConnector<HttpConnector>>;

/// A pool's two ways to connect: offering HTTP/2 and HTTP/1.1 (ALPN), and
/// HTTP/1.1 alone, for a request that upgrades its connection (WebSocket):
/// HTTP/2 would drop its `upgrade` (hyper strips connection headers) and
/// the server would never switch.
#[derive(Clone)]
pub(crate) struct Connectors {
    any: Connector,
    http1: Connector,
}

impl Connectors {
    /// TCP (no Nagle, `connect_timeout`), then [`watched_https`].
    pub(crate) fn new(
        trust: &Upstream,
        connect_timeout: Duration,
        events: Arc<dyn ServerEvents>,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.enforce_http(false);
        Connectors {
            any: watched_https(tcp.clone(), trust, events.clone(), true),
            http1: watched_https(tcp, trust, events, false),
        }
    }
}

/// `inner`'s streams, with TLS verified by `trust` for HTTPS (ALPN h2, if
/// `http2`, and http/1.1), each connection reporting its events: the
/// direct route's connectors and each upstream proxy's.
pub(crate) fn watched_https<C>(
    inner: C,
    trust: &Upstream,
    events: Arc<dyn ServerEvents>,
    http2: bool,
) -> Watched<HttpsConnector<C>> {
    // hyper-rustls sets ALPN itself (h2, http/1.1) from enable_http1/2.
    let https = HttpsConnectorBuilder::new()
        .with_tls_config((*trust.client_config(Vec::new())).clone())
        .https_or_http()
        .enable_http1();
    let https = match http2 {
        true => https.enable_http2().wrap_connector(inner),
        false => https.wrap_connector(inner),
    };
    Watched::new(https, events)
}

/// What the server of an HTTP/2 connection may send on one stream before
/// witm has passed it on (hyper's default).
const STREAM_WINDOW: u32 = 2 << 20;

/// What it may send on all streams together before witm has passed it on:
/// HTTP/2's largest. A connection's requests are many clients' (every
/// tunnel's, with `--share-server-connections`), and a client that reads
/// nothing keeps its stream's bytes unacknowledged; with hyper's default
/// (5 MiB, two and a half streams' windows) three such clients would stop
/// every stream of the connection. Each stream's bytes stay bounded by
/// [`STREAM_WINDOW`].
const CONNECTION_WINDOW: u32 = (1 << 31) - 1;

/// How long a connection is kept unused (hyper_util's default, which
/// witm's pools had).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How often unused connections are looked for.
const REAP_EVERY: Duration = Duration::from_secs(30);

/// Most connections kept per server (scheme and authority) per pool.
const MAX_PER_SERVER: usize = 256;

/// Most connections kept by all threads' pools together, all servers
/// together: a client that sends requests to many servers gets each
/// connection closed once its response is done past it, not a file
/// descriptor held for 90 s each, however many threads witm runs.
const MAX_KEPT: usize = 1024;

/// The pool of one thread; see the module's docs.
pub(crate) struct ServerPool {
    inner: Arc<Inner>,
}

struct Inner {
    connectors: Connectors,
    http: ServerHttp,
    /// The most a new connection may take to be ready for a request.
    setup: Duration,
    /// [`MAX_PER_SERVER`] and this pool's share of [`MAX_KEPT`] (smaller
    /// in tests).
    most: (usize, usize),
    servers: Mutex<Servers>,
}

#[derive(Default)]
struct Servers {
    /// By "scheme://authority", lower case; the newest last.
    links: HashMap<String, Vec<Link>>,
    /// How many links are in `links`, for [`MAX_KEPT`].
    kept: usize,
    /// True while a task closes unused connections.
    reaping: bool,
}

impl Servers {
    /// Drops the links `keep` says no to; empty lists go too.
    fn retain(&mut self, mut keep: impl FnMut(&Link) -> bool) {
        let mut kept = 0;
        self.links.retain(|_, links| {
            links.retain(&mut keep);
            kept += links.len();
            !links.is_empty()
        });
        self.kept = kept;
    }
}

/// What a pooled connection's responses tell their flows, learnt once when
/// the connection was made; in the extensions of the responses that make
/// a flow or must keep its tap in step ([`ServerPool::request`]).
#[derive(Clone)]
pub(crate) struct Served {
    /// The connection as plugins see it (`flow.server_conn`), one for all
    /// its flows.
    pub(crate) server: Arc<ServerConn>,
    /// The tap of its responses, when it follows the wire.
    pub(crate) heads: Option<Arc<Heads>>,
}

impl Served {
    /// What `connected`'s extras say of a connection to `uri`'s server.
    fn of(uri: &Uri, connected: &Connected) -> Self {
        let mut extras = http::Extensions::new();
        connected.get_extras(&mut extras);
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let server = server_conn((host, port, https), connected.is_negotiated_h2(), &extras);
        Served {
            server: Arc::new(server),
            heads: extras
                .remove::<ResponseHeads>()
                .map(|heads| heads.0)
                .filter(|heads| heads.active()),
        }
    }
}

/// A pooled connection to `(host, port, https)` as plugins see it: its
/// address, for HTTPS the name sent and the protocol (`h2` or not), and
/// from the connector's `extras` the address connected to and when. Also
/// for an upstream proxy's pool (hyper_util's), whose extras each response
/// carries.
pub(crate) fn server_conn(
    (host, port, https): (&str, u16, bool),
    h2: bool,
    extras: &http::Extensions,
) -> ServerConn {
    // Not `format!`: ~800 instructions for two arguments.
    let mut address = String::with_capacity(host.len() + 6);
    address.push_str(host);
    address.push(':');
    address.push_str(witm_flow::message::Digits::new(port.into()).as_str());
    let times = extras.get::<ConnectTimes>();
    ServerConn {
        address,
        sni: https.then(|| host.to_owned()),
        alpn: https.then(|| if h2 { "h2" } else { "http/1.1" }.to_owned()),
        peername: extras.get::<HttpInfo>().map(HttpInfo::remote_addr),
        ..times.map_or_else(ServerConn::default, |t| t.server_conn(https))
    }
}

/// One connection to a server.
struct Link {
    sender: Sender,
    /// What its responses tell their flows. When its response tap follows
    /// the wire (`served.heads`), every response carries it, to keep it in
    /// step with hyper.
    served: Served,
    /// When it was last handed a request.
    used: Instant,
}

enum Sender {
    Http1(http1::SendRequest<ProxyBody>),
    /// With the count of its requests in flight.
    Http2(http2::SendRequest<ProxyBody>, Streams),
}

/// Requests in flight at once on one HTTP/2 connection, at most: past it
/// (or past the server's own `SETTINGS_MAX_CONCURRENT_STREAMS`, if lower:
/// [`Streams`]) the pool opens another connection to the server, as Envoy
/// does, rather than queue behind the server's limit (hyper queues a
/// request that finds it taken). 100 is the least a server should allow
/// (RFC 9113, 6.5.2) and the limit of Apache and h2o; nginx allows 128.
/// With shared connections (`--share-server-connections`), one client's
/// long-lived streams would otherwise hold every other client of the
/// thread back from that server.
const MOST_STREAMS: usize = 100;

/// The requests in flight on one HTTP/2 connection, and how many it takes:
/// [`MOST_STREAMS`], or fewer when the server's settings say so (the
/// connection's task keeps this up to date: [`follow_stream_limit`]).
#[derive(Clone)]
struct Streams(Arc<StreamCount>);

struct StreamCount {
    open: AtomicUsize,
    allowed: AtomicUsize,
}

impl Default for Streams {
    fn default() -> Self {
        Streams(Arc::new(StreamCount {
            open: AtomicUsize::new(0),
            allowed: AtomicUsize::new(MOST_STREAMS),
        }))
    }
}

impl Streams {
    fn full(&self) -> bool {
        self.0.open.load(Ordering::Relaxed) >= self.0.allowed.load(Ordering::Relaxed)
    }
}

/// True for an upgrade (WebSocket) to an `https` URI: HTTP/2 cannot carry
/// it (hyper drops `upgrade`), so it takes a connection that offered the
/// server HTTP/1.1 alone, in either route's pool.
pub(crate) fn upgrade_over_https<B>(request: &hyper::Request<B>) -> bool {
    request.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
        && request.headers().contains_key(http::header::UPGRADE)
}

/// Drives an HTTP/2 connection (its task), noting after each step how many
/// streams the server's latest settings allow: a server may allow fewer
/// than [`MOST_STREAMS`], and may change its mind (at 0, no new request
/// is handed to the connection until it allows more).
async fn follow_stream_limit<T, E>(
    connection: http2::Connection<T, ProxyBody, E>,
    streams: Streams,
) -> hyper::Result<()>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ClientConnExec<ProxyBody, T> + Unpin,
{
    let mut connection = std::pin::pin!(connection);
    std::future::poll_fn(|cx| {
        let polled = connection.as_mut().poll(cx);
        let allowed = connection.current_max_send_streams().min(MOST_STREAMS);
        streams.0.allowed.store(allowed, Ordering::Relaxed);
        polled
    })
    .await
}

/// One request in flight on a pooled HTTP/2 connection, counted until
/// this is dropped: it goes in the response's extensions, and whoever
/// reads the body keeps it with the body ([`OpenStream::hold`]).
pub(crate) struct OpenStream(Streams);

impl OpenStream {
    fn open(streams: &Streams) -> Self {
        streams.0.open.fetch_add(1, Ordering::Relaxed);
        Self(streams.clone())
    }

    /// `body`, holding the stream open until it is dropped.
    pub(crate) fn hold(self, body: ProxyBody) -> ProxyBody {
        use http_body_util::BodyExt;
        body.map_frame(move |frame| {
            let _open = &self;
            frame
        })
        .boxed()
    }

    /// The count of a response's stream, taken out of its extensions to go
    /// with its body. Only a response over HTTP/2 has one: others'
    /// extensions are not looked through.
    pub(crate) fn take(version: Version, extensions: &mut http::Extensions) -> Option<Self> {
        (version == Version::HTTP_2)
            .then(|| extensions.remove::<OpenStream>())
            .flatten()
    }
}

/// Extensions must be `Clone`: a copy is one more holder.
impl Clone for OpenStream {
    fn clone(&self) -> Self {
        OpenStream::open(&self.0)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Link {
    fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::Http1(tx) => tx.is_closed(),
            Sender::Http2(tx, _) => tx.is_closed(),
        }
    }

    /// Another handle to this HTTP/2 connection (`tx`, its sender), which
    /// its requests share.
    fn shared(&self, tx: &http2::SendRequest<ProxyBody>, streams: &Streams) -> Link {
        Link {
            sender: Sender::Http2(tx.clone(), streams.clone()),
            served: self.served.clone(),
            used: self.used,
        }
    }

    /// Still worth keeping at `now`: open, and busy or used lately.
    fn keep(&self, now: Instant) -> bool {
        let busy = matches!(&self.sender, Sender::Http1(tx) if !tx.is_ready());
        !self.is_closed() && (busy || now.duration_since(self.used) < IDLE_TIMEOUT)
    }
}

/// Why a request got no response from its server.
#[derive(Debug)]
pub(crate) struct PoolError {
    /// True when no connection could be made (the connector failed).
    connect: bool,
    source: BoxError,
}

impl PoolError {
    /// True when the server could not be connected to.
    pub(crate) fn is_connect(&self) -> bool {
        self.connect
    }

    fn connect(source: impl Into<BoxError>) -> Self {
        PoolError {
            connect: true,
            source: source.into(),
        }
    }

    fn send(source: impl Into<BoxError>) -> Self {
        PoolError {
            connect: false,
            source: source.into(),
        }
    }
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.connect {
            true => write!(f, "cannot connect: {}", self.source),
            false => write!(f, "request failed: {}", self.source),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A request that went, or one to send again on a new connection.
enum Sent {
    Answered(Result<hyper::Response<Incoming>, PoolError>),
    /// The connection closed before the request was written.
    Unsent(hyper::Request<ProxyBody>, PoolError),
}

impl ServerPool {
    /// One of `pools` pools (one per thread) connecting with `connectors`,
    /// speaking HTTP as `http` says, a new connection ready within `setup`.
    pub(crate) fn new(
        connectors: Connectors,
        http: ServerHttp,
        setup: Duration,
        pools: usize,
    ) -> Self {
        ServerPool {
            inner: Arc::new(Inner {
                connectors,
                http,
                setup,
                most: (MAX_PER_SERVER, crate::workers::share(MAX_KEPT, pools)),
                servers: Mutex::default(),
            }),
        }
    }

    /// Sends `request` (an absolute URI, HTTP/1.1, its `host` set) to its
    /// server over a kept connection, or a new one.
    ///
    /// The response carries its connection's [`Served`] when it makes a
    /// flow (`for_flow`), or when the connection's tap must be kept in
    /// step; otherwise nothing: an extension per response that nothing
    /// would read.
    pub(crate) async fn request(
        &self,
        mut request: hyper::Request<ProxyBody>,
        for_flow: bool,
    ) -> Result<hyper::Response<Incoming>, PoolError> {
        let uri = request.uri().clone();
        // An upgrade (WebSocket) over HTTPS goes over a connection of its
        // own kind, HTTP/1.1 whatever the server offers.
        let http1_only = upgrade_over_https(&request);
        let key = match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                let authority = authority.as_str();
                let mut key = String::with_capacity(scheme.len() + 6 + authority.len());
                if http1_only {
                    key.push_str("h1+");
                }
                key.push_str(scheme);
                key.push_str("://");
                key.push_str(authority);
                key.make_ascii_lowercase();
                key
            }
            _ => return Err(PoolError::send(format!("not an absolute URI: {uri}"))),
        };
        if let Some(link) = self.checkout(&key) {
            match self.send(link, request, &key, for_flow).await {
                Sent::Answered(answered) => return answered,
                // The server closed it as the request went: a new one.
                Sent::Unsent(unsent, _) => request = unsent,
            }
            // As it was before an HTTP/2 connection took it.
            crate::wire::authority_into_host(&mut request);
            *request.uri_mut() = uri.clone();
        }
        // Boxed: a new connection's future (the dial, the TLS handshake)
        // is ~7 KiB, and inline it would make every request's future, all
        // the way up to hyper's, as large, copied at each move.
        let link = Box::pin(self.connect(uri, &key, http1_only)).await?;
        match self.send(link, request, &key, for_flow).await {
            Sent::Answered(answered) => answered,
            Sent::Unsent(_, error) => Err(error),
        }
    }

    /// The newest kept connection to `key` that can take a request now,
    /// dropping the closed and expired ones it passes.
    fn checkout(&self, key: &str) -> Option<Link> {
        let mut servers = self.inner.servers.lock().unwrap_or_else(|e| e.into_inner());
        let servers = &mut *servers;
        let links = servers.links.get_mut(key)?;
        let now = Instant::now();
        let mut at = links.len();
        while at > 0 {
            at -= 1;
            let link = &mut links[at];
            if !link.keep(now) {
                links.remove(at);
                servers.kept -= 1;
                continue;
            }
            match &link.sender {
                Sender::Http1(tx) if tx.is_ready() => {
                    servers.kept -= 1;
                    return Some(links.remove(at));
                }
                // Still reading its response.
                Sender::Http1(_) => {}
                // As many requests in flight as it may take: passed over,
                // for another or a new one.
                Sender::Http2(_, streams) if streams.full() => {}
                // Shared by its requests: a handle to it.
                Sender::Http2(tx, streams) => {
                    let handle = link.shared(tx, streams);
                    link.used = now;
                    return Some(handle);
                }
            }
        }
        None
    }

    /// Keeps `link` for the next request to `key` (an HTTP/1 one while
    /// its response is still read: [`checkout`](Self::checkout) passes it
    /// until it is ready).
    fn keep(&self, key: &str, link: Link) {
        let (per_server, in_all) = self.inner.most;
        let mut servers = self.inner.servers.lock().unwrap_or_else(|e| e.into_inner());
        if servers.kept >= in_all {
            // Dropped: it closes once its response is done.
            return;
        }
        let links = match servers.links.get_mut(key) {
            Some(links) => links,
            None => servers.links.entry(key.to_owned()).or_default(),
        };
        if links.len() >= per_server {
            return;
        }
        links.push(link);
        servers.kept += 1;
        if !servers.reaping {
            servers.reaping = true;
            tokio::spawn(reap(Arc::downgrade(&self.inner)));
        }
    }

    /// Sends `request` over `link`, which goes back into the pool.
    ///
    /// Not an `async fn`: the request is handed to the connection at once,
    /// and the future that waits for the answer holds none of these
    /// arguments (an `async fn` would keep them all, the request too, in
    /// every request's future; see `connection::answer`).
    fn send(
        &self,
        link: Link,
        mut request: hyper::Request<ProxyBody>,
        key: &str,
        for_flow: bool,
    ) -> impl Future<Output = Sent> + Send + 'static {
        let served = (for_flow || link.served.heads.is_some()).then(|| link.served.clone());
        let mut open = None;
        let sending = match link.sender {
            Sender::Http1(mut tx) => {
                // Origin form (authority form for CONNECT), from the parts
                // as parsed: nothing is parsed again.
                let connect = request.method() == Method::CONNECT;
                let absolute = std::mem::take(request.uri_mut()).into_parts();
                let mut parts = http::uri::Parts::default();
                if connect {
                    parts.authority = absolute.authority;
                } else {
                    let root = || http::uri::PathAndQuery::from_static("/");
                    parts.path_and_query = Some(absolute.path_and_query.unwrap_or_else(root));
                }
                *request.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
                let sending = tx.try_send_request(request);
                let link = Link {
                    sender: Sender::Http1(tx),
                    used: Instant::now(),
                    ..link
                };
                self.keep(key, link);
                futures_util::future::Either::Left(sending)
            }
            // Kept in the pool as it is (a handle to it was taken).
            Sender::Http2(mut tx, streams) => {
                *request.version_mut() = Version::HTTP_2;
                // The server is named by `:authority` alone.
                crate::wire::host_into_authority(&mut request);
                open = Some(OpenStream::open(&streams));
                futures_util::future::Either::Right(tx.try_send_request(request))
            }
        };
        sending.map(move |sent| match sent {
            Ok(mut response) => {
                if let Some(served) = served {
                    response.extensions_mut().insert(served);
                }
                if let Some(open) = open {
                    response.extensions_mut().insert(open);
                }
                Sent::Answered(Ok(response))
            }
            Err(mut error) => match error.take_message() {
                Some(request) => Sent::Unsent(request, PoolError::send(error.into_error())),
                None => Sent::Answered(Err(PoolError::send(error.into_error()))),
            },
        })
    }

    /// A new connection to `uri`'s server: HTTP/2 if its ALPN says so (then
    /// kept at once, for other requests to share), unless `http1_only`.
    async fn connect(&self, uri: Uri, key: &str, http1_only: bool) -> Result<Link, PoolError> {
        let setup = self.inner.setup;
        let connectors = &self.inner.connectors;
        let connector = match http1_only {
            true => &connectors.http1,
            false => &connectors.any,
        };
        let Ok(link) = tokio::time::timeout(setup, self.set_up(uri, connector)).await else {
            let message = format!("the connection took over {setup:?} to be ready");
            let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, message);
            return Err(PoolError::connect(timed_out));
        };
        let link = link?;
        if let Sender::Http2(tx, streams) = &link.sender {
            self.keep(key, link.shared(tx, streams));
        }
        Ok(link)
    }

    /// TCP, TLS and the HTTP handshake of a new connection to `uri`'s server.
    async fn set_up(&self, uri: Uri, connector: &Connector) -> Result<Link, PoolError> {
        use tower_service::Service;
        let mut connector = connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(PoolError::connect)?;
        let io = connector
            .call(uri.clone())
            .await
            .map_err(PoolError::connect)?;
        let connected = io.connected();
        let served = Served::of(&uri, &connected);
        let sender = if connected.is_negotiated_h2() {
            let (mut tx, connection) = self
                .inner
                .http
                .http2()
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .handshake(io)
                .await
                .map_err(PoolError::send)?;
            let streams = Streams::default();
            let followed = follow_stream_limit(connection, streams.clone());
            tokio::spawn(async move {
                if let Err(e) = followed.await {
                    tracing::debug!("server connection: {e}");
                }
            });
            tx.ready().await.map_err(PoolError::send)?;
            Sender::Http2(tx, streams)
        } else {
            let (mut tx, connection) = self
                .inner
                .http
                .http1()
                .handshake(io)
                .await
                .map_err(PoolError::send)?;
            tokio::spawn(async move {
                if let Err(e) = connection.with_upgrades().await {
                    tracing::debug!("server connection: {e}");
                }
            });
            tx.ready().await.map_err(PoolError::send)?;
            Sender::Http1(tx)
        };
        Ok(Link {
            sender,
            served,
            used: Instant::now(),
        })
    }

    /// How many connections are kept, for tests (counted, and checked
    /// against the count kept for [`MAX_KEPT`]).
    #[cfg(test)]
    fn kept(&self) -> usize {
        let servers = self.inner.servers.lock().unwrap();
        let counted = servers.links.values().map(Vec::len).sum();
        assert_eq!(servers.kept, counted);
        counted
    }
}

/// Closes unused connections every [`REAP_EVERY`], until the pool is empty
/// (the next kept connection starts it again) or gone.
async fn reap(pool: Weak<Inner>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut servers = pool.servers.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        servers.retain(|link| link.keep(now));
        if servers.links.is_empty() {
            servers.reaping = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use witm_test_support::{Origin, RawOrigin, TestCa};
    use witm_tls::UpstreamTrust;

    use super::*;
    use crate::server_events::HookEvents;

    fn pool(trust: UpstreamTrust) -> ServerPool {
        pool_with(trust, Duration::from_secs(5))
    }

    /// A pool whose new connections must be ready within `setup`.
    fn pool_with(trust: UpstreamTrust, setup: Duration) -> ServerPool {
        one_of(trust, setup, 1)
    }

    /// One of `pools` threads' pools.
    fn one_of(trust: UpstreamTrust, setup: Duration, pools: usize) -> ServerPool {
        let events = Arc::new(HookEvents(Arc::new(witm_flow::NoHooks)));
        let connectors = Connectors::new(&Upstream::new(&trust), Duration::from_secs(5), events);
        let http = ServerHttp {
            h2_keepalive: None,
            keep_header_case: true,
        };
        ServerPool::new(connectors, http, setup, pools)
    }

    /// However many threads, their pools together keep at most
    /// [`MAX_KEPT`] connections (each at least one).
    #[test]
    fn the_threads_pools_share_the_bound() {
        let most = |pools| {
            one_of(UpstreamTrust::Verify, Duration::ZERO, pools)
                .inner
                .most
        };
        for pools in [1, 2, 3, 9, 64, 2000] {
            let (_, each) = most(pools);
            assert!(each >= 1);
            assert!(
                pools * each <= MAX_KEPT.max(pools),
                "{pools} pools of {each}"
            );
        }
        assert_eq!(most(1), (MAX_PER_SERVER, MAX_KEPT));
    }

    /// A GET of `url` (absolute, its `host` set), as `forward` sends one.
    fn get_request(url: &str) -> hyper::Request<ProxyBody> {
        let authority = url.parse::<Uri>().unwrap().authority().unwrap().to_string();
        hyper::Request::builder()
            .uri(url)
            .header(http::header::HOST, authority)
            .body(crate::body::empty())
            .unwrap()
    }

    /// A response to a GET of `url` whose body is left unread (the
    /// connection stays busy with it).
    async fn unread(pool: &ServerPool, url: &str) -> hyper::Response<Incoming> {
        pool.request(get_request(url), true).await.unwrap()
    }

    /// GETs `url` through `pool`: the status and the body.
    async fn get(pool: &ServerPool, url: &str) -> (u16, Bytes) {
        let response = unread(pool, url).await;
        assert!(
            response.extensions().get::<Served>().is_some(),
            "a flow's response carries its connection's server"
        );
        let status = response.status().as_u16();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn one_connection_serves_requests_one_after_another() {
        let origin = Origin::start();
        let pool = pool(UpstreamTrust::Verify);
        for _ in 0..5 {
            let (status, _) = get(&pool, &origin.url("/")).await;
            assert_eq!(status, 200);
        }
        assert_eq!(origin.connections(), 1);
        assert_eq!(pool.kept(), 1);
    }

    /// A response that makes no flow, from a connection whose tap is off
    /// (nothing wants flows), carries nothing of its connection; those that
    /// make a flow carry the connection's server, made once from the
    /// connector's extras (the address connected to, when) and the same
    /// for every flow over it.
    #[tokio::test]
    async fn a_connections_server_goes_only_where_it_is_read() {
        let origin = Origin::start();
        let pool = pool(UpstreamTrust::Verify);
        let mut servers = Vec::new();
        for for_flow in [false, true, false, true] {
            let request = get_request(&origin.url("/"));
            let response = pool.request(request, for_flow).await.unwrap();
            let served = response.extensions().get::<Served>();
            assert_eq!(served.is_some(), for_flow, "for a flow: {for_flow}");
            if let Some(served) = served {
                assert!(served.heads.is_none(), "the tap is off");
                servers.push(served.server.clone());
            }
            response.into_body().collect().await.unwrap();
        }
        assert_eq!(origin.connections(), 1);
        let server = &servers[0];
        assert!(
            Arc::ptr_eq(server, &servers[1]),
            "one server per connection"
        );
        let origin_address = origin.url("/").parse::<Uri>().unwrap();
        let port = origin_address.port_u16().unwrap();
        assert_eq!(server.address, format!("127.0.0.1:{port}"));
        assert_eq!(server.peername.map(|a| a.port()), Some(port));
        assert!(server.timestamp_start.is_some() && server.timestamp_tcp_setup.is_some());
        assert_eq!(
            (server.sni.as_deref(), server.alpn.as_deref()),
            (None, None)
        );
    }

    /// A connection still reading its response is not handed a request.
    #[tokio::test]
    async fn a_busy_connection_is_passed_over() {
        let origin = Origin::start();
        let pool = pool(UpstreamTrust::Verify);
        let unread = unread(&pool, &origin.url("/big/4")).await;
        let (status, _) = get(&pool, &origin.url("/")).await;
        assert_eq!(status, 200);
        assert_eq!(origin.connections(), 2);
        drop(unread);
    }

    /// A server that closes every connection after its response (as the
    /// raw origin does): each request still gets its answer, on a new
    /// connection, whether the pool saw the close first or the request
    /// found it (then sent again).
    #[tokio::test]
    async fn closed_connections_are_not_used_again() {
        let origin = RawOrigin::start();
        let pool = pool(UpstreamTrust::Verify);
        let url = format!("http://{}/", origin.address);
        for _ in 0..5 {
            let (status, body) = get(&pool, &url).await;
            assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        }
        let heads = origin.heads();
        assert_eq!(heads.len(), 5);
        // Origin form on the wire.
        assert!(heads[0].starts_with("GET / HTTP/1.1\r\n"), "{}", heads[0]);
    }

    /// HTTPS with ALPN h2: one connection, shared by concurrent requests.
    #[tokio::test]
    async fn http2_requests_share_one_connection() {
        let ca = TestCa::new("server-pool");
        let origin = Origin::start_https(&ca);
        let der = CertificateDer::from_pem_file(&ca.cert_pem_path).unwrap();
        let pool = Arc::new(pool(UpstreamTrust::VerifyWith(vec![der])));
        let url = origin.https_url("/");
        let (status, _) = get(&pool, &url).await;
        assert_eq!(status, 200);
        // The connection's server says what was agreed over TLS.
        let response = unread(&pool, &url).await;
        let server = &response.extensions().get::<Served>().unwrap().server;
        assert_eq!(server.sni.as_deref(), Some("localhost"));
        assert_eq!(server.alpn.as_deref(), Some("h2"));
        assert!(server.timestamp_tls_setup.is_some() && server.timestamp_tcp_setup.is_none());
        response.into_body().collect().await.unwrap();
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let pool = pool.clone();
            let url = url.clone();
            requests.spawn(async move { get(&pool, &url).await.0 });
        }
        while let Some(status) = requests.join_next().await {
            assert_eq!(status.unwrap(), 200);
        }
        assert_eq!(origin.connections(), 1);
        assert_eq!(pool.kept(), 1);
    }

    /// Unused connections are closed after the idle time, by the reaper
    /// (and the pool forgets them).
    #[tokio::test]
    async fn unused_connections_close_after_the_idle_time() {
        let origin = Origin::start();
        let pool = pool(UpstreamTrust::Verify);
        get(&pool, &origin.url("/")).await;
        assert_eq!(pool.kept(), 1);
        tokio::time::pause();
        tokio::time::advance(IDLE_TIMEOUT - Duration::from_secs(1)).await;
        assert_eq!(pool.kept(), 1, "closed before its idle time");
        tokio::time::advance(REAP_EVERY + Duration::from_secs(2)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.kept(), 0);
    }

    /// Past the most kept in all, a connection is not kept: many servers
    /// do not hold a connection each.
    #[tokio::test]
    async fn no_more_than_the_most_are_kept() {
        let origins: Vec<Origin> = (0..3).map(|_| Origin::start()).collect();
        let mut pool = pool(UpstreamTrust::Verify);
        Arc::get_mut(&mut pool.inner).unwrap().most = (MAX_PER_SERVER, 2);
        let mut busy = Vec::new();
        for origin in &origins {
            busy.push(unread(&pool, &origin.url("/big/4")).await);
        }
        assert_eq!(pool.kept(), 2);
        drop(busy);
    }

    /// A server that takes the TCP connection and then says nothing (no
    /// TLS handshake) fails the request within the setup time, as a
    /// connection that could not be made.
    #[tokio::test]
    async fn a_server_that_never_handshakes_fails_within_the_setup_time() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let pool = pool_with(UpstreamTrust::Verify, Duration::from_millis(300));
        let request = get_request(&format!("https://localhost:{port}/"));
        let started = std::time::Instant::now();
        let failed = tokio::time::timeout(Duration::from_secs(10), pool.request(request, false))
            .await
            .expect("the request must fail, not hang")
            .unwrap_err();
        assert!(failed.is_connect(), "{failed}");
        assert_eq!(
            crate::answers::kind_of_upstream(&failed),
            witm_flow::ErrorKind::Timeout
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        held.abort();
    }
}
