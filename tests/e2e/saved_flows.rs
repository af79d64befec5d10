//! Saved flows: recording with `-w`, plugins over saved flows (`witm
//! replay`), mitmproxy captures and HAR, filters, client and server replay.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use witm_flow::{Flow, HttpMessage};
use witm_store::FlowFile;
use witm_test_support::{Origin, curl, guests, target_dir};

use crate::{start_with_args, witm_binary};

fn fixture(name: &str) -> PathBuf {
    witm_test_support::repo_root()
        .join("tests/fixtures/mitmproxy")
        .join(name)
}

/// A fresh folder for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = target_dir().join("e2e-saved").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs witm to completion (a subcommand that exits).
fn witm(args: &[&str]) -> Output {
    Command::new(witm_binary())
        .arg("--confdir")
        .arg(target_dir().join("e2e-confdir"))
        .args(args)
        .output()
        .expect("run witm")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "witm failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn read(path: &Path) -> Vec<Flow> {
    FlowFile::open(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn add_header() -> String {
    guests().rust("add-header").display().to_string()
}

#[test]
fn add_header_over_the_mitmproxy_capture_writes_the_header_into_every_response() {
    let dir = scratch("replay-capture");
    let out = dir.join("out.witm");
    let input = fixture("mitm-capture.flow");
    let before = std::fs::read(&input).unwrap();
    let stdout = ok(&witm(&[
        "replay",
        "-r",
        input.to_str().unwrap(),
        "-s",
        &add_header(),
        "-w",
        out.to_str().unwrap(),
    ]));
    assert_eq!(stdout.lines().count(), 10, "{stdout}");
    assert!(
        stdout.contains("POST http://127.0.0.1:19080/post 201"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&input).unwrap(), before, "input untouched");
    let flows = read(&out);
    assert_eq!(flows.len(), 10);
    for flow in &flows[..9] {
        let response = flow.response.as_ref().unwrap();
        assert_eq!(response.headers.get("newheader").as_deref(), Some("foo"));
    }
    // The error flow has no response, and keeps its error.
    assert!(flows[9].response.is_none());
    assert!(
        flows[9]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("Connect call failed")
    );
    // Bodies are kept as on the wire: still gzip, decoding to the JSON.
    let gzip = flows[0].response.as_ref().unwrap();
    assert_eq!(
        gzip.headers.get("content-encoding").as_deref(),
        Some("gzip")
    );
    assert!(
        String::from_utf8(gzip.content().unwrap())
            .unwrap()
            .contains("\"hello\":\"world\"")
    );
}

#[test]
fn add_header_over_the_har_fixture_and_export_back_to_har() {
    let dir = scratch("replay-har");
    let out = dir.join("out.witm");
    ok(&witm(&[
        "replay",
        "-q",
        "-r",
        fixture("mitm-capture.har").to_str().unwrap(),
        "-s",
        &add_header(),
        "-w",
        out.to_str().unwrap(),
    ]));
    let flows = read(&out);
    assert_eq!(flows.len(), 10);
    assert_eq!(
        flows
            .iter()
            .filter(|f| f
                .response
                .as_ref()
                .is_some_and(|r| r.headers.contains("newheader")))
            .count(),
        9
    );
    // Export to stdout, and to a file.
    let har = ok(&witm(&["export", "--har", "-r", out.to_str().unwrap()]));
    let json: serde_json::Value = serde_json::from_str(&har).unwrap();
    let entries = json["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 10);
    assert_eq!(entries[2]["request"]["method"], "POST");
    let har_file = dir.join("out.har");
    ok(&witm(&[
        "export",
        "--har",
        "-r",
        out.to_str().unwrap(),
        "-w",
        har_file.to_str().unwrap(),
    ]));
    let again = read(&har_file);
    assert_eq!(again.len(), 10);
    assert_eq!(
        again[0]
            .response
            .as_ref()
            .unwrap()
            .headers
            .get("newheader")
            .as_deref(),
        Some("foo")
    );
}

#[test]
fn one_flow_by_number_or_id_is_printed_in_full() {
    let input = fixture("mitm-capture.flow");
    let stdout = ok(&witm(&[
        "replay",
        "-r",
        input.to_str().unwrap(),
        "--flow",
        "3",
        "-s",
        &add_header(),
    ]));
    assert!(
        stdout.contains("POST http://127.0.0.1:19080/post"),
        "{stdout}"
    );
    assert!(stdout.contains("user=alice&pass=s3cret"), "{stdout}");
    assert!(stdout.contains("newheader: foo"), "{stdout}");
    assert!(!stdout.contains("/teapot"), "{stdout}");
    let stdout = ok(&witm(&[
        "replay",
        "-r",
        input.to_str().unwrap(),
        "--flow",
        "5e9b45c8",
    ]));
    assert!(
        stdout.contains("GET http://127.0.0.1:19080/data.json"),
        "{stdout}"
    );
    let missing = witm(&["replay", "-r", input.to_str().unwrap(), "--flow", "99"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such flow"));
}

#[test]
fn flows_lists_a_file_and_filters_select_flows() {
    let input = fixture("mitm-capture.flow");
    let input = input.to_str().unwrap();
    let all = ok(&witm(&["flows", input]));
    assert_eq!(all.lines().count(), 10, "{all}");
    assert!(
        all.lines()
            .next()
            .unwrap()
            .contains("GET http://127.0.0.1:19080/data.json 200"),
        "{all}"
    );
    let lines = |filter: &str| -> Vec<usize> {
        ok(&witm(&["flows", input, "--filter", filter]))
            .lines()
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(lines("~d localhost"), [7, 8, 9]);
    assert_eq!(lines("~m POST | ~m PUT"), [3, 9]);
    assert_eq!(lines("~e"), [10]);
    assert_eq!(lines("~c 200 & !~d localhost"), [1, 2]);
    assert_eq!(lines("~bs created & ~u /post"), [3, 9]);
    assert_eq!(lines("~bq alice"), [3]);
    // Header names as received, case-sensitive, as in mitmproxy.
    assert_eq!(lines("~hq \"X-Dup: two\""), [2]);
    assert_eq!(lines("~hq \"x-dup: two\""), Vec::<usize>::new());
    assert_eq!(lines("~hq '^X-Dup: two\\r$'"), [2]);
    let bad = witm(&["flows", input, "--filter", "~c 200 & (~d x"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("position"), "{stderr}");
}

#[test]
fn a_truncated_file_gives_its_complete_flows_and_says_what_it_skipped() {
    let dir = scratch("truncated");
    let full = dir.join("full.witm");
    ok(&witm(&[
        "replay",
        "-q",
        "-r",
        fixture("mitm-capture.flow").to_str().unwrap(),
        "-w",
        full.to_str().unwrap(),
    ]));
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.join("cut.witm");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let output = witm(&["flows", cut.to_str().unwrap()]);
    assert_eq!(ok(&output).lines().count(), 9);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("truncated") && stderr.contains("bytes"),
        "{stderr}"
    );
    // A corrupt record stops a replay: its output never appears.
    let mut damaged = bytes.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0xff;
    let bad = dir.join("bad.witm");
    std::fs::write(&bad, &damaged).unwrap();
    let out = dir.join("never.witm");
    let output = witm(&[
        "replay",
        "-r",
        bad.to_str().unwrap(),
        "-w",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("corrupt record at byte"), "{stderr}");
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        3,
        "no temporary left behind"
    );
}

#[test]
fn the_live_proxy_records_flows_with_a_filter() {
    let origin = Origin::start();
    let dir = scratch("record");
    let all = dir.join("all.witm");
    let not_found = dir.join("404.witm");
    let mut recording = start_with_args(&["add-header"], &["-w", all.to_str().unwrap()]);
    let mut filtered = start_with_args(
        &[],
        &["-w", not_found.to_str().unwrap(), "--save-filter", "~c 404"],
    );
    for proxy in [recording.proxy_url(), filtered.proxy_url()] {
        curl(&proxy, &[&origin.url("/page")]);
        curl(&proxy, &[&origin.url("/status/404")]);
        curl(&proxy, &["-d", "a=1", &origin.url("/post")]);
    }
    recording.stop();
    filtered.stop();
    let flows = read(&all);
    let urls: Vec<String> = flows.iter().map(|f| f.request.url()).collect();
    assert_eq!(
        urls,
        [
            origin.url("/page"),
            origin.url("/status/404"),
            origin.url("/post")
        ]
    );
    assert_eq!(flows[2].request.content().unwrap(), b"a=1");
    assert!(
        flows
            .iter()
            .all(|f| f.response.as_ref().unwrap().headers.contains("newheader"))
    );
    assert!(
        recording
            .stderr()
            .iter()
            .any(|l| l.contains("saved 3 flows")),
        "{:?}",
        recording.stderr()
    );
    let only = read(&not_found);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].response.as_ref().unwrap().status, 404);
}

#[test]
fn client_replay_sends_saved_requests_to_the_origin_again() {
    let origin = Origin::start();
    let dir = scratch("client-replay");
    let saved = dir.join("saved.witm");
    let mut recording = start_with_args(&[], &["-w", saved.to_str().unwrap()]);
    curl(&recording.proxy_url(), &[&origin.url("/page?n=1")]);
    curl(&recording.proxy_url(), &["-d", "x=y", &origin.url("/form")]);
    recording.stop();
    assert_eq!(origin.seen().len(), 2);

    let replayed = dir.join("replayed.witm");
    let mut replaying = start_with_args(
        &["add-header"],
        &[
            "--client-replay",
            saved.to_str().unwrap(),
            "-w",
            replayed.to_str().unwrap(),
        ],
    );
    assert!(
        replaying.wait_for_log("client replay: 2 requests sent again", 1),
        "{:?}",
        replaying.stderr()
    );
    replaying.stop();
    let seen = origin.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[2].path, seen[0].path);
    assert_eq!(seen[3].method, "POST");
    assert_eq!(seen[3].body, b"x=y");
    // Recorded as replays of their requests, as mitmproxy's is_replay.
    let sides: Vec<_> = read(&replayed).iter().map(|f| f.is_replay).collect();
    assert_eq!(sides, [Some(witm_flow::ReplaySide::Request); 2]);
}

#[test]
fn server_replay_answers_from_saved_responses_and_refuses_the_rest() {
    let origin = Origin::start();
    let dir = scratch("server-replay");
    let saved = dir.join("saved.witm");
    let mut recording = start_with_args(&[], &["-w", saved.to_str().unwrap()]);
    let original = curl(&recording.proxy_url(), &[&origin.url("/page?v=1")]);
    recording.stop();
    let seen_before = origin.seen().len();

    let served = dir.join("served.witm");
    let mut replaying = start_with_args(
        &["add-header"],
        &[
            "--server-replay",
            saved.to_str().unwrap(),
            "--server-replay-extra",
            "404",
            "-w",
            served.to_str().unwrap(),
        ],
    );
    let replayed = curl(&replaying.proxy_url(), &[&origin.url("/page?v=1")]);
    assert_eq!(replayed.status, 200);
    assert_eq!(replayed.body, original.body);
    assert_eq!(
        replayed.header_values("newheader"),
        ["foo"],
        "plugins still see the replayed response"
    );
    // Served once, as mitmproxy does: the second time it is unmatched.
    let again = curl(&replaying.proxy_url(), &[&origin.url("/page?v=1")]);
    assert_eq!(again.status, 404);
    let unmatched = curl(&replaying.proxy_url(), &[&origin.url("/page?v=2")]);
    assert_eq!(unmatched.status, 404);
    assert!(
        unmatched.body.contains("no saved response"),
        "{}",
        unmatched.body
    );
    replaying.stop();
    assert_eq!(
        origin.seen().len(),
        seen_before,
        "the origin was never asked"
    );
    // The saved answer is recorded as a replayed response; witm's own 404s
    // are not replays.
    let sides: Vec<_> = read(&served).iter().map(|f| f.is_replay).collect();
    assert_eq!(sides, [Some(witm_flow::ReplaySide::Response), None, None]);

    // Unmatched requests go to the server by default.
    let mut forwarding = start_with_args(&[], &["--server-replay", saved.to_str().unwrap()]);
    let forwarded = curl(&forwarding.proxy_url(), &[&origin.url("/page?v=3")]);
    assert_eq!(forwarded.status, 200);
    forwarding.stop();
    assert_eq!(origin.seen().len(), seen_before + 1);
}

#[test]
fn a_killed_proxy_leaves_every_finished_flow_in_its_file() {
    let origin = Origin::start();
    let dir = scratch("crash");
    let file = dir.join("flows.witm");
    let witm = start_with_args(&[], &["-w", file.to_str().unwrap()]);
    for i in 0..5 {
        curl(&witm.proxy_url(), &[&origin.url(&format!("/page?n={i}"))]);
    }
    // Flows are written as they end, not at exit: SIGKILL (no chance to
    // flush anything) loses none of them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill")
        .args(["-KILL", &witm.pid().to_string()])
        .status()
        .unwrap();
    drop(witm);
    let urls: Vec<String> = read(&file).iter().map(|f| f.request.url()).collect();
    let expected: Vec<String> = (0..5)
        .map(|i| origin.url(&format!("/page?n={i}")))
        .collect();
    assert_eq!(urls, expected);
}

/// Names of the fields, in order.
fn field_names(headers: &witm_flow::Headers) -> Vec<String> {
    headers.iter().map(|(n, _)| n.to_owned()).collect()
}

/// The client's fields this file's tests send, interleaved and mixed-case.
const CLIENT_FIELDS: [&str; 3] = ["X-B: 1", "x-a: 2", "X-B: 3"];

/// The client's fields of `CLIENT_FIELDS` among a request's, in order.
fn client_fields(flow: &Flow) -> Vec<String> {
    field_names(&flow.request.headers)
        .into_iter()
        .filter(|n| n.eq_ignore_ascii_case("x-a") || n.eq_ignore_ascii_case("x-b"))
        .collect()
}

#[test]
fn recorded_flows_keep_the_case_and_order_of_the_wire() {
    const INTERLEAVED: &str = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Mixed: 1\r\nset-cookie: b=2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let origin = witm_test_support::RawOrigin::start_with(INTERLEAVED);
    let dir = scratch("wire-order");
    let file = dir.join("flows.witm");
    let mut witm = start_with_args(&[], &["-w", file.to_str().unwrap()]);
    let url = format!("http://{}/order", origin.address);
    let mut args = Vec::new();
    for field in CLIENT_FIELDS {
        args.extend(["-H", field]);
    }
    // Two requests on one client connection: the second head is found
    // after the first message.
    args.extend([url.as_str(), url.as_str()]);
    curl(&witm.proxy_url(), &args);
    witm.stop();
    let flows = read(&file);
    assert_eq!(flows.len(), 2);
    for flow in &flows {
        assert_eq!(client_fields(flow), ["X-B", "x-a", "X-B"]);
        assert_eq!(
            field_names(&flow.request.headers)[0],
            "Host",
            "{:?}",
            flow.request.headers
        );
        assert_eq!(
            field_names(&flow.response.as_ref().unwrap().headers),
            [
                "Set-Cookie",
                "X-Mixed",
                "set-cookie",
                "Content-Length",
                "Connection"
            ]
        );
    }
}

#[test]
fn recorded_flows_keep_the_server_address_and_an_http2_servers_empty_reason() {
    let origin = Origin::start();
    let ca = witm_test_support::TestCa::new("wire-facts-origin");
    let tls_origin = Origin::start_https(&ca);
    let dir = scratch("wire-facts");
    let file = dir.join("flows.witm");
    let ca_path = ca.cert_pem_path.display().to_string();
    let mut witm = start_with_args(
        &[],
        &["-w", file.to_str().unwrap(), "--upstream-ca", &ca_path],
    );
    let proxy = witm.proxy_url();
    curl(&proxy, &[&origin.url("/plain")]);
    let witm_ca = crate::https::witm_ca();
    let h2 = curl(
        &proxy,
        &[
            "--http2",
            "--cacert",
            &witm_ca,
            &tls_origin.https_url("/h2"),
        ],
    );
    assert_eq!(h2.status, 200);
    witm.stop();
    let flows = read(&file);
    let plain = flows.iter().find(|f| f.request.path == "/plain").unwrap();
    let server = plain
        .server_conn
        .as_ref()
        .expect("a plain-HTTP flow's server");
    assert_eq!(server.address, origin.url("").trim_start_matches("http://"));
    assert_eq!(plain.response.as_ref().unwrap().reason, "OK");
    let h2 = flows.iter().find(|f| f.request.path == "/h2").unwrap();
    let response = h2.response.as_ref().unwrap();
    assert_eq!(response.http_version, "HTTP/2.0");
    assert_eq!(response.reason, "", "HTTP/2 has no reason phrase");
}
