//! One plugin: its compiled component, its live instance, and how an event
//! is delivered to it with its failures contained.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use wasmtime::component::{Component, Linker, Resource, ResourceTableError};
use wasmtime::{Engine, Store, UpdateDeadline};
use witm_flow::{ClientConn, ClientHello, Events, Flow, ServerConn, WebSocketMessage};

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
}

impl Delivery<'_> {
    /// The event's WIT name, for logs.
    fn name(&self) -> &'static str {
        match self {
            Delivery::Flow(FlowEvent::Request, _) => "request",
            Delivery::Flow(FlowEvent::Response, _) => "response",
            Delivery::Flow(FlowEvent::Error, _) => "error",
            Delivery::Flow(FlowEvent::HttpConnect, _) => "http-connect",
            Delivery::Flow(FlowEvent::RequestHeaders, _) => "request-headers",
            Delivery::Flow(FlowEvent::ResponseHeaders, _) => "response-headers",
            Delivery::Conn(ConnEvent::Connect, _) => "client-connect",
            Delivery::Conn(ConnEvent::Disconnect, _) => "client-disconnect",
            Delivery::Server {
                connected: true, ..
            } => "server-connect",
            Delivery::Server {
                connected: false, ..
            } => "server-disconnect",
            Delivery::ClientHello(..) => "tls-clienthello",
            Delivery::WebSocket(..) => "websocket-message",
        }
    }
}

/// The table entries lent for one call.
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

/// Moves (the flow) or shares (connections) what `event` carries into the table.
fn lend(
    state: &mut StoreState,
    event: &mut Delivery<'_>,
    lent: &mut Lent,
) -> Result<(), ResourceTableError> {
    if let Delivery::Flow(_, flow) | Delivery::WebSocket(flow, _) = event {
        let generation = state.generation();
        lent.flow = Some(
            state
                .table
                .push(FlowEntry::new(std::mem::take(*flow), generation))?,
        );
    }
    match event {
        Delivery::Conn(_, conn) | Delivery::ClientHello(conn, _) => {
            lent.conn = Some(state.table.push(ClientConnHandle(Arc::clone(conn)))?);
        }
        Delivery::Server { server, .. } => {
            lent.server = Some(state.table.push(ServerConnHandle(Arc::clone(server)))?);
        }
        _ => {}
    }
    match event {
        Delivery::ClientHello(_, hello) => {
            lent.hello = Some(state.table.push(ClientHelloEntry((**hello).clone()))?)
        }
        Delivery::WebSocket(_, message) => {
            lent.message = Some(
                state
                    .table
                    .push(WebSocketMessageEntry((**message).clone()))?,
            )
        }
        _ => {}
    }
    Ok(())
}

/// Takes back what [`lend`] put in the table: the flow as the plugin left
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
        match (state.table.delete(handle), &mut *event) {
            (Ok(entry), Delivery::Flow(_, flow) | Delivery::WebSocket(flow, _)) => {
                **flow = entry.into_flow(failed)
            }
            (Err(e), _) => {
                tracing::error!(plugin = %plugin, "the flow lent to the plugin is lost: {e}")
            }
            _ => {}
        }
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

    /// Delivers one event. What it lends the plugin goes into the store's
    /// table for the call and comes back after it; if the call fails, the
    /// flow (and the hello or message) stay as they were before it, and the
    /// instance is replaced.
    pub(crate) async fn deliver(&self, mut event: Delivery<'_>) {
        let mut guard = self.live.lock().await;
        let Some(live) = self.ready(&mut guard).await else {
            return;
        };
        let mut lent = Lent::default();
        if let Err(e) = lend(live.store.data_mut(), &mut event, &mut lent) {
            tracing::error!(plugin = %self.name, "cannot lend what {} needs: {e}", event.name());
            take_back(&self.name, live.store.data_mut(), &mut event, lent, true);
            return;
        }
        let context = Resource::new_borrow(live.context.rep());
        self.arm_deadline(&mut live.store);
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
        };
        self.record(started, outcome.is_err());
        take_back(&self.name, s.data_mut(), &mut event, lent, outcome.is_err());
        if let Err(e) = outcome {
            self.replace_after_failure(&mut guard, event.name(), &e)
                .await;
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
