//! Which events fire, how often, and the proxy's lifecycle.

use std::time::{Duration, Instant};

use witm_test_support::{Origin, curl};

use crate::start_with;

#[test]
fn connection_events_fire_once_per_connection_and_start_done_once() {
    let origin = Origin::start();
    let mut witm = start_with(&["recorder one two"]);
    // Two requests on one keep-alive connection.
    let response = curl(&witm.proxy_url(), &[&origin.url("/a"), &origin.url("/b")]);
    assert_eq!(response.status, 200);
    assert!(witm.wait_for_log("event=client-disconnect", 1));
    assert_eq!(witm.log_count("event=client-connect"), 1);
    assert_eq!(witm.log_count("event=request"), 2);
    assert_eq!(
        witm.log_count(&format!("authority={} conn=", origin.address)),
        2
    );
    assert_eq!(witm.log_count("event=response status=200"), 2);
    assert_eq!(witm.log_count("event=client-disconnect"), 1);
    // Both requests name the same connection as the connect event.
    let log = witm.stderr();
    let conn_id = log
        .iter()
        .find_map(|l| l.split("event=client-connect conn=").nth(1))
        .unwrap()
        .to_owned();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("event=request") && l.ends_with(&conn_id))
            .count(),
        2
    );
    // A second connection gets its own pair.
    curl(&witm.proxy_url(), &[&origin.url("/c")]);
    assert!(witm.wait_for_log("event=client-disconnect", 2));
    assert_eq!(witm.log_count("event=client-connect"), 2);

    let status = witm.stop();
    assert!(status.success(), "exit status {status}");
    assert_eq!(witm.log_count("event=start args=one,two"), 1);
    assert_eq!(witm.log_count("event=done"), 1);
    let log = witm.stderr();
    let done_at = log.iter().position(|l| l.contains("event=done")).unwrap();
    assert!(
        log[done_at..].iter().all(|l| !l.contains("event=request")),
        "done comes last"
    );
}

#[test]
fn one_line_per_flow_on_stdout() {
    let origin = Origin::start();
    let mut witm = start_with(&[]);
    curl(&witm.proxy_url(), &[&origin.url("/status/404")]);
    curl(&witm.proxy_url(), &[&origin.url("/x?y=1")]);
    witm.stop();
    let lines = witm.stdout();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let expected = format!("GET {} 404 18b ", origin.url("/status/404"));
    assert!(lines[0].starts_with("127.0.0.1:"), "{}", lines[0]);
    assert!(
        lines[0].contains(&expected),
        "{} lacks {expected}",
        lines[0]
    );
    assert!(
        lines[0].ends_with("ms") || lines[0].ends_with("µs"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(&format!("GET {} 200 18b ", origin.url("/x?y=1"))),
        "{}",
        lines[1]
    );
}

#[test]
fn shutdown_lets_flows_in_flight_finish() {
    let origin = Origin::start();
    let mut witm = start_with(&["recorder"]);
    let proxy = witm.proxy_url();
    let url = origin.url("/slow");
    let started = Instant::now();
    let slow = std::thread::spawn(move || curl(&proxy, &[&url]));
    // Wait until the request is with the origin, then ask witm to stop.
    while origin.seen().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    witm.terminate();
    let response = slow.join().unwrap();
    assert_eq!(response.status, 200, "the flow in flight finished");
    let status = witm.stop();
    assert!(status.success());
    assert_eq!(witm.log_count("event=done"), 1);
}

#[test]
fn server_connect_and_disconnect_fire_per_server_connection() {
    // Two requests on one kept-alive server connection: one server-connect.
    let origin = Origin::start();
    let witm = start_with(&["recorder"]);
    curl(
        &witm.proxy_url(),
        &[&origin.url("/one"), &origin.url("/two")],
    );
    let connect = format!("event=server-connect address={}", origin.address);
    assert!(
        witm.wait_for_log(&connect, 1),
        "{}",
        witm.stderr().join("\n")
    );
    assert_eq!(witm.log_count(&connect), 1);
    // A server that closes after each answer: server-disconnect follows.
    let closing = witm_test_support::RawOrigin::start();
    curl(
        &witm.proxy_url(),
        &[&format!("http://{}/", closing.address)],
    );
    let disconnect = format!("event=server-disconnect address={}", closing.address);
    assert!(
        witm.wait_for_log(&disconnect, 1),
        "{}",
        witm.stderr().join("\n")
    );
}
