//! The tenants witm runs, as the binary wires them: each its name, its
//! plugin chain on an engine of its own, and the addons stacked after the
//! plugins (server replay, then saving). Routing flows to them is
//! `witm_addons::TenantRouter`.

use std::sync::Arc;

use witm_addons::{Save, ServerReplay, Stack};
use witm_plugin_host::{PluginChain, PluginRuntime};

/// A tenant's hooks: its plugins, then server replay, then saving.
pub type TenantHooks = Stack<PluginChain, Stack<Option<ServerReplay>, Option<Save>>>;

/// One tenant.
pub struct Tenant {
    /// `None` for the single implicit tenant of a configuration without any.
    pub name: Option<Arc<str>>,
    /// What the proxy calls for this tenant's flows.
    pub hooks: Arc<TenantHooks>,
    /// The engine this tenant's plugins run on (a plugin's `replay-request`
    /// goes through this tenant's listener).
    pub runtime: Arc<PluginRuntime>,
}

impl Tenant {
    /// Wires `plugins` with the addons asked for.
    pub fn new(
        name: Option<Arc<str>>,
        plugins: PluginChain,
        runtime: PluginRuntime,
        server_replay: Option<ServerReplay>,
        save: Option<Save>,
    ) -> Self {
        Self {
            name,
            hooks: Arc::new(Stack::new(plugins, Stack::new(server_replay, save))),
            runtime: Arc::new(runtime),
        }
    }

    /// The tenant's plugin chain.
    pub fn plugins(&self) -> &PluginChain {
        self.hooks.first()
    }

    /// Writes what is still queued for the flow file, if any.
    pub fn finish(&self) {
        if let Some(save) = self.hooks.second().second() {
            save.finish();
        }
    }
}
