//! What every connection task of one proxy shares: its options, its hooks,
//! the upstream pools, and where server connections report their events.

use std::sync::Arc;
use std::time::Duration;

use witm_flow::{FlowHooks, Route};
use witm_tls::{Upstream, UpstreamTrust};

use crate::auth::Authenticator;
use crate::counters::Counters;
use crate::link_pool::LinkPool;
use crate::mode::Mode;
use crate::routes::ViaPools;
use crate::server_events::{HookEvents, ServerEvents};
use crate::server_http::ServerHttp;
use crate::server_pool::{Connectors, ServerPool};
use crate::timeouts::Timeouts;
use crate::tls::TlsOptions;
use crate::websocket::WebSocketLimits;
use crate::workers::{Workers, of_this_thread, per_thread};

/// How the proxy behaves; every field has a default that suits a person at
/// a terminal.
#[derive(Clone)]
pub struct ProxyOptions {
    /// Print one line per flow on stdout.
    pub flow_lines: bool,
    /// Largest body held in memory for a plugin; a larger one is streamed
    /// through (what was read so far first) and plugins see it as streamed.
    pub max_buffered_body: usize,
    /// Largest sum of bodies held in memory for plugins by all flows at
    /// once; past it, bodies stream as over `max_buffered_body` do.
    pub max_held_bytes: usize,
    /// How long to wait for a server's TCP connection.
    pub connect_timeout: Duration,
    /// How long witm waits on clients and servers (bodies, response heads,
    /// idle connections and tunnels).
    pub timeouts: Timeouts,
    /// The largest WebSocket message and frame relayed.
    pub websocket: WebSocketLimits,
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
    /// What the listener is: regular, reverse, upstream or SOCKS5.
    pub mode: Mode,
    /// Reverse mode: send the client's `Host` to the server as it came,
    /// instead of the server's own (mitmproxy's `keep_host_header`).
    pub keep_host_header: bool,
    /// HTTP/1 header names go on with the case they came in (mitmproxy's
    /// and nginx's way); off, lower-case (Envoy's and HAProxy's default,
    /// `--lowercase-header-names`), which spares hyper a second record of
    /// every head's names. Flows show the case as it came either way.
    pub keep_header_case: bool,
    /// The host whose requests witm answers itself with the page to install
    /// its CA (see `onboarding`); `None` forwards them like any other.
    pub onboarding_host: Option<String>,
    /// The threads that serve accepted connections ([`Workers`]); `None`
    /// serves them on the runtime that accepted them.
    pub workers: Option<Arc<Workers>>,
}

impl std::fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            flow_lines,
            max_buffered_body,
            max_held_bytes,
            connect_timeout,
            timeouts,
            websocket,
            shutdown_grace,
            tls,
            authenticate,
            tenant,
            mode,
            keep_host_header,
            keep_header_case,
            onboarding_host,
            workers,
        } = self;
        f.debug_struct("ProxyOptions")
            .field("flow_lines", flow_lines)
            .field("max_buffered_body", max_buffered_body)
            .field("max_held_bytes", max_held_bytes)
            .field("connect_timeout", connect_timeout)
            .field("timeouts", timeouts)
            .field("websocket", websocket)
            .field("shutdown_grace", shutdown_grace)
            .field("tls", tls)
            .field(
                "authenticate",
                &authenticate.as_ref().map(|_| "Fn(user, password)"),
            )
            .field("tenant", tenant)
            .field("mode", &mode.to_string())
            .field("keep_host_header", keep_host_header)
            .field("keep_header_case", keep_header_case)
            .field("onboarding_host", onboarding_host)
            .field("workers", workers)
            .finish()
    }
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            flow_lines: true,
            max_buffered_body: 128 << 20,
            max_held_bytes: 1 << 30,
            connect_timeout: Duration::from_secs(10),
            timeouts: Timeouts::default(),
            websocket: WebSocketLimits::default(),
            shutdown_grace: Duration::from_secs(10),
            tls: None,
            authenticate: None,
            tenant: None,
            mode: Mode::Regular,
            keep_host_header: false,
            keep_header_case: true,
            onboarding_host: Some(crate::onboarding::DEFAULT_HOST.to_owned()),
            workers: None,
        }
    }
}

/// What every connection task shares.
pub(crate) struct Shared<H> {
    pub hooks: Arc<H>,
    pub options: ProxyOptions,
    /// Pooled keep-alive connections to servers, HTTP or HTTPS (HTTP/2
    /// where the server offers it), reporting server-connect/disconnect:
    /// first the pool of threads that are not workers, then one per
    /// worker thread ([`Shared::upstream`]).
    upstreams: Vec<ServerPool>,
    /// Where the tunnels' own server connections report opening and closing.
    pub server_events: Arc<dyn ServerEvents>,
    /// How every connection to a server speaks HTTP (each route's).
    pub server_http: ServerHttp,
    /// Pools of connections through upstream proxies, one per proxy.
    pub via: ViaPools,
    /// How servers (and upstream proxies) are verified.
    pub trust: Upstream,
    /// Where flows go unless a plugin chooses (the mode's upstream).
    pub default_route: Route,
    /// Tunnels' server connections kept for the next tunnel to their
    /// server, in pools laid out as `upstreams` ([`Shared::links`]).
    links: Vec<LinkPool>,
    /// What the engine counts (timeouts), for `/metrics`.
    pub counters: Arc<Counters>,
}

impl<H: FlowHooks> Shared<H> {
    pub(crate) fn new(hooks: H, options: ProxyOptions) -> Self {
        let hooks = Arc::new(hooks);
        let server_events: Arc<dyn ServerEvents> = Arc::new(HookEvents(hooks.clone()));
        let trust = match &options.tls {
            Some(tls) => tls.upstream.clone(),
            None => Upstream::new(&UpstreamTrust::Verify),
        };
        let threads = options.workers.as_ref().map_or(0, |w| w.threads());
        let connectors = Connectors::new(&trust, options.connect_timeout, server_events.clone());
        // TCP, then TLS as long as a tunnel's server handshake may take.
        let handshake = options
            .tls
            .as_ref()
            .map_or(Duration::from_secs(10), |t| t.handshake_timeout);
        let setup = options.connect_timeout.saturating_add(handshake);
        let server_http = ServerHttp {
            h2_keepalive: options.timeouts.h2_keepalive,
            keep_header_case: options.keep_header_case,
        };
        let upstreams = per_thread(threads, |pools| {
            ServerPool::new(connectors.clone(), server_http, setup, pools)
        });
        let via = ViaPools::new(
            trust.clone(),
            options.connect_timeout,
            server_http,
            server_events.clone(),
        );
        Shared {
            hooks,
            default_route: options.mode.default_route(),
            options,
            upstreams,
            via,
            trust,
            server_events,
            server_http,
            links: per_thread(threads, LinkPool::one_of),
            counters: Arc::default(),
        }
    }
}

impl<H> Shared<H> {
    /// The pool of the calling thread: a worker's own, so that a flow's
    /// server connection is served by the flow's thread (its reads and
    /// writes wake the flow without a signal to another core; see
    /// [`crate::workers`]), as Envoy keeps a pool per worker.
    pub(crate) fn upstream(&self) -> &ServerPool {
        of_this_thread(&self.upstreams)
    }

    /// The tunnels' server connections kept by the calling thread: a
    /// connection's task runs on the thread that opened it, so a tunnel on
    /// another thread would signal across cores for every request on it
    /// (HTTP/2 through witm served ~0.5 such signals per request when the
    /// pool was shared; bench/README.md, the seventh pass).
    pub(crate) fn links(&self) -> &LinkPool {
        of_this_thread(&self.links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each worker thread takes its own pool, every time; any other thread
    /// the one left over.
    #[tokio::test]
    async fn each_worker_thread_takes_its_own_pool() {
        let workers = Arc::new(Workers::start(2).unwrap());
        let options = ProxyOptions {
            workers: Some(workers.clone()),
            ..ProxyOptions::default()
        };
        let shared = Arc::new(Shared::new(witm_flow::NoHooks, options));
        // Which server pool and which pool of tunnels' connections.
        let index_of = |shared: &Shared<witm_flow::NoHooks>| {
            let (upstream, links) = (shared.upstream(), shared.links());
            (
                shared
                    .upstreams
                    .iter()
                    .position(|pool| std::ptr::eq(pool, upstream)),
                shared
                    .links
                    .iter()
                    .position(|pool| std::ptr::eq(pool, links)),
            )
        };
        let mut taken = Vec::new();
        for n in [0, 1, 0, 1] {
            let shared = shared.clone();
            let on_worker = workers.spawn_on(n, async move { index_of(&shared) });
            taken.push(on_worker.await.unwrap());
        }
        let on = |n| (Some(n), Some(n));
        assert_eq!(taken, [on(1), on(2), on(1), on(2)]);
        assert_eq!(index_of(&shared), on(0));
        assert_eq!((shared.upstreams.len(), shared.links.len()), (3, 3));
    }
}
