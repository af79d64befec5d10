//! Flows in one line, for tests and benchmarks (mitmproxy's `tflow`):
//! `tflow("http://example.com/a")` is a GET with a Host header,
//! `with_response(tflow(..), 200, "body")` adds a response, `with_error`
//! an error, `tclient()` is a client connection.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::{ClientConn, ErrorKind, Flow, FlowError, Headers, Request, Response};

/// A client connection from 127.0.0.1:50000, as the proxy makes one.
pub fn tclient() -> Arc<ClientConn> {
    Arc::new(ClientConn::new(SocketAddr::from(([127, 0, 0, 1], 50000))))
}

/// A GET of `url` with `Host` and `Accept` headers and no body.
pub fn tflow(url: &str) -> Flow {
    let mut request = Request {
        method: "GET".into(),
        scheme: "http".into(),
        http_version: "HTTP/1.1".into(),
        ..Request::default()
    };
    request
        .set_url(url)
        .unwrap_or_else(|e| panic!("tflow({url:?}): {e}"));
    let authority = request.authority();
    request.headers.set("Host", authority);
    request.headers.set("Accept", "*/*");
    Flow::new(Default::default(), request)
}

/// A request of `method` for `url` with `body`.
pub fn trequest(method: &str, url: &str, body: impl Into<bytes::Bytes>) -> Flow {
    let mut flow = tflow(url);
    flow.request.method = method.into();
    flow.request.body = crate::Body::Buffered(body.into());
    flow
}

/// `flow` with a response of `status` carrying `body` as text/plain.
pub fn with_response(mut flow: Flow, status: u16, body: impl Into<bytes::Bytes>) -> Flow {
    let body = body.into();
    flow.response = Some(Response::make(
        status,
        Headers::from_pairs([
            ("Content-Type", "text/plain".to_owned()),
            ("Content-Length", body.len().to_string()),
        ]),
        body,
    ));
    flow
}

/// `flow` failed with `message`.
pub fn with_error(mut flow: Flow, message: &str) -> Flow {
    flow.error = Some(FlowError::new(ErrorKind::Server, message));
    flow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_in_one_line() {
        let flow = with_response(tflow("http://example.com:8080/a?b=1"), 201, "made");
        assert_eq!(flow.request.host, "example.com");
        assert_eq!(flow.request.port, 8080);
        assert_eq!(flow.request.path, "/a?b=1");
        assert_eq!(
            flow.request.headers.get("host").as_deref(),
            Some("example.com:8080")
        );
        assert_eq!(flow.response.as_ref().unwrap().status, 201);
        assert!(with_error(flow, "gone").error.is_some());
        assert_eq!(tclient().address.port(), 50000);
    }
}
