//! The one `bindgen!` of the `witm:plugin` world.
//!
//! Imports are `trappable` so that a host method can end the call when the
//! guest misuses a handle (a bug in the plugin) while ordinary failures are
//! `result`s the guest can handle. Exports are `async` so a plugin call yields
//! to tokio at each epoch tick instead of holding a worker thread.
#![allow(missing_docs)] // generated code; the WIT doc comments are the reference

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "plugin",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "witm:plugin/types.flow": crate::resources::FlowEntry,
            "witm:plugin/types.request": crate::resources::RequestHandle,
            "witm:plugin/types.response": crate::resources::ResponseHandle,
            "witm:plugin/types.headers": crate::resources::HeadersHandle,
            "witm:plugin/types.client-conn": crate::resources::ClientConnHandle,
            "witm:plugin/types.client-hello": crate::resources::ClientHelloEntry,
            "witm:plugin/types.server-conn": crate::resources::ServerConnHandle,
            "witm:plugin/types.websocket-message": crate::resources::WebSocketMessageEntry,
            "witm:plugin/types.context": crate::resources::ContextHandle,
        },
    });
}

pub use generated::witm::plugin::types;
pub use generated::{Plugin as PluginBindings, PluginPre as PluginBindingsPre};
