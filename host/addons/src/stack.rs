//! The one combinator: two hooks as one. `Stack::new(first, second)` calls
//! `first`, then `second`, for each event — each only if it subscribes to
//! that event — so `second` sees what `first` did (a response a plugin set,
//! a flow it killed). Deeper stacks nest: `Stack::new(a, Stack::new(b, c))`.

use std::sync::Arc;

use witm_flow::{
    ClientConn, ClientHello, Events, Flow, FlowCtx, FlowHooks, ServerConn, WebSocketMessage,
};

/// `first`, then `second`.
#[derive(Debug, Default)]
pub struct Stack<A, B> {
    first: A,
    second: B,
}

impl<A, B> Stack<A, B> {
    /// `first` runs before `second` for every event.
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }

    /// The hooks that run first.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The hooks that run second.
    pub fn second(&self) -> &B {
        &self.second
    }
}

/// Calls `$method($args)` on both layers that subscribe to `$event`.
macro_rules! both {
    ($self:ident, $event:expr, $method:ident($($arg:ident),*)) => {{
        if $self.first.subscriptions().contains($event) {
            $self.first.$method($($arg),*).await;
        }
        if $self.second.subscriptions().contains($event) {
            $self.second.$method($($arg),*).await;
        }
    }};
}

/// As `both!` for a flow event: each layer gets its half of the context.
macro_rules! both_with_ctx {
    ($self:ident, $event:expr, $ctx:ident, $method:ident($($arg:ident),*)) => {{
        let FlowCtx {
            tenant,
            state: (first, second),
        } = $ctx;
        if $self.first.subscriptions().contains($event) {
            let ctx = FlowCtx { tenant, state: first };
            $self.first.$method($($arg,)* ctx).await;
        }
        if $self.second.subscriptions().contains($event) {
            let ctx = FlowCtx { tenant, state: second };
            $self.second.$method($($arg,)* ctx).await;
        }
    }};
}

impl<A: FlowHooks, B: FlowHooks> FlowHooks for Stack<A, B> {
    type Ctx = (A::Ctx, B::Ctx);
    fn subscriptions(&self) -> Events {
        self.first.subscriptions() | self.second.subscriptions()
    }
    async fn client_connect(&self, conn: &Arc<ClientConn>) {
        both!(self, Events::CLIENT_CONNECT, client_connect(conn))
    }
    async fn request_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        both_with_ctx!(self, Events::REQUEST_HEADERS, ctx, request_headers(flow))
    }
    async fn request(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        both_with_ctx!(self, Events::REQUEST, ctx, request(flow))
    }
    async fn response_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        both_with_ctx!(self, Events::RESPONSE_HEADERS, ctx, response_headers(flow))
    }
    async fn response(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        both_with_ctx!(self, Events::RESPONSE, ctx, response(flow))
    }
    async fn error(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        both_with_ctx!(self, Events::ERROR, ctx, error(flow))
    }
    async fn client_disconnect(&self, conn: &Arc<ClientConn>) {
        both!(self, Events::CLIENT_DISCONNECT, client_disconnect(conn))
    }
    async fn http_connect(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        both_with_ctx!(self, Events::HTTP_CONNECT, ctx, http_connect(flow))
    }
    async fn tls_clienthello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
        both!(self, Events::TLS_CLIENTHELLO, tls_clienthello(conn, hello))
    }
    async fn websocket_message(
        &self,
        flow: &mut Flow,
        message: &mut WebSocketMessage,
        ctx: FlowCtx<'_, Self::Ctx>,
    ) {
        both_with_ctx!(
            self,
            Events::WEBSOCKET_MESSAGE,
            ctx,
            websocket_message(flow, message)
        )
    }
    async fn websocket_end(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        both_with_ctx!(self, Events::WEBSOCKET_END, ctx, websocket_end(flow))
    }
    async fn tcp_end(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        both_with_ctx!(self, Events::TCP_END, ctx, tcp_end(flow))
    }
    async fn server_connect(&self, server: &Arc<ServerConn>) {
        both!(self, Events::SERVER_CONNECT, server_connect(server))
    }
    async fn server_disconnect(&self, server: &Arc<ServerConn>) {
        both!(self, Events::SERVER_DISCONNECT, server_disconnect(server))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use witm_flow::testing::tflow;

    use super::*;

    /// Notes each `request` and `response` it gets under its name.
    struct Note {
        name: &'static str,
        events: Events,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl FlowHooks for Note {
        type Ctx = ();
        fn subscriptions(&self) -> Events {
            self.events
        }
        async fn request(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
            let before = flow.request.headers.get_all("x-seen").count();
            self.seen
                .lock()
                .unwrap()
                .push(format!("{} request after {before}", self.name));
            flow.request.headers.append("x-seen", self.name);
        }
        async fn response(&self, _flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
            self.seen
                .lock()
                .unwrap()
                .push(format!("{} response", self.name));
        }
    }

    #[tokio::test]
    async fn layers_run_in_order_and_only_for_their_events() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let note = |name, events| Note {
            name,
            events,
            seen: seen.clone(),
        };
        let stack = Stack::new(
            note("a", Events::REQUEST),
            Stack::new(note("b", Events::REQUEST | Events::RESPONSE), None::<Note>),
        );
        assert_eq!(stack.subscriptions(), Events::REQUEST | Events::RESPONSE);
        let mut flow = tflow("http://example.com/");
        let mut state = witm_flow::FlowState::default();
        stack.request(&mut flow, state.ctx()).await;
        stack.response(&mut flow, state.ctx()).await;
        assert_eq!(
            *seen.lock().unwrap(),
            ["a request after 0", "b request after 1", "b response"]
        );
    }
}
