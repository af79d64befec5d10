//! The host's side of the sandbox, through the real proxy: each test runs
//! one class of attack by the hostile plugins (tests/plugins/hostile and its
//! Python twin) on one tenant while a client of that tenant and a client of
//! a second tenant (its own listener, chain and engine) keep being served.
//! Each checks what the attacker got, witm's resident memory during the
//! attack, both clients' answers and latency, and what the log says, and
//! prints a `budget:` line with the figures (`cargo test --release budget
//! -- --nocapture` shows them).
//!
//! The memory bound each test states is the growth of witm's peak resident
//! memory during the attack over its resident memory before: what the
//! budgets allow the attacker (guest memory, host memory, key-value store)
//! plus [`SLACK_MIB`] for the proxy and a fresh instance's start.

use std::time::{Duration, Instant};

use witm_flow::encoding::ContentEncoding;
use witm_test_support::{Origin, Witm, curl, free_port, guests};

use crate::sandbox::{Bystander, Served, hostile, outcome, scratch, start_with_config};

/// What the proxy itself and a replaced instance may add during an attack.
const SLACK_MIB: u64 = 96;

/// The neighbour tenant's p99 while the other tenant is attacked (a
/// 2-core machine, where the attack holds a core until its deadline).
const NEIGHBOUR_P99: Duration = Duration::from_millis(1000);

/// The main port, as the attacker tenant (its credentials in the URL).
fn attacker_proxy(witm: &Witm) -> String {
    witm.proxy_url().replace("http://", "http://eve:attack@")
}

/// witm with an attacker tenant on the main port (the hostile plugin, with
/// `plugin_keys`) and a neighbour tenant on its own port, both clients
/// running.
struct Siege {
    witm: Witm,
    origin: Origin,
    dir: std::path::PathBuf,
    admin_port: u16,
    rss_before_kib: u64,
    same_tenant: Bystander,
    neighbour: Bystander,
}

/// What a siege measured.
struct Report {
    log: Vec<String>,
    rss_before_mib: u64,
    rss_peak_mib: u64,
    rss_after_mib: u64,
    same_tenant: Served,
    neighbour: Served,
}

impl Siege {
    /// `plugin_keys`: the attacker's `[[tenants.plugins]]` keys besides
    /// `path`, where `ORIGIN_PORT` and `ADMIN_PORT` stand for those ports.
    fn start(test: &str, plugin: &str, plugin_keys: &str) -> Siege {
        let origin = Origin::start();
        let dir = scratch(&format!("budgets-{test}"));
        let (neighbour_port, admin_port) = (free_port(), free_port());
        let plugin_keys = plugin_keys
            .replace("ORIGIN_PORT", &origin.address.port().to_string())
            .replace("ADMIN_PORT", &admin_port.to_string());
        let config = format!(
            "admin_port = {admin_port}\n\
             [[tenants]]\nname = \"attacker\"\ncredentials = [\"eve:attack\"]\n\
             [[tenants.plugins]]\npath = {plugin:?}\n{plugin_keys}\n\
             [[tenants]]\nname = \"neighbour\"\nlisten_port = {neighbour_port}\n\
             [[tenants.plugins]]\npath = {tag:?}\nargs = [\"neighbour\"]\n",
            tag = guests().rust("tag"),
        );
        let witm = start_with_config(&dir, &config, &[], &[("WITM_SECRET", "s3cret")]);
        assert!(witm.wait_for_log(
            &format!("127.0.0.1:{neighbour_port} for tenants neighbour"),
            1
        ));
        let neighbour_proxy = format!("http://127.0.0.1:{neighbour_port}");
        // Both chains warm, then the peak is measured from here.
        let attacker_proxy = attacker_proxy(&witm);
        assert_eq!(curl(&attacker_proxy, &[&origin.url("/page")]).status, 200);
        let tagged = curl(&neighbour_proxy, &[&origin.url("/page")]);
        assert_eq!(tagged.header_values("x-tag"), ["neighbour"]);
        let rss_before_kib = witm.rss_kib();
        witm.reset_peak_rss();
        let same_tenant = Bystander::start(attacker_proxy, origin.url("/page?same-tenant"));
        let neighbour = Bystander::start(neighbour_proxy, origin.url("/page?neighbour"));
        Siege {
            witm,
            origin,
            dir,
            admin_port,
            rss_before_kib,
            same_tenant,
            neighbour,
        }
    }

    /// Sends one act (a path of the hostile plugin, with more curl
    /// arguments) through the attacker's tenant: the flow goes on (policy
    /// open) within 5 s. Returns what the plugin got, `None` if its call
    /// was ended.
    fn act(&self, path: &str, curl_args: &[&str]) -> Option<String> {
        let url = self.origin.url(path);
        let mut args = curl_args.to_vec();
        args.push(&url);
        let started = Instant::now();
        let response = curl(&attacker_proxy(&self.witm), &args);
        assert_eq!(response.status, 200, "{path}: the flow goes on");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            started.elapsed()
        );
        let got = outcome(&self.origin, path);
        eprintln!("{path}: {got:?}");
        got
    }

    /// The plugin still serves: the next act gets its answer (and is a
    /// success, so failures do not add up to a back-off).
    fn still_serves(&self) {
        let got = self.act("/env", &[]);
        assert!(
            got.as_deref().is_some_and(|g| g.starts_with("denied")),
            "{got:?}"
        );
    }

    /// Stops the clients and witm and checks what every attack must leave:
    /// both clients always answered, the neighbour's p99 under
    /// [`NEIGHBOUR_P99`], the peak resident memory within `allowed_mib` +
    /// [`SLACK_MIB`] of what it was before. Prints the figures for `class`.
    fn finish(mut self, class: &str, attacker_got: &str, allowed_mib: u64) -> Report {
        let same_tenant = self.same_tenant.finish();
        let neighbour = self.neighbour.finish();
        let report = Report {
            rss_before_mib: self.rss_before_kib / 1024,
            rss_peak_mib: self.witm.peak_rss_kib() / 1024,
            rss_after_mib: self.witm.rss_kib() / 1024,
            log: Vec::new(),
            same_tenant,
            neighbour,
        };
        self.witm.stop();
        let report = Report {
            log: self.witm.stderr(),
            ..report
        };
        println!(
            "budget: {class}: witm RSS {} MiB before, peak {} MiB, {} MiB after (bound +{} MiB); \
             attacker got: {attacker_got}; same tenant {} answered, p99 {:?}; \
             other tenant {} answered, p99 {:?}",
            report.rss_before_mib,
            report.rss_peak_mib,
            report.rss_after_mib,
            allowed_mib + SLACK_MIB,
            report.same_tenant.answered,
            report.same_tenant.quantile(0.99),
            report.neighbour.answered,
            report.neighbour.quantile(0.99),
        );
        for (who, served) in [
            ("same tenant", &report.same_tenant),
            ("other tenant", &report.neighbour),
        ] {
            assert!(
                served.answered > 0 && served.failed == 0,
                "{class}: {who}: {} answered, {} failed",
                served.answered,
                served.failed
            );
        }
        assert!(
            report.neighbour.quantile(0.99) < NEIGHBOUR_P99,
            "{class}: the other tenant waited {:?} (p99)",
            report.neighbour.quantile(0.99)
        );
        assert!(
            report.rss_peak_mib <= report.rss_before_mib + allowed_mib + SLACK_MIB,
            "{class}: witm grew from {} to {} MiB",
            report.rss_before_mib,
            report.rss_peak_mib
        );
        report
    }
}

impl Report {
    /// The host-memory floods' traps, as the log names them: responses and
    /// metadata over the budget, duplicates and handles over `max_handles`.
    fn assert_floods_logged(&self) {
        assert!(
            self.log_count("host memory budget") >= 2,
            "{}",
            self.shown()
        );
        assert_eq!(self.log_count("too many handles"), 2, "{}", self.shown());
    }

    fn log_count(&self, needle: &str) -> usize {
        self.log.iter().filter(|l| l.contains(needle)).count()
    }

    /// The log for an assertion's message: its lines cut at 300 bytes
    /// (the floods write long ones).
    fn shown(&self) -> String {
        self.log
            .iter()
            .map(|l| l.get(..300).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// "stored 15 MiB; then: …" → 15.
fn leading_number(got: &str, word: &str) -> u64 {
    got.split(word)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.trim_end_matches(';').parse().ok())
        .unwrap_or_else(|| panic!("no number after {word:?} in {got:?}"))
}

#[test]
fn budget_key_value_flood_is_bounded_in_bytes() {
    let siege = Siege::start("kv", &hostile(), "kv_mb = 16\n");
    let got = siege.act("/kv-flood", &[]).expect("an answer, not a trap");
    let stored = leading_number(&got, "stored");
    assert!(stored <= 16 && got.contains("OverBudget"), "{got}");
    siege.still_serves();
    siege.finish("key-value store (kv_mb = 16)", &got, 16);
}

/// The floods of what a plugin makes the host hold: each is stopped at the
/// host memory budget, the handle limit or the wire's header limits.
#[test]
fn budget_host_memory_floods_end_at_the_budget() {
    let siege = Siege::start(
        "host-memory",
        &hostile(),
        "timeout_ms = 2000\nmemory_mb = 64\nhost_memory_mb = 32\nmax_handles = 10000\n",
    );
    let mut got = Vec::new();
    let headers = siege.act("/header-flood", &[]).expect("an answer");
    assert!(leading_number(&headers, "appended") <= 256, "{headers}");
    got.push(format!("/header-flood: {headers}"));
    siege.still_serves();
    for path in [
        "/response-flood",
        "/dup-flood",
        "/metadata-flood",
        "/handle-flood",
        "/many-headers",
    ] {
        let outcome = siege.act(path, &[]);
        assert_eq!(outcome, None, "{path}: the call must be ended");
        got.push(format!("{path}: trapped"));
        siege.still_serves();
    }
    let report = siege.finish(
        "host memory (host_memory_mb = 32)",
        &got.join(", "),
        64 + 32,
    );
    report.assert_floods_logged();
}

#[test]
fn budget_log_flood_is_cut_and_announced() {
    let siege = Siege::start("log", &hostile(), "timeout_ms = 3000\n");
    let got = siege.act("/log-flood", &[]);
    let report = siege.finish(
        "log flood (log_bytes_per_s = 64 KiB)",
        &format!("{got:?}"),
        16,
    );
    // What reached the log from the plugin: its lines are under its name.
    let plugin_bytes: usize = report
        .log
        .iter()
        .filter(|l| l.contains("llll") || l.contains("oooo"))
        .map(String::len)
        .sum();
    println!("budget: log flood: {plugin_bytes} bytes of the plugin's 810 MB reached the log");
    assert!(plugin_bytes < 1 << 20, "{plugin_bytes} bytes logged");
    assert!(
        report.log_count("dropped") >= 1,
        "the drop is announced: {}",
        report.shown()
    );
}

#[test]
fn budget_replays_are_bounded_and_never_reach_loopback_unlisted() {
    // Granted the origin (named, so its loopback address is allowed): a
    // flood of replays is cut at the in-flight cap, and the replays are not
    // replayed again.
    let siege = Siege::start(
        "replay",
        &hostile(),
        "timeout_ms = 2000\nallowed_hosts = [\"127.0.0.1:ORIGIN_PORT\"]\nmax_replays_in_flight = 4\n",
    );
    siege.act("/replay-flood", &[]);
    siege.still_serves();
    std::thread::sleep(Duration::from_millis(500));
    // The client's flow and its replays reached the origin; the replays, sent
    // while the plugin still ran, may come first.
    let seen: Vec<String> = siege
        .origin
        .seen()
        .iter()
        .filter(|r| r.path.starts_with("/replay-flood"))
        .filter_map(|r| r.header_values("x-hostile").first().map(|v| v.to_string()))
        .collect();
    let (replays, original): (Vec<&String>, Vec<&String>) = seen
        .iter()
        .partition(|got| got.contains("max_replay_depth"));
    let [flood] = original[..] else {
        panic!("one flow from the client: {seen:?}")
    };
    let replayed = leading_number(flood, "replayed");
    assert!(
        (1..=4).contains(&replayed) && flood.contains("OverBudget"),
        "{flood}"
    );
    assert_eq!(
        replays.len() as u64,
        replayed,
        "each replay reached the origin once and was not replayed: {seen:?}"
    );
    siege.finish(
        "replay flood (max_replays_in_flight = 4)",
        &format!("{flood}; the origin saw {} requests", seen.len()),
        16,
    );

    // Granted every host: loopback and witm's own admin port stay refused.
    let siege = Siege::start("replay-loopback", &hostile(), "allowed_hosts = [\"*\"]\n");
    let mut got = Vec::new();
    for port in [siege.origin.address.port(), siege.admin_port] {
        let outcome = siege
            .act(&format!("/replay-loopback?port={port}"), &[])
            .expect("an answer");
        assert!(
            outcome.starts_with("denied") && outcome.contains("not listed"),
            "{outcome}"
        );
        got.push(outcome);
    }
    assert!(
        !siege.origin.seen().iter().any(|r| r.path == "/secret"),
        "the loopback service was reached"
    );
    siege.finish(
        "replay to loopback (allowed_hosts = [\"*\"])",
        &got.join("; "),
        16,
    );

    // Loopback granted by name: the origin there, but not witm's own ports.
    let siege = Siege::start(
        "replay-own-ports",
        &hostile(),
        "allowed_hosts = [\"127.0.0.1\"]\n",
    );
    let own = siege
        .act(&format!("/replay-loopback?port={}", siege.admin_port), &[])
        .expect("an answer");
    assert!(own.contains("witm's own proxy or admin port"), "{own}");
    let origin_port = siege.origin.address.port();
    let granted = siege
        .act(&format!("/replay-loopback?port={origin_port}"), &[])
        .expect("an answer");
    assert_eq!(granted, "replayed");
    std::thread::sleep(Duration::from_millis(300));
    assert!(siege.origin.seen().iter().any(|r| r.path == "/secret"));
    siege.finish(
        "replay to witm's admin port (allowed_hosts = [\"127.0.0.1\"])",
        &format!("{own}; to the origin: {granted}"),
        16,
    );
}

/// A gzip bomb decoded over and over, and incompressible bodies encoded
/// with brotli: each host call stops at the event's deadline.
#[test]
fn budget_coding_bombs_stop_at_the_deadline() {
    let siege = Siege::start(
        "coding",
        &hostile(),
        "timeout_ms = 300\nmemory_mb = 160\nhost_memory_mb = 160\n",
    );
    let bomb = siege.dir.join("bomb.gz");
    let zeros = vec![0u8; 256 << 20];
    let gzip = ContentEncoding::from_header(Some("gzip")).unwrap();
    std::fs::write(&bomb, gzip.encode(&zeros).unwrap()).unwrap();
    drop(zeros);
    let body = format!("@{}", bomb.display());
    let unzip = siege.act(
        "/unzip",
        &["-H", "content-encoding: gzip", "--data-binary", &body],
    );
    assert_eq!(unzip, None, "the decoding loop is ended");
    siege.still_serves();
    let rezip = siege.act("/rezip", &["-H", "content-encoding: br"]);
    assert_eq!(rezip, None, "the encoding is ended");
    siege.still_serves();
    let report = siege.finish(
        "gzip bomb (256 MiB in 256 KiB) and brotli of 64 MiB, timeout_ms = 300",
        "both calls ended at the deadline",
        160 + 160,
    );
    assert!(
        report.log_count("deadline exceeded") >= 2,
        "{}",
        report.shown()
    );
}

#[test]
fn budget_a_plugin_that_cannot_restart_backs_off() {
    let siege = Siege::start("restart", &hostile(), "args = [\"fail-restart\"]\n");
    assert_eq!(siege.act("/crash", &[]), None);
    for _ in 0..30 {
        let _ = siege.act("/page?after-crash", &[]);
    }
    let metrics = curl(
        "",
        &[
            &format!("http://127.0.0.1:{}/metrics", siege.admin_port),
            "--noproxy",
            "*",
        ],
    );
    let report = siege.finish("start fails on restart", "skipped while backing off", 16);
    let start_failures = report.log_count("start failed");
    assert!(
        (1..=3).contains(&start_failures),
        "{start_failures} starts failed: the plugin must back off"
    );
    assert!(report.log_count("skipped for") >= 1, "{}", report.shown());
    assert!(
        metrics.body.lines().any(|l| l.starts_with(
            "witm_plugin_start_failures_total{plugin=\"hostile\",tenant=\"attacker\"}"
        ) && !l.ends_with(" 0")),
        "{}",
        metrics.body
    );
}

/// The Python twin does the same with its SDK: each act is stopped.
#[test]
fn budget_a_python_plugin_is_bounded_the_same_way() {
    let siege = Siege::start(
        "python",
        &guests().hostile_py.display().to_string(),
        "timeout_ms = 3000\nmemory_mb = 128\nhost_memory_mb = 32\nkv_mb = 16\n",
    );
    let mut got = Vec::new();
    let kv = siege.act("/kv-flood", &[]).expect("an answer");
    assert!(
        leading_number(&kv, "stored") <= 16 && kv.contains("OverBudget"),
        "{kv}"
    );
    got.push(kv);
    let headers = siege.act("/header-flood", &[]).expect("an answer");
    assert!(leading_number(&headers, "appended") <= 256, "{headers}");
    got.push(headers);
    siege.still_serves();
    for path in [
        "/response-flood",
        "/dup-flood",
        "/metadata-flood",
        "/handle-flood",
    ] {
        assert_eq!(siege.act(path, &[]), None, "{path}: the call must be ended");
        siege.still_serves();
    }
    got.push("floods trapped".into());
    let loopback = siege
        .act(&format!("/replay-loopback?port={}", siege.admin_port), &[])
        .expect("an answer");
    assert!(loopback.contains("Denied"), "{loopback}");
    got.push(loopback);
    let _ = siege.act("/log-flood", &[]);
    let report = siege.finish("Python plugin", &got.join("; "), 128 + 32 + 16);
    report.assert_floods_logged();
    assert!(report.log_count("dropped") >= 1, "{}", report.shown());
}
