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
    /// CPU time one event may take before it is interrupted.
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
