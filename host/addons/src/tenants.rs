//! Tenants: each has its own plugin chain (with its own limits) and flow
//! file, and sees only its own flows. A listener serves one tenant (chosen
//! by port) or several told apart by their `Proxy-Authorization`
//! credentials; the proxy tags each flow with its tenant and this router
//! hands the flow to that tenant's hooks only.
//!
//! Connection events (`client-connect`, `tls-clienthello`, `server-*`)
//! happen before a client has said who it is, so on a listener shared by
//! several tenants they reach no plugin; on a tenant's own listener they
//! reach its plugins as usual.

use std::sync::Arc;

use witm_flow::{
    ClientConn, ClientHello, Events, Flow, FlowCtx, FlowHooks, ServerConn, WebSocketMessage,
};

/// The tenants of one listener, as the proxy's hooks: each tenant's name
/// (`None` for the single implicit tenant of a configuration without any)
/// and its hooks.
pub struct TenantRouter<H> {
    tenants: Vec<(Option<Arc<str>>, H)>,
}

impl<H: FlowHooks> TenantRouter<H> {
    /// Routes flows to `tenants` (at least one).
    pub fn new(tenants: Vec<(Option<Arc<str>>, H)>) -> Self {
        Self { tenants }
    }

    /// The hooks of a flow's tenant: the only one, or the one the proxy
    /// gave the flow's context.
    fn of(&self, tenant: Option<&Arc<str>>) -> Option<&H> {
        match self.tenants.as_slice() {
            [(_, only)] => Some(only),
            many => {
                let name = tenant.map(|t| &**t)?;
                many.iter()
                    .find(|(tenant, _)| tenant.as_deref() == Some(name))
                    .map(|(_, hooks)| hooks)
            }
        }
    }

    /// The tenant of connection events: only on a one-tenant listener.
    fn sole(&self) -> Option<&H> {
        match self.tenants.as_slice() {
            [(_, only)] => Some(only),
            _ => None,
        }
    }

    /// The hooks of every tenant, in order.
    fn all(&self) -> impl Iterator<Item = &H> {
        self.tenants.iter().map(|(_, hooks)| hooks)
    }
}

impl<H: FlowHooks> FlowHooks for TenantRouter<H> {
    type Ctx = H::Ctx;
    fn subscriptions(&self) -> Events {
        self.all()
            .fold(Events::NONE, |all, t| all | t.subscriptions())
    }
    async fn request_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        if let Some(t) = self.of(ctx.tenant) {
            t.request_headers(flow, ctx).await
        }
    }
    async fn request(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        if let Some(t) = self.of(ctx.tenant) {
            t.request(flow, ctx).await
        }
    }
    async fn response_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        if let Some(t) = self.of(ctx.tenant) {
            t.response_headers(flow, ctx).await
        }
    }
    async fn response(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        if let Some(t) = self.of(ctx.tenant) {
            t.response(flow, ctx).await
        }
    }
    async fn error(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        if let Some(t) = self.of(ctx.tenant) {
            t.error(flow, ctx).await
        }
    }
    async fn http_connect(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        if let Some(t) = self.of(ctx.tenant) {
            t.http_connect(flow, ctx).await
        }
    }
    async fn websocket_end(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        if let Some(t) = self.of(ctx.tenant) {
            t.websocket_end(flow, ctx).await
        }
    }
    async fn tcp_end(&self, flow: &mut Flow, ctx: FlowCtx<'_, Self::Ctx>) {
        if let Some(t) = self.of(ctx.tenant) {
            t.tcp_end(flow, ctx).await
        }
    }
    async fn websocket_message(
        &self,
        flow: &mut Flow,
        message: &mut WebSocketMessage,
        ctx: FlowCtx<'_, Self::Ctx>,
    ) {
        if let Some(t) = self.of(ctx.tenant) {
            t.websocket_message(flow, message, ctx).await
        }
    }
    async fn client_connect(&self, conn: &Arc<ClientConn>) {
        if let Some(t) = self.sole() {
            t.client_connect(conn).await
        }
    }
    async fn client_disconnect(&self, conn: &Arc<ClientConn>) {
        if let Some(t) = self.sole() {
            t.client_disconnect(conn).await
        }
    }
    async fn tls_clienthello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
        if let Some(t) = self.sole() {
            t.tls_clienthello(conn, hello).await
        }
    }
    async fn server_connect(&self, server: &Arc<ServerConn>) {
        if let Some(t) = self.sole() {
            t.server_connect(server).await
        }
    }
    async fn server_disconnect(&self, server: &Arc<ServerConn>) {
        if let Some(t) = self.sole() {
            t.server_disconnect(server).await
        }
    }
}

#[cfg(test)]
mod tests {
    use witm_flow::testing::tflow;

    use super::*;

    /// Tags each request it gets with its name.
    struct Tag(&'static str);

    impl FlowHooks for Tag {
        type Ctx = ();
        fn subscriptions(&self) -> Events {
            Events::REQUEST | Events::CLIENT_CONNECT
        }
        async fn request(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
            flow.request.headers.append("x-tenant", self.0);
        }
    }

    async fn tenant_of(router: &TenantRouter<Tag>, tenant: Option<&str>) -> Option<String> {
        let mut flow = tflow("http://example.com/");
        let mut state = witm_flow::FlowState::<()>::new(tenant.map(Arc::from));
        router.request(&mut flow, state.ctx()).await;
        flow.request.headers.get("x-tenant")
    }

    #[tokio::test]
    async fn flows_reach_their_tenant_only() {
        let router = TenantRouter::new(vec![
            (Some(Arc::from("a")), Tag("a")),
            (Some(Arc::from("b")), Tag("b")),
        ]);
        assert_eq!(tenant_of(&router, Some("b")).await.as_deref(), Some("b"));
        assert_eq!(tenant_of(&router, Some("a")).await.as_deref(), Some("a"));
        assert_eq!(tenant_of(&router, Some("c")).await, None);
        assert_eq!(tenant_of(&router, None).await, None);
        let sole = TenantRouter::new(vec![(None, Tag("only"))]);
        assert_eq!(tenant_of(&sole, None).await.as_deref(), Some("only"));
    }
}
