//! A plugin's key-value store (the context's `kv-get`/`kv-set`): outlives
//! its instances, so state meant to survive a restart or be shared by a
//! pool of instances goes here. Bounded in keys, bytes per value and bytes
//! in all (keys and values), so a plugin cannot grow the host through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::bindings::types::HostError;

/// Keys a store may hold, and bytes per entry.
const KV_MAX_KEYS: usize = 10_000;
const KV_MAX_VALUE: usize = 1 << 20;
/// What one entry costs beyond its key and value (the map's own slot).
const ENTRY_OVERHEAD: usize = 64;

/// The store, shared by a plugin's instances and versions.
#[derive(Clone, Default)]
pub struct KvStore(Arc<Mutex<Entries>>);

#[derive(Default)]
struct Entries {
    map: HashMap<String, String>,
    /// Bytes of keys and values (with [`ENTRY_OVERHEAD`] each).
    bytes: usize,
}

fn cost(key: &str, value: &str) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl KvStore {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .get(key)
            .cloned()
    }

    /// Sets or removes `key`; refuses to go over the limits, `max_bytes`
    /// being the plugin's `kv_mb`.
    pub fn set(
        &self,
        key: String,
        value: Option<String>,
        max_bytes: usize,
    ) -> Result<(), HostError> {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let old = entries.map.get(&key).map(|v| cost(&key, v));
        let Some(value) = value else {
            if let Some(old) = old {
                entries.map.remove(&key);
                entries.bytes -= old;
            }
            return Ok(());
        };
        if value.len() + key.len() > KV_MAX_VALUE {
            return Err(HostError::OverBudget(format!(
                "key-value store: the entry for {:?} is over the {KV_MAX_VALUE}-byte limit",
                truncated(&key)
            )));
        }
        if old.is_none() && entries.map.len() >= KV_MAX_KEYS {
            return Err(HostError::OverBudget(format!(
                "key-value store: full ({KV_MAX_KEYS} keys)"
            )));
        }
        let bytes = entries.bytes - old.unwrap_or(0) + cost(&key, &value);
        if bytes > max_bytes {
            return Err(HostError::OverBudget(format!(
                "key-value store: {max_bytes} bytes of keys and values at most (kv_mb); \
                 {} held",
                entries.bytes
            )));
        }
        entries.bytes = bytes;
        entries.map.insert(key, value);
        Ok(())
    }
}

fn truncated(key: &str) -> &str {
    let mut end = key.len().min(64);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_of_keys_and_values_are_counted_not_only_keys() {
        let kv = KvStore::default();
        let mib = "x".repeat((1 << 20) - 128);
        let mut stored = 0;
        while stored < 10
            && kv
                .set(format!("k{stored}"), Some(mib.clone()), 4 << 20)
                .is_ok()
        {
            stored += 1;
        }
        assert_eq!(stored, 4, "4 MiB of values in a 4 MiB store");
        // Replacing and removing give bytes back.
        kv.set("k0".into(), None, 4 << 20).unwrap();
        kv.set("k9".into(), Some(mib.clone()), 4 << 20).unwrap();
        kv.set("k9".into(), Some("small".into()), 4 << 20).unwrap();
        kv.set("k10".into(), Some(mib), 4 << 20).unwrap();
        assert_eq!(kv.get("k9").as_deref(), Some("small"));
        assert!(matches!(
            kv.set("big".into(), Some("y".repeat(2 << 20)), 1 << 30),
            Err(HostError::OverBudget(_))
        ));
    }
}
