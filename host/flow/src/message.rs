//! Requests and responses.

use bytes::Bytes;

use crate::encoding::{CodingError, ContentEncoding, decode_text, encode_text};
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

/// Why a message's content could not be read or replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentError {
    /// The body was streamed, not held.
    Streamed,
    /// The content coding failed.
    Coding(CodingError),
}

impl std::fmt::Display for ContentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentError::Streamed => f.write_str("the body was streamed, not held"),
            ContentError::Coding(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ContentError {}

/// Largest decoded content handed out: a small gzip body can inflate to
/// gigabytes (a decompression bomb).
pub const MAX_DECODED: usize = 256 << 20;

/// What requests and responses have in common: headers and a body, read and
/// written raw (as on the wire) or as content (decoded) and text.
pub trait HttpMessage {
    /// The headers.
    fn headers(&self) -> &Headers;
    /// The headers, to change.
    fn headers_mut(&mut self) -> &mut Headers;
    /// The body as on the wire.
    fn body(&self) -> &Body;
    /// The body, to change.
    fn body_mut(&mut self) -> &mut Body;
    /// The trailers, if the message had any.
    fn trailers(&self) -> Option<&Headers>;
    /// The trailers, to change (made empty if there were none).
    fn trailers_mut(&mut self) -> &mut Headers;

    /// The body decoded from its `content-encoding`.
    fn content(&self) -> Result<Vec<u8>, ContentError> {
        self.content_until(MAX_DECODED, &|| false)
    }

    /// As [`content`](Self::content), with a smaller `limit` and a `stop`
    /// asked between chunks (see [`ContentEncoding::decode_until`]).
    fn content_until(
        &self,
        limit: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<u8>, ContentError> {
        let raw = self.body().bytes().ok_or(ContentError::Streamed)?;
        self.coding()?
            .decode_until(raw, limit.min(MAX_DECODED), stop)
            .map_err(ContentError::Coding)
    }

    /// The message's `content-encoding`.
    fn coding(&self) -> Result<ContentEncoding, ContentError> {
        ContentEncoding::from_header(self.headers().get("content-encoding").as_deref())
            .map_err(ContentError::Coding)
    }

    /// Replaces the content: it is encoded in the message's current
    /// `content-encoding` and `content-length` follows.
    fn set_content(&mut self, content: &[u8]) -> Result<(), ContentError> {
        let encoded = self.encode_content(content, &|| false)?;
        self.set_encoded(encoded)
    }

    /// `content` encoded in the message's `content-encoding`, `stop` asked
    /// between chunks; the message is not changed.
    fn encode_content(
        &self,
        content: &[u8],
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<u8>, ContentError> {
        if self.body() == &Body::Streamed {
            return Err(ContentError::Streamed);
        }
        self.coding()?
            .encode_until(content, stop)
            .map_err(ContentError::Coding)
    }

    /// Puts an already encoded body in place; `content-length` follows.
    fn set_encoded(&mut self, encoded: Vec<u8>) -> Result<(), ContentError> {
        if self.body() == &Body::Streamed {
            return Err(ContentError::Streamed);
        }
        if self.headers().contains("content-length") {
            self.headers_mut()
                .set("content-length", encoded.len().to_string());
        }
        *self.body_mut() = Body::Buffered(Bytes::from(encoded));
        Ok(())
    }

    /// The content as text, in the charset of `content-type`.
    fn text(&self) -> Result<String, ContentError> {
        let content = self.content()?;
        Ok(self.decode_text(&content))
    }

    /// `content` as text in the charset of `content-type`.
    fn decode_text(&self, content: &[u8]) -> String {
        decode_text(content, self.headers().get("content-type").as_deref())
    }

    /// `text` as bytes in the charset of `content-type`.
    fn encode_text(&self, text: &str) -> Vec<u8> {
        encode_text(text, self.headers().get("content-type").as_deref())
    }

    /// Replaces the content with `text`, in the charset of `content-type`.
    fn set_text(&mut self, text: &str) -> Result<(), ContentError> {
        let bytes = self.encode_text(text);
        self.set_content(&bytes)
    }

    /// What the host holds for this message (headers and body), for memory
    /// budgets. A body shared with another message counts in full.
    fn held_bytes(&self) -> usize {
        self.headers().held_bytes() + self.body().bytes().map_or(0, |b| b.len())
    }
}

macro_rules! http_message {
    ($type:ty) => {
        impl HttpMessage for $type {
            fn headers(&self) -> &Headers {
                &self.headers
            }
            fn headers_mut(&mut self) -> &mut Headers {
                &mut self.headers
            }
            fn body(&self) -> &Body {
                &self.body
            }
            fn body_mut(&mut self) -> &mut Body {
                &mut self.body
            }
            fn trailers(&self) -> Option<&Headers> {
                self.trailers.as_ref()
            }
            fn trailers_mut(&mut self) -> &mut Headers {
                self.trailers.get_or_insert_default()
            }
        }
    };
}

http_message!(Request);
http_message!(Response);

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
    /// The fields sent after the body (HTTP/1.1 chunked, HTTP/2), kept
    /// when the body is held; `None` when there were none (mitmproxy's
    /// `request.trailers`).
    pub trailers: Option<Headers>,
    /// When the request was received, ms since the Unix epoch.
    pub timestamp_start: u64,
    /// When its last byte arrived, once its body was read whole; `None`
    /// when it was streamed or is not known.
    pub timestamp_end: Option<u64>,
    /// Set in `request-headers`: stream the body to the server instead of
    /// holding it for the `request` event.
    pub stream: bool,
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
            trailers: None,
            timestamp_start: 0,
            timestamp_end: None,
            stream: false,
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

/// A number's decimal digits, written without `fmt`, whose machinery cost
/// ~200 instructions a number, paid per request where a URL, an authority,
/// a server's address or a `content-length` is written or compared.
#[derive(Clone, Copy, Debug)]
pub struct Digits {
    digits: [u8; 20],
    from: usize,
}

impl Digits {
    /// The digits of `number`, no leading zero (as `fmt` writes them).
    #[inline]
    pub fn new(number: u64) -> Self {
        let (mut digits, mut from, mut rest) = ([b'0'; 20], 20, number);
        loop {
            from -= 1;
            digits[from] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                return Digits { digits, from };
            }
        }
    }

    /// As bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.from..]
    }

    /// As text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // ASCII digits only.
        std::str::from_utf8(&self.digits[self.from..]).unwrap_or_default()
    }
}

/// [`write_authority`] into a new string.
pub fn authority_of(scheme: &str, host: &str, port: u16) -> String {
    let mut authority = String::with_capacity(host.len() + 8);
    write_authority(&mut authority, scheme, host, port);
    authority
}

/// `scheme://authority/path`, written into one string of the right size
/// ([`Request::url`], and the proxy's for a request without a flow).
pub fn url_of(scheme: &str, host: &str, port: u16, path: &str) -> String {
    let mut url = String::with_capacity(scheme.len() + host.len() + path.len() + 11);
    url.push_str(scheme);
    url.push_str("://");
    write_authority(&mut url, scheme, host, port);
    url.push_str(path);
    url
}

/// Appends "host" or "host:port" to `out` when the port is not the
/// scheme's default; IPv6 addresses get their brackets
/// ([`Request::authority`], written in place, without the allocations of
/// `format!`).
pub fn write_authority(out: &mut String, scheme: &str, host: &str, port: u16) {
    if host.contains(':') {
        out.push('[');
        out.push_str(host);
        out.push(']');
    } else {
        out.push_str(host);
    }
    if port != default_port(scheme) {
        out.push(':');
        out.push_str(Digits::new(port.into()).as_str());
    }
}

impl Request {
    /// "host" or "host:port" when the port is not the scheme's default;
    /// IPv6 addresses get their brackets.
    pub fn authority(&self) -> String {
        authority_of(&self.scheme, &self.host, self.port)
    }

    /// The full URL.
    pub fn url(&self) -> String {
        url_of(&self.scheme, &self.host, self.port, &self.path)
    }

    /// The query string's (name, value) pairs, decoded, in order; a name
    /// may repeat.
    pub fn query(&self) -> Vec<(String, String)> {
        match self.path.split_once('?') {
            Some((_, query)) => form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            None => Vec::new(),
        }
    }

    /// Replaces the query string with `pairs` (none: no `?`).
    pub fn set_query(&mut self, pairs: &[(String, String)]) {
        let path = self
            .path
            .split_once('?')
            .map_or(self.path.as_str(), |(p, _)| p)
            .to_owned();
        self.path = if pairs.is_empty() {
            path
        } else {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            format!("{path}?{query}")
        };
    }

    /// The cookies the request sends, as (name, value), from every `cookie` header.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers
            .get_all("cookie")
            .flat_map(|v| {
                String::from_utf8_lossy(v)
                    .split(';')
                    .filter_map(|pair| {
                        let (name, value) = pair.split_once('=')?;
                        Some((name.trim().to_owned(), value.trim().to_owned()))
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
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
    /// The fields sent after the body (gRPC's `grpc-status`), kept when the
    /// body is held; `None` when there were none (mitmproxy's
    /// `response.trailers`).
    pub trailers: Option<Headers>,
    /// When the response started to arrive (or was made), ms since the Unix epoch.
    pub timestamp_start: u64,
    /// When its last byte arrived, once its body was read whole; `None`
    /// when it was streamed or is not known.
    pub timestamp_end: Option<u64>,
    /// Set in `response-headers`: stream the body to the client instead of
    /// holding it for the `response` event.
    pub stream: bool,
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
            trailers: None,
            timestamp_start: crate::now_ms(),
            timestamp_end: Some(crate::now_ms()),
            stream: false,
        }
    }
}

/// A cookie a response sets (`set-cookie`), with its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetCookie {
    /// The cookie's name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Attributes in order, e.g. ("Path", "/"), ("HttpOnly", "").
    pub attributes: Vec<(String, String)>,
}

impl Response {
    /// The cookies the response sets, one per `set-cookie` header.
    pub fn cookies(&self) -> Vec<SetCookie> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| {
                let text = String::from_utf8_lossy(v);
                let mut parts = text.split(';');
                let (name, value) = parts.next()?.split_once('=')?;
                Some(SetCookie {
                    name: name.trim().to_owned(),
                    value: value.trim().to_owned(),
                    attributes: parts
                        .map(|attribute| match attribute.split_once('=') {
                            Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
                            None => (attribute.trim().to_owned(), String::new()),
                        })
                        .filter(|(n, _)| !n.is_empty())
                        .collect(),
                })
            })
            .collect()
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
    fn every_port_and_the_edges_of_u64_are_written_as_fmt_writes_them() {
        for port in 0..=u16::MAX {
            assert_eq!(Digits::new(port.into()).as_str(), port.to_string());
        }
        for number in [u64::MAX, u64::MAX - 1, 10_000_000_000, 99_999, 100_000] {
            assert_eq!(Digits::new(number).as_str(), number.to_string());
        }
    }

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

    #[test]
    fn query_is_multi_valued_and_round_trips() {
        let mut r = Request {
            path: "/s?q=a+b&tag=1&tag=2".into(),
            ..Request::default()
        };
        assert_eq!(
            r.query(),
            [
                ("q".into(), "a b".into()),
                ("tag".into(), "1".into()),
                ("tag".into(), "2".into())
            ]
        );
        r.set_query(&[("x".into(), "1&2".into())]);
        assert_eq!(r.path, "/s?x=1%262");
        r.set_query(&[]);
        assert_eq!(r.path, "/s");
    }

    #[test]
    fn content_is_decoded_and_re_encoded() {
        let gz = crate::encoding::ContentEncoding::Gzip
            .encode(b"hello world")
            .unwrap();
        let mut response = Response::make(
            200,
            Headers::from_pairs([
                ("Content-Encoding", "gzip"),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", "99"),
            ]),
            gz,
        );
        assert_eq!(response.text().unwrap(), "hello world");
        response.set_text("hello witm").unwrap();
        let raw = response.body.bytes().unwrap().clone();
        assert_eq!(
            response.headers.get("content-length"),
            Some(raw.len().to_string())
        );
        assert_ne!(&raw[..], b"hello witm");
        assert_eq!(response.content().unwrap(), b"hello witm");
    }

    #[test]
    fn cookies_are_read_from_both_sides() {
        let request = Request {
            headers: Headers::from_pairs([("Cookie", "a=1; b=2"), ("cookie", "c=3")]),
            ..Request::default()
        };
        assert_eq!(request.cookies().len(), 3);
        let response = Response::make(
            200,
            Headers::from_pairs([("Set-Cookie", "id=x; Path=/; HttpOnly")]),
            Bytes::new(),
        );
        let cookie = &response.cookies()[0];
        assert_eq!((cookie.name.as_str(), cookie.value.as_str()), ("id", "x"));
        assert_eq!(
            cookie.attributes,
            [
                ("Path".into(), "/".into()),
                ("HttpOnly".into(), String::new())
            ]
        );
    }
}
