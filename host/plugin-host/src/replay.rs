//! `replay-request` under policy: the proxy sends a request for the
//! plugin, which is outbound network access, so it is a capability — off
//! unless the plugin's `allowed_hosts` grants the target — and bounded:
//! loopback, link-local and private addresses and witm's own ports are
//! refused unless an entry names them, a replay is never replayed past
//! `max_replay_depth`, and a plugin has at most `max_replays_in_flight`
//! replays running; the rest finish, or are cancelled, at shutdown.
//!
//! Names are resolved here and every address checked. The proxy resolves
//! the name again when it connects, so a DNS server answering differently
//! the second time (rebinding) is not caught yet; outbound HTTP with its own
//! pinned connector is where that closes.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;
use witm_flow::{Flow, Replayer};

use crate::bindings::types::HostError;
use crate::settings::{HostPattern, PluginSettings};

/// Longest name lookup for a replay's target (also bounded by the event's
/// deadline).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `done` waits for replays still in flight before cancelling them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A plugin's replays: the way to the proxy, witm's own ports, and the
/// replays in flight. Shared by the plugin's instances and versions.
pub(crate) struct ReplayGate {
    replayer: Arc<OnceLock<Replayer>>,
    own_ports: Arc<[u16]>,
    in_flight: Arc<AtomicUsize>,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// Holds one of the plugin's replay slots until dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ReplayGate {
    pub(crate) fn new(replayer: Arc<OnceLock<Replayer>>, own_ports: Arc<[u16]>) -> Self {
        Self {
            replayer,
            own_ports,
            in_flight: Arc::default(),
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
        check_pattern(allowed, &scheme, &host, port)?;
        let addresses = resolve(&host, port, deadline).await?;
        for address in &addresses {
            check_address(allowed, &self.own_ports, &host, port, *address)?;
        }
        let Some(replayer) = self.replayer.get() else {
            return Err(HostError::Invalid(
                "replay-request: no proxy to send the request through".into(),
            ));
        };
        let slot = self.take_slot(settings.max_replays_in_flight)?;
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

    fn take_slot(&self, max: usize) -> Result<Slot, HostError> {
        let taken = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(self.in_flight.clone());
        if taken >= max {
            return Err(HostError::OverBudget(format!(
                "replays in flight: {max} at most (max_replays_in_flight); try again later"
            )));
        }
        Ok(slot)
    }

    /// Waits (up to a grace period) for replays in flight, then cancels the
    /// rest: at shutdown, before the plugin's `done`.
    pub(crate) async fn finish(&self) {
        let until = Instant::now() + SHUTDOWN_GRACE;
        while self.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < until {
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

/// The request's target must match an entry of `allowed_hosts`.
fn check_pattern(
    allowed: &[HostPattern],
    scheme: &str,
    host: &str,
    port: u16,
) -> Result<(), HostError> {
    if allowed.is_empty() {
        return Err(HostError::Denied(
            "replay-request is not granted: the plugin's configuration has no allowed_hosts".into(),
        ));
    }
    if !allowed.iter().any(|p| p.matches(scheme, host, port)) {
        return Err(HostError::Denied(format!(
            "{scheme}://{host}:{port} is not in the plugin's allowed_hosts"
        )));
    }
    Ok(())
}

/// The addresses `host` stands for: itself if it is an address, else what
/// the resolver says within the lookup timeout and the event's deadline.
async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<IpAddr>, HostError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let until = deadline.min(Instant::now() + LOOKUP_TIMEOUT);
    match tokio::time::timeout_at(until.into(), tokio::net::lookup_host((bare, port))).await {
        Ok(Ok(addresses)) => {
            let ips: Vec<IpAddr> = addresses.map(|a| a.ip()).collect();
            if ips.is_empty() {
                Err(HostError::Denied(format!("{host} resolves to no address")))
            } else {
                Ok(ips)
            }
        }
        Ok(Err(e)) => Err(HostError::Denied(format!("cannot resolve {host}: {e}"))),
        Err(_) => Err(HostError::Denied(format!("resolving {host} timed out"))),
    }
}

/// Loopback, link-local, private and unspecified addresses need an entry
/// naming the host itself; witm's own ports on this machine, one naming the
/// host and the port.
fn check_address(
    allowed: &[HostPattern],
    own_ports: &[u16],
    host: &str,
    port: u16,
    ip: IpAddr,
) -> Result<(), HostError> {
    let named = |need_port| allowed.iter().any(|p| p.names(host, port, need_port));
    if is_internal(ip) && !named(false) {
        return Err(HostError::Denied(format!(
            "{host} is {ip}, a loopback, link-local or private address, which is not listed \
             in allowed_hosts by name (a wildcard does not grant it)"
        )));
    }
    if own_ports.contains(&port) && is_local(ip) && !named(true) {
        return Err(HostError::Denied(format!(
            "{host}:{port} is witm's own proxy or admin port, which is not listed in \
             allowed_hosts with its port"
        )));
    }
    Ok(())
}

/// Whether `ip` is not a public unicast address.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Whether `ip` is an address of this machine (one a socket can bind to).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<HostPattern> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn nothing_is_granted_without_allowed_hosts() {
        assert!(matches!(
            check_pattern(&[], "http", "example.com", 80),
            Err(HostError::Denied(e)) if e.contains("allowed_hosts")
        ));
        let allowed = patterns(&["https://*.example.com", "api.test:8443"]);
        assert!(check_pattern(&allowed, "https", "a.example.com", 443).is_ok());
        assert!(check_pattern(&allowed, "http", "a.example.com", 80).is_err());
        assert!(check_pattern(&allowed, "https", "example.org", 443).is_err());
        assert!(check_pattern(&allowed, "http", "api.test", 8443).is_ok());
        assert!(check_pattern(&allowed, "http", "api.test", 80).is_err());
    }

    #[test]
    fn internal_addresses_and_own_ports_need_an_entry_naming_them() {
        let wildcard = patterns(&["*"]);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(
                matches!(check_address(&wildcard, &[], "h", 80, ip), Err(HostError::Denied(e)) if e.contains("not listed")),
                "{ip}"
            );
        }
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        assert!(check_address(&wildcard, &[], "h", 80, public).is_ok());
        let named = patterns(&["127.0.0.1"]);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(check_address(&named, &[], "127.0.0.1", 9000, loopback).is_ok());
        assert!(
            check_address(&named, &[8080], "127.0.0.1", 8080, loopback).is_err(),
            "witm's own port needs the port named"
        );
        let with_port = patterns(&["127.0.0.1:8080"]);
        assert!(check_address(&with_port, &[8080], "127.0.0.1", 8080, loopback).is_ok());
    }
}
