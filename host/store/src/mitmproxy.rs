//! Reading mitmproxy capture files (`mitmdump -w`).
//!
//! A capture is a concatenation of tnetstring dictionaries, one per flow,
//! each carrying its flow format `version`. Version 21 (mitmproxy 10–11) is
//! read directly; versions 12 to 20 (mitmproxy 7 onwards) are brought to 21
//! by the same steps mitmproxy's own `io/compat.py` takes, as far as they
//! touch fields witm reads. Older files (mitmproxy 6 and before) are refused
//! with a message saying how to convert them.
//!
//! What is read: HTTP flows — request, response (bodies as on the wire),
//! error, client and server addresses, TLS SNI/ALPN, id, marked, comment,
//! metadata, WebSocket messages and close — and TCP flows with their
//! messages. What is not: UDP/DNS flows (skipped and counted) and server
//! certificates.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use witm_flow::{
    Body, ClientConn, ClientTls, ErrorKind, Flow, FlowError, Headers, RecordedMessage, ReplaySide,
    Request, Response, ServerConn, TcpData, WebSocketData,
};

use crate::format::{StoreError, read_exactly};
use crate::tnetstring::{self, Value};

/// The mitmproxy flow format version read natively.
pub const FLOW_FORMAT_VERSION: i64 = 21;

/// The oldest version migrated.
const OLDEST_MIGRATED: i64 = 12;

/// Largest flow accepted (bytes of one tnetstring).
const MAX_FLOW: usize = 1 << 30;

/// Does `prefix` look like the start of a mitmproxy capture (a tnetstring
/// dictionary length)?
pub fn looks_like_mitmproxy(prefix: &[u8]) -> bool {
    let digits = prefix.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && digits <= 15 && prefix.get(digits) == Some(&b':')
}

/// Reads flows from a mitmproxy capture, one at a time.
pub struct MitmproxyReader<R: Read> {
    input: R,
    offset: u64,
    skipped_bytes: u64,
    skipped_flows: u64,
    done: bool,
}

impl<R: Read> MitmproxyReader<R> {
    /// A reader of `input`, which starts with the first flow.
    pub fn new(input: R) -> Self {
        Self {
            input,
            offset: 0,
            skipped_bytes: 0,
            skipped_flows: 0,
            done: false,
        }
    }

    /// Bytes at the end that were not a complete flow (a truncated file).
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }

    /// Flows that are not HTTP (TCP, UDP, DNS), which witm does not model.
    pub fn skipped_flows(&self) -> u64 {
        self.skipped_flows
    }

    /// The next HTTP flow, `Ok(None)` at the end.
    pub fn next_flow(&mut self) -> Result<Option<Flow>, StoreError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let start = self.offset;
            let Some(raw) = self.read_raw()? else {
                return Ok(None);
            };
            let corrupt = |message: String| StoreError::Corrupt {
                offset: start,
                message,
            };
            let (value, _) = tnetstring::decode(&Bytes::from(raw)).map_err(|e| {
                self.done = true;
                corrupt(e.message)
            })?;
            let value = migrate(value).map_err(|e| {
                self.done = true;
                StoreError::Format(e)
            })?;
            match value.get("type").and_then(Value::as_string).as_deref() {
                Some("http" | "tcp") => {}
                _ => {
                    self.skipped_flows += 1;
                    continue;
                }
            }
            return flow_from_state(&value).map(Some).map_err(corrupt);
        }
    }

    /// One whole tnetstring, or `None` at the end (or at a truncated tail).
    fn read_raw(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut raw = Vec::with_capacity(64);
        let mut byte = [0u8; 1];
        loop {
            if self.input.read(&mut byte)? == 0 {
                self.done = true;
                self.skipped_bytes = raw.len() as u64;
                return Ok(None);
            }
            raw.push(byte[0]);
            if byte[0] == b':' {
                break;
            }
            if !byte[0].is_ascii_digit() || raw.len() > 16 {
                self.done = true;
                return Err(StoreError::Corrupt {
                    offset: self.offset,
                    message: "expected a flow (a tnetstring length), found other bytes".into(),
                });
            }
        }
        let length: usize = std::str::from_utf8(&raw[..raw.len() - 1])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n| n <= MAX_FLOW)
            .ok_or_else(|| StoreError::Corrupt {
                offset: self.offset,
                message: "a flow length out of range".into(),
            })?;
        let head = raw.len();
        let got = read_exactly(&mut self.input, &mut raw, length + 1)?;
        if got < length + 1 {
            self.done = true;
            self.skipped_bytes = (head + got) as u64;
            return Ok(None);
        }
        self.offset += raw.len() as u64;
        Ok(Some(raw))
    }
}

impl<R: Read> Iterator for MitmproxyReader<R> {
    type Item = Result<Flow, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_flow().transpose()
    }
}

/// Brings a flow state to version 21, one step per version as mitmproxy's
/// `io/compat.py` does (only the parts touching fields witm reads).
fn migrate(mut state: Value) -> Result<Value, String> {
    loop {
        let version = match state.get("version") {
            Some(Value::Int(v)) => *v,
            Some(Value::List(_)) | None => {
                return Err("a mitmproxy capture from mitmproxy 3 or older; open it in \
                            mitmproxy 7 or newer and save it again to convert it"
                    .into());
            }
            Some(_) => return Err("a mitmproxy flow with a damaged version field".into()),
        };
        if version == FLOW_FORMAT_VERSION {
            return Ok(state);
        }
        if version > FLOW_FORMAT_VERSION {
            return Err(format!(
                "mitmproxy flow format version {version} is newer than witm reads \
                 ({FLOW_FORMAT_VERSION}); save the capture with mitmproxy 11 or export it as HAR"
            ));
        }
        if version < OLDEST_MIGRATED {
            return Err(format!(
                "mitmproxy flow format version {version} (before mitmproxy 7) is older than witm \
                 reads ({OLDEST_MIGRATED}–{FLOW_FORMAT_VERSION}); open it in mitmproxy 7 or newer \
                 and save it again to convert it"
            ));
        }
        match version {
            // marked became a string naming the marker.
            12 => {
                let marked = state.get("marked").and_then(Value::as_bool) == Some(true);
                state.set("marked", Value::str(if marked { ":default:" } else { "" }));
            }
            // comment added; a missing response start takes the request end.
            13 => {
                state.set("comment", Value::str(""));
                let request_end = state
                    .get("request")
                    .and_then(|r| r.get("timestamp_end"))
                    .cloned();
                if let Some(response) = state.get_mut("response")
                    && response.get("timestamp_start").is_some_and(Value::is_null)
                    && let Some(end) = request_end
                {
                    response.set("timestamp_start", end);
                }
            }
            // 14→15 (WebSocket messages), 15→16 (timestamp_created),
            // 16→17 (mode dropped), 17→18 (proxy_mode), 19→20 (state):
            // nothing witm reads. 20→21 likewise.
            14..=17 | 19 | 20 => {}
            // Connection addresses were renamed.
            18 => {
                for (conn, from) in [("client_conn", "address"), ("server_conn", "ip_address")] {
                    if let Some(c) = state.get_mut(conn) {
                        let address = c.remove(from).unwrap_or(Value::Null);
                        c.set("peername", address);
                    }
                }
            }
            _ => unreachable!("versions outside 12..21 are refused above"),
        }
        state.set("version", Value::Int(version + 1));
    }
}

/// Float seconds (mitmproxy) to ms (witm).
fn ms(value: Option<&Value>) -> u64 {
    value
        .and_then(Value::as_float)
        .map_or(0, |s| (s * 1000.0).round().max(0.0) as u64)
}

/// A time that may be `None` (float seconds) as ms.
fn opt_ms(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_float).map(|_| ms(value))
}

fn text(state: &Value, key: &str) -> Option<String> {
    state.get(key).and_then(Value::as_string)
}

fn required(state: &Value, path: &str, key: &str) -> Result<String, String> {
    text(state, key).ok_or_else(|| format!("{path}.{key} is missing"))
}

fn headers(state: &Value, path: &str) -> Result<Headers, String> {
    let list = state
        .get("headers")
        .and_then(Value::as_list)
        .ok_or_else(|| format!("{path}.headers is missing"))?;
    crate::format::headers_from_list(list).map_err(|()| format!("{path}.headers has a bad entry"))
}

/// mitmproxy's `trailers`: `None`, or a list like `headers`.
fn trailers(state: &Value, path: &str) -> Result<Option<Headers>, String> {
    match state.get("trailers") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(list)) => crate::format::headers_from_list(list)
            .map(Some)
            .map_err(|()| format!("{path}.trailers has a bad entry")),
        Some(_) => Err(format!("{path}.trailers is not a list")),
    }
}

fn body(state: &Value) -> Body {
    match state.get("content") {
        Some(Value::Bytes(b)) => Body::Buffered(b.clone()),
        Some(Value::Str(s)) => Body::Buffered(Bytes::from(s.clone())),
        // mitmproxy stores None for a body it streamed without keeping.
        _ => Body::Streamed,
    }
}

/// `[host, port]` as an address; hosts that are names resolve to nothing.
fn address(value: Option<&Value>) -> Option<(String, u16)> {
    match value?.as_list()? {
        [host, port, ..] => Some((host.as_string()?, u16::try_from(port.as_int()?).ok()?)),
        _ => None,
    }
}

/// A version-21 HTTP or TCP flow state as a witm flow.
fn flow_from_state(state: &Value) -> Result<Flow, String> {
    let is_tcp = text(state, "type").as_deref() == Some("tcp");
    let (request, response) = match is_tcp {
        true => (Request::default(), None),
        false => http_messages(state)?,
    };
    let error = match state.get("error") {
        None | Some(Value::Null) => None,
        // mitmproxy's errors name no origin; almost all are the server's.
        Some(e) => Some(FlowError {
            kind: ErrorKind::Server,
            message: text(e, "msg").unwrap_or_default(),
            timestamp: ms(e.get("timestamp")),
        }),
    };
    let client = state.get("client_conn");
    let client_address = client
        .and_then(|c| address(c.get("peername")))
        .and_then(|(host, port)| Some(SocketAddr::new(host.parse::<IpAddr>().ok()?, port)))
        .unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
    let client = ClientConn {
        id: client
            .and_then(|c| text(c, "id"))
            .unwrap_or_else(Flow::new_id),
        address: client_address,
        timestamp_start: ms(client.and_then(|c| c.get("timestamp_start"))),
        tls: client
            .filter(|c| c.get("tls").and_then(Value::as_bool) == Some(true))
            .map(|c| ClientTls {
                sni: text(c, "sni"),
                alpn: text(c, "alpn"),
            }),
    };
    let server_conn = state.get("server_conn").and_then(|s| {
        let (host, port) = address(s.get("address"))?;
        Some(Arc::new(ServerConn {
            address: format!("{host}:{port}"),
            sni: text(s, "sni"),
            alpn: text(s, "alpn"),
            cert: None,
            peername: address(s.get("peername"))
                .and_then(|(ip, port)| Some(SocketAddr::new(ip.parse().ok()?, port))),
            timestamp_start: opt_ms(s.get("timestamp_start")),
            timestamp_tcp_setup: opt_ms(s.get("timestamp_tcp_setup")),
            timestamp_tls_setup: opt_ms(s.get("timestamp_tls_setup")),
        }))
    });
    let metadata = match state.get("metadata") {
        Some(Value::Dict(pairs)) => pairs
            .iter()
            .filter_map(|(k, v)| Some((k.as_string()?, v.into())))
            .collect(),
        _ => Vec::new(),
    };
    let mut flow = Flow {
        id: text(state, "id").unwrap_or_else(Flow::new_id),
        client: Arc::new(client),
        request,
        response,
        error,
        server_conn,
        metadata,
        marker: text(state, "marked").unwrap_or_default(),
        is_replay: text(state, "is_replay").and_then(|r| ReplaySide::from_name(&r)),
        websocket: state.get("websocket").and_then(websocket),
        comment: text(state, "comment").unwrap_or_default(),
        killed: false,
        ..Flow::default()
    };
    if is_tcp {
        let (host, port) = flow
            .server_conn
            .as_ref()
            .and_then(|s| s.address.rsplit_once(':'))
            .map(|(h, p)| (h.to_owned(), p.parse().unwrap_or(0)))
            .unwrap_or_default();
        let tcp = Flow::tcp(flow.client.clone(), &host, port);
        flow.request = tcp.request;
        flow.request.timestamp_start = ms(state.get("timestamp_created"));
        flow.server_conn = flow.server_conn.or(tcp.server_conn);
        flow.tcp = Some(Box::new(tcp_messages(state.get("messages"))));
    }
    Ok(flow)
}

/// A `TCPFlow`'s messages, `(from_client, content, timestamp)` each;
/// entries of another shape are skipped.
fn tcp_messages(messages: Option<&Value>) -> TcpData {
    let mut data = TcpData::default();
    for message in messages.and_then(Value::as_list).unwrap_or_default() {
        if let Some([from_client, content, timestamp, ..]) = message.as_list() {
            data.record(RecordedMessage {
                from_client: from_client.as_bool().unwrap_or(false),
                is_text: false,
                content: Bytes::copy_from_slice(content.as_bytes().unwrap_or_default()),
                timestamp: ms(Some(timestamp)),
                dropped: false,
            });
        }
    }
    data
}

/// An HTTP flow state's request and response.
fn http_messages(state: &Value) -> Result<(Request, Option<Response>), String> {
    let r = state.get("request").ok_or("the flow has no request")?;
    let http_version = required(r, "request", "http_version")?;
    let request = Request {
        method: required(r, "request", "method")?,
        scheme: required(r, "request", "scheme")?,
        host: required(r, "request", "host")?,
        port: r
            .get("port")
            .and_then(Value::as_int)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("request.port is missing")?,
        path: required(r, "request", "path")?,
        http_version,
        headers: headers(r, "request")?,
        body: body(r),
        trailers: trailers(r, "request")?,
        timestamp_start: ms(r.get("timestamp_start")),
        timestamp_end: opt_ms(r.get("timestamp_end")),
        stream: false,
    };
    let response = match state.get("response") {
        None | Some(Value::Null) => None,
        Some(r) => Some(Response {
            status: r
                .get("status_code")
                .and_then(Value::as_int)
                .and_then(|s| u16::try_from(s).ok())
                .ok_or("response.status_code is missing")?,
            reason: text(r, "reason").unwrap_or_default(),
            http_version: required(r, "response", "http_version")?,
            headers: headers(r, "response")?,
            body: body(r),
            trailers: trailers(r, "response")?,
            timestamp_start: ms(r.get("timestamp_start")),
            timestamp_end: opt_ms(r.get("timestamp_end")),
            stream: false,
        }),
    };
    Ok((request, response))
}

/// mitmproxy's `WebSocketData` state (messages `(type, from_client,
/// content, timestamp, dropped, …)`, type 1 text); messages that are not
/// such tuples are skipped.
fn websocket(state: &Value) -> Option<Box<WebSocketData>> {
    let Value::Dict(_) = state else {
        return None;
    };
    let mut data = WebSocketData {
        closed_by_client: state.get("closed_by_client").and_then(Value::as_bool),
        close_code: state
            .get("close_code")
            .and_then(Value::as_int)
            .and_then(|c| u16::try_from(c).ok()),
        close_reason: text(state, "close_reason").unwrap_or_default(),
        timestamp_end: opt_ms(state.get("timestamp_end")),
        ..WebSocketData::default()
    };
    for message in state
        .get("messages")
        .and_then(Value::as_list)
        .unwrap_or_default()
    {
        if let Some([kind, from_client, content, timestamp, rest @ ..]) = message.as_list() {
            data.record(RecordedMessage {
                from_client: from_client.as_bool().unwrap_or(false),
                is_text: kind.as_int() == Some(1),
                content: Bytes::copy_from_slice(content.as_bytes().unwrap_or_default()),
                timestamp: ms(Some(timestamp)),
                dropped: rest.first().and_then(Value::as_bool).unwrap_or(false),
            });
        }
    }
    Some(Box::new(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use witm_flow::HttpMessage;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/mitmproxy/mitm-capture.flow"
    );

    /// The decoded body of the fixture's data.json flows.
    const DATA_JSON: &[u8] = b"{\"hello\":\"world\",\"items\":[1,2,3]}\n";

    fn fixture() -> Vec<u8> {
        std::fs::read(FIXTURE).expect("the mitmproxy fixture beside the checkout")
    }

    fn read(bytes: &[u8]) -> (Vec<Flow>, u64) {
        let mut reader = MitmproxyReader::new(bytes);
        let flows = reader.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
        (flows, reader.skipped_bytes())
    }

    #[test]
    fn the_fixture_reads_back_with_its_methods_urls_statuses_and_bodies() {
        let (flows, skipped) = read(&fixture());
        assert_eq!(skipped, 0);
        let summary: Vec<(String, String, Option<u16>)> = flows
            .iter()
            .map(|f| {
                (
                    f.request.method.clone(),
                    f.request.url(),
                    f.response.as_ref().map(|r| r.status),
                )
            })
            .collect();
        let expected = [
            ("GET", "http://127.0.0.1:19080/data.json", Some(200)),
            (
                "GET",
                "http://127.0.0.1:19080/big.txt?q=1&q=2&x=y",
                Some(200),
            ),
            ("POST", "http://127.0.0.1:19080/post", Some(201)),
            ("GET", "http://127.0.0.1:19080/redirect", Some(302)),
            ("GET", "http://127.0.0.1:19080/teapot", Some(418)),
            ("GET", "http://127.0.0.1:19080/missing", Some(404)),
            ("GET", "https://localhost:19443/data.json", Some(200)),
            ("GET", "https://localhost:19443/big.txt", Some(200)),
            ("PUT", "https://localhost:19443/post", Some(201)),
            ("GET", "http://127.0.0.1:1/unreachable", None),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(m, u, s)| (m.to_string(), u.to_string(), *s))
            .collect();
        assert_eq!(summary, expected);

        let gzip = flows[0].response.as_ref().unwrap();
        assert_eq!(
            gzip.headers.get("content-encoding").as_deref(),
            Some("gzip")
        );
        assert_eq!(gzip.content().unwrap(), DATA_JSON.to_vec());
        assert_ne!(gzip.body.bytes().unwrap().as_ref(), gzip.content().unwrap());
        assert_eq!(flows[6].request.http_version, "HTTP/2.0");
        assert_eq!(
            flows[6].response.as_ref().unwrap().content().unwrap(),
            DATA_JSON.to_vec()
        );
        let big = &flows[1];
        assert_eq!(big.request.headers.get_all("x-dup").count(), 2);
        assert_eq!(
            big.request.headers.get("cookie").as_deref(),
            Some("a=1; b=2")
        );
        let big_response = big.response.as_ref().unwrap();
        assert_eq!(big_response.content().unwrap().len(), 10801);
        assert_eq!(big_response.headers.get_all("x-multi").count(), 2);
        assert!(big_response.headers.contains("set-cookie"));
        assert_eq!(
            flows[2].request.content().unwrap(),
            b"user=alice&pass=s3cret"
        );
        assert_eq!(
            flows[2].response.as_ref().unwrap().content().unwrap(),
            b"created\n"
        );
        assert_eq!(flows[8].request.content().unwrap().len(), 615);
        let error = flows[9].error.as_ref().unwrap();
        assert!(
            error.message.contains("Connect call failed"),
            "{}",
            error.message
        );
        assert!(flows[9].response.is_none());
        assert_eq!(flows[0].client.address.ip().to_string(), "127.0.0.1");
        assert!(flows[0].request.timestamp_start > 1_700_000_000_000);
        assert_eq!(flows[0].id, "5e9b45c8-c957-4d88-a6a0-2ac7fba5170e");
        assert!(flows[6].client.tls.is_some());
    }

    #[test]
    fn a_truncated_capture_gives_every_complete_flow() {
        let bytes = fixture();
        let (all, _) = read(&bytes);
        for cut in [bytes.len() - 1, bytes.len() / 2, 3] {
            let (flows, skipped) = read(&bytes[..cut]);
            assert!(flows.len() < all.len());
            let complete: usize = {
                let mut reader = MitmproxyReader::new(&bytes[..]);
                let mut n = 0;
                while reader.next_flow().unwrap().is_some() && reader.offset <= cut as u64 {
                    n += 1;
                }
                n
            };
            assert_eq!(flows.len(), complete, "cut at {cut}");
            assert!(skipped > 0);
        }
    }

    #[test]
    fn older_versions_migrate_and_unknown_ones_are_refused() {
        let bytes = Bytes::from(fixture());
        let (mut state, _) = tnetstring::decode(&bytes).unwrap();
        // Shape it like version 12: boolean marked, no comment, old address names.
        state.set("version", Value::Int(12));
        state.set("marked", Value::Bool(true));
        state.remove("comment");
        let client = state.get_mut("client_conn").unwrap();
        let peer = client.remove("peername").unwrap();
        client.set("address", peer);
        let (flows, _) = read(&state.to_vec());
        assert!(flows[0].is_marked());
        assert_eq!(flows[0].comment, "");
        assert_eq!(flows[0].client.address.to_string(), "127.0.0.1:40166");

        for (version, words) in [(22, "newer"), (9, "older")] {
            state.set("version", Value::Int(version));
            let err = MitmproxyReader::new(&state.to_vec()[..])
                .next()
                .unwrap()
                .unwrap_err();
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn garbage_is_an_error_naming_the_offset() {
        let mut bytes = fixture();
        let (_, first_len) = tnetstring::decode(&Bytes::from(bytes.clone())).unwrap();
        bytes[first_len] = b'x';
        let mut reader = MitmproxyReader::new(&bytes[..]);
        assert!(reader.next().unwrap().is_ok());
        let err = reader.next().unwrap().unwrap_err();
        assert!(
            err.to_string().contains(&format!("byte {first_len}")),
            "{err}"
        );
    }
}
