//! The case of HTTP/1 header names on the wire: kept as it came by default,
//! through a proxy with no plugin (hyper's record of it goes with each
//! message); lower-case with `--lowercase-header-names`, in both
//! directions, while a recording keeps the case as it came.

use witm_store::FlowFile;
use witm_test_support::{RawOrigin, curl, field_names, target_dir};

use crate::start_with_args;

/// curl through `proxy` to `origin`, with request fields in mixed case:
/// the response's head as it came.
fn through(proxy: &str, origin: &RawOrigin) -> String {
    let url = format!("http://{}/case", origin.address);
    let response = curl(
        proxy,
        &["-H", "X-Custom-Header: a", "-H", "Another-ONE: b", &url],
    );
    assert_eq!(response.status, 200, "{}", response.head);
    response.head
}

#[test]
fn names_keep_their_case_through_a_proxy_with_no_plugin() {
    let origin = RawOrigin::start();
    let witm = start_with_args(&[], &[]);
    let response = through(&witm.proxy_url(), &origin);
    let heads = origin.heads();
    let request = field_names(&heads[0]);
    for name in ["X-Custom-Header", "Another-ONE", "Host"] {
        assert!(request.contains(&name), "{request:?}");
    }
    let response = field_names(&response);
    for name in ["X-Mixed-Case", "zz-last-lower", "Another-Header"] {
        assert!(response.contains(&name), "{response:?}");
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
    let heads = origin.heads();
    let request = field_names(&heads[0]);
    for name in ["x-custom-header", "another-one", "host"] {
        assert!(request.contains(&name), "{request:?}");
    }
    assert!(
        request.iter().all(|n| *n == n.to_ascii_lowercase()),
        "{request:?}"
    );
    let response = field_names(&response);
    for name in ["x-mixed-case", "another-header"] {
        assert!(response.contains(&name), "{response:?}");
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
