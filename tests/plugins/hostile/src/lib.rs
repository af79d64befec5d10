//! What an untrusted plugin might try, one act per request path, so the
//! sandbox tests can check each is contained and reported:
//!
//! - `/loop`: spins forever (the event deadline must end the call);
//! - `/bomb`: allocates until memory runs out (the memory cap must end it);
//! - `/crash`: traps;
//! - `/passwd`: reads `/etc/passwd`;
//! - `/env`: reads the environment variable `WITM_SECRET`;
//! - `/socket?port=N`: opens a TCP connection to 127.0.0.1:N;
//! - `/granted`: reads `/data/granted.txt` (visible only if a directory is
//!   granted at `/data`);
//! - `/slow?ms=N`: sleeps N ms (a slow plugin, not a spinning one).
//!
//! And what it might make the host hold or do (the budgets):
//! - `/kv-flood`: 1 MiB entries into the key-value store until refused;
//! - `/header-flood`: 1 KiB request headers until refused;
//! - `/response-flood`, `/dup-flood`: responses of 1 MiB made, flows
//!   duplicated, every handle kept (the budget ends the call);
//! - `/metadata-flood`: 64 KiB metadata values under new keys;
//! - `/handle-flood`: request handles kept until the table is full;
//! - `/log-flood`: 100,000 log lines of 8 KiB and 10 MiB of stdout;
//! - `/replay-flood`: the flow replayed up to 10,000 times;
//! - `/replay-loopback?port=N`: a copy aimed at 127.0.0.1:N replayed;
//! - `/unzip`: the request's content decoded 1,000 times (a gzip bomb);
//! - `/rezip`: 64 MiB of content set 100 times (encoded in the request's
//!   `content-encoding`, e.g. br: seconds of host CPU per call);
//! - `/many-headers`: a response with 100,000 headers set on the flow;
//! - `/keep-dup`: a duplicate kept in a global, never dropped.
//!
//! With the argument `fail-restart`, `start` fails once it has run before
//! (it leaves a mark in the key-value store), so after `/crash` the plugin
//! cannot restart.
//!
//! What the plugin got back is put in the `x-hostile` request header, so the
//! test's origin shows whether the sandbox held.

use witm_sdk::{Context, Events, Flow, Level, Plugin, Response};

struct Hostile;

/// The digits after `key=` in `path`.
fn number(path: &str, key: &str, default: u64) -> u64 {
    let digits: String = path
        .split(key)
        .nth(1)
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(default)
}

/// What the budget acts try; `None` for paths that are not theirs.
fn budget_act(ctx: &Context, flow: &Flow, path: &str) -> Option<String> {
    let outcome = if path.starts_with("/kv-flood") {
        let value = "v".repeat((1 << 20) - 128);
        let mut stored = 0;
        let error = loop {
            if stored == 10_000 {
                break "none".to_owned();
            }
            match ctx.kv_set(&format!("flood-{stored}"), Some(&value)) {
                Ok(()) => stored += 1,
                Err(e) => break format!("{e:?}"),
            }
        };
        format!("stored {stored} MiB; then: {error}")
    } else if path.starts_with("/header-flood") {
        let headers = flow.request().headers();
        let value = "h".repeat(1024);
        let mut appended = 0;
        let error = loop {
            if appended == 1_000_000 {
                break "none".to_owned();
            }
            match headers.append("x-flood", &value) {
                Ok(()) => appended += 1,
                Err(e) => break format!("{e:?}"),
            }
        };
        headers.remove("x-flood");
        format!("appended {appended}; then: {error}")
    } else if path.starts_with("/response-flood") {
        let body = alloc_body(1 << 20);
        let mut kept = Vec::new();
        for _ in 0..100_000 {
            kept.push(Response::new(200, &[], &body));
        }
        format!("made {} responses", kept.len())
    } else if path.starts_with("/dup-flood") {
        let mut kept = Vec::new();
        for _ in 0..1_000_000 {
            kept.push(ctx.duplicate_flow(flow));
        }
        format!("duplicated {}", kept.len())
    } else if path.starts_with("/metadata-flood") {
        let value = "m".repeat(64 << 10);
        for i in 0..100_000 {
            flow.set_metadata(&format!("flood-{i}"), Some(&value));
        }
        "set 100000 notes".to_owned()
    } else if path.starts_with("/handle-flood") {
        for _ in 0..1_000_000 {
            core::mem::forget(flow.request());
        }
        "kept 1000000 handles".to_owned()
    } else if path.starts_with("/log-flood") {
        let line = "l".repeat(8 << 10);
        for _ in 0..100_000 {
            ctx.log(Level::Info, &line);
        }
        let chunk = "o".repeat(1 << 20);
        for _ in 0..10 {
            print!("{chunk}");
        }
        "logged".to_owned()
    } else if path.starts_with("/replay-flood") {
        let mut replayed = 0;
        let error = loop {
            if replayed == 10_000 {
                break "none".to_owned();
            }
            match ctx.replay_request(flow) {
                Ok(()) => replayed += 1,
                Err(e) => break format!("{e:?}"),
            }
        };
        format!("replayed {replayed}; then: {error}")
    } else if path.starts_with("/replay-loopback") {
        let copy = ctx.duplicate_flow(flow);
        let port = number(path, "port=", 1);
        let _ = copy
            .request()
            .set_url(&format!("http://127.0.0.1:{port}/secret"));
        match ctx.replay_request(&copy) {
            Ok(()) => "replayed".to_owned(),
            Err(e) => format!("denied: {e:?}"),
        }
    } else if path.starts_with("/unzip") {
        let request = flow.request();
        let mut decoded = 0;
        let error = loop {
            if decoded == 1_000 {
                break "none".to_owned();
            }
            match request.content() {
                Ok(_) => decoded += 1,
                Err(e) => {
                    decoded += 1;
                    if decoded == 1_000 {
                        break format!("{e:?}");
                    }
                }
            }
        };
        format!("decoded {decoded}; then: {error}")
    } else if path.starts_with("/rezip") {
        let request = flow.request();
        // Incompressible bytes: the encoder works hardest on them.
        let mut state: u32 = 0x9e37_79b9;
        let content: Vec<u8> = (0..64 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let mut set = 0;
        for _ in 0..100 {
            if request.set_content(&content).is_ok() {
                set += 1;
            }
        }
        format!("set {set}")
    } else if path.starts_with("/many-headers") {
        let headers: Vec<(String, String)> = (0..100_000)
            .map(|i| (format!("x-many-{i}"), "v".to_owned()))
            .collect();
        flow.set_response(Response::new(200, &headers, b"many"));
        "set".to_owned()
    } else if path.starts_with("/keep-dup") {
        // A global the plugin never drops: the copy lives as long as the
        // instance.
        static KEPT: KeptFlows = KeptFlows(core::cell::RefCell::new(Vec::new()));
        KEPT.0.borrow_mut().push(ctx.duplicate_flow(flow));
        "kept".to_owned()
    } else {
        return None;
    };
    Some(outcome)
}

/// Flows kept in a global (a component instance is single-threaded).
struct KeptFlows(core::cell::RefCell<Vec<Flow>>);
unsafe impl Sync for KeptFlows {}

fn alloc_body(len: usize) -> Vec<u8> {
    vec![0x42; len]
}

impl Plugin for Hostile {
    fn events() -> Events {
        Events::REQUEST
    }

    fn start(ctx: &Context, args: Vec<String>) -> Result<(), String> {
        if args.iter().any(|a| a == "fail-restart") {
            if ctx.kv_get("started").is_some() {
                return Err("refusing to start again".into());
            }
            let _ = ctx.kv_set("started", Some("yes"));
        }
        Ok(())
    }

    fn request(ctx: &Context, flow: &Flow) {
        let request = flow.request();
        let path = request.path();
        if let Some(outcome) = budget_act(ctx, flow, &path) {
            let _ = request.headers().set("x-hostile", &outcome);
            return;
        }
        let outcome = if path.starts_with("/loop") {
            let mut n: u64 = 0;
            loop {
                n = core::hint::black_box(n.wrapping_add(1));
            }
        } else if path.starts_with("/bomb") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![0xA5; 1 << 20]);
                core::hint::black_box(&hoard);
            }
        } else if path.starts_with("/crash") {
            core::arch::wasm32::unreachable()
        } else if path.starts_with("/passwd") {
            match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => format!("read {} bytes", text.len()),
                Err(e) => format!("denied: {e}"),
            }
        } else if path.starts_with("/env") {
            match std::env::var("WITM_SECRET") {
                Ok(value) => format!("got {value}"),
                Err(e) => format!("denied: {e}"),
            }
        } else if path.starts_with("/socket") {
            let port: String = path
                .split("port=")
                .nth(1)
                .unwrap_or("1")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            match std::net::TcpStream::connect(format!("127.0.0.1:{port}")) {
                Ok(_) => "connected".to_owned(),
                Err(e) => format!("denied: {e}"),
            }
        } else if path.starts_with("/slow") {
            let digits: String = path
                .split("ms=")
                .nth(1)
                .unwrap_or("100")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let ms: u64 = digits.parse().unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            format!("slept {ms} ms")
        } else if path.starts_with("/granted") {
            match std::fs::read_to_string("/data/granted.txt") {
                Ok(text) => format!("read {}", text.trim()),
                Err(e) => format!("denied: {e}"),
            }
        } else {
            return;
        };
        let _ = request.headers().set("x-hostile", &outcome);
    }
}

witm_sdk::export_plugin!(Hostile);
