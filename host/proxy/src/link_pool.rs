//! Tunnels' server connections kept for the next tunnel to the same server.
//!
//! witm opens a tunnel's server connection before it answers the client's
//! handshake (to learn the server's certificate and protocol, as mitmproxy
//! does). A client that opens a tunnel per request would make witm pay a
//! second TCP and TLS handshake every time; instead, when a tunnel ends
//! with its server connection idle and open, the connection waits here and
//! the next tunnel for the same server, name, protocols and tenant takes
//! it (its certificate and protocol are those it was opened with). Such a
//! tunnel reports no new `server-connect`: the connection is not new.
//!
//! One pool per thread ([`crate::shared::Shared::links`]): a tunnel takes
//! only connections its own thread opened, whose tasks run there.
//!
//! Bounded: at most [`PER_SERVER`] connections per key and [`TOTAL`] in
//! all (shared out between the threads' pools), each kept at most
//! [`IDLE`]; a connection the server closed meanwhile is dropped when met.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::upstream::ServerLink;

/// Longest a connection waits for its next tunnel (hyper's pool waits 90 s;
/// servers often close sooner).
pub(crate) const IDLE: Duration = Duration::from_secs(60);
/// Connections kept for one key.
const PER_SERVER: usize = 16;
/// Connections kept in all, by all threads' pools together.
const TOTAL: usize = 256;

/// What a tunnel's server connection is for: connections are shared only
/// between tunnels that would have opened the very same one, of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LinkKey {
    /// The CONNECT target, lower-cased.
    pub host: String,
    pub port: u16,
    /// The name sent to the server (the client's SNI, or the host).
    pub server_name: String,
    /// The ALPN protocols offered to the server.
    pub alpn: Vec<Vec<u8>>,
    pub tenant: Option<Arc<str>>,
    /// Direct or through which upstream proxy: connections are keyed by
    /// their upstream too.
    pub route: witm_flow::Route,
}

/// Idle server connections by key.
pub(crate) struct LinkPool {
    idle: Mutex<Idle>,
    /// This pool's share of [`TOTAL`].
    most: usize,
}

#[derive(Default)]
struct Idle {
    links: HashMap<LinkKey, Vec<(Instant, ServerLink)>>,
    count: usize,
}

impl LinkPool {
    /// One of `pools` pools (one per thread), which together keep at most
    /// [`TOTAL`] connections.
    pub(crate) fn one_of(pools: usize) -> Self {
        Self {
            idle: Mutex::default(),
            most: crate::workers::share(TOTAL, pools),
        }
    }

    /// An idle, open connection for `key`, the most recently used first.
    pub(crate) fn take(&self, key: &LinkKey) -> Option<ServerLink> {
        let mut idle = self.idle.lock().unwrap();
        let Idle { links, count } = &mut *idle;
        let kept = links.get_mut(key)?;
        let mut found = None;
        while let Some((since, link)) = kept.pop() {
            *count -= 1;
            if since.elapsed() < IDLE && link.is_reusable() {
                found = Some(link);
                break;
            }
        }
        if kept.is_empty() {
            links.remove(key);
        }
        found
    }

    /// Keeps `link` for the next tunnel to `key`, if it is open and idle
    /// and there is room (stale connections make room first).
    pub(crate) fn put(&self, key: LinkKey, link: ServerLink) {
        if !link.is_reusable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap();
        if idle.count >= self.most {
            idle.drop_stale();
        }
        let Idle { links, count } = &mut *idle;
        if *count >= self.most {
            return;
        }
        let kept = links.entry(key).or_default();
        if kept.len() >= PER_SERVER {
            return;
        }
        kept.push((Instant::now(), link));
        *count += 1;
    }
}

impl Idle {
    /// Drops connections idle too long or closed by their server.
    fn drop_stale(&mut self) {
        for kept in self.links.values_mut() {
            kept.retain(|(since, link)| since.elapsed() < IDLE && link.is_reusable());
        }
        self.links.retain(|_, kept| !kept.is_empty());
        self.count = self.links.values().map(Vec::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many threads, their pools together keep at most `TOTAL`
    /// (each at least one).
    #[test]
    fn the_threads_pools_share_the_bound() {
        for pools in [1, 2, 3, 9, 64, 300] {
            let each = LinkPool::one_of(pools).most;
            assert!(each >= 1);
            assert!(pools * each <= TOTAL.max(pools), "{pools} pools of {each}");
        }
        assert_eq!(LinkPool::one_of(1).most, TOTAL);
    }
}
