//! A request a plugin sends itself (`context.http-send`), as the plugin
//! runtime hands it to the proxy: already checked against the plugin's
//! policy and pinned to the address that was checked, so the proxy connects
//! there and nowhere else (no second name lookup to rebind).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

/// One outbound HTTP/1.1 request.
#[derive(Clone, Debug)]
pub struct OutboundRequest {
    /// The method, e.g. "GET".
    pub method: String,
    /// "http" or "https".
    pub scheme: String,
    /// The host as the URL names it: the `Host` header and the TLS server
    /// name.
    pub host: String,
    /// The URL's port.
    pub port: u16,
    /// Path and query, starting with "/".
    pub path: String,
    /// Headers as the plugin gave them (`Host` is set from `host`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Where to connect: an address the policy allowed for `host`.
    pub connect_to: SocketAddr,
    /// Longest response body; a longer one fails the call.
    pub max_response_bytes: usize,
}

/// The response to an [`OutboundRequest`].
#[derive(Clone, Debug, Default)]
pub struct OutboundResponse {
    /// The status code.
    pub status: u16,
    /// Headers in wire order.
    pub headers: Vec<(String, String)>,
    /// The whole body (decoded from chunked; content codings left as sent).
    pub body: Bytes,
}

/// Sends an [`OutboundRequest`] (the proxy makes one; plugins reach it
/// through their context). Fails with a message naming what went wrong
/// (refused, TLS, malformed or oversized response); whoever calls it bounds
/// its time.
pub type HttpSender = Arc<
    dyn Fn(
            OutboundRequest,
        ) -> Pin<Box<dyn Future<Output = Result<OutboundResponse, String>> + Send>>
        + Send
        + Sync,
>;
