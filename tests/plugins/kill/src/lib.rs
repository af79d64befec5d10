//! Kills flows whose path contains `/kill`: the client gets no answer.

use witm_sdk::{Context, Events, Flow, Plugin};

struct Kill;

impl Plugin for Kill {
    fn events() -> Events {
        Events::REQUEST
    }

    fn request(_ctx: &Context, flow: &Flow) {
        if flow.request().path().contains("/kill") {
            flow.kill();
        }
    }
}

witm_sdk::export_plugin!(Kill);
