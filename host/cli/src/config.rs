//! The configuration file (`--config FILE`, TOML) and `--set key=value`.
//!
//! ```toml
//! admin_port = 9090                  # Prometheus metrics at /metrics
//!
//! [[plugins]]                        # in chain order
//! path = "plugins/tagger.wasm"
//! args = ["blue"]
//! timeout_ms = 200                   # time per event (wall clock while the call runs)
//! memory_mb = 64                     # linear memory per instance
//! fuel = 50_000_000                  # optional, per event
//! failure = "closed"                 # or "open" (default)
//! instances = 4                      # > 1: a stateless pool
//! queue_timeout_ms = 2000            # longest wait for a free instance
//! dirs = ["/srv/rules:/rules:ro"]    # HOST:GUEST[:ro|rw]
//! env = ["API_TOKEN"]                # passed through from witm's environment
//! host_memory_mb = 64                # what the host may hold for one instance
//! kv_mb = 16                         # keys and values of the key-value store
//! max_handles = 10000                # handles one instance may hold
//! log_bytes_per_s = 65536            # log output per second (bursts of 4x)
//! log_line_bytes = 8192              # longest log line
//! allowed_hosts = ["api.example.com:443"]  # where replay-request and http-send may go (none by default)
//! max_replays_in_flight = 4
//! max_replay_depth = 1               # a replay is not replayed again
//! outbound_timeout_ms = 2000         # longest http-send (and its default)
//! max_outbound_response_bytes = 1048576
//! max_outbound_per_event = 4         # http-send calls one event may make
//! max_outbound_in_flight = 16        # http-send calls waiting at once, all instances
//! min_tick_ms = 100                  # shortest set-tick period
//!
//! [[tenants]]                        # instead of top-level plugins
//! name = "a"
//! listen_port = 8081                 # chosen by listener, and/or
//! credentials = ["alice:secret"]     # by Proxy-Authorization
//! save = "a.witm"                    # the tenant's own flow file
//! [[tenants.plugins]]
//! path = "plugins/tagger.wasm"
//! ```
//!
//! Every command-line option of the proxy is also a top-level key, spelled
//! with underscores (`listen_port = 9000`, `ssl_insecure = true`,
//! `ignore_hosts = "^internal"`); an option given on the command line wins.
//!
//! `--set` addresses the same keys with dots; a plugin or tenant in a list is
//! addressed by its name (a plugin's name defaults to its file stem):
//! `--set admin_port=9090`, `--set plugins.tagger.failure=closed`,
//! `--set tenants.a.save=a.witm`. Values are TOML (`200`, `true`,
//! `["x"]`); anything that does not parse as TOML is a string.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Table, Value};
use witm_plugin_host::{DirGrant, FailurePolicy, PluginSettings, PluginSpec};

/// The whole configuration.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Port of the admin endpoint (`GET /metrics`), on the listen host.
    pub admin_port: Option<u16>,
    /// The plugin chain when there are no tenants.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Tenants, each with its own chain, limits and flow file.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

/// One plugin in a chain.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The component file.
    pub path: PathBuf,
    /// Its name for `--set` (default: the file stem).
    pub name: Option<String>,
    /// Arguments for `start`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Time per event (wall clock while the call runs), in ms.
    pub timeout_ms: Option<u64>,
    /// Linear memory per instance, in MiB.
    pub memory_mb: Option<u64>,
    /// Fuel per event.
    pub fuel: Option<u64>,
    /// "open" or "closed".
    pub failure: Option<String>,
    /// Instances; more than one makes a stateless pool.
    pub instances: Option<usize>,
    /// Longest wait for a free instance, in ms.
    pub queue_timeout_ms: Option<u64>,
    /// Directories granted, as "HOST:GUEST[:ro|rw]".
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Environment variables passed through, by name.
    #[serde(default)]
    pub env: Vec<String>,
    /// What the host may hold for one instance, in MiB.
    pub host_memory_mb: Option<u64>,
    /// Bytes of keys and values of the key-value store, in MiB.
    pub kv_mb: Option<u64>,
    /// Handles one instance may hold.
    pub max_handles: Option<usize>,
    /// Log output per second, in bytes.
    pub log_bytes_per_s: Option<usize>,
    /// Longest log line, in bytes.
    pub log_line_bytes: Option<usize>,
    /// Where `replay-request` may send requests: `[scheme://]host[:port]`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Replays in flight at once.
    pub max_replays_in_flight: Option<usize>,
    /// How deep replays may nest.
    pub max_replay_depth: Option<u32>,
    /// Longest `http-send`, in ms (and its default).
    pub outbound_timeout_ms: Option<u64>,
    /// Longest response body `http-send` accepts, in bytes.
    pub max_outbound_response_bytes: Option<usize>,
    /// `http-send` calls one event may make.
    pub max_outbound_per_event: Option<u32>,
    /// `http-send` calls one plugin may have waiting at once.
    pub max_outbound_in_flight: Option<usize>,
    /// Shortest `set-tick` period, in ms.
    pub min_tick_ms: Option<u64>,
}

/// One tenant.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's name, in logs and metrics.
    pub name: String,
    /// A listener of its own; without it, the tenant shares the main
    /// listener and is told apart by its credentials.
    pub listen_port: Option<u16>,
    /// "user:password" pairs that select this tenant.
    #[serde(default)]
    pub credentials: Vec<String>,
    /// The tenant's flow file.
    pub save: Option<PathBuf>,
    /// The tenant's chain.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
}

impl PluginConfig {
    /// The plugin's specification; `default_timeout` applies when the
    /// configuration gives none.
    pub fn spec(&self, default_timeout: Duration) -> Result<PluginSpec, String> {
        let defaults = PluginSettings::default();
        let failure = match &self.failure {
            None => FailurePolicy::Open,
            Some(policy) => policy.parse()?,
        };
        let instances = self.instances.unwrap_or(1);
        if instances == 0 {
            return Err(format!(
                "{}: instances must be at least 1",
                self.path.display()
            ));
        }
        let settings = PluginSettings {
            memory_bytes: self.memory_mb.map_or(defaults.memory_bytes, mib),
            event_deadline: self
                .timeout_ms
                .map_or(default_timeout, Duration::from_millis),
            fuel: self.fuel,
            failure,
            instances,
            queue_timeout: self
                .queue_timeout_ms
                .map_or(defaults.queue_timeout, Duration::from_millis),
            dirs: self
                .dirs
                .iter()
                .map(|d| parse_dir(d))
                .collect::<Result<_, _>>()?,
            env: self.env.clone(),
            host_memory_bytes: self.host_memory_mb.map_or(defaults.host_memory_bytes, mib),
            kv_bytes: self.kv_mb.map_or(defaults.kv_bytes, mib),
            max_handles: self.max_handles.unwrap_or(defaults.max_handles),
            log_bytes_per_s: self.log_bytes_per_s.unwrap_or(defaults.log_bytes_per_s),
            log_line_bytes: self.log_line_bytes.unwrap_or(defaults.log_line_bytes),
            allowed_hosts: self
                .allowed_hosts
                .iter()
                .map(|p| p.parse())
                .collect::<Result<_, _>>()?,
            max_replays_in_flight: self
                .max_replays_in_flight
                .unwrap_or(defaults.max_replays_in_flight),
            max_replay_depth: self.max_replay_depth.unwrap_or(defaults.max_replay_depth),
            outbound_timeout: self
                .outbound_timeout_ms
                .map_or(defaults.outbound_timeout, Duration::from_millis),
            max_outbound_response_bytes: self
                .max_outbound_response_bytes
                .unwrap_or(defaults.max_outbound_response_bytes),
            max_outbound_per_event: self
                .max_outbound_per_event
                .unwrap_or(defaults.max_outbound_per_event),
            max_outbound_in_flight: self
                .max_outbound_in_flight
                .unwrap_or(defaults.max_outbound_in_flight),
            min_tick: self
                .min_tick_ms
                .map_or(defaults.min_tick, Duration::from_millis),
        };
        Ok(PluginSpec {
            path: self.path.clone(),
            args: self.args.clone(),
            settings,
        })
    }
}

/// MiB as bytes, saturating (a huge value means no practical limit, not a
/// wrapped small one).
fn mib(mb: u64) -> usize {
    usize::try_from(mb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20)
}

/// "HOST:GUEST[:ro|rw]" (read-only unless `rw`).
fn parse_dir(grant: &str) -> Result<DirGrant, String> {
    let parts: Vec<&str> = grant.split(':').collect();
    let (host, guest, writable) = match parts.as_slice() {
        [host, guest] => (host, guest, false),
        [host, guest, "ro"] => (host, guest, false),
        [host, guest, "rw"] => (host, guest, true),
        _ => {
            return Err(format!(
                "dirs: {grant:?} is not HOST:GUEST, HOST:GUEST:ro or HOST:GUEST:rw"
            ));
        }
    };
    if !Path::new(host).is_dir() {
        return Err(format!("dirs: {host} is not a directory"));
    }
    Ok(DirGrant {
        host: PathBuf::from(host),
        guest: guest.to_string(),
        writable,
    })
}

/// Keys of the configuration that are not command-line options.
const SECTIONS: [&str; 3] = ["admin_port", "plugins", "tenants"];

/// Reads `path` (if given), adds the `-s` plugins to the top-level chain,
/// applies `--set`s, and checks the result.
pub fn load(path: Option<&Path>, scripts: &[String], sets: &[String]) -> Result<Config, String> {
    load_with_options(path, scripts, sets).map(|(config, _)| config)
}

/// As [`load`], also returning the proxy options the configuration sets
/// (every other top-level key: `listen_port`, `ssl_insecure`, …), as
/// command-line arguments (`--listen-port 9000`) for the caller to apply
/// under the command line's own.
pub fn load_with_options(
    path: Option<&Path>,
    scripts: &[String],
    sets: &[String],
) -> Result<(Config, Vec<String>), String> {
    let table = match path {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--config {}: {e}", path.display()))?;
            Some(parse_table(&text).map_err(|e| format!("--config {}: {e}", path.display()))?)
        }
    };
    from_table(table, scripts, sets)
}

/// As [`load_with_options`], from the configuration's text rather than a
/// file (the fuzzer reads configurations this way).
pub fn from_text(
    text: &str,
    scripts: &[String],
    sets: &[String],
) -> Result<(Config, Vec<String>), String> {
    from_table(Some(parse_table(text)?), scripts, sets)
}

fn parse_table(text: &str) -> Result<Table, String> {
    text.parse::<Table>()
        .map_err(|e| e.to_string().trim().to_owned())
}

/// The configuration from a file's table (`None`: no file), the `-s`
/// plugins and the `--set`s.
fn from_table(
    file: Option<Table>,
    scripts: &[String],
    sets: &[String],
) -> Result<(Config, Vec<String>), String> {
    let from_file = file.is_some();
    let mut table = file.unwrap_or_default();
    if !scripts.is_empty() {
        let list = table
            .entry("plugins")
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(list) = list else {
            return Err("plugins must be a list of [[plugins]] tables".into());
        };
        for script in scripts {
            let spec = PluginSpec::parse(script).map_err(|e| e.to_string())?;
            let mut entry = Table::new();
            entry.insert(
                "path".into(),
                Value::String(spec.path.display().to_string()),
            );
            entry.insert(
                "args".into(),
                Value::Array(spec.args.into_iter().map(Value::String).collect()),
            );
            list.push(Value::Table(entry));
        }
    }
    for set in sets {
        apply_set(&mut table, set)?;
    }
    let mut options = Vec::new();
    for key in table
        .keys()
        .filter(|k| !SECTIONS.contains(&k.as_str()))
        .cloned()
        .collect::<Vec<_>>()
    {
        let value = table.remove(&key).unwrap_or(Value::Boolean(false));
        options.extend(option_args(&key, &value)?);
    }
    let config: Config = Table::try_into(table).map_err(|e| {
        let where_ = if from_file {
            "the configuration"
        } else {
            "--set"
        };
        format!("{where_}: {}", e.to_string().trim())
    })?;
    config.check()?;
    Ok((config, options))
}

/// Options that are no key of the configuration: the configuration itself,
/// and plugins (which are `[[plugins]]` tables there).
pub const COMMAND_LINE_ONLY: [&str; 3] = ["config", "set", "script"];

/// `listen_port = 9000` as `--listen-port=9000`; `true` as the bare flag;
/// a list as the flag repeated. One argument each, with `=`: a value that
/// starts with `-` stays a value, and a value for a bare flag
/// (`ssl_insecure = "yes"`) is refused as one ("unexpected value"), not
/// read as a command.
fn option_args(key: &str, value: &Value) -> Result<Vec<String>, String> {
    if COMMAND_LINE_ONLY.contains(&key) {
        return Err(format!("{key} cannot be set in the configuration"));
    }
    let flag = format!("--{}", key.replace('_', "-"));
    let text = |value: &Value| match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(_) | Value::Float(_) => Ok(value.to_string()),
        _ => Err(format!("{key}: expected a string or a number")),
    };
    Ok(match value {
        Value::Boolean(true) => vec![flag],
        Value::Boolean(false) => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|item| Ok(format!("{flag}={}", text(item)?)))
            .collect::<Result<Vec<_>, String>>()?,
        other => vec![format!("{flag}={}", text(other)?)],
    })
}

/// `key.path=value` into the document.
fn apply_set(table: &mut Table, set: &str) -> Result<(), String> {
    let (key, value) = set
        .split_once('=')
        .ok_or_else(|| format!("--set {set:?}: expected key=value"))?;
    let value = format!("v = {value}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(value.to_owned()));
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(format!("--set {set:?}: empty part in the key"));
    }
    set_path(table, &path, value).map_err(|e| format!("--set {set:?}: {e}"))
}

/// Sets `path` to `value`, creating tables on the way; in a list of named
/// tables (`[[plugins]]`, `[[tenants]]`) the next part is an entry's name.
fn set_path(at: &mut Table, path: &[&str], value: Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            at.insert(last.to_string(), value);
            Ok(())
        }
        [part, rest @ ..] => match at
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
        {
            Value::Table(table) => set_path(table, rest, value),
            Value::Array(items) => {
                let [name, rest @ ..] = rest else {
                    return Err(format!("name the entry of {part}"));
                };
                let entry = items
                    .iter_mut()
                    .filter_map(Value::as_table_mut)
                    .find(|t| entry_name(t).as_deref() == Some(*name))
                    .ok_or_else(|| format!("no entry named {name:?} in {part}"))?;
                set_path(entry, rest, value)
            }
            _ => Err(format!("{part} is not a table")),
        },
    }
}

/// The name of a `[[plugins]]` or `[[tenants]]` entry: `name`, or a
/// plugin's file stem.
fn entry_name(entry: &Table) -> Option<String> {
    if let Some(Value::String(name)) = entry.get("name") {
        return Some(name.clone());
    }
    let Some(Value::String(path)) = entry.get("path") else {
        return None;
    };
    Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
}

impl Config {
    fn check(&self) -> Result<(), String> {
        if !self.tenants.is_empty() && !self.plugins.is_empty() {
            return Err(
                "with tenants, give each tenant its own plugins ([[tenants.plugins]]), \
                 not top-level plugins or -s"
                    .into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for tenant in &self.tenants {
            if !names.insert(tenant.name.as_str()) {
                return Err(format!("two tenants are named {:?}", tenant.name));
            }
            if tenant.listen_port.is_none() && tenant.credentials.is_empty() {
                return Err(format!(
                    "tenant {:?}: give it a listen_port or credentials (or both)",
                    tenant.name
                ));
            }
            for credential in &tenant.credentials {
                if !credential.contains(':') {
                    return Err(format!(
                        "tenant {:?}: credentials are \"user:password\"",
                        tenant.name
                    ));
                }
            }
        }
        for a in &self.tenants {
            for b in &self.tenants {
                if a.name < b.name
                    && a.listen_port == b.listen_port
                    && (a.credentials.is_empty() || b.credentials.is_empty())
                {
                    return Err(format!(
                        "tenants {:?} and {:?} share a listener, so both need credentials",
                        a.name, b.name
                    ));
                }
                if a.name < b.name && a.credentials.iter().any(|c| b.credentials.contains(c)) {
                    return Err(format!(
                        "tenants {:?} and {:?} have the same credentials",
                        a.name, b.name
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(path: &str) -> PluginConfig {
        toml::from_str(&format!("path = {path:?}")).unwrap()
    }

    fn config_file(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "witm-config-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_file_with_sets_on_top() {
        let path = config_file(
            "admin_port = 1\n[[plugins]]\npath = \"a/tagger.wasm\"\nargs = [\"x\"]\n\
             [[plugins]]\nname = \"second\"\npath = \"b.wasm\"\n",
        );
        let config = load(
            Some(&path),
            &["c/extra.wasm arg".into()],
            &[
                "admin_port=9090".into(),
                "plugins.tagger.failure=closed".into(),
                "plugins.second.timeout_ms=200".into(),
                "plugins.extra.env=[\"HOME\"]".into(),
            ],
        )
        .unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!(config.admin_port, Some(9090));
        assert_eq!(config.plugins.len(), 3);
        assert_eq!(config.plugins[0].failure.as_deref(), Some("closed"));
        assert_eq!(config.plugins[0].args, ["x"]);
        assert_eq!(config.plugins[1].timeout_ms, Some(200));
        assert_eq!(config.plugins[2].path, Path::new("c/extra.wasm"));
        assert_eq!(config.plugins[2].env, ["HOME"]);
        let spec = config.plugins[0].spec(Duration::from_secs(5)).unwrap();
        assert_eq!(spec.settings.failure, FailurePolicy::Closed);
        assert_eq!(
            config.plugins[1]
                .spec(Duration::from_secs(5))
                .unwrap()
                .settings
                .event_deadline,
            Duration::from_millis(200)
        );
    }

    #[test]
    fn proxy_options_become_command_line_arguments() {
        let (_, options) = load_with_options(
            None,
            &[],
            &[
                "listen_port=9000".into(),
                "ssl_insecure=true".into(),
                "quiet=false".into(),
                "upstream_ca=[\"a.pem\", \"b.pem\"]".into(),
                "stream_large_bodies=1m".into(),
                "ignore_hosts=\"-x\"".into(),
            ],
        )
        .unwrap();
        // One argument each: a value that starts with `-` is not a flag.
        assert!(
            options.contains(&"--ignore-hosts=-x".to_owned()),
            "{options:?}"
        );
        let mut options = options.join(" ");
        for expected in [
            "--listen-port=9000",
            "--ssl-insecure",
            "--upstream-ca=a.pem --upstream-ca=b.pem",
            "--stream-large-bodies=1m",
            "--ignore-hosts=-x",
        ] {
            assert!(options.contains(expected), "{options} lacks {expected}");
            options = options.replace(expected, "");
        }
        assert_eq!(
            options.trim(),
            "",
            "and nothing else (quiet=false adds nothing)"
        );
        let err = load_with_options(None, &[], &["script=x".into()]).unwrap_err();
        assert!(err.contains("cannot be set"), "{err}");
    }

    #[test]
    fn mistakes_are_clear_errors() {
        let err = load(None, &[], &["nope".into()]).unwrap_err();
        assert!(err.contains("expected key=value"), "{err}");
        let err = load(None, &["x.wasm".into()], &["plugins.y.fuel=1".into()]).unwrap_err();
        assert!(err.contains("no entry named \"y\""), "{err}");
        let err = load(None, &[], &["admin_port=\"x\"".into()]).unwrap_err();
        assert!(err.contains("admin_port"), "{err}");
        let path = config_file("[[tenants]]\nname = \"a\"\n");
        let err = load(Some(&path), &[], &[]).unwrap_err();
        std::fs::remove_file(path).unwrap();
        assert!(err.contains("listen_port or credentials"), "{err}");
        let path = config_file("this is = not toml =");
        let err = load(Some(&path), &[], &[]).unwrap_err();
        std::fs::remove_file(path).unwrap();
        assert!(err.starts_with("--config"), "{err}");
        let bad_policy = PluginConfig {
            failure: Some("maybe".into()),
            ..plugin("x.wasm")
        };
        assert!(
            bad_policy
                .spec(Duration::from_secs(1))
                .unwrap_err()
                .contains("open or closed")
        );
        let bad_dir = PluginConfig {
            dirs: vec!["/nonexistent-dir:/d".into()],
            ..plugin("x.wasm")
        };
        assert!(
            bad_dir
                .spec(Duration::from_secs(1))
                .unwrap_err()
                .contains("not a directory")
        );
    }

    #[test]
    fn tenants_by_port_and_credentials() {
        let path = config_file(
            "[[tenants]]\nname = \"a\"\ncredentials = [\"alice:pw\"]\n\
             [[tenants]]\nname = \"b\"\ncredentials = [\"bob:pw\"]\nsave = \"b.witm\"\n\
             [[tenants]]\nname = \"c\"\nlisten_port = 9001\n",
        );
        let config = load(Some(&path), &[], &["tenants.b.save=\"other.witm\"".into()]).unwrap();
        assert_eq!(
            config.tenants[1].save.as_deref(),
            Some(Path::new("other.witm"))
        );
        let err = load(Some(&path), &["x.wasm".into()], &[]).unwrap_err();
        assert!(err.contains("each tenant its own plugins"), "{err}");
        std::fs::remove_file(path).unwrap();
    }
}
