//! A client's bytes, as the proxy reads them off a connection: request
//! lines and targets (absolute-form, origin-form, CONNECT authorities),
//! heads, chunked and sized bodies, trailers, pipelined requests, upgrades,
//! HTTP/2 after its preface. Whatever arrives, the proxy answers or closes,
//! never panics, and a connection ends once the client's side has.
//!
//! No byte leaves the machine: the hooks answer every request themselves
//! (`request`) and refuse every tunnel (`http-connect`), so what is fuzzed
//! is the proxy's reading of the client, the tunnel-target check and the
//! writing of its answers. The insides of tunnels are served by the same
//! connection code as a first connection.
//!
//! `WITM_FUZZ_SHOW=1` prints what the proxy answered each input (run the
//! binary on one file to see it).
//!
//! Time is tokio's paused clock: a head timeout of 30 s passes as soon as
//! nothing else can run, so a request that never completes ends at once.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use witm_flow::{Events, Flow, FlowCtx, FlowHooks, Headers, Response};
use witm_proxy::{Proxy, ProxyOptions};

/// Answers every request with its own size, refuses every tunnel.
struct Answer;

impl FlowHooks for Answer {
    type Ctx = ();

    fn subscriptions(&self) -> Events {
        Events::REQUEST | Events::HTTP_CONNECT
    }

    async fn request(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
        let size = flow.request.body.bytes().map_or(0, |b| b.len());
        let body = format!("{} {size}", flow.request.method);
        flow.response = Some(Response::make(200, Headers::default(), body));
    }

    async fn http_connect(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
        flow.response = Some(Response::make(403, Headers::default(), "no tunnels"));
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

fn proxy() -> &'static Proxy<Answer> {
    static PROXY: OnceLock<Proxy<Answer>> = OnceLock::new();
    PROXY.get_or_init(|| {
        Proxy::new(
            Answer,
            ProxyOptions {
                flow_lines: false,
                ..ProxyOptions::default()
            },
        )
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let address: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(proxy().serve_stream(server, address));
        // Written while the proxy reads, then the client's half closed; what
        // the proxy answers is read to the end, so a full pipe never stalls
        // either side.
        let input = data.to_vec();
        let (mut reader, mut writer) = tokio::io::split(&mut client);
        let write = async move {
            let _ = writer.write_all(&input).await;
            let _ = writer.shutdown().await;
        };
        let read = async move {
            let mut answer = Vec::new();
            let _ = reader.read_to_end(&mut answer).await;
            // To see what an input got (reproducing a crash, checking seeds).
            if std::env::var_os("WITM_FUZZ_SHOW").is_some() {
                eprintln!("{}", String::from_utf8_lossy(&answer));
            }
        };
        tokio::join!(write, read);
        drop(client);
        served.await.expect("the connection task panicked");
    });
});
