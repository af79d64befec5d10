//! The real curl, as clients use it.

use std::process::Command;

/// What curl got back (the last response, for several URLs on one command).
#[derive(Debug)]
pub struct CurlResponse {
    /// Status code of the last response.
    pub status: u16,
    /// Headers of the last response, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The last response's head as it came (names in their case, in order;
    /// [`crate::field_names`] reads them).
    pub head: String,
    /// Bodies of all responses, concatenated.
    pub body: String,
}

impl CurlResponse {
    /// Every value of header `name`.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Runs `curl -sS -x PROXY ARGS…` and parses the last response head
/// (written with `-D`) and the bodies. Panics if curl itself fails.
pub fn curl(proxy: &str, args: &[&str]) -> CurlResponse {
    let head_file = tempfile_path("curl-head");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-x", proxy, "-D"])
        .arg(&head_file)
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let heads = std::fs::read_to_string(&head_file).unwrap_or_default();
    let _ = std::fs::remove_file(&head_file);
    let last = heads
        .split("\r\n\r\n")
        .filter(|h| h.starts_with("HTTP/"))
        .last()
        .unwrap_or("");
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    CurlResponse {
        status,
        headers,
        head: last.to_owned(),
        body: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

fn tempfile_path(prefix: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "witm-{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}
