//! The flow model of witm, shared by the proxy, the plugin runtime and (later)
//! the flow files.
//!
//! Layout:
//! - [`headers`]: [`Headers`], mitmproxy's caseless ordered multi-dict;
//! - [`message`]: [`Request`], [`Response`] and their [`Body`]; the
//!   [`HttpMessage`] API common to both (decoded content, text);
//! - [`encoding`]: content codings (gzip, deflate, br, zstd) and charsets;
//! - [`flow`]: [`Flow`], [`ClientConn`], [`FlowError`];
//! - [`metadata`]: [`MetaValue`], a metadata value with its type;
//! - [`hooks`]: [`FlowHooks`], the one meeting point of the proxy engine and
//!   the plugin runtime, and [`Events`], what a hook subscribes to;
//! - [`route`]: [`Route`], where a flow's server connection goes (direct
//!   or through an upstream [`ProxyUrl`]), and a reverse proxy's [`ServerUrl`];
//! - [`websocket`], [`tcp`]: what WebSocket and TCP flows record;
//! - [`testing`]: flows in one line for tests (mitmproxy's `tflow`).
//!
//! This crate knows nothing of sockets, hyper or wasmtime, so the proxy can be
//! tested with a native hook and plugins can run over saved flows.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod encoding;
pub mod flow;
pub mod headers;
pub mod hooks;
pub mod message;
pub mod metadata;
pub mod outbound;
pub mod route;
pub mod tcp;
pub mod testing;
pub mod websocket;

pub use flow::{
    CertInfo, ClientConn, ClientHello, ClientTls, DEFAULT_MARKER, ErrorKind, Flow, FlowError,
    ReplaySide, ServerConn, WebSocketMessage,
};
pub use headers::Headers;
pub use hooks::{Events, FlowCtx, FlowHooks, FlowState, NoHooks, Replayer};
pub use message::{Body, ContentError, HttpMessage, Request, Response, SetCookie};
pub use metadata::MetaValue;
pub use outbound::{HttpSender, OutboundRequest, OutboundResponse};
pub use route::{ProxyUrl, Route, ServerUrl};
pub use tcp::TcpData;
pub use websocket::{RecordedMessage, WebSocketData};

/// Milliseconds since the Unix epoch: the unit of every timestamp in a flow.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
