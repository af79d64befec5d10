//! The proxy engine of witm: accepts client connections, forwards their
//! requests, and calls [`FlowHooks`] at each phase of a connection and a flow.
//!
//! Layout, from the top down (the only circle is the inherent one:
//! `connection` → `tunnel` → `intercept` → `connection`, a CONNECT's inner
//! connection served again, boxed once in `connection::serve`):
//! - [`server`]: listening, per-connection tasks, graceful shutdown;
//! - [`workers`]: the threads connections are served on, one runtime each;
//! - `connection`: serves one client connection (plain or TLS, h1 or h2)
//!   and says what each request is: a CONNECT or a request to forward;
//! - `tunnel`: CONNECT, intercepted or as a raw tunnel (`relay`);
//! - `intercept`: TLS interception of a tunnel;
//! - `opening`: what a tunnel carries, from who speaks first and how;
//! - `forward`: one request, from the client to the server and back;
//! - `websocket`: WebSocket relay, message by message;
//! - `respond`: the client's response from the flow; killed flows;
//! - `upstream`: a tunnel's own server connection and what its requests
//!   default to;
//! - `link_pool`: tunnels' server connections kept, per thread, for the next
//!   tunnel;
//! - `server_pool`: each thread's pool of server connections for the
//!   direct route, and the connector (TCP, TLS) pools share;
//! - [`mode`]: what a listener is (regular, reverse, upstream, SOCKS5);
//! - `dial`: a stream to a server along a flow's route (direct, or a
//!   CONNECT through an upstream proxy);
//! - `routes`: the connection pools through upstream proxies, one each;
//! - `reverse`: a reverse proxy's client connection (TLS or not);
//! - `socks5`: the SOCKS5 handshake of a `socks5` listener;
//! - `spawn`: the executor hyper's HTTP/2 tasks are spawned with (boxed);
//! - `shared`: the options, hooks and server pools every task shares;
//! - `answers`: the responses witm makes itself, and each failure's origin
//!   (its status is `ErrorKind::status`);
//! - [`onboarding`]: the page at `http://witm.it/` to download witm's CA
//!   certificate, answered before any plugin;
//! - `auth`: `Proxy-Authorization: Basic` and the tenant of each flow;
//! - `liveness`: which tasks still serve a client connection (tunnels,
//!   WebSocket relays), for `client-disconnect` and shutdown;
//! - [`accept`]: pausing after a failed accept (out of file descriptors);
//! - `wire`: translation between hyper messages and flow messages
//!   (hop-by-hop headers, `content-length`);
//! - `client_tls`: the client's side of a TLS handshake witm terminates;
//! - [`tls`]: which tunnels are intercepted, with which CA and upstream trust;
//! - `cert_info`: the server certificate's facts for plugins;
//! - `server_events`: `server-connect`/`server-disconnect` for every server
//!   connection;
//! - `flow_log`: the one line per flow on stdout;
//! - [`timeouts`]: how long witm waits on either side, and what enforces it;
//! - [`counters`]: what the engine counts for `/metrics`;
//! - `held_budget`: one budget for the bodies all flows hold for plugins.
//!
//! This crate never sees wasmtime: it knows plugins only through
//! [`FlowHooks`], so it can be tested with native hooks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accept;
mod answers;
mod auth;
mod body;
mod cert_info;
mod client_tls;
mod connection;
pub mod counters;
mod dial;
mod flow_log;
mod forward;
mod held_budget;
mod intercept;
mod link_pool;
mod liveness;
pub mod mode;
pub mod onboarding;
mod opening;
pub mod outbound;
mod prefixed;
mod relay;
mod respond;
mod reverse;
mod routes;
pub mod server;
mod server_events;
mod server_http;
mod server_pool;
mod shared;
mod socks5;
mod spawn;
mod target;
mod tcp_flow;
pub mod timeouts;
pub mod tls;
mod tunnel;
mod upstream;
pub mod websocket;
mod wire;
mod wire_heads;
pub mod workers;

pub use auth::Authenticator;
pub use counters::Counters;
pub use flow_log::human_size;
pub use mode::Mode;
pub use server::{Proxy, ProxyOptions, serve};
pub use timeouts::Timeouts;
pub use tls::TlsOptions;
pub use websocket::WebSocketLimits;
pub use witm_flow::FlowHooks;
pub use workers::Workers;
