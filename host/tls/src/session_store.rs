//! The bounded store of client-facing TLS sessions, with a take that costs
//! the same however full the store is.
//!
//! rustls's `ServerSessionMemoryCache` finds a taken key in its eviction
//! queue by a linear scan: with the 8,192 sessions witm keeps, every resumed
//! handshake compared up to 8,192 keys (`memcmp` and the scan were 6 % of
//! witm's CPU with a new HTTPS connection per request, by `perf record`).
//! Here the queue is never searched. A take removes the entry from the map
//! only; eviction pops the queue and skips entries that are gone or were
//! stored again since (each store has a serial number); and when such stale
//! entries make the queue twice the bound, it is compacted once, which keeps
//! both the memory and the average cost bounded.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustls::server::StoresServerSessions;

/// At most `limit` sessions, the oldest stored evicted first (as rustls's
/// own cache). Keys are whatever the client sends back, so the map keeps
/// the standard library's keyed hash.
pub(crate) struct SessionStore {
    limit: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Key to (serial of the store that wrote it, session).
    sessions: HashMap<Vec<u8>, (u64, Vec<u8>)>,
    /// Stores in order, oldest first; an entry whose serial no longer
    /// matches the map's is stale and skipped.
    order: VecDeque<(u64, Vec<u8>)>,
    next_serial: u64,
}

impl Entries {
    fn is_current(&self, serial: u64, key: &[u8]) -> bool {
        self.sessions.get(key).is_some_and(|(s, _)| *s == serial)
    }
}

impl SessionStore {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            inner: Mutex::default(),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // Nothing under the lock panics half-way through a change that
        // matters: a poisoned lock still holds a usable store.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StoresServerSessions for SessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut entries = self.entries();
        let serial = entries.next_serial;
        entries.next_serial += 1;
        entries.order.push_back((serial, key.clone()));
        entries.sessions.insert(key, (serial, value));
        while entries.sessions.len() > self.limit {
            let Some((serial, oldest)) = entries.order.pop_front() else {
                break;
            };
            if entries.is_current(serial, &oldest) {
                entries.sessions.remove(&oldest);
            }
        }
        if entries.order.len() > 2 * self.limit {
            let Entries {
                sessions, order, ..
            } = &mut *entries;
            order.retain(|(serial, key)| sessions.get(key).is_some_and(|(s, _)| s == serial));
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries()
            .sessions
            .get(key)
            .map(|(_, value)| value.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries().sessions.remove(key).map(|(_, value)| value)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the sessions: they hold secrets.
        f.debug_struct("SessionStore")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Vec<u8> {
        format!("session-{i}").into_bytes()
    }

    #[test]
    fn a_session_is_taken_once() {
        let store = SessionStore::new(4);
        assert!(store.put(key(1), b"one".to_vec()));
        assert_eq!(store.get(&key(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(store.take(&key(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(store.take(&key(1)), None);
        assert_eq!(store.get(&key(2)), None);
    }

    #[test]
    fn the_oldest_stored_goes_first_beyond_the_bound() {
        let store = SessionStore::new(3);
        for i in 0..5 {
            store.put(key(i), vec![i as u8]);
        }
        assert_eq!(store.entries().sessions.len(), 3);
        assert_eq!(store.get(&key(0)), None);
        assert_eq!(store.get(&key(1)), None);
        for i in 2..5 {
            assert_eq!(store.get(&key(i)), Some(vec![i as u8]));
        }
    }

    #[test]
    fn a_key_stored_again_is_not_evicted_by_its_older_entry() {
        let store = SessionStore::new(2);
        store.put(key(0), b"old".to_vec());
        store.put(key(1), b"one".to_vec());
        store.put(key(0), b"new".to_vec());
        // The queue's oldest entry is key 0's first store: stale, so key 1,
        // now the oldest stored, is the one to go.
        store.put(key(2), b"two".to_vec());
        assert_eq!(store.get(&key(0)).as_deref(), Some(&b"new"[..]));
        assert_eq!(store.get(&key(1)), None);
        assert_eq!(store.get(&key(2)).as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn taken_sessions_leave_no_growing_queue_behind() {
        let store = SessionStore::new(8);
        for i in 0..10_000 {
            store.put(key(i), vec![1; 16]);
            assert!(store.take(&key(i)).is_some());
        }
        let entries = store.entries();
        assert!(entries.sessions.is_empty());
        assert!(
            entries.order.len() <= 2 * 8,
            "queue holds {} entries",
            entries.order.len()
        );
    }

    #[test]
    fn the_debug_form_shows_no_session() {
        let store = SessionStore::new(2);
        store.put(key(0), b"secret".to_vec());
        assert!(!format!("{store:?}").contains("secret"));
    }
}
