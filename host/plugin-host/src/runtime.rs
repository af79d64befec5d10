//! The engine shared by all plugins: compilation settings, the linker with
//! witm's imports and a deny-everything WASI, and the epoch ticker that
//! enforces event deadlines.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Cache, CacheConfig, Config, Engine};

use crate::bindings::PluginBindings;
use crate::state::{PluginHost, StoreState};

/// How often the engine's epoch advances: the granularity of event deadlines
/// and of yielding to other tasks while a plugin computes.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The zstd level of compiled-code cache files (zstd's default, which
/// wasmtime writes new files at).
const CACHE_COMPRESSION_LEVEL: i32 = 3;

/// Settings of the engine shared by every plugin (each plugin's own limits
/// are in its [`PluginSettings`](crate::PluginSettings)).
#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// Where compiled components are cached (keyed by wasmtime on content
    /// and engine settings); `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Count fuel, so plugins may be given a fuel limit per event. Off by
    /// default: counting costs every plugin some speed.
    pub fuel: bool,
    /// witm's own ports (proxy listeners, admin): `replay-request` refuses
    /// them on this machine unless a plugin's `allowed_hosts` names them.
    pub own_ports: Vec<u16>,
}

/// The wasmtime engine and linker all plugins share.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<StoreState>,
    options: RuntimeOptions,
    ticker_stop: Arc<AtomicBool>,
    replayer: Arc<std::sync::OnceLock<witm_flow::Replayer>>,
    http_sender: Arc<std::sync::OnceLock<witm_flow::HttpSender>>,
}

impl PluginRuntime {
    /// Builds the engine, the linker and starts the epoch ticker.
    pub fn new(options: RuntimeOptions) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(options.fuel);
        // Component-model async is not used; leaving it on costs a third of
        // every call (ARCHITECTURE.md, measured).
        config.concurrency_support(false);
        if let Some(dir) = &options.cache_dir {
            let mut cache_config = CacheConfig::new();
            cache_config.with_directory(dir);
            // wasmtime's cache worker recompresses a file used 256 times at
            // zstd level 20: seconds of a core and over 100 MiB in a thread
            // of a serving proxy (a budget test caught witm's peak memory
            // growing by 127 MiB during an attack). Files stay at the level
            // they were written at.
            cache_config.with_baseline_compression_level(CACHE_COMPRESSION_LEVEL);
            cache_config.with_optimized_compression_level(CACHE_COMPRESSION_LEVEL);
            match Cache::new(cache_config) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(e) => tracing::warn!("compiled-code cache disabled ({}): {e}", dir.display()),
            }
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        PluginBindings::add_to_linker::<StoreState, PluginHost>(&mut linker, StoreState::view)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticking_engine = engine.clone();
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("witm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking_engine.increment_epoch();
                }
            })?;
        Ok(Self {
            engine,
            linker,
            options,
            ticker_stop,
            replayer: Arc::default(),
            http_sender: Arc::default(),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<StoreState> {
        &self.linker
    }

    pub(crate) fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Gives plugins' `replay-request` a way to send requests through the
    /// proxy (set once; without it, `replay-request` fails with a message).
    pub fn set_replayer(&self, replayer: witm_flow::Replayer) {
        let _ = self.replayer.set(replayer);
    }

    pub(crate) fn replayer(&self) -> Arc<std::sync::OnceLock<witm_flow::Replayer>> {
        self.replayer.clone()
    }

    /// Gives plugins' `http-send` a way out (set once; without it, as in
    /// `witm replay`, `http-send` fails with a message).
    pub fn set_http_sender(&self, sender: witm_flow::HttpSender) {
        let _ = self.http_sender.set(sender);
    }

    pub(crate) fn http_sender(&self) -> Arc<std::sync::OnceLock<witm_flow::HttpSender>> {
        self.http_sender.clone()
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
