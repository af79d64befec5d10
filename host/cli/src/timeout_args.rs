//! The command-line options of the proxy's timeouts ([`Timeouts`]), in
//! milliseconds like witm's other time options; 0 turns one off.

use std::time::Duration;

use witm_proxy::Timeouts;

/// How long witm waits on clients and servers.
#[derive(clap::Args, Debug, Clone)]
pub struct TimeoutArgs {
    /// Longest quiet gap inside a request body (from the client) or a
    /// response body (from the server), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub body_idle_timeout_ms: u64,

    /// Longest a client may take over a whole request body, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 600_000)]
    pub request_body_timeout_ms: u64,

    /// Longest a server may take to send its response head once the
    /// request has gone out, in milliseconds (the client then gets 504).
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub response_timeout_ms: u64,

    /// An HTTP/2 client connection with no request in flight for this long
    /// is closed, in milliseconds. (HTTP/1 connections close after 30 s
    /// without a request head.)
    #[arg(long, value_name = "MS", default_value_t = 120_000)]
    pub idle_timeout_ms: u64,

    /// A raw tunnel (not intercepted) with no byte either way for this long
    /// is closed, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 600_000)]
    pub tunnel_idle_timeout_ms: u64,

    /// How often HTTP/2 connections are pinged, in milliseconds; one that
    /// does not answer as long is closed.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub h2_keepalive_ms: u64,
}

/// A timeout of `ms` milliseconds; 0 is none at all.
fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl TimeoutArgs {
    /// The proxy's timeouts.
    pub fn timeouts(&self) -> Timeouts {
        let or_never = |ms| millis(ms).unwrap_or(witm_proxy::timeouts::NEVER);
        Timeouts {
            body_idle: or_never(self.body_idle_timeout_ms),
            request_body: millis(self.request_body_timeout_ms),
            response_head: or_never(self.response_timeout_ms),
            connection_idle: or_never(self.idle_timeout_ms),
            tunnel_idle: or_never(self.tunnel_idle_timeout_ms),
            h2_keepalive: millis(self.h2_keepalive_ms),
        }
    }
}
