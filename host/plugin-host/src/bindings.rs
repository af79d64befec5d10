//! The one `bindgen!` of the `witm:plugin` world.
//!
//! Imports are `trappable` so that a host method can end the call when the
//! guest misuses a handle (a bug in the plugin) or goes past a budget where
//! the WIT has no error to return, while ordinary failures are `result`s the
//! guest can handle. Exports are `async` so a plugin call yields
//! to tokio at each epoch tick instead of holding a worker thread.
#![allow(missing_docs)] // generated code; the WIT doc comments are the reference

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "plugin",
        // Host calls that can take long are async, so they wait without
        // holding a worker: body codings (off-thread, to the deadline),
        // replays (a name lookup) and outbound HTTP.
        imports: {
            "witm:plugin/types.[method]request.content": async | trappable,
            "witm:plugin/types.[method]request.set-content": async | trappable,
            "witm:plugin/types.[method]request.text": async | trappable,
            "witm:plugin/types.[method]request.set-text": async | trappable,
            "witm:plugin/types.[method]response.content": async | trappable,
            "witm:plugin/types.[method]response.set-content": async | trappable,
            "witm:plugin/types.[method]response.text": async | trappable,
            "witm:plugin/types.[method]response.set-text": async | trappable,
            "witm:plugin/types.[method]context.replay-request": async | trappable,
            "witm:plugin/types.[method]context.http-send": async | trappable,
            default: trappable,
        },
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
