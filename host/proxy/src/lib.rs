//! The proxy engine of witm: accepts client connections, forwards their
//! requests, and calls [`FlowHooks`] at each phase of a connection and a flow.
//!
//! Layout:
//! - [`server`]: listening, per-connection tasks, graceful shutdown;
//! - `forward`: one request, from the client to the server and back;
//! - `wire`: translation between hyper messages and flow messages
//!   (hop-by-hop headers, `content-length`);
//! - `tunnel`: CONNECT, as a raw tunnel (HTTPS is passed through untouched
//!   until interception lands);
//! - `flow_log`: the one line per flow on stdout.
//!
//! This crate never sees wasmtime: it knows plugins only through
//! [`FlowHooks`], so it can be tested with native hooks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod body;
mod flow_log;
mod forward;
pub mod server;
mod tunnel;
mod wire;

pub use server::{ProxyOptions, serve};
pub use witm_flow::FlowHooks;
