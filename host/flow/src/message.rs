//! Requests and responses.

use bytes::Bytes;

use crate::headers::Headers;

/// A message body as the flow holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// The whole body, as on the wire (still content-encoded).
    Buffered(Bytes),
    /// The body was streamed from one side to the other without being held,
    /// because no subscribed event needed it.
    Streamed,
}

impl Default for Body {
    fn default() -> Self {
        Body::Buffered(Bytes::new())
    }
}

impl Body {
    /// The bytes, when the body was buffered.
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            Body::Buffered(b) => Some(b),
            Body::Streamed => None,
        }
    }
}

/// An HTTP request (mitmproxy's `Request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// "GET", "POST", …
    pub method: String,
    /// "http" or "https".
    pub scheme: String,
    /// The host the request goes to.
    pub host: String,
    /// The port the request goes to.
    pub port: u16,
    /// Path and query, e.g. "/a?b=c".
    pub path: String,
    /// "HTTP/1.1", "HTTP/2.0", …
    pub http_version: String,
    /// The headers, in wire order.
    pub headers: Headers,
    /// The body.
    pub body: Body,
    /// When the request was received, ms since the Unix epoch.
    pub timestamp_start: u64,
}

/// An empty request (no method, host or path); allocates nothing, so a flow
/// can be taken out of its place cheaply with `std::mem::take`.
impl Default for Request {
    fn default() -> Self {
        Self {
            method: String::new(),
            scheme: String::new(),
            host: String::new(),
            port: 0,
            path: String::new(),
            http_version: String::new(),
            headers: Headers::new(),
            body: Body::default(),
            timestamp_start: 0,
        }
    }
}

/// The port a scheme uses when a URL names none.
pub fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

impl Request {
    /// "host" or "host:port" when the port is not the scheme's default;
    /// IPv6 addresses get their brackets.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port(&self.scheme) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The full URL.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority(), self.path)
    }

    /// Re-targets the request at `url`: scheme, host, port and path follow it,
    /// and a `host` header, if present, is updated to match.
    pub fn set_url(&mut self, url: &str) -> Result<(), String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            Some(other) => return Err(format!("unsupported scheme {other:?} in {url:?}")),
            None => return Err(format!("URL {url:?} has no scheme")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("URL {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        self.port = uri.port_u16().unwrap_or_else(|| default_port(&scheme));
        self.scheme = scheme;
        self.host = host;
        self.path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        if self.headers.contains("host") {
            let authority = self.authority();
            self.headers.set("host", authority);
        }
        Ok(())
    }
}

/// An HTTP response (mitmproxy's `Response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase as received (HTTP/1) or the canonical one.
    pub reason: String,
    /// "HTTP/1.1", "HTTP/2.0", …
    pub http_version: String,
    /// The headers, in wire order.
    pub headers: Headers,
    /// The body.
    pub body: Body,
    /// When the response started to arrive (or was made), ms since the Unix epoch.
    pub timestamp_start: u64,
}

impl Response {
    /// Makes a response from parts (mitmproxy's `Response.make`).
    pub fn make(status: u16, headers: Headers, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            reason: canonical_reason(status).to_owned(),
            http_version: "HTTP/1.1".into(),
            headers,
            body: Body::Buffered(body.into()),
            timestamp_start: crate::now_ms(),
        }
    }
}

/// The standard reason phrase of a status code, or "" for unknown codes.
pub fn canonical_reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trip_and_retarget() {
        let mut r = Request {
            method: "GET".into(),
            scheme: "http".into(),
            port: 80,
            host: "example.com".into(),
            path: "/a?b=1".into(),
            headers: Headers::from_pairs([("Host", "example.com")]),
            ..Request::default()
        };
        assert_eq!(r.url(), "http://example.com/a?b=1");
        r.set_url("https://other.test:8443").unwrap();
        assert_eq!(
            (r.scheme.as_str(), r.host.as_str(), r.port, r.path.as_str()),
            ("https", "other.test", 8443, "/")
        );
        assert_eq!(r.headers.get("host").as_deref(), Some("other.test:8443"));
        r.set_url("http://[::1]:81/x").unwrap();
        assert_eq!(r.url(), "http://[::1]:81/x");
        assert!(r.set_url("ftp://x/").is_err());
        assert!(r.set_url("/relative").is_err());
    }
}
