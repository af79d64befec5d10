//! One plugin: its compiled component, its live instance, and how an event
//! is delivered to it with its failures contained.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Engine, Store, UpdateDeadline};
use witm_flow::{ClientConn, ClientHello, Events, Flow, WebSocketMessage};

use crate::bindings::{PluginBindings, PluginBindingsPre, types};
use crate::resources::ServerConnHandle;
use crate::resources::{
    ClientConnHandle, ClientHelloEntry, ContextHandle, FlowEntry, WebSocketMessageEntry,
};
use crate::runtime::PluginRuntime;
use crate::state::{KvStore, StoreState};

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

/// A plugin as given on the command line: a component file and the
/// arguments that follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSpec {
    /// The component file.
    pub path: PathBuf,
    /// Arguments passed to `start`.
    pub args: Vec<String>,
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

/// A running instance of the component, with the store it lives in.
struct Live {
    store: Store<StoreState>,
    bindings: PluginBindings,
    context: Resource<ContextHandle>,
}

/// Counters for the summary at exit.
#[derive(Default, Debug)]
pub struct PluginStats {
    /// Events delivered.
    pub calls: AtomicU64,
    /// Events that ended in a trap (including deadline and memory limit).
    pub failures: AtomicU64,
    /// Total time spent inside the plugin, in nanoseconds.
    pub busy_ns: AtomicU64,
}

/// A loaded plugin. Its events run one at a time on one instance, like a
/// mitmproxy script, so its global variables work as state.
pub struct Plugin {
    name: String,
    args: Vec<String>,
    pre: PluginBindingsPre<StoreState>,
    engine: Engine,
    memory_bytes: usize,
    event_deadline: Duration,
    subscriptions: Events,
    live: Mutex<Option<Live>>,
    stats: Arc<PluginStats>,
    kv: KvStore,
    replayer: Arc<std::sync::OnceLock<witm_flow::Replayer>>,
    /// Set once `done` has run: later events (a pooled server connection
    /// closing at exit) are dropped instead of starting the plugin again.
    finished: std::sync::atomic::AtomicBool,
}

impl Plugin {
    /// Compiles (or loads from the cache) the component at `spec.path`,
    /// checks that it implements the `witm:plugin` world, instantiates it and
    /// runs `start`.
    pub async fn load(
        runtime: &PluginRuntime,
        spec: &PluginSpec,
        name: String,
    ) -> Result<Self, LoadError> {
        let component = compile(runtime.engine(), &spec.path).await?;
        let pre = instantiate_pre(runtime.linker(), &component)
            .map_err(|e| LoadError(format!("{}: {e}", spec.path.display())))?;
        let mut plugin = Self {
            name,
            args: spec.args.clone(),
            pre,
            engine: runtime.engine().clone(),
            memory_bytes: runtime.options().memory_bytes,
            event_deadline: runtime.options().event_deadline,
            subscriptions: Events::NONE,
            live: Mutex::new(None),
            stats: Arc::default(),
            kv: KvStore::default(),
            replayer: runtime.replayer(),
            finished: Default::default(),
        };
        let (live, subscriptions) = plugin
            .start_instance()
            .await
            .map_err(|e| LoadError(format!("{}: start failed: {e}", plugin.name)))?;
        plugin.subscriptions = subscriptions;
        *plugin.live.get_mut() = Some(live);
        Ok(plugin)
    }

    /// The plugin's name in logs: its file name without the extension.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The events the plugin's `start` subscribed to.
    pub fn subscriptions(&self) -> Events {
        self.subscriptions
    }

    /// Counters of this plugin's calls.
    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// A fresh instance with `start` run on it.
    async fn start_instance(&self) -> Result<(Live, Events), String> {
        let mut store = Store::new(
            &self.engine,
            StoreState::new(
                &self.name,
                self.memory_bytes,
                self.kv.clone(),
                self.replayer.clone(),
            ),
        );
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        self.arm_deadline(&mut store);
        let bindings = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| describe_failure(&e))?;
        let context = store
            .data_mut()
            .table
            .push(ContextHandle)
            .map_err(|e| e.to_string())?;
        self.arm_deadline(&mut store);
        let started = bindings
            .call_start(&mut store, Resource::new_borrow(context.rep()), &self.args)
            .await
            .map_err(|e| describe_failure(&e))?;
        let subscriptions = started.map(events_from_wit)?;
        Ok((
            Live {
                store,
                bindings,
                context,
            },
            subscriptions,
        ))
    }

    fn arm_deadline(&self, store: &mut Store<StoreState>) {
        store.data_mut().deadline = Instant::now() + self.event_deadline;
        store.set_epoch_deadline(1);
    }

    /// Delivers a per-flow event. On failure the flow is left as it was
    /// before the call and the instance is replaced.
    pub(crate) async fn call_flow(&self, event: FlowEvent, flow: &mut Flow) {
        let mut guard = self.live.lock().await;
        let Some(live) = self.ready(&mut guard).await else {
            return;
        };
        let generation = live.store.data_mut().generation();
        let entry = FlowEntry::new(std::mem::take(flow), generation);
        let handle = match live.store.data_mut().table.push(entry) {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(plugin = %self.name, "cannot lend the flow: {e}");
                return;
            }
        };
        let borrow = Resource::<FlowEntry>::new_borrow(handle.rep());
        let context = Resource::new_borrow(live.context.rep());
        self.arm_deadline(&mut live.store);
        let started = Instant::now();
        let bindings = &live.bindings;
        let store = &mut live.store;
        let outcome = match event {
            FlowEvent::Request => bindings.call_request(&mut *store, context, borrow).await,
            FlowEvent::Response => bindings.call_response(&mut *store, context, borrow).await,
            FlowEvent::Error => bindings.call_error(&mut *store, context, borrow).await,
            FlowEvent::HttpConnect => {
                bindings
                    .call_http_connect(&mut *store, context, borrow)
                    .await
            }
            FlowEvent::RequestHeaders => {
                bindings
                    .call_request_headers(&mut *store, context, borrow)
                    .await
            }
            FlowEvent::ResponseHeaders => {
                bindings
                    .call_response_headers(&mut *store, context, borrow)
                    .await
            }
        };
        self.record(started, outcome.is_err());
        match store.data_mut().table.delete(handle) {
            Ok(entry) => *flow = entry.into_flow(outcome.is_err()),
            Err(e) => {
                tracing::error!(plugin = %self.name, "the flow lent to the plugin is lost: {e}")
            }
        }
        if let Err(e) = outcome {
            let name = match event {
                FlowEvent::Request => "request",
                FlowEvent::Response => "response",
                FlowEvent::Error => "error",
                FlowEvent::HttpConnect => "http-connect",
                FlowEvent::RequestHeaders => "request-headers",
                FlowEvent::ResponseHeaders => "response-headers",
            };
            self.replace_after_failure(&mut guard, name, &e).await;
        }
    }

    /// Delivers a per-connection event.
    pub(crate) async fn call_conn(&self, event: ConnEvent, conn: &Arc<ClientConn>) {
        let mut guard = self.live.lock().await;
        let Some(live) = self.ready(&mut guard).await else {
            return;
        };
        let handle = match live
            .store
            .data_mut()
            .table
            .push(ClientConnHandle(conn.clone()))
        {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(plugin = %self.name, "cannot lend the connection: {e}");
                return;
            }
        };
        let borrow = Resource::<ClientConnHandle>::new_borrow(handle.rep());
        let context = Resource::new_borrow(live.context.rep());
        self.arm_deadline(&mut live.store);
        let started = Instant::now();
        let outcome = match event {
            ConnEvent::Connect => {
                live.bindings
                    .call_client_connect(&mut live.store, context, borrow)
                    .await
            }
            ConnEvent::Disconnect => {
                live.bindings
                    .call_client_disconnect(&mut live.store, context, borrow)
                    .await
            }
        };
        self.record(started, outcome.is_err());
        let _ = live.store.data_mut().table.delete(handle);
        if let Err(e) = outcome {
            let name = match event {
                ConnEvent::Connect => "client-connect",
                ConnEvent::Disconnect => "client-disconnect",
            };
            self.replace_after_failure(&mut guard, name, &e).await;
        }
    }

    /// Delivers `server-connect` or `server-disconnect`.
    pub(crate) async fn call_server(&self, connected: bool, server: &Arc<witm_flow::ServerConn>) {
        let mut guard = self.live.lock().await;
        let Some(live) = self.ready(&mut guard).await else {
            return;
        };
        let handle = match live
            .store
            .data_mut()
            .table
            .push(ServerConnHandle(server.clone()))
        {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(plugin = %self.name, "cannot lend the server connection: {e}");
                return;
            }
        };
        let borrow = Resource::<ServerConnHandle>::new_borrow(handle.rep());
        let context = Resource::new_borrow(live.context.rep());
        self.arm_deadline(&mut live.store);
        let started = Instant::now();
        let outcome = if connected {
            live.bindings
                .call_server_connect(&mut live.store, context, borrow)
                .await
        } else {
            live.bindings
                .call_server_disconnect(&mut live.store, context, borrow)
                .await
        };
        self.record(started, outcome.is_err());
        let _ = live.store.data_mut().table.delete(handle);
        if let Err(e) = outcome {
            let name = if connected {
                "server-connect"
            } else {
                "server-disconnect"
            };
            self.replace_after_failure(&mut guard, name, &e).await;
        }
    }

    /// Delivers `tls-clienthello`. On failure the hello is left as it was.
    pub(crate) async fn call_hello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
        let mut guard = self.live.lock().await;
        let Some(live) = self.ready(&mut guard).await else {
            return;
        };
        let table = &mut live.store.data_mut().table;
        let (conn_handle, hello_handle) = match (
            table.push(ClientConnHandle(conn.clone())),
            table.push(ClientHelloEntry(hello.clone())),
        ) {
            (Ok(c), Ok(h)) => (c, h),
            _ => {
                tracing::error!(plugin = %self.name, "cannot lend the client hello");
                return;
            }
        };
        let context = Resource::new_borrow(live.context.rep());
        self.arm_deadline(&mut live.store);
        let started = Instant::now();
        let outcome = live
            .bindings
            .call_tls_clienthello(
                &mut live.store,
                context,
                Resource::new_borrow(conn_handle.rep()),
                Resource::new_borrow(hello_handle.rep()),
            )
            .await;
        self.record(started, outcome.is_err());
        let table = &mut live.store.data_mut().table;
        let _ = table.delete(conn_handle);
        let changed = table.delete(hello_handle);
        match outcome {
            Ok(()) => {
                if let Ok(entry) = changed {
                    *hello = entry.0;
                }
            }
            Err(e) => {
                self.replace_after_failure(&mut guard, "tls-clienthello", &e)
                    .await
            }
        }
    }

    /// Delivers `websocket-message`. On failure the flow and the message are
    /// left as they were.
    pub(crate) async fn call_websocket(&self, flow: &mut Flow, message: &mut WebSocketMessage) {
        let mut guard = self.live.lock().await;
        let Some(live) = self.ready(&mut guard).await else {
            return;
        };
        let generation = live.store.data_mut().generation();
        let table = &mut live.store.data_mut().table;
        let flow_handle = match table.push(FlowEntry::new(std::mem::take(flow), generation)) {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(plugin = %self.name, "cannot lend the flow: {e}");
                return;
            }
        };
        let message_handle = match table.push(WebSocketMessageEntry(message.clone())) {
            Ok(handle) => handle,
            Err(e) => {
                if let Ok(entry) = table.delete(flow_handle) {
                    *flow = entry.into_flow(true);
                }
                tracing::error!(plugin = %self.name, "cannot lend the message: {e}");
                return;
            }
        };
        let context = Resource::new_borrow(live.context.rep());
        self.arm_deadline(&mut live.store);
        let started = Instant::now();
        let outcome = live
            .bindings
            .call_websocket_message(
                &mut live.store,
                context,
                Resource::new_borrow(flow_handle.rep()),
                Resource::new_borrow(message_handle.rep()),
            )
            .await;
        self.record(started, outcome.is_err());
        let table = &mut live.store.data_mut().table;
        if let Ok(entry) = table.delete(flow_handle) {
            *flow = entry.into_flow(outcome.is_err());
        }
        let changed = table.delete(message_handle);
        match outcome {
            Ok(()) => {
                if let Ok(entry) = changed {
                    *message = entry.0;
                }
            }
            Err(e) => {
                self.replace_after_failure(&mut guard, "websocket-message", &e)
                    .await
            }
        }
    }

    /// Runs `done` (if subscribed) and drops the instance.
    pub(crate) async fn done(&self) {
        let mut guard = self.live.lock().await;
        if self.subscriptions.contains(Events::DONE)
            && let Some(live) = self.ready(&mut guard).await
        {
            self.arm_deadline(&mut live.store);
            let context = Resource::new_borrow(live.context.rep());
            let started = Instant::now();
            let outcome = live.bindings.call_done(&mut live.store, context).await;
            self.record(started, outcome.is_err());
            if let Err(e) = outcome {
                tracing::error!(plugin = %self.name, "done failed: {}", describe_failure(&e));
            }
        }
        *guard = None;
        self.finished.store(true, Ordering::Relaxed);
    }

    /// The live instance, starting a new one if the last one was lost.
    async fn ready<'a>(&self, guard: &'a mut Option<Live>) -> Option<&'a mut Live> {
        if guard.is_none() && !self.finished.load(Ordering::Relaxed) {
            match self.start_instance().await {
                Ok((live, _)) => *guard = Some(live),
                Err(e) => {
                    tracing::error!(plugin = %self.name, "cannot restart the plugin, event skipped: {e}");
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
        guard: &mut Option<Live>,
        event: &str,
        error: &wasmtime::Error,
    ) {
        tracing::error!(
            plugin = %self.name,
            "{event} failed, the flow goes on as before the call: {}",
            describe_failure(error)
        );
        *guard = None;
        match self.start_instance().await {
            Ok((live, _)) => {
                tracing::info!(plugin = %self.name, "instance replaced and started again");
                *guard = Some(live);
            }
            Err(e) => tracing::error!(plugin = %self.name, "cannot restart the plugin: {e}"),
        }
    }

    fn record(&self, started: Instant, failed: bool) {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats
            .busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if failed {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
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
        Some(wasmtime::Trap::Interrupt) => "CPU deadline exceeded (epoch interrupt)".to_owned(),
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
    ]
    .into_iter()
    .filter(|(wit, _)| events.contains(*wit))
    .fold(Events::NONE, |all, (_, ours)| all | ours)
}
