//! Adds `"witm": "rewritten"` to every JSON object a server answers with,
//! working on the decoded content: a gzip body is decoded for the plugin
//! and encoded again after it.

use witm_sdk::{Context, Events, Flow, Plugin};

struct RewriteJson;

impl Plugin for RewriteJson {
    fn events() -> Events {
        Events::RESPONSE
    }

    fn response(_ctx: &Context, flow: &Flow) {
        let Some(response) = flow.response() else {
            return;
        };
        let is_json = response
            .headers()
            .get("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
        if !is_json {
            return;
        }
        let Ok(content) = response.content() else {
            return;
        };
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(&content) else {
            return;
        };
        object.insert("witm".into(), "rewritten".into());
        if let Ok(rewritten) = serde_json::to_vec(&object) {
            let _ = response.set_content(&rewritten);
        }
    }
}

witm_sdk::export_plugin!(RewriteJson);
