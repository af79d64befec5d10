//! witm held against real mitmproxy (installed from PyPI in the tests'
//! tools venv): `witm export --mitmproxy` writes mitmproxy's flow format
//! 21, read by mitmproxy's own Python reader (`mitmproxy.io`), every field
//! compared with what mitmproxy reads from the original capture; and the
//! filter table's expected results are what mitmproxy's filters give.

use std::path::Path;
use std::process::Command;

use witm_test_support::tools_python;

use crate::witm_binary;

/// mitmproxy's reader, the version the fixture was recorded with.
const MITMPROXY: (&str, &str) = ("mitmproxy", "mitmproxy==11.0.2");

/// Reads two captures with mitmproxy and compares every field it keeps of
/// each flow (times to the millisecond, witm's resolution); prints JSON:
/// the flow counts, the fields compared and the fields that differ (with
/// both values).
const COMPARE: &str = r#"
import json, sys
from mitmproxy import io

def load(path):
    with open(path, "rb") as f:
        return list(io.FlowReader(f).stream())

def conn(prefix, c, keys, out):
    for k in keys:
        out[prefix + k] = repr(getattr(c, k))

def fields(f):
    out = {"type": repr(f.type), "id": repr(f.id), "marked": repr(f.marked),
           "comment": repr(f.comment), "metadata": repr(f.metadata),
           "is_replay": repr(f.is_replay)}
    out["error.msg"] = repr(f.error and f.error.msg)
    conn("client_conn.", f.client_conn, ["peername", "sni", "alpn", "tls", "timestamp_start"], out)
    conn("server_conn.", f.server_conn, ["address", "peername", "sni", "alpn", "tls",
                                         "timestamp_start", "timestamp_tcp_setup",
                                         "timestamp_tls_setup"], out)
    if f.type == "tcp":
        messages(f.messages, "messages", out)
        return out
    r = f.request
    conn("request.", r, ["method", "scheme", "host", "port", "path", "authority",
                         "http_version", "raw_content", "timestamp_start",
                         "timestamp_end"], out)
    out["request.headers"] = repr(r.headers.fields)
    out["request.trailers"] = repr(r.trailers and r.trailers.fields)
    if f.response:
        s = f.response
        conn("response.", s, ["status_code", "reason", "http_version", "raw_content",
                              "timestamp_start", "timestamp_end"], out)
        out["response.headers"] = repr(s.headers.fields)
        out["response.trailers"] = repr(s.trailers and s.trailers.fields)
    else:
        out["response"] = "None"
    if f.websocket:
        w = f.websocket
        messages(w.messages, "websocket.messages", out)
        conn("websocket.", w, ["closed_by_client", "close_code", "close_reason",
                               "timestamp_end"], out)
    return out

def messages(items, prefix, out):
    out[prefix] = repr(len(items))
    for i, m in enumerate(items):
        at = f"{prefix}[{i}]."
        out[at + "from_client"] = repr(m.from_client)
        out[at + "content"] = repr(m.content)
        out[at + "timestamp"] = repr(m.timestamp)
        if hasattr(m, "type"):
            out[at + "type"] = repr(m.type)

def same(key, a, b):
    # witm keeps times in milliseconds.
    if "timestamp" in key and a != "None" != b:
        return abs(float(a) - float(b)) < 0.0011
    return a == b

theirs, ours = load(sys.argv[1]), load(sys.argv[2])
compared, differences = 0, {}
for a, b in zip(theirs, ours):
    fa, fb = fields(a), fields(b)
    for key in fa:
        compared += 1
        if not same(key, fa[key], fb.get(key)):
            differences.setdefault(key, []).append([fa[key][:80], str(fb.get(key))[:80]])
print(json.dumps({"flows": [len(theirs), len(ours)], "compared": compared,
                  "differences": differences}))
"#;

/// `witm export --mitmproxy -r input -w out`, which must succeed.
pub(crate) fn export(input: &Path, out: &Path) {
    let export = Command::new(witm_binary())
        .args(["export", "--mitmproxy", "-r"])
        .arg(input)
        .arg("-w")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
}

/// What `script` prints when run by mitmproxy's Python with `files` as
/// its arguments; it must succeed.
pub(crate) fn mitmproxy_python(script: &str, files: &[&Path]) -> String {
    let python = tools_python(&[MITMPROXY]);
    let run = Command::new(python)
        .args(["-c", script])
        .args(files)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mitmproxy/mitm-capture.flow")
}

#[test]
fn a_capture_exported_by_witm_reads_in_mitmproxy_with_the_same_fields() {
    let dir = crate::sandbox::scratch("mitmproxy-export");
    let out = dir.join("out.flow");
    let export = Command::new(witm_binary())
        .args(["export", "--mitmproxy", "-r"])
        .arg(fixture())
        .arg("-w")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );

    let python = tools_python(&[MITMPROXY]);
    let compared = Command::new(python)
        .args(["-c", COMPARE])
        .arg(fixture())
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        compared.status.success(),
        "{}",
        String::from_utf8_lossy(&compared.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&compared.stdout).unwrap();
    println!("mitmproxy-export: {report}");
    assert_eq!(report["flows"], serde_json::json!([10, 10]));
    // Every field agrees.
    assert_eq!(
        report["differences"],
        serde_json::json!({}),
        "fields that differ from mitmproxy's: {report}"
    );
}

/// Lists a capture as mitmproxy reads it: one line per flow, "METHOD URL
/// STATUS CONTENT-OF-THE-REQUEST newheader=VALUE".
const LIST: &str = r#"
import sys
from mitmproxy import io
with open(sys.argv[1], "rb") as f:
    for flow in io.FlowReader(f).stream():
        r, s = flow.request, flow.response
        print(r.method, r.pretty_url, s.status_code, r.get_text(), "newheader=" + s.headers.get("newheader", ""))
"#;

#[test]
fn the_live_proxy_records_a_mitmproxy_capture_when_the_file_ends_in_flow() {
    let origin = witm_test_support::Origin::start();
    let dir = crate::sandbox::scratch("record-flow");
    let capture = dir.join("live.flow");
    let mut witm = crate::start_with_args(&["add-header"], &["-w", capture.to_str().unwrap()]);
    let proxy = witm.proxy_url();
    witm_test_support::curl(&proxy, &[&origin.url("/page")]);
    witm_test_support::curl(&proxy, &["-d", "a=1", &origin.url("/post")]);
    witm.stop();

    assert_eq!(
        mitmproxy_python(LIST, &[&capture]),
        format!(
            "GET {} 200  newheader=foo\nPOST {} 200 a=1 newheader=foo\n",
            origin.url("/page"),
            origin.url("/post")
        )
    );
    // What witm measured live: the address connected to, and times in the
    // order they happen: the connection is up before the response starts
    // (the second flow reuses the first's), a message ends after it starts
    // and the response starts after the request ended.
    let times = mitmproxy_python(TIMES, &[&capture]);
    let peer = format!("('{}', {})", origin.address.ip(), origin.address.port());
    assert_eq!(times, format!("{peer} in order\n{peer} in order\n"));
}

/// Per flow: the server's resolved address, and whether the connection's,
/// the request's and the response's times are all there and in order.
const TIMES: &str = r#"
import sys
from mitmproxy import io
with open(sys.argv[1], "rb") as f:
    for flow in io.FlowReader(f).stream():
        s, q, r = flow.server_conn, flow.request, flow.response
        connection = [s.timestamp_start, s.timestamp_tcp_setup, r.timestamp_start]
        exchange = [q.timestamp_start, q.timestamp_end, r.timestamp_start, r.timestamp_end]
        times = connection + exchange
        ordered = None not in times and all(t == sorted(t) for t in (connection, exchange))
        print(s.peername, "in order" if ordered else f"not in order: {times}")
"#;

/// A capture's WebSocket messages as mitmproxy reads them: one line each,
/// "client|server text|binary CONTENT", then "closed CODE".
const WEBSOCKET: &str = r#"
import sys
from mitmproxy import io
with open(sys.argv[1], "rb") as f:
    for flow in io.FlowReader(f).stream():
        for m in flow.websocket.messages:
            side = "client" if m.from_client else "server"
            kind = "text" if m.is_text else "binary"
            print(side, kind, m.content.decode())
        print("closed", flow.websocket.close_code)
"#;

#[test]
fn a_websocket_exchange_is_saved_listed_and_read_by_mitmproxy() {
    let origin = witm_test_support::Origin::start();
    let dir = crate::sandbox::scratch("websocket-saved");
    let saved = dir.join("ws.witm");
    let mut witm = crate::start_with_args(&[], &["-w", saved.to_str().unwrap()]);
    let replies =
        witm_test_support::websocket_exchange(witm.port, origin.address.port(), &["one", "two"]);
    assert_eq!(replies, ["one", "two"]);
    // The flow is saved when the socket closes.
    std::thread::sleep(std::time::Duration::from_millis(300));
    witm.stop();

    let listed = Command::new(witm_binary())
        .arg("flows")
        .arg(&saved)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("101 Switching Protocols"), "{listed}");
    assert!(listed.contains("WebSocket: 4 messages"), "{listed}");

    let out = dir.join("ws.flow");
    export(&saved, &out);
    let read = mitmproxy_python(WEBSOCKET, &[&out]);
    // Each side's messages in order (the two sides interleave as they
    // happen to), then the client's close without a code: 1005.
    let lines: Vec<String> = read.lines().map(String::from).collect();
    let side = |prefix: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    };
    assert_eq!(
        side("client"),
        ["client text one", "client text two"],
        "{lines:?}"
    );
    assert_eq!(
        side("server"),
        ["server text one", "server text two"],
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("closed 1005"),
        "{lines:?}"
    );
}

#[test]
fn the_filter_table_is_what_real_mitmproxy_says() {
    // The same table host/store/tests/filter_table.rs holds witm to.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../host/store/tests/filter_table.py");
    let python = tools_python(&[MITMPROXY]);
    let run = Command::new(python).arg(&script).output().unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.contains(" rows, 0 mismatches"), "{out}");
}

#[test]
fn websocket_messages_past_the_held_bytes_budget_are_counted_not_kept() {
    let origin = witm_test_support::Origin::start();
    let dir = crate::sandbox::scratch("websocket-budget");
    let saved = dir.join("ws.witm");
    // A budget of 3 bytes: the first "one" is kept, the rest only counted.
    let mut witm = crate::start_with_args(
        &[],
        &["-w", saved.to_str().unwrap(), "--max-held-bytes", "3"],
    );
    let replies =
        witm_test_support::websocket_exchange(witm.port, origin.address.port(), &["one", "two"]);
    assert_eq!(replies, ["one", "two"], "messages pass whether kept or not");
    std::thread::sleep(std::time::Duration::from_millis(300));
    witm.stop();
    let shown = Command::new(witm_binary())
        .args(["replay", "-r"])
        .arg(&saved)
        .args(["--flow", "1"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("> one\n"), "{shown}");
    assert!(shown.contains("3 more messages not kept"), "{shown}");
}

/// A process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What `COMPARE` reports for two captures, printed under `label`.
fn compare(label: &str, theirs: &Path, ours: &Path) -> serde_json::Value {
    let report = mitmproxy_python(COMPARE, &[theirs, ours]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    println!("{label}: {report}");
    report
}

#[test]
fn a_live_mitmdump_capture_reads_in_witm_and_goes_back_to_mitmproxy_with_every_field() {
    let origin = witm_test_support::Origin::start();
    let tcp_server = witm_test_support::tcp_server(|mut stream| {
        use std::io::{Read, Write};
        let mut buffer = [0u8; 256];
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 || stream.write_all(&buffer[..n].to_ascii_uppercase()).is_err() {
                break;
            }
        }
    });
    let dir = crate::sandbox::scratch("mitmdump-live");
    let capture = dir.join("mitmdump.flow");
    let _ = std::fs::remove_file(&capture);
    let port = witm_test_support::free_port();
    let mitmdump = tools_python(&[MITMPROXY]).with_file_name("mitmdump");
    let mut child = Child(
        Command::new(mitmdump)
            .args(["-q", "--listen-host", "127.0.0.1", "-p", &port.to_string()])
            .arg("--set")
            .arg(format!("confdir={}", dir.join("conf").display()))
            .arg("-w")
            .arg(&capture)
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "mitmdump did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // What a user records: a GET, a POST with a body, an error status, a
    // WebSocket, and a raw TCP stream through CONNECT.
    let proxy = format!("http://127.0.0.1:{port}");
    let url = |path: &str| format!("http://{}{path}", origin.address);
    witm_test_support::curl(&proxy, &["-H", "X-Mixed-Case: One", &url("/json")]);
    witm_test_support::curl(&proxy, &["--data-binary", "a=1&b=%FF", &url("/form")]);
    witm_test_support::curl(&proxy, &[&url("/status/404")]);
    let replies =
        witm_test_support::websocket_exchange(port, origin.address.port(), &["one", "two"]);
    assert_eq!(replies, ["one", "two"]);
    {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            tcp,
            "CONNECT 127.0.0.1:{tcp_server} HTTP/1.1\r\nHost: 127.0.0.1:{tcp_server}\r\n\r\n"
        )
        .unwrap();
        let mut answer = [0u8; 256];
        let n = tcp.read(&mut answer).unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        for line in ["SSH-2.0-witm\r\n", "bye\r\n"] {
            tcp.write_all(line.as_bytes()).unwrap();
            let n = tcp.read(&mut answer).unwrap();
            assert_eq!(&answer[..n], line.to_uppercase().as_bytes());
        }
    }
    // mitmdump writes the TCP flow when the tunnel closes; SIGINT lets it
    // finish the file.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status();
    let _ = child.0.wait();

    // witm reads the capture and writes it back as mitmproxy's format...
    let exported = dir.join("exported.flow");
    export(&capture, &exported);
    let report = compare("mitmdump-live", &capture, &exported);
    assert_eq!(report["flows"], serde_json::json!([5, 5]), "{report}");
    assert_eq!(report["differences"], serde_json::json!({}), "{report}");
    // ...and through its own format (`witm replay -w`) too.
    let again = dir.join("again.witm");
    let replayed = Command::new(crate::witm_binary())
        .args(["replay", "-r"])
        .arg(&capture)
        .arg("-w")
        .arg(&again)
        .output()
        .unwrap();
    assert!(replayed.status.success(), "{replayed:?}");
    let exported_again = dir.join("again.flow");
    export(&again, &exported_again);
    let report = compare(
        "mitmdump-live, through witm's format",
        &capture,
        &exported_again,
    );
    assert_eq!(report["flows"], serde_json::json!([5, 5]), "{report}");
    assert_eq!(report["differences"], serde_json::json!({}), "{report}");
}

/// mitmproxy reads a HAR (its `io.har` importer), prints each request,
/// and writes the flows as its own HAR (its `savehar` addon).
const HAR_BOTH_WAYS: &str = r#"
import json, sys
from mitmproxy.io import har
from mitmproxy.addons.savehar import SaveHar
with open(sys.argv[1]) as f:
    doc = json.load(f)
flows = [har.request_to_flow(e) for e in doc["log"]["entries"]]
for f in flows:
    print(f.request.method, f.request.path, f.response.status_code, repr(f.request.content))
with open(sys.argv[2], "w") as out:
    json.dump(SaveHar().make_har(flows), out)
"#;

/// Each request of a capture as mitmproxy reads it.
const REQUESTS: &str = r#"
import sys
from mitmproxy import io
with open(sys.argv[1], "rb") as f:
    for flow in io.FlowReader(f).stream():
        print(flow.request.method, flow.request.path, flow.response.status_code, repr(flow.request.content))
"#;

#[test]
fn har_goes_from_witm_to_mitmproxy_and_back_with_binary_bodies() {
    let origin = witm_test_support::Origin::start();
    let dir = crate::sandbox::scratch("har-both-ways");
    let saved = dir.join("capture.witm");
    let body = dir.join("body.bin");
    std::fs::write(&body, b"\x00\xff\xfe binary \x80 caf\xc3\xa9").unwrap();
    let mut witm = crate::start_with_args(&[], &["-w", saved.to_str().unwrap()]);
    let proxy = format!("http://127.0.0.1:{}", witm.port);
    let upload = format!("http://{}/upload", origin.address);
    let data = format!("@{}", body.display());
    witm_test_support::curl(
        &proxy,
        &[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &data,
            &upload,
        ],
    );
    witm_test_support::curl(&proxy, &[&format!("http://{}/json", origin.address)]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    witm.stop();

    let witm_har = dir.join("witm.har");
    let exported = Command::new(witm_binary())
        .args(["export", "--har", "-r"])
        .arg(&saved)
        .arg("-w")
        .arg(&witm_har)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    let mitm_har = dir.join("mitmproxy.har");
    let read = mitmproxy_python(HAR_BOTH_WAYS, &[&witm_har, &mitm_har]);
    let expected = [
        r"POST /upload 200 b'\x00\xff\xfe binary \x80 caf\xc3\xa9'",
        "GET /json 200 b''",
    ];
    assert_eq!(
        read.lines().collect::<Vec<_>>(),
        expected,
        "mitmproxy reads witm's HAR"
    );

    // And witm reads mitmproxy's HAR (its binary body as `\udcXX` text).
    let back = dir.join("back.flow");
    export(&mitm_har, &back);
    let read = mitmproxy_python(REQUESTS, &[&back]);
    assert_eq!(
        read.lines().collect::<Vec<_>>(),
        expected,
        "witm reads mitmproxy's HAR"
    );
}
