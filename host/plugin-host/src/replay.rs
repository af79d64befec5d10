//! `replay-request` under policy: the proxy sends a request for the
//! plugin, which is outbound network access, so it is a capability — off
//! unless the plugin's `allowed_hosts` grants the target — and bounded:
//! loopback, link-local and private addresses and witm's own ports are
//! refused unless an entry names them, a replay is never replayed past
//! `max_replay_depth`, and a plugin has at most `max_replays_in_flight`
//! replays running; the rest finish, or are cancelled, at shutdown.
//!
//! Names are resolved here and every address checked ([`crate::policy`]).
//! The proxy resolves the name again when it connects, so a DNS server
//! answering differently the second time (rebinding) is not caught for
//! replays; `http-send` connects to the checked address itself.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;
use witm_flow::{Flow, Replayer};

use crate::bindings::types::HostError;
use crate::policy::{InFlight, check_address, check_pattern, resolve};
use crate::settings::PluginSettings;

/// How long `done` waits for replays still in flight before cancelling them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A plugin's replays: the way to the proxy, witm's own ports, and the
/// replays in flight. Shared by the plugin's instances and versions.
pub(crate) struct ReplayGate {
    replayer: Arc<OnceLock<Replayer>>,
    own_ports: Arc<[u16]>,
    in_flight: InFlight,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl ReplayGate {
    pub(crate) fn new(replayer: Arc<OnceLock<Replayer>>, own_ports: Arc<[u16]>) -> Self {
        Self {
            replayer,
            own_ports,
            in_flight: InFlight::default(),
            tasks: Mutex::default(),
        }
    }

    /// Checks `flow`'s request against the plugin's policy and, if it
    /// passes, sends it again through the proxy in the background.
    pub(crate) async fn replay(
        &self,
        mut flow: Flow,
        settings: &PluginSettings,
        deadline: Instant,
    ) -> Result<(), HostError> {
        if flow.replay_depth >= settings.max_replay_depth {
            return Err(HostError::Denied(format!(
                "replay depth: this flow is a replay {} deep and max_replay_depth is {}",
                flow.replay_depth, settings.max_replay_depth
            )));
        }
        let (scheme, host, port) = (
            flow.request.scheme.clone(),
            flow.request.host.clone(),
            flow.request.port,
        );
        let allowed = &settings.allowed_hosts;
        check_pattern("replay-request", allowed, &scheme, &host, port)?;
        let addresses = resolve(&host, port, deadline).await?;
        for address in &addresses {
            check_address(allowed, &self.own_ports, &host, port, *address)?;
        }
        let Some(replayer) = self.replayer.get() else {
            return Err(HostError::Invalid(
                "replay-request: no proxy to send the request through".into(),
            ));
        };
        let slot = self.in_flight.take(
            settings.max_replays_in_flight,
            "replays",
            "max_replays_in_flight",
        )?;
        flow.replay_depth += 1;
        let replay = replayer(flow);
        let task = tokio::spawn(async move {
            replay.await;
            drop(slot);
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task.abort_handle());
        Ok(())
    }

    /// Waits (up to a grace period) for replays in flight, then cancels the
    /// rest: at shutdown, before the plugin's `done`.
    pub(crate) async fn finish(&self) {
        let until = Instant::now() + SHUTDOWN_GRACE;
        while self.in_flight.count() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let cancelled = tasks.iter().filter(|t| !t.is_finished()).count();
        for task in tasks {
            task.abort();
        }
        if cancelled > 0 {
            tracing::warn!("{cancelled} replays still in flight at shutdown were cancelled");
        }
    }
}
