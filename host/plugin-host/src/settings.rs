//! What one plugin is allowed and how it runs: its capabilities (deny by
//! default), its limits, what happens to a flow when it fails, and how many
//! instances serve it.

use std::path::PathBuf;
use std::time::Duration;

/// A plugin's capabilities and limits. The defaults grant nothing: no
/// files, no environment variables, no sockets.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSettings {
    /// Linear memory one instance may use, in bytes.
    pub memory_bytes: usize,
    /// Time one event may run (wall clock, from the call's start; a host
    /// call that waits counts too) before it is interrupted.
    pub event_deadline: Duration,
    /// Fuel (roughly, wasm instructions) one event may burn; `None` for no
    /// fuel limit. Only honoured when the runtime was built with fuel on.
    pub fuel: Option<u64>,
    /// What happens to the flow when the plugin fails or is skipped.
    pub failure: FailurePolicy,
    /// 1: one instance, events one at a time (mitmproxy semantics: globals
    /// work). More: a stateless pool of that many instances, for parallel
    /// flows; state shared between them goes in the key-value store.
    pub instances: usize,
    /// Longest wait for a free instance before the event is skipped (and
    /// the failure policy applied) — bounded, never a deadlock.
    pub queue_timeout: Duration,
    /// Host directories the plugin may open.
    pub dirs: Vec<DirGrant>,
    /// Names of environment variables passed through from witm's own
    /// environment.
    pub env: Vec<String>,
    /// Bytes the host may hold for one instance: responses it makes, flows
    /// it duplicates, what it adds to the flows it is lent (headers, bodies,
    /// metadata, comments).
    pub host_memory_bytes: usize,
    /// Bytes of keys and values in the plugin's key-value store.
    pub kv_bytes: usize,
    /// Handles one instance may hold at once, of each kind: flows and their
    /// parts (requests, responses, headers), and every other handle (the
    /// store's resource table: connections, the context).
    pub max_handles: usize,
    /// Log output (`context.log`, stdout, stderr) the plugin may write per
    /// second, with bursts of four times as much; the rest is dropped and
    /// counted.
    pub log_bytes_per_s: usize,
    /// Longest log line; longer ones are cut.
    pub log_line_bytes: usize,
    /// Where `replay-request` and `http-send` may send requests; empty:
    /// nowhere.
    pub allowed_hosts: Vec<HostPattern>,
    /// Replays one plugin may have in flight at once.
    pub max_replays_in_flight: usize,
    /// How deep replays may nest: 1 lets a plugin replay a client's request
    /// but not a replay.
    pub max_replay_depth: u32,
    /// Longest `http-send` (connect, send, whole response), and its
    /// default; a plugin may ask for less. The event's deadline bounds it
    /// too.
    pub outbound_timeout: Duration,
    /// Longest response body `http-send` accepts.
    pub max_outbound_response_bytes: usize,
    /// `http-send` calls one event may make.
    pub max_outbound_per_event: u32,
    /// `http-send` calls one plugin (all its instances) may have waiting at
    /// once.
    pub max_outbound_in_flight: usize,
    /// Shortest period `set-tick` accepts.
    pub min_tick: Duration,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            event_deadline: Duration::from_secs(5),
            fuel: None,
            failure: FailurePolicy::Open,
            instances: 1,
            queue_timeout: Duration::from_secs(10),
            dirs: Vec::new(),
            env: Vec::new(),
            host_memory_bytes: 64 << 20,
            kv_bytes: 16 << 20,
            max_handles: 10_000,
            log_bytes_per_s: 64 << 10,
            log_line_bytes: 8 << 10,
            allowed_hosts: Vec::new(),
            max_replays_in_flight: 4,
            max_replay_depth: 1,
            outbound_timeout: Duration::from_secs(2),
            max_outbound_response_bytes: 1 << 20,
            max_outbound_per_event: 4,
            max_outbound_in_flight: 16,
            min_tick: Duration::from_millis(100),
        }
    }
}

/// An entry of `allowed_hosts`: `[scheme://]host[:port]`, where host is a
/// name, an IP address, `*` (any host) or `*.example.com` (any name under
/// it); no scheme or port means any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// `*.example.com`, kept as ".example.com".
    Under(String),
    Exactly(String),
}

impl std::str::FromStr for HostPattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("allowed_hosts: {text:?}: {why}");
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) => (Some(scheme.to_owned()), rest),
            Some(_) => return Err(bad("the scheme must be http or https")),
            None => (None, text),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (
                host,
                Some(
                    port.parse::<u16>()
                        .map_err(|_| bad("the port is not a number"))?,
                ),
            ),
            _ => (rest, None),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host = match host.as_str() {
            "" => return Err(bad("no host")),
            "*" => HostMatch::Any,
            h if h.starts_with("*.") && h.len() > 2 => HostMatch::Under(h[1..].to_owned()),
            h if h.contains('*') || h.contains('/') => {
                return Err(bad("a host is a name, an address, * or *.domain"));
            }
            h => HostMatch::Exactly(h.to_owned()),
        };
        Ok(Self { scheme, host, port })
    }
}

impl HostPattern {
    /// Whether a request to `scheme://host:port` matches.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.scheme
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(scheme))
            && self.port.is_none_or(|p| p == port)
            && match &self.host {
                HostMatch::Any => true,
                HostMatch::Under(suffix) => host.to_ascii_lowercase().ends_with(suffix.as_str()),
                HostMatch::Exactly(h) => h.eq_ignore_ascii_case(host),
            }
    }

    /// Whether this entry names `host` itself (not through a wildcard) —
    /// with `port` too when `need_port`: only such an entry grants loopback,
    /// private addresses or witm's own ports.
    pub fn names(&self, host: &str, port: u16, need_port: bool) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        matches!(&self.host, HostMatch::Exactly(h) if h.eq_ignore_ascii_case(host))
            && match self.port {
                Some(p) => p == port,
                None => !need_port,
            }
    }
}

/// A host directory granted to a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the plugin sees it (e.g. "/data").
    pub guest: String,
    /// Whether the plugin may create, change and delete files in it.
    pub writable: bool,
}

/// What happens to a flow when a plugin's call fails (trap, deadline,
/// memory, fuel) or is skipped (backing off, no free instance).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The flow goes on as it was before the call.
    #[default]
    Open,
    /// The client gets a 502 naming the plugin.
    Closed,
}

impl std::str::FromStr for FailurePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(FailurePolicy::Open),
            "closed" => Ok(FailurePolicy::Closed),
            other => Err(format!("{other:?}: a failure policy is open or closed")),
        }
    }
}

impl std::fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailurePolicy::Open => "open",
            FailurePolicy::Closed => "closed",
        })
    }
}
