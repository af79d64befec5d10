//! `witm`: an intercepting HTTP proxy scripted with WebAssembly components.
//!
//! Shaped like mitmdump: `witm -p 8080 -s plugin.wasm [-s "other.wasm arg"]`.
//! This binary only parses arguments and wires the crates together: the
//! proxy engine (`witm-proxy`) and the plugin runtime (`witm-plugin-host`)
//! meet here through `FlowHooks`.
//!
//! Modules: `config` (the TOML file and `--set`; in the library, for the
//! fuzzer), `live` (the running proxy:
//! listeners, tenants, reload, metrics), `tenants` (routing flows to their
//! tenant's hooks), `saved` (recording and server replay as hooks),
//! `offline` (`witm replay`, `flows`, `export`), `log_format`, `open_files`
//! (the open-files limit raised at start), `options_list` (`witm options`),
//! `new_project` (`witm new`), `allocator` (mimalloc, and why).
// `unsafe` only in `allocator` (an option of the allocator's C library).
#![deny(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod allocator;
mod live;
mod log_format;
mod new_project;
mod offline;
mod open_files;
mod options_list;
mod tenants;
mod timeout_args;
use offline::FlowSelector;
use witm::config;
use witm_addons::Unmatched;
use witm_plugin_host::{PluginChain, PluginRuntime, PluginSpec, RuntimeOptions};
use witm_proxy::TlsOptions;
use witm_store::{Filter, FlowFile};
use witm_tls::{CertificateAuthority, Upstream, UpstreamTrust};

/// An intercepting HTTP proxy whose scripts are sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "witm", version, about, args_override_self = true)]
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

    /// How to listen, as mitmproxy's --mode: regular (a forward proxy, the
    /// default), reverse:http[s]://host[:port] (every request to that
    /// server), upstream:http[s]://[user:pw@]host:port (through that
    /// proxy), socks5. MODE@PORT listens on a port of its own; repeat for
    /// several listeners in one process.
    #[arg(long = "mode", value_name = "MODE[@PORT]", value_parser = parse_mode)]
    modes: Vec<(witm_proxy::Mode, Option<u16>)>,

    /// Reverse mode: send the client's Host header to the server as it
    /// came, instead of the server's own name.
    #[arg(long)]
    keep_host_header: bool,

    /// Send HTTP/1 header names lower-case, as Envoy and HAProxy do, instead
    /// of in the case they came in (as mitmproxy and nginx do): each
    /// request costs hyper one record of its names less. Flows and saved
    /// files keep the case as it came.
    #[arg(long)]
    lowercase_header_names: bool,

    /// A plugin component and its arguments, e.g. -s "plugin.wasm arg1 arg2".
    /// Repeat to chain plugins; they run in the order given.
    #[arg(short = 's', long = "script", value_name = "PLUGIN [ARGS]")]
    scripts: Vec<String>,

    /// Do not print a line per flow.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// Threads that serve connections and run their plugins, one tokio
    /// runtime each; a connection goes to the thread serving the fewest
    /// and stays there (default: one per CPU core, as nginx's `worker_processes auto` and
    /// Envoy's --concurrency). Listening, plugin loading and the admin
    /// endpoint run on the main thread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,

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

    /// Send the requests of intercepted HTTPS tunnels over connections
    /// shared by all clients (HTTP/2 where the server offers it), as Envoy
    /// does, instead of one server connection per tunnel, as mitmproxy does.
    #[arg(long)]
    share_server_connections: bool,

    /// The host whose requests through the proxy witm answers itself with a
    /// page to download its CA certificate (http://witm.it/, as mitmproxy's
    /// is mitm.it); no plugin sees them.
    #[arg(long, value_name = "HOST", default_value = witm_proxy::onboarding::DEFAULT_HOST, value_parser = parse_host)]
    onboarding_host: String,

    /// Forward requests to the onboarding host like any other: no CA page.
    #[arg(long)]
    no_onboarding: bool,

    /// Largest body held in memory for plugins (e.g. 512k, 128m, 1g);
    /// larger bodies are streamed through and plugins see `body-streamed`.
    #[arg(long, value_name = "SIZE", default_value = "128m", value_parser = parse_size)]
    stream_large_bodies: usize,

    /// Largest sum of bodies held in memory for plugins by all flows at once
    /// (e.g. 1g); past it, bodies are streamed through and plugins see
    /// `body-streamed`, as for a body over --stream-large-bodies.
    #[arg(long, value_name = "SIZE", default_value = "1g", value_parser = parse_size)]
    max_held_bytes: usize,

    /// Largest WebSocket message relayed, all frames together (e.g. 64m);
    /// one over it closes both sides with 1009 (message too big).
    #[arg(long, value_name = "SIZE", default_value = "64m", value_parser = parse_size)]
    websocket_max_message: usize,

    /// Largest single WebSocket frame relayed (e.g. 16m); closes as above.
    #[arg(long, value_name = "SIZE", default_value = "16m", value_parser = parse_size)]
    websocket_max_frame: usize,

    /// How long a TLS handshake with the client or the server may take, in
    /// milliseconds, before witm gives up on it.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    tls_handshake_timeout_ms: u64,

    #[command(flatten)]
    timeouts: timeout_args::TimeoutArgs,

    /// Time one plugin event may run (wall clock, from the call's start), in
    /// milliseconds, before it is
    /// interrupted (the flow goes on as before the call).
    #[arg(long, value_name = "MS", default_value_t = 5000, global = true)]
    plugin_timeout_ms: u64,

    /// Save finished flows to FILE (witm's flow format), as they end.
    #[arg(short = 'w', long = "save", value_name = "FILE")]
    save: Option<PathBuf>,

    /// Only save flows matching this filter expression (e.g. "~d example.com & ~c 200").
    #[arg(long = "save-filter", value_name = "EXPR", value_parser = parse_filter)]
    save_filter: Option<Filter>,

    /// Send the requests saved in FILE again, one after another, through the
    /// plugins to their servers (witm, mitmproxy or HAR file).
    #[arg(long, value_name = "FILE")]
    client_replay: Option<PathBuf>,

    /// Answer requests from the responses saved in FILE, matched on method,
    /// URL and body; each saved response is served once, in order.
    #[arg(long, value_name = "FILE")]
    server_replay: Option<PathBuf>,

    /// What to do with requests --server-replay has no response for:
    /// forward (to the server), kill, or a status code such as 404.
    #[arg(long, value_name = "WHAT", default_value = "forward")]
    server_replay_extra: Unmatched,

    /// Serve a saved response as often as it matches, not once.
    #[arg(long)]
    server_replay_reuse: bool,

    /// A configuration file (TOML): plugins with their capabilities, limits
    /// and failure policy, tenants, the admin port. SIGHUP reads it again.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Set a configuration key, e.g. --set plugins.tagger.failure=closed
    /// (repeatable; applied over the configuration file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print where the CA certificate is and how to trust it.
    Ca,
    /// Run plugins over saved flows, with no network: start, then request,
    /// response and error for each flow, then done.
    Replay(ReplayArgs),
    /// List the flows of a file (witm, mitmproxy or HAR), one per line.
    Flows {
        /// The file.
        file: PathBuf,
        /// Only flows matching this filter expression.
        #[arg(long, value_name = "EXPR", value_parser = parse_filter)]
        filter: Option<Filter>,
    },
    /// Convert saved flows to another format.
    Export(ExportArgs),
    /// Print every option with its configuration key, default and meaning.
    Options,
    /// Make a plugin project: the plugin, ./build.sh, a saved flow and
    /// ./test.sh, which runs the plugin over it with `witm replay`.
    New(new_project::NewArgs),
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// The saved flows (witm, mitmproxy capture or HAR).
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    read: PathBuf,
    /// A plugin and its arguments; repeat to chain plugins.
    #[arg(short = 's', long = "script", value_name = "PLUGIN [ARGS]")]
    scripts: Vec<String>,
    /// Write the flows after the plugins ran to FILE (witm format). It
    /// appears only when every flow was written; the input is never changed.
    #[arg(short = 'w', long = "save", value_name = "FILE")]
    save: Option<PathBuf>,
    /// Only flows matching this filter expression.
    #[arg(long, value_name = "EXPR", value_parser = parse_filter)]
    filter: Option<Filter>,
    /// Run on one flow only, by number (as `witm flows` counts) or id, and
    /// print it in full.
    #[arg(long, value_name = "N|ID")]
    flow: Option<FlowSelector>,
    /// Do not print a line per flow.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// Accepted and ignored, as before: replay runs on one thread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("format").required(true).args(["har", "mitmproxy"])))]
struct ExportArgs {
    /// Write HAR 1.2.
    #[arg(long)]
    har: bool,
    /// Write a mitmproxy capture (flow format 21: `mitmproxy -r` opens it).
    #[arg(long)]
    mitmproxy: bool,
    /// The saved flows (witm, mitmproxy capture or HAR).
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    read: PathBuf,
    /// Where to write; stdout without it.
    #[arg(short = 'w', long = "save", value_name = "FILE")]
    save: Option<PathBuf>,
    /// Only flows matching this filter expression.
    #[arg(long, value_name = "EXPR", value_parser = parse_filter)]
    filter: Option<Filter>,
}

/// `MODE[@PORT]`, e.g. `reverse:https://backend:8443@9000`.
fn parse_mode(text: &str) -> Result<(witm_proxy::Mode, Option<u16>), String> {
    witm_proxy::Mode::parse_with_port(text)
}

/// A filter expression, or the error drawn under it.
fn parse_filter(expression: &str) -> Result<Filter, String> {
    Filter::parse(expression).map_err(|e| format!("{e}\n{}", e.explain(expression)))
}

fn main() -> ExitCode {
    allocator::return_freed_memory_soon();
    let cli = match with_configured_options(Cli::parse()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging();
    match &cli.command {
        Some(Command::Ca) => return print_ca(&cli),
        Some(Command::Options) => {
            options_list::print::<Cli>();
            return ExitCode::SUCCESS;
        }
        Some(Command::New(args)) => return new_project::run(args),
        Some(Command::Flows { file, filter }) => return offline::list(file, filter.as_ref()),
        Some(Command::Export(args)) => {
            let format = if args.mitmproxy {
                offline::ExportFormat::Mitmproxy
            } else {
                offline::ExportFormat::Har
            };
            return offline::export(format, &args.read, args.save.as_ref(), args.filter.as_ref());
        }
        Some(Command::Replay(_)) | None => {}
    }
    open_files::raise_limit();
    // Listening, plugin loading and the admin endpoint run here; connections
    // are served on their own threads (`witm_proxy::Workers`, started in
    // `live::run`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(run(cli))
}

/// The command line with the proxy options of `--config` / `--set`
/// (`listen_port = 9000` …) put before it, so that an option given on the
/// command line itself wins (later occurrences override earlier ones).
fn with_configured_options(cli: Cli) -> Result<Cli, clap::Error> {
    if cli.config.is_none() && cli.set.is_empty() {
        return Ok(cli);
    }
    let options = match config::load_with_options(cli.config.as_deref(), &[], &cli.set) {
        Ok((_, options)) => options,
        // The configuration's own errors are reported where it is used.
        Err(_) => return Ok(cli),
    };
    if options.is_empty() {
        return Ok(cli);
    }
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let program = if args.is_empty() {
        "witm".into()
    } else {
        args.remove(0)
    };
    Cli::try_parse_from(
        std::iter::once(program)
            .chain(options.into_iter().map(Into::into))
            .chain(args),
    )
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

/// A runtime for `specs` and their chain, each plugin started. Every
/// listener gets its own runtime, so a plugin's `replay-request` goes
/// through the listener (and tenant) its flow came from.
/// Loads a chain on a runtime of its own; `http_sender` is the way out for
/// plugins' `http-send` (none offline). It is set before the plugins start,
/// so `start` may call out too.
async fn load_chain(
    specs: &[PluginSpec],
    confdir: &std::path::Path,
    own_ports: Vec<u16>,
    http_sender: Option<witm_flow::HttpSender>,
) -> Result<(PluginRuntime, PluginChain), String> {
    for spec in specs {
        if !spec.path.is_file() {
            return Err(format!("plugin file not found: {}", spec.path.display()));
        }
    }
    let options = RuntimeOptions {
        cache_dir: Some(confdir.join("cache")),
        fuel: specs.iter().any(|s| s.settings.fuel.is_some()),
        own_ports,
    };
    let runtime =
        PluginRuntime::new(options).map_err(|e| format!("cannot start the plugin runtime: {e}"))?;
    if let Some(sender) = http_sender {
        runtime.set_http_sender(sender);
    }
    let chain = PluginChain::load(&runtime, specs)
        .await
        .map_err(|e| e.to_string())?;
    Ok((runtime, chain))
}

/// Every flow of a file, or an error naming it.
fn read_all(path: &std::path::Path) -> Result<Vec<witm_flow::Flow>, String> {
    let mut file = FlowFile::open(path).map_err(|e| e.to_string())?;
    let flows = file
        .by_ref()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(skipped) = file.skipped_summary() {
        tracing::warn!("{}: {skipped}", path.display());
    }
    Ok(flows)
}

async fn run(cli: Cli) -> ExitCode {
    let confdir = match confdir(&cli) {
        Ok(dir) => dir,
        Err(e) => return fail(&e),
    };
    if let Some(Command::Replay(args)) = &cli.command {
        let specs = args
            .scripts
            .iter()
            .map(|s| {
                let mut spec = PluginSpec::parse(s)?;
                spec.settings.event_deadline =
                    std::time::Duration::from_millis(cli.plugin_timeout_ms);
                Ok(spec)
            })
            .collect::<Result<Vec<_>, witm_plugin_host::LoadError>>();
        let loaded = match specs {
            Ok(specs) => load_chain(&specs, &confdir, Vec::new(), None).await,
            Err(e) => Err(e.to_string()),
        };
        let (_runtime, chain) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => return fail(&e),
        };
        let job = offline::ReplayJob {
            input: &args.read,
            output: args.save.as_deref(),
            filter: args.filter.as_ref(),
            one: args.flow.as_ref(),
            quiet: args.quiet,
        };
        return offline::replay(&chain, job).await;
    }
    live::run(&cli, &confdir).await
}

/// "512", "64k", "128m", "1g" (binary units) as bytes.
/// A host name for --onboarding-host: letters, digits, dots and dashes.
fn parse_host(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    match valid {
        true => Ok(text.to_ascii_lowercase()),
        false => Err(format!("{text:?} is not a host name like witm.it")),
    }
}

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
    options.share_server_connections = cli.share_server_connections;
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
            if !cli.no_onboarding {
                println!(
                    "\nOn a phone or another browser, with witm as its proxy: open http://{}/\n\
                     (the certificate as PEM, DER or PKCS#12, and how to install it).",
                    cli.onboarding_host
                );
            }
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
