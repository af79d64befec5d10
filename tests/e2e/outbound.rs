//! Plugins that call out (`http-send`) and tick (`set-tick`): the bearer
//! auth example against a real auth service, the policy's refusals, a
//! plugin waiting on a slow service while other flows go on, and ticks.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use witm_test_support::{Origin, curl, guests, tcp_server};

use crate::examples::LANGUAGES;
use crate::sandbox::{metric, scratch, start_with_config};

/// A small HTTP service on loopback, as an auth or config service would
/// be: `/check` answers 200 to `Authorization: Bearer good` and 401
/// otherwise (counted in `checks`); `/slow?ms=N` answers after N ms;
/// `/redirect-in` redirects to `/check`; `/redirect-out` to a host outside
/// any list; `/big` answers 2 MiB.
fn service(checks: Arc<AtomicUsize>) -> u16 {
    tcp_server(move |stream: TcpStream| {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut authorization = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("authorization")
            {
                authorization = value.trim().to_owned();
            }
        }
        let (status, extra, body) = if path == "/check" {
            checks.fetch_add(1, Ordering::SeqCst);
            match authorization.as_str() {
                "Bearer good" => ("200 OK", String::new(), "valid".to_owned()),
                _ => ("401 Unauthorized", String::new(), "invalid".to_owned()),
            }
        } else if let Some(ms) = path.strip_prefix("/slow?ms=") {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap()));
            ("200 OK", String::new(), "slow".to_owned())
        } else if path == "/redirect-in" {
            ("302 Found", "Location: /check\r\n".into(), String::new())
        } else if path == "/redirect-out" {
            let to = "Location: http://outside.test/check\r\n";
            ("302 Found", to.into(), String::new())
        } else if path == "/big" {
            ("200 OK", String::new(), "x".repeat(2 << 20))
        } else {
            ("404 Not Found", String::new(), String::new())
        };
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    })
}

/// The plugin configuration granting `allowed_hosts` and the limits given.
fn plugin_config(path: &std::path::Path, args: &[&str], settings: &str) -> String {
    format!(
        "[[plugins]]\npath = {path:?}\nargs = {args:?}\n{settings}\n",
        path = path.to_str().unwrap()
    )
}

#[test]
fn bearer_auth_in_every_language_asks_the_service_once_per_token_and_refuses_bad_ones() {
    let origin = Origin::start();
    for language in LANGUAGES {
        let checks = Arc::new(AtomicUsize::new(0));
        let port = service(checks.clone());
        let dir = scratch("bearer-auth");
        let url = format!("http://127.0.0.1:{port}/check");
        let config = plugin_config(
            &language.example("bearer-auth"),
            &[&url, "60"],
            &format!("allowed_hosts = [\"127.0.0.1:{port}\"]"),
        );
        let witm = start_with_config(&dir, &config, &[], &[]);
        let proxy = witm.proxy_url();
        let page = origin.url(&format!("/page?auth={language:?}"));
        let with = |token: &str| {
            curl(
                &proxy,
                &["-H", &format!("Authorization: Bearer {token}"), &page],
            )
        };

        let first = with("good");
        assert_eq!(first.status, 200, "{language:?}: {}", first.body);
        assert!(first.body.contains("hello from origin"));
        assert_eq!(with("good").status, 200, "{language:?}");
        assert_eq!(
            checks.load(Ordering::SeqCst),
            1,
            "{language:?}: the second answer came from the cache"
        );

        let bad = with("stolen");
        assert_eq!(bad.status, 401, "{language:?}");
        assert_eq!(bad.header_values("www-authenticate"), ["Bearer"]);
        assert_eq!(with("stolen").status, 401, "{language:?}");
        assert_eq!(checks.load(Ordering::SeqCst), 2, "{language:?}");
        let none = curl(&proxy, &[&page]);
        assert_eq!(none.status, 401, "{language:?}");
        assert_eq!(
            checks.load(Ordering::SeqCst),
            2,
            "{language:?}: no token, no question"
        );
        let reached = origin
            .seen()
            .iter()
            .filter(|r| r.path == page[page.find("/page").unwrap()..])
            .count();
        assert_eq!(
            reached, 2,
            "{language:?}: only the good token's requests reached the origin"
        );
    }
}

#[test]
fn bearer_auth_fails_closed_when_the_service_is_not_granted() {
    let origin = Origin::start();
    let checks = Arc::new(AtomicUsize::new(0));
    let port = service(checks.clone());
    let dir = scratch("bearer-auth-denied");
    let url = format!("http://127.0.0.1:{port}/check");
    // A wildcard does not grant loopback: the service is never asked.
    let config = plugin_config(
        &guests().rust("bearer-auth"),
        &[&url],
        "allowed_hosts = [\"*\"]",
    );
    let witm = start_with_config(&dir, &config, &[], &[]);
    let answer = curl(
        &witm.proxy_url(),
        &["-H", "Authorization: Bearer good", &origin.url("/page")],
    );
    assert_eq!(answer.status, 503);
    assert_eq!(checks.load(Ordering::SeqCst), 0);
    assert!(witm.wait_for_log("loopback, link-local or private address", 1));
}

/// What the caller plugin answers for one request with `headers`.
fn call(proxy: &str, origin: &Origin, headers: &[(&str, &str)]) -> String {
    let mut args = Vec::new();
    for (name, value) in headers {
        args.push("-H".to_owned());
        args.push(format!("{name}: {value}"));
    }
    args.push(origin.url("/unused"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let answer = curl(proxy, &args);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

#[test]
fn http_send_refuses_what_the_policy_does_not_grant_and_bounds_the_rest() {
    let origin = Origin::start();
    let checks = Arc::new(AtomicUsize::new(0));
    let port = service(checks.clone());
    let dir = scratch("outbound-policy");
    let (admin_port, closed) = (
        witm_test_support::free_port(),
        witm_test_support::free_port(),
    );
    let config = format!(
        "admin_port = {admin_port}\n{}",
        plugin_config(
            &guests().rust("caller"),
            &[],
            &format!(
                "allowed_hosts = [\"127.0.0.1:{port}\", \"*:{port}\", \"127.0.0.1:{closed}\"]\n\
                 outbound_timeout_ms = 500\nmax_outbound_per_event = 3"
            ),
        )
    );
    let witm = start_with_config(&dir, &config, &[], &[]);
    let proxy = witm.proxy_url();
    let service = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let one = |url: &str| call(&proxy, &origin, &[("x-call-url", url)]);

    // Granted, and a redirect inside the list is followed.
    assert!(one(&service("/check")).starts_with("ok 401 7 invalid"));
    assert!(one(&service("/redirect-in")).starts_with("ok 401"));
    // Not in the list: refused before any connection.
    let elsewhere = one("http://example.invalid/");
    assert!(
        elsewhere.starts_with("err denied:")
            && elsewhere.contains("not in the plugin's allowed_hosts"),
        "{elsewhere}"
    );
    // A name that matches a wildcard but resolves to loopback.
    let loopback = one(&format!("http://localhost:{port}/check"));
    assert!(
        loopback.contains("loopback, link-local or private address"),
        "{loopback}"
    );
    // A redirect out of the list is not followed.
    let out = one(&service("/redirect-out"));
    assert!(
        out.starts_with("err denied:") && out.contains("outside.test"),
        "{out}"
    );
    // Too slow: the plugin's limit, or the call's own shorter one.
    let started = Instant::now();
    let slow = one(&service("/slow?ms=3000"));
    assert!(
        slow.starts_with("err timed-out:") && slow.contains("500 ms (outbound_timeout_ms)"),
        "{slow}"
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
    let shorter = call(
        &proxy,
        &origin,
        &[
            ("x-call-url", &service("/slow?ms=3000")),
            ("x-call-timeout", "100"),
        ],
    );
    assert!(
        shorter.contains("100 ms (the call's timeout-ms)"),
        "{shorter}"
    );
    // Too big.
    let big = one(&service("/big"));
    assert!(
        big.starts_with("err unreachable:") && big.contains("over 1048576 bytes"),
        "{big}"
    );
    // Granted, but nobody listening.
    let refused = one(&format!("http://127.0.0.1:{closed}/"));
    assert!(
        refused.starts_with("err unreachable:") && refused.contains("connecting to"),
        "{refused}"
    );
    // Calls per event.
    let many = call(
        &proxy,
        &origin,
        &[("x-call-url", &service("/check")), ("x-call-count", "5")],
    );
    let lines: Vec<&str> = many.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[..3].iter().all(|l| l.starts_with("ok 401")), "{many}");
    assert!(
        lines[3..]
            .iter()
            .all(|l| l.contains("max_outbound_per_event")),
        "{many}"
    );
    // Bad input from the plugin.
    let bad = call(&proxy, &origin, &[("x-call-url", "ftp://a.test/")]);
    assert!(bad.starts_with("err invalid:"), "{bad}");

    assert_eq!(
        origin.seen().len(),
        0,
        "the caller answered every request itself"
    );
    let plugin = "{plugin=\"caller\"}";
    assert_eq!(
        metric(
            admin_port,
            &format!("witm_plugin_outbound_calls_total{plugin}")
        ),
        15
    );
    assert_eq!(
        metric(
            admin_port,
            &format!("witm_plugin_outbound_timeouts_total{plugin}")
        ),
        2
    );
    assert_eq!(
        metric(
            admin_port,
            &format!("witm_plugin_outbound_failures_total{plugin}")
        ),
        2
    );
    assert_eq!(
        metric(
            admin_port,
            &format!("witm_plugin_outbound_refused_total{plugin}")
        ),
        6
    );
}

#[test]
fn a_plugin_waiting_on_a_slow_service_holds_up_no_one_else() {
    let origin = Origin::start();
    let port = service(Arc::default());
    let dir = scratch("outbound-waiting");
    let (a_port, b_port) = (
        witm_test_support::free_port(),
        witm_test_support::free_port(),
    );
    // Tenant a's caller waits 2 s on each call, three at a time (more than
    // this machine's tokio workers); a fourth is over its in-flight limit.
    // Tenant b's flows go through add-header.
    let config = format!(
        "[[tenants]]\nname = \"a\"\nlisten_port = {a_port}\n\
         [[tenants.plugins]]\npath = {caller:?}\ninstances = 4\ntimeout_ms = 10000\n\
         allowed_hosts = [\"127.0.0.1:{port}\"]\noutbound_timeout_ms = 5000\n\
         max_outbound_in_flight = 3\n\
         [[tenants]]\nname = \"b\"\nlisten_port = {b_port}\n\
         [[tenants.plugins]]\npath = {add_header:?}\n",
        caller = guests().rust("caller").to_str().unwrap(),
        add_header = guests().rust("add-header").to_str().unwrap(),
    );
    let witm = start_with_config(&dir, &config, &[], &[]);
    assert!(witm.wait_for_log(&format!("127.0.0.1:{b_port} for tenants b"), 1));
    let (a, b) = (
        format!("http://127.0.0.1:{a_port}"),
        format!("http://127.0.0.1:{b_port}"),
    );
    let page = origin.url("/page?b");

    let before: Vec<Duration> = (0..10).map(|_| timed(&b, &page)).collect();
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            let (a, url) = (a.clone(), format!("http://127.0.0.1:{port}/slow?ms=2000"));
            let origin_url = origin.url("/unused");
            std::thread::spawn(move || {
                let started = Instant::now();
                let answer = curl(&a, &["-H", &format!("x-call-url: {url}"), &origin_url]);
                (answer.body, started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let during: Vec<Duration> = (0..20).map(|_| timed(&b, &page)).collect();
    let mut answers: Vec<(String, Duration)> =
        waiting.into_iter().map(|h| h.join().unwrap()).collect();
    answers.sort();
    let (refused, took) = &answers[0];
    assert!(
        refused.starts_with("err over-budget: http-send calls: 3 in flight at most"),
        "{refused}"
    );
    assert!(*took < Duration::from_millis(1000), "{took:?}");
    for (body, took) in &answers[1..] {
        assert!(body.starts_with("ok 200 4 slow"), "{body}");
        assert!(*took >= Duration::from_millis(1900), "{took:?}");
    }
    let worst_before = before.iter().max().unwrap();
    let worst_during = during.iter().max().unwrap();
    assert!(
        *worst_during < Duration::from_millis(500).max(*worst_before * 5),
        "tenant b's requests while a waited took up to {worst_during:?} (before: {worst_before:?})"
    );
}

/// How long one request to `url` through `proxy` takes, checking that
/// add-header answered.
fn timed(proxy: &str, url: &str) -> Duration {
    let started = Instant::now();
    let answer = curl(proxy, &[url]);
    assert_eq!(answer.header_values("newheader"), ["foo"]);
    started.elapsed()
}

#[test]
fn a_tick_plugin_ticks_at_its_period_and_is_held_to_the_minimum() {
    let dir = scratch("ticker");
    let admin_port = witm_test_support::free_port();
    let config = format!(
        "admin_port = {admin_port}\n{}",
        plugin_config(
            &guests().rust("ticker"),
            &["200", "10"],
            "min_tick_ms = 100"
        )
    );
    let started = Instant::now();
    let witm = start_with_config(&dir, &config, &[], &[]);
    assert!(
        witm.wait_for_log("10 ms is under the plugin's min_tick_ms (100)", 1),
        "{:?}",
        witm.stderr()
    );
    assert!(witm.wait_for_log("tick n=5", 1), "{:?}", witm.stderr());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "five ticks of 200 ms took {took:?}"
    );
    // The period holds: 2 s more bring about ten ticks, not the hundreds
    // the refused 10 ms period would, nor none.
    let ticks = "witm_plugin_ticks_total{plugin=\"ticker\"}";
    let before = metric(admin_port, ticks);
    assert!(before >= 5);
    std::thread::sleep(Duration::from_secs(2));
    let more = metric(admin_port, ticks) - before;
    assert!(
        (7..=12).contains(&more),
        "{more} ticks in 2 s at a 200 ms period"
    );
}

#[test]
fn python_js_and_go_plugins_tick_too() {
    for script in [
        "tests/plugins-py/ticker.py",
        "tests/plugins-js/ticker.js",
        "tests/plugins-go/ticker.go",
    ] {
        let dir = scratch("ticker-polyglot");
        let config = plugin_config(&guests().script(script), &["150"], "");
        let witm = start_with_config(&dir, &config, &[], &[]);
        assert!(
            witm.wait_for_log("tick n=3", 1),
            "{script}: {:?}",
            witm.stderr()
        );
    }
}
