//! The flow API beyond the seed: decoded content, kill, metadata and the
//! plugin's key-value store.

use std::process::Command;

use witm_test_support::{GZIP_TEXT, HELLO, Origin, curl};

use crate::sandbox::Bystander;
use crate::{start_with, start_with_args};

#[test]
fn gzip_content_is_decoded_changed_and_re_encoded() {
    let origin = Origin::start();
    let witm = start_with(&["rewrite"]);
    // curl --compressed decodes what witm re-encoded.
    let decoded = curl(&witm.proxy_url(), &["--compressed", &origin.url("/gzip")]);
    assert_eq!(decoded.status, 200);
    assert_eq!(decoded.body, GZIP_TEXT.replace("world", "witm"));
    assert_eq!(decoded.header_values("content-encoding"), ["gzip"]);
    // On the wire it is still gzip, with a content-length that fits.
    let raw = Command::new("curl")
        .args([
            "-sS",
            "-x",
            &witm.proxy_url(),
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            &origin.url("/gzip"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&raw.stdout);
    let size = text.lines().last().unwrap();
    let length = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .expect("content-length");
    assert_eq!(length, size, "{text}");
    assert!(
        witm.stderr().iter().all(|l| !l.contains("failed")),
        "{}",
        witm.stderr().join("\n")
    );
}

#[test]
fn a_killed_flow_gets_no_answer_and_the_proxy_goes_on() {
    let origin = Origin::start();
    let witm = start_with(&["kill"]);
    let output = Command::new("curl")
        .args(["-sS", "-x", &witm.proxy_url(), &origin.url("/kill/me")])
        .output()
        .unwrap();
    // curl: (52) Empty reply from server.
    assert_eq!(
        output.status.code(),
        Some(52),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        origin.seen().is_empty(),
        "a flow killed in `request` never reaches the server"
    );
    let fine = curl(&witm.proxy_url(), &[&origin.url("/fine")]);
    assert_eq!(fine.status, 200);
    assert!(
        witm.wait_for_flow_line("/kill/me killed"),
        "{:?}",
        witm.stdout()
    );
}

#[test]
fn metadata_follows_the_flow_and_the_store_survives_a_restart() {
    let origin = Origin::start();
    let witm = start_with(&["counter"]);
    let first = curl(&witm.proxy_url(), &[&origin.url("/a")]);
    assert_eq!(
        first.header_values("x-count"),
        ["1"],
        "metadata set in `request` is read in `response`"
    );
    // The plugin counts this one, then traps: its metadata is rolled back
    // with the flow, the count in the store stays.
    let trapped = curl(&witm.proxy_url(), &[&origin.url("/trap")]);
    assert_eq!(trapped.status, 200);
    assert_eq!(trapped.header_values("x-count"), [""]);
    let third = curl(&witm.proxy_url(), &[&origin.url("/b")]);
    assert_eq!(
        third.header_values("x-count"),
        ["3"],
        "the store outlived the instance"
    );
}

/// Downloads `url` through `proxy` to nowhere; returns (bytes, headers).
fn download(proxy: &str, url: &str) -> (u64, String) {
    let output = Command::new("curl")
        .args([
            "-sS",
            "-x",
            proxy,
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            url,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let size = text.lines().last().unwrap().trim().parse().unwrap();
    (size, text)
}

#[test]
fn a_200_mb_download_streams_with_bounded_memory() {
    let origin = Origin::start();
    let witm = start_with(&["streamer", "add-header"]);
    // The peak of the download, not of start-up (compiling the plugins
    // when the code cache is cold takes more than the download may).
    witm.reset_peak_rss();
    let (size, head) = download(&witm.proxy_url(), &origin.url("/big/200"));
    assert_eq!(size, 200 << 20);
    assert!(
        head.to_ascii_lowercase().contains("newheader: foo"),
        "the response event still ran: {head}"
    );
    assert!(
        witm.wait_for_log("body: streamed", 1),
        "{}",
        witm.stderr().join("\n")
    );
    let peak_mib = witm.peak_rss_kib() / 1024;
    println!("peak RSS of witm during a 200 MiB streamed download: {peak_mib} MiB");
    assert!(
        peak_mib < 100,
        "peak RSS {peak_mib} MiB: the body was held, not streamed"
    );
}

#[test]
fn a_response_replaced_after_its_body_streamed_goes_out_whole_and_alone() {
    let origin = Origin::start();
    let witm = start_with(&["streamer"]);
    let replaced = curl(&witm.proxy_url(), &[&origin.url("/big/2?replace")]);
    assert_eq!(replaced.status, 200);
    assert_eq!(replaced.body, "replaced by the plugin\n");
    assert_eq!(replaced.header_values("content-length"), ["23"]);
    assert!(witm.wait_for_log("body: streamed", 1));
    // The connection is still good for the next request (same curl).
    let both = curl(
        &witm.proxy_url(),
        &[&origin.url("/big/2?replace"), &origin.url("/small")],
    );
    assert!(
        both.body.starts_with("replaced by the plugin\n"),
        "{}",
        both.body
    );
    assert_eq!(both.status, 200);
}

#[test]
fn a_body_over_the_limit_is_streamed_and_the_plugin_is_told() {
    let origin = Origin::start();
    let witm = crate::start_with_args(&["streamer"], &["--stream-large-bodies", "512k"]);
    // 1 MiB: under the plugin's own threshold, over the proxy's limit.
    let (size, _) = download(&witm.proxy_url(), &origin.url("/big/1"));
    assert_eq!(size, 1 << 20, "nothing read before the limit was lost");
    assert!(
        witm.wait_for_log("body: streamed", 1),
        "{}",
        witm.stderr().join("\n")
    );
    assert!(
        witm.log_count("response body over 524288 bytes") == 1,
        "{}",
        witm.stderr().join("\n")
    );
    // A small body is still held.
    curl(&witm.proxy_url(), &[&origin.url("/small")]);
    assert!(
        witm.wait_for_log("body: held 18 bytes", 1),
        "{}",
        witm.stderr().join("\n")
    );
}

#[test]
fn replay_request_reaches_the_origin_again_with_events() {
    let origin = Origin::start();
    // Replays are outbound requests: granted for the origin only.
    let dir = witm_test_support::target_dir().join("e2e-flow-api-replay");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("witm.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugins]]\npath = {:?}\nallowed_hosts = [\"127.0.0.1:{}\"]\n",
            witm_test_support::guests().rust("replayer"),
            origin.address.port()
        ),
    )
    .unwrap();
    let witm = crate::start_with_args(&[], &["--config", config.to_str().unwrap()]);
    let response = curl(&witm.proxy_url(), &[&origin.url("/replay-me")]);
    assert_eq!(response.status, 200);
    // Both responses' lines, in either order: the copy's may come first.
    for line in ["replayed=yes", "event=response status=200 replayed=no"] {
        assert!(witm.wait_for_log(line, 1), "{}", witm.stderr().join("\n"));
    }
    assert_eq!(
        witm.log_count("event=response status=200 replayed=no"),
        1,
        "{}",
        witm.stderr().join("\n")
    );
    let seen = origin.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|r| r.path == "/replay-me"));
    assert_eq!(
        seen.iter()
            .filter(|r| r.header_values("x-replayed") == ["yes"])
            .count(),
        1
    );
    // The copy has an id of its own.
    let ids: Vec<String> = witm
        .stderr()
        .iter()
        .filter_map(|l| l.split(" id=").nth(1).map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn websocket_messages_pass_through_a_plugin_that_rewrites_and_drops() {
    let origin = Origin::start();
    let witm = start_with(&["ws-rewrite"]);
    let replies = witm_test_support::websocket_exchange(
        witm.port,
        origin.address.port(),
        &["hello world", "drop me", "second"],
    );
    // Rewritten on the way to the echo server; the dropped one never left.
    assert_eq!(replies, ["hello witm", "second"]);
    assert!(witm.wait_for_log("websocket from-client=true text=hello world path=/ws", 1));
    assert!(witm.wait_for_log("websocket from-client=false text=hello witm path=/ws", 1));
    assert_eq!(witm.log_count("text=drop me"), 1);
}

#[test]
fn header_case_and_order_survive_a_plugin_editing_headers() {
    let origin = witm_test_support::RawOrigin::start();
    let witm = start_with(&["tag edited", "add-header"]);
    let url = format!("http://{}/case", origin.address);
    let output = Command::new("curl")
        .args(["-sS", "-x", &witm.proxy_url(), "-D", "-", "-o", "/dev/null"])
        .args([
            "-H",
            "X-Custom-Header: a",
            "-H",
            "x-lower: b",
            "-H",
            "Another-ONE: c",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let heads = origin.heads();
    assert_eq!(heads.len(), 1);
    let names = witm_test_support::field_names(&heads[0]);
    let custom: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| ["X-Custom-Header", "x-lower", "Another-ONE", "x-tag"].contains(n))
        .collect();
    assert_eq!(
        custom,
        ["X-Custom-Header", "x-lower", "Another-ONE", "x-tag"],
        "{}",
        heads[0]
    );
    let response_head = String::from_utf8_lossy(&output.stdout);
    let response_names = witm_test_support::field_names(&response_head);
    let ordered: Vec<&str> = response_names
        .iter()
        .copied()
        .filter(|n| {
            [
                "X-Mixed-Case",
                "zz-last-lower",
                "Another-Header",
                "newheader",
                "x-tag",
            ]
            .contains(n)
        })
        .collect();
    assert_eq!(
        ordered,
        [
            "X-Mixed-Case",
            "zz-last-lower",
            "Another-Header",
            "x-tag",
            "newheader"
        ],
        "{response_head}"
    );
}

#[test]
fn a_url_rewrite_sends_the_request_to_a_second_origin() {
    let first = Origin::start();
    let second = Origin::start();
    let witm = start_with(&[&format!("retarget {}", second.url(""))]);
    let response = curl(&witm.proxy_url(), &[&first.url("/elsewhere?q=1")]);
    assert_eq!(response.status, 200);
    assert!(
        first.seen().is_empty(),
        "the first origin saw {:?}",
        first.seen()
    );
    let seen = second.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/elsewhere?q=1");
    assert_eq!(seen[0].header_values("host"), [second.address.to_string()]);
    assert!(
        witm.wait_for_flow_line(&second.url("/elsewhere?q=1")),
        "{:?}",
        witm.stdout()
    );
}

/// RFC 9112 §6.3: with both Transfer-Encoding and Content-Length, the
/// chunked framing wins and a forwarding proxy drops Content-Length.
#[test]
fn a_response_with_both_content_length_and_chunked_arrives_whole() {
    const BOTH: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n14\r\ntwenty bytes of body\r\n0\r\n\r\n";
    let origin = witm_test_support::RawOrigin::start_with(BOTH);
    for plugins in [&[][..], &["add-header"][..]] {
        let witm = start_with(plugins);
        let other = Origin::start_unrecorded();
        let bystander = Bystander::start(witm.proxy_url(), other.url("/bystander"));
        let url = format!("http://{}/both", origin.address);
        let response = curl(&witm.proxy_url(), &[&url]);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "twenty bytes of body", "plugins {plugins:?}");
        assert!(
            response
                .header_values("content-length")
                .iter()
                .all(|v| *v == "20"),
            "{:?}",
            response.headers
        );
        bystander.finish().assert_unharmed(1);
    }
}

/// A client may close its side once its request is sent (`nc -N`, some
/// HTTP/1.0 clients): it still gets the answer, as from mitmproxy. Found by
/// fuzzing the client's bytes: such requests were dropped unanswered.
#[test]
fn a_client_that_half_closes_after_its_request_is_answered() {
    use std::io::{Read, Write};
    let origin = Origin::start();
    for plugins in [&[][..], &["add-header"][..]] {
        let witm = start_with(plugins);
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", witm.port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let target = origin.address;
        write!(
            stream,
            "GET http://{target}/half HTTP/1.1\r\nHost: {target}\r\n\r\n"
        )
        .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{plugins:?}: {answer:?}"
        );
        assert!(answer.ends_with(HELLO), "{plugins:?}: {answer:?}");
    }
}

#[test]
fn a_websocket_message_over_the_limit_closes_both_sides_with_1009() {
    let origin = Origin::start();
    let witm = start_with(&["ws-rewrite"]);
    let bystander = Bystander::start(witm.proxy_url(), origin.url("/bystander"));
    // 20 MiB in one frame: over tungstenite's 16 MiB frame limit.
    let code = witm_test_support::websocket_close_code(witm.port, origin.address.port(), 20 << 20);
    assert_eq!(code, Some(1009), "{}", witm.stderr().join("\n"));
    assert!(witm.wait_for_log("over the limit", 1));
    bystander.finish().assert_unharmed(1);
    // Witm goes on serving.
    assert_eq!(
        curl(&witm.proxy_url(), &[&origin.url("/after")]).status,
        200
    );
}

#[test]
fn the_websocket_limits_are_options() {
    let origin = Origin::start();
    // 2 MiB goes through under the default limits…
    let witm = start_with(&["ws-rewrite"]);
    let code = witm_test_support::websocket_close_code(witm.port, origin.address.port(), 2 << 20);
    assert_ne!(code, Some(1009), "{}", witm.stderr().join("\n"));
    // …and not past a frame limit of 1 MiB.
    let witm = start_with_args(&["ws-rewrite"], &["--websocket-max-frame", "1m"]);
    let code = witm_test_support::websocket_close_code(witm.port, origin.address.port(), 2 << 20);
    assert_eq!(code, Some(1009), "{}", witm.stderr().join("\n"));
    assert!(witm.wait_for_log("over the limit", 1));
}

/// What the origin and the client see of one request sent raw through
/// `witm` to `origin`: the origin's request head, and the response head
/// the client got (without `date`, which hyper adds), each verbatim.
fn heads_through(
    witm: &witm_test_support::Witm,
    raw: &witm_test_support::RawOrigin,
) -> (String, String) {
    let origin = raw.address;
    use std::io::{Read, Write};
    let mut client = std::net::TcpStream::connect(("127.0.0.1", witm.port)).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET http://{origin}/wire?q=1 HTTP/1.1\r\nHost: {origin}\r\nX-B: 1\r\nx-a: 2\r\n\
         X-B: 3\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n\
         Proxy-Connection: keep-alive\r\nTE: trailers\r\nACCEPT: */*\r\nx-a: 4\r\n\r\n"
    );
    client.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read_exact(&mut byte).is_ok() {
        head.push(byte[0]);
    }
    let response: String = String::from_utf8_lossy(&head)
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .collect();
    let heads = raw.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    (heads[0].clone(), response)
}

#[test]
fn the_wire_is_the_same_whether_a_flow_is_made_or_not() {
    // Mixed case, a name repeated around others, hop-by-hop fields and one
    // named in `Connection`: each way.
    const RESPONSE: &str = "HTTP/1.1 200 Fine Thanks\r\nX-Mixed-Case: 1\r\nset-Cookie: a=1\r\n\
        Keep-Alive: timeout=5\r\nConnection: close, X-Hop\r\nX-Hop: h\r\nzz-Last: 2\r\n\
        Set-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok";
    let mut seen = Vec::new();
    // No plugin (no flow is made) with and without flow lines; a plugin
    // that subscribes to every event and changes nothing (a flow is made);
    // one that sees only the response (the request goes as hyper read it).
    for (plugins, extra) in [
        (&[][..], &["-q"][..]),
        (&[][..], &[][..]),
        (&["recorder"][..], &["-q"][..]),
        (&["response-counter"][..], &["-q"][..]),
    ] {
        let origin = witm_test_support::RawOrigin::start_with(RESPONSE);
        let witm = start_with_args(plugins, extra);
        let (request, response) = heads_through(&witm, &origin);
        let port = origin.address.port().to_string();
        seen.push((request.replace(&port, "PORT"), response));
    }
    // A plugin that appends a field: the response goes out from hyper's
    // parse of the server's head plus that field while the server's
    // fields are untouched, else from the flow's copy (`touch` sets one
    // to the value it has). The same bytes either way.
    let mut tagged = Vec::new();
    for plugin in ["tag t", "tag t touch"] {
        let origin = witm_test_support::RawOrigin::start_with(RESPONSE);
        let witm = start_with_args(&[plugin], &["-q"]);
        let (_, response) = heads_through(&witm, &origin);
        tagged.push(response);
    }
    assert!(tagged[0].contains("zz-Last: 2\r\n"), "{}", tagged[0]);
    assert!(tagged[0].contains("x-tag: t\r\n"), "{}", tagged[0]);
    assert!(!tagged[0].contains("X-Hop"), "{}", tagged[0]);
    assert_eq!(tagged[0], tagged[1]);
    assert_eq!(
        tagged[0].replace("x-tag: t\r\n", ""),
        seen[0].1,
        "the server's fields as without a plugin"
    );
    let (request, response) = &seen[0];
    assert!(
        request.contains("X-B: 1\r\nX-B: 3\r\nx-a: 2\r\nx-a: 4\r\n"),
        "{request}"
    );
    assert!(!request.contains("X-Secret"), "{request}");
    assert!(
        response.starts_with("HTTP/1.1 200 Fine Thanks\r\n"),
        "{response}"
    );
    assert!(
        response.contains("set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"),
        "{response}"
    );
    assert!(!response.contains("X-Hop"), "{response}");
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
}
