//! Saved flows in a running proxy: recording them (`-w`) and answering from
//! them (`--server-replay`), as a layer of hooks around the plugin chain.
//!
//! The layer runs after the plugins in `request` (so a plugin may still
//! change what is matched, or answer itself) and after them in `response` and
//! `error` (so the file holds what the client got).

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use witm_flow::{
    ClientConn, ClientHello, Events, Flow, FlowHooks, Response, ServerConn, WebSocketMessage,
};
use witm_store::{Filter, FlowWriter, StoreError};

/// The plugins, wrapped with recording and server replay.
pub struct SavedFlowHooks<H> {
    plugins: H,
    recorder: Option<Recorder>,
    server_replay: Option<ServerReplay>,
}

impl<H: FlowHooks> SavedFlowHooks<H> {
    /// Wraps `plugins`.
    pub fn new(
        plugins: H,
        recorder: Option<Recorder>,
        server_replay: Option<ServerReplay>,
    ) -> Self {
        Self {
            plugins,
            recorder,
            server_replay,
        }
    }

    /// The plugin chain inside.
    pub fn plugins(&self) -> &H {
        &self.plugins
    }

    /// Writes what is still queued and says how many flows were saved.
    pub fn finish(&self) {
        if let Some(recorder) = &self.recorder {
            recorder.finish();
        }
    }

    fn record(&self, flow: &Flow) {
        if let Some(recorder) = &self.recorder
            && !flow.killed
        {
            recorder.save(flow);
        }
    }
}

impl<H: FlowHooks> FlowHooks for SavedFlowHooks<H> {
    fn subscriptions(&self) -> Events {
        let mut events = self.plugins.subscriptions();
        if self.recorder.is_some() {
            // `request` too, so that request bodies are held and saved.
            events = events | Events::REQUEST | Events::RESPONSE | Events::ERROR;
        }
        if self.server_replay.is_some() {
            events = events | Events::REQUEST;
        }
        events
    }
    async fn request(&self, flow: &mut Flow) {
        self.plugins.request(flow).await;
        if let Some(replay) = &self.server_replay
            && flow.response.is_none()
            && !flow.killed
        {
            replay.answer(flow);
        }
    }
    async fn response(&self, flow: &mut Flow) {
        self.plugins.response(flow).await;
        self.record(flow);
    }
    async fn error(&self, flow: &mut Flow) {
        self.plugins.error(flow).await;
        self.record(flow);
    }
    async fn client_connect(&self, conn: &Arc<ClientConn>) {
        self.plugins.client_connect(conn).await
    }
    async fn client_disconnect(&self, conn: &Arc<ClientConn>) {
        self.plugins.client_disconnect(conn).await
    }
    async fn http_connect(&self, flow: &mut Flow) {
        self.plugins.http_connect(flow).await
    }
    async fn request_headers(&self, flow: &mut Flow) {
        self.plugins.request_headers(flow).await
    }
    async fn response_headers(&self, flow: &mut Flow) {
        self.plugins.response_headers(flow).await
    }
    async fn server_connect(&self, server: &Arc<ServerConn>) {
        self.plugins.server_connect(server).await
    }
    async fn server_disconnect(&self, server: &Arc<ServerConn>) {
        self.plugins.server_disconnect(server).await
    }
    async fn websocket_message(&self, flow: &mut Flow, message: &mut WebSocketMessage) {
        self.plugins.websocket_message(flow, message).await
    }
    async fn tls_clienthello(&self, conn: &Arc<ClientConn>, hello: &mut ClientHello) {
        self.plugins.tls_clienthello(conn, hello).await
    }
}

/// Appends finished flows to a witm flow file on a thread of its own, so a
/// slow disk never holds up a flow.
pub struct Recorder {
    path: PathBuf,
    filter: Option<Filter>,
    queue: Mutex<Option<std::sync::mpsc::Sender<Flow>>>,
    writer: Mutex<Option<std::thread::JoinHandle<u64>>>,
    queued: AtomicU64,
}

impl Recorder {
    /// Creates (truncates) `path` and starts the writer thread.
    pub fn create(path: &Path, filter: Option<Filter>) -> Result<Self, String> {
        let mut writer = FlowWriter::create(path)
            .map_err(|e| format!("cannot write flows to {}: {e}", path.display()))?;
        let (queue, flows) = std::sync::mpsc::channel::<Flow>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("witm-recorder".into())
            .spawn(move || {
                let mut saved = 0;
                for flow in flows {
                    match writer.write(&flow) {
                        Ok(()) => saved += 1,
                        // Only that flow is lost; the file stays readable.
                        Err(e @ StoreError::TooLarge { .. }) => {
                            tracing::warn!("flow {} not saved to {shown}: {e}", flow.id);
                        }
                        Err(e) => {
                            tracing::error!(
                                "cannot write flows to {shown}: {e}; recording stopped"
                            );
                            break;
                        }
                    }
                }
                saved
            })
            .map_err(|e| format!("cannot start the recorder: {e}"))?;
        Ok(Self {
            path: path.to_owned(),
            filter,
            queue: Mutex::new(Some(queue)),
            writer: Mutex::new(Some(thread)),
            queued: AtomicU64::new(0),
        })
    }

    fn save(&self, flow: &Flow) {
        if self.filter.as_ref().is_some_and(|f| !f.matches(flow)) {
            return;
        }
        if let Some(queue) = &*self.queue.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = queue.send(flow.clone());
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the queue, waits for the writer and logs the count.
    pub fn finish(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let saved = thread.join().unwrap_or(0);
            tracing::info!("saved {saved} flows to {}", self.path.display());
        }
    }
}

/// What a request is matched on: method, URL and body, as mitmproxy's
/// server replay does by default.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    method: String,
    url: String,
    body: u64,
}

impl RequestKey {
    fn of(flow: &Flow) -> Self {
        let mut hasher = DefaultHasher::new();
        flow.request
            .body
            .bytes()
            .map(|b| b.as_ref())
            .hash(&mut hasher);
        Self {
            method: flow.request.method.to_ascii_uppercase(),
            url: flow.request.url(),
            body: hasher.finish(),
        }
    }
}

/// What to do with a request no saved flow matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// Send it to the server as usual.
    Forward,
    /// Drop the client connection.
    Kill,
    /// Answer with this status.
    Status(u16),
}

impl std::str::FromStr for Unmatched {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forward" => Ok(Unmatched::Forward),
            "kill" => Ok(Unmatched::Kill),
            code => code
                .parse()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(Unmatched::Status)
                .ok_or_else(|| format!("{s:?}: expected forward, kill or a status code like 404")),
        }
    }
}

/// Answers requests from saved responses (`--server-replay`).
pub struct ServerReplay {
    responses: Mutex<HashMap<RequestKey, VecDeque<Response>>>,
    unmatched: Unmatched,
    reuse: bool,
}

impl ServerReplay {
    /// Indexes the responses of `flows`; flows without one are ignored.
    pub fn new(flows: impl IntoIterator<Item = Flow>, unmatched: Unmatched, reuse: bool) -> Self {
        let mut responses: HashMap<RequestKey, VecDeque<Response>> = HashMap::new();
        for mut flow in flows {
            if let Some(response) = flow.response.take() {
                responses
                    .entry(RequestKey::of(&flow))
                    .or_default()
                    .push_back(response);
            }
        }
        Self {
            responses: Mutex::new(responses),
            unmatched,
            reuse,
        }
    }

    /// How many saved responses are waiting to be served.
    pub fn len(&self) -> usize {
        self.responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(VecDeque::len)
            .sum()
    }

    /// Sets the flow's response from the next saved one for its request, or
    /// applies the unmatched policy. Each saved response is served once
    /// (in order) unless `reuse` is set, like mitmproxy.
    fn answer(&self, flow: &mut Flow) {
        let key = RequestKey::of(flow);
        let saved = {
            let mut responses = self.responses.lock().unwrap_or_else(|e| e.into_inner());
            match responses.get_mut(&key) {
                Some(queue) if self.reuse => queue.front().cloned(),
                Some(queue) => queue.pop_front(),
                None => None,
            }
        };
        match (saved, self.unmatched) {
            (Some(mut response), _) => {
                response.timestamp_start = witm_flow::now_ms();
                flow.response = Some(response);
                flow.metadata_set("replay", Some("response".into()));
            }
            (None, Unmatched::Forward) => {}
            (None, Unmatched::Kill) => flow.killed = true,
            (None, Unmatched::Status(status)) => {
                let body = format!(
                    "witm: no saved response for {} {}\n",
                    flow.request.method,
                    flow.request.url()
                );
                flow.response = Some(Response::make(
                    status,
                    witm_flow::Headers::from_pairs([("content-type", "text/plain")]),
                    body,
                ));
            }
        }
    }
}
