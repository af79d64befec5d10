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

use witm_flow::{ClientConn, ClientHello, Events, Flow, FlowHooks, ServerConn, WebSocketMessage};
use witm_plugin_host::{PluginChain, PluginRuntime};

use crate::saved::SavedFlowHooks;

/// One tenant: its name, its plugins (with their runtime, so a plugin's
/// `replay-request` goes through this tenant's listener), its recorder.
pub struct Tenant {
    /// `None` for the single implicit tenant of a configuration without any.
    pub name: Option<Arc<str>>,
    /// The plugin chain wrapped with recording and server replay.
    pub hooks: SavedFlowHooks<PluginChain>,
    /// The engine this tenant's plugins run on.
    pub runtime: Arc<PluginRuntime>,
}

/// The tenants of one listener, as the proxy's hooks.
pub struct TenantRouter {
    tenants: Vec<Arc<Tenant>>,
}

impl TenantRouter {
    /// Routes flows to `tenants` (at least one).
    pub fn new(tenants: Vec<Arc<Tenant>>) -> Self {
        Self { tenants }
    }

    /// The tenant of a flow: the only one, or the one the proxy tagged.
    fn of(&self, flow: &Flow) -> Option<&Tenant> {
        match self.tenants.as_slice() {
            [only] => Some(only),
            many => {
                let name = flow.tenant.as_deref()?;
                many.iter()
                    .map(|t| &**t)
                    .find(|t| t.name.as_deref() == Some(name))
            }
        }
    }

    /// The tenant of connection events: only on a one-tenant listener.
    fn sole(&self) -> Option<&Tenant> {
        match self.tenants.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }
}

impl FlowHooks for TenantRouter {
    fn subscriptions(&self) -> Events {
        self.tenants
            .iter()
            .fold(Events::NONE, |all, t| all | t.hooks.subscriptions())
    }
    async fn request_headers(&self, flow: &mut Flow) {
        if let Some(t) = self.of(flow) {
            t.hooks.request_headers(flow).await
        }
    }
    async fn request(&self, flow: &mut Flow) {
        if let Some(t) = self.of(flow) {
            t.hooks.request(flow).await
        }
    }
    async fn response_headers(&self, flow: &mut Flow) {
        if let Some(t) = self.of(flow) {
            t.hooks.response_headers(flow).await
        }
    }
    async fn response(&self, flow: &mut Flow) {
        if let Some(t) = self.of(flow) {
            t.hooks.response(flow).await
        }
    }
    async fn error(&self, flow: &mut Flow) {
        if let Some(t) = self.of(flow) {
            t.hooks.error(flow).await
        }
    }
    async fn http_connect(&self, flow: &mut Flow) {
        if let Some(t) = self.of(flow) {
            t.hooks.http_connect(flow).await
        }
    }
    async fn websocket_message(&self, flow: &mut Flow, message: &mut WebSocketMessage) {
        if let Some(t) = self.of(flow) {
            t.hooks.websocket_message(flow, message).await
        }
    }
    async fn client_connect(&self, conn: &Arc<ClientConn>) {
        if let Some(t) = self.sole() {
            t.hooks.client_connect(conn).await
        }
    }
    async fn client_disconnect(&self, conn: &Arc<ClientConn>) {
        if let Some(t) = self.sole() {
            t.hooks.client_disconnect(conn).await
        }
    }
    async fn tls_clienthello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
        if let Some(t) = self.sole() {
            t.hooks.tls_clienthello(conn, hello).await
        }
    }
    async fn server_connect(&self, server: &Arc<ServerConn>) {
        if let Some(t) = self.sole() {
            t.hooks.server_connect(server).await
        }
    }
    async fn server_disconnect(&self, server: &Arc<ServerConn>) {
        if let Some(t) = self.sole() {
            t.hooks.server_disconnect(server).await
        }
    }
}
