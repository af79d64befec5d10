//! What plugins do to flows: add-header in Rust and Python, request changes,
//! answering without the server, order, and contained failure.

use witm_test_support::{HELLO, Origin, Witm, curl, guests};

use crate::{start_with, witm_binary};

#[test]
fn rust_add_header_adds_its_header() {
    let origin = Origin::start();
    let witm = start_with(&["add-header"]);
    let response = curl(&witm.proxy_url(), &[&origin.url("/")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header_values("newheader"), ["foo"]);
    assert_eq!(response.body, HELLO);
    assert_eq!(origin.seen().len(), 1);
}

#[test]
fn python_add_header_adds_its_header() {
    let origin = Origin::start();
    let plugin = guests().python("add-header").display().to_string();
    let witm = Witm::start(witm_binary(), &["-s", &plugin])
        .unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let response = curl(&witm.proxy_url(), &[&origin.url("/py")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header_values("newheader"), ["foo"]);
    assert_eq!(response.body, HELLO);
}

#[test]
fn plugins_run_in_order_and_their_request_changes_reach_the_origin() {
    let origin = Origin::start();
    let witm = start_with(&["tag first", "tag second"]);
    let response = curl(&witm.proxy_url(), &[&origin.url("/tagged")]);
    assert_eq!(response.status, 200);
    // Each plugin appends its tag (its `start` argument) after the previous one's.
    assert_eq!(response.header_values("x-tag"), ["first", "second"]);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header_values("x-tag"), ["first", "second"]);
    // A bodyless GET held by a `request` plugin stays bodyless on the wire.
    assert!(
        seen[0].header_values("content-length").is_empty(),
        "{:?}",
        seen[0]
    );
    let posted = curl(
        &witm.proxy_url(),
        &["--data-binary", "", &origin.url("/empty-post")],
    );
    assert_eq!(posted.status, 200);
    assert_eq!(
        origin.seen()[1].header_values("content-length"),
        ["0"],
        "an empty body that was framed stays framed"
    );
}

#[test]
fn a_plugin_can_answer_without_the_server() {
    let origin = Origin::start();
    let witm = start_with(&["answer", "add-header"]);
    let response = curl(&witm.proxy_url(), &[&origin.url("/answered")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "answered by plugin\n");
    assert_eq!(response.header_values("content-length"), ["19"]);
    // The `response` event still runs for a response made in `request`.
    assert_eq!(response.header_values("newheader"), ["foo"]);
    assert!(
        origin.seen().is_empty(),
        "the origin saw {:?}",
        origin.seen()
    );
    // Other paths still go to the server.
    let forwarded = curl(&witm.proxy_url(), &[&origin.url("/other")]);
    assert_eq!(forwarded.body, HELLO);
    assert_eq!(origin.seen().len(), 1);
}

#[test]
fn a_trapping_plugin_leaves_the_flow_intact_and_is_replaced() {
    let origin = Origin::start();
    let witm = start_with(&["trap", "tag after"]);
    assert_eq!(witm.log_count("trap plugin started"), 1);

    let response = curl(&witm.proxy_url(), &[&origin.url("/trap")]);
    assert_eq!(response.status, 200, "the flow goes on after the trap");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    // The header set just before the trap was rolled back …
    assert!(
        seen[0].header_values("x-half-done").is_empty(),
        "{:?}",
        seen[0]
    );
    // … and the next plugin in the chain still ran.
    assert_eq!(seen[0].header_values("x-tag"), ["after"]);
    // (The log is read from witm's stderr as it comes: wait for the lines.)
    assert!(
        witm.wait_for_log("[trap] request failed", 1),
        "the trap is logged with the plugin's name:\n{}",
        witm.stderr().join("\n")
    );
    // The instance was replaced: its `start` ran again.
    assert!(witm.wait_for_log("trap plugin started", 2));
    assert_eq!(witm.log_count("trap plugin started"), 2);

    let next = curl(&witm.proxy_url(), &[&origin.url("/fine")]);
    assert_eq!(next.status, 200);
    assert_eq!(origin.seen().len(), 2);
}

#[test]
fn a_plugin_that_traps_after_changing_response_headers_leaves_them_as_they_came() {
    let origin = Origin::start();
    let witm = start_with(&["trap"]);
    // Fields only added (undone by the list's length), added and changed,
    // and (the third time) first one inserted before the trap are all
    // undone: the client gets the origin's fields.
    for (n, path) in [
        "/trap-response-add-only",
        "/trap-response",
        "/trap-response-insert",
    ]
    .iter()
    .enumerate()
    {
        let response = curl(&witm.proxy_url(), &[&origin.url(path)]);
        assert_eq!(response.status, 200, "the flow goes on after the trap");
        assert_eq!(response.header_values("content-type"), ["text/plain"]);
        assert!(
            response.header_values("x-half-done").is_empty(),
            "{path}: {:?}",
            response.headers
        );
        assert_eq!(response.body, HELLO);
        assert!(witm.wait_for_log("[trap] response failed", n + 1));
    }
}

#[test]
fn an_unreachable_server_gives_502_and_the_error_event() {
    // A port nobody listens on: bind, note the port, close.
    let port = witm_test_support::free_port();
    let witm = start_with(&["recorder"]);
    let response = curl(
        &witm.proxy_url(),
        &[&format!("http://127.0.0.1:{port}/nowhere")],
    );
    assert_eq!(response.status, 502);
    assert!(
        response.body.contains("cannot connect to 127.0.0.1"),
        "{}",
        response.body
    );
    assert!(witm.wait_for_log("event=error kind=server message=cannot connect", 1));
    assert_eq!(witm.log_count("event=response"), 0);
}

/// Sends `POST origin/upload` with a chunked body whose second chunk size
/// is garbage, straight to witm; returns witm's answer.
fn post_malformed_chunks(witm: &Witm, origin: &Origin) -> String {
    use std::io::{Read, Write};
    let mut client = std::net::TcpStream::connect(("127.0.0.1", witm.port)).unwrap();
    let url = origin.url("/upload");
    write!(
        client,
        "POST {url} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nnot-a-chunk-size\r\n\r\n",
        origin.address
    )
    .unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = client.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_malformed_request_body_streamed_to_the_server_is_the_clients_error_too() {
    let origin = Origin::start();
    // add-header takes responses only: the request body streams through.
    let witm = start_with(&["add-header"]);
    let answer = post_malformed_chunks(&witm, &origin);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("request body from the client"), "{answer}");
}

#[test]
fn a_malformed_request_body_is_the_clients_error_a_400_and_reaches_plugins_as_such() {
    let origin = Origin::start();
    let witm = start_with(&["recorder"]);
    let answer = post_malformed_chunks(&witm, &origin);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        witm.wait_for_log(
            "event=error kind=client message=request body from the client",
            1
        ),
        "{}",
        witm.stderr().join("\n")
    );
    assert!(origin.seen().iter().all(|r| r.path != "/upload"));
}
