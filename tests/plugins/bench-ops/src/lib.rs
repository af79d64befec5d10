//! `-s "bench_ops.wasm OP N"`: in each `response` event, does OP N times on
//! the response — `header-get`, `header-set`, `body` (read the whole body)
//! or `nothing` — so a benchmark can divide out the per-event cost.

use std::sync::OnceLock;

use witm_sdk::{Context, Events, Flow, Plugin};

static OP: OnceLock<(String, u32)> = OnceLock::new();

struct BenchOps;

impl Plugin for BenchOps {
    fn events() -> Events {
        Events::RESPONSE
    }

    fn start(_ctx: &Context, args: Vec<String>) -> Result<(), String> {
        let op = args.first().cloned().ok_or("usage: bench_ops.wasm OP N")?;
        let n = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1);
        let _ = OP.set((op, n));
        Ok(())
    }

    fn response(_ctx: &Context, flow: &Flow) {
        let (op, n) = OP.get().unwrap();
        let Some(response) = flow.response() else {
            return;
        };
        let headers = response.headers();
        for _ in 0..*n {
            match op.as_str() {
                "header-get" => {
                    core::hint::black_box(headers.get("content-type"));
                }
                "header-set" => {
                    let _ = headers.set("x-bench", "1");
                }
                "body" => {
                    core::hint::black_box(response.body().map(|b| b.len()).unwrap_or(0));
                }
                _ => {}
            }
        }
    }
}

witm_sdk::export_plugin!(BenchOps);
