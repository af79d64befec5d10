//! Rewrites "world" to "witm" in WebSocket text messages from the client,
//! and drops a message that says "drop me".

use witm_sdk::{Context, Events, Flow, Level, Plugin, WebsocketMessage};

struct WsRewrite;

impl Plugin for WsRewrite {
    fn events() -> Events {
        Events::WEBSOCKET_MESSAGE
    }

    fn websocket_message(ctx: &Context, flow: &Flow, message: &WebsocketMessage) {
        let text = message.text();
        ctx.log(
            Level::Info,
            &format!(
                "websocket from-client={} text={text} path={}",
                message.from_client(),
                flow.request().path()
            ),
        );
        if text == "drop me" {
            message.drop_message();
        } else if message.from_client() && message.is_text() {
            message.set_text(&text.replace("world", "witm"));
        }
    }
}

witm_sdk::export_plugin!(WsRewrite);
