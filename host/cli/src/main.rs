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

use clap::{Parser, Subcommand};

mod log_format;
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSpec, RuntimeOptions};
use witm_proxy::{Proxy, ProxyOptions, TlsOptions};
use witm_tls::{CertificateAuthority, Upstream, UpstreamTrust};

/// An intercepting HTTP proxy whose scripts are sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "witm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

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

    /// Where witm keeps its state: the CA, the compiled-plugin cache
    /// (default ~/.witm).
    #[arg(long, value_name = "DIR", global = true)]
    confdir: Option<PathBuf>,

    /// Do not verify servers' certificates (for testing only).
    #[arg(long)]
    ssl_insecure: bool,

    /// Also trust this CA certificate (PEM) when verifying servers.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Vec<PathBuf>,

    /// Tunnel CONNECTs to "host:port" matching REGEX untouched: the client
    /// sees the server's own certificate.
    #[arg(long, value_name = "REGEX")]
    ignore_hosts: Option<regex::Regex>,

    /// Intercept only CONNECTs to "host:port" matching REGEX.
    #[arg(long, value_name = "REGEX")]
    allow_hosts: Option<regex::Regex>,

    /// Largest body held in memory for plugins (e.g. 512k, 128m, 1g);
    /// larger bodies are streamed through and plugins see `body-streamed`.
    #[arg(long, value_name = "SIZE", default_value = "128m", value_parser = parse_size)]
    stream_large_bodies: usize,

    /// How long a TLS handshake with the client or the server may take, in
    /// milliseconds, before witm gives up on it.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    tls_handshake_timeout_ms: u64,

    /// CPU time one plugin event may take, in milliseconds, before it is
    /// interrupted (the flow goes on as before the call).
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    plugin_timeout_ms: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print where the CA certificate is and how to trust it.
    Ca,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if let Some(Command::Ca) = cli.command {
        return print_ca(&cli);
    }
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
    let confdir = match confdir(&cli) {
        Ok(dir) => dir,
        Err(e) => return fail(&e),
    };
    let tls = match tls_options(&cli, &confdir) {
        Ok(tls) => tls,
        Err(e) => return fail(&e),
    };
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
        max_buffered_body: cli.stream_large_bodies,
        tls: Some(Arc::new(tls)),
        ..ProxyOptions::default()
    };
    let proxy = Proxy::new(chain.clone(), proxy_options);
    plugin_runtime.set_replayer(proxy.replayer());
    let served = proxy.serve(listener, shutdown_signal()).await;
    chain.done().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("witm: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// "512", "64k", "128m", "1g" (binary units) as bytes.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let number: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 512k, 128m or 1g"))?;
    let scale: usize = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(format!("{text:?} is not a size like 512k, 128m or 1g")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The config folder, created if needed (owner-only: it holds the CA key).
fn confdir(cli: &Cli) -> Result<PathBuf, String> {
    let dir = cli
        .confdir
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".witm")))
        .ok_or("cannot tell where to keep state: set HOME or pass --confdir")?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The CA (created on first run) and how servers are verified.
fn tls_options(cli: &Cli, confdir: &std::path::Path) -> Result<TlsOptions, String> {
    let ca = CertificateAuthority::load_or_create(confdir).map_err(|e| e.to_string())?;
    let trust = if cli.ssl_insecure {
        UpstreamTrust::Insecure
    } else if cli.upstream_ca.is_empty() {
        UpstreamTrust::Verify
    } else {
        let mut extra = Vec::new();
        for path in &cli.upstream_ca {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--upstream-ca {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--upstream-ca {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--upstream-ca {}: no certificate in the file",
                    path.display()
                ));
            }
            extra.extend(certs);
        }
        UpstreamTrust::VerifyWith(extra)
    };
    let mut options = TlsOptions::new(ca, Upstream::new(&trust));
    options.ignore_hosts = cli.ignore_hosts.clone();
    options.allow_hosts = cli.allow_hosts.clone();
    options.handshake_timeout = std::time::Duration::from_millis(cli.tls_handshake_timeout_ms);
    Ok(options)
}

/// `witm ca`.
fn print_ca(cli: &Cli) -> ExitCode {
    let ca = confdir(cli)
        .and_then(|dir| CertificateAuthority::load_or_create(&dir).map_err(|e| e.to_string()));
    match ca {
        Ok(ca) => {
            println!("{}", ca.trust_instructions());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
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
