//! What a plugin's wasmtime `Store` holds.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::settings::PluginSettings;

/// The data of one plugin instance's store.
pub struct StoreState {
    /// The plugin's name, for log lines.
    pub(crate) plugin: String,
    /// Host resources the guest holds handles to (flows during a call, the
    /// context, the guest's own responses).
    pub(crate) table: ResourceTable,
    /// WASI with only what the plugin's settings grant (by default nothing:
    /// no files, no environment, no sockets). stdout/stderr become log
    /// lines under the plugin's name.
    wasi: WasiCtx,
    /// The memory cap of this instance.
    pub(crate) limits: StoreLimits,
    /// When the current call must end (checked at each epoch tick).
    pub(crate) deadline: Instant,
    /// The plugin's key-value store, shared by its instances.
    pub(crate) kv: KvStore,
    /// Sends a request again through the proxy, once the proxy has one.
    pub(crate) replayer: Arc<std::sync::OnceLock<witm_flow::Replayer>>,
    /// Source of generations for handles, so that a handle kept past its
    /// event is recognised as stale even if its table slot was reused.
    next_generation: u64,
}

impl StoreState {
    /// A store for `plugin` with its capabilities and memory cap: WASI
    /// grants only the directories and environment variables of
    /// `settings`; sockets and name lookups stay denied (wasmtime-wasi's
    /// default address check refuses every address).
    pub fn new(
        plugin: &str,
        settings: &PluginSettings,
        kv: KvStore,
        replayer: Arc<std::sync::OnceLock<witm_flow::Replayer>>,
    ) -> Result<Self, String> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(LogStream::new(plugin, "stdout"))
            .stderr(LogStream::new(plugin, "stderr"));
        for grant in &settings.dirs {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(|e| format!("cannot grant directory {}: {e}", grant.host.display()))?;
        }
        for name in &settings.env {
            if let Ok(value) = std::env::var(name) {
                wasi.env(name, value);
            }
        }
        Ok(Self {
            plugin: plugin.to_owned(),
            table: ResourceTable::new(),
            wasi: wasi.build(),
            limits: StoreLimitsBuilder::new()
                .memory_size(settings.memory_bytes)
                .instances(16)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
            deadline: Instant::now(),
            kv,
            replayer,
            next_generation: 1,
        })
    }

    /// A generation number never handed out before in this store.
    pub(crate) fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

/// A plugin's key-value store (the context's `kv-get`/`kv-set`): outlives
/// its instances, so state meant to survive a restart or be shared by a
/// pool of instances goes here.
#[derive(Clone, Default)]
pub struct KvStore(Arc<Mutex<HashMap<String, String>>>);

/// Keys a store may hold, and bytes per value: a plugin cannot grow the
/// host's memory without bound through its store.
const KV_MAX_KEYS: usize = 10_000;
const KV_MAX_VALUE: usize = 1 << 20;

impl KvStore {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.lock().unwrap().get(key).cloned()
    }

    /// Sets or removes `key`; refuses to go over the limits.
    pub fn set(&self, key: String, value: Option<String>) -> Result<(), String> {
        let mut map = self.0.lock().unwrap();
        match value {
            None => {
                map.remove(&key);
            }
            Some(value) if value.len() + key.len() > KV_MAX_VALUE => {
                return Err(format!(
                    "value for {key:?} is over the {KV_MAX_VALUE}-byte limit"
                ));
            }
            Some(_) if map.len() >= KV_MAX_KEYS && !map.contains_key(&key) => {
                return Err(format!("the store is full ({KV_MAX_KEYS} keys)"));
            }
            Some(value) => {
                map.insert(key, value);
            }
        }
        Ok(())
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A plugin's stdout or stderr, turned into log lines under its name.
#[derive(Clone)]
struct LogStream {
    plugin: String,
    stream: &'static str,
}

impl LogStream {
    fn new(plugin: &str, stream: &'static str) -> Self {
        Self {
            plugin: plugin.to_owned(),
            stream,
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            stream: self.clone(),
            pending: Vec::new(),
        })
    }
}

/// Collects bytes until a newline, then logs the line; caps a line at 8 KiB
/// so a plugin printing without newlines cannot grow host memory.
struct LineLogger {
    stream: LogStream,
    pending: Vec<u8>,
}

const MAX_LINE: usize = 8 * 1024;

impl LineLogger {
    fn emit(&mut self) {
        if !self.pending.is_empty() {
            let line = String::from_utf8_lossy(&self.pending);
            tracing::info!(plugin = %self.stream.plugin, stream = self.stream.stream, "{}", line.trim_end());
            self.pending.clear();
        }
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &byte in buf {
            if byte == b'\n' || self.pending.len() >= MAX_LINE {
                self.emit();
            }
            if byte != b'\n' {
                self.pending.push(byte);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}
