//! Between hyper's messages and the flow's.

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_LENGTH, HOST, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, Method, Version};
use witm_flow::headers::{MAX_FIELDS, MAX_HEADER_BYTES};
use witm_flow::message::Digits;
use witm_flow::{Body, Headers};

use crate::wire_heads::{RawHead, WireHeaders};

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1): a
/// proxy consumes them and never forwards them. (`Trailer`, which names the
/// trailer fields, is end to end: RFC 9110 §6.6.2; hyper sends HTTP/1.1
/// trailers only when it names them.)
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// [`HOP_BY_HOP`] as `http`'s names, compared without parsing a name. A
/// `static`, not a `const`: each use of a `const` array makes the array
/// and drops its names again (~400 instructions per response).
static HOP_BY_HOP_NAMES: [HeaderName; 7] = [
    CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHORIZATION,
];

/// "HTTP/1.1" and friends, as mitmproxy writes them.
pub fn version_text(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The headers to put on the wire for a message of the flow: the flow's
/// headers minus hop-by-hop ones, with `content-length` made right for a
/// buffered body.
///
/// `body_has_no_content` is true for responses that carry no body whatever
/// their headers say (to HEAD, 204, 304, 1xx): their `content-length` is
/// left alone. A held body with `trailers` goes without a length (HTTP/1.1
/// sends trailers only after a chunked body) and with a `Trailer` field
/// naming them all (hyper sends only those named).
pub fn outgoing_headers(
    headers: &Headers,
    body: &Body,
    trailers: Option<&Headers>,
    body_has_no_content: bool,
) -> HeaderMap {
    let trailed = !body_has_no_content
        && matches!(body, Body::Buffered(_))
        && trailers.is_some_and(|t| !t.is_empty());
    let length_is_ours =
        !trailed && matches!((body, body_has_no_content), (Body::Buffered(_), false));
    // RFC 9112 §6.3: with Transfer-Encoding, Content-Length is not the
    // message's length, and an intermediary forwarding it must drop it (the
    // streamed body goes on chunked; a held one gets its real length).
    let chunked = headers.get_all(TRANSFER_ENCODING.as_str()).next().is_some();
    let left_out = LeftOut {
        named_in_connection: named_in_connection(headers.get_all(CONNECTION.as_str())),
        transfer_encoding: length_is_ours,
        content_length: chunked || trailed,
    };
    let (mut map, refused) = headers.to_header_map(|name| left_out.leaves_out(name));
    warn_refused(&refused);
    // An empty body that the message did not frame stays unframed: a
    // bodyless GET gets no `content-length: 0` on its way through.
    let framed = || {
        headers.get_all(CONTENT_LENGTH.as_str()).next().is_some()
            || headers.get_all(TRANSFER_ENCODING.as_str()).next().is_some()
    };
    if headers
        .get_all(TE.as_str())
        .any(|v| v.eq_ignore_ascii_case(b"trailers"))
    {
        keep_te_trailers(&mut map);
    }
    if let Some(trailers) = trailers.filter(|_| trailed) {
        name_trailers(&mut map, trailers);
    }
    if let (Body::Buffered(bytes), true) = (body, length_is_ours)
        && (!bytes.is_empty() || framed())
    {
        // Replaces the value in place: the field keeps its position.
        map.insert(CONTENT_LENGTH, bytes.len().into());
    }
    map
}

/// What [`outgoing_headers`] makes of a message whose fields are those of
/// its head as hyper parsed it (`parsed`) followed by `appended` (a
/// plugin's additions: [`Headers::appended_to_received`]), made from
/// hyper's map instead of converting every field of the flow's copy back.
/// `None` where that would not give the same: the caller then converts the
/// flow's copy.
///
/// The same because: what it leaves out of the parsed fields is what
/// [`forwarded_headers`] leaves out, with no trailers to send; the appended
/// fields are [`appendable`]; `content-length` is made right for a held
/// body as [`outgoing_headers`] does.
fn received_headers<'a>(
    parsed: HeaderMap,
    appended: impl Iterator<Item = (&'a str, Bytes)> + Clone,
    body: &Body,
    trailers: Option<&Headers>,
    body_has_no_content: bool,
) -> Option<HeaderMap> {
    if trailers.is_some_and(|t| !t.is_empty()) {
        return None;
    }
    let forwarded = forward(parsed);
    if appended.clone().next().is_some() && !forwarded.takes(appended.clone()) {
        return None;
    }
    let mut map = forwarded.map;
    for (name, value) in appended {
        let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = http::HeaderValue::from_maybe_shared(value).ok()?;
        map.try_append(name, value).ok()?;
    }
    if let (Body::Buffered(held), false) = (body, body_has_no_content)
        && (!held.is_empty() || forwarded.framed)
        && !has_length(&map, held.len())
    {
        map.insert(CONTENT_LENGTH, held.len().into());
    }
    Some(map)
}

/// True when `map`'s one `content-length` is `length` as
/// `HeaderValue::from(length)` writes it: inserting it again would change
/// nothing (the server's length, for a body a plugin left alone).
fn has_length(map: &HeaderMap, length: usize) -> bool {
    let mut values = map.get_all(CONTENT_LENGTH).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    value.as_bytes() == Digits::new(length as u64).as_bytes()
}

/// A message's fields as [`forwarded_headers`] leaves them, and what it
/// learnt of them as they came, which [`received_headers`] reads again
/// instead of looking it up a second time.
struct Forwarded {
    map: HeaderMap,
    /// Fields, and bytes of names and values, as they came (bytes only
    /// counted up to [`MAX_FIELDS`] fields: past it, `usize::MAX`).
    fields: usize,
    bytes: usize,
    /// It had `content-length` or `transfer-encoding`.
    framed: bool,
    /// It had a `te` field.
    te: bool,
    /// What an appended field may not be: the flow's conversion leaves it
    /// out (hop-by-hop, named in `Connection`, or framing).
    left_out: LeftOut,
}

impl Forwarded {
    /// True when `appended` can follow the fields as the flow's copy
    /// would send them: none of them frames the message or is hop-by-hop,
    /// all fit the limits, and no `te: trailers` is to go after them
    /// (`keep_te_trailers` puts it after every other field).
    fn takes<'a>(&self, appended: impl Iterator<Item = (&'a str, Bytes)>) -> bool {
        if self.te {
            return false;
        }
        // What the flow's conversion leaves out (the framing included), and
        // `Trailer`, which it rewrites.
        let (mut count, mut bytes) = (self.fields, self.bytes);
        for (name, value) in appended {
            if self.left_out.leaves_out(name) || name.eq_ignore_ascii_case(TRAILER.as_str()) {
                return false;
            }
            count += 1;
            bytes = bytes.saturating_add(name.len() + value.len());
        }
        count <= MAX_FIELDS && bytes <= MAX_HEADER_BYTES
    }
}

/// The fields a message loses on its way through (besides hop-by-hop
/// ones, which it always loses).
struct LeftOut {
    /// The names its `Connection` field lists (hop-by-hop too).
    named_in_connection: Vec<String>,
    /// `Transfer-Encoding` (a held body goes with its length).
    transfer_encoding: bool,
    /// `Content-Length` (with `Transfer-Encoding`, or a held body with
    /// trailers, which goes chunked).
    content_length: bool,
}

impl LeftOut {
    fn leaves_out(&self, name: &str) -> bool {
        is_hop_by_hop(name.as_bytes())
            || self.listed_in_connection(name)
            || (self.transfer_encoding && name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()))
            || (self.content_length && name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()))
    }

    /// [`LeftOut::leaves_out`] for a name `http` parsed, compared as a
    /// parsed name where it can be (this runs for every forwarded field).
    fn leaves_out_name(&self, name: &HeaderName) -> bool {
        HOP_BY_HOP_NAMES.contains(name)
            || self.listed_in_connection(name.as_str())
            || (self.transfer_encoding && name == TRANSFER_ENCODING)
            || (self.content_length && name == CONTENT_LENGTH)
    }

    /// Whether the message's `Connection` lists `name`.
    fn listed_in_connection(&self, name: &str) -> bool {
        self.named_in_connection
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// The names listed in `Connection` values.
///
/// Hop-by-hop names are left out of the list: they go whether listed or
/// not ([`LeftOut::leaves_out`]), and the usual `Connection: keep-alive`
/// then costs no allocation per message.
///
/// Split as bytes: a hop-by-hop name (nginx's `keep-alive` on every
/// response) is told without making text of the value; any other name is
/// read as text (lossily, trimmed) as before.
fn named_in_connection<'a, V: AsRef<[u8]> + 'a>(values: impl Iterator<Item = V>) -> Vec<String> {
    let mut named = Vec::new();
    for value in values {
        for name in value.as_ref().split(|b| *b == b',') {
            if is_hop_by_hop(name.trim_ascii()) {
                continue;
            }
            let name = String::from_utf8_lossy(name);
            let name = name.trim();
            if !is_hop_by_hop(name.as_bytes()) {
                named.push(name.to_owned());
            }
        }
    }
    named
}

/// Whether `name` is one of [`HOP_BY_HOP`], in any case.
fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// Logs the fields left out because the wire would refuse them.
fn warn_refused(refused: &[String]) {
    if refused.is_empty() {
        return;
    }
    let shown: Vec<&str> = refused.iter().take(5).map(String::as_str).collect();
    tracing::warn!(
        "{} header fields not valid on the wire were dropped: {}{}",
        refused.len(),
        shown.join(", "),
        if refused.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    );
}

/// `te: trailers` is hop-by-hop, but says the client takes trailers —
/// gRPC servers refuse requests without it — so it goes on (the only
/// value HTTP/2 allows); any other TE stays behind.
fn keep_te_trailers(map: &mut HeaderMap) {
    map.insert(TE, http::HeaderValue::from_static("trailers"));
}

/// The headers to put on the wire for a message streamed through that no
/// flow holds (nothing subscribes to it, no flow line): hyper's own map of
/// the message, with what [`outgoing_headers`] leaves out of a streamed
/// body's message left out in the same way. The map is returned as it came
/// when nothing is to be left out (no copy), else rebuilt in its order (a
/// removal from a `HeaderMap` would move its last field into the hole).
///
/// Sent with the message's extensions (hyper's record of the names' case),
/// the fields go on the wire as [`outgoing_headers`] would send the flow's
/// copy of them: the same names in the same case, in the same order.
pub fn forwarded_headers(map: HeaderMap) -> HeaderMap {
    forward(map).map
}

/// [`forwarded_headers`], with what it learnt of the fields on its way.
#[inline]
fn forward(map: HeaderMap) -> Forwarded {
    let fields = map.len();
    let bytes = if fields <= MAX_FIELDS {
        map.iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum::<usize>()
    } else {
        usize::MAX
    };
    let fits = fields <= MAX_FIELDS && bytes <= MAX_HEADER_BYTES;
    // One pass over the few names, not a hashed look-up of each of nine.
    let (mut hop_by_hop, mut chunked, mut length) = (false, false, false);
    for name in map.keys() {
        hop_by_hop |= HOP_BY_HOP_NAMES.contains(name);
        chunked |= name == TRANSFER_ENCODING;
        length |= name == CONTENT_LENGTH;
    }
    let (map, named_in_connection, te) = if fits && !hop_by_hop && !(chunked && length) {
        // `Connection` and `TE` are hop-by-hop: with none, no name is
        // listed in one, and there is no `TE`.
        (map, Vec::new(), false)
    } else {
        let left_out = LeftOut {
            named_in_connection: named_in_connection(map.get_all(CONNECTION).iter()),
            transfer_encoding: false,
            content_length: chunked,
        };
        let te = map.get_all(TE);
        let te_trailers = te
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        let te = te.iter().next().is_some();
        let mut kept = if fits && map.len() == map.keys_len() {
            left_out_in_place(map, &left_out)
        } else {
            left_out_rebuilt(map, &left_out)
        };
        if te_trailers {
            keep_te_trailers(&mut kept);
        }
        (kept, left_out.named_in_connection, te)
    };
    Forwarded {
        map,
        fields,
        bytes,
        framed: chunked || length,
        te,
        left_out: LeftOut {
            named_in_connection,
            transfer_encoding: true,
            content_length: true,
        },
    }
}

/// `map` without what `left_out` leaves out, in its order, where every
/// name has one value (so a removal takes one field): the fields from the
/// first one left out on are taken off its end and the others put back.
/// Cheaper than a new map for the usual case, a server's `Connection:
/// keep-alive` a few fields from the end.
fn left_out_in_place(mut map: HeaderMap, left_out: &LeftOut) -> HeaderMap {
    let Some(first) = map.keys().position(|n| left_out.leaves_out_name(n)) else {
        return map;
    };
    let mut tail: Vec<(HeaderName, Option<http::HeaderValue>)> =
        map.keys().skip(first).map(|n| (n.clone(), None)).collect();
    // From the end: a map removes a field by moving its last one into the
    // hole, so the last goes with no other moved.
    for (name, value) in tail.iter_mut().rev() {
        *value = map.remove(&*name);
    }
    for (name, value) in tail {
        if let Some(value) = value.filter(|_| !left_out.leaves_out_name(&name)) {
            // Cannot fail: the map held it a moment ago.
            let _ = map.try_append(name, value);
        }
    }
    map
}

/// `map` without what `left_out` leaves out, copied into a new map in its
/// order, and bounded: fields past [`MAX_FIELDS`] or [`MAX_HEADER_BYTES`]
/// are dropped with a warning.
fn left_out_rebuilt(map: HeaderMap, left_out: &LeftOut) -> HeaderMap {
    let mut kept = HeaderMap::try_with_capacity(map.len().min(MAX_FIELDS)).unwrap_or_default();
    let mut refused = Vec::new();
    let mut bytes = 0;
    // Taken apart, not copied: `into_iter` names a field's name once, with
    // its first value.
    let mut current: Option<HeaderName> = None;
    for (name, value) in map {
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = current.as_ref().filter(|n| !left_out.leaves_out_name(n)) else {
            continue;
        };
        bytes += name.as_str().len() + value.len();
        if kept.len() >= MAX_FIELDS || bytes > MAX_HEADER_BYTES {
            refused.push(format!(
                "{name} (over {MAX_FIELDS} fields or {MAX_HEADER_BYTES} bytes)"
            ));
            continue;
        }
        if kept.try_append(name.clone(), value).is_err() {
            refused.push(name.as_str().to_owned());
        }
    }
    warn_refused(&refused);
    kept
}

/// Makes `Trailer` name every field of `trailers` (besides what it named):
/// hyper sends an HTTP/1.1 trailer only when `Trailer` names it, and a
/// plugin may have added one.
fn name_trailers(map: &mut HeaderMap, trailers: &Headers) {
    let mut names: Vec<String> = map
        .get_all(TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    for (name, _) in trailers.iter() {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_owned());
        }
    }
    if let Ok(value) = http::HeaderValue::from_str(&names.join(", ")) {
        map.insert(TRAILER, value);
    }
}

/// HTTP/2 names the server in `:authority` (the URI's) alone: nginx
/// refuses a request with a `host` beside it (400), so `host` goes. Where it
/// named another server than the URI (a virtual host a plugin set), it
/// becomes the `:authority`, as mitmproxy's HTTP/2 client makes one from
/// `host`; the connection stays the URI server's. A `host` that is no
/// authority, or carries user information, which `:authority` must not,
/// is dropped.
pub fn host_into_authority<B>(request: &mut http::Request<B>) {
    let Some(host) = request.headers_mut().remove(HOST) else {
        return;
    };
    if request.uri().authority().is_none()
        || host_names_the_uri(host.as_bytes(), request.uri())
        || host.as_bytes().contains(&b'@')
    {
        return;
    }
    let Ok(named) = http::uri::Authority::try_from(host.as_bytes()) else {
        return;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.authority = Some(named);
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

/// [`host_into_authority`] undone, for a request an HTTP/2 connection
/// closed on before it went out: it is sent again on a new connection,
/// which may be HTTP/1.1 and then needs `host`. `host` is made from the
/// `:authority` it carries (a virtual host, or the server's own name) and
/// the version is HTTP/1.1 again; the caller sets the URI back.
pub fn authority_into_host<B>(request: &mut http::Request<B>) {
    if request.version() != Version::HTTP_2 {
        return;
    }
    *request.version_mut() = Version::HTTP_11;
    if request.headers().contains_key(HOST) {
        return;
    }
    let Some(authority) = request.uri().authority() else {
        return;
    };
    let host = authority.as_str().rsplit('@').next().unwrap_or_default();
    if let Ok(value) = http::HeaderValue::from_str(host) {
        request.headers_mut().insert(HOST, value);
    }
}

/// Whether `host`, a `host` field's value, names the server of `uri`: the
/// same authority, the scheme's default port written or not on either side
/// (hyper_util writes `host` from a URI without it).
pub fn host_names_the_uri(host: &[u8], uri: &http::Uri) -> bool {
    let Some(authority) = uri.authority() else {
        return false;
    };
    let default_port: &[u8] = match uri.scheme_str() {
        Some("https") => b":443",
        Some("http") => b":80",
        _ => b"",
    };
    let without_default = |a: &'_ [u8]| -> usize {
        if !default_port.is_empty() && a.ends_with(default_port) {
            a.len() - default_port.len()
        } else {
            a.len()
        }
    };
    let named = authority.as_str().as_bytes();
    host[..without_default(host)].eq_ignore_ascii_case(&named[..without_default(named)])
}

/// True when a response to `method` with `status` has no body on the wire.
pub fn response_has_no_content(method: &str, status: u16) -> bool {
    method == Method::HEAD.as_str()
        || status == 204
        || status == 304
        || (100..200).contains(&status)
}

/// Media types of responses that never end by design, or only after a long
/// time: Server-Sent Events and motion-JPEG style `x-mixed-replace`.
const LIVE_STREAMS: [&str; 2] = ["text/event-stream", "multipart/x-mixed-replace"];

/// True when a response's `content-type` says it is a live stream, which
/// witm streams even to a `response` subscriber (held, its events would
/// arrive all at once at the end, or never).
///
/// Read as the values folded into one ([`Headers::get`]) up to its first
/// `;`, without folding them (this runs for every response a `response`
/// hook holds): a second value after a first without parameters makes
/// "a, b", no live type.
pub fn is_live_stream(headers: &Headers) -> bool {
    let mut values = headers.get_all("content-type");
    let Some(first) = values.next() else {
        return false;
    };
    let media = match first.iter().position(|b| *b == b';') {
        Some(end) => &first[..end],
        None if values.next().is_some() => return false,
        None => first,
    };
    let media = media.trim_ascii();
    LIVE_STREAMS
        .iter()
        .any(|live| media.eq_ignore_ascii_case(live.as_bytes()))
}

/// The flow's headers of a message hyper read: the fields as they were on
/// the wire when the connection's tap followed them (see
/// [`crate::wire_heads`]), else hyper's (names lower-cased, grouped).
pub fn incoming_headers(map: &HeaderMap, extensions: &mut http::Extensions) -> Headers {
    copy_of(map, extensions.remove::<WireHeaders>().map(|w| w.0))
}

/// [`incoming_headers`], from the wire's head if the tap has it.
fn copy_of(map: &HeaderMap, wire: Option<RawHead>) -> Headers {
    match wire {
        Some(head) => {
            let mut headers = head.into_headers();
            if headers.len() != map.len() {
                // Fields witm removed since the parse (the credentials)
                // stay out.
                headers.retain(|name| map.contains_key(name));
            }
            headers
        }
        None => Headers::from_header_map(map),
    }
}

/// hyper's parse of a message's fields (its map), kept beside the flow's
/// copy of them so that the message can go out from it while the copy is
/// as it came ([`outgoing_headers_from`]), not converted back field by
/// field.
pub struct ReceivedHead {
    map: HeaderMap,
    /// What the flow's copy was marked with ([`Headers::mark_received`]).
    head: usize,
}

/// The flow's copy of a message's fields (from the wire's head `wire` when
/// the tap followed it, as [`incoming_headers`]), marked as received, and
/// hyper's parse `map` kept beside it.
pub fn received(map: HeaderMap, wire: Option<RawHead>) -> (Headers, ReceivedHead) {
    let mut headers = copy_of(&map, wire);
    // Named by where the first name lives: a buffer only these fields
    // hold while that field is as it came (an empty list names nothing
    // that could differ).
    let head = headers.first_name_address();
    headers.mark_received(head);
    (headers, ReceivedHead { map, head })
}

/// [`outgoing_headers`] of a message of the flow, made from hyper's parse
/// of it (`received`) plus the fields appended since, while the flow's
/// copy of the others is as it came ([`received_headers`]); converted from
/// the flow's copy otherwise.
pub fn outgoing_headers_from(
    received: Option<ReceivedHead>,
    headers: &Headers,
    body: &Body,
    trailers: Option<&Headers>,
    body_has_no_content: bool,
) -> HeaderMap {
    received
        .and_then(|received| {
            let appended = headers.appended_to_received(received.head, received.map.len())?;
            received_headers(received.map, appended, body, trailers, body_has_no_content)
        })
        .unwrap_or_else(|| outgoing_headers(headers, body, trailers, body_has_no_content))
}

/// The bytes of a buffered body, empty for a streamed one.
pub fn buffered_bytes(body: &Body) -> Bytes {
    body.bytes().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_names_its_uri_with_or_without_the_default_port() {
        let uri = |u: &str| u.parse::<http::Uri>().unwrap();
        let names = |host: &str, u: &str| host_names_the_uri(host.as_bytes(), &uri(u));
        assert!(names("example.com", "https://example.com/a"));
        assert!(names("Example.COM", "https://example.com/a"));
        assert!(names("example.com", "https://example.com:443/a"));
        assert!(names("example.com:443", "https://example.com/a"));
        assert!(names("example.com:80", "http://example.com/a"));
        assert!(names("[::1]:8443", "https://[::1]:8443/a"));
        assert!(!names("example.com:443", "http://example.com/a"));
        assert!(!names("example.com:8443", "https://example.com/a"));
        assert!(!names("example.com", "https://example.com:8443/a"));
        assert!(!names("other.example", "https://example.com/a"));
        assert!(!names("example.com", "/a"));
    }

    #[test]
    fn a_request_unsent_over_http2_gets_its_host_back() {
        let request = |host: Option<&str>| {
            let mut builder = http::Request::builder().uri("https://example.com/a");
            if let Some(host) = host {
                builder = builder.header(HOST, host);
            }
            builder.body(()).unwrap()
        };
        for (sent, kept) in [
            (Some("example.com"), "example.com"),
            (Some("virtual.example:8443"), "virtual.example:8443"),
            (None, "example.com"),
        ] {
            let mut unsent = request(sent);
            *unsent.version_mut() = Version::HTTP_2;
            host_into_authority(&mut unsent);
            assert_eq!(unsent.headers().get(HOST), None);
            let retried_uri = unsent.uri().clone();
            authority_into_host(&mut unsent);
            assert_eq!(unsent.version(), Version::HTTP_11);
            assert_eq!(
                unsent.headers()[HOST],
                kept,
                "{sent:?} (sent to {retried_uri})"
            );
        }
        // An HTTP/1.1 request is left as it is.
        let mut http1 = request(None);
        authority_into_host(&mut http1);
        assert_eq!(http1.headers().get(HOST), None);
    }

    #[test]
    fn hop_by_hop_headers_are_not_forwarded() {
        let headers = Headers::from_pairs([
            ("Host", "a"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Proxy-Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("X-Kept", "2"),
        ]);
        let map = outgoing_headers(
            &headers,
            &Body::Buffered(Bytes::from_static(b"abc")),
            None,
            false,
        );
        let names: Vec<_> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "x-kept", "content-length"]);
        assert_eq!(map["content-length"], "3");
    }

    #[test]
    fn an_empty_unframed_body_gets_no_length_and_a_framed_one_does() {
        let get = Headers::from_pairs([("Host", "a")]);
        let map = outgoing_headers(&get, &Body::Buffered(Bytes::new()), None, false);
        assert!(map.get("content-length").is_none(), "{map:?}");
        let emptied = Headers::from_pairs([("Host", "a"), ("Content-Length", "5")]);
        let map = outgoing_headers(&emptied, &Body::Buffered(Bytes::new()), None, false);
        assert_eq!(map["content-length"], "0");
        let chunked = Headers::from_pairs([("Transfer-Encoding", "chunked")]);
        let map = outgoing_headers(&chunked, &Body::Buffered(Bytes::new()), None, false);
        assert_eq!(map["content-length"], "0");
    }

    #[test]
    fn content_length_beside_transfer_encoding_is_dropped() {
        let both = Headers::from_pairs([("Content-Length", "5"), ("Transfer-Encoding", "chunked")]);
        let streamed = outgoing_headers(&both, &Body::Streamed, None, false);
        assert!(streamed.get("content-length").is_none(), "{streamed:?}");
        let held = outgoing_headers(
            &both,
            &Body::Buffered(Bytes::from_static(b"0123456789")),
            None,
            false,
        );
        assert_eq!(held["content-length"], "10");
    }

    #[test]
    fn a_held_body_with_trailers_goes_unframed_with_a_trailer_field() {
        let headers = Headers::from_pairs([("Content-Length", "2"), ("content-type", "a")]);
        let trailers = Headers::from_pairs([("grpc-status", "0"), ("grpc-message", "")]);
        let body = Body::Buffered(Bytes::from_static(b"ok"));
        let map = outgoing_headers(&headers, &body, Some(&trailers), false);
        assert!(map.get("content-length").is_none(), "{map:?}");
        assert_eq!(map["trailer"], "grpc-status, grpc-message");
        let named = Headers::from_pairs([("Trailer", "grpc-status, x-gone")]);
        assert_eq!(
            outgoing_headers(&named, &body, Some(&trailers), false)["trailer"],
            "grpc-status, x-gone, grpc-message"
        );
        let none = Headers::new();
        let map = outgoing_headers(&headers, &body, Some(&none), false);
        assert_eq!(map["content-length"], "2");
        assert!(map.get("trailer").is_none());
    }

    #[test]
    fn te_trailers_goes_on_and_other_te_values_do_not() {
        let grpc = Headers::from_pairs([("TE", "trailers")]);
        assert_eq!(
            outgoing_headers(&grpc, &Body::Streamed, None, false)["te"],
            "trailers"
        );
        let other = Headers::from_pairs([("TE", "gzip, chunked")]);
        assert!(
            outgoing_headers(&other, &Body::Streamed, None, false)
                .get("te")
                .is_none()
        );
    }

    /// A map of `fields`, in order.
    fn map_of(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        map
    }

    /// A map's fields, in order, to compare two.
    fn pairs(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        map.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_message_without_a_flow_loses_what_the_flows_copy_loses() {
        let cases: [&[(&str, &str)]; 8] = [
            &[("host", "a"), ("accept", "*/*"), ("x-b", "1")],
            // Each name once (left out in place): nginx's head, and a
            // listed name before and after `Connection`.
            &[
                ("server", "nginx"),
                ("content-length", "52"),
                ("connection", "keep-alive"),
                ("etag", "\"1\""),
                ("accept-ranges", "bytes"),
            ],
            &[
                ("x-before", "1"),
                ("a", "1"),
                ("connection", "close, X-Before, x-after"),
                ("b", "2"),
                ("x-after", "2"),
                ("te", "trailers"),
                ("c", "3"),
            ],
            &[("keep-alive", "timeout=5"), ("x", "1"), ("upgrade", "h2c")],
            &[
                ("host", "a"),
                ("connection", "keep-alive, X-Secret"),
                ("x-secret", "1"),
                ("x-b", "2"),
                ("proxy-connection", "keep-alive"),
                ("x-b", "3"),
            ],
            &[
                ("content-length", "5"),
                ("transfer-encoding", "chunked"),
                ("x", "1"),
            ],
            &[("te", "trailers"), ("x", "1"), ("upgrade", "h2c")],
            &[
                ("te", "gzip"),
                ("keep-alive", "timeout=5"),
                ("content-length", "3"),
            ],
        ];
        for fields in cases {
            let map = map_of(fields);
            let flows = outgoing_headers(
                &Headers::from_header_map(&map),
                &Body::Streamed,
                None,
                false,
            );
            let forwarded = forwarded_headers(map);
            assert_eq!(pairs(&forwarded), pairs(&flows), "{fields:?}");
        }
    }

    #[test]
    fn a_length_is_the_same_only_when_written_the_same() {
        let with = |values: &[&'static str]| {
            let mut map = HeaderMap::new();
            for value in values {
                map.append(CONTENT_LENGTH, http::HeaderValue::from_static(value));
            }
            map
        };
        assert!(has_length(&with(&["42"]), 42));
        assert!(has_length(&with(&["0"]), 0));
        assert!(has_length(&with(&["18446744073709551615"]), usize::MAX));
        assert!(!has_length(&with(&["042"]), 42), "written otherwise");
        assert!(!has_length(&with(&["43"]), 42));
        assert!(!has_length(&with(&["42", "42"]), 42), "two values");
        assert!(!has_length(&with(&[]), 0));
    }

    #[test]
    fn a_received_head_plus_appended_fields_goes_as_the_flows_copy_would() {
        let cases: [&[(&str, &str)]; 5] = [
            &[("server", "nginx"), ("content-length", "3"), ("etag", "1")],
            &[
                ("connection", "keep-alive, X-Secret"),
                ("x-secret", "1"),
                ("set-cookie", "a"),
                ("keep-alive", "timeout=5"),
                ("set-cookie", "b"),
            ],
            &[
                ("content-length", "5"),
                ("transfer-encoding", "chunked"),
                ("x", "1"),
            ],
            &[("te", "trailers"), ("x", "1")],
            &[("x", "1")],
        ];
        let bodies = [
            Body::Streamed,
            Body::Buffered(Bytes::new()),
            Body::Buffered(Bytes::from_static(b"abc")),
        ];
        let additions: [&[(&str, &str)]; 3] =
            [&[], &[("newheader", "foo")], &[("set-cookie", "c")]];
        let mut shortcuts = 0;
        for fields in cases {
            let map = map_of(fields);
            for body in &bodies {
                for no_content in [false, true] {
                    for added in additions {
                        let mut flows = Headers::from_header_map(&map);
                        flows.mark_received(1);
                        for (name, value) in added {
                            flows.append(name, *value);
                        }
                        let appended = flows.appended_to_received(1, map.len()).unwrap();
                        let Some(shortcut) =
                            received_headers(map.clone(), appended, body, None, no_content)
                        else {
                            continue;
                        };
                        shortcuts += 1;
                        let converted = outgoing_headers(&flows, body, None, no_content);
                        assert_eq!(
                            pairs(&shortcut),
                            pairs(&converted),
                            "{fields:?} {body:?} {no_content} {added:?}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            shortcuts,
            4 * 3 * 2 * 3 + 3 * 2,
            "every case takes the shortcut but `te`'s with a field appended"
        );
        // What it leaves to the flow's copy: trailers, a field appended
        // after `te`, and appended fields that frame the message or are
        // hop-by-hop.
        let map = HeaderMap::from_iter([(CONNECTION, http::HeaderValue::from_static("x-hop"))]);
        for name in [
            "content-length",
            "Transfer-Encoding",
            "te",
            "trailer",
            "upgrade",
            "X-Hop",
        ] {
            let mut flows = Headers::from_header_map(&map);
            flows.mark_received(1);
            flows.append(name, "1");
            let appended = flows.appended_to_received(1, 1).unwrap();
            assert!(
                received_headers(map.clone(), appended, &Body::Streamed, None, false).is_none(),
                "{name}"
            );
        }
        let trailers = Headers::from_pairs([("grpc-status", "0")]);
        let flows = Headers::new();
        let appended = flows.appended_to_received(1, 0);
        assert!(appended.is_none(), "not marked: not a received head");
        let mut flows = Headers::new();
        flows.mark_received(1);
        let appended = flows.appended_to_received(1, 0).unwrap();
        let held = Body::Buffered(Bytes::from_static(b"x"));
        assert!(
            received_headers(HeaderMap::new(), appended, &held, Some(&trailers), false).is_none()
        );
    }

    #[test]
    fn a_message_goes_out_from_hyper_s_parse_until_its_copy_is_touched() {
        let map = map_of(&[("server", "a"), ("x-one", "1"), ("content-length", "2")]);
        let out = |touch: fn(&mut Headers)| {
            let (mut copy, mut received) = received(map.clone(), None);
            // A value only the parse has tells which of the two went out.
            received
                .map
                .insert("server", http::HeaderValue::from_static("parse"));
            touch(&mut copy);
            let body = Body::Buffered(Bytes::from_static(b"ok"));
            pairs(&outgoing_headers_from(
                Some(received),
                &copy,
                &body,
                None,
                false,
            ))
        };
        let server = |fields: &[(String, Vec<u8>)]| {
            fields
                .iter()
                .find(|(n, _)| n == "server")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let untouched = out(|_| {});
        assert_eq!(
            server(&untouched).as_deref(),
            Some("parse"),
            "{untouched:?}"
        );
        let appended = out(|h| h.append("x-new", "1"));
        assert_eq!(server(&appended).as_deref(), Some("parse"), "{appended:?}");
        assert!(
            appended.contains(&("x-new".into(), b"1".to_vec())),
            "{appended:?}"
        );
        let touched = out(|h| h.set("x-one", "2"));
        assert_eq!(server(&touched).as_deref(), Some("a"), "{touched:?}");
        assert!(
            touched.contains(&("x-one".into(), b"2".to_vec())),
            "{touched:?}"
        );
        let removed = out(|h| {
            h.remove("x-one");
        });
        assert_eq!(server(&removed).as_deref(), Some("a"), "{removed:?}");
        // Another received list of as many fields in its place: its head
        // is not this one, so it goes out as it is.
        let replaced = out(|h| {
            let other = map_of(&[("server", "b"), ("x-two", "2"), ("content-length", "2")]);
            *h = received(other, None).0;
        });
        assert_eq!(server(&replaced).as_deref(), Some("b"), "{replaced:?}");
    }

    #[test]
    fn connection_lists_the_same_names_read_as_bytes_as_read_as_text() {
        // The reading before the bytes' shortcut.
        let as_text = |value: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(value)
                .split(',')
                .map(str::trim)
                .filter(|n| !HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(n)))
                .map(str::to_owned)
                .collect()
        };
        let values: [&[u8]; 7] = [
            b"keep-alive",
            b"Keep-Alive, X-Secret",
            b" close ,\tx-a, ,upgrade",
            "te,\u{a0}keep-alive\u{a0}, x-\u{e9}".as_bytes(),
            b"x-\xff\xfe, \x0bTE\x0b",
            b"",
            b",,",
        ];
        for value in values {
            assert_eq!(
                named_in_connection(std::iter::once(value)),
                as_text(value),
                "{value:?}"
            );
        }
        assert!(named_in_connection(std::iter::once(b"keep-alive")).is_empty());
    }

    #[test]
    fn live_streams_are_told_by_their_media_type() {
        let sse = Headers::from_pairs([("Content-Type", "Text/Event-Stream; charset=utf-8")]);
        assert!(is_live_stream(&sse));
        let mjpeg = Headers::from_pairs([("content-type", "multipart/x-mixed-replace;boundary=x")]);
        assert!(is_live_stream(&mjpeg));
        let html = Headers::from_pairs([("content-type", "text/html")]);
        assert!(!is_live_stream(&html));
        assert!(!is_live_stream(&Headers::new()));
        // Several values read as their fold: "a; p, b" is `a`, "a, b" none.
        let folded = |values: [&'static str; 2]| {
            let headers = Headers::from_pairs(values.map(|v| ("content-type", v)));
            let media = headers.get("content-type").unwrap();
            let media = media.split(';').next().unwrap().trim().to_owned();
            (
                is_live_stream(&headers),
                LIVE_STREAMS.contains(&media.as_str()),
            )
        };
        for values in [
            ["text/event-stream; a=1", "text/html"],
            ["text/event-stream", "text/html"],
            ["text/html", "text/event-stream"],
            [" text/event-stream ", "x"],
        ] {
            let (live, as_folded) = folded(values);
            assert_eq!(live, as_folded, "{values:?}");
        }
        assert!(folded(["text/event-stream; a=1", "text/html"]).0);
    }

    #[test]
    fn responses_without_content_keep_their_length() {
        let headers = Headers::from_pairs([("Content-Length", "10")]);
        let map = outgoing_headers(&headers, &Body::Buffered(Bytes::new()), None, true);
        assert_eq!(map["content-length"], "10");
        assert!(response_has_no_content("HEAD", 200));
        assert!(response_has_no_content("GET", 304));
        assert!(!response_has_no_content("GET", 200));
    }
}
