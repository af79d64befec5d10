//! The proxy engine of witm: accepts client connections, forwards their
//! requests, and calls [`FlowHooks`] at each phase of a connection and a flow.
//!
//! Layout:
//! - [`server`]: listening, per-connection tasks, graceful shutdown;
//! - [`accept`]: pausing after a failed accept (out of file descriptors);
//! - `answers`: the responses witm makes itself, and the status of each
//!   failure's origin (400/502/504/500) decided in one place;
//! - `auth`: `Proxy-Authorization: Basic` and the tenant of each flow;
//! - `liveness`: which tasks still serve a client connection (tunnels,
//!   WebSocket relays), for `client-disconnect` and shutdown;
//! - `forward`: one request, from the client to the server and back;
//! - `wire`: translation between hyper messages and flow messages
//!   (hop-by-hop headers, `content-length`);
//! - `tunnel`: CONNECT, intercepted or as a raw tunnel;
//! - `intercept`: TLS interception and HTTP/1.1 or HTTP/2 inside a tunnel;
//! - [`tls`]: which tunnels are intercepted, with which CA and upstream trust;
//! - `cert_info`: the server certificate's facts for plugins;
//! - `websocket`: WebSocket relay, message by message;
//! - `server_events`: `server-connect`/`server-disconnect` for every server connection;
//! - `flow_log`: the one line per flow on stdout.
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
mod flow_log;
mod forward;
mod intercept;
mod liveness;
mod prefixed;
pub mod server;
mod server_events;
pub mod tls;
mod tunnel;
mod websocket;
mod wire;

pub use auth::Authenticator;
pub use flow_log::human_size;
pub use server::{Proxy, ProxyOptions, serve};
pub use tls::TlsOptions;
pub use witm_flow::FlowHooks;
