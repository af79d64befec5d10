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
    /// A plugin's periodic timer (plugins only: the proxy never sends it).
    pub const TICK: Events = Events(1 << 13);
    /// A WebSocket closed (host only: the flow is complete, e.g. to save).
    pub const WEBSOCKET_END: Events = Events(1 << 14);
    /// A TCP flow ended (host only: the flow is complete, e.g. to save).
    pub const TCP_END: Events = Events(1 << 15);
    /// Every event.
    pub const ALL: Events = Events(0b1111_1111_1111_1111);

    /// Every event, one per entry, with its WIT name, in bit order (the
    /// order of the WIT `events` flags): the one list logs, the plugin host
    /// and the docs name events from.
    pub const LIST: [(Events, &'static str); 16] = [
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
        (Events::TICK, "tick"),
        (Events::WEBSOCKET_END, "websocket-end"),
        (Events::TCP_END, "tcp-end"),
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

    /// True when one of these events is of a flow (an HTTP request and its
    /// response, or its WebSocket): only then does the proxy make flows.
    pub const fn wants_flows(self) -> bool {
        const FLOW_EVENTS: Events = Events::REQUEST_HEADERS
            .union(Events::REQUEST)
            .union(Events::RESPONSE_HEADERS)
            .union(Events::RESPONSE)
            .union(Events::ERROR)
            .union(Events::WEBSOCKET_MESSAGE)
            .union(Events::WEBSOCKET_END);
        self.0 & FLOW_EVENTS.0 != 0
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
///
/// Flow events get the flow's context ([`FlowCtx`]): its tenant and what
/// these hooks keep for it ([`FlowHooks::Ctx`], Pingora's per-request
/// `CTX`), made when the flow starts and dropped with it — so the flow model
/// stays plain data.
pub trait FlowHooks: Send + Sync + 'static {
    /// What these hooks keep for one flow beside the flow itself (the plugin
    /// host: the plugin versions the flow is pinned to).
    type Ctx: Default + Send + 'static;

    /// The events this hook wants.
    fn subscriptions(&self) -> Events;

    /// A client opened a connection.
    fn client_connect(&self, _conn: &Arc<ClientConn>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A request was received in full; setting `flow.response` answers the
    /// client without contacting the server.
    fn request(
        &self,
        _flow: &mut Flow,
        _ctx: FlowCtx<'_, Self::Ctx>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A response was received in full.
    fn response(
        &self,
        _flow: &mut Flow,
        _ctx: FlowCtx<'_, Self::Ctx>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The flow failed; `flow.error` is set.
    fn error(
        &self,
        _flow: &mut Flow,
        _ctx: FlowCtx<'_, Self::Ctx>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A client connection closed.
    fn client_disconnect(&self, _conn: &Arc<ClientConn>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A request's head arrived; its body has not been read. Setting
    /// `flow.request.stream` streams the body instead of holding it.
    fn request_headers(
        &self,
        _flow: &mut Flow,
        _ctx: FlowCtx<'_, Self::Ctx>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A response's head arrived; its body has not been read. Setting
    /// `response.stream` streams the body instead of holding it.
    fn response_headers(
        &self,
        _flow: &mut Flow,
        _ctx: FlowCtx<'_, Self::Ctx>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A WebSocket message passes through the flow that opened the
    /// connection; the hook may change it or set `message.dropped`.
    fn websocket_message(
        &self,
        _flow: &mut Flow,
        _message: &mut WebSocketMessage,
        _ctx: FlowCtx<'_, Self::Ctx>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The WebSocket a flow opened has closed (or could not be set up):
    /// `flow.websocket` holds its messages and close. The flow is complete.
    fn websocket_end(
        &self,
        _flow: &mut Flow,
        _ctx: FlowCtx<'_, Self::Ctx>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A tunnel that carried neither TLS nor HTTP has closed: `flow` is its
    /// TCP flow (`flow.tcp` holds what passed). The flow is complete.
    fn tcp_end(
        &self,
        _flow: &mut Flow,
        _ctx: FlowCtx<'_, Self::Ctx>,
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
    fn http_connect(
        &self,
        _flow: &mut Flow,
        _ctx: FlowCtx<'_, Self::Ctx>,
    ) -> impl Future<Output = ()> + Send {
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

/// One flow's context as its events see it: the tenant and the hooks' own
/// state for the flow, borrowed from a [`FlowState`].
#[derive(Debug)]
pub struct FlowCtx<'a, C> {
    /// The tenant whose credentials or listener the flow came through
    /// (`None` for a proxy without tenants).
    pub tenant: Option<&'a Arc<str>>,
    /// What the hooks keep for the flow.
    pub state: &'a mut C,
}

impl<C> FlowCtx<'_, C> {
    /// The same context for another call.
    pub fn reborrow(&mut self) -> FlowCtx<'_, C> {
        FlowCtx {
            tenant: self.tenant,
            state: self.state,
        }
    }
}

/// One flow's context, owned where the flow is (the proxy's task for it).
#[derive(Debug, Default)]
pub struct FlowState<C> {
    /// The flow's tenant.
    pub tenant: Option<Arc<str>>,
    /// The hooks' state for the flow.
    pub state: C,
}

impl<C: Default> FlowState<C> {
    /// A fresh context for a flow of `tenant`.
    pub fn new(tenant: Option<Arc<str>>) -> Self {
        Self {
            tenant,
            state: C::default(),
        }
    }
}

impl<C> FlowState<C> {
    /// The context to hand to an event.
    pub fn ctx(&mut self) -> FlowCtx<'_, C> {
        FlowCtx {
            tenant: self.tenant.as_ref(),
            state: &mut self.state,
        }
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
    type Ctx = ();
    fn subscriptions(&self) -> Events {
        Events::NONE
    }
}

/// Calls `$method` on the hooks `$inner` reaches (`Arc`'s or `Option`'s),
/// for every method of the trait.
macro_rules! forward_hooks {
    ($inner:ident => $reach:path) => {
        async fn client_connect(&self, conn: &Arc<ClientConn>) {
            if let Some($inner) = $reach(self) {
                $inner.client_connect(conn).await
            }
        }
        async fn request(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
            if let Some($inner) = $reach(self) {
                $inner.request(flow, ctx).await
            }
        }
        async fn response(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
            if let Some($inner) = $reach(self) {
                $inner.response(flow, ctx).await
            }
        }
        async fn error(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
            if let Some($inner) = $reach(self) {
                $inner.error(flow, ctx).await
            }
        }
        async fn client_disconnect(&self, conn: &Arc<ClientConn>) {
            if let Some($inner) = $reach(self) {
                $inner.client_disconnect(conn).await
            }
        }
        async fn http_connect(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
            if let Some($inner) = $reach(self) {
                $inner.http_connect(flow, ctx).await
            }
        }
        async fn request_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
            if let Some($inner) = $reach(self) {
                $inner.request_headers(flow, ctx).await
            }
        }
        async fn server_connect(&self, server: &Arc<ServerConn>) {
            if let Some($inner) = $reach(self) {
                $inner.server_connect(server).await
            }
        }
        async fn server_disconnect(&self, server: &Arc<ServerConn>) {
            if let Some($inner) = $reach(self) {
                $inner.server_disconnect(server).await
            }
        }
        async fn websocket_message(
            &self,
            flow: &mut Flow,
            message: &mut WebSocketMessage,
            ctx: FlowCtx<'_, Self::Ctx>,
        ) {
            if let Some($inner) = $reach(self) {
                $inner.websocket_message(flow, message, ctx).await
            }
        }
        async fn response_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
            if let Some($inner) = $reach(self) {
                $inner.response_headers(flow, ctx).await
            }
        }
        async fn websocket_end(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
            if let Some($inner) = $reach(self) {
                $inner.websocket_end(flow, ctx).await
            }
        }
        async fn tcp_end(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
            if let Some($inner) = $reach(self) {
                $inner.tcp_end(flow, ctx).await
            }
        }
        async fn tls_clienthello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
            if let Some($inner) = $reach(self) {
                $inner.tls_clienthello(conn, hello).await
            }
        }
    };
}

fn arc_inner<H>(hooks: &Arc<H>) -> Option<&H> {
    Some(hooks)
}

impl<H: FlowHooks> FlowHooks for Arc<H> {
    type Ctx = H::Ctx;
    fn subscriptions(&self) -> Events {
        (**self).subscriptions()
    }
    forward_hooks!(h => arc_inner);
}

/// An addon that may be off: `None` subscribes to nothing.
impl<H: FlowHooks> FlowHooks for Option<H> {
    type Ctx = H::Ctx;
    fn subscriptions(&self) -> Events {
        self.as_ref().map_or(Events::NONE, H::subscriptions)
    }
    forward_hooks!(h => Option::as_ref);
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
