//! What an untrusted plugin might try, one act per request path, so the
//! sandbox tests can check each is contained and reported:
//!
//! - `/loop`: spins forever (the CPU deadline must end the call);
//! - `/bomb`: allocates until memory runs out (the memory cap must end it);
//! - `/crash`: traps;
//! - `/passwd`: reads `/etc/passwd`;
//! - `/env`: reads the environment variable `WITM_SECRET`;
//! - `/socket?port=N`: opens a TCP connection to 127.0.0.1:N;
//! - `/granted`: reads `/data/granted.txt` (visible only if a directory is
//!   granted at `/data`);
//! - `/slow?ms=N`: sleeps N ms (a slow plugin, not a spinning one).
//!
//! What the plugin got back is put in the `x-hostile` request header, so the
//! test's origin shows whether the sandbox held.

use witm_sdk::{Context, Events, Flow, Plugin};

struct Hostile;

impl Plugin for Hostile {
    fn events() -> Events {
        Events::REQUEST
    }

    fn request(_ctx: &Context, flow: &Flow) {
        let request = flow.request();
        let path = request.path();
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
