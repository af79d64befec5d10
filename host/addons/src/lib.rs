//! Features of witm built on [`FlowHooks`](witm_flow::FlowHooks), one per
//! file, as mitmproxy's `addons/`:
//! - [`stack`]: the one combinator, two hooks run in order as one;
//! - [`save`]: finished flows to a flow file (`-w`);
//! - [`server_replay`]: answers from saved responses (`--server-replay`);
//! - [`client_replay`]: saved requests sent again (`--client-replay`);
//! - [`offline`]: a saved flow's events run with no network (`witm replay`);
//! - [`tenants`]: each flow to its tenant's hooks.
//!
//! The binary stacks them around the plugin chain:
//! `Stack::new(plugins, Stack::new(server_replay, save))` — the plugins see
//! a request first, server replay answers what they did not, and the file
//! gets what the client got. This crate never sees the proxy or wasmtime.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client_replay;
pub mod offline;
pub mod save;
pub mod server_replay;
pub mod stack;
pub mod tenants;

pub use save::Save;
pub use server_replay::{ServerReplay, Unmatched};
pub use stack::Stack;
pub use tenants::TenantRouter;
