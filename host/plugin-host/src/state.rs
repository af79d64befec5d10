//! What a plugin's wasmtime `Store` holds, and the view of it the host
//! methods are implemented on ([`HostView`], as wasmtime-wasi-http's
//! `WasiHttpCtxView`): the resource table and the budgets side by side, so
//! every method can charge what it makes the host hold.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Resource, ResourceTable, ResourceTableError};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::budget::HostBudget;
use crate::kv::KvStore;
use crate::limiter::GuestMemoryLimiter;
use crate::log::{LogBudget, LogStream};
use crate::outbound::OutboundGate;
use crate::replay::ReplayGate;
use crate::settings::PluginSettings;
use crate::tick::TickPeriod;
use crate::views::{Full, Views};

/// The data of one plugin instance's store.
pub struct StoreState {
    /// Host resources the guest holds handles to, but for flows and their
    /// parts (connections, the context), at most `max_handles`.
    pub(crate) table: ResourceTable,
    /// Flows (lent for a call, or duplicated) and handles to their parts
    /// (requests, responses, headers), at most `max_handles` more.
    pub(crate) views: Views,
    /// Everything else the host methods need.
    pub(crate) host: HostState,
    /// WASI with only what the plugin's settings grant (by default nothing:
    /// no files, no environment, no sockets). stdout/stderr become log
    /// lines under the plugin's name.
    wasi: WasiCtx,
    /// The guest memory cap: all memories and tables together.
    pub(crate) limits: GuestMemoryLimiter,
}

/// What the plugin shares across instances, handed to each new store.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) kv: KvStore,
    pub(crate) log: Arc<LogBudget>,
    pub(crate) replay: Arc<ReplayGate>,
    pub(crate) outbound: Arc<OutboundGate>,
    /// The period the plugin asked for with `set-tick`.
    pub(crate) tick: Arc<TickPeriod>,
}

/// The host's side of one instance, beside its table.
pub(crate) struct HostState {
    /// The settings of the version this instance runs.
    pub(crate) settings: Arc<PluginSettings>,
    /// When the current call must end: checked at each epoch tick, and by
    /// host calls that take long (body codings, name lookups).
    pub(crate) deadline: Instant,
    /// Bytes held for this instance.
    pub(crate) budget: HostBudget,
    /// `http-send` calls made in the current event.
    pub(crate) outbound_calls: u32,
    pub(crate) shared: Shared,
    /// Source of generations for handles, so that a handle kept past its
    /// event is recognised as stale even if its table slot was reused.
    next_generation: u64,
}

impl HostState {
    /// A generation number never handed out before in this store.
    pub(crate) fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

/// The view of a store the `Host*` traits are implemented on.
pub(crate) struct HostView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) views: &'a mut Views,
    pub(crate) host: &'a mut HostState,
}

/// Marks [`HostView`] as what the generated `add_to_linker` hands the
/// host methods.
pub(crate) struct PluginHost;

impl HasData for PluginHost {
    type Data<'a> = HostView<'a>;
}

impl HostView<'_> {
    /// Puts `entry` in the table, or ends the call if the plugin already
    /// holds `max_handles` handles.
    pub(crate) fn push<T: Send + 'static>(&mut self, entry: T) -> wasmtime::Result<Resource<T>> {
        push(self.table, entry)
    }

    /// Keeps a view of a flow's part (`kind` picks its slots), or ends the
    /// call if the plugin already holds `max_handles` of them.
    pub(crate) fn push_view<T: 'static>(
        &mut self,
        kind: fn(&mut Views) -> &mut crate::views::ViewSlots<T>,
        view: T,
    ) -> wasmtime::Result<Resource<T>> {
        Ok(self.views.push(kind, view)?)
    }
}

/// See [`HostView::push`]; also for lending, outside a view.
pub(crate) fn push<T: Send + 'static>(
    table: &mut ResourceTable,
    entry: T,
) -> wasmtime::Result<Resource<T>> {
    table.push(entry).map_err(|e| match e {
        ResourceTableError::Full => Full {
            most: table.max_capacity(),
        }
        .into(),
        other => other.into(),
    })
}

impl StoreState {
    /// A store for `plugin` with its capabilities and limits: WASI grants
    /// only the directories and environment variables of `settings`;
    /// sockets and name lookups stay denied (wasmtime-wasi's default address
    /// check refuses every address).
    pub(crate) fn new(settings: Arc<PluginSettings>, shared: Shared) -> Result<Self, String> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(LogStream::new(shared.log.clone(), "stdout"))
            .stderr(LogStream::new(shared.log.clone(), "stderr"));
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
        let mut table = ResourceTable::new();
        table.set_max_capacity(settings.max_handles);
        Ok(Self {
            table,
            views: Views::new(settings.max_handles),
            wasi: wasi.build(),
            limits: GuestMemoryLimiter::new(settings.memory_bytes),
            host: HostState {
                deadline: Instant::now(),
                budget: HostBudget::new(settings.host_memory_bytes),
                outbound_calls: 0,
                settings,
                shared,
                next_generation: 1,
            },
        })
    }

    /// The view the host methods work on.
    pub(crate) fn view(&mut self) -> HostView<'_> {
        HostView {
            table: &mut self.table,
            views: &mut self.views,
            host: &mut self.host,
        }
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
