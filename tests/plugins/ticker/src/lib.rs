//! Asks for a tick every N ms (its first argument) and logs
//! `tick n=COUNT`; a second argument asks for a period under the minimum
//! first and logs the refusal.

use core::sync::atomic::{AtomicU32, Ordering};

use witm_sdk::{Context, Events, Level, Plugin};

static TICKS: AtomicU32 = AtomicU32::new(0);

struct Ticker;

impl Plugin for Ticker {
    fn events() -> Events {
        Events::TICK
    }

    fn start(ctx: &Context, args: Vec<String>) -> Result<(), String> {
        if let Some(too_short) = args.get(1).and_then(|a| a.parse().ok()) {
            let refused = ctx.set_tick(too_short);
            ctx.log(Level::Info, &format!("set-tick {too_short}: {refused:?}"));
        }
        let period = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
        ctx.set_tick(period).map_err(|e| format!("set-tick: {e:?}"))
    }

    fn tick(ctx: &Context) {
        let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
        ctx.log(Level::Info, &format!("tick n={n}"));
    }
}

witm_sdk::export_plugin!(Ticker);
