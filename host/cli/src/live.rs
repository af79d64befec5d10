//! The running proxy: tenants and their listeners, saved-flow options, hot
//! reload (plugin files, and the configuration on SIGHUP), the admin
//! endpoint, and an orderly stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use witm_addons::{Save, ServerReplay, TenantRouter};
use witm_plugin_host::PluginSpec;
use witm_proxy::{Authenticator, Mode, Proxy, ProxyOptions};

use crate::tenants::Tenant;
use crate::{Cli, fail, load_chain, read_all, shutdown_signal, tls_options};
use witm::config::{self, Config, PluginConfig};

/// How often plugin files are checked for a new version.
const RELOAD_POLL: Duration = Duration::from_secs(1);

/// A tenant as configured, before its plugins are loaded.
struct TenantPlan {
    name: Option<Arc<str>>,
    credentials: Vec<String>,
    save: Option<PathBuf>,
    plugins: Vec<PluginConfig>,
}

/// The tenants of each listening port (`None`: the main `-p` port).
fn plan(config: &Config) -> BTreeMap<Option<u16>, Vec<TenantPlan>> {
    let mut listeners: BTreeMap<Option<u16>, Vec<TenantPlan>> = BTreeMap::new();
    if config.tenants.is_empty() {
        listeners.entry(None).or_default().push(TenantPlan {
            name: None,
            credentials: Vec::new(),
            save: None,
            plugins: config.plugins.clone(),
        });
    }
    for tenant in &config.tenants {
        listeners
            .entry(tenant.listen_port)
            .or_default()
            .push(TenantPlan {
                name: Some(Arc::from(tenant.name.as_str())),
                credentials: tenant.credentials.clone(),
                save: tenant.save.clone(),
                plugins: tenant.plugins.clone(),
            });
    }
    listeners
}

/// A group of tenants, loaded: the tenants, and the credentials naming
/// each (`user:password`, tenant).
type LoadedGroup = (Vec<Arc<Tenant>>, Vec<(String, Arc<str>)>);

/// One listener: its port, its mode, and the group of tenants (by their
/// `listen_port`, `None` for those without) whose flows it carries.
struct ListenerPlan {
    port: u16,
    mode: Mode,
    group: Option<u16>,
}

/// The listeners: those of `--mode` (which, as in mitmproxy, replace the
/// default regular one on `-p`), or the regular one on `-p`; and a regular
/// listener for each tenant port no mode names. A listener carries the
/// tenants whose `listen_port` is its port, else those without one.
fn listeners(
    cli: &Cli,
    groups: &BTreeMap<Option<u16>, Vec<TenantPlan>>,
) -> Result<Vec<ListenerPlan>, String> {
    let mut ports: Vec<(u16, Mode)> = cli
        .modes
        .iter()
        .map(|(mode, port)| (port.unwrap_or(cli.listen_port), mode.clone()))
        .collect();
    if cli.modes.is_empty() && groups.contains_key(&None) {
        ports.push((cli.listen_port, Mode::Regular));
    }
    for port in groups.keys().flatten() {
        if !ports.iter().any(|(p, _)| p == port) {
            ports.push((*port, Mode::Regular));
        }
    }
    let mut plans = Vec::new();
    for (i, (port, mode)) in ports.iter().enumerate() {
        if ports[..i].iter().any(|(p, _)| p == port) {
            return Err(format!(
                "two modes listen on port {port}: give each its own @PORT"
            ));
        }
        let group = if groups.contains_key(&Some(*port)) {
            Some(*port)
        } else if groups.contains_key(&None) {
            None
        } else {
            return Err(format!(
                "the {mode} listener on port {port} has no tenant: give a tenant listen_port = {port}"
            ));
        };
        plans.push(ListenerPlan {
            port: *port,
            mode: mode.clone(),
            group,
        });
    }
    Ok(plans)
}

fn specs(plugins: &[PluginConfig], timeout: Duration) -> Result<Vec<PluginSpec>, String> {
    plugins.iter().map(|p| p.spec(timeout)).collect()
}

/// Runs the proxy until Ctrl-C or SIGTERM.
pub async fn run(cli: &Cli, confdir: &Path) -> ExitCode {
    let config = match config::load(cli.config.as_deref(), &cli.scripts, &cli.set) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if !config.tenants.is_empty()
        && (cli.save.is_some() || cli.client_replay.is_some() || cli.server_replay.is_some())
    {
        return fail(
            "with tenants, give each tenant its flow file (`save`) in the configuration; \
             -w, --client-replay and --server-replay work without tenants",
        );
    }
    let timeout = Duration::from_millis(cli.plugin_timeout_ms);
    let tls = match tls_options(cli, confdir) {
        Ok(tls) => Arc::new(tls),
        Err(e) => return fail(&e),
    };
    let client_replay = match cli.client_replay.as_deref().map(read_all).transpose() {
        Ok(flows) => flows,
        Err(e) => return fail(&e),
    };
    let mut server_replay = match cli.server_replay.as_deref().map(read_all).transpose() {
        Ok(flows) => flows.map(|flows| {
            let replay = ServerReplay::new(flows, cli.server_replay_extra, cli.server_replay_reuse);
            tracing::info!("server replay: {} saved responses", replay.waiting());
            replay
        }),
        Err(e) => return fail(&e),
    };

    let groups = plan(&config);
    let listeners = match listeners(cli, &groups) {
        Ok(listeners) => listeners,
        Err(e) => return fail(&e),
    };
    // Plugins' replays may not reach witm itself unless a plugin names it.
    let own_ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.port)
        .chain(config.admin_port)
        .collect();
    // Each group of tenants is loaded once, shared by its listeners.
    let mut loaded: BTreeMap<Option<u16>, LoadedGroup> = BTreeMap::new();
    let mut all_tenants: Vec<Arc<Tenant>> = Vec::new();
    for (group, plans) in groups {
        let mut tenants = Vec::new();
        let mut credentials: Vec<(String, Arc<str>)> = Vec::new();
        for plan in plans {
            let loaded = match specs(&plan.plugins, timeout) {
                Ok(specs) => {
                    let sender = witm_proxy::outbound::http_sender(
                        tls.upstream.clone(),
                        ProxyOptions::default().connect_timeout,
                    );
                    load_chain(&specs, confdir, own_ports.clone(), Some(sender)).await
                }
                Err(e) => Err(e),
            };
            let (runtime, chain) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => return fail(&tenant_error(&plan.name, &e)),
            };
            let save = plan.save.as_deref().or(cli.save.as_deref());
            let recorder = match save
                .map(|path| Save::create(path, cli.save_filter.clone()))
                .transpose()
            {
                Ok(recorder) => recorder,
                Err(e) => return fail(&tenant_error(&plan.name, &e)),
            };
            if let Some(name) = &plan.name {
                credentials.extend(plan.credentials.iter().map(|c| (c.clone(), name.clone())));
            }
            let tenant = Arc::new(Tenant::new(
                plan.name,
                chain,
                runtime,
                server_replay.take(),
                recorder,
            ));
            tenants.push(tenant.clone());
            all_tenants.push(tenant);
        }
        loaded.insert(group, (tenants, credentials));
    }

    let threads = cli.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let workers = match witm_proxy::Workers::start(threads) {
        Ok(workers) => Arc::new(workers),
        Err(e) => return fail(&format!("cannot start {threads} worker threads: {e}")),
    };
    let mut proxies = Vec::new();
    let mut replayers_set = std::collections::HashSet::new();
    for listener_plan in listeners {
        let (tenants, credentials) = &loaded[&listener_plan.group];
        let address = SocketAddr::new(cli.listen_host, listener_plan.port);
        let listener = match TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(e) => return fail(&format!("cannot listen on {address}: {e}")),
        };
        let bound = listener.local_addr().unwrap_or(address);
        let mode = &listener_plan.mode;
        let names: Vec<&str> = tenants.iter().filter_map(|t| t.name.as_deref()).collect();
        let scheme = match mode {
            Mode::Socks5 => "socks5",
            _ => "http",
        };
        if names.is_empty() {
            tracing::info!("{mode} proxy listening at {scheme}://{bound}");
        } else {
            tracing::info!(
                "{mode} proxy listening at {scheme}://{bound} for tenants {}",
                names.join(", ")
            );
        }
        let options = ProxyOptions {
            flow_lines: !cli.quiet,
            max_buffered_body: cli.stream_large_bodies,
            max_held_bytes: cli.max_held_bytes,
            websocket: witm_proxy::WebSocketLimits {
                max_message: cli.websocket_max_message,
                max_frame: cli.websocket_max_frame,
            },
            timeouts: cli.timeouts.timeouts(),
            tls: Some(tls.clone()),
            onboarding_host: (!cli.no_onboarding).then(|| cli.onboarding_host.clone()),
            authenticate: (!credentials.is_empty()).then(|| authenticator(credentials.clone())),
            tenant: match tenants.as_slice() {
                [only] => only.name.clone(),
                _ => None,
            },
            mode: mode.clone(),
            keep_host_header: cli.keep_host_header,
            keep_header_case: !cli.lowercase_header_names,
            workers: Some(workers.clone()),
            ..ProxyOptions::default()
        };
        let router = TenantRouter::new(
            tenants
                .iter()
                .map(|t| (t.name.clone(), t.hooks.clone()))
                .collect(),
        );
        let proxy = Proxy::new(router, options);
        // A tenant on several listeners replays through the first.
        if replayers_set.insert(listener_plan.group) {
            for tenant in tenants {
                tenant
                    .runtime
                    .set_replayer(proxy.replayer(tenant.name.clone()));
            }
        }
        proxies.push((proxy, listener));
    }

    if let (Some(flows), Some((proxy, _))) = (client_replay, proxies.first()) {
        tokio::spawn(witm_addons::client_replay::replay_all(
            flows,
            proxy.replayer(None),
        ));
    }
    let watcher = tokio::spawn(watch_plugin_files(all_tenants.clone()));
    let reconfigure = tokio::spawn(reload_on_sighup(
        all_tenants.clone(),
        cli.config.clone(),
        cli.scripts.clone(),
        cli.set.clone(),
        timeout,
    ));
    let admin = match config.admin_port {
        Some(port) => {
            let address = SocketAddr::new(cli.listen_host, port);
            match TcpListener::bind(address).await {
                Ok(listener) => {
                    tracing::info!("metrics at http://{address}/metrics");
                    let engines = proxies
                        .iter()
                        .map(|(proxy, listener)| {
                            let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                            (port.to_string(), proxy.counters())
                        })
                        .collect();
                    Some(tokio::spawn(serve_metrics(
                        listener,
                        all_tenants.clone(),
                        engines,
                    )))
                }
                Err(e) => return fail(&format!("admin_port: cannot listen on {address}: {e}")),
            }
        }
        None => None,
    };

    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut serving = tokio::task::JoinSet::new();
    for (proxy, listener) in proxies {
        let mut stopped = stopped.clone();
        serving.spawn(async move {
            let served = proxy
                .serve(listener, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            drop(proxy);
            served
        });
    }
    let mut failed = false;
    while let Some(served) = serving.join_next().await {
        if let Ok(Err(e)) = served {
            eprintln!("witm: error: {e}");
            failed = true;
        }
    }
    watcher.abort();
    reconfigure.abort();
    if let Some(admin) = admin {
        admin.abort();
    }
    for tenant in &all_tenants {
        tenant.plugins().done().await;
        tenant.finish();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn tenant_error(name: &Option<Arc<str>>, error: &str) -> String {
    match name {
        Some(name) => format!("tenant {name}: {error}"),
        None => error.to_owned(),
    }
}

/// Checks `Proxy-Authorization` credentials against the tenants'.
fn authenticator(credentials: Vec<(String, Arc<str>)>) -> Authenticator {
    Arc::new(move |user: &str, password: &str| {
        credentials
            .iter()
            .find(|(pair, _)| {
                pair.split_once(':')
                    .is_some_and(|(u, p)| u == user && constant_time_eq(p, password))
            })
            .map(|(_, tenant)| tenant.clone())
    })
}

/// Compares secrets without an early exit that would time the match.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// Loads a new version of any plugin whose file changed.
async fn watch_plugin_files(tenants: Vec<Arc<Tenant>>) {
    let mut tick = tokio::time::interval(RELOAD_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        for tenant in &tenants {
            tenant.plugins().reload_changed(&tenant.runtime).await;
        }
    }
}

/// On SIGHUP, reads the configuration again and applies each tenant's
/// plugin list: plugins added, removed, or with changed file, arguments or
/// settings. Adding or removing tenants needs a restart (said in the log).
async fn reload_on_sighup(
    tenants: Vec<Arc<Tenant>>,
    config: Option<PathBuf>,
    scripts: Vec<String>,
    sets: Vec<String>,
    timeout: Duration,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the configuration again");
            let config = match config::load(config.as_deref(), &scripts, &sets) {
                Ok(config) => config,
                Err(e) => {
                    tracing::error!("configuration not reloaded, the old one stays: {e}");
                    continue;
                }
            };
            // Every chain staged before any changes: one failure changes nothing.
            let mut staged = Vec::new();
            let mut failed = None;
            for tenant in &tenants {
                let plugins = match &tenant.name {
                    None => Some(&config.plugins),
                    Some(name) => config
                        .tenants
                        .iter()
                        .find(|t| *t.name == **name)
                        .map(|t| &t.plugins),
                };
                let Some(plugins) = plugins else {
                    tracing::warn!(
                        "tenant {} is gone from the configuration: restart witm to remove it",
                        tenant.name.as_deref().unwrap_or("-")
                    );
                    continue;
                };
                let chain = tenant.plugins();
                let result = match specs(plugins, timeout) {
                    Ok(specs) => chain.stage(&tenant.runtime, &specs).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(chain_staged) => staged.push((chain, chain_staged)),
                    Err(e) => {
                        failed = Some(tenant_error(&tenant.name, &e));
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                tracing::error!("configuration not reloaded, nothing changed: {e}");
                continue;
            }
            for (chain, chain_staged) in staged {
                chain.apply(chain_staged).await;
            }
            for new in &config.tenants {
                if !tenants.iter().any(|t| t.name.as_deref() == Some(&new.name)) {
                    tracing::warn!("tenant {} is new: restart witm to add it", new.name);
                }
            }
        }
    }
}

/// `GET /metrics`: every plugin's counters and each listener's engine
/// counters (timeouts), in Prometheus text format.
async fn serve_metrics(
    listener: TcpListener,
    tenants: Vec<Arc<Tenant>>,
    engines: Vec<(String, Arc<witm_proxy::Counters>)>,
) {
    let tenants = Arc::new(tenants);
    let engines = Arc::new(engines);
    let mut accept_errors = witm_proxy::accept::AcceptErrors::default();
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_errors.pause("metrics listener", &e).await;
                continue;
            }
        };
        let tenants = tenants.clone();
        let engines = engines.clone();
        tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let mut read = 0;
            while read < request.len() && !request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut request[read..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => read += n,
                }
            }
            let (status, body) = if request.starts_with(b"GET /metrics ") {
                let mut body = witm_plugin_host::metrics_preamble();
                for tenant in tenants.iter() {
                    body += &tenant.plugins().metrics(tenant.name.as_deref());
                }
                body += witm_proxy::Counters::metrics_preamble();
                for (listener, counters) in engines.iter() {
                    body += &counters.metrics(listener);
                }
                ("200 OK", body)
            } else {
                ("404 Not Found", "try /metrics\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
