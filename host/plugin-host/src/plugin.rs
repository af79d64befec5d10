//! One plugin: its compiled component, its live instance, and how an event
//! is delivered to it with its failures contained.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Engine, Store, UpdateDeadline};
use witm_flow::{ClientConn, ClientHello, Events, Flow, ServerConn, WebSocketMessage};

use crate::bindings::{PluginBindings, PluginBindingsPre, types};
use crate::kv::KvStore;
use crate::log::LogBudget;
use crate::outbound::OutboundGate;
use crate::replay::ReplayGate;
use crate::resources::HostCallDeadline;
use crate::resources::ServerConnHandle;
use crate::resources::{
    ClientConnHandle, ClientHelloEntry, ContextHandle, FlowEntry, WebSocketMessageEntry,
};
use crate::runtime::PluginRuntime;
use crate::settings::{FailurePolicy, PluginSettings};
use crate::slots::Slots;
use crate::state::{Shared, StoreState, push};

/// Why a plugin could not be loaded or started. Its `Display` is one line
/// meant for the person who gave the plugin on the command line.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// A plugin as given on the command line or in the configuration: a
/// component file, the arguments for its `start`, and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSpec {
    /// The component file.
    pub path: PathBuf,
    /// Arguments passed to `start`.
    pub args: Vec<String>,
    /// Capabilities, limits, failure policy, instances.
    pub settings: PluginSettings,
}

impl PluginSpec {
    /// Parses mitmdump's `-s` form: the path, then arguments separated by
    /// whitespace (`"plugin.wasm arg1 arg2"`).
    pub fn parse(spec: &str) -> Result<Self, LoadError> {
        let mut words = spec.split_whitespace();
        let path = words
            .next()
            .ok_or_else(|| LoadError("empty plugin specification".into()))?;
        Ok(Self {
            path: PathBuf::from(path),
            args: words.map(str::to_owned).collect(),
            settings: PluginSettings::default(),
        })
    }
}

/// Which per-flow event to deliver.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FlowEvent {
    Request,
    Response,
    Error,
    HttpConnect,
    RequestHeaders,
    ResponseHeaders,
}

/// Which per-connection event to deliver.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ConnEvent {
    Connect,
    Disconnect,
}

/// One event to deliver, with the host's data it lends the plugin.
pub(crate) enum Delivery<'a> {
    /// `request`, `response`, `error`, `http-connect`, `*-headers`.
    Flow(FlowEvent, &'a mut Flow),
    /// `client-connect`, `client-disconnect`.
    Conn(ConnEvent, &'a Arc<ClientConn>),
    /// `server-connect`, `server-disconnect`.
    Server {
        connected: bool,
        server: &'a Arc<ServerConn>,
    },
    /// `tls-clienthello`.
    ClientHello(&'a Arc<ClientConn>, &'a mut ClientHello),
    /// `websocket-message`.
    WebSocket(&'a mut Flow, &'a mut WebSocketMessage),
    /// `tick`.
    Tick,
}

impl Delivery<'_> {
    /// The event's WIT name, for logs.
    fn name(&self) -> &'static str {
        self.event().name()
    }

    /// The event being delivered.
    fn event(&self) -> Events {
        match self {
            Delivery::Flow(FlowEvent::Request, _) => Events::REQUEST,
            Delivery::Flow(FlowEvent::Response, _) => Events::RESPONSE,
            Delivery::Flow(FlowEvent::Error, _) => Events::ERROR,
            Delivery::Flow(FlowEvent::HttpConnect, _) => Events::HTTP_CONNECT,
            Delivery::Flow(FlowEvent::RequestHeaders, _) => Events::REQUEST_HEADERS,
            Delivery::Flow(FlowEvent::ResponseHeaders, _) => Events::RESPONSE_HEADERS,
            Delivery::Conn(ConnEvent::Connect, _) => Events::CLIENT_CONNECT,
            Delivery::Conn(ConnEvent::Disconnect, _) => Events::CLIENT_DISCONNECT,
            Delivery::Server {
                connected: true, ..
            } => Events::SERVER_CONNECT,
            Delivery::Server {
                connected: false, ..
            } => Events::SERVER_DISCONNECT,
            Delivery::ClientHello(..) => Events::TLS_CLIENTHELLO,
            Delivery::WebSocket(..) => Events::WEBSOCKET_MESSAGE,
            Delivery::Tick => Events::TICK,
        }
    }
}

/// The handles lent for one call.
#[derive(Default)]
struct Lent {
    flow: Option<Resource<FlowEntry>>,
    conn: Option<Resource<ClientConnHandle>>,
    server: Option<Resource<ServerConnHandle>>,
    hello: Option<Resource<ClientHelloEntry>>,
    message: Option<Resource<WebSocketMessageEntry>>,
}

/// A borrow handle of an entry lent for this event.
fn borrow<T: 'static>(lent: &Option<Resource<T>>) -> Resource<T> {
    Resource::new_borrow(lent.as_ref().expect("lent for this event").rep())
}

/// Moves (the flow, into the views: [`crate::views`]) or shares (connections)
/// what `event` carries into the store.
fn lend(state: &mut StoreState, event: &mut Delivery<'_>, lent: &mut Lent) -> wasmtime::Result<()> {
    if let Delivery::Flow(_, flow) | Delivery::WebSocket(flow, _) = event {
        // Asked before the flow leaves the proxy: a refused lend keeps it.
        state.views.room()?;
        let generation = state.host.generation();
        let entry = FlowEntry::new(std::mem::take(*flow), generation);
        lent.flow = Some(state.views.push(|v| &mut v.flows, entry)?);
    }
    let table = &mut state.table;
    match event {
        Delivery::Conn(_, conn) | Delivery::ClientHello(conn, _) => {
            lent.conn = Some(push(table, ClientConnHandle(Arc::clone(conn)))?);
        }
        Delivery::Server { server, .. } => {
            lent.server = Some(push(table, ServerConnHandle(Arc::clone(server)))?);
        }
        _ => {}
    }
    match event {
        Delivery::ClientHello(_, hello) => {
            lent.hello = Some(push(table, ClientHelloEntry((**hello).clone()))?)
        }
        Delivery::WebSocket(_, message) => {
            lent.message = Some(push(table, WebSocketMessageEntry((**message).clone()))?)
        }
        _ => {}
    }
    Ok(())
}

/// Takes back what [`lend`] put in the store: the flow as the plugin left
/// it (or as it was, if the call failed); the hello or message changes only
/// if the call succeeded.
fn take_back(
    plugin: &str,
    state: &mut StoreState,
    event: &mut Delivery<'_>,
    lent: Lent,
    failed: bool,
) {
    if let Some(handle) = lent.flow {
        match (state.views.flows.get_mut(&handle), &mut *event) {
            (Some(entry), Delivery::Flow(_, flow) | Delivery::WebSocket(flow, _)) => {
                // Back to the proxy: what the plugin added is no longer held
                // for it.
                state.host.budget.release(entry.charged);
                entry.give_back(failed, flow);
            }
            (None, _) => tracing::error!(plugin = %plugin, "the flow lent to the plugin is lost"),
            _ => {}
        }
        state.views.flows.discard(&handle);
    }
    if let Some(handle) = lent.conn {
        let _ = state.table.delete(handle);
    }
    if let Some(handle) = lent.server {
        let _ = state.table.delete(handle);
    }
    if let Some(handle) = lent.hello
        && let (Ok(entry), Delivery::ClientHello(_, hello), false) =
            (state.table.delete(handle), &mut *event, failed)
    {
        **hello = entry.0;
    }
    if let Some(handle) = lent.message
        && let (Ok(entry), Delivery::WebSocket(_, message), false) =
            (state.table.delete(handle), &mut *event, failed)
    {
        **message = entry.0;
    }
}

/// A running instance of the component, with the store it lives in.
struct Live {
    store: Store<StoreState>,
    bindings: PluginBindings,
    context: Resource<ContextHandle>,
}

/// Counters for the summary at exit and the metrics endpoint.
#[derive(Default, Debug)]
pub struct PluginStats {
    /// Events delivered.
    pub calls: AtomicU64,
    /// Calls that failed, whatever the reason.
    pub failures: AtomicU64,
    /// Calls that ended in a trap (a crash, or the memory cap).
    pub traps: AtomicU64,
    /// Calls interrupted at their deadline.
    pub deadline_hits: AtomicU64,
    /// Calls that ran out of fuel.
    pub fuel_exhausted: AtomicU64,
    /// Events not delivered because the plugin was backing off.
    pub skipped: AtomicU64,
    /// Events not delivered because no instance came free in time.
    pub queue_timeouts: AtomicU64,
    /// Time spent inside the plugin, in nanoseconds.
    pub busy_ns: AtomicU64,
    /// Time events waited for a free instance, in nanoseconds.
    pub wait_ns: AtomicU64,
    /// Instances started (first start, replacements, pool growth, reloads).
    pub instances_started: AtomicU64,
    /// Time spent starting them (instantiate + `start`), in nanoseconds.
    pub instance_start_ns: AtomicU64,
    /// Bytes of linear memory and tables the last instance held once
    /// started: what each instance of the plugin costs at least (a pool of
    /// N holds N of these).
    pub instance_memory_bytes: AtomicU64,
    /// New versions loaded while running.
    pub reloads: AtomicU64,
    /// Instances whose `start` failed or trapped (after the first: the
    /// first failing stops the plugin from loading).
    pub start_failures: AtomicU64,
    /// Versions of the plugin still in memory (the current one, and old
    /// ones kept by flows in flight): 1 once old flows are done.
    pub versions_alive: AtomicU64,
    /// `http-send` calls made (whatever their outcome).
    pub outbound_calls: AtomicU64,
    /// `http-send` calls refused by policy or budget before any connection.
    pub outbound_refused: AtomicU64,
    /// `http-send` calls that ran out of time.
    pub outbound_timeouts: AtomicU64,
    /// `http-send` calls that failed on the network or the response.
    pub outbound_failures: AtomicU64,
    /// Time plugins waited on `http-send`, in nanoseconds.
    pub outbound_wait_ns: AtomicU64,
    /// Response body bytes `http-send` returned.
    pub outbound_response_bytes: AtomicU64,
    /// `tick` events delivered.
    pub ticks: AtomicU64,
}

/// How a delivery ended, for the chain to apply the failure policy.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The plugin ran (or was not asked: nothing to apply).
    Done,
    /// The call failed; the flow is as it was before the call.
    Failed(String),
    /// The plugin was not called (backing off, no free instance).
    Skipped(String),
}

/// One loaded version of a plugin's component: after a hot reload, flows
/// that started on the old version finish on it.
struct Version {
    /// The plugin's id, to find this version among a flow's pins.
    plugin: u64,
    number: u64,
    spec: PluginSpec,
    /// `spec.settings`, shared with the version's stores.
    settings: Arc<PluginSettings>,
    /// Counts this version in `versions_alive` while it exists.
    _alive: Alive,
    pre: PluginBindingsPre<StoreState>,
    subscriptions: Events,
    /// One slot per instance; empty slots start an instance when used.
    slots: Slots<Option<Live>>,
}

/// Counts a version in [`PluginStats::versions_alive`] for as long as it lives.
struct Alive(Arc<PluginStats>);

impl Alive {
    fn new(stats: &Arc<PluginStats>) -> Self {
        stats.versions_alive.fetch_add(1, Ordering::Relaxed);
        Self(stats.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.versions_alive.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Consecutive failures before a plugin is skipped for a while.
const BACKOFF_AFTER: u32 = 3;
/// The longest a failing plugin is skipped.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A plugin's recent failures, read on every event: atomics, no lock.
struct Health {
    consecutive: AtomicU32,
    /// When the plugin may be called again, in ns after `since`; 0: now.
    skip_until_ns: AtomicU64,
    since: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            consecutive: AtomicU32::new(0),
            skip_until_ns: AtomicU64::new(0),
            since: Instant::now(),
        }
    }
}

impl Health {
    fn now_ns(&self) -> u64 {
        self.since.elapsed().as_nanos() as u64
    }

    fn reset(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        self.skip_until_ns.store(0, Ordering::Relaxed);
    }
}

/// The size and modification time of a plugin file, to notice a change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FileStamp(Option<(std::time::SystemTime, u64)>);

impl FileStamp {
    fn of(path: &Path) -> Self {
        FileStamp(
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
        )
    }
}

/// A loaded plugin. By default its events run one at a time on one
/// instance, like a mitmproxy script, so its global variables work as state;
/// configured with more instances it is a stateless pool.
pub struct Plugin {
    starter: Starter,
    current: std::sync::RwLock<Arc<Version>>,
    /// The current version's subscriptions, readable without the lock: the
    /// proxy asks several times per flow. Written only where `current` is.
    subscriptions: AtomicU32,
    /// The file as last loaded or tried, so a broken file is tried once.
    stamp: std::sync::Mutex<FileStamp>,
    health: Health,
    /// Set as `done` starts: later events (a pooled server connection
    /// closing at exit), and those still waiting for an instance, are
    /// dropped instead of starting the plugin again.
    finished: AtomicBool,
}

/// The plugin versions one flow is pinned to: the chain's per-flow context
/// ([`FlowHooks::Ctx`](witm_flow::FlowHooks::Ctx)). A flow in flight during
/// a hot reload finishes on the versions it started with, which are freed
/// with the last flow pinned to them.
#[derive(Default)]
pub struct Pins(Vec<Arc<Version>>);

impl Pins {
    fn of(&self, plugin: u64) -> Option<&Arc<Version>> {
        self.0.iter().find(|v| v.plugin == plugin)
    }
}

/// A version compiled and started by [`Plugin::stage`], not yet serving.
pub(crate) struct StagedVersion {
    version: Version,
}

static NEXT_PLUGIN_ID: AtomicU64 = AtomicU64::new(1);

impl Plugin {
    /// Compiles (or loads from the cache) the component at `spec.path`,
    /// checks that it implements the `witm:plugin` world, instantiates it and
    /// runs `start`.
    pub async fn load(
        runtime: &PluginRuntime,
        spec: &PluginSpec,
        name: String,
    ) -> Result<Self, LoadError> {
        let stats = Arc::<PluginStats>::default();
        let own_ports: Arc<[u16]> = runtime.options().own_ports.clone().into();
        let starter = Starter {
            id: NEXT_PLUGIN_ID.fetch_add(1, Ordering::Relaxed),
            engine: runtime.engine().clone(),
            fuel_enabled: runtime.options().fuel,
            stats: stats.clone(),
            shared: Shared {
                kv: KvStore::default(),
                log: Arc::new(LogBudget::new(&name, &spec.settings)),
                replay: Arc::new(ReplayGate::new(runtime.replayer(), own_ports.clone())),
                outbound: Arc::new(OutboundGate::new(runtime.http_sender(), own_ports, stats)),
                tick: Arc::default(),
            },
            name,
        };
        let version = starter
            .prepare(runtime, spec.clone(), 1)
            .await
            .map_err(LoadError)?;
        Ok(Self {
            starter,
            subscriptions: AtomicU32::new(version.subscriptions.bits()),
            current: std::sync::RwLock::new(Arc::new(version)),
            stamp: std::sync::Mutex::new(FileStamp::of(&spec.path)),
            health: Default::default(),
            finished: Default::default(),
        })
    }

    /// Starts the task that delivers `tick` at the period the plugin sets.
    pub(crate) fn run_ticks(self: &Arc<Self>) {
        crate::tick::run_ticks(self, &self.starter.shared.tick);
    }

    /// Whether `done` has run: no event is delivered any more.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// The plugin's name in logs: its file name without the extension.
    pub fn name(&self) -> &str {
        &self.starter.name
    }

    /// The events the plugin's `start` subscribed to (of its current version).
    pub fn subscriptions(&self) -> Events {
        Events::from_bits(self.subscriptions.load(Ordering::Relaxed))
    }

    /// Whether this plugin takes `wanted` for a flow pinned to `pins`:
    /// asked of the version the flow is pinned to (the one its events go
    /// to), else the current.
    pub fn wants(&self, pins: &Pins, wanted: Events) -> bool {
        match pins.of(self.starter.id) {
            Some(pinned) => pinned.subscriptions.contains(wanted),
            None => self.subscriptions().contains(wanted),
        }
    }

    /// Counters of this plugin's calls.
    pub fn stats(&self) -> &PluginStats {
        &self.starter.stats
    }

    /// The specification of the current version (file, arguments, settings).
    pub fn spec(&self) -> PluginSpec {
        self.current().spec.clone()
    }

    /// What happens to a flow when this plugin fails.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.current().spec.settings.failure
    }

    fn current(&self) -> Arc<Version> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the plugin file changed since it was last loaded or tried.
    pub fn file_changed(&self) -> bool {
        let path = self.current().spec.path.clone();
        let now = FileStamp::of(&path);
        let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if *stamp == now {
            return false;
        }
        *stamp = now;
        now.0.is_some()
    }

    /// Loads a new version — the same file again, or `spec` when the
    /// configuration changed — and makes it current once its `start`
    /// succeeded. Flows in flight finish on the version they started with.
    /// On failure the current version keeps running.
    /// Only through the chain, which keeps the union of subscriptions.
    pub(crate) async fn reload(
        &self,
        runtime: &PluginRuntime,
        spec: Option<PluginSpec>,
    ) -> Result<u64, String> {
        let staged = self.stage(runtime, spec).await?;
        Ok(self.install(staged))
    }

    /// Compiles and starts a new version without making it current, so a
    /// configuration can be staged whole and applied only if every part
    /// loaded. Dropped without [`Plugin::install`], it never serves.
    pub(crate) async fn stage(
        &self,
        runtime: &PluginRuntime,
        spec: Option<PluginSpec>,
    ) -> Result<StagedVersion, String> {
        let old = self.current();
        let spec = spec.unwrap_or_else(|| old.spec.clone());
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = FileStamp::of(&spec.path);
        let version = self.starter.prepare(runtime, spec, old.number + 1).await?;
        Ok(StagedVersion { version })
    }

    /// Makes a staged version current; returns its number.
    pub(crate) fn install(&self, staged: StagedVersion) -> u64 {
        let version = staged.version;
        self.starter.shared.log.configure(&version.settings);
        let number = version.number;
        self.subscriptions
            .store(version.subscriptions.bits(), Ordering::Relaxed);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(version);
        self.health.reset();
        self.starter.stats.reloads.fetch_add(1, Ordering::Relaxed);
        number
    }

    /// The version an event goes to: the one the flow started with, or the
    /// current one (pinned on the flow at its first event).
    fn version_for(&self, pins: Option<&mut Pins>) -> Arc<Version> {
        let Some(pins) = pins else {
            return self.current();
        };
        if let Some(pinned) = pins.of(self.starter.id) {
            return pinned.clone();
        }
        let version = self.current();
        pins.0.push(version.clone());
        version
    }

    /// `Some(reason)` while the plugin is skipped after repeated failures.
    fn backing_off(&self) -> Option<String> {
        let until = self.health.skip_until_ns.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let left = until
            .checked_sub(self.health.now_ns())
            .filter(|&ns| ns > 0)?;
        Some(format!(
            "skipped for {:.1} s more after {} failures in a row",
            left as f64 / 1e9,
            self.health.consecutive.load(Ordering::Relaxed)
        ))
    }

    /// Counts a failed call; past [`BACKOFF_AFTER`] in a row, the plugin is
    /// skipped for a while that doubles with each further failure.
    fn note_failure(&self, error: &wasmtime::Error, policy: FailurePolicy) {
        let stats = &self.starter.stats;
        let counter = match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => &stats.deadline_hits,
            Some(wasmtime::Trap::OutOfFuel) => &stats.fuel_exhausted,
            _ if error.is::<HostCallDeadline>() => &stats.deadline_hits,
            _ => &stats.traps,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.back_off_after_failure(policy);
    }

    /// Counts an instance whose `start` failed: a failure like any other, so
    /// a plugin that cannot restart backs off instead of retrying on every
    /// event.
    fn note_start_failure(&self, reason: &str, policy: FailurePolicy) {
        self.starter
            .stats
            .start_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(plugin = %self.starter.name, "start failed: {reason}");
        self.back_off_after_failure(policy);
    }

    fn back_off_after_failure(&self, policy: FailurePolicy) {
        self.starter.stats.failures.fetch_add(1, Ordering::Relaxed);
        let consecutive = self.health.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if consecutive >= BACKOFF_AFTER {
            let doublings = (consecutive - BACKOFF_AFTER).min(6);
            let pause = (Duration::from_secs(1) * (1 << doublings)).min(MAX_BACKOFF);
            self.health.skip_until_ns.store(
                self.health.now_ns() + pause.as_nanos() as u64,
                Ordering::Relaxed,
            );
            tracing::warn!(
                plugin = %self.starter.name,
                "failed {consecutive} times in a row: skipped for {} s (failure policy {policy}: {})",
                pause.as_secs(),
                match policy {
                    FailurePolicy::Open => "flows go on without it",
                    FailurePolicy::Closed => "flows get a 502",
                }
            );
        }
    }

    fn note_success(&self) {
        if self.health.consecutive.load(Ordering::Relaxed) > 0 {
            self.health.reset();
        }
    }

    /// Delivers one event. What it lends the plugin goes into the store's
    /// table for the call and comes back after it; if the call fails, the
    /// flow (and the hello or message) stay as they were before it, and the
    /// instance is replaced.
    ///
    /// `pins` is the flow's context for flow events (`None` for connection
    /// events): the version the flow is pinned to, or the current one,
    /// pinned now.
    pub(crate) async fn deliver(
        &self,
        mut event: Delivery<'_>,
        pins: Option<&mut Pins>,
    ) -> Outcome {
        if self.is_finished() {
            return Outcome::Done;
        }
        let version = self.version_for(pins);
        let settings = &version.spec.settings;
        if let Some(reason) = self.backing_off() {
            self.starter.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return Outcome::Skipped(reason);
        }
        // A free instance is taken at once; only a busy plugin costs a timer.
        let mut guard = match version.slots.try_take() {
            Some(taken) => taken,
            None => {
                let waiting = Instant::now();
                let Ok(taken) =
                    tokio::time::timeout(settings.queue_timeout, version.slots.take()).await
                else {
                    self.starter
                        .stats
                        .queue_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    let reason = format!(
                        "no free instance within {} ms ({} busy)",
                        settings.queue_timeout.as_millis(),
                        version.slots.len()
                    );
                    tracing::warn!(plugin = %self.starter.name, "{} skipped: {reason}", event.name());
                    return Outcome::Skipped(reason);
                };
                self.starter
                    .stats
                    .wait_ns
                    .fetch_add(waiting.elapsed().as_nanos() as u64, Ordering::Relaxed);
                taken
            }
        };
        // Looked at again: `done` may have run while this event waited for
        // the instance, and left the slot empty.
        if self.is_finished() {
            return Outcome::Done;
        }
        let Some(live) = self.ready(&version, &mut guard).await else {
            return Outcome::Skipped("the plugin cannot start".into());
        };
        let mut lent = Lent::default();
        if let Err(e) = lend(live.store.data_mut(), &mut event, &mut lent) {
            take_back(
                &self.starter.name,
                live.store.data_mut(),
                &mut event,
                lent,
                true,
            );
            // The table is full of what the plugin keeps: only a fresh
            // instance can take events again.
            let reason = format!(
                "cannot lend what {} needs: {}",
                event.name(),
                first_line(&e)
            );
            self.note_failure(&e, settings.failure);
            self.replace_after_failure(&version, &mut guard, event.name(), &reason)
                .await;
            return Outcome::Failed(reason);
        }
        let context = Resource::new_borrow(live.context.rep());
        self.starter.arm_limits(&mut live.store, settings);
        let started = Instant::now();
        let (b, s) = (&live.bindings, &mut live.store);
        let outcome = match &event {
            Delivery::Flow(kind, _) => {
                let flow = borrow(&lent.flow);
                match kind {
                    FlowEvent::Request => b.call_request(&mut *s, context, flow).await,
                    FlowEvent::Response => b.call_response(&mut *s, context, flow).await,
                    FlowEvent::Error => b.call_error(&mut *s, context, flow).await,
                    FlowEvent::HttpConnect => b.call_http_connect(&mut *s, context, flow).await,
                    FlowEvent::RequestHeaders => {
                        b.call_request_headers(&mut *s, context, flow).await
                    }
                    FlowEvent::ResponseHeaders => {
                        b.call_response_headers(&mut *s, context, flow).await
                    }
                }
            }
            Delivery::Conn(ConnEvent::Connect, _) => {
                b.call_client_connect(&mut *s, context, borrow(&lent.conn))
                    .await
            }
            Delivery::Conn(ConnEvent::Disconnect, _) => {
                b.call_client_disconnect(&mut *s, context, borrow(&lent.conn))
                    .await
            }
            Delivery::Server {
                connected: true, ..
            } => {
                b.call_server_connect(&mut *s, context, borrow(&lent.server))
                    .await
            }
            Delivery::Server {
                connected: false, ..
            } => {
                b.call_server_disconnect(&mut *s, context, borrow(&lent.server))
                    .await
            }
            Delivery::ClientHello(..) => {
                b.call_tls_clienthello(&mut *s, context, borrow(&lent.conn), borrow(&lent.hello))
                    .await
            }
            Delivery::WebSocket(..) => {
                b.call_websocket_message(
                    &mut *s,
                    context,
                    borrow(&lent.flow),
                    borrow(&lent.message),
                )
                .await
            }
            Delivery::Tick => {
                self.starter.stats.ticks.fetch_add(1, Ordering::Relaxed);
                b.call_tick(&mut *s, context).await
            }
        };
        self.starter.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.starter
            .stats
            .busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        take_back(
            &self.starter.name,
            s.data_mut(),
            &mut event,
            lent,
            outcome.is_err(),
        );
        match outcome {
            Ok(()) => {
                self.note_success();
                Outcome::Done
            }
            Err(e) => {
                let reason = describe_failure(&e);
                self.note_failure(&e, settings.failure);
                self.replace_after_failure(&version, &mut guard, event.name(), &reason)
                    .await;
                Outcome::Failed(reason)
            }
        }
    }

    /// Runs `done` on every live instance (if subscribed) and drops them.
    pub(crate) async fn done(&self) {
        self.starter.shared.replay.finish().await;
        // First: an event that comes meanwhile (a pooled server connection
        // closing on a worker thread) must not start an instance again
        // once `done` has let go of it (see `deliver`).
        self.finished.store(true, Ordering::Relaxed);
        let version = self.current();
        for index in 0..version.slots.len() {
            let mut guard = version.slots.take_at(index).await;
            if self.subscriptions().contains(Events::DONE)
                && let Some(live) = guard.as_mut()
            {
                self.starter
                    .arm_limits(&mut live.store, &version.spec.settings);
                let context = Resource::new_borrow(live.context.rep());
                let started = Instant::now();
                let outcome = live.bindings.call_done(&mut live.store, context).await;
                self.starter.stats.calls.fetch_add(1, Ordering::Relaxed);
                self.starter
                    .stats
                    .busy_ns
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if let Err(e) = outcome {
                    self.note_failure(&e, version.spec.settings.failure);
                    tracing::error!(plugin = %self.starter.name, "done failed: {}", describe_failure(&e));
                }
            }
            *guard = None;
        }
    }

    /// The slot's instance, starting one if the slot is empty (first use
    /// in a pool, or the last instance was lost).
    async fn ready<'a>(
        &self,
        version: &Version,
        guard: &'a mut Option<Live>,
    ) -> Option<&'a mut Live> {
        if guard.is_none() {
            match self.starter.start_instance(version).await {
                Ok((live, _)) => *guard = Some(live),
                Err(e) => {
                    self.note_start_failure(
                        &format!("{e}; event skipped"),
                        version.spec.settings.failure,
                    );
                    return None;
                }
            }
        }
        guard.as_mut()
    }

    /// After a trap the instance cannot be entered again: log why, drop its
    /// store and start a fresh instance (whose `start` runs again).
    async fn replace_after_failure(
        &self,
        version: &Version,
        guard: &mut Option<Live>,
        event: &str,
        reason: &str,
    ) {
        let policy = version.spec.settings.failure;
        tracing::error!(
            plugin = %self.starter.name,
            "{event} failed ({}): {reason}",
            match policy {
                FailurePolicy::Open => "the flow goes on as before the call",
                FailurePolicy::Closed => "failure policy closed: the client gets a 502",
            }
        );
        *guard = None;
        match self.starter.start_instance(version).await {
            Ok((live, _)) => {
                tracing::info!(plugin = %self.starter.name, "instance replaced and started again");
                *guard = Some(live);
            }
            Err(e) => self.note_start_failure(
                &format!("cannot restart the plugin: {e}"),
                version.spec.settings.failure,
            ),
        }
    }
}

/// What starting an instance needs; shared by every version of a plugin.
struct Starter {
    /// Unique in the process, to find this plugin's pinned version on a flow.
    id: u64,
    name: String,
    engine: Engine,
    fuel_enabled: bool,
    stats: Arc<PluginStats>,
    /// What the plugin's instances share: its key-value store, log rate
    /// and replays.
    shared: Shared,
}

impl Starter {
    /// Compiles `spec`'s component and starts its first instance; the
    /// version is ready to serve.
    async fn prepare(
        &self,
        runtime: &PluginRuntime,
        spec: PluginSpec,
        number: u64,
    ) -> Result<Version, String> {
        let component = compile(runtime.engine(), &spec.path)
            .await
            .map_err(|e| e.0)?;
        let pre = instantiate_pre(runtime.linker(), &component)
            .map_err(|e| format!("{}: {e}", spec.path.display()))?;
        if spec.settings.fuel.is_some() && !self.fuel_enabled {
            tracing::warn!(
                plugin = %self.name,
                "a fuel limit needs the runtime built with fuel: restart witm to apply it"
            );
        }
        let instances = spec.settings.instances.max(1);
        let mut version = Version {
            plugin: self.id,
            number,
            settings: Arc::new(spec.settings.clone()),
            _alive: Alive::new(&self.stats),
            spec,
            pre,
            subscriptions: Events::NONE,
            slots: Slots::new(instances, || None),
        };
        let (live, subscriptions) = self
            .start_instance(&version)
            .await
            .map_err(|e| format!("{}: start failed: {e}", self.name))?;
        version.subscriptions = subscriptions;
        *version.slots.first_mut() = Some(live);
        Ok(version)
    }

    /// A fresh instance of `version` with `start` run on it.
    async fn start_instance(&self, version: &Version) -> Result<(Live, Events), String> {
        let starting = Instant::now();
        let settings = &version.spec.settings;
        let state = StoreState::new(version.settings.clone(), self.shared.clone())?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().host.deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        self.arm_limits(&mut store, settings);
        let bindings = version
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| describe_failure(&e))?;
        let context = store
            .data_mut()
            .table
            .push(ContextHandle)
            .map_err(|e| e.to_string())?;
        self.arm_limits(&mut store, settings);
        let started = bindings
            .call_start(
                &mut store,
                Resource::new_borrow(context.rep()),
                &version.spec.args,
            )
            .await
            .map_err(|e| describe_failure(&e))?;
        let subscriptions = started.map(events_from_wit)?;
        self.stats.instances_started.fetch_add(1, Ordering::Relaxed);
        self.stats
            .instance_start_ns
            .fetch_add(starting.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.stats
            .instance_memory_bytes
            .store(store.data().limits.in_use() as u64, Ordering::Relaxed);
        Ok((
            Live {
                store,
                bindings,
                context,
            },
            subscriptions,
        ))
    }

    /// Sets the deadline (and fuel) for the next call.
    fn arm_limits(&self, store: &mut Store<StoreState>, settings: &PluginSettings) {
        let host = &mut store.data_mut().host;
        host.deadline = Instant::now() + settings.event_deadline;
        host.outbound_calls = 0;
        store.set_epoch_deadline(1);
        if self.fuel_enabled {
            let _ = store.set_fuel(settings.fuel.unwrap_or(u64::MAX));
        }
    }
}

/// Compiles a component off the async threads (a Python or JS component takes
/// seconds; wasmtime's cache makes later loads fast).
async fn compile(engine: &Engine, path: &Path) -> Result<Component, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
    let engine = engine.clone();
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
        .await
        .map_err(|e| LoadError(format!("{shown}: compilation aborted: {e}")))?
        .map_err(|e| {
            LoadError(format!(
                "{shown}: not a WebAssembly component witm can run: {}",
                first_line(&e)
            ))
        })
}

fn instantiate_pre(
    linker: &Linker<StoreState>,
    component: &Component,
) -> Result<PluginBindingsPre<StoreState>, String> {
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("cannot link the component: {}", first_line(&e)))?;
    PluginBindingsPre::new(pre).map_err(|e| {
        format!(
            "does not implement the witm:plugin world: {}",
            first_line(&e)
        )
    })
}

/// The error and its causes on one line, without a backtrace.
fn first_line(error: &wasmtime::Error) -> String {
    let mut text = String::new();
    for (i, cause) in error.chain().enumerate() {
        if i > 0 {
            text.push_str(": ");
        }
        text.push_str(cause.to_string().lines().next().unwrap_or(""));
    }
    text
}

/// Describes a failed call: a deadline, a memory cap, or a trap.
fn describe_failure(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "event deadline exceeded (epoch interrupt)".to_owned(),
        None if error.is::<HostCallDeadline>() => first_line(error),
        Some(trap) => format!("trap: {trap}; {}", first_line(error)),
        None => first_line(error),
    }
}

fn events_from_wit(events: types::Events) -> Events {
    [
        (types::Events::CLIENT_CONNECT, Events::CLIENT_CONNECT),
        (types::Events::REQUEST, Events::REQUEST),
        (types::Events::RESPONSE, Events::RESPONSE),
        (types::Events::ERROR, Events::ERROR),
        (types::Events::CLIENT_DISCONNECT, Events::CLIENT_DISCONNECT),
        (types::Events::DONE, Events::DONE),
        (types::Events::HTTP_CONNECT, Events::HTTP_CONNECT),
        (types::Events::TLS_CLIENTHELLO, Events::TLS_CLIENTHELLO),
        (types::Events::REQUEST_HEADERS, Events::REQUEST_HEADERS),
        (types::Events::RESPONSE_HEADERS, Events::RESPONSE_HEADERS),
        (types::Events::WEBSOCKET_MESSAGE, Events::WEBSOCKET_MESSAGE),
        (types::Events::SERVER_CONNECT, Events::SERVER_CONNECT),
        (types::Events::SERVER_DISCONNECT, Events::SERVER_DISCONNECT),
        (types::Events::TICK, Events::TICK),
    ]
    .into_iter()
    .filter(|(wit, _)| events.contains(*wit))
    .fold(Events::NONE, |all, (_, ours)| all | ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use witm_flow::testing::tflow;

    /// A store for `settings` with nothing granted, as an instance has.
    fn store_state(settings: PluginSettings) -> StoreState {
        let settings = Arc::new(settings);
        let own_ports: Arc<[u16]> = Arc::from([]);
        let shared = Shared {
            kv: KvStore::default(),
            log: Arc::new(LogBudget::new("test", &settings)),
            replay: Arc::new(ReplayGate::new(Arc::default(), own_ports.clone())),
            outbound: Arc::new(OutboundGate::new(Arc::default(), own_ports, Arc::default())),
            tick: Arc::default(),
        };
        StoreState::new(settings, shared).unwrap()
    }

    /// When the plugin holds all the handles it may, the flow it cannot be
    /// lent stays with the proxy as it was (the call fails), not emptied.
    #[test]
    fn a_flow_that_cannot_be_lent_is_kept() {
        let mut state = store_state(PluginSettings {
            max_handles: 1,
            ..PluginSettings::default()
        });
        let kept = witm_flow::Response::make(200, witm_flow::Headers::new(), "");
        state
            .view()
            .push_view(
                |v| &mut v.responses,
                crate::resources::ResponseHandle::Detached {
                    response: Box::new(kept),
                    generation: 0,
                    charged: 0,
                },
            )
            .unwrap();
        let mut flow = tflow("http://example.com/kept");
        let id = flow.id.clone();
        let mut event = Delivery::Flow(FlowEvent::Request, &mut flow);
        let mut lent = Lent::default();
        let refused = lend(&mut state, &mut event, &mut lent).unwrap_err();
        assert!(
            refused.to_string().contains("too many handles"),
            "{refused}"
        );
        take_back("test", &mut state, &mut event, lent, true);
        assert_eq!((flow.id, flow.request.path.as_str()), (id, "/kept"));
    }

    /// A plugin's duplicate of a flow is charged to its budget with the
    /// entry that holds it (a slot of ~900 bytes whatever the flow holds),
    /// and all of it given back when the plugin drops the copy.
    #[test]
    fn a_duplicate_is_charged_with_its_entry_until_dropped() {
        use crate::bindings::types::{HostContext, HostFlow};
        let mut state = store_state(PluginSettings::default());
        let mut flow = tflow("http://example.com/copied");
        let held = flow.held_bytes();
        let mut event = Delivery::Flow(FlowEvent::Request, &mut flow);
        let mut lent = Lent::default();
        lend(&mut state, &mut event, &mut lent).unwrap();
        let context = Resource::new_borrow(0);
        let copy = state
            .view()
            .duplicate_flow(context, borrow(&lent.flow))
            .unwrap();
        let charged = state.host.budget.used();
        assert_eq!(charged, held + std::mem::size_of::<FlowEntry>());
        HostFlow::drop(&mut state.view(), copy).unwrap();
        assert_eq!(state.host.budget.used(), 0);
        take_back("test", &mut state, &mut event, lent, false);
        assert_eq!(flow.request.path, "/copied");
    }
}
