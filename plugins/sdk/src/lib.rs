//! Write witm plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`]: it says which events it wants
//! in [`Plugin::events`] and writes only those; every other event has a
//! default that does nothing. [`export_plugin!`] makes it the component's
//! exports. The seed's add-header is:
//!
//! ```ignore
//! use witm_sdk::{Context, Events, Flow, Plugin};
//!
//! struct AddHeader;
//!
//! impl Plugin for AddHeader {
//!     fn events() -> Events {
//!         Events::RESPONSE
//!     }
//!
//!     fn response(_ctx: &Context, flow: &Flow) {
//!         if let Some(response) = flow.response() {
//!             let _ = response.headers().set("newheader", "foo");
//!         }
//!     }
//! }
//!
//! witm_sdk::export_plugin!(AddHeader);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`. The API
//! reference is the WIT (`wit/plugin.wit`): the types below are its Rust
//! face. Handles such as a request's `headers()` are released when they go
//! out of scope, so a plugin never leaks host resources.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "witm_sdk::bindings",
    });
}

pub use bindings::witm::plugin::types::{
    Cert, ClientConn, ClientHello, Context, Error, ErrorKind, Events, Flow, Headers, HostError,
    IncomingResponse, Level, OutgoingRequest, Request, Response, ServerConn, SetCookie,
    WebsocketMessage,
};

/// A GET of `url` with `headers`, waiting at most the plugin's
/// `outbound_timeout_ms`: the common case of [`Context::http_send`].
pub fn http_get(
    ctx: &Context,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<IncomingResponse, HostError> {
    ctx.http_send(&OutgoingRequest {
        method: "GET".into(),
        url: url.into(),
        headers: headers
            .iter()
            .map(|(name, value)| (String::from(*name), String::from(*value)))
            .collect(),
        body: Vec::new(),
        timeout_ms: 0,
    })
}

/// A witm plugin. Events run one at a time, so `static` state works as it
/// does in a mitmproxy script.
pub trait Plugin {
    /// The events this plugin wants, e.g. `Events::REQUEST | Events::RESPONSE`;
    /// the proxy never calls the others.
    fn events() -> Events;

    /// Called once, before any other event, with the arguments that followed
    /// the plugin's path on the command line. An error stops the proxy.
    fn start(_ctx: &Context, _args: Vec<String>) -> Result<(), String> {
        Ok(())
    }

    /// A client connected.
    fn client_connect(_ctx: &Context, _conn: &ClientConn) {}

    /// A request was received in full. Set a response to answer it yourself.
    fn request(_ctx: &Context, _flow: &Flow) {}

    /// A response was received in full.
    fn response(_ctx: &Context, _flow: &Flow) {}

    /// The flow failed; `flow.error()` says why.
    fn error(_ctx: &Context, _flow: &Flow) {}

    /// A client disconnected.
    fn client_disconnect(_ctx: &Context, _conn: &ClientConn) {}

    /// The proxy is shutting down.
    fn done(_ctx: &Context) {}

    /// A request's head arrived, before its body; `set_stream_body(true)` on the
    /// request streams the body instead of holding it.
    fn request_headers(_ctx: &Context, _flow: &Flow) {}

    /// A response's head arrived, before its body; `set_stream_body(true)` on
    /// the response streams the body instead of holding it.
    fn response_headers(_ctx: &Context, _flow: &Flow) {}

    /// A WebSocket message passes through the flow that opened it; change
    /// it, or `drop_message()`.
    fn websocket_message(_ctx: &Context, _flow: &Flow, _message: &WebsocketMessage) {}

    /// witm opened a connection to a server.
    fn server_connect(_ctx: &Context, _server: &ServerConn) {}

    /// A connection to a server closed.
    fn server_disconnect(_ctx: &Context, _server: &ServerConn) {}

    /// A client asked for a CONNECT tunnel; set a response to refuse it.
    fn http_connect(_ctx: &Context, _flow: &Flow) {}

    /// A client started TLS in a tunnel; `hello.set_ignore_connection(true)`
    /// passes it through uninspected.
    fn tls_clienthello(_ctx: &Context, _conn: &ClientConn, _hello: &ClientHello) {}

    /// The period set with `ctx.set_tick(ms)` passed (subscribe to
    /// `Events::TICK`).
    fn tick(_ctx: &Context) {}
}

/// Makes `$plugin` (a type implementing [`Plugin`]) this component's exports.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        struct __WitmPluginExports;

        impl $crate::bindings::Guest for __WitmPluginExports {
            fn start(
                ctx: &$crate::Context,
                args: $crate::__private::Vec<$crate::__private::String>,
            ) -> ::core::result::Result<$crate::Events, $crate::__private::String> {
                <$plugin as $crate::Plugin>::start(ctx, args)
                    .map(|()| <$plugin as $crate::Plugin>::events())
            }
            fn client_connect(ctx: &$crate::Context, conn: &$crate::ClientConn) {
                <$plugin as $crate::Plugin>::client_connect(ctx, conn)
            }
            fn request(ctx: &$crate::Context, flow: &$crate::Flow) {
                <$plugin as $crate::Plugin>::request(ctx, flow)
            }
            fn response(ctx: &$crate::Context, flow: &$crate::Flow) {
                <$plugin as $crate::Plugin>::response(ctx, flow)
            }
            fn error(ctx: &$crate::Context, flow: &$crate::Flow) {
                <$plugin as $crate::Plugin>::error(ctx, flow)
            }
            fn client_disconnect(ctx: &$crate::Context, conn: &$crate::ClientConn) {
                <$plugin as $crate::Plugin>::client_disconnect(ctx, conn)
            }
            fn done(ctx: &$crate::Context) {
                <$plugin as $crate::Plugin>::done(ctx)
            }
            fn request_headers(ctx: &$crate::Context, flow: &$crate::Flow) {
                <$plugin as $crate::Plugin>::request_headers(ctx, flow)
            }
            fn response_headers(ctx: &$crate::Context, flow: &$crate::Flow) {
                <$plugin as $crate::Plugin>::response_headers(ctx, flow)
            }
            fn websocket_message(
                ctx: &$crate::Context,
                flow: &$crate::Flow,
                message: &$crate::WebsocketMessage,
            ) {
                <$plugin as $crate::Plugin>::websocket_message(ctx, flow, message)
            }
            fn server_connect(ctx: &$crate::Context, server: &$crate::ServerConn) {
                <$plugin as $crate::Plugin>::server_connect(ctx, server)
            }
            fn server_disconnect(ctx: &$crate::Context, server: &$crate::ServerConn) {
                <$plugin as $crate::Plugin>::server_disconnect(ctx, server)
            }
            fn http_connect(ctx: &$crate::Context, flow: &$crate::Flow) {
                <$plugin as $crate::Plugin>::http_connect(ctx, flow)
            }
            fn tls_clienthello(
                ctx: &$crate::Context,
                conn: &$crate::ClientConn,
                hello: &$crate::ClientHello,
            ) {
                <$plugin as $crate::Plugin>::tls_clienthello(ctx, conn, hello)
            }
            fn tick(ctx: &$crate::Context) {
                <$plugin as $crate::Plugin>::tick(ctx)
            }
        }

        $crate::bindings::__export_plugin_world!(__WitmPluginExports with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use alloc::string::String;
    pub use alloc::vec::Vec;
}
