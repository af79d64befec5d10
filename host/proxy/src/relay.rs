//! Raw tunnels: bytes relayed both ways untouched (ignored hosts, no
//! interception, or a plugin's pass-through), recorded as TCP flows where
//! mitmproxy records them (`tcp_flow`).

use std::time::Duration;

use witm_flow::Route;
use witm_tls::Upstream;

use crate::counters::{Counters, Timeout};
use crate::dial::{BoxStream, dial};
use crate::shared::Shared;
use crate::tcp_flow::{Recorded, Recorder};
use crate::timeouts::{Activity, ActivityIo};

/// How long a raw tunnel may carry nothing either way, and where that is
/// counted; and how the server connection is made.
pub(crate) struct Idle<'a> {
    pub limit: Duration,
    pub counters: &'a Counters,
    /// Direct, or through an upstream proxy.
    pub route: &'a Route,
    pub trust: &'a Upstream,
    pub connect_timeout: Duration,
}

impl<'a> Idle<'a> {
    /// A tunnel of `shared`'s proxy along `route`.
    pub(crate) fn of<H>(shared: &'a Shared<H>, route: &'a Route) -> Self {
        Idle {
            limit: shared.options.timeouts.tunnel_idle,
            counters: &shared.counters,
            route,
            trust: &shared.trust,
            connect_timeout: shared.options.connect_timeout,
        }
    }
}

/// Connects to `host:port`, sends `already_read` (bytes the client sent
/// that witm has consumed), then relays both ways untouched; recorded as a
/// TCP flow when `recorder` is given.
pub(crate) async fn relay_with<IO>(
    client: IO,
    already_read: &[u8],
    (host, port): (&str, u16),
    idle: Idle<'_>,
    recorder: Option<&mut Recorder>,
) -> std::io::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut server = dial(idle.route, host, port, idle.trust, idle.connect_timeout).await?;
    tokio::io::AsyncWriteExt::write_all(&mut server, already_read).await?;
    match recorder {
        Some(recorder) => {
            recorder.record(true, already_read);
            let client = Recorded::new(client, recorder);
            relay_both(client, server, host, port, idle).await
        }
        None => relay_both(client, server, host, port, idle).await,
    }
}

/// Relays between `client` and a server connection made already, after
/// giving the client what the server said first (`greeting`: a protocol
/// whose server speaks first, see `opening`); recorded as a TCP flow when
/// `recorder` is given.
pub(crate) async fn relay_greeted<IO>(
    mut client: IO,
    server: BoxStream,
    greeting: &[u8],
    (host, port): (&str, u16),
    idle: Idle<'_>,
    recorder: Option<&mut Recorder>,
) -> std::io::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::io::AsyncWriteExt::write_all(&mut client, greeting).await?;
    match recorder {
        Some(recorder) => {
            recorder.record(false, greeting);
            let client = Recorded::new(client, recorder);
            relay_both(client, server, host, port, idle).await
        }
        None => relay_both(client, server, host, port, idle).await,
    }
}

/// Copies both ways until either side closes, or nothing moves for the
/// idle limit.
async fn relay_both<IO>(
    mut client: IO,
    mut server: BoxStream,
    host: &str,
    port: u16,
    idle: Idle<'_>,
) -> std::io::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let mut client = ActivityIo::new(&mut client, activity.clone());
    let mut server = ActivityIo::new(&mut server, activity.clone());
    tokio::select! {
        relayed = tokio::io::copy_bidirectional(&mut client, &mut server) => {
            relayed?;
        }
        () = activity.quiet_for(idle.limit) => {
            idle.counters.timed_out(Timeout::TunnelIdle);
            tracing::info!(
                "tunnel to {host}:{port}: nothing either way for {:?}; closing",
                idle.limit
            );
        }
    }
    Ok(())
}
