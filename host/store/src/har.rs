//! HAR 1.2 (HTTP Archive) import and export.
//!
//! HAR is what browsers' developer tools and mitmproxy (`hardump`) write. It
//! holds *decoded* content, where a witm flow holds bodies as on the wire: on
//! import the content is re-encoded in the message's `content-encoding` (so
//! `content()` gives back exactly the HAR text), on export it is decoded.
//!
//! A failed exchange (no response) is an entry whose response has status 0
//! and the error message in `response._error`, as mitmproxy and Chrome write
//! it; on import, an entry with no response at all is one too. What else HAR has no field for travels in custom fields (HAR allows
//! names starting with `_`, and other tools ignore them):
//! - `entry._id`: the flow id;
//! - `entry._witm`: `marked` (and `marker`), `killed`, `metadata` and the client and server
//!   connections;
//! - `response._error` also when there is a response (the exchange broke
//!   off after it began);
//! - `content._streamed`, `postData._streamed`: the body was streamed, not held;
//! - `content._raw`, `postData._raw`: the body does not decode from its
//!   `content-encoding`, so `text` is the body as on the wire;
//! - `postData._encoding: "base64"`: a binary request body in a charset
//!   other than UTF-8 (HAR has `encoding` only for response content); in
//!   UTF-8, bytes that are not text are written as mitmproxy writes them
//!   (`\udcXX`, see [`crate::surrogate_escape`]) and read back.
//!
//! The flow's comment is the entry's standard `comment`.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value};
use witm_flow::encoding::{decode_text, encode_text};

use crate::surrogate_escape;
use witm_flow::message::default_port;
use witm_flow::{
    Body, ClientConn, ClientTls, ContentError, ErrorKind, Flow, FlowError, Headers, HttpMessage,
    MetaValue, RecordedMessage, Request, Response, ServerConn, SetCookie, WebSocketData,
};

/// Why a HAR file could not be read: what was wrong, and where, as a JSON
/// path such as `log.entries[3].request.url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HarError {
    message: String,
}

impl HarError {
    fn at(path: &str, what: impl fmt::Display) -> Self {
        Self {
            message: format!("{path}: {what}"),
        }
    }
}

impl fmt::Display for HarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HarError {}

/// Quick check used to auto-detect file types: does this look like a HAR
/// document? The first non-whitespace byte is `{` and `"log"` comes early on.
pub fn looks_like_har(prefix: &[u8]) -> bool {
    let prefix = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(prefix);
    let start = prefix.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start.filter(|&i| prefix[i] == b'{') else {
        return false;
    };
    let head = &prefix[start..prefix.len().min(start + 4096)];
    head.windows(5).any(|w| w == b"\"log\"")
}

// ---------------------------------------------------------------------------
// Import

/// Reads a HAR 1.2 document (bytes of the JSON) into flows, in file order.
///
/// Entries whose URL is not HTTP(S) or WebSocket (`data:`, `blob:`,
/// `chrome-extension:` …, which browsers record too) are left out: a flow
/// cannot hold them. Everything else that does not fit is an error naming
/// the entry and field.
pub fn import(json: &[u8]) -> Result<Vec<Flow>, HarError> {
    let json = json.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(json);
    let json = surrogate_escape::lone_surrogates_to_private_use(json);
    let doc: Value = serde_json::from_slice(&json).map_err(|e| HarError {
        message: format!("not valid JSON: {e}"),
    })?;
    let Some(root) = doc.as_object() else {
        return Err(HarError {
            message: format!(
                "not a HAR document: expected an object with a \"log\", found {}",
                kind(&doc)
            ),
        });
    };
    let log = object(required(root, "log", "")?, "log")?;
    let entries = list(required(log, "entries", "log")?, "log.entries")?;
    let mut clients = HashMap::new();
    let mut flows = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("log.entries[{i}]");
        if let Some(flow) = import_entry(entry, &at, &mut clients)? {
            flows.push(flow);
        }
    }
    Ok(flows)
}

/// One entry as a flow; `None` for an entry a flow cannot hold.
fn import_entry(
    entry: &Value,
    at: &str,
    clients: &mut HashMap<String, Arc<ClientConn>>,
) -> Result<Option<Flow>, HarError> {
    let entry = object(entry, at)?;
    let start = match string(entry, "startedDateTime", at)? {
        Some(date) => parse_rfc3339(date).ok_or_else(|| {
            HarError::at(
                &join(at, "startedDateTime"),
                format!("not an RFC 3339 date: {date:?}"),
            )
        })?,
        None => 0,
    };

    let request_at = join(at, "request");
    let request = object(required(entry, "request", at)?, &request_at)?;
    let Some(mut request) = import_request(request, &request_at, start)? else {
        return Ok(None);
    };

    // HAR times are in milliseconds, -1 when not applicable.
    let timings = sub_object(entry, "timings", at)?;
    let timing = |key: &str| {
        timings
            .and_then(|t| field(t, key))
            .and_then(Value::as_f64)
            .filter(|t| *t > 0.0)
            .unwrap_or(0.0)
    };
    let response_start = start.saturating_add((timing("send") + timing("wait")).round() as u64);
    if timings.is_some() {
        request.timestamp_end = Some(start.saturating_add(timing("send").round() as u64));
    }
    let total = number(entry, "time", at)?
        .filter(|t| *t > 0.0)
        .unwrap_or(0.0);
    let end = start.saturating_add(total.round() as u64);

    let (response, error) = match sub_object(entry, "response", at)? {
        None => (None, Some("no response".to_owned())),
        Some(response) => {
            let response_at = join(at, "response");
            let error = string(response, "_error", &response_at)?.map(str::to_owned);
            let status = number(response, "status", &response_at)?.unwrap_or(0.0);
            if status == 0.0 {
                let error = error
                    .or(string(response, "comment", &response_at)?.map(str::to_owned))
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "no response".to_owned());
                (None, Some(error))
            } else {
                let mut response = import_response(
                    response,
                    &response_at,
                    status,
                    &request.http_version,
                    response_start,
                )?;
                if timings.is_some() {
                    response.timestamp_end =
                        Some(response_start.saturating_add(timing("receive").round() as u64));
                }
                (Some(response), error)
            }
        }
    };

    let id = string(entry, "_id", at)?
        .filter(|id| !id.is_empty())
        .map_or_else(Flow::new_id, str::to_owned);
    let mut flow = Flow {
        id,
        response,
        error: error.map(|message| FlowError {
            kind: ErrorKind::Server,
            message,
            timestamp: end,
        }),
        comment: string(entry, "comment", at)?.unwrap_or_default().to_owned(),
        websocket: import_websocket(entry, at)?,
        ..Flow::default()
    };

    let mut client = None;
    if let Some(witm) = sub_object(entry, "_witm", at)? {
        let witm_at = join(at, "_witm");
        flow.set_marked(boolean(witm, "marked", &witm_at)?.unwrap_or(false));
        if let Some(marker) = string(witm, "marker", &witm_at)? {
            flow.marker = marker.to_owned();
        }
        flow.killed = boolean(witm, "killed", &witm_at)?.unwrap_or(false);
        flow.metadata = metadata(witm, &witm_at)?;
        if let Some(c) = sub_object(witm, "client", &witm_at)? {
            client = Some(import_client(c, &join(&witm_at, "client"), start, clients)?);
        }
        if let Some(server) = sub_object(witm, "server", &witm_at)? {
            let server_at = join(&witm_at, "server");
            flow.server_conn = Some(Arc::new(ServerConn {
                address: string(server, "address", &server_at)?
                    .unwrap_or_default()
                    .to_owned(),
                sni: string(server, "sni", &server_at)?.map(str::to_owned),
                alpn: string(server, "alpn", &server_at)?.map(str::to_owned),
                ..ServerConn::default()
            }));
        }
    }
    if let Some(ip) = string(entry, "serverIPAddress", at)?.filter(|ip| !ip.is_empty()) {
        // The address the server's name resolved to; with no server saved
        // by witm, the server is known by it.
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let address = if ip.contains(':') {
            format!("[{ip}]:{}", request.port)
        } else {
            format!("{ip}:{}", request.port)
        };
        let mut server = flow
            .server_conn
            .as_deref()
            .cloned()
            .unwrap_or_else(|| ServerConn {
                address: address.clone(),
                ..ServerConn::default()
            });
        server.peername = address.parse().ok();
        flow.server_conn = Some(Arc::new(server));
    }
    flow.client = match client {
        Some(client) => client,
        None => {
            let mut client = ClientConn::new(SocketAddr::from(([0, 0, 0, 0], 0)));
            client.timestamp_start = start;
            Arc::new(client)
        }
    };
    flow.request = request;
    Ok(Some(flow))
}

/// The request of an entry; `None` when its URL is not one a flow can hold.
fn import_request(json: &Object, at: &str, start: u64) -> Result<Option<Request>, HarError> {
    let url = required_string(json, "url", at)?;
    let Some((scheme, host, port, path)) =
        parse_url(url).map_err(|why| HarError::at(&join(at, "url"), why))?
    else {
        return Ok(None);
    };
    let mut request = Request {
        method: required_string(json, "method", at)?.to_owned(),
        scheme,
        host,
        port,
        path,
        http_version: http_version(string(json, "httpVersion", at)?, "HTTP/1.1"),
        headers: import_headers(json, at)?,
        body: Body::default(),
        trailers: None,
        timestamp_start: start,
        timestamp_end: None,
        stream: false,
    };
    let Some(post) = sub_object(json, "postData", at)? else {
        return Ok(Some(request));
    };
    let post_at = join(at, "postData");
    if boolean(post, "_streamed", &post_at)?.unwrap_or(false) {
        request.body = Body::Streamed;
        return Ok(Some(request));
    }
    let base64 = match string(post, "_encoding", &post_at)? {
        Some(encoding) => Some(encoding),
        None => string(post, "encoding", &post_at)?,
    }
    .is_some_and(|e| e.eq_ignore_ascii_case("base64"));
    let content = match string(post, "text", &post_at)? {
        Some(text) => decode_text_field(text, base64, &request, &join(&post_at, "text"))?,
        // No text: rebuild an urlencoded form from the params.
        None => urlencode(&name_values(post, "params", &post_at)?).into_bytes(),
    };
    let raw = boolean(post, "_raw", &post_at)?.unwrap_or(false);
    put_content(&mut request, content, raw);
    Ok(Some(request))
}

/// The response of an entry whose status is not 0.
fn import_response(
    json: &Object,
    at: &str,
    status: f64,
    request_version: &str,
    timestamp_start: u64,
) -> Result<Response, HarError> {
    if status.fract() != 0.0 || !(1.0..=999.0).contains(&status) {
        return Err(HarError::at(
            &join(at, "status"),
            format!("not an HTTP status code: {status}"),
        ));
    }
    let mut response = Response {
        status: status as u16,
        reason: string(json, "statusText", at)?
            .unwrap_or_default()
            .to_owned(),
        http_version: http_version(string(json, "httpVersion", at)?, request_version),
        headers: import_headers(json, at)?,
        body: Body::default(),
        trailers: None,
        timestamp_start,
        timestamp_end: None,
        stream: false,
    };
    let Some(content) = sub_object(json, "content", at)? else {
        return Ok(response);
    };
    let content_at = join(at, "content");
    if boolean(content, "_streamed", &content_at)?.unwrap_or(false) {
        response.body = Body::Streamed;
        return Ok(response);
    }
    let base64 =
        string(content, "encoding", &content_at)?.is_some_and(|e| e.eq_ignore_ascii_case("base64"));
    if let Some(text) = string(content, "text", &content_at)? {
        let bytes = decode_text_field(text, base64, &response, &join(&content_at, "text"))?;
        let raw = boolean(content, "_raw", &content_at)?.unwrap_or(false);
        put_content(&mut response, bytes, raw);
    }
    Ok(response)
}

/// The bytes of a HAR `text`: base64-decoded, or the text in the charset of
/// the message's `content-type` (UTF-8 unless it names another).
fn decode_text_field(
    text: &str,
    base64: bool,
    message: &impl HttpMessage,
    at: &str,
) -> Result<Vec<u8>, HarError> {
    if base64 {
        let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        BASE64
            .decode(compact)
            .map_err(|e| HarError::at(at, format!("not valid base64: {e}")))
    } else {
        let bytes = encode_text(text, message.headers().get("content-type").as_deref());
        // UTF-8 (not another charset): with the bytes mitmproxy escapes.
        Ok(match bytes == text.as_bytes() {
            true => surrogate_escape::private_use_to_bytes(text),
            false => bytes,
        })
    }
}

/// Puts decoded content into a message, encoded as its `content-encoding`
/// says; `raw` content (witm's `_raw`) is the body as on the wire already.
///
/// Empty content leaves the headers alone: a response to HEAD, a 304, or an
/// entry saved without content has an empty body but a meaningful
/// `content-length`.
fn put_content(message: &mut impl HttpMessage, content: Vec<u8>, raw: bool) {
    if raw || content.is_empty() {
        *message.body_mut() = Body::Buffered(Bytes::from(content));
        return;
    }
    if let Err(ContentError::Coding(_)) = message.set_content(&content) {
        // A coding witm cannot produce: keep the content plain, and say so.
        message.headers_mut().remove("content-encoding");
        if message.set_content(&content).is_err() {
            *message.body_mut() = Body::Buffered(Bytes::from(content));
        }
    }
}

/// A message's headers, in file order and spelling. HTTP/2 pseudo-headers
/// (`:authority` …, which browsers list) are left out: they are not headers
/// in a flow.
fn import_headers(json: &Object, at: &str) -> Result<Headers, HarError> {
    let list = array(json, "headers", at)?;
    let mut pairs = Vec::with_capacity(list.len());
    for (i, header) in list.iter().enumerate() {
        let header_at = format!("{}[{i}]", join(at, "headers"));
        let header = object(header, &header_at)?;
        let name = required_string(header, "name", &header_at)?;
        let value = string(header, "value", &header_at)?.unwrap_or_default();
        if !name.starts_with(':') {
            pairs.push((name.to_owned(), Bytes::copy_from_slice(value.as_bytes())));
        }
    }
    Ok(Headers::from_pairs(pairs))
}

/// A list of `{name, value}` objects as pairs.
fn name_values(json: &Object, key: &str, at: &str) -> Result<Vec<(String, String)>, HarError> {
    array(json, key, at)?
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let pair_at = format!("{}[{i}]", join(at, key));
            let pair = object(pair, &pair_at)?;
            Ok((
                required_string(pair, "name", &pair_at)?.to_owned(),
                string(pair, "value", &pair_at)?
                    .unwrap_or_default()
                    .to_owned(),
            ))
        })
        .collect()
}

/// `_witm.metadata`: `{name, value}` objects whose values keep their JSON
/// type (see [`meta_json`]).
fn metadata(witm: &Object, at: &str) -> Result<Vec<(String, MetaValue)>, HarError> {
    array(witm, "metadata", at)?
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let pair_at = format!("{}[{i}]", join(at, "metadata"));
            let pair = object(pair, &pair_at)?;
            let value = pair
                .get("value")
                .map_or(MetaValue::Str(String::new()), json_meta);
            Ok((required_string(pair, "name", &pair_at)?.to_owned(), value))
        })
        .collect()
}

/// A metadata value read from HAR: JSON's types, and `{"_bytes": BASE64}`
/// for bytes (as [`meta_json`] writes them).
fn json_meta(value: &Value) -> MetaValue {
    match value {
        Value::Null => MetaValue::Null,
        Value::Bool(b) => MetaValue::Bool(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || MetaValue::Float(n.as_f64().unwrap_or(0.0)),
            MetaValue::Int,
        ),
        Value::String(s) => MetaValue::Str(s.clone()),
        Value::Array(items) => MetaValue::List(items.iter().map(json_meta).collect()),
        Value::Object(fields) => {
            if let (1, Some(Value::String(b64))) = (fields.len(), fields.get("_bytes"))
                && let Ok(bytes) = BASE64.decode(b64)
            {
                return MetaValue::Bytes(bytes);
            }
            MetaValue::Dict(
                fields
                    .iter()
                    .map(|(k, v)| (MetaValue::Str(k.clone()), json_meta(v)))
                    .collect(),
            )
        }
    }
}

/// A metadata value as HAR JSON: its JSON type where JSON has one, bytes
/// as `{"_bytes": BASE64}`, and dictionary keys that are not text as
/// their Python `str()` (JSON keys are text).
fn meta_json(value: &MetaValue) -> Value {
    match value {
        MetaValue::Null => Value::Null,
        MetaValue::Bool(b) => Value::Bool(*b),
        MetaValue::Int(i) => Value::from(*i),
        MetaValue::Float(f) => Value::from(*f),
        MetaValue::Str(s) => Value::String(s.clone()),
        MetaValue::Bytes(b) => Value::Object(Map::from_iter([(
            "_bytes".to_owned(),
            BASE64.encode(b).into(),
        )])),
        MetaValue::List(items) => Value::Array(items.iter().map(meta_json).collect()),
        MetaValue::Dict(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.python_str(), meta_json(v)))
                .collect(),
        ),
    }
}

/// The client connection witm saved (`_witm.client`); flows of one
/// connection share it again.
fn import_client(
    json: &Object,
    at: &str,
    start: u64,
    clients: &mut HashMap<String, Arc<ClientConn>>,
) -> Result<Arc<ClientConn>, HarError> {
    let id = string(json, "id", at)?.filter(|id| !id.is_empty());
    if let Some(client) = id.and_then(|id| clients.get(id)) {
        return Ok(client.clone());
    }
    let address = match string(json, "address", at)? {
        Some(address) => address.parse().map_err(|_| {
            HarError::at(&join(at, "address"), format!("not an address: {address:?}"))
        })?,
        None => SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let mut client = ClientConn::new(address);
    client.timestamp_start = start;
    let sni = string(json, "sni", at)?.map(str::to_owned);
    let alpn = string(json, "alpn", at)?.map(str::to_owned);
    if boolean(json, "tls", at)?.unwrap_or(false) || sni.is_some() || alpn.is_some() {
        client.tls = Some(ClientTls { sni, alpn });
    }
    if let Some(id) = id {
        client.id = id.to_owned();
    }
    let client = Arc::new(client);
    if let Some(id) = id {
        clients.insert(id.to_owned(), client.clone());
    }
    Ok(client)
}

/// witm's spelling of an HTTP version ("HTTP/1.1", "HTTP/2.0"), from what
/// browsers and mitmproxy write ("http/1.1", "h2", "HTTP/2", "HTTP/2.0" …).
fn http_version(version: Option<&str>, default: &str) -> String {
    let Some(version) = version.map(str::trim).filter(|v| !v.is_empty()) else {
        return default.to_owned();
    };
    match version.to_ascii_lowercase().as_str() {
        "http/0.9" => "HTTP/0.9".into(),
        "http/1.0" => "HTTP/1.0".into(),
        "http/1.1" => "HTTP/1.1".into(),
        "h2" | "h2c" | "http/2" | "http/2.0" => "HTTP/2.0".into(),
        "h3" | "http/3" | "http/3.0" => "HTTP/3".into(),
        _ => version.to_owned(),
    }
}

/// Scheme, host, port and path (with query, without fragment) of an absolute
/// URL; `None` for a URL that is not HTTP(S) or WebSocket. Lenient where
/// browsers are (characters a strict URI parser refuses are kept as they are).
fn parse_url(url: &str) -> Result<Option<(String, String, u16, String)>, String> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(format!("not an absolute URL: {url:?}"));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        _ => return Ok(None),
    };
    let rest = rest
        .strip_prefix("//")
        .ok_or_else(|| format!("URL {url:?} has no host"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = path.split('#').next().unwrap_or_default();
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("URL {url:?} has an unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("URL {url:?} has junk after its host")),
                },
            }
        }
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    let port = match port.filter(|p| !p.is_empty()) {
        None => default_port(scheme),
        Some(port) => port
            .parse()
            .map_err(|_| format!("URL {url:?} has an invalid port {port:?}"))?,
    };
    // Browsers write URLs as people read them (IRIs): a host in Unicode,
    // a path with non-ASCII characters. A request carries them as a
    // browser sends them: the host in punycode, the rest percent-encoded.
    let host = match host.is_ascii() {
        true => host.to_owned(),
        false => idna::domain_to_ascii_strict(host)
            .map_err(|_| format!("URL {url:?} has a host that is not a domain name"))?,
    };
    Ok(Some((
        scheme.to_owned(),
        host,
        port,
        percent_encode_non_ascii(&path),
    )))
}

/// `text` with every character outside printable ASCII percent-encoded
/// as its UTF-8 bytes (as a browser sends a path and query).
fn percent_encode_non_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut buffer = [0u8; 4];
    for c in text.chars() {
        if c.is_ascii_graphic() {
            out.push(c);
        } else {
            for byte in c.encode_utf8(&mut buffer).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// `name=value&…`, as `application/x-www-form-urlencoded` spells a form.
fn urlencode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The pairs of an `application/x-www-form-urlencoded` body.
fn urldecode(form: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect()
}

// ---------------------------------------------------------------------------
// Reading the JSON, with the path of what is wrong

type Object = Map<String, Value>;

/// `at.key`, the JSON path of a field.
fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// What a JSON value is, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Object, HarError> {
    value
        .as_object()
        .ok_or_else(|| HarError::at(at, format!("expected an object, found {}", kind(value))))
}

fn list<'a>(value: &'a Value, at: &str) -> Result<&'a [Value], HarError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| HarError::at(at, format!("expected an array, found {}", kind(value))))
}

/// A field; absent and `null` alike are `None`.
fn field<'a>(json: &'a Object, key: &str) -> Option<&'a Value> {
    json.get(key).filter(|v| !v.is_null())
}

fn required<'a>(json: &'a Object, key: &str, at: &str) -> Result<&'a Value, HarError> {
    field(json, key).ok_or_else(|| HarError::at(&join(at, key), "missing"))
}

fn string<'a>(json: &'a Object, key: &str, at: &str) -> Result<Option<&'a str>, HarError> {
    field(json, key)
        .map(|v| {
            v.as_str().ok_or_else(|| {
                HarError::at(
                    &join(at, key),
                    format!("expected a string, found {}", kind(v)),
                )
            })
        })
        .transpose()
}

fn required_string<'a>(json: &'a Object, key: &str, at: &str) -> Result<&'a str, HarError> {
    string(json, key, at)?.ok_or_else(|| HarError::at(&join(at, key), "missing"))
}

fn number(json: &Object, key: &str, at: &str) -> Result<Option<f64>, HarError> {
    field(json, key)
        .map(|v| {
            v.as_f64().ok_or_else(|| {
                HarError::at(
                    &join(at, key),
                    format!("expected a number, found {}", kind(v)),
                )
            })
        })
        .transpose()
}

fn boolean(json: &Object, key: &str, at: &str) -> Result<Option<bool>, HarError> {
    field(json, key)
        .map(|v| {
            v.as_bool().ok_or_else(|| {
                HarError::at(
                    &join(at, key),
                    format!("expected a boolean, found {}", kind(v)),
                )
            })
        })
        .transpose()
}

/// An array field; absent is empty.
fn array<'a>(json: &'a Object, key: &str, at: &str) -> Result<&'a [Value], HarError> {
    match field(json, key) {
        Some(value) => list(value, &join(at, key)),
        None => Ok(&[]),
    }
}

fn sub_object<'a>(json: &'a Object, key: &str, at: &str) -> Result<Option<&'a Object>, HarError> {
    field(json, key)
        .map(|value| object(value, &join(at, key)))
        .transpose()
}

// ---------------------------------------------------------------------------
// Dates

/// Milliseconds since the Unix epoch of a date and time in UTC; `None` when
/// a field is out of range or the time is before 1970.
fn epoch_ms(
    (year, month, day): (i64, i64, i64),
    (hour, minute, second): (i64, i64, i64),
    millis: i64,
) -> Option<u64> {
    let in_range = (0..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..=23).contains(&hour)
        && (0..=59).contains(&minute)
        && (0..=60).contains(&second);
    if !in_range {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(seconds.checked_mul(1000)?.checked_add(millis)?).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// An RFC 3339 date-time ("2026-11-29T04:09:24.514457+00:00",
/// "2009-04-16T12:07:23.596Z") in ms since the Unix epoch; fractions finer
/// than a millisecond are dropped. A missing offset is read as UTC.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.trim().as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        let d = b.get(from..to)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse().ok()
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c))
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let date = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let time = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let fraction = &b[start..i];
        for k in 0..3 {
            millis = millis * 10 + fraction.get(k).map_or(0, |d| i64::from(d - b'0'));
        }
    }
    let offset = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            if b.get(i + 3) != Some(&b':') {
                return None;
            }
            let (hours, minutes) = (digits(i + 1, i + 3)?, digits(i + 4, i + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            i += 6;
            let offset = (hours * 60 + minutes) * 60_000;
            if sign == b'+' { offset } else { -offset }
        }
        Some(_) => return None,
    };
    if i != b.len() {
        return None;
    }
    let utc = i64::try_from(epoch_ms(date, time, millis)?).ok()? - offset;
    u64::try_from(utc).ok()
}

/// An RFC 3339 date-time in UTC with milliseconds, e.g.
/// "2009-04-16T12:07:23.596Z".
fn format_rfc3339(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (seconds, millis) = (in_day / 1000, in_day % 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// An HTTP date as cookies' `Expires` has it ("Sun, 06 Nov 1994 08:49:37 GMT",
/// or the old "Sunday, 06-Nov-94 08:49:37 GMT") in ms since the Unix epoch.
fn parse_http_date(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let rest = text.split_once(',').map_or(text, |(_, rest)| rest);
    let parts: Vec<&str> = rest
        .split([' ', '-'])
        .filter(|part| !part.is_empty())
        .collect();
    let [day, month, year, time, ..] = parts[..] else {
        return None;
    };
    let month = month.get(..3)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as i64 + 1;
    let mut year: i64 = year.parse().ok()?;
    if year < 100 {
        year += if year >= 70 { 1900 } else { 2000 };
    }
    let mut clock = time.split(':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    epoch_ms((year, month, day.parse().ok()?), (hour, minute, second), 0)
}

// ---------------------------------------------------------------------------
// Export

/// The comment on a body witm streamed through without holding it.
const STREAMED: &str = "the body was streamed through witm without being held";

/// Writes flows as a HAR 1.2 document (pretty JSON string), creator name
/// "witm" and crate version.
///
/// A flow without a response is written with status 0 and its error in
/// `response._error`, so it reads back as a failed flow ("no response" when
/// it had no error either: still in flight when saved). TCP flows are left
/// out: HAR has no place for them (as mitmproxy's HAR export does).
pub fn export(flows: &[Flow]) -> String {
    let creator = Json::Object(vec![
        ("name", "witm".into()),
        ("version", env!("CARGO_PKG_VERSION").into()),
    ]);
    let log = Json::Object(vec![
        ("version", "1.2".into()),
        ("creator", creator),
        ("pages", Json::List(Vec::new())),
        (
            "entries",
            Json::List({
                let mut servers_seen = HashSet::new();
                flows
                    .iter()
                    .filter(|f| !f.is_tcp())
                    .map(|f| export_entry(f, &mut servers_seen))
                    .collect()
            }),
        ),
    ]);
    let mut out = String::new();
    Json::Object(vec![("log", log)]).write(&mut out, 0);
    out.push('\n');
    out
}

fn export_entry(flow: &Flow, servers_seen: &mut HashSet<(String, u64)>) -> Json {
    let request = &flow.request;
    let start = request.timestamp_start;
    // As mitmproxy: the request's end when known (else its start), the
    // answer's start (the error's time without one), the response's end.
    let sent = request.timestamp_end.unwrap_or(start).max(start);
    let answered = match (&flow.response, &flow.error) {
        (Some(response), _) => Some(response.timestamp_start),
        (None, Some(error)) => Some(error.timestamp),
        (None, None) => None,
    };
    let receive = flow.response.as_ref().map_or(0, |r| {
        r.timestamp_end
            .map_or(0, |end| end.saturating_sub(r.timestamp_start))
    });
    // Connecting counts for the first flow of a server connection only.
    let (connect, ssl) = match flow.server_conn.as_deref() {
        Some(ServerConn {
            address,
            timestamp_start: Some(began),
            timestamp_tcp_setup,
            timestamp_tls_setup,
            ..
        }) if servers_seen.insert((address.clone(), *began)) => {
            let since =
                |from: u64, to: Option<u64>| to.map_or(-1, |to| int(to.saturating_sub(from)));
            let tcp_up = timestamp_tcp_setup.unwrap_or(*began);
            (
                since(*began, *timestamp_tcp_setup),
                since(tcp_up, *timestamp_tls_setup),
            )
        }
        _ => (-1, -1),
    };
    let send = int(sent - start);
    let wait = int(answered.map_or(0, |at| at.saturating_sub(sent)));
    let receive = int(receive);
    let timings = [
        ("blocked", -1),
        ("dns", -1),
        ("connect", connect),
        ("ssl", ssl),
        ("send", send),
        ("wait", wait),
        ("receive", receive),
    ];
    let total: i64 = timings.iter().map(|(_, t)| (*t).max(0)).sum();
    let mut entry = vec![
        ("startedDateTime", format_rfc3339(start).into()),
        ("time", total.into()),
        ("request", export_request(&flow.request)),
        ("response", export_response(flow)),
        ("cache", Json::Object(Vec::new())),
        (
            "timings",
            Json::Object(timings.into_iter().map(|(k, v)| (k, v.into())).collect()),
        ),
    ];
    if let Some(ip) = flow.server_conn.as_deref().and_then(|server| {
        server
            .peername
            .map(|p| p.ip())
            .or_else(|| server_ip(&server.address))
    }) {
        entry.push(("serverIPAddress", ip.to_string().into()));
    }
    if !flow.comment.is_empty() {
        entry.push(("comment", flow.comment.as_str().into()));
    }
    if let Some(websocket) = &flow.websocket {
        entry.push(("_resourceType", "websocket".into()));
        entry.push(("_webSocketMessages", export_websocket(websocket)));
    }
    entry.push(("_id", flow.id.as_str().into()));
    let witm = export_witm(flow);
    if !witm.is_empty() {
        entry.push(("_witm", Json::Object(witm)));
    }
    Json::Object(entry)
}

/// Chrome's and mitmproxy's `_webSocketMessages`: `type` send (from the
/// client) or receive, `time` in seconds, `opcode` 1 text or 2 binary,
/// `data` the text, or base64 for binary.
fn export_websocket(websocket: &WebSocketData) -> Json {
    Json::List(
        websocket
            .messages
            .iter()
            .map(|m| {
                let data = match m.is_text {
                    true => String::from_utf8_lossy(&m.content).into_owned(),
                    false => BASE64.encode(&m.content),
                };
                Json::Object(vec![
                    (
                        "type",
                        if m.from_client { "send" } else { "receive" }.into(),
                    ),
                    ("time", Json::Float(m.timestamp as f64 / 1000.0)),
                    ("opcode", Json::Int(if m.is_text { 1 } else { 2 })),
                    ("data", data.into()),
                ])
            })
            .collect(),
    )
}

/// `_webSocketMessages` back into a flow's WebSocket (absent: none).
fn import_websocket(entry: &Object, at: &str) -> Result<Option<Box<WebSocketData>>, HarError> {
    if field(entry, "_webSocketMessages").is_none() {
        return Ok(None);
    }
    let messages = array(entry, "_webSocketMessages", at)?;
    let at = join(at, "_webSocketMessages");
    let mut websocket = WebSocketData::default();
    for (i, message) in messages.iter().enumerate() {
        let message_at = format!("{at}[{i}]");
        let m = object(message, &message_at)?;
        let is_text = number(m, "opcode", &message_at)? != Some(2.0);
        let data = string(m, "data", &message_at)?.unwrap_or_default();
        let content = if is_text {
            Bytes::copy_from_slice(data.as_bytes())
        } else {
            Bytes::from(BASE64.decode(data).map_err(|e| {
                HarError::at(&join(&message_at, "data"), format!("not valid base64: {e}"))
            })?)
        };
        websocket.record(RecordedMessage {
            from_client: string(m, "type", &message_at)? == Some("send"),
            is_text,
            content,
            timestamp: number(m, "time", &message_at)?
                .map_or(0, |s| (s * 1000.0).round().max(0.0) as u64),
            dropped: false,
        });
    }
    Ok(Some(Box::new(websocket)))
}

/// The IP address of a server's "host:port", when the host is one.
fn server_ip(address: &str) -> Option<IpAddr> {
    if let Ok(address) = address.parse::<SocketAddr>() {
        return Some(address.ip());
    }
    let host = address
        .rsplit_once(':')
        .filter(|(host, _)| !host.contains(':') || host.ends_with(']'))
        .map_or(address, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// What HAR has no field for: marks, metadata, the connections.
fn export_witm(flow: &Flow) -> Vec<(&'static str, Json)> {
    let mut witm = Vec::new();
    if flow.is_marked() {
        witm.push(("marked", true.into()));
        witm.push(("marker", flow.marker.as_str().into()));
    }
    if flow.killed {
        witm.push(("killed", true.into()));
    }
    if !flow.metadata.is_empty() {
        let pairs = flow.metadata.iter().map(|(name, value)| {
            Json::Object(vec![
                ("name", name.as_str().into()),
                ("value", Json::Raw(meta_json(value))),
            ])
        });
        witm.push(("metadata", Json::List(pairs.collect())));
    }
    let client = &flow.client;
    if client.address.port() != 0 || !client.address.ip().is_unspecified() || client.tls.is_some() {
        let mut fields = vec![
            ("id", client.id.as_str().into()),
            ("address", client.address.to_string().into()),
        ];
        if let Some(tls) = &client.tls {
            fields.push(("tls", true.into()));
            if let Some(sni) = &tls.sni {
                fields.push(("sni", sni.as_str().into()));
            }
            if let Some(alpn) = &tls.alpn {
                fields.push(("alpn", alpn.as_str().into()));
            }
        }
        witm.push(("client", Json::Object(fields)));
    }
    if let Some(server) = &flow.server_conn {
        let mut fields = vec![("address", server.address.as_str().into())];
        if let Some(sni) = &server.sni {
            fields.push(("sni", sni.as_str().into()));
        }
        if let Some(alpn) = &server.alpn {
            fields.push(("alpn", alpn.as_str().into()));
        }
        witm.push(("server", Json::Object(fields)));
    }
    witm
}

fn export_request(request: &Request) -> Json {
    let mut fields = vec![
        ("method", request.method.as_str().into()),
        ("url", request.url().into()),
        ("httpVersion", request.http_version.as_str().into()),
        ("cookies", name_value_list(&request.cookies())),
        ("headers", export_headers(&request.headers)),
        ("queryString", name_value_list(&request.query())),
    ];
    let mime_type = request.headers.get("content-type").unwrap_or_default();
    let body_size = match &request.body {
        Body::Streamed => {
            fields.push((
                "postData",
                Json::Object(vec![
                    ("mimeType", mime_type.into()),
                    ("text", "".into()),
                    ("comment", STREAMED.into()),
                    ("_streamed", true.into()),
                ]),
            ));
            -1
        }
        Body::Buffered(raw) if raw.is_empty() => 0,
        Body::Buffered(raw) => {
            let body = export_body(request, raw);
            let is_form = mime_type
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded");
            let params = (is_form && !body.base64 && body.undecodable.is_none())
                .then(|| name_value_list(&urldecode(&body.text)));
            // Bytes that are not text in the charset: as mitmproxy writes
            // them (UTF-8 with `\udcXX` escapes), so mitmproxy reads them
            // back; base64 (`_encoding`) only for other charsets.
            let utf8 = encode_text("\u{e9}", Some(&mime_type)) == "\u{e9}".as_bytes();
            let (text, base64) = match (body.base64, utf8) {
                (true, true) => (Json::Escaped(body.content), false),
                (base64, _) => (body.text.into(), base64),
            };
            let mut post = vec![("mimeType", mime_type.into()), ("text", text)];
            if let Some(params) = params {
                post.push(("params", params));
            }
            if base64 {
                post.push(("_encoding", "base64".into()));
            }
            if let Some(why) = body.undecodable {
                post.push(("comment", why.into()));
                post.push(("_raw", true.into()));
            }
            fields.push(("postData", Json::Object(post)));
            int(raw.len())
        }
    };
    let start_line = format!(
        "{} {} {}",
        request.method, request.path, request.http_version
    );
    fields.push((
        "headersSize",
        head_size(&start_line, &request.headers).into(),
    ));
    fields.push(("bodySize", body_size.into()));
    Json::Object(fields)
}

/// HAR's `headersSize`: the bytes of the head as HTTP/1.1 puts it on the
/// wire, from the start line to the blank line that ends it (HAR 1.2;
/// mitmproxy writes the length of its Python `repr` of the headers instead).
fn head_size(start_line: &str, headers: &Headers) -> i64 {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.len() + 2 + value.len() + 2)
        .sum();
    int(start_line.len() + 2 + fields + 2)
}

fn export_response(flow: &Flow) -> Json {
    let error = flow
        .error
        .as_ref()
        .map(|error| Json::from(error.message.as_str()));
    let Some(response) = &flow.response else {
        // No response: mitmproxy's and browsers' way, status 0.
        let mut fields = vec![
            ("status", 0.into()),
            ("statusText", "".into()),
            ("httpVersion", "".into()),
            ("cookies", Json::List(Vec::new())),
            ("headers", Json::List(Vec::new())),
            (
                "content",
                Json::Object(vec![("size", 0.into()), ("mimeType", "".into())]),
            ),
            ("redirectURL", "".into()),
            ("headersSize", (-1).into()),
            ("bodySize", (-1).into()),
        ];
        if let Some(error) = error {
            fields.push(("_error", error));
        }
        return Json::Object(fields);
    };
    let mime_type = response.headers.get("content-type").unwrap_or_default();
    let (content, body_size) = match &response.body {
        Body::Streamed => (
            vec![
                ("size", 0.into()),
                ("mimeType", mime_type.into()),
                ("comment", STREAMED.into()),
                ("_streamed", true.into()),
            ],
            -1,
        ),
        Body::Buffered(raw) => {
            let body = export_body(response, raw);
            let mut content = vec![("size", int(body.size).into())];
            if response.headers.contains("content-encoding") && body.undecodable.is_none() {
                content.push(("compression", (int(body.size) - int(raw.len())).into()));
            }
            content.push(("mimeType", mime_type.into()));
            content.push(("text", body.text.into()));
            if body.base64 {
                content.push(("encoding", "base64".into()));
            }
            if let Some(why) = body.undecodable {
                content.push(("comment", why.into()));
                content.push(("_raw", true.into()));
            }
            (content, int(raw.len()))
        }
    };
    let cookies = response
        .cookies()
        .iter()
        .map(|cookie| export_cookie(cookie, response.timestamp_start))
        .collect();
    let mut fields = vec![
        ("status", i64::from(response.status).into()),
        ("statusText", response.reason.as_str().into()),
        ("httpVersion", response.http_version.as_str().into()),
        ("cookies", Json::List(cookies)),
        ("headers", export_headers(&response.headers)),
        ("content", Json::Object(content)),
        (
            "redirectURL",
            response.headers.get("location").unwrap_or_default().into(),
        ),
        (
            "headersSize",
            head_size(
                &format!(
                    "{} {} {}",
                    response.http_version, response.status, response.reason
                ),
                &response.headers,
            )
            .into(),
        ),
        ("bodySize", body_size.into()),
    ];
    if let Some(error) = error {
        fields.push(("_error", error));
    }
    Json::Object(fields)
}

/// A body as HAR holds it: decoded, as text or base64.
struct ExportedBody {
    /// The text, or the base64 of the bytes.
    text: String,
    /// Whether `text` is base64.
    base64: bool,
    /// The size of the content (decoded).
    size: usize,
    /// Why the body did not decode (then `text` is the body as on the wire).
    undecodable: Option<String>,
    /// The content (decoded, or as on the wire when it does not decode).
    content: Vec<u8>,
}

fn export_body(message: &impl HttpMessage, raw: &Bytes) -> ExportedBody {
    let (content, undecodable) = match message.content() {
        Ok(content) => (content, None),
        Err(e) => (
            raw.to_vec(),
            Some(format!("{e}; this is the body as on the wire")),
        ),
    };
    let content_type = message.headers().get("content-type");
    let text = decode_text(&content, content_type.as_deref());
    // Text when it reads back to the same bytes (UTF-8, or the charset the
    // content-type names); base64 otherwise.
    let base64 = encode_text(&text, content_type.as_deref()) != content;
    ExportedBody {
        text: if base64 {
            BASE64.encode(&content)
        } else {
            text
        },
        base64,
        size: content.len(),
        undecodable,
        content,
    }
}

/// A cookie a response sets, with the attributes HAR names.
fn export_cookie(cookie: &SetCookie, received: u64) -> Json {
    let attribute = |name: &str| {
        cookie
            .attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut fields = vec![
        ("name", cookie.name.as_str().into()),
        ("value", cookie.value.as_str().into()),
    ];
    if let Some(path) = attribute("path") {
        fields.push(("path", path.into()));
    }
    if let Some(domain) = attribute("domain") {
        fields.push(("domain", domain.into()));
    }
    // Max-Age wins over Expires (RFC 6265 §5.3).
    let expires = match attribute("max-age").and_then(|age| age.parse::<i64>().ok()) {
        Some(age) => Some(
            i64::try_from(received)
                .unwrap_or(i64::MAX)
                .saturating_add(age.saturating_mul(1000))
                .max(0) as u64,
        ),
        None => attribute("expires").and_then(parse_http_date),
    };
    if let Some(expires) = expires {
        fields.push(("expires", format_rfc3339(expires).into()));
    }
    fields.push(("httpOnly", attribute("httponly").is_some().into()));
    fields.push(("secure", attribute("secure").is_some().into()));
    if let Some(same_site) = attribute("samesite") {
        fields.push(("sameSite", same_site.into()));
    }
    Json::Object(fields)
}

fn export_headers(headers: &Headers) -> Json {
    Json::List(
        headers
            .iter()
            .map(|(name, value)| {
                Json::Object(vec![
                    ("name", name.into()),
                    ("value", String::from_utf8_lossy(value).into_owned().into()),
                ])
            })
            .collect(),
    )
}

fn name_value_list(pairs: &[(String, String)]) -> Json {
    Json::List(
        pairs
            .iter()
            .map(|(name, value)| {
                Json::Object(vec![
                    ("name", name.as_str().into()),
                    ("value", value.as_str().into()),
                ])
            })
            .collect(),
    )
}

/// A count or a time as a JSON integer.
fn int<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// JSON whose objects keep their fields in the order written, so the HAR
/// reads as the spec lists them (`serde_json::Value` sorts keys).
enum Json {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
    /// A value built with serde_json (written compactly).
    Raw(Value),
    /// Bytes as a string, UTF-8 as text and other bytes as `\udcXX`
    /// (see [`surrogate_escape`]).
    Escaped(Vec<u8>),
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Self {
        Json::Int(n)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::Str(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::Str(s)
    }
}

impl Json {
    /// Appends the value, pretty-printed (two spaces an indent) at `depth`.
    fn write(&self, out: &mut String, depth: usize) {
        fn newline(out: &mut String, depth: usize) {
            out.push('\n');
            for _ in 0..depth {
                out.push_str("  ");
            }
        }
        match self {
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f}");
            }
            Json::Float(_) => out.push('0'),
            Json::Str(s) => write_json_string(out, s),
            Json::Raw(value) => out.push_str(&value.to_string()),
            Json::Escaped(bytes) => {
                out.push('"');
                surrogate_escape::write_escaped(bytes, out, write_json_chars);
                out.push('"');
            }
            Json::List(items) if items.is_empty() => out.push_str("[]"),
            Json::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(out, depth + 1);
                }
                newline(out, depth);
                out.push(']');
            }
            Json::Object(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    write_json_string(out, key);
                    out.push_str(": ");
                    value.write(out, depth + 1);
                }
                newline(out, depth);
                out.push('}');
            }
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    write_json_chars(s, out);
    out.push('"');
}

/// The characters of a JSON string, escaped (no quotes).
fn write_json_chars(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/mitmproxy/mitm-capture.har"
    );

    fn fixture() -> Vec<Flow> {
        let json = std::fs::read(FIXTURE).expect("the mitmproxy HAR fixture");
        assert!(looks_like_har(&json[..200]));
        import(&json).expect("the fixture imports")
    }

    fn header_pairs(headers: &Headers) -> Vec<(String, Vec<u8>)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect()
    }

    fn values(headers: &Headers, name: &str) -> Vec<String> {
        headers
            .get_all(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    fn response(flow: &Flow) -> &Response {
        flow.response.as_ref().expect("a response")
    }

    #[test]
    fn the_mitmproxy_fixture_imports() {
        let flows = fixture();
        let summary: Vec<(&str, String, Option<u16>)> = flows
            .iter()
            .map(|f| {
                (
                    f.request.method.as_str(),
                    f.request.url(),
                    f.response.as_ref().map(|r| r.status),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("GET", "http://127.0.0.1:19080/data.json".into(), Some(200)),
                (
                    "GET",
                    "http://127.0.0.1:19080/big.txt?q=1&q=2&x=y".into(),
                    Some(200)
                ),
                ("POST", "http://127.0.0.1:19080/post".into(), Some(201)),
                ("GET", "http://127.0.0.1:19080/redirect".into(), Some(302)),
                ("GET", "http://127.0.0.1:19080/teapot".into(), Some(418)),
                ("GET", "http://127.0.0.1:19080/missing".into(), Some(404)),
                ("GET", "https://localhost:19443/data.json".into(), Some(200)),
                ("GET", "https://localhost:19443/big.txt".into(), Some(200)),
                ("PUT", "https://localhost:19443/post".into(), Some(201)),
                ("GET", "http://127.0.0.1:1/unreachable".into(), None),
            ]
        );
        let ids: std::collections::HashSet<&str> = flows.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids.len(), 10, "every flow gets an id of its own");

        // 1: gzip on the wire, the HAR text as content.
        let json = br#"{"hello":"world","items":[1,2,3]}"#.to_vec();
        let first = response(&flows[0]);
        let raw = first.body.bytes().unwrap();
        assert_eq!(
            &raw[..2],
            b"\x1f\x8b",
            "stored gzip-encoded, as on the wire"
        );
        assert_eq!(first.content().unwrap(), [json.as_slice(), b"\n"].concat());
        assert_eq!(
            first.headers.get("content-encoding").as_deref(),
            Some("gzip")
        );
        assert_eq!(flows[0].request.scheme, "http");
        assert_eq!(
            (flows[0].request.host.as_str(), flows[0].request.port),
            ("127.0.0.1", 19080)
        );
        assert_eq!(flows[0].request.timestamp_start, 1_795_925_364_514);
        // send 0.50 + wait 1.51 ms
        assert_eq!(first.timestamp_start, 1_795_925_364_516);
        assert_eq!(
            flows[0].server_conn.as_ref().unwrap().address,
            "127.0.0.1:19080"
        );

        // 2: repeated headers kept, in order and spelling.
        let second = &flows[1];
        assert_eq!(values(&second.request.headers, "x-dup"), ["one", "two"]);
        assert_eq!(second.request.headers.iter().nth(4).unwrap().0, "X-Dup");
        assert_eq!(second.request.cookies().len(), 2);
        assert_eq!(values(&response(second).headers, "X-Multi"), ["a", "b"]);
        assert_eq!(
            values(&response(second).headers, "set-cookie"),
            ["session=abc123; Path=/; HttpOnly"]
        );
        assert_eq!(response(second).content().unwrap().len(), 10801);
        assert_eq!(second.request.query().len(), 3);

        // 3: the form.
        let post = &flows[2];
        assert_eq!(post.request.content().unwrap(), b"user=alice&pass=s3cret");
        assert_eq!(
            post.request.headers.get("content-length").as_deref(),
            Some("22")
        );
        assert_eq!(response(post).content().unwrap(), b"created\n");
        assert_eq!(response(post).reason, "Created");

        assert_eq!(
            response(&flows[3]).headers.get("location").as_deref(),
            Some("http://127.0.0.1:19080/data.json")
        );
        assert_eq!(response(&flows[4]).content().unwrap(), b"I'm a teapot\n");

        // 7 and 9 are HTTP/2, 8 HTTP/1.1 over TLS.
        let versions: Vec<&str> = flows[6..9]
            .iter()
            .map(|f| f.request.http_version.as_str())
            .collect();
        assert_eq!(versions, ["HTTP/2.0", "HTTP/1.1", "HTTP/2.0"]);
        assert_eq!(response(&flows[6]).http_version, "HTTP/2.0");
        assert_ne!(
            response(&flows[6]).body.bytes().unwrap()[..],
            response(&flows[6]).content().unwrap()[..]
        );
        assert_eq!(
            response(&flows[6]).content().unwrap(),
            response(&flows[0]).content().unwrap()
        );
        assert_eq!(flows[8].request.content().unwrap().len(), 615);
        assert!(
            flows[8]
                .request
                .content()
                .unwrap()
                .starts_with(b"-----BEGIN CERTIFICATE-----")
        );

        // 10: the failed exchange.
        let failed = &flows[9];
        assert!(failed.response.is_none());
        let error = failed.error.as_ref().expect("an error");
        assert_eq!(
            error.message,
            "[Errno 111] Connect call failed ('127.0.0.1', 1)"
        );
        assert!(failed.server_conn.is_none());
        assert!(flows[..9].iter().all(|f| f.error.is_none()));
    }

    #[test]
    fn export_then_import_gives_the_same_flows() {
        let flows = fixture();
        let har = export(&flows);
        let again = import(har.as_bytes()).expect("our own HAR imports");
        assert_eq!(again.len(), flows.len());
        for (a, b) in flows.iter().zip(&again) {
            assert_eq!(a.id, b.id);
            assert_eq!(a.request.method, b.request.method);
            assert_eq!(a.request.url(), b.request.url());
            assert_eq!(a.request.http_version, b.request.http_version);
            assert_eq!(a.request.timestamp_start, b.request.timestamp_start);
            assert_eq!(
                header_pairs(&a.request.headers),
                header_pairs(&b.request.headers)
            );
            assert_eq!(a.request.content(), b.request.content());
            assert_eq!(a.error, b.error);
            assert_eq!(
                a.server_conn.as_ref().map(|s| &s.address),
                b.server_conn.as_ref().map(|s| &s.address)
            );
            match (&a.response, &b.response) {
                (Some(a), Some(b)) => {
                    assert_eq!((a.status, &a.reason), (b.status, &b.reason));
                    assert_eq!(a.http_version, b.http_version);
                    assert_eq!(a.timestamp_start, b.timestamp_start);
                    assert_eq!(header_pairs(&a.headers), header_pairs(&b.headers));
                    assert_eq!(a.content().unwrap(), b.content().unwrap());
                }
                (None, None) => {}
                _ => panic!("response lost or invented for {}", a.request.url()),
            }
        }
        // A second round changes nothing but gzip's bytes (which a
        // re-encoding may spell differently): the documents are equal.
        assert_eq!(export(&again), har);
    }

    #[test]
    fn websocket_messages_go_to_chromes_web_socket_messages_and_back() {
        let mut flow = crate::format::tests::full_flow();
        let mut websocket = flow.websocket.take().unwrap();
        websocket.not_kept = 0;
        // HAR keeps no drop mark and no close.
        websocket.messages[1].dropped = false;
        let messages = websocket.messages.clone();
        flow.websocket = Some(websocket);
        let har = export(std::slice::from_ref(&flow));
        let json = parse(&har);
        let entry = &json["log"]["entries"][0];
        assert_eq!(entry["_resourceType"], "websocket");
        assert_eq!(
            entry["_webSocketMessages"][0],
            serde_json::json!({"type": "send", "time": 1_700_000_000.2, "opcode": 1, "data": "hello"})
        );
        assert_eq!(entry["_webSocketMessages"][1]["data"], "AJ//");
        let again = import(har.as_bytes()).unwrap();
        assert_eq!(again[0].websocket.as_ref().unwrap().messages, messages);
    }

    #[test]
    fn export_writes_har_1_2() {
        let flows = fixture();
        let har = parse(&export(&flows));
        let log = &har["log"];
        assert_eq!(log["version"], "1.2");
        assert_eq!(log["creator"]["name"], "witm");
        assert_eq!(log["creator"]["version"], env!("CARGO_PKG_VERSION"));
        let entries = log["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 10);

        let first = &entries[0];
        assert_eq!(first["startedDateTime"], "2026-11-29T04:09:24.514Z");
        assert_eq!(first["time"], 2);
        assert_eq!(first["timings"]["wait"], 2);
        assert_eq!(first["serverIPAddress"], "127.0.0.1");
        assert_eq!(first["_id"], flows[0].id.as_str());
        let content = &first["response"]["content"];
        assert_eq!(content["text"], "{\"hello\":\"world\",\"items\":[1,2,3]}\n");
        assert_eq!(content["size"], 34);
        let raw_len = response(&flows[0]).body.bytes().unwrap().len() as i64;
        assert_eq!(first["response"]["bodySize"], raw_len);
        assert_eq!(content["compression"], 34 - raw_len);
        assert!(content.get("encoding").is_none());
        let cookie = &first["response"]["cookies"][0];
        assert_eq!(cookie["name"], "session");
        assert_eq!(cookie["path"], "/");
        assert_eq!(cookie["httpOnly"], true);
        assert_eq!(cookie["secure"], false);

        let second = &entries[1]["request"];
        assert_eq!(second["queryString"].as_array().unwrap().len(), 3);
        assert_eq!(second["cookies"][1]["name"], "b");
        // GET /big.txt?q=1&q=2&x=y HTTP/1.1, five fields, the blank line.
        let wire: usize = [
            "GET /big.txt?q=1&q=2&x=y HTTP/1.1\r\n".len(),
            second["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    format!(
                        "{}: {}\r\n",
                        h["name"].as_str().unwrap(),
                        h["value"].as_str().unwrap()
                    )
                    .len()
                })
                .sum(),
            2,
        ]
        .iter()
        .sum();
        assert_eq!(second["headersSize"], wire as i64);

        let post = &entries[2]["request"]["postData"];
        assert_eq!(post["mimeType"], "application/x-www-form-urlencoded");
        assert_eq!(post["text"], "user=alice&pass=s3cret");
        assert_eq!(post["params"][1]["name"], "pass");
        assert_eq!(post["params"][1]["value"], "s3cret");
        assert_eq!(entries[2]["request"]["bodySize"], 22);

        assert_eq!(
            entries[3]["response"]["redirectURL"],
            "http://127.0.0.1:19080/data.json"
        );
        assert_eq!(entries[6]["request"]["httpVersion"], "HTTP/2.0");

        let failed = &entries[9]["response"];
        assert_eq!(failed["status"], 0);
        assert_eq!(failed["statusText"], "");
        assert_eq!(
            failed["_error"],
            "[Errno 111] Connect call failed ('127.0.0.1', 1)"
        );
    }

    /// A HAR document witm wrote, parsed (its `\udcXX` escapes as
    /// witm's import reads them).
    fn parse(har: &str) -> Value {
        let json = surrogate_escape::lone_surrogates_to_private_use(har.as_bytes());
        serde_json::from_slice(&json).unwrap()
    }

    fn flow(url: &str) -> Flow {
        let mut flow = witm_flow::testing::trequest("POST", url, "");
        flow.request.headers = Headers::new();
        flow.request.timestamp_start = 1_700_000_000_123;
        flow
    }

    #[test]
    fn timings_come_from_the_connection_and_the_messages_ends() {
        let start = 1_700_000_000_123;
        let server = Arc::new(ServerConn {
            address: "example.com:443".into(),
            timestamp_start: Some(start - 30),
            timestamp_tcp_setup: Some(start - 20),
            timestamp_tls_setup: Some(start - 5),
            ..ServerConn::default()
        });
        let mut first = flow("https://example.com/a");
        first.request.timestamp_end = Some(start + 4);
        let mut response = Response::make(200, Headers::new(), "ok");
        response.timestamp_start = start + 50;
        response.timestamp_end = Some(start + 57);
        first.response = Some(response);
        first.server_conn = Some(server.clone());
        // The second flow on the same connection: no connecting.
        let second = first.clone();
        let mut third = first.clone();
        third.server_conn = Some(Arc::new(ServerConn {
            address: "example.com:443".into(),
            ..ServerConn::default()
        }));
        third.request.timestamp_end = None;

        let json = parse(&export(&[first, second, third]));
        let timings = |i: usize| {
            let t = &json["log"]["entries"][i]["timings"];
            let keys = ["connect", "ssl", "send", "wait", "receive"];
            keys.map(|k| t[k].as_i64().unwrap())
        };
        assert_eq!(timings(0), [10, 15, 4, 46, 7]);
        assert_eq!(json["log"]["entries"][0]["time"], 10 + 15 + 4 + 46 + 7);
        assert_eq!(timings(1), [-1, -1, 4, 46, 7]);
        assert_eq!(timings(2), [-1, -1, 0, 50, 7], "no end: sent at its start");

        let again = import(json.to_string().as_bytes()).unwrap();
        assert_eq!(again[0].request.timestamp_end, Some(start + 4));
        let response = again[0].response.as_ref().unwrap();
        assert_eq!(response.timestamp_end, Some(start + 57));
    }

    #[test]
    fn what_har_lacks_travels_in_custom_fields() {
        let mut a = flow("https://example.com/upload?x=1");
        a.request.headers = Headers::from_pairs([("Content-Type", "application/octet-stream")]);
        a.request.body = Body::Buffered(Bytes::from_static(b"\x00\xff\xfe binary"));
        let mut png = Response::make(
            200,
            Headers::from_pairs([
                ("Content-Type", "image/png"),
                ("Set-Cookie", "id=1; Max-Age=60; Secure; SameSite=Lax"),
            ]),
            Bytes::from_static(b"\x89PNG\r\n\x1a\n\x00\x00"),
        );
        png.timestamp_start = a.request.timestamp_start + 40;
        a.response = Some(png);
        a.marker = ":red_circle:".into();
        a.comment = "look at this".into();
        a.metadata = vec![
            ("plugin".into(), "note".into()),
            ("k".into(), "v".into()),
            (
                "typed".into(),
                MetaValue::Dict(vec![
                    ("raw".into(), MetaValue::Bytes(vec![0, 0xff])),
                    (
                        "list".into(),
                        MetaValue::List(vec![
                            MetaValue::Int(7),
                            MetaValue::Float(0.5),
                            MetaValue::Null,
                            MetaValue::Bool(false),
                        ]),
                    ),
                ]),
            ),
        ];
        let mut client = ClientConn::new("10.0.0.7:50123".parse().unwrap());
        client.tls = Some(ClientTls {
            sni: Some("example.com".into()),
            alpn: Some("h2".into()),
        });
        a.client = Arc::new(client);
        a.server_conn = Some(Arc::new(ServerConn {
            address: "example.com:443".into(),
            sni: Some("example.com".into()),
            alpn: Some("http/1.1".into()),
            peername: Some("93.184.216.34:443".parse().unwrap()),
            ..ServerConn::default()
        }));

        let mut b = flow("http://example.com/stream");
        b.client = a.client.clone();
        b.request.body = Body::Streamed;
        let mut streamed = Response::make(200, Headers::new(), Bytes::new());
        streamed.body = Body::Streamed;
        streamed.timestamp_start = b.request.timestamp_start;
        streamed.timestamp_end = None;
        b.response = Some(streamed);
        b.error = Some(FlowError {
            kind: ErrorKind::Server,
            message: "connection reset mid-body".into(),
            timestamp: b.request.timestamp_start,
        });

        let har = export(&[a.clone(), b.clone()]);
        let json = parse(&har);
        let entry = &json["log"]["entries"][0];
        // As mitmproxy writes a body that is not UTF-8, so it reads it back.
        assert!(entry["request"]["postData"].get("_encoding").is_none());
        assert!(
            har.contains(r#""text": "\u0000\udcff\udcfe binary""#),
            "{har}"
        );
        assert_eq!(entry["response"]["content"]["encoding"], "base64");
        assert_eq!(entry["comment"], "look at this");
        assert_eq!(
            entry["serverIPAddress"], "93.184.216.34",
            "the address the name resolved to"
        );
        let cookie = &entry["response"]["cookies"][0];
        assert_eq!(cookie["expires"], "2023-11-14T22:14:20.163Z");
        assert_eq!(cookie["secure"], true);
        assert_eq!(cookie["sameSite"], "Lax");
        let streamed = &json["log"]["entries"][1]["response"];
        assert_eq!(streamed["content"]["size"], 0);
        assert_eq!(streamed["content"]["comment"], STREAMED);
        assert_eq!(streamed["_error"], "connection reset mid-body");

        let again = import(har.as_bytes()).unwrap();
        let (a2, b2) = (&again[0], &again[1]);
        assert_eq!(a2.id, a.id);
        assert_eq!(a2.marker, ":red_circle:");
        assert_eq!(a2.comment, "look at this");
        assert_eq!(a2.metadata, a.metadata);
        assert_eq!(a2.request.body, a.request.body);
        assert_eq!(response(a2).body, response(&a).body);
        assert_eq!(response(a2).timestamp_start, a.request.timestamp_start + 40);
        assert_eq!(a2.client.address, a.client.address);
        assert_eq!(a2.client.tls, a.client.tls);
        assert_eq!(a2.server_conn, a.server_conn);
        assert!(
            Arc::ptr_eq(&a2.client, &b2.client),
            "one connection, shared"
        );
        assert_eq!(b2.request.body, Body::Streamed);
        assert_eq!(response(b2).body, Body::Streamed);
        assert_eq!(b2.error, b.error);
        assert!(!b2.is_marked());
    }

    #[test]
    fn non_ascii_urls_import_as_a_browser_sends_them() {
        let har = r#"{"log": {"version": "1.2", "entries": [
            {"startedDateTime": "2024-05-01T10:00:00.250Z", "time": 30,
             "request": {"method": "GET", "url": "https://bücher.example/ünï café?q=ä#frag",
                         "httpVersion": "HTTP/1.1", "headers": []},
             "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                          "headers": [], "content": {"size": 0, "mimeType": ""}},
             "timings": {"send": 0, "wait": 1, "receive": 0}}]}}"#;
        let flows = import(har.as_bytes()).unwrap();
        let request = &flows[0].request;
        assert_eq!(request.host, "xn--bcher-kva.example");
        assert_eq!(request.path, "/%C3%BCn%C3%AF%20caf%C3%A9?q=%C3%A4");
        assert_eq!(
            request.url(),
            "https://xn--bcher-kva.example/%C3%BCn%C3%AF%20caf%C3%A9?q=%C3%A4"
        );
        let bad = har.replace("bücher.example", r"b\u00fccher\u0000.example");
        assert!(import(bad.as_bytes()).is_err(), "not a domain name");
    }

    #[test]
    fn browser_hars_import() {
        let brotli = witm_flow::encoding::ContentEncoding::Brotli;
        let har = r#"{"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
          "entries": [
            {"startedDateTime": "2024-05-01T10:00:00.250Z", "time": 30,
             "request": {"method": "GET", "url": "https://example.com/app.js#frag", "httpVersion": "h2",
               "headers": [{"name": ":authority", "value": "example.com"}, {"name": "accept", "value": "*/*"}]},
             "response": {"status": 200, "statusText": "", "httpVersion": "h2",
               "headers": [{"name": "content-encoding", "value": "br"}, {"name": "content-length", "value": "3"}],
               "content": {"size": 11, "mimeType": "text/javascript", "text": "let x = 1;\n"}},
             "timings": {"send": 1.2, "wait": 20.4, "receive": 8}},
            {"startedDateTime": "2024-05-01T10:00:01Z",
             "request": {"method": "GET", "url": "data:image/png;base64,AAAA"},
             "response": {"status": 200}},
            {"startedDateTime": "2024-05-01T12:00:02.5+02:00",
             "request": {"method": "POST", "url": "http://[::1]:8080", "httpVersion": "HTTP/1.1",
               "headers": [{"name": "Content-Type", "value": "application/x-www-form-urlencoded"}],
               "postData": {"mimeType": "application/x-www-form-urlencoded",
                 "params": [{"name": "a b", "value": "1&2"}, {"name": "c", "value": "é"}]}},
             "response": {"status": 200, "headers": [{"name": "Content-Encoding", "value": "compress"}],
               "content": {"size": 2, "mimeType": "text/plain", "text": "hi"}}},
            {"startedDateTime": "2024-05-01T10:00:03.000Z", "time": 5,
             "request": {"method": "GET", "url": "https://down.test/"},
             "response": {"status": 0, "statusText": "", "_error": "net::ERR_CONNECTION_REFUSED"}},
            {"startedDateTime": "2024-05-01T10:00:04.000Z",
             "request": {"method": "GET", "url": "https://gone.test/"}}
          ]}}"#;
        let flows = import(har.as_bytes()).unwrap();
        assert_eq!(flows.len(), 4, "the data: URL is left out");

        let js = &flows[0];
        assert_eq!(js.request.path, "/app.js");
        assert_eq!(js.request.http_version, "HTTP/2.0");
        assert_eq!(
            header_pairs(&js.request.headers),
            [("accept".into(), b"*/*".to_vec())]
        );
        let r = response(js);
        assert_eq!(r.http_version, "HTTP/2.0");
        assert_eq!(r.content().unwrap(), b"let x = 1;\n");
        let raw = r.body.bytes().unwrap();
        assert_eq!(brotli.decode(raw, 100).unwrap(), b"let x = 1;\n");
        assert_eq!(r.headers.get("content-length"), Some(raw.len().to_string()));
        assert_eq!(js.request.timestamp_start, 1_714_557_600_250);
        assert_eq!(r.timestamp_start, 1_714_557_600_250 + 22);

        let form = &flows[1];
        assert_eq!(
            (form.request.host.as_str(), form.request.port),
            ("::1", 8080)
        );
        assert_eq!(form.request.path, "/");
        assert_eq!(form.request.content().unwrap(), b"a+b=1%262&c=%C3%A9");
        assert_eq!(form.request.timestamp_start, 1_714_557_602_500);
        let r = response(form);
        assert!(
            !r.headers.contains("content-encoding"),
            "an unknown coding is dropped"
        );
        assert_eq!(r.body.bytes().unwrap().as_ref(), b"hi");

        assert_eq!(
            flows[2].error.as_ref().unwrap().message,
            "net::ERR_CONNECTION_REFUSED"
        );
        assert_eq!(
            flows[2].error.as_ref().unwrap().timestamp,
            1_714_557_603_005
        );
        assert!(flows[2].response.is_none());
        assert_eq!(flows[3].error.as_ref().unwrap().message, "no response");
    }

    #[test]
    fn broken_documents_are_errors_not_panics() {
        let full = std::fs::read(FIXTURE).unwrap();
        for cut in [0, 1, 100, full.len() / 2, full.len() - 2] {
            let e = import(&full[..cut]).unwrap_err();
            assert!(e.to_string().starts_with("not valid JSON"), "{e}");
        }
        let cases: &[(&str, &str)] = &[
            ("[]", "not a HAR document"),
            ("{}", "log: missing"),
            (r#"{"log": {}}"#, "log.entries: missing"),
            (
                r#"{"log": {"entries": {}}}"#,
                "log.entries: expected an array",
            ),
            (
                r#"{"log": {"entries": [{}]}}"#,
                "log.entries[0].request: missing",
            ),
            (
                r#"{"log": {"entries": [{"request": {"method": "GET", "url": "http://a/"}}, 7]}}"#,
                "log.entries[1]: expected an object, found a number",
            ),
            (
                r#"{"log": {"entries": [{"request": {"url": "http://a/"}}]}}"#,
                "log.entries[0].request.method: missing",
            ),
            (
                r#"{"log": {"entries": [{"request": {"method": "GET", "url": "http://a:99999/"}}]}}"#,
                "log.entries[0].request.url: URL \"http://a:99999/\" has an invalid port",
            ),
            (
                r#"{"log": {"entries": [{"request": {"method": "GET", "url": "/relative"}}]}}"#,
                "log.entries[0].request.url: not an absolute URL",
            ),
            (
                r#"{"log": {"entries": [{"startedDateTime": "yesterday", "request": {"method": "GET", "url": "http://a/"}}]}}"#,
                "log.entries[0].startedDateTime: not an RFC 3339 date",
            ),
            (
                r#"{"log": {"entries": [{"request": {"method": "GET", "url": "http://a/", "headers": [{"name": 1}]}}]}}"#,
                "log.entries[0].request.headers[0].name: expected a string, found a number",
            ),
            (
                r#"{"log": {"entries": [{"request": {"method": "GET", "url": "http://a/"}, "response": {"status": 70000}}]}}"#,
                "log.entries[0].response.status: not an HTTP status code",
            ),
            (
                r#"{"log": {"entries": [{"request": {"method": "GET", "url": "http://a/"}, "response": {"status": 200, "content": {"text": "!!", "encoding": "base64"}}}]}}"#,
                "log.entries[0].response.content.text: not valid base64",
            ),
        ];
        for (json, expected) in cases {
            let e = import(json.as_bytes()).unwrap_err();
            assert!(e.to_string().starts_with(expected), "{json}: {e}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00+00:00"),
            Some(951_868_800_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-29T04:09:24.514457+00:00"),
            Some(1_795_925_364_514)
        );
        assert_eq!(
            parse_rfc3339("2026-11-29T05:09:24.5+01:00"),
            Some(1_795_925_364_500)
        );
        assert_eq!(
            parse_rfc3339("2026-11-28t23:09:24.514-05:00"),
            Some(1_795_925_364_514)
        );
        assert_eq!(
            parse_rfc3339("2026-11-29 04:09:24"),
            Some(1_795_925_364_000)
        );
        for bad in [
            "",
            "2026-11-29",
            "2026-13-01T00:00:00Z",
            "2026-11-29T04:09:24.Z",
            "2026-11-29T04:09:24+0100",
            "1969-12-31T23:59:59Z",
            "2026-11-29T04:09:24Zjunk",
            "２026-11-29T04:09:24Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        for ms in [0, 951_868_800_000, 1_795_925_364_514, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
        assert_eq!(
            format_rfc3339(1_795_925_364_514),
            "2026-11-29T04:09:24.514Z"
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            parse_rfc3339("1994-11-06T08:49:37Z")
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            parse_rfc3339("1994-11-06T08:49:37Z")
        );
        assert_eq!(parse_http_date("soon"), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 99999999999999 08:49:37 GMT"),
            None
        );
    }

    #[test]
    fn har_is_recognised_cheaply() {
        assert!(looks_like_har(b"{\"log\": {"));
        assert!(looks_like_har(
            b"\xEF\xBB\xBF\n  {\n  \"log\": {\"version\""
        ));
        assert!(!looks_like_har(b"[{\"log\": 1}]"));
        assert!(!looks_like_har(b"{\"other\": 1}"));
        assert!(!looks_like_har(b""));
        assert!(!looks_like_har(b"   "));
        assert!(!looks_like_har(b"5:hello,"));
    }

    #[test]
    fn forms_encode_and_decode() {
        let pairs = vec![
            ("a b".to_owned(), "1&2=3".to_owned()),
            ("ü".to_owned(), String::new()),
        ];
        let form = urlencode(&pairs);
        assert_eq!(form, "a+b=1%262%3D3&%C3%BC=");
        assert_eq!(urldecode(&form), pairs);
        assert_eq!(
            urldecode("x=%zz&y"),
            [("x".into(), "%zz".into()), ("y".into(), String::new())]
        );
    }
}
