//! Flows and the connections they belong to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use crate::message::{Request, Response};
use crate::metadata::MetaValue;

/// A fresh id shaped like a random (v4) UUID, as mitmproxy's are.
///
/// Made without a system call: one random seed per process, then a counter
/// scrambled by SplitMix64, a bijection — so ids never repeat in a process
/// and are unpredictable across processes. `Uuid::new_v4` would read the
/// OS random source for every flow and every connection.
fn new_id() -> String {
    static SEED: LazyLock<u64> = LazyLock::new(|| {
        let random = uuid::Uuid::new_v4().as_u64_pair();
        random.0 ^ random.1
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = splitmix64(SEED.wrapping_add(n));
    let low = splitmix64(high ^ *SEED);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    // Encoded into a buffer, not formatted: `to_string` goes through `fmt`
    // (~300 instructions of every flow).
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    uuid.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A client connection to the proxy (mitmproxy's `ClientConnect`).
#[derive(Clone, Debug)]
pub struct ClientConn {
    /// Unique id.
    pub id: String,
    /// The client's address.
    pub address: SocketAddr,
    /// When the client connected, ms since the Unix epoch.
    pub timestamp_start: u64,
    /// The TLS facts, once witm has intercepted TLS on this connection.
    pub tls: Option<ClientTls>,
}

/// What the client said in its TLS handshake with witm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// The server name it asked for (SNI), if any.
    pub sni: Option<String>,
    /// The application protocol agreed (ALPN), e.g. "h2".
    pub alpn: Option<String>,
}

/// A client's TLS ClientHello, as the `tls-clienthello` event shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The server name asked for (SNI).
    pub sni: Option<String>,
    /// The application protocols offered (ALPN), in the client's order.
    pub alpn: Vec<String>,
    /// Set by a plugin: pass this connection through uninspected.
    pub ignore_connection: bool,
}

/// One WebSocket message, as the `websocket-message` event shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebSocketMessage {
    /// True when the client sent it, false when the server did.
    pub from_client: bool,
    /// A text message (else binary).
    pub is_text: bool,
    /// The payload.
    pub content: Vec<u8>,
    /// Set by a plugin: do not deliver it.
    pub dropped: bool,
}

/// The facts of a certificate (mitmproxy's `SSLCert`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. "CN=example.com".
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, hex bytes separated by ':'.
    pub serial: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// Subject alternative names: DNS names and IP addresses.
    pub sans: Vec<String>,
    /// The certificate as DER.
    pub der: Vec<u8>,
}

/// The server side of a flow, when witm connected to it over TLS itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerConn {
    /// "host:port" witm connected to.
    pub address: String,
    /// The server name witm sent (SNI), if any.
    pub sni: Option<String>,
    /// The application protocol agreed with the server (ALPN).
    pub alpn: Option<String>,
    /// The server's certificate.
    pub cert: Option<CertInfo>,
    /// The address witm connected to (the name resolved), when known.
    pub peername: Option<SocketAddr>,
    /// When witm began to connect, ms since the Unix epoch.
    pub timestamp_start: Option<u64>,
    /// When the TCP connection was up.
    pub timestamp_tcp_setup: Option<u64>,
    /// When the TLS handshake was done (HTTPS).
    pub timestamp_tls_setup: Option<u64>,
}

impl ClientConn {
    /// A connection from `address`, starting now, with a fresh id.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            id: new_id(),
            address,
            timestamp_start: crate::now_ms(),
            tls: None,
        }
    }
}

impl Default for ClientConn {
    fn default() -> Self {
        Self::new(SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

/// A communication error (mitmproxy's `Error`): the flow got no response
/// from the server — it could not be reached, broke off, sent what witm
/// cannot forward, or a plugin failed. Not an HTTP error status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowError {
    /// Where it came from (which also decides the client's status).
    pub kind: ErrorKind,
    /// What went wrong, for people.
    pub message: String,
    /// When it happened, ms since the Unix epoch.
    pub timestamp: u64,
}

impl FlowError {
    /// An error that happens now.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            timestamp: crate::now_ms(),
        }
    }
}

/// Where a flow's failure came from. The proxy maps it to the status the
/// client gets in one place; plugins see it beside the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The client sent what witm cannot forward (a malformed body …): 400.
    Client,
    /// The server could not be reached or broke the exchange: 502. Also
    /// what errors read from other tools' files are, which name no origin.
    #[default]
    Server,
    /// The server did not answer in time: 504.
    Timeout,
    /// TLS with the server failed (its certificate, the handshake): 502.
    Tls,
    /// A plugin failed and its failure policy is closed: 502.
    Plugin,
    /// witm itself failed: 500.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Client,
        ErrorKind::Server,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Plugin,
        ErrorKind::Internal,
    ];

    /// The name in flow files and logs ("client", "server", …).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Client => "client",
            ErrorKind::Server => "server",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Internal => "internal",
        }
    }

    /// The status witm answers the client with for a failure of this kind:
    /// the one place it is decided (the proxy and the plugin host both ask).
    pub const fn status(self) -> u16 {
        match self {
            ErrorKind::Client => 400,
            ErrorKind::Server | ErrorKind::Tls | ErrorKind::Plugin => 502,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The marker `set-marked(true)` gives, mitmproxy's default.
pub const DEFAULT_MARKER: &str = ":default:";

/// Which side of a flow witm replayed (mitmproxy's `is_replay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaySide {
    /// The request was sent again: client replay, `replay-request`.
    Request,
    /// The response came from a saved flow: server replay.
    Response,
}

impl ReplaySide {
    /// mitmproxy's name: "request" or "response".
    pub fn name(self) -> &'static str {
        match self {
            ReplaySide::Request => "request",
            ReplaySide::Response => "response",
        }
    }

    /// The side `name` stands for, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "request" => Some(ReplaySide::Request),
            "response" => Some(ReplaySide::Response),
            _ => None,
        }
    }
}

/// One HTTP transaction (mitmproxy's `Flow`).
#[derive(Clone, Debug)]
pub struct Flow {
    /// Unique id.
    pub id: String,
    /// The connection the request came on; shared by its flows.
    pub client: Arc<ClientConn>,
    /// The request.
    pub request: Request,
    /// The response, once there is one.
    pub response: Option<Response>,
    /// The error, if the flow failed.
    pub error: Option<FlowError>,
    /// The TLS connection to the server, for intercepted HTTPS.
    pub server_conn: Option<Arc<ServerConn>>,
    /// Plugins' notes on the flow, kept with it (and saved with it), in
    /// the order they were set; values keep their types (a capture's).
    pub metadata: Vec<(String, MetaValue)>,
    /// Its marker, as mitmproxy keeps it: "" for none, [`DEFAULT_MARKER`]
    /// when a plugin marks it (`set-marked`), or a named one from a
    /// capture (":red_circle:"). See [`Flow::is_marked`].
    pub marker: String,
    /// A free-text comment.
    pub comment: String,
    /// Set by a plugin's `kill`: the client connection is dropped.
    pub killed: bool,
    /// How many replays deep this flow is: 0 for a client's own request, 1
    /// for a plugin's replay of it, and so on. Bounds replay loops.
    pub replay_depth: u32,
    /// What witm replayed of this flow, as mitmproxy's `is_replay`: its
    /// request (client replay, a plugin's `replay-request`) or its
    /// response (server replay). Saved with the flow.
    pub is_replay: Option<ReplaySide>,
    /// For a flow that opened a WebSocket: its messages and close.
    pub websocket: Option<Box<crate::WebSocketData>>,
    /// For a TCP flow (mitmproxy's `TCPFlow`): its messages. Its request
    /// only names the target (`tcp://host:port`, no method), and its
    /// `server_conn` the server.
    pub tcp: Option<Box<crate::TcpData>>,
    /// Where the flow's server connection goes, when a plugin chose it
    /// (`set-upstream`); `None`: the listener's mode decides.
    pub route: Option<crate::Route>,
}

/// What one metadata entry costs the host beyond its key and value.
pub const METADATA_OVERHEAD: usize = 48;

/// The connection of a flow that has none (a default flow).
static NO_CLIENT: LazyLock<Arc<ClientConn>> = LazyLock::new(|| Arc::new(ClientConn::default()));

/// An empty flow; allocates nothing, so `std::mem::take` of a flow is cheap.
impl Default for Flow {
    fn default() -> Self {
        Self {
            id: String::new(),
            client: NO_CLIENT.clone(),
            request: Request::default(),
            response: None,
            error: None,
            server_conn: None,
            metadata: Vec::new(),
            marker: String::new(),
            comment: String::new(),
            killed: false,
            replay_depth: 0,
            is_replay: None,
            websocket: None,
            tcp: None,
            route: None,
        }
    }
}

impl Flow {
    /// A fresh flow id.
    pub fn new_id() -> String {
        new_id()
    }

    /// A TCP flow to `host:port` on `client`, with no messages yet.
    pub fn tcp(client: Arc<ClientConn>, host: &str, port: u16) -> Self {
        let request = Request {
            method: String::new(),
            scheme: "tcp".into(),
            host: host.to_owned(),
            port,
            path: String::new(),
            http_version: String::new(),
            timestamp_start: crate::now_ms(),
            ..Request::default()
        };
        let mut flow = Flow::new(client, request);
        flow.tcp = Some(Box::default());
        flow.server_conn = Some(Arc::new(ServerConn {
            address: format!("{host}:{port}"),
            ..ServerConn::default()
        }));
        flow
    }

    /// Whether this is a TCP flow (mitmproxy's `TCPFlow`), not HTTP.
    pub fn is_tcp(&self) -> bool {
        self.tcp.is_some()
    }

    /// Whether the flow opened a WebSocket: a `101` answer to a request
    /// with `Upgrade: websocket`.
    pub fn is_websocket(&self) -> bool {
        self.response.as_ref().is_some_and(|r| r.status == 101)
            && self
                .request
                .headers
                .get("upgrade")
                .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    }

    /// Whether the flow has a marker.
    pub fn is_marked(&self) -> bool {
        !self.marker.is_empty()
    }

    /// Marks the flow with [`DEFAULT_MARKER`] (keeping a named marker it
    /// already has), or clears its marker.
    pub fn set_marked(&mut self, marked: bool) {
        if !marked {
            self.marker.clear();
        } else if self.marker.is_empty() {
            self.marker = DEFAULT_MARKER.to_owned();
        }
    }

    /// What the host holds for this flow (request, response, metadata,
    /// comment), for memory budgets; bodies shared with others count in full.
    pub fn held_bytes(&self) -> usize {
        use crate::message::HttpMessage;
        self.request.held_bytes()
            + self.response.as_ref().map_or(0, |r| r.held_bytes())
            + self
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.held_bytes() + METADATA_OVERHEAD)
                .sum::<usize>()
            + self.comment.len()
            + self.websocket.as_ref().map_or(0, |w| w.kept_bytes())
            + self.tcp.as_ref().map_or(0, |t| t.kept_bytes())
    }

    /// The metadata value of `key`.
    pub fn metadata_get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets (or, with `None`, removes) the metadata value of `key`.
    pub fn metadata_set(&mut self, key: &str, value: Option<MetaValue>) {
        match (self.metadata.iter().position(|(k, _)| k == key), value) {
            (Some(i), Some(value)) => self.metadata[i].1 = value,
            (Some(i), None) => {
                self.metadata.remove(i);
            }
            (None, Some(value)) => self.metadata.push((key.to_owned(), value)),
            (None, None) => {}
        }
    }

    /// A new flow for `request` received on `client`.
    pub fn new(client: Arc<ClientConn>, request: Request) -> Self {
        Self {
            id: Self::new_id(),
            client,
            request,
            response: None,
            error: None,
            server_conn: None,
            metadata: Vec::new(),
            marker: String::new(),
            comment: String::new(),
            killed: false,
            replay_depth: 0,
            is_replay: None,
            websocket: None,
            tcp: None,
            route: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v4_shaped_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        let id = uuid::Uuid::parse_str(ids.iter().next().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4);
        // Written as `Uuid`'s `Display` writes them (hyphens, lower case).
        for text in ids.iter().take(100) {
            assert_eq!(uuid::Uuid::parse_str(text).unwrap().to_string(), *text);
        }
    }
}
