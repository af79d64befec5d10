//! The plugins of one proxy, in command-line order, as the proxy's
//! [`FlowHooks`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use witm_flow::{
    ClientConn, ClientHello, ErrorKind, Events, Flow, FlowCtx, FlowHooks, Headers, Response,
    ServerConn, WebSocketMessage,
};

use crate::plugin::{
    ConnEvent, Delivery, FlowEvent, LoadError, Outcome, Pins, Plugin, PluginSpec, PluginStats,
    StagedVersion,
};
use crate::runtime::PluginRuntime;
use crate::settings::{FailurePolicy, PluginSettings};

/// A configuration loaded by [`PluginChain::stage`], not yet serving.
pub struct StagedChain {
    plugins: Vec<Arc<Plugin>>,
    versions: Vec<(Arc<Plugin>, StagedVersion)>,
    removed: Vec<Arc<Plugin>>,
}

/// Plugins run in the order given; each sees the changes of the ones before.
pub struct PluginChain {
    /// Swapped whole when the configuration adds or removes plugins; each
    /// event runs over the list as it was when the event began.
    plugins: std::sync::RwLock<Arc<[Arc<Plugin>]>>,
    /// The union of the plugins' subscriptions, read without the lock (the
    /// proxy asks several times per flow); recomputed by [`Self::refresh`]
    /// whenever a plugin or the list changes.
    subscriptions: AtomicU32,
}

impl PluginChain {
    /// Loads and starts every plugin, in order. The first that fails stops
    /// the loading with its error.
    pub async fn load(runtime: &PluginRuntime, specs: &[PluginSpec]) -> Result<Self, LoadError> {
        let mut plugins: Vec<Arc<Plugin>> = Vec::with_capacity(specs.len());
        for spec in specs {
            plugins.push(load_one(runtime, spec, &plugins).await?);
        }
        let chain = Self {
            plugins: std::sync::RwLock::new(plugins.into()),
            subscriptions: AtomicU32::new(0),
        };
        chain.refresh();
        Ok(chain)
    }

    /// Recomputes the union of subscriptions after a change.
    fn refresh(&self) {
        let all = self
            .plugins()
            .iter()
            .fold(Events::NONE, |all, p| all | p.subscriptions());
        self.subscriptions.store(all.bits(), Ordering::Relaxed);
    }

    /// The plugins, in order, as they are now.
    pub fn plugins(&self) -> Arc<[Arc<Plugin>]> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes the chain `specs` (a configuration read again): a plugin whose
    /// file is still there keeps its instances and key-value store (and is
    /// reloaded if its arguments or settings changed), a new one is loaded,
    /// a removed one gets its `done`. If any plugin fails to load, the chain
    /// stays as it was.
    pub async fn reconfigure(&self, runtime: &PluginRuntime, specs: &[PluginSpec]) {
        match self.stage(runtime, specs).await {
            Ok(staged) => self.apply(staged).await,
            Err(e) => tracing::error!("plugins not changed: {e}"),
        }
    }

    /// Loads and starts everything `specs` needs — new plugins, new
    /// versions of changed ones — without changing what serves: with
    /// several chains (tenants), every chain is staged before any is
    /// applied, so one failure changes nothing anywhere. Plugins or
    /// versions staged but never applied are dropped without serving (and
    /// without `done`).
    pub async fn stage(
        &self,
        runtime: &PluginRuntime,
        specs: &[PluginSpec],
    ) -> Result<StagedChain, String> {
        let old = self.plugins();
        let mut kept = vec![false; old.len()];
        let mut plugins: Vec<Arc<Plugin>> = Vec::with_capacity(specs.len());
        let mut versions = Vec::new();
        for spec in specs {
            let same_file = (0..old.len()).find(|&i| !kept[i] && old[i].spec().path == spec.path);
            match same_file {
                Some(i) => {
                    kept[i] = true;
                    if old[i].spec() != *spec {
                        let staged = old[i]
                            .stage(runtime, Some(spec.clone()))
                            .await
                            .map_err(|e| format!("{}: {e}", old[i].name()))?;
                        versions.push((old[i].clone(), staged));
                    }
                    plugins.push(old[i].clone());
                }
                None => plugins.push(
                    load_one(runtime, spec, &plugins)
                        .await
                        .map_err(|e| e.to_string())?,
                ),
            }
        }
        let removed = old
            .iter()
            .zip(kept)
            .filter(|(_, kept)| !kept)
            .map(|(p, _)| p.clone())
            .collect();
        Ok(StagedChain {
            plugins,
            versions,
            removed,
        })
    }

    /// Makes a staged configuration the chain: new versions current, the
    /// list swapped, removed plugins' `done` run.
    pub async fn apply(&self, staged: StagedChain) {
        for (plugin, version) in staged.versions {
            let number = plugin.install(version);
            tracing::info!(
                plugin = plugin.name(),
                "reloaded: version {number} serves new flows; events: {}",
                plugin.subscriptions()
            );
        }
        let names: Vec<&str> = staged.plugins.iter().map(|p| p.name()).collect();
        tracing::info!(
            "plugins now: {}",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        );
        *self.plugins.write().unwrap_or_else(|e| e.into_inner()) = staged.plugins.into();
        self.refresh();
        for plugin in staged.removed {
            plugin.done().await;
            tracing::info!(
                plugin = plugin.name(),
                "removed; {}",
                summary(plugin.stats())
            );
        }
    }

    /// Reloads every plugin whose file changed since it was loaded: new
    /// flows use the new version, flows in flight finish on the old one; a
    /// new version that fails to compile or start leaves the old one.
    pub async fn reload_changed(&self, runtime: &PluginRuntime) {
        for plugin in self.plugins().iter() {
            if plugin.file_changed() {
                self.reload_one(runtime, plugin, None).await;
            }
        }
    }

    /// Loads `plugin` again, from `spec` if given (new settings), and logs
    /// the outcome.
    pub async fn reload_one(
        &self,
        runtime: &PluginRuntime,
        plugin: &Plugin,
        spec: Option<PluginSpec>,
    ) {
        match plugin.reload(runtime, spec).await {
            Ok(version) => {
                self.refresh();
                tracing::info!(
                    plugin = plugin.name(),
                    "reloaded: version {version} serves new flows; events: {}",
                    plugin.subscriptions()
                )
            }
            Err(e) => tracing::error!(
                plugin = plugin.name(),
                "new version not loaded, the old one keeps running: {e}"
            ),
        }
    }

    /// Runs every plugin's `done` and logs a summary of its calls.
    pub async fn done(&self) {
        for plugin in self.plugins().iter() {
            plugin.done().await;
            tracing::info!(plugin = plugin.name(), "{}", summary(plugin.stats()));
        }
    }

    /// Per-plugin counters in Prometheus text format, labelled with the
    /// plugin (and `tenant`, when given). Without the `# HELP`/`# TYPE`
    /// lines, which [`metrics_preamble`] writes once.
    pub fn metrics(&self, tenant: Option<&str>) -> String {
        let mut out = String::new();
        for plugin in self.plugins().iter() {
            let stats = plugin.stats();
            let labels = match tenant {
                Some(t) => format!("plugin=\"{}\",tenant=\"{}\"", plugin.name(), t),
                None => format!("plugin=\"{}\"", plugin.name()),
            };
            for (name, value) in counters(stats) {
                out += &format!("witm_plugin_{name}{{{labels}}} {value}\n");
            }
        }
        out
    }

    async fn each_flow(
        &self,
        event: FlowEvent,
        wanted: Events,
        flow: &mut Flow,
        ctx: FlowCtx<'_, Pins>,
    ) {
        for plugin in self.plugins().iter() {
            if !plugin.wants(ctx.state, wanted) {
                continue;
            }
            let outcome = plugin
                .deliver(Delivery::Flow(event, flow), Some(&mut *ctx.state))
                .await;
            if let Outcome::Failed(reason) | Outcome::Skipped(reason) = outcome
                && plugin.failure_policy() == FailurePolicy::Closed
                && !matches!(event, FlowEvent::Error)
            {
                flow.response = Some(bad_gateway(plugin.name(), &reason));
                break;
            }
        }
    }

    async fn each_conn(&self, event: ConnEvent, wanted: Events, conn: &Arc<ClientConn>) {
        for plugin in self
            .plugins()
            .iter()
            .filter(|p| p.subscriptions().contains(wanted))
        {
            plugin.deliver(Delivery::Conn(event, conn), None).await;
        }
    }
}

/// The answer a client gets when a plugin with failure policy `closed` fails.
fn bad_gateway(plugin: &str, reason: &str) -> Response {
    Response::make(
        ErrorKind::Plugin.status(),
        Headers::from_pairs([("content-type", "text/plain; charset=utf-8")]),
        format!("witm: plugin {plugin} failed: {reason}\n"),
    )
}

/// Counter names and values, in Prometheus naming.
fn counters(stats: &PluginStats) -> [(&'static str, f64); 20] {
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
    [
        ("calls_total", n(&stats.calls)),
        ("failures_total", n(&stats.failures)),
        ("traps_total", n(&stats.traps)),
        ("deadline_hits_total", n(&stats.deadline_hits)),
        ("fuel_exhausted_total", n(&stats.fuel_exhausted)),
        ("skipped_total", n(&stats.skipped)),
        ("queue_timeouts_total", n(&stats.queue_timeouts)),
        ("busy_seconds_total", n(&stats.busy_ns) / 1e9),
        ("wait_seconds_total", n(&stats.wait_ns) / 1e9),
        ("instances_started_total", n(&stats.instances_started)),
        (
            "instance_start_seconds_total",
            n(&stats.instance_start_ns) / 1e9,
        ),
        ("reloads_total", n(&stats.reloads)),
        ("start_failures_total", n(&stats.start_failures)),
        ("outbound_calls_total", n(&stats.outbound_calls)),
        ("outbound_refused_total", n(&stats.outbound_refused)),
        ("outbound_timeouts_total", n(&stats.outbound_timeouts)),
        ("outbound_failures_total", n(&stats.outbound_failures)),
        (
            "outbound_wait_seconds_total",
            n(&stats.outbound_wait_ns) / 1e9,
        ),
        (
            "outbound_response_bytes_total",
            n(&stats.outbound_response_bytes),
        ),
        ("ticks_total", n(&stats.ticks)),
    ]
}

/// The `# HELP`/`# TYPE` lines of [`PluginChain::metrics`].
pub fn metrics_preamble() -> String {
    let help = [
        ("calls_total", "events delivered to the plugin"),
        ("failures_total", "calls that failed (trap, deadline, fuel)"),
        ("traps_total", "calls that trapped (crash or memory limit)"),
        ("deadline_hits_total", "calls interrupted at their deadline"),
        ("fuel_exhausted_total", "calls that ran out of fuel"),
        (
            "skipped_total",
            "events skipped while the plugin backed off",
        ),
        (
            "queue_timeouts_total",
            "events skipped for want of a free instance",
        ),
        ("busy_seconds_total", "time spent in the plugin"),
        (
            "wait_seconds_total",
            "time events waited for a free instance",
        ),
        ("instances_started_total", "instances started"),
        (
            "instance_start_seconds_total",
            "time spent starting instances (instantiate + start)",
        ),
        ("reloads_total", "new versions loaded while running"),
        (
            "start_failures_total",
            "instances whose start failed or trapped (counted as failures, backed off)",
        ),
        (
            "outbound_calls_total",
            "http-send calls, whatever their outcome",
        ),
        (
            "outbound_refused_total",
            "http-send calls refused by policy or budget before connecting",
        ),
        ("outbound_timeouts_total", "http-send calls that timed out"),
        (
            "outbound_failures_total",
            "http-send calls that failed on the network or the response",
        ),
        (
            "outbound_wait_seconds_total",
            "time plugins waited on http-send",
        ),
        (
            "outbound_response_bytes_total",
            "response body bytes http-send returned",
        ),
        ("ticks_total", "tick events delivered"),
    ];
    help.iter()
        .map(|(name, text)| {
            format!("# HELP witm_plugin_{name} {text}\n# TYPE witm_plugin_{name} counter\n")
        })
        .collect()
}

/// One line of a plugin's counters, for the log at exit.
fn summary(stats: &PluginStats) -> String {
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    format!(
        "{} calls, {} failed ({} traps, {} deadline hits, {} out of fuel), {} skipped while \
         backing off, {} queue timeouts, {:.1} ms in the plugin, {:.1} ms waiting for an \
         instance, {} instances started ({:.0} µs each), {} failed starts, {} reloads",
        n(&stats.calls),
        n(&stats.failures),
        n(&stats.traps),
        n(&stats.deadline_hits),
        n(&stats.fuel_exhausted),
        n(&stats.skipped),
        n(&stats.queue_timeouts),
        n(&stats.busy_ns) as f64 / 1e6,
        n(&stats.wait_ns) as f64 / 1e6,
        n(&stats.instances_started),
        n(&stats.instance_start_ns) as f64 / 1e3 / n(&stats.instances_started).max(1) as f64,
        n(&stats.start_failures),
        n(&stats.reloads),
    )
}

/// The settings that matter at a glance, for the log line at load.
fn describe_settings(settings: &PluginSettings) -> String {
    let mut parts = vec![
        format!("{} MiB", settings.memory_bytes >> 20),
        format!("{} ms per event", settings.event_deadline.as_millis()),
        format!("failure policy {}", settings.failure),
    ];
    if let Some(fuel) = settings.fuel {
        parts.push(format!("{fuel} fuel per event"));
    }
    parts.push(if settings.instances > 1 {
        format!("stateless pool of {}", settings.instances)
    } else {
        "one instance".into()
    });
    if !settings.dirs.is_empty() {
        parts.push(format!(
            "dirs {}",
            settings
                .dirs
                .iter()
                .map(|d| format!("{}{}", d.guest, if d.writable { " (rw)" } else { " (ro)" }))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !settings.env.is_empty() {
        parts.push(format!("env {}", settings.env.join(", ")));
    }
    parts.push(format!(
        "host memory {} MiB, key-value {} MiB",
        settings.host_memory_bytes >> 20,
        settings.kv_bytes >> 20
    ));
    if !settings.allowed_hosts.is_empty() {
        parts.push(format!(
            "replays and http-send to {} allowed_hosts entries ({} ms per call)",
            settings.allowed_hosts.len(),
            settings.outbound_timeout.as_millis()
        ));
    }
    parts.join(", ")
}

/// Loads one plugin of a chain whose first plugins are `before`, starts its
/// ticks, and logs what it subscribed to and its settings.
async fn load_one(
    runtime: &PluginRuntime,
    spec: &PluginSpec,
    before: &[Arc<Plugin>],
) -> Result<Arc<Plugin>, LoadError> {
    let plugin = Plugin::load(runtime, spec, unique_name(spec, before)).await?;
    let instance_bytes = plugin
        .stats()
        .instance_memory_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        plugin = plugin.name(),
        "loaded; events: {}; {}; an instance holds {:.1} MiB of guest memory",
        plugin.subscriptions(),
        describe_settings(&spec.settings),
        instance_bytes as f64 / f64::from(1 << 20)
    );
    let plugin = Arc::new(plugin);
    plugin.run_ticks();
    Ok(plugin)
}

/// The file stem, with "#2", "#3" … when the same file is loaded again.
fn unique_name(spec: &PluginSpec, loaded: &[Arc<Plugin>]) -> String {
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

impl FlowHooks for PluginChain {
    type Ctx = Pins;
    fn subscriptions(&self) -> Events {
        Events::from_bits(self.subscriptions.load(Ordering::Relaxed))
    }

    async fn client_connect(&self, conn: &Arc<ClientConn>) {
        self.each_conn(ConnEvent::Connect, Events::CLIENT_CONNECT, conn)
            .await
    }

    async fn request(&self, flow: &mut Flow, ctx: FlowCtx<'_, Pins>) {
        self.each_flow(FlowEvent::Request, Events::REQUEST, flow, ctx)
            .await
    }

    async fn response(&self, flow: &mut Flow, ctx: FlowCtx<'_, Pins>) {
        self.each_flow(FlowEvent::Response, Events::RESPONSE, flow, ctx)
            .await
    }

    async fn error(&self, flow: &mut Flow, ctx: FlowCtx<'_, Pins>) {
        self.each_flow(FlowEvent::Error, Events::ERROR, flow, ctx)
            .await
    }

    async fn client_disconnect(&self, conn: &Arc<ClientConn>) {
        self.each_conn(ConnEvent::Disconnect, Events::CLIENT_DISCONNECT, conn)
            .await
    }

    async fn request_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, Pins>) {
        self.each_flow(
            FlowEvent::RequestHeaders,
            Events::REQUEST_HEADERS,
            flow,
            ctx,
        )
        .await
    }

    async fn response_headers(&self, flow: &mut Flow, ctx: FlowCtx<'_, Pins>) {
        self.each_flow(
            FlowEvent::ResponseHeaders,
            Events::RESPONSE_HEADERS,
            flow,
            ctx,
        )
        .await
    }

    async fn websocket_message(
        &self,
        flow: &mut Flow,
        message: &mut WebSocketMessage,
        ctx: FlowCtx<'_, Pins>,
    ) {
        for plugin in self.plugins().iter() {
            if !plugin.wants(ctx.state, Events::WEBSOCKET_MESSAGE) {
                continue;
            }
            if message.dropped {
                break;
            }
            let outcome = plugin
                .deliver(Delivery::WebSocket(flow, message), Some(&mut *ctx.state))
                .await;
            if !matches!(outcome, Outcome::Done) && plugin.failure_policy() == FailurePolicy::Closed
            {
                // Closed: a message the plugin could not check is not sent.
                message.dropped = true;
            }
        }
    }

    async fn server_connect(&self, server: &Arc<ServerConn>) {
        for plugin in self
            .plugins()
            .iter()
            .filter(|p| p.subscriptions().contains(Events::SERVER_CONNECT))
        {
            plugin
                .deliver(
                    Delivery::Server {
                        connected: true,
                        server,
                    },
                    None,
                )
                .await;
        }
    }

    async fn server_disconnect(&self, server: &Arc<ServerConn>) {
        for plugin in self
            .plugins()
            .iter()
            .filter(|p| p.subscriptions().contains(Events::SERVER_DISCONNECT))
        {
            plugin
                .deliver(
                    Delivery::Server {
                        connected: false,
                        server,
                    },
                    None,
                )
                .await;
        }
    }

    async fn http_connect(&self, flow: &mut Flow, ctx: FlowCtx<'_, Pins>) {
        self.each_flow(FlowEvent::HttpConnect, Events::HTTP_CONNECT, flow, ctx)
            .await
    }

    async fn tls_clienthello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
        for plugin in self
            .plugins()
            .iter()
            .filter(|p| p.subscriptions().contains(Events::TLS_CLIENTHELLO))
        {
            plugin
                .deliver(Delivery::ClientHello(conn, hello), None)
                .await;
        }
    }
}
