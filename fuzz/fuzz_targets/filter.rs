//! Filter expressions (mitmproxy's language): any text parses or gives an
//! error, never a panic, and a filter that parses can be matched against a
//! flow.
#![no_main]

use std::sync::OnceLock;

use witm_flow::Flow;

fn flow() -> &'static Flow {
    static FLOW: OnceLock<Flow> = OnceLock::new();
    FLOW.get_or_init(|| {
        let flow = witm_flow::testing::trequest("POST", "http://example.com/path?q=1", "a=b");
        witm_flow::testing::with_response(flow, 200, "<p>hi</p>")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = witm_store::Filter::parse(text) {
        let _ = filter.matches(flow());
    }
});
