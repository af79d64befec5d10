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
    out["error.msg"] = repr(f.error and f.error.msg)
    conn("client_conn.", f.client_conn, ["peername", "sni", "alpn", "tls"], out)
    conn("server_conn.", f.server_conn, ["address", "peername", "sni", "alpn", "tls"], out)
    return out

def same(key, a, b):
    # witm keeps times in milliseconds.
    if key.endswith(("timestamp_start", "timestamp_end")) and a != "None" != b:
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
    // What witm does not record (each named in the README's Choices): when
    // a message ended, and the address a named server resolved to.
    let known = [
        "request.timestamp_end",
        "response.timestamp_end",
        "server_conn.peername",
    ];
    let differing: Vec<&String> = report["differences"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    assert!(
        differing.is_empty(),
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

    let python = tools_python(&[MITMPROXY]);
    let listed = Command::new(python)
        .args(["-c", LIST])
        .arg(&capture)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        format!(
            "GET {} 200  newheader=foo\nPOST {} 200 a=1 newheader=foo\n",
            origin.url("/page"),
            origin.url("/post")
        )
    );
}

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
