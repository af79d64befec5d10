//! The examples, in every language, through the real proxy with curl and
//! the same assertions: a table of languages × examples. A language that
//! lacks an example fails here.

use std::path::PathBuf;

use serde_json::Value;
use witm_test_support::{HELLO, Origin, Witm, curl, guests};

use crate::witm_binary;

/// The languages plugins are written in, and where each one's build of an
/// example is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Language {
    Rust,
    Python,
    JavaScript,
    Go,
}

pub(crate) const LANGUAGES: [Language; 4] = [
    Language::Rust,
    Language::Python,
    Language::JavaScript,
    Language::Go,
];

impl Language {
    pub(crate) fn example(self, name: &str) -> PathBuf {
        match self {
            Language::Rust => guests().rust(name),
            Language::Python => guests().python(name),
            Language::JavaScript => guests().js(name),
            Language::Go => guests().go(name),
        }
    }

    /// witm with the example `name` (and its arguments) loaded.
    fn start(self, name: &str, args: &[&str]) -> Witm {
        let mut script = self.example(name).display().to_string();
        for arg in args {
            script.push(' ');
            script.push_str(arg);
        }
        Witm::start(witm_binary(), &["-s", &script])
            .unwrap_or_else(|(status, log)| panic!("{self:?} {name}: {status}: {log}"))
    }
}

#[test]
fn add_header_in_every_language() {
    let origin = Origin::start();
    for language in LANGUAGES {
        let witm = language.start("add-header", &[]);
        let response = curl(&witm.proxy_url(), &[&origin.url("/")]);
        assert_eq!(response.status, 200, "{language:?}");
        assert_eq!(response.header_values("newheader"), ["foo"], "{language:?}");
        assert_eq!(response.body, HELLO, "{language:?}");
    }
}

#[test]
fn block_domain_in_every_language() {
    let origin = Origin::start();
    for language in LANGUAGES {
        let witm = language.start("block-domain", &[]);
        for url in ["http://blocked.example/", "http://ads.blocked.example/x"] {
            let response = curl(&witm.proxy_url(), &[url]);
            assert_eq!(response.status, 403, "{language:?} {url}");
            assert_eq!(response.body, "blocked by witm\n", "{language:?}");
            assert_eq!(
                response.header_values("content-type"),
                ["text/plain"],
                "{language:?}"
            );
        }
        let passed = curl(&witm.proxy_url(), &[&origin.url("/passes")]);
        assert_eq!(passed.status, 200, "{language:?}");
        drop(witm);
        // The domain is the plugin's argument.
        let witm = language.start("block-domain", &["127.0.0.1"]);
        let blocked = curl(&witm.proxy_url(), &[&origin.url("/blocked")]);
        assert_eq!(blocked.status, 403, "{language:?}");
    }
    let paths: Vec<String> = origin.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec!["/passes"; LANGUAGES.len()],
        "the origin saw only what passed"
    );
}

#[test]
fn rewrite_json_in_every_language() {
    let origin = Origin::start();
    for language in LANGUAGES {
        let witm = language.start("rewrite-json", &[]);
        // The origin's JSON is gzip-encoded: the plugin works on the
        // decoded content and the client gets it encoded again.
        let response = curl(&witm.proxy_url(), &["--compressed", &origin.url("/json")]);
        assert_eq!(response.status, 200, "{language:?}");
        assert_eq!(
            response.header_values("content-encoding"),
            ["gzip"],
            "{language:?}"
        );
        let json: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("{language:?}: {e}: {:?}", response.body));
        assert_eq!(
            json,
            serde_json::json!({"hello": "world", "n": 1, "witm": "rewritten"}),
            "{language:?}"
        );
        // Not JSON: left alone.
        let text = curl(&witm.proxy_url(), &[&origin.url("/")]);
        assert_eq!(text.body, HELLO, "{language:?}");
    }
}

#[test]
fn response_counter_in_every_language_reports_in_done() {
    let origin = Origin::start();
    for language in LANGUAGES {
        let mut witm = language.start("response-counter", &[]);
        for i in 0..3 {
            let response = curl(&witm.proxy_url(), &[&origin.url(&format!("/{i}"))]);
            assert_eq!(response.status, 200, "{language:?}");
        }
        let status = witm.stop();
        assert!(status.success(), "{language:?}: {status}");
        assert_eq!(
            witm.log_count("counter: 3 responses"),
            1,
            "{language:?}: {}",
            witm.stderr().join("\n")
        );
    }
}

/// A plugin that raises (Python), throws (JavaScript) or panics (Go) is
/// contained as a
/// Rust trap is: the flow goes on as before the call, the failure is
/// logged, the instance is replaced and the next request is handled.
#[test]
fn a_plugin_that_raises_or_throws_is_contained() {
    let origin = Origin::start();
    for (plugin, tag) in [
        ("tests/plugins-py/raises.py", "py"),
        ("tests/plugins-js/throws.js", "js"),
        ("tests/plugins-go/panics.go", "go"),
    ] {
        let component = guests().script(plugin).display().to_string();
        let witm = Witm::start(witm_binary(), &["-s", &component])
            .unwrap_or_else(|(status, log)| panic!("{plugin}: {status}: {log}"));
        let thrown = curl(&witm.proxy_url(), &[&origin.url("/throw")]);
        assert_eq!(thrown.status, 200, "{plugin}: the flow goes on");
        assert!(
            witm.wait_for_log("request failed (the flow goes on as before the call)", 1),
            "{plugin}: {}",
            witm.stderr().join("\n")
        );
        let next = curl(&witm.proxy_url(), &[&origin.url("/ok")]);
        assert_eq!(next.status, 200, "{plugin}");
        let seen = origin.seen();
        let last = seen.last().unwrap();
        assert_eq!(last.path, "/ok");
        assert_eq!(
            last.header_values("x-ok"),
            [tag],
            "{plugin}: replaced and working"
        );
    }
}

/// The SDKs release the handles an event fetched when it returns: with
/// room for 16 handles, 100 responses each fetching 2 (the response and
/// its headers) all get their header. Leaked, the 9th would trap.
#[test]
fn the_sdks_release_handles_at_the_end_of_each_event() {
    let origin = Origin::start_unrecorded();
    for language in LANGUAGES {
        let plugin = language.example("add-header").display().to_string();
        let witm = Witm::start(
            witm_binary(),
            &["-s", &plugin, "--set", "plugins.add_header.max_handles=16"],
        )
        .unwrap_or_else(|(status, log)| panic!("{language:?}: {status}: {log}"));
        for i in 0..100 {
            let response = curl(&witm.proxy_url(), &[&origin.url(&format!("/{i}"))]);
            assert_eq!(
                response.header_values("newheader"),
                ["foo"],
                "{language:?}, response {i}: {}",
                witm.stderr().join("\n")
            );
        }
    }
}
