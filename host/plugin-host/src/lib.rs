//! Runs witm plugins — WebAssembly components of the `witm:plugin` world —
//! and offers a chain of them to the proxy as [`witm_flow::FlowHooks`].
//!
//! Layout:
//! - [`bindings`]: the one `bindgen!` of `wit/`;
//! - `resources`: what guest handles point to, and the host methods, one
//!   file per resource, implemented on the store's view (`state::HostView`);
//! - `budget`, `kv`, `log`, `limiter`, `replay`: what bounds what a plugin
//!   makes the host do — bytes held per instance, the key-value store, log
//!   volume, guest memory (all memories and tables), replays;
//! - [`settings`]: a plugin's capabilities, limits, failure policy, instances;
//! - `state`: the data of a plugin's store (table, WASI with what is granted, limits);
//! - [`runtime`]: the shared engine, linker and epoch ticker;
//! - `slots`: a plugin's instances, taken by whoever asks first when one is free;
//! - [`plugin`]: one plugin: its versions (hot reload), instances (one, or a
//!   stateless pool), event delivery with failures contained, back-off, counters;
//! - [`chain`]: plugins in order, as `FlowHooks`: the failure policy, reloads and
//!   reconfiguration, metrics.
//!
//! This crate never touches sockets or hyper: it can be driven from saved
//! flows as well as from the live proxy.
#![deny(missing_docs)]

pub mod bindings;
mod budget;
pub mod chain;
mod kv;
mod limiter;
mod log;
mod outbound;
pub mod plugin;
mod policy;
mod replay;
mod resources;
pub mod runtime;
pub mod settings;
mod slots;
mod state;
mod tick;
mod views;

pub use chain::{PluginChain, StagedChain, metrics_preamble};
pub use plugin::{LoadError, Pins, Plugin, PluginSpec, PluginStats};
pub use runtime::{PluginRuntime, RuntimeOptions};
pub use settings::{DirGrant, FailurePolicy, HostPattern, PluginSettings};
