//! The plugins of one proxy, in command-line order, as the proxy's
//! [`FlowHooks`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use witm_flow::{ClientConn, ClientHello, Events, Flow, FlowHooks, ServerConn, WebSocketMessage};

use crate::plugin::{ConnEvent, Delivery, FlowEvent, LoadError, Plugin, PluginSpec};
use crate::runtime::PluginRuntime;

/// Plugins run in the order given; each sees the changes of the ones before.
pub struct PluginChain {
    plugins: Vec<Plugin>,
    /// Union of the plugins' subscriptions: what the proxy must deliver.
    subscriptions: Events,
}

impl PluginChain {
    /// Loads and starts every plugin, in order. The first that fails stops
    /// the loading with its error.
    pub async fn load(runtime: &PluginRuntime, specs: &[PluginSpec]) -> Result<Self, LoadError> {
        let mut plugins: Vec<Plugin> = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = unique_name(spec, &plugins);
            plugins.push(Plugin::load(runtime, spec, name).await?);
        }
        let subscriptions = plugins
            .iter()
            .fold(Events::NONE, |all, p| all | p.subscriptions());
        for plugin in &plugins {
            tracing::info!(
                plugin = plugin.name(),
                "loaded; events: {}",
                describe(plugin.subscriptions())
            );
        }
        Ok(Self {
            plugins,
            subscriptions,
        })
    }

    /// The plugins, in order.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// Runs every plugin's `done` and logs a summary of its calls.
    pub async fn done(&self) {
        for plugin in &self.plugins {
            plugin.done().await;
            let stats = plugin.stats();
            let calls = stats.calls.load(Ordering::Relaxed);
            let busy_ms = stats.busy_ns.load(Ordering::Relaxed) as f64 / 1e6;
            tracing::info!(
                plugin = plugin.name(),
                "{calls} calls, {} failed, {busy_ms:.1} ms in the plugin",
                stats.failures.load(Ordering::Relaxed)
            );
        }
    }

    async fn each_flow(&self, event: FlowEvent, wanted: Events, flow: &mut Flow) {
        for plugin in self
            .plugins
            .iter()
            .filter(|p| p.subscriptions().contains(wanted))
        {
            plugin.deliver(Delivery::Flow(event, flow)).await;
        }
    }

    async fn each_conn(&self, event: ConnEvent, wanted: Events, conn: &Arc<ClientConn>) {
        for plugin in self
            .plugins
            .iter()
            .filter(|p| p.subscriptions().contains(wanted))
        {
            plugin.deliver(Delivery::Conn(event, conn)).await;
        }
    }
}

/// The file stem, with "#2", "#3" … when the same file is loaded again.
fn unique_name(spec: &PluginSpec, loaded: &[Plugin]) -> String {
    let stem = spec
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let same = loaded
        .iter()
        .filter(|p| p.name() == stem || p.name().starts_with(&format!("{stem}#")))
        .count();
    if same == 0 {
        stem
    } else {
        format!("{stem}#{}", same + 1)
    }
}

/// "request, response" — for the log line at load.
fn describe(events: Events) -> String {
    let names = [
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
    let list: Vec<_> = names
        .iter()
        .filter(|(e, _)| events.contains(*e))
        .map(|(_, n)| *n)
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

impl FlowHooks for PluginChain {
    fn subscriptions(&self) -> Events {
        self.subscriptions
    }

    async fn client_connect(&self, conn: &Arc<ClientConn>) {
        self.each_conn(ConnEvent::Connect, Events::CLIENT_CONNECT, conn)
            .await
    }

    async fn request(&self, flow: &mut Flow) {
        self.each_flow(FlowEvent::Request, Events::REQUEST, flow)
            .await
    }

    async fn response(&self, flow: &mut Flow) {
        self.each_flow(FlowEvent::Response, Events::RESPONSE, flow)
            .await
    }

    async fn error(&self, flow: &mut Flow) {
        self.each_flow(FlowEvent::Error, Events::ERROR, flow).await
    }

    async fn client_disconnect(&self, conn: &Arc<ClientConn>) {
        self.each_conn(ConnEvent::Disconnect, Events::CLIENT_DISCONNECT, conn)
            .await
    }

    async fn request_headers(&self, flow: &mut Flow) {
        self.each_flow(FlowEvent::RequestHeaders, Events::REQUEST_HEADERS, flow)
            .await
    }

    async fn response_headers(&self, flow: &mut Flow) {
        self.each_flow(FlowEvent::ResponseHeaders, Events::RESPONSE_HEADERS, flow)
            .await
    }

    async fn websocket_message(&self, flow: &mut Flow, message: &mut WebSocketMessage) {
        for plugin in self
            .plugins
            .iter()
            .filter(|p| p.subscriptions().contains(Events::WEBSOCKET_MESSAGE))
        {
            if message.dropped {
                break;
            }
            plugin.deliver(Delivery::WebSocket(flow, message)).await;
        }
    }

    async fn server_connect(&self, server: &Arc<ServerConn>) {
        for plugin in self
            .plugins
            .iter()
            .filter(|p| p.subscriptions().contains(Events::SERVER_CONNECT))
        {
            plugin
                .deliver(Delivery::Server {
                    connected: true,
                    server,
                })
                .await;
        }
    }

    async fn server_disconnect(&self, server: &Arc<ServerConn>) {
        for plugin in self
            .plugins
            .iter()
            .filter(|p| p.subscriptions().contains(Events::SERVER_DISCONNECT))
        {
            plugin
                .deliver(Delivery::Server {
                    connected: false,
                    server,
                })
                .await;
        }
    }

    async fn http_connect(&self, flow: &mut Flow) {
        self.each_flow(FlowEvent::HttpConnect, Events::HTTP_CONNECT, flow)
            .await
    }

    async fn tls_clienthello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
        for plugin in self
            .plugins
            .iter()
            .filter(|p| p.subscriptions().contains(Events::TLS_CLIENTHELLO))
        {
            plugin.deliver(Delivery::ClientHello(conn, hello)).await;
        }
    }
}
