//! Adds `<p id="witm">injected by witm</p>` before `</body>` of HTML pages,
//! so a browser test can see a plugin's change in the DOM.

use witm_sdk::{Context, Events, Flow, Plugin};

struct Inject;

const PARAGRAPH: &str = "<p id=\"witm\">injected by witm</p>";

impl Plugin for Inject {
    fn events() -> Events {
        Events::RESPONSE
    }

    fn response(_ctx: &Context, flow: &Flow) {
        let Some(response) = flow.response() else {
            return;
        };
        let is_html = response
            .headers()
            .get("content-type")
            .is_some_and(|t| t.starts_with("text/html"));
        if !is_html {
            return;
        }
        let Ok(body) = response.body() else {
            return;
        };
        let page = String::from_utf8_lossy(&body);
        if let Some(end) = page.rfind("</body>") {
            let changed = format!("{}{PARAGRAPH}{}", &page[..end], &page[end..]);
            let _ = response.set_body(changed.as_bytes());
        }
    }
}

witm_sdk::export_plugin!(Inject);
