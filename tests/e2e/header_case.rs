//! The case of HTTP/1 header names on the wire: kept as it came by default,
//! through a proxy with no plugin (hyper's record of it goes with each
//! message); lower-case with `--lowercase-header-names`, in both
//! directions, while a recording keeps the case as it came.

use std::process::Command;

use witm_store::FlowFile;
use witm_test_support::{RawOrigin, target_dir};

use crate::start_with_args;

/// The request's fields the client sends, in mixed case.
const SENT: [&str; 2] = ["X-Custom-Header: a", "Another-ONE: b"];

/// The names of a head's fields (its first line left out).
fn names(head: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, _)| n.to_owned())
        .collect()
}

/// curl through `proxy` to `origin` with [`SENT`]: the response head.
fn through(proxy: &str, origin: &RawOrigin) -> String {
    let mut command = Command::new("curl");
    command.args(["-sS", "-x", proxy, "-D", "-", "-o", "/dev/null"]);
    for field in SENT {
        command.args(["-H", field]);
    }
    let output = command
        .arg(format!("http://{}/case", origin.address))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn names_keep_their_case_through_a_proxy_with_no_plugin() {
    let origin = RawOrigin::start();
    let witm = start_with_args(&[], &[]);
    let response = through(&witm.proxy_url(), &origin);
    let request = names(&origin.heads()[0]);
    for name in ["X-Custom-Header", "Another-ONE", "Host"] {
        assert!(request.iter().any(|n| n == name), "{request:?}");
    }
    let response = names(&response);
    for name in ["X-Mixed-Case", "zz-last-lower", "Another-Header"] {
        assert!(response.iter().any(|n| n == name), "{response:?}");
    }
}

#[test]
fn lowercase_header_names_sends_every_name_lower_case_and_records_them_as_they_came() {
    let origin = RawOrigin::start();
    let file = target_dir().join("e2e-header-case.witm");
    let _ = std::fs::remove_file(&file);
    let mut witm = start_with_args(
        &[],
        &["--lowercase-header-names", "-w", file.to_str().unwrap()],
    );
    let response = through(&witm.proxy_url(), &origin);
    witm.stop();
    let request = names(&origin.heads()[0]);
    for name in ["x-custom-header", "another-one", "host"] {
        assert!(request.iter().any(|n| n == name), "{request:?}");
    }
    assert!(
        request.iter().all(|n| *n == n.to_ascii_lowercase()),
        "{request:?}"
    );
    let response = names(&response);
    for name in ["x-mixed-case", "another-header"] {
        assert!(response.iter().any(|n| n == name), "{response:?}");
    }
    assert!(
        response.iter().all(|n| *n == n.to_ascii_lowercase()),
        "{response:?}"
    );
    // The recording is of what came, not of what went.
    let flows = FlowFile::open(&file)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(flows.len(), 1);
    let recorded: Vec<&str> = flows[0].request.headers.iter().map(|(n, _)| n).collect();
    assert!(recorded.contains(&"X-Custom-Header"), "{recorded:?}");
    let recorded: Vec<&str> = flows[0]
        .response
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .map(|(n, _)| n)
        .collect();
    assert!(recorded.contains(&"X-Mixed-Case"), "{recorded:?}");
}
