//! `witm`: an intercepting HTTP proxy scripted with WebAssembly components.
//!
//! Shaped like mitmdump: `witm -p 8080 -s plugin.wasm [-s "other.wasm arg"]`.
//! This binary only parses arguments and wires the crates together: the
//! proxy engine (`witm-proxy`) and the plugin runtime (`witm-plugin-host`)
//! meet here through `FlowHooks`.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

mod log_format;
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSpec, RuntimeOptions};
use witm_proxy::ProxyOptions;

/// An intercepting HTTP proxy whose scripts are sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "witm", version, about)]
struct Cli {
    /// Port to listen on.
    #[arg(short = 'p', long = "listen-port", default_value_t = 8080)]
    listen_port: u16,

    /// Address to listen on. The default accepts only this machine: a proxy
    /// open to the network can be abused by anyone who reaches it.
    #[arg(long = "listen-host", default_value = "127.0.0.1")]
    listen_host: IpAddr,

    /// A plugin component and its arguments, e.g. -s "plugin.wasm arg1 arg2".
    /// Repeat to chain plugins; they run in the order given.
    #[arg(short = 's', long = "script", value_name = "PLUGIN [ARGS]")]
    scripts: Vec<String>,

    /// Do not print a line per flow.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// Where witm keeps its state (compiled-plugin cache; later the CA).
    #[arg(long, value_name = "DIR")]
    confdir: Option<PathBuf>,

    /// CPU time one plugin event may take, in milliseconds, before it is
    /// interrupted (the flow goes on as before the call).
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    plugin_timeout_ms: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(run(cli))
}

/// Plugin and proxy messages go to stderr; flow lines go to stdout.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WITM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(log_format::WitmFormat)
        .init();
}

fn fail(message: &str) -> ExitCode {
    eprintln!("witm: error: {message}");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> ExitCode {
    let specs = match cli
        .scripts
        .iter()
        .map(|s| PluginSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(specs) => specs,
        Err(e) => return fail(&e.to_string()),
    };
    for spec in &specs {
        if !spec.path.is_file() {
            return fail(&format!("plugin file not found: {}", spec.path.display()));
        }
    }
    let confdir = match cli.confdir.clone().or_else(default_confdir) {
        Some(dir) => dir,
        None => return fail("cannot tell where to keep state: set HOME or pass --confdir"),
    };
    if let Err(e) = std::fs::create_dir_all(&confdir) {
        return fail(&format!("cannot create {}: {e}", confdir.display()));
    }
    let options = RuntimeOptions {
        event_deadline: std::time::Duration::from_millis(cli.plugin_timeout_ms),
        cache_dir: Some(confdir.join("cache")),
        ..RuntimeOptions::default()
    };
    let plugin_runtime = match PluginRuntime::new(options) {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the plugin runtime: {e}")),
    };
    let chain = match PluginChain::load(&plugin_runtime, &specs).await {
        Ok(chain) => Arc::new(chain),
        Err(e) => return fail(&e.to_string()),
    };

    let address = SocketAddr::new(cli.listen_host, cli.listen_port);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(e) => return fail(&format!("cannot listen on {address}: {e}")),
    };
    let bound = listener.local_addr().unwrap_or(address);
    tracing::info!("proxy listening at http://{bound}");
    let proxy_options = ProxyOptions {
        flow_lines: !cli.quiet,
        ..ProxyOptions::default()
    };
    let served = witm_proxy::serve(listener, chain.clone(), proxy_options, shutdown_signal()).await;
    chain.done().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("witm: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_confdir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".witm"))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: no new connections; finishing flows in flight");
}
