//! Untrusted plugins: capabilities denied by default and granted by
//! configuration, limits, failure policy and back-off, pools, hot reload,
//! tenants, metrics. The hostile plugin (tests/plugins/hostile) does one
//! bad thing per request path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use witm_flow::Flow;
use witm_store::FlowFile;
use witm_test_support::{Origin, Witm, curl, guests, target_dir};

use crate::witm_binary;

/// A fresh folder for one test's files.
pub(crate) fn scratch(test: &str) -> PathBuf {
    let dir = target_dir().join("e2e-sandbox").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn hostile() -> String {
    guests().rust("hostile").display().to_string()
}

/// Writes `config` (TOML) into `dir` and starts witm with it.
pub(crate) fn start_with_config(
    dir: &Path,
    config: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Witm {
    let path = dir.join("witm.toml");
    std::fs::write(&path, config).unwrap();
    let mut args = vec!["--config", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    Witm::start_with_env(witm_binary(), &args, env)
        .unwrap_or_else(|(status, log)| panic!("witm exited ({status}):\n{log}"))
}

/// The value of the first `/metrics` line on `admin_port` whose name and
/// labels end with `needle` (e.g. `kind="tunnel_idle"}`).
pub(crate) fn metric(admin_port: u16, needle: &str) -> u64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", admin_port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    let needle = format!("{needle} ");
    page.lines()
        .find_map(|l| {
            l.split_once(&needle)
                .map(|(_, n)| n.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {needle} in {page}"))
}

/// What the plugin told the origin it got, for the last request to `path`.
pub(crate) fn outcome(origin: &Origin, path: &str) -> Option<String> {
    origin
        .seen()
        .iter()
        .rev()
        .find(|r| r.path.starts_with(path))
        .and_then(|r| r.header_values("x-hostile").first().map(|v| v.to_string()))
}

/// Keeps a client busy with ordinary requests until finished; counts them
/// and times each.
pub(crate) struct Bystander {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Served>>,
}

/// What a [`Bystander`] got.
#[derive(Debug)]
pub(crate) struct Served {
    pub answered: usize,
    pub failed: usize,
    /// Every request's time, sorted.
    pub latencies: Vec<Duration>,
}

impl Served {
    /// What a client with nothing to do with an attack must get while it
    /// runs: at least `at_least` answers, no failure, p99 under 500 ms.
    pub fn assert_unharmed(&self, at_least: usize) {
        eprintln!(
            "bystander: {} answered, {} failed, p50 {:?}, p99 {:?}",
            self.answered,
            self.failed,
            self.quantile(0.5),
            self.quantile(0.99)
        );
        assert!(self.answered >= at_least, "{self:?}");
        assert_eq!(self.failed, 0, "{self:?}");
        assert!(self.quantile(0.99) < Duration::from_millis(500), "{self:?}");
    }

    /// The `q` quantile (0.99: p99) of the request times.
    pub fn quantile(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        self.latencies
            .get(((last as f64) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

impl Bystander {
    /// Asks for `url` through `proxy`, one request after another.
    pub fn start(proxy: String, url: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut served = Served {
                answered: 0,
                failed: 0,
                latencies: Vec::new(),
            };
            // At least one request, however soon it is stopped.
            loop {
                let started = Instant::now();
                let status = curl(&proxy, &[&url]).status;
                served.latencies.push(started.elapsed());
                if status == 200 {
                    served.answered += 1;
                } else {
                    served.failed += 1;
                }
                if s.load(Ordering::Relaxed) {
                    break;
                }
            }
            served.latencies.sort();
            served
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the client.
    pub fn finish(mut self) -> Served {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Starts witm with `config`, sends each of `acts` (a path of the hostile
/// plugins; "/socket" aims at the origin) while a bystander keeps asking for
/// pages, and checks that every act's flow went on (policy open) within 5 s,
/// that the bystander got only 200s, and that the plugin was denied files,
/// the environment and sockets. Returns the stopped witm, for its log.
fn attack(origin: &Origin, dir: &Path, config: &str, acts: &[&str]) -> Witm {
    let mut witm = start_with_config(dir, config, &[], &[("WITM_SECRET", "s3cret")]);
    let proxy = witm.proxy_url();
    let bystander = Bystander::start(proxy.clone(), origin.url("/page"));
    for act in acts {
        let path = match *act {
            "/socket" => format!("/socket?port={}", origin.address.port()),
            other => other.to_owned(),
        };
        let started = Instant::now();
        let response = curl(&proxy, &[&origin.url(&path)]);
        assert_eq!(
            response.status, 200,
            "{path}: the flow goes on (policy open)"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let Served {
        answered, failed, ..
    } = bystander.finish();
    witm.stop();
    assert!(
        answered > 0 && failed == 0,
        "bystander: {answered} answered, {failed} failed"
    );
    // What the plugin got from the sandbox (the origin saw it in x-hostile).
    for path in ["/passwd", "/env", "/socket"]
        .into_iter()
        .filter(|path| acts.contains(path))
    {
        let got = outcome(origin, path).unwrap_or_else(|| panic!("{path}: no outcome"));
        assert!(got.starts_with("denied"), "{path}: {got}");
    }
    witm
}

#[test]
fn hostile_acts_are_contained_and_reported_while_another_client_is_served() {
    let origin = Origin::start();
    let dir = scratch("hostile-open");
    let config = format!(
        "[[plugins]]\npath = {:?}\ntimeout_ms = 300\nmemory_mb = 32\n",
        hostile()
    );
    // Failures and successes alternate, so the plugin never backs off here.
    let witm = attack(
        &origin,
        &dir,
        &config,
        &["/loop", "/passwd", "/bomb", "/env", "/crash", "/socket"],
    );
    // A failed call leaves the request as it was: no header from the plugin.
    for path in ["/loop", "/bomb", "/crash"] {
        assert!(
            origin.seen().iter().any(|r| r.path == path),
            "{path} reached the origin"
        );
        assert_eq!(outcome(&origin, path), None, "{path}");
    }
    let log = witm.stderr().join("\n");
    assert!(log.contains("event deadline exceeded"), "{log}");
    assert!(log.contains("memory") || log.contains("trap"), "{log}");
    assert!(log.contains("instance replaced and started again"), "{log}");
    assert!(
        log.contains("3 failed (2 traps, 1 deadline hits"),
        "exit summary: {log}"
    );
}

#[test]
fn granted_directories_and_environment_variables_are_visible() {
    let origin = Origin::start();
    let dir = scratch("granted");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("granted.txt"), "hello\n").unwrap();
    let config = format!(
        "[[plugins]]\npath = {:?}\ndirs = [\"{}:/data:ro\"]\nenv = [\"WITM_SECRET\"]\n",
        hostile(),
        data.display()
    );
    let mut witm = start_with_config(&dir, &config, &[], &[("WITM_SECRET", "s3cret")]);
    for path in ["/granted", "/env", "/passwd"] {
        curl(&witm.proxy_url(), &[&origin.url(path)]);
    }
    witm.stop();
    assert_eq!(outcome(&origin, "/granted").as_deref(), Some("read hello"));
    assert_eq!(outcome(&origin, "/env").as_deref(), Some("got s3cret"));
    assert!(outcome(&origin, "/passwd").unwrap().starts_with("denied"));
}

#[test]
fn failure_policy_closed_answers_502_naming_the_plugin_and_backs_off() {
    let origin = Origin::start();
    let dir = scratch("closed");
    let config = format!(
        "[[plugins]]\npath = {:?}\nfailure = \"closed\"\ntimeout_ms = 300\nmemory_mb = 32\n",
        hostile()
    );
    let mut witm = start_with_config(&dir, &config, &[], &[]);
    let proxy = witm.proxy_url();
    for (path, reason) in [
        ("/crash", "trap"),
        ("/loop", "event deadline exceeded"),
        ("/bomb", "memory cap reached"),
    ] {
        let failed = curl(&proxy, &[&origin.url(path)]);
        assert_eq!(failed.status, 502, "{path}");
        assert!(
            failed.body.contains("plugin hostile failed"),
            "{path}: {}",
            failed.body
        );
        assert!(failed.body.contains(reason), "{path}: {}", failed.body);
        assert!(
            !origin.seen().iter().any(|r| r.path == path),
            "closed: {path} not forwarded"
        );
        let next = curl(&proxy, &[&origin.url("/page")]);
        assert_eq!(next.status, 200, "after {path}, a fresh instance serves");
    }
    // Three failures in a row: the plugin is skipped for a second, and with
    // policy closed that means 502s; then it is tried again.
    for _ in 0..3 {
        assert_eq!(curl(&proxy, &[&origin.url("/crash")]).status, 502);
    }
    let skipped = curl(&proxy, &[&origin.url("/page")]);
    assert_eq!(skipped.status, 502);
    assert!(skipped.body.contains("skipped"), "{}", skipped.body);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(curl(&proxy, &[&origin.url("/page")]).status, 200);
    witm.stop();
    let log = witm.stderr().join("\n");
    assert!(
        log.contains("failed 3 times in a row: skipped for 1 s"),
        "{log}"
    );
}

#[test]
fn a_fuel_limit_ends_a_spinning_call() {
    let origin = Origin::start();
    let dir = scratch("fuel");
    let config = format!("[[plugins]]\npath = {:?}\nfuel = 5_000_000\n", hostile());
    let mut witm = start_with_config(&dir, &config, &[], &[]);
    let started = Instant::now();
    assert_eq!(curl(&witm.proxy_url(), &[&origin.url("/loop")]).status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "fuel, not the 5 s deadline"
    );
    witm.stop();
    let log = witm.stderr().join("\n");
    assert!(log.contains("1 out of fuel"), "{log}");
}

/// Four requests that each make the plugin sleep 400 ms, sent together.
fn four_slow_requests(proxy: &str, origin: &Origin) -> Duration {
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (proxy, url) = (proxy.to_owned(), origin.url(&format!("/slow?ms=400&i={i}")));
            std::thread::spawn(move || curl(&proxy, &[&url]).status)
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 200);
    }
    started.elapsed()
}

#[test]
fn a_stateless_pool_runs_flows_in_parallel_and_waiting_is_bounded() {
    let origin = Origin::start();
    let dir = scratch("pool");
    let single = format!("[[plugins]]\npath = {:?}\n", hostile());
    let mut witm = start_with_config(&dir, &single, &[], &[]);
    let one_at_a_time = four_slow_requests(&witm.proxy_url(), &origin);
    witm.stop();
    let pool = format!("[[plugins]]\npath = {:?}\ninstances = 4\n", hostile());
    let mut witm = start_with_config(&dir, &pool, &[], &[]);
    let in_parallel = four_slow_requests(&witm.proxy_url(), &origin);
    witm.stop();
    assert!(
        one_at_a_time >= Duration::from_millis(1600),
        "{one_at_a_time:?}"
    );
    assert!(in_parallel < Duration::from_millis(1200), "{in_parallel:?}");

    // One instance, a short queue: a flow that cannot get the instance in
    // time goes on without the plugin (policy open) and it is counted.
    let queue = format!(
        "[[plugins]]\npath = {:?}\nqueue_timeout_ms = 100\n",
        hostile()
    );
    let mut witm = start_with_config(&dir, &queue, &[], &[]);
    let proxy = witm.proxy_url();
    let slow = {
        let (proxy, url) = (proxy.clone(), origin.url("/slow?ms=1000"));
        std::thread::spawn(move || curl(&proxy, &[&url]).status)
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(curl(&proxy, &[&origin.url("/passwd?queued")]).status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.join().unwrap(), 200);
    witm.stop();
    assert_eq!(
        outcome(&origin, "/passwd?queued"),
        None,
        "the plugin was skipped"
    );
    let log = witm.stderr().join("\n");
    assert!(log.contains("no free instance within 100 ms"), "{log}");
    assert!(log.contains("1 queue timeouts"), "{log}");
}

/// Replaces `path` the way editors and build tools do: write, then rename.
fn replace_file(path: &Path, contents: &[u8]) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[test]
fn hot_reload_under_steady_load_loses_no_request() {
    let origin = Origin::start();
    let dir = scratch("reload");
    let plugin = dir.join("plugin.wasm");
    std::fs::copy(guests().rust("add-header"), &plugin).unwrap();
    let spec = format!("{} v2", plugin.display());
    let mut witm = Witm::start(witm_binary(), &["-s", &spec])
        .unwrap_or_else(|(status, log)| panic!("witm exited ({status}):\n{log}"));
    let proxy = witm.proxy_url();
    let load = Bystander::start(proxy.clone(), origin.url("/page"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        curl(&proxy, &[&origin.url("/page")]).header_values("newheader"),
        ["foo"]
    );

    // A broken new version: the old one keeps serving.
    replace_file(&plugin, b"not a component");
    assert!(witm.wait_for_log("new version not loaded, the old one keeps running", 1));
    assert_eq!(
        curl(&proxy, &[&origin.url("/page")]).header_values("newheader"),
        ["foo"]
    );

    // A good one (the tag plugin, started with the same argument "v2").
    replace_file(&plugin, &std::fs::read(guests().rust("tag")).unwrap());
    assert!(
        witm.wait_for_log("reloaded: version 2 serves new flows", 1),
        "{:?}",
        witm.stderr()
    );
    let after = curl(&proxy, &[&origin.url("/page?after-reload")]);
    assert_eq!(after.header_values("x-tag"), ["v2"]);
    assert!(after.header_values("newheader").is_empty());
    // The new version subscribes to `request` too, which the old did not:
    // the proxy now delivers it (the origin sees the request's tag).
    let seen = origin.seen();
    let request = seen
        .iter()
        .find(|r| r.path == "/page?after-reload")
        .unwrap();
    assert_eq!(request.header_values("x-tag"), ["v2"]);
    std::thread::sleep(Duration::from_millis(300));
    let Served {
        answered, failed, ..
    } = load.finish();
    witm.stop();
    assert!(answered > 10, "{answered}");
    assert_eq!(failed, 0, "no request lost across two reloads");
}

#[test]
fn a_flow_in_flight_during_a_reload_finishes_on_the_old_version() {
    let origin = Origin::start();
    let dir = scratch("reload-in-flight");
    let plugin = dir.join("plugin.wasm");
    // Version 1: tag (request and response events), started with "v1".
    std::fs::copy(guests().rust("tag"), &plugin).unwrap();
    let spec = format!("{} v1", plugin.display());
    let mut witm = Witm::start(witm_binary(), &["-s", &spec])
        .unwrap_or_else(|(status, log)| panic!("witm exited ({status}):\n{log}"));
    let proxy = witm.proxy_url();
    let in_flight = {
        let (proxy, url) = (proxy.clone(), origin.url("/sleep/4000"));
        std::thread::spawn(move || curl(&proxy, &[&url]))
    };
    // Its request event has run on version 1 once the origin has it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !origin.seen().iter().any(|r| r.path == "/sleep/4000") {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the origin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Version 2: add-header (response only).
    replace_file(
        &plugin,
        &std::fs::read(guests().rust("add-header")).unwrap(),
    );
    assert!(
        witm.wait_for_log("reloaded: version 2", 1),
        "{:?}",
        witm.stderr()
    );
    let new_flow = curl(&proxy, &[&origin.url("/page")]);
    assert_eq!(
        new_flow.header_values("newheader"),
        ["foo"],
        "new flows use version 2"
    );
    assert!(new_flow.header_values("x-tag").is_empty());
    let old_flow = in_flight.join().unwrap();
    assert_eq!(old_flow.status, 200);
    assert_eq!(
        old_flow.header_values("x-tag"),
        ["v1"],
        "the response event ran on version 1"
    );
    assert!(
        old_flow.header_values("newheader").is_empty(),
        "not on version 2"
    );
    witm.stop();
}

#[test]
fn sighup_applies_changed_settings_and_added_or_removed_plugins() {
    let origin = Origin::start();
    let dir = scratch("sighup");
    let open = format!("[[plugins]]\npath = {:?}\n", hostile());
    let mut witm = start_with_config(&dir, &open, &[], &[]);
    let proxy = witm.proxy_url();
    let hangup = |witm: &Witm| {
        std::process::Command::new("kill")
            .args(["-HUP", &witm.pid().to_string()])
            .status()
            .unwrap();
    };
    assert_eq!(curl(&proxy, &[&origin.url("/crash")]).status, 200);

    // Changed settings: the plugin is reloaded with them.
    let closed = format!("{open}failure = \"closed\"\n");
    std::fs::write(dir.join("witm.toml"), &closed).unwrap();
    hangup(&witm);
    assert!(
        witm.wait_for_log("reloaded: version 2", 1),
        "{:?}",
        witm.stderr()
    );
    assert_eq!(curl(&proxy, &[&origin.url("/crash")]).status, 502);

    // A plugin added after it.
    let tag = format!(
        "[[plugins]]\npath = {:?}\nargs = [\"added\"]\n",
        guests().rust("tag")
    );
    std::fs::write(dir.join("witm.toml"), format!("{closed}{tag}")).unwrap();
    hangup(&witm);
    assert!(
        witm.wait_for_log("plugins now: hostile, tag", 1),
        "{:?}",
        witm.stderr()
    );
    let tagged = curl(&proxy, &[&origin.url("/page")]);
    assert_eq!(tagged.header_values("x-tag"), ["added"]);

    // The first one removed: its done runs, and it is gone from the chain.
    std::fs::write(dir.join("witm.toml"), &tag).unwrap();
    hangup(&witm);
    assert!(
        witm.wait_for_log("plugins now: tag", 1),
        "{:?}",
        witm.stderr()
    );
    assert!(witm.wait_for_log("removed;", 1), "{:?}", witm.stderr());
    let crash = curl(&proxy, &[&origin.url("/crash")]);
    assert_eq!(crash.status, 200, "no hostile plugin any more");
    assert_eq!(crash.header_values("x-tag"), ["added"]);

    // A broken configuration changes nothing.
    std::fs::write(dir.join("witm.toml"), "this is not toml = =").unwrap();
    hangup(&witm);
    assert!(witm.wait_for_log("configuration not reloaded", 1));
    assert_eq!(
        curl(&proxy, &[&origin.url("/page")]).header_values("x-tag"),
        ["added"]
    );

    // A change to one plugin and a later plugin that does not load: the
    // first change is not applied either.
    let broken = dir.join("broken.wasm");
    std::fs::write(&broken, "not a component").unwrap();
    std::fs::write(
        dir.join("witm.toml"),
        format!(
            "{}[[plugins]]\npath = {broken:?}\n",
            tag.replace("added", "changed")
        ),
    )
    .unwrap();
    hangup(&witm);
    assert!(
        witm.wait_for_log("configuration not reloaded, nothing changed", 1),
        "{:?}",
        witm.stderr()
    );
    assert_eq!(
        curl(&proxy, &[&origin.url("/page")]).header_values("x-tag"),
        ["added"]
    );
    witm.stop();
}

fn saved(path: &Path) -> Vec<Flow> {
    FlowFile::open(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn two_tenants_with_their_own_chains_credentials_and_flow_files() {
    let origin = Origin::start();
    let dir = scratch("tenants");
    let (free_port, admin_port) = (
        witm_test_support::free_port(),
        witm_test_support::free_port(),
    );
    let (a_file, b_file, c_file) = (dir.join("a.witm"), dir.join("b.witm"), dir.join("c.witm"));
    let config = format!(
        "admin_port = {admin_port}\n\
         [[tenants]]\nname = \"a\"\ncredentials = [\"alice:wonder\"]\nsave = {a_file:?}\n\
         [[tenants.plugins]]\npath = {tag:?}\nargs = [\"from-a\"]\n\
         [[tenants]]\nname = \"b\"\ncredentials = [\"bob:builder\"]\nsave = {b_file:?}\n\
         [[tenants.plugins]]\npath = {hostile:?}\n\
         [[tenants]]\nname = \"c\"\nlisten_port = {free_port}\nsave = {c_file:?}\n\
         [[tenants.plugins]]\npath = {tag:?}\nargs = [\"from-c\"]\n",
        tag = guests().rust("tag"),
        hostile = hostile(),
    );
    let mut witm = start_with_config(&dir, &config, &[], &[]);
    let proxy = witm.proxy_url();
    assert!(witm.wait_for_log(&format!("127.0.0.1:{free_port} for tenants c"), 1));

    // No credentials, or wrong ones: 407 and a challenge; the origin sees nothing.
    let before = origin.seen().len();
    let anonymous = curl(&proxy, &[&origin.url("/page?anonymous")]);
    assert_eq!(anonymous.status, 407);
    assert_eq!(
        anonymous.header_values("proxy-authenticate"),
        ["Basic realm=\"witm\""]
    );
    let wrong = curl(
        &proxy,
        &["--proxy-user", "alice:nope", &origin.url("/page?wrong")],
    );
    assert_eq!(wrong.status, 407);
    assert_eq!(origin.seen().len(), before);

    // Each tenant's chain, and only its own.
    let a = curl(
        &proxy,
        &["--proxy-user", "alice:wonder", &origin.url("/page?who=a")],
    );
    assert_eq!(a.header_values("x-tag"), ["from-a"]);
    let b = curl(
        &proxy,
        &["--proxy-user", "bob:builder", &origin.url("/env?who=b")],
    );
    assert!(b.header_values("x-tag").is_empty());
    let c = curl(
        &format!("http://127.0.0.1:{free_port}"),
        &[&origin.url("/page?who=c")],
    );
    assert_eq!(c.header_values("x-tag"), ["from-c"]);

    // Tenant B's slow plugin does not slow tenant A.
    let slow_b = {
        let (proxy, url) = (proxy.clone(), origin.url("/slow?ms=2000&who=b"));
        std::thread::spawn(move || curl(&proxy, &["--proxy-user", "bob:builder", &url]).status)
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            curl(
                &proxy,
                &["--proxy-user", "alice:wonder", &origin.url("/page?who=a")]
            )
            .status,
            200
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "A waited for B: {:?}",
        started.elapsed()
    );
    assert_eq!(slow_b.join().unwrap(), 200);

    // Per-plugin metrics, labelled by tenant.
    let metrics = curl(
        "",
        &[
            &format!("http://127.0.0.1:{admin_port}/metrics"),
            "--noproxy",
            "*",
        ],
    );
    assert!(
        metrics
            .body
            .contains("witm_plugin_calls_total{plugin=\"hostile\",tenant=\"b\"} 2"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("# TYPE witm_plugin_calls_total counter"),
        "{}",
        metrics.body
    );
    witm.stop();

    let urls =
        |path: &Path| -> Vec<String> { saved(path).iter().map(|f| f.request.url()).collect() };
    let a_urls = urls(&a_file);
    assert_eq!(a_urls.len(), 6);
    assert!(a_urls.iter().all(|u| u.contains("who=a")), "{a_urls:?}");
    assert_eq!(
        urls(&b_file),
        [origin.url("/env?who=b"), origin.url("/slow?ms=2000&who=b")]
    );
    assert_eq!(urls(&c_file), [origin.url("/page?who=c")]);
}

#[test]
fn a_python_plugin_is_sandboxed_the_same_way() {
    let origin = Origin::start();
    let dir = scratch("hostile-python");
    let config = format!(
        "[[plugins]]\npath = {:?}\ntimeout_ms = 500\nmemory_mb = 64\n",
        guests().hostile_py
    );
    let witm = attack(
        &origin,
        &dir,
        &config,
        &["/passwd", "/loop", "/env", "/bomb", "/socket"],
    );
    assert_eq!(outcome(&origin, "/loop"), None);
    assert_eq!(outcome(&origin, "/bomb"), None);
    let log = witm.stderr().join("\n");
    assert!(log.contains("event deadline exceeded"), "{log}");
    assert!(log.contains("memory cap reached"), "{log}");
}

/// The JavaScript and Go twins of the hostile plugin, on their SDKs: no
/// file, environment variable or socket; a spinning call ends at the
/// deadline and a growing one at the memory cap; a bystander is served.
/// (JavaScript has no socket API: its `fetch` needs wasi:http, which witm
/// does not link, and calling it traps — contained like any trap.)
#[test]
fn javascript_and_go_plugins_are_sandboxed_the_same_way() {
    for (plugin, acts) in [
        (
            "tests/plugins-js/hostile.js",
            &["/passwd", "/loop", "/env", "/bomb"][..],
        ),
        (
            "tests/plugins-go/hostile.go",
            &["/passwd", "/loop", "/env", "/bomb", "/socket"][..],
        ),
    ] {
        let origin = Origin::start();
        let dir = scratch(&format!("hostile-{}", plugin.replace('/', "-")));
        let config = format!(
            "[[plugins]]\npath = {:?}\ntimeout_ms = 500\nmemory_mb = 64\n",
            guests().script(plugin)
        );
        let mut witm = attack(&origin, &dir, &config, acts);
        for path in ["/loop", "/bomb"] {
            assert_eq!(outcome(&origin, path), None, "{plugin} {path}");
        }
        let log = witm.stderr().join("\n");
        assert!(log.contains("event deadline exceeded"), "{plugin}: {log}");
        assert!(log.contains("memory"), "{plugin}: {log}");
        if !acts.contains(&"/socket") {
            // The socket attempt: the call traps, the flow goes on.
            witm = start_with_config(&dir, &config, &[], &[]);
            let url = origin.url(&format!("/socket?port={}", origin.address.port()));
            assert_eq!(curl(&witm.proxy_url(), &[&url]).status, 200, "{plugin}");
            assert!(witm.wait_for_log("request failed", 1), "{plugin}");
            assert_eq!(outcome(&origin, "/socket"), None, "{plugin}");
        }
    }
}
