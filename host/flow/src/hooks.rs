//! The phase API between the proxy engine and whatever scripts it.

use std::future::Future;
use std::sync::Arc;

use crate::flow::{ClientConn, ClientHello, Flow, ServerConn, WebSocketMessage};

/// A set of events, as a bit set. The plugin runtime reports the union of
/// its plugins' subscriptions, so the proxy skips (and never buffers a body
/// for) events nobody wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Events(u32);

impl Events {
    /// No events.
    pub const NONE: Events = Events(0);
    /// A client connected.
    pub const CLIENT_CONNECT: Events = Events(1 << 0);
    /// A request was received in full.
    pub const REQUEST: Events = Events(1 << 1);
    /// A response was received in full.
    pub const RESPONSE: Events = Events(1 << 2);
    /// A flow failed.
    pub const ERROR: Events = Events(1 << 3);
    /// A client disconnected.
    pub const CLIENT_DISCONNECT: Events = Events(1 << 4);
    /// The proxy shuts down.
    pub const DONE: Events = Events(1 << 5);
    /// A client asked for a CONNECT tunnel.
    pub const HTTP_CONNECT: Events = Events(1 << 6);
    /// A client started TLS in a tunnel.
    pub const TLS_CLIENTHELLO: Events = Events(1 << 7);
    /// A request's head arrived (before its body).
    pub const REQUEST_HEADERS: Events = Events(1 << 8);
    /// A response's head arrived (before its body).
    pub const RESPONSE_HEADERS: Events = Events(1 << 9);
    /// A WebSocket message passed through.
    pub const WEBSOCKET_MESSAGE: Events = Events(1 << 10);
    /// witm opened a connection to a server.
    pub const SERVER_CONNECT: Events = Events(1 << 11);
    /// A connection to a server closed.
    pub const SERVER_DISCONNECT: Events = Events(1 << 12);
    /// Every event.
    pub const ALL: Events = Events(0b1_1111_1111_1111);

    /// Every event, one per entry, with its WIT name, in bit order (the
    /// order of the WIT `events` flags): the one list logs, the plugin host
    /// and the docs name events from.
    pub const LIST: [(Events, &'static str); 13] = [
        (Events::CLIENT_CONNECT, "client-connect"),
        (Events::REQUEST, "request"),
        (Events::RESPONSE, "response"),
        (Events::ERROR, "error"),
        (Events::CLIENT_DISCONNECT, "client-disconnect"),
        (Events::DONE, "done"),
        (Events::HTTP_CONNECT, "http-connect"),
        (Events::TLS_CLIENTHELLO, "tls-clienthello"),
        (Events::REQUEST_HEADERS, "request-headers"),
        (Events::RESPONSE_HEADERS, "response-headers"),
        (Events::WEBSOCKET_MESSAGE, "websocket-message"),
        (Events::SERVER_CONNECT, "server-connect"),
        (Events::SERVER_DISCONNECT, "server-disconnect"),
    ];

    /// The WIT name of a single event ("request"); "" for none or several.
    pub fn name(self) -> &'static str {
        Self::LIST
            .iter()
            .find(|(e, _)| *e == self)
            .map_or("", |(_, name)| name)
    }

    /// The raw bits (bit order as in the WIT `events` flags).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Events from raw bits; unknown bits are dropped.
    pub const fn from_bits(bits: u32) -> Events {
        Events(bits & Self::ALL.0)
    }

    /// True when every event of `other` is in `self`.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    pub const fn union(self, other: Events) -> Events {
        Events(self.0 | other.0)
    }
}

/// "request, response" — "none" for no events; for logs.
impl std::fmt::Display for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names = Self::LIST
            .iter()
            .filter(|(e, _)| self.contains(*e))
            .map(|(_, name)| *name);
        match names.next() {
            None => f.write_str("none"),
            Some(first) => {
                f.write_str(first)?;
                names.try_for_each(|name| write!(f, ", {name}"))
            }
        }
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        self.union(rhs)
    }
}

/// What the proxy calls at each phase of a connection and a flow.
///
/// Every method has a default that does nothing, so an implementation writes
/// only the phases it cares about. The proxy calls a method only when
/// [`FlowHooks::subscriptions`] contains its event, so the defaults are never
/// even reached on the hot path. `start` and `done` are not here: they belong
/// to whoever owns the hooks' lifetime (the CLI), not to the proxy.
pub trait FlowHooks: Send + Sync + 'static {
    /// The events this hook wants.
    fn subscriptions(&self) -> Events;

    /// A client opened a connection.
    fn client_connect(&self, _conn: &Arc<ClientConn>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A request was received in full; setting `flow.response` answers the
    /// client without contacting the server.
    fn request(&self, _flow: &mut Flow) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A response was received in full.
    fn response(&self, _flow: &mut Flow) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The flow failed; `flow.error` is set.
    fn error(&self, _flow: &mut Flow) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A client connection closed.
    fn client_disconnect(&self, _conn: &Arc<ClientConn>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A request's head arrived; its body has not been read. Setting
    /// `flow.request.stream` streams the body instead of holding it.
    fn request_headers(&self, _flow: &mut Flow) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A response's head arrived; its body has not been read. Setting
    /// `response.stream` streams the body instead of holding it.
    fn response_headers(&self, _flow: &mut Flow) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A WebSocket message passes through the flow that opened the
    /// connection; the hook may change it or set `message.dropped`.
    fn websocket_message(
        &self,
        _flow: &mut Flow,
        _message: &mut WebSocketMessage,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// witm opened a connection to a server (before the first request on it).
    fn server_connect(&self, _server: &Arc<ServerConn>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A connection to a server closed.
    fn server_disconnect(&self, _server: &Arc<ServerConn>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A client asked for a CONNECT tunnel; `flow.request` is the CONNECT.
    /// Setting `flow.response` refuses the tunnel with that response.
    fn http_connect(&self, _flow: &mut Flow) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A client started TLS in a tunnel; setting `hello.ignore_connection`
    /// passes the connection through uninspected.
    fn tls_clienthello(
        &self,
        _conn: &Arc<ClientConn>,
        _hello: &mut ClientHello,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Sends a flow's request again through the proxy, with its events (the
/// proxy makes one; plugins reach it through their context). The future
/// resolves once the replayed response has been read; whoever calls it
/// runs it (and may bound, track or cancel it).
pub type Replayer =
    Arc<dyn Fn(Flow) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Hooks that subscribe to nothing: a plain proxy.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl FlowHooks for NoHooks {
    fn subscriptions(&self) -> Events {
        Events::NONE
    }
}

impl<H: FlowHooks> FlowHooks for Arc<H> {
    fn subscriptions(&self) -> Events {
        (**self).subscriptions()
    }
    fn client_connect(&self, conn: &Arc<ClientConn>) -> impl Future<Output = ()> + Send {
        (**self).client_connect(conn)
    }
    fn request(&self, flow: &mut Flow) -> impl Future<Output = ()> + Send {
        (**self).request(flow)
    }
    fn response(&self, flow: &mut Flow) -> impl Future<Output = ()> + Send {
        (**self).response(flow)
    }
    fn error(&self, flow: &mut Flow) -> impl Future<Output = ()> + Send {
        (**self).error(flow)
    }
    fn client_disconnect(&self, conn: &Arc<ClientConn>) -> impl Future<Output = ()> + Send {
        (**self).client_disconnect(conn)
    }
    fn http_connect(&self, flow: &mut Flow) -> impl Future<Output = ()> + Send {
        (**self).http_connect(flow)
    }
    fn request_headers(&self, flow: &mut Flow) -> impl Future<Output = ()> + Send {
        (**self).request_headers(flow)
    }
    fn server_connect(&self, server: &Arc<ServerConn>) -> impl Future<Output = ()> + Send {
        (**self).server_connect(server)
    }
    fn server_disconnect(&self, server: &Arc<ServerConn>) -> impl Future<Output = ()> + Send {
        (**self).server_disconnect(server)
    }
    fn websocket_message(
        &self,
        flow: &mut Flow,
        message: &mut WebSocketMessage,
    ) -> impl Future<Output = ()> + Send {
        (**self).websocket_message(flow, message)
    }
    fn response_headers(&self, flow: &mut Flow) -> impl Future<Output = ()> + Send {
        (**self).response_headers(flow)
    }
    fn tls_clienthello(
        &self,
        conn: &Arc<ClientConn>,
        hello: &mut ClientHello,
    ) -> impl Future<Output = ()> + Send {
        (**self).tls_clienthello(conn, hello)
    }
}

/// An addon that may be off: `None` subscribes to nothing.
impl<H: FlowHooks> FlowHooks for Option<H> {
    fn subscriptions(&self) -> Events {
        self.as_ref().map_or(Events::NONE, H::subscriptions)
    }
    async fn client_connect(&self, conn: &Arc<ClientConn>) {
        if let Some(h) = self {
            h.client_connect(conn).await
        }
    }
    async fn request(&self, flow: &mut Flow) {
        if let Some(h) = self {
            h.request(flow).await
        }
    }
    async fn response(&self, flow: &mut Flow) {
        if let Some(h) = self {
            h.response(flow).await
        }
    }
    async fn error(&self, flow: &mut Flow) {
        if let Some(h) = self {
            h.error(flow).await
        }
    }
    async fn client_disconnect(&self, conn: &Arc<ClientConn>) {
        if let Some(h) = self {
            h.client_disconnect(conn).await
        }
    }
    async fn http_connect(&self, flow: &mut Flow) {
        if let Some(h) = self {
            h.http_connect(flow).await
        }
    }
    async fn request_headers(&self, flow: &mut Flow) {
        if let Some(h) = self {
            h.request_headers(flow).await
        }
    }
    async fn server_connect(&self, server: &Arc<ServerConn>) {
        if let Some(h) = self {
            h.server_connect(server).await
        }
    }
    async fn server_disconnect(&self, server: &Arc<ServerConn>) {
        if let Some(h) = self {
            h.server_disconnect(server).await
        }
    }
    async fn websocket_message(&self, flow: &mut Flow, message: &mut WebSocketMessage) {
        if let Some(h) = self {
            h.websocket_message(flow, message).await
        }
    }
    async fn response_headers(&self, flow: &mut Flow) {
        if let Some(h) = self {
            h.response_headers(flow).await
        }
    }
    async fn tls_clienthello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
        if let Some(h) = self {
            h.tls_clienthello(conn, hello).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_covers_every_event_once_in_bit_order() {
        let union = Events::LIST
            .iter()
            .fold(Events::NONE, |all, (e, _)| all | *e);
        assert_eq!(union, Events::ALL);
        for (i, (event, _)) in Events::LIST.iter().enumerate() {
            assert_eq!(event.bits(), 1 << i);
        }
        assert_eq!(Events::REQUEST.name(), "request");
        assert_eq!((Events::REQUEST | Events::RESPONSE).name(), "");
        assert_eq!(
            (Events::RESPONSE | Events::REQUEST).to_string(),
            "request, response"
        );
        assert_eq!(Events::NONE.to_string(), "none");
    }
}
