//! `tick`: a plugin's periodic event (proxy-wasm's `on_tick`). The plugin
//! subscribes to `tick` and sets a period with `context.set-tick`; one task
//! per plugin sleeps the period, then delivers `tick` to one instance like
//! any event (deadline, failure policy, back-off). The next period starts
//! when the tick returns, so ticks missed while the plugin was busy are
//! skipped, not queued.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use witm_flow::Events;

use crate::bindings::types::HostError;
use crate::plugin::{Delivery, Plugin};
use crate::settings::PluginSettings;

/// The period a plugin asked for (`None`: no ticks), shared by its
/// instances and versions, and watched by its tick task.
pub(crate) struct TickPeriod(watch::Sender<Option<Duration>>);

impl Default for TickPeriod {
    fn default() -> Self {
        Self(watch::channel(None).0)
    }
}

impl TickPeriod {
    /// `set-tick`: 0 stops the ticks; anything under `min_tick` is refused.
    pub(crate) fn set(&self, period_ms: u32, settings: &PluginSettings) -> Result<(), HostError> {
        let period = Duration::from_millis(period_ms.into());
        if period_ms != 0 && period < settings.min_tick {
            return Err(HostError::Invalid(format!(
                "set-tick: {period_ms} ms is under the plugin's min_tick_ms ({})",
                settings.min_tick.as_millis()
            )));
        }
        self.0.send_replace((period_ms != 0).then_some(period));
        Ok(())
    }
}

/// Starts `plugin`'s tick task. It holds the plugin weakly and ends when
/// the plugin is dropped or has run `done`.
pub(crate) fn run_ticks(plugin: &Arc<Plugin>, period: &TickPeriod) {
    let weak: Weak<Plugin> = Arc::downgrade(plugin);
    let mut period = period.0.subscribe();
    tokio::spawn(async move {
        loop {
            let Some(every) = *period.borrow_and_update() else {
                if period.changed().await.is_err() {
                    return;
                }
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                changed = period.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            let Some(plugin) = weak.upgrade() else {
                return;
            };
            if plugin.is_finished() {
                return;
            }
            if plugin.subscriptions().contains(Events::TICK) {
                plugin.deliver(Delivery::Tick, None).await;
            }
        }
    });
}
