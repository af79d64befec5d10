//! What the engine counts for `/metrics`: each kind of timeout that fired,
//! and the bodies held for plugins against `--max-held-bytes`. Plain
//! atomics, one per counter, added to where the event happens.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A timeout of the engine ([`crate::timeouts`]), by where it fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// The client sent no byte of its request body for the idle time.
    RequestBodyIdle,
    /// The client's whole request body took longer than allowed.
    RequestBody,
    /// The server sent no response head in time.
    ResponseHead,
    /// The server sent no byte of its response body for the idle time.
    ResponseBodyIdle,
    /// An HTTP/1 client sent no request head in time (also how an idle
    /// keep-alive connection ends: hyper's head timer runs while it waits).
    ClientHead,
    /// An HTTP/2 client connection had no request in flight for the idle time.
    ConnectionIdle,
    /// An HTTP/2 peer did not answer a keep-alive ping.
    H2Ping,
    /// A raw tunnel carried no byte either way for the idle time.
    TunnelIdle,
}

impl Timeout {
    /// Every kind, in declaration order.
    pub const ALL: [Timeout; 8] = [
        Timeout::RequestBodyIdle,
        Timeout::RequestBody,
        Timeout::ResponseHead,
        Timeout::ResponseBodyIdle,
        Timeout::ClientHead,
        Timeout::ConnectionIdle,
        Timeout::H2Ping,
        Timeout::TunnelIdle,
    ];

    /// The `kind` label in `/metrics`.
    pub const fn name(self) -> &'static str {
        match self {
            Timeout::RequestBodyIdle => "request_body_idle",
            Timeout::RequestBody => "request_body_total",
            Timeout::ResponseHead => "response_head",
            Timeout::ResponseBodyIdle => "response_body_idle",
            Timeout::ClientHead => "client_head",
            Timeout::ConnectionIdle => "connection_idle",
            Timeout::H2Ping => "h2_ping",
            Timeout::TunnelIdle => "tunnel_idle",
        }
    }
}

/// The engine's counters, shared by every task of one proxy.
#[derive(Debug, Default)]
pub struct Counters {
    timeouts: [AtomicU64; Timeout::ALL.len()],
    /// Bytes of bodies held for plugins now, all flows together.
    held_bytes: AtomicUsize,
    /// Bodies streamed because the held bytes were at the budget.
    held_over_budget: AtomicU64,
}

impl Counters {
    /// Counts one timeout of `kind`.
    pub(crate) fn timed_out(&self, kind: Timeout) {
        self.timeouts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many timeouts of `kind` fired.
    pub fn count(&self, kind: Timeout) -> u64 {
        self.timeouts[kind as usize].load(Ordering::Relaxed)
    }

    /// Holds `bytes` more if that stays within `max` in all.
    pub(crate) fn try_hold(&self, bytes: usize, max: usize) -> bool {
        self.held_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= max)
            })
            .is_ok()
    }

    /// Gives back `bytes` held.
    pub(crate) fn release_held(&self, bytes: usize) {
        self.held_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Counts a body streamed for want of room in the budget.
    pub(crate) fn held_over_budget(&self) {
        self.held_over_budget.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes of bodies held for plugins now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::Acquire)
    }

    /// Bodies streamed because the budget was full.
    pub fn held_over_budget_count(&self) -> u64 {
        self.held_over_budget.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus text format, `listener` as a label (the
    /// port, when a process runs several proxies).
    pub fn metrics(&self, listener: &str) -> String {
        let mut text = String::new();
        for kind in Timeout::ALL {
            text += &format!(
                "witm_proxy_timeouts_total{{listener=\"{listener}\",kind=\"{}\"}} {}\n",
                kind.name(),
                self.count(kind)
            );
        }
        text += &format!(
            "witm_proxy_held_bytes{{listener=\"{listener}\"}} {}\n\
             witm_proxy_held_over_budget_total{{listener=\"{listener}\"}} {}\n",
            self.held_bytes(),
            self.held_over_budget_count()
        );
        text
    }

    /// The `# HELP`/`# TYPE` lines of [`Counters::metrics`], once per page.
    pub fn metrics_preamble() -> &'static str {
        "# HELP witm_proxy_timeouts_total timeouts of the proxy, by where they fired\n\
         # TYPE witm_proxy_timeouts_total counter\n\
         # HELP witm_proxy_held_bytes bytes of bodies held in memory for plugins\n\
         # TYPE witm_proxy_held_bytes gauge\n\
         # HELP witm_proxy_held_over_budget_total bodies streamed because --max-held-bytes was reached\n\
         # TYPE witm_proxy_held_over_budget_total counter\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_counted_apart_and_shown() {
        let counters = Counters::default();
        counters.timed_out(Timeout::TunnelIdle);
        counters.timed_out(Timeout::TunnelIdle);
        counters.timed_out(Timeout::RequestBody);
        assert_eq!(counters.count(Timeout::TunnelIdle), 2);
        assert_eq!(counters.count(Timeout::RequestBodyIdle), 0);
        let text = counters.metrics("8080");
        assert!(
            text.contains("witm_proxy_timeouts_total{listener=\"8080\",kind=\"tunnel_idle\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("kind=\"request_body_total\"} 1\n"), "{text}");
        assert_eq!(text.lines().count(), Timeout::ALL.len() + 2);
        assert!(
            text.contains("witm_proxy_held_bytes{listener=\"8080\"} 0\n"),
            "{text}"
        );
    }
}
