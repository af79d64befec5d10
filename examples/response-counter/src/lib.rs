//! Counts the responses it sees in a global and reports the count when
//! witm stops (`done`), as a mitmproxy script would with a module global.

use core::sync::atomic::{AtomicU64, Ordering};

use witm_sdk::{Context, Events, Flow, Level, Plugin};

static RESPONSES: AtomicU64 = AtomicU64::new(0);

struct Counter;

impl Plugin for Counter {
    fn events() -> Events {
        Events::RESPONSE | Events::DONE
    }

    fn response(_ctx: &Context, _flow: &Flow) {
        RESPONSES.fetch_add(1, Ordering::Relaxed);
    }

    fn done(ctx: &Context) {
        let count = RESPONSES.load(Ordering::Relaxed);
        ctx.log(Level::Info, &format!("counter: {count} responses"));
    }
}

witm_sdk::export_plugin!(Counter);
