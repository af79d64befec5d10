//! Where a plugin may send requests (`replay-request`, `http-send`): its
//! `allowed_hosts`, and never loopback, link-local, private addresses or
//! witm's own ports unless an entry names them. Names are resolved here so
//! that every address they stand for is checked.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::bindings::types::HostError;
use crate::settings::HostPattern;

/// Longest name lookup (also bounded by the event's deadline).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Calls of one kind a plugin has running (replays, outbound calls), shared
/// by its instances and versions.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

/// Holds one place of an [`InFlight`] until dropped.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight {
    /// A place, unless `max` are taken: `over-budget`, naming `what` and
    /// the setting.
    pub(crate) fn take(&self, max: usize, what: &str, setting: &str) -> Result<Slot, HostError> {
        let taken = self.0.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(self.0.clone());
        if taken >= max {
            return Err(HostError::OverBudget(format!(
                "{what}: {max} in flight at most ({setting}); try again later"
            )));
        }
        Ok(slot)
    }

    /// How many are running.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The request's target must match an entry of `allowed_hosts`.
pub(crate) fn check_pattern(
    what: &str,
    allowed: &[HostPattern],
    scheme: &str,
    host: &str,
    port: u16,
) -> Result<(), HostError> {
    if allowed.is_empty() {
        return Err(HostError::Denied(format!(
            "{what} is not granted: the plugin's configuration has no allowed_hosts"
        )));
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
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<IpAddr>, HostError> {
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
pub(crate) fn check_address(
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
            check_pattern("replay-request", &[], "http", "example.com", 80),
            Err(HostError::Denied(e)) if e.contains("allowed_hosts")
        ));
        let allowed = patterns(&["https://*.example.com", "api.test:8443"]);
        assert!(check_pattern("replay-request", &allowed, "https", "a.example.com", 443).is_ok());
        assert!(check_pattern("replay-request", &allowed, "http", "a.example.com", 80).is_err());
        assert!(check_pattern("replay-request", &allowed, "https", "example.org", 443).is_err());
        assert!(check_pattern("replay-request", &allowed, "http", "api.test", 8443).is_ok());
        assert!(check_pattern("replay-request", &allowed, "http", "api.test", 80).is_err());
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
