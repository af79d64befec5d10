//! Writing mitmproxy captures (`witm export --mitmproxy`): each flow as the
//! tnetstring dictionary mitmproxy's `HTTPFlow.get_state()` (or
//! `TCPFlow.get_state()`) gives, flow
//! format 21 (what mitmproxy 10, 11 and 12 read, 12 after its own
//! migration), so `mitmproxy -r` opens a witm capture.
//!
//! mitmproxy's `set_state` wants every key, with Python's types: bytes for
//! methods, paths, header fields, versions and reasons, text for hosts and
//! ids, floats of seconds for timestamps. What witm does not record is
//! written as mitmproxy writes an unknown (`None`, empty lists): TLS
//! versions and ciphers, connection end times, the request's end, the
//! server's socket name.

use std::net::IpAddr;

use witm_flow::{
    Body, Flow, FlowError, Headers, Request, Response, ServerConn, TcpData, WebSocketData,
};

use crate::mitmproxy::FLOW_FORMAT_VERSION;
use crate::tnetstring::Value;

/// The encoded state of `flow`, appended to `out`.
pub fn write_flow(flow: &Flow, out: &mut Vec<u8>) {
    flow_state(flow).encode(out);
}

/// `flow` as mitmproxy's `HTTPFlow.get_state()` (or `TCPFlow`'s, for a
/// TCP flow) of format 21.
pub fn flow_state(flow: &Flow) -> Value {
    let created = seconds(flow.request.timestamp_start);
    let mut state = vec![
        ("id", Value::str(flow.id.as_str())),
        ("error", flow.error.as_ref().map_or(Value::Null, error)),
        ("client_conn", client_conn(flow)),
        (
            "server_conn",
            flow.server_conn
                .as_deref()
                .map_or_else(|| no_server_conn(flow), |s| server_conn(flow, s)),
        ),
        ("intercepted", Value::Bool(false)),
        (
            "is_replay",
            flow.is_replay
                .map_or(Value::Null, |side| Value::str(side.name())),
        ),
        ("marked", Value::str(flow.marker.as_str())),
        (
            "metadata",
            Value::dict(
                flow.metadata
                    .iter()
                    .map(|(k, v)| (k.as_str(), Value::from(v))),
            ),
        ),
        ("comment", Value::str(flow.comment.as_str())),
        ("timestamp_created", Value::Float(created)),
        ("version", Value::Int(FLOW_FORMAT_VERSION)),
    ];
    match flow.tcp.as_deref() {
        Some(tcp) => state.extend([("type", Value::str("tcp")), ("messages", tcp_messages(tcp))]),
        None => state.extend([
            ("type", Value::str("http")),
            ("request", request(&flow.request)),
            (
                "response",
                flow.response.as_ref().map_or(Value::Null, response),
            ),
            (
                "websocket",
                flow.websocket.as_deref().map_or(Value::Null, websocket),
            ),
        ]),
    }
    state.push(("backup", Value::Null));
    Value::dict(state)
}

/// A `TCPFlow`'s messages: `(from_client, content, timestamp)` each.
fn tcp_messages(tcp: &TcpData) -> Value {
    Value::List(
        tcp.messages
            .iter()
            .map(|m| {
                Value::List(vec![
                    Value::Bool(m.from_client),
                    Value::Bytes(m.content.clone()),
                    Value::Float(seconds(m.timestamp)),
                ])
            })
            .collect(),
    )
}

/// ms since the epoch as mitmproxy's float seconds.
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn bytes(text: &str) -> Value {
    Value::Bytes(bytes::Bytes::copy_from_slice(text.as_bytes()))
}

fn fields(headers: &Headers) -> Value {
    Value::List(
        headers
            .iter_shared()
            .map(|(name, value)| Value::List(vec![bytes(name), Value::Bytes(value)]))
            .collect(),
    )
}

fn content(body: &Body) -> Value {
    match body {
        Body::Buffered(b) => Value::Bytes(b.clone()),
        // As mitmproxy stores a body it streamed without keeping.
        Body::Streamed => Value::Null,
    }
}

/// The keys requests and responses share (mitmproxy's `Message`).
fn message(
    version: &str,
    headers: &Headers,
    body: &Body,
    trailers: Option<&Headers>,
    (start, end): (u64, Option<u64>),
) -> Vec<(&'static str, Value)> {
    vec![
        ("http_version", bytes(version)),
        ("headers", fields(headers)),
        ("content", content(body)),
        ("trailers", trailers.map_or(Value::Null, fields)),
        ("timestamp_start", Value::Float(seconds(start))),
        (
            "timestamp_end",
            end.map_or(Value::Null, |end| Value::Float(seconds(end))),
        ),
    ]
}

fn request(r: &Request) -> Value {
    let mut state = message(
        &r.http_version,
        &r.headers,
        &r.body,
        r.trailers.as_ref(),
        (r.timestamp_start, r.timestamp_end),
    );
    state.extend([
        ("host", Value::str(r.host.as_str())),
        ("port", Value::Int(r.port.into())),
        ("method", bytes(&r.method)),
        ("scheme", bytes(&r.scheme)),
        ("authority", bytes(&authority(r))),
        ("path", bytes(&r.path)),
    ]);
    Value::dict(state)
}

/// The request's authority as mitmproxy keeps it: the CONNECT target, or
/// HTTP/2's `:authority` (which witm does not keep apart: it is the host,
/// with the port unless it is the scheme's); HTTP/1's origin-form has none.
fn authority(r: &Request) -> String {
    let default_port = if r.scheme == "https" { 443 } else { 80 };
    if r.method.eq_ignore_ascii_case("CONNECT") {
        format!("{}:{}", r.host, r.port)
    } else if !r.http_version.starts_with("HTTP/2") {
        String::new()
    } else if r.port == default_port {
        r.host.clone()
    } else {
        format!("{}:{}", r.host, r.port)
    }
}

fn response(r: &Response) -> Value {
    let mut state = message(
        &r.http_version,
        &r.headers,
        &r.body,
        r.trailers.as_ref(),
        (r.timestamp_start, r.timestamp_end),
    );
    state.extend([
        ("status_code", Value::Int(r.status.into())),
        ("reason", bytes(&r.reason)),
    ]);
    Value::dict(state)
}

/// mitmproxy's `WebSocketData` state; a message is `(type, from_client,
/// content, timestamp, dropped, injected)` with type 1 text, 2 binary
/// (the WebSocket opcodes).
fn websocket(w: &WebSocketData) -> Value {
    Value::dict([
        (
            "messages",
            Value::List(
                w.messages
                    .iter()
                    .map(|m| {
                        Value::List(vec![
                            Value::Int(if m.is_text { 1 } else { 2 }),
                            Value::Bool(m.from_client),
                            Value::Bytes(m.content.clone()),
                            Value::Float(seconds(m.timestamp)),
                            Value::Bool(m.dropped),
                            Value::Bool(false),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "closed_by_client",
            w.closed_by_client.map_or(Value::Null, Value::Bool),
        ),
        (
            "close_code",
            w.close_code.map_or(Value::Null, |c| Value::Int(c.into())),
        ),
        ("close_reason", Value::str(w.close_reason.as_str())),
        (
            "timestamp_end",
            w.timestamp_end
                .map_or(Value::Null, |t| Value::Float(seconds(t))),
        ),
    ])
}

fn error(e: &FlowError) -> Value {
    Value::dict([
        ("msg", Value::str(e.message.as_str())),
        ("timestamp", Value::Float(seconds(e.timestamp))),
    ])
}

/// `(host, port)` as mitmproxy's address tuple.
fn address(host: &str, port: u16) -> Value {
    Value::List(vec![Value::str(host), Value::Int(port.into())])
}

/// The keys every mitmproxy connection has, with what witm knows.
fn connection(
    id: String,
    tls: bool,
    sni: Option<&str>,
    alpn: Option<&str>,
) -> Vec<(&'static str, Value)> {
    vec![
        ("id", Value::str(id)),
        ("error", Value::Null),
        ("tls", Value::Bool(tls)),
        ("certificate_list", Value::List(Vec::new())),
        ("alpn", alpn.map_or(Value::Null, bytes)),
        ("alpn_offers", Value::List(Vec::new())),
        ("cipher", Value::Null),
        ("cipher_list", Value::List(Vec::new())),
        ("tls_version", Value::Null),
        ("sni", Value::opt_str(sni)),
        ("timestamp_end", Value::Null),
        ("transport_protocol", Value::str("tcp")),
    ]
}

fn client_conn(flow: &Flow) -> Value {
    let c = &flow.client;
    let tls = c.tls.as_ref();
    let start = seconds(c.timestamp_start);
    let mut state = connection(
        c.id.clone(),
        tls.is_some(),
        tls.and_then(|t| t.sni.as_deref()),
        tls.and_then(|t| t.alpn.as_deref()),
    );
    state.extend([
        (
            "peername",
            address(&c.address.ip().to_string(), c.address.port()),
        ),
        ("sockname", address("", 0)),
        ("timestamp_start", Value::Float(start)),
        (
            "timestamp_tls_setup",
            if tls.is_some() {
                Value::Float(start)
            } else {
                Value::Null
            },
        ),
        ("mitmcert", Value::Null),
        ("proxy_mode", Value::str("regular")),
    ]);
    Value::dict(state)
}

/// The server connection of a flow witm recorded without one (answered by
/// a plugin, or failed before connecting): no address, as in mitmproxy.
fn no_server_conn(flow: &Flow) -> Value {
    let mut state = connection(format!("{}-server", flow.id), false, None, None);
    state.extend(server_fields(
        Value::Null,
        Value::Null,
        &ServerConn::default(),
    ));
    Value::dict(state)
}

fn server_conn(flow: &Flow, s: &ServerConn) -> Value {
    let (host, port) = match s.address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(flow.request.port)),
        None => (s.address.as_str(), flow.request.port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let peername = match (s.peername, host.parse::<IpAddr>()) {
        (Some(peer), _) => address(&peer.ip().to_string(), peer.port()),
        (None, Ok(ip)) => address(&ip.to_string(), port),
        (None, Err(_)) => Value::Null,
    };
    let tls = s.sni.is_some() || s.cert.is_some() || flow.request.scheme == "https";
    let mut state = connection(
        format!("{}-server", flow.id),
        tls,
        s.sni.as_deref(),
        s.alpn.as_deref(),
    );
    state.extend(server_fields(address(host, port), peername, s));
    if let Some(cert) = &s.cert {
        state.retain(|(key, _)| *key != "certificate_list");
        state.push(("certificate_list", Value::List(vec![pem(&cert.der)])));
    }
    Value::dict(state)
}

/// The server's own keys; times witm did not record (a pooled HTTPS
/// connection's TCP set-up) are unknown.
fn server_fields(address: Value, peername: Value, s: &ServerConn) -> [(&'static str, Value); 7] {
    let time = |t: Option<u64>| t.map_or(Value::Null, |t| Value::Float(seconds(t)));
    [
        ("address", address),
        ("peername", peername),
        ("sockname", Value::Null),
        ("timestamp_start", time(s.timestamp_start)),
        ("timestamp_tcp_setup", time(s.timestamp_tcp_setup)),
        ("timestamp_tls_setup", time(s.timestamp_tls_setup)),
        ("via", Value::Null),
    ]
}

/// A DER certificate as the PEM bytes mitmproxy's `Cert.get_state()` gives.
fn pem(der: &[u8]) -> Value {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str("-----END CERTIFICATE-----\n");
    Value::Bytes(bytes::Bytes::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mitmproxy::MitmproxyReader;
    use crate::tnetstring;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/mitmproxy/mitm-capture.flow"
    );

    fn states(mut bytes: &[u8]) -> Vec<Value> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let owned = bytes::Bytes::copy_from_slice(bytes);
            let (value, used) = tnetstring::decode(&owned).unwrap();
            out.push(value);
            bytes = &bytes[used..];
        }
        out
    }

    /// Every key path of a state, with the tnetstring type of its value
    /// (`None` may stand for any type, as in mitmproxy's states).
    fn shape(value: &Value, path: &str, out: &mut Vec<String>) {
        if let Value::Dict(pairs) = value {
            for (key, value) in pairs {
                let key = format!("{path}.{}", key.as_string().unwrap());
                shape(value, &key, out);
                let kind = match value {
                    Value::Null => continue,
                    Value::Bool(_) => "bool",
                    Value::Int(_) => "int",
                    Value::Float(_) => "float",
                    Value::Bytes(_) => "bytes",
                    Value::Str(_) => "str",
                    Value::List(_) => "list",
                    Value::Dict(_) => "dict",
                };
                out.push(format!("{key}: {kind}"));
            }
        }
    }

    fn keys(value: &Value, path: &str, out: &mut Vec<String>) {
        if let Value::Dict(pairs) = value {
            for (key, value) in pairs {
                let key = format!("{path}.{}", key.as_string().unwrap());
                keys(value, &key, out);
                out.push(key);
            }
        }
    }

    #[test]
    fn a_real_capture_exported_again_has_mitmproxys_keys_and_types_and_reads_back_the_same() {
        let original = std::fs::read(FIXTURE).unwrap();
        let flows: Vec<Flow> = MitmproxyReader::new(&original[..])
            .collect::<Result<_, _>>()
            .unwrap();
        let mut exported = Vec::new();
        for flow in &flows {
            write_flow(flow, &mut exported);
        }
        for (theirs, ours) in states(&original).iter().zip(states(&exported).iter()) {
            let (mut their_keys, mut our_keys) = (Vec::new(), Vec::new());
            keys(theirs, "", &mut their_keys);
            keys(ours, "", &mut our_keys);
            their_keys.sort();
            our_keys.sort();
            assert_eq!(
                their_keys, our_keys,
                "every key mitmproxy's set_state reads"
            );
            let (mut their_types, mut our_types) = (Vec::new(), Vec::new());
            shape(theirs, "", &mut their_types);
            shape(ours, "", &mut our_types);
            let missing: Vec<&String> = our_types
                .iter()
                .filter(|t| {
                    let key = t.split(':').next().unwrap();
                    their_types
                        .iter()
                        .any(|x| x.starts_with(&format!("{key}:")))
                        && !their_types.contains(t)
                })
                .collect();
            assert!(
                missing.is_empty(),
                "values of another type than mitmproxy's: {missing:?}"
            );
        }
        let again: Vec<Flow> = MitmproxyReader::new(&exported[..])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(again.len(), flows.len());
        for (a, b) in flows.iter().zip(&again) {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }

    #[test]
    fn websocket_messages_and_close_go_to_mitmproxys_shape_and_back() {
        let mut flow = crate::format::tests::full_flow();
        flow.websocket.as_mut().unwrap().not_kept = 0;
        let mut exported = Vec::new();
        write_flow(&flow, &mut exported);
        let state = &states(&exported)[0];
        let first = &state
            .get("websocket")
            .unwrap()
            .get("messages")
            .unwrap()
            .as_list()
            .unwrap()[0];
        assert_eq!(
            first.as_list().unwrap()[..3],
            [
                Value::Int(1),
                Value::Bool(true),
                Value::Bytes(bytes::Bytes::from_static(b"hello"))
            ]
        );
        let back = MitmproxyReader::new(&exported[..]).next().unwrap().unwrap();
        assert_eq!(back.websocket, flow.websocket);
    }

    #[test]
    fn metadata_keeps_its_types_through_mitmproxys_format_and_witms() {
        use witm_flow::MetaValue;
        let mut flow = crate::format::tests::full_flow();
        let typed = MetaValue::Dict(vec![
            (
                "key".into(),
                MetaValue::List(vec![MetaValue::Int(1), MetaValue::Null]),
            ),
            (MetaValue::Bytes(b"raw".to_vec()), MetaValue::Float(0.5)),
            ("on".into(), MetaValue::Bool(true)),
        ]);
        flow.metadata = vec![("typed".into(), typed.clone()), ("text".into(), "t".into())];
        let mut exported = Vec::new();
        write_flow(&flow, &mut exported);
        let state = &states(&exported)[0];
        assert_eq!(
            state.get("metadata").unwrap().get("typed"),
            Some(&Value::from(&typed)),
            "written as the typed tnetstring, not as text"
        );
        let back = MitmproxyReader::new(&exported[..]).next().unwrap().unwrap();
        assert_eq!(back.metadata, flow.metadata);
        let record = crate::format::flow_to_value(&back);
        let again = crate::format::flow_from_value(&record).unwrap();
        assert_eq!(again.metadata, flow.metadata, "and through witm's format");
    }

    #[test]
    fn a_tcp_flow_goes_to_mitmproxys_tcp_shape_and_back() {
        let mut flow = Flow::tcp(crate::format::tests::full_flow().client, "10.0.0.9", 25);
        flow.tcp
            .as_mut()
            .unwrap()
            .record(witm_flow::RecordedMessage {
                from_client: false,
                is_text: false,
                content: bytes::Bytes::from_static(b"220 ready\r\n"),
                timestamp: 1_700_000_000_250,
                dropped: false,
            });
        let mut exported = Vec::new();
        write_flow(&flow, &mut exported);
        let state = &states(&exported)[0];
        assert_eq!(state.get("type"), Some(&Value::str("tcp")));
        assert!(state.get("request").is_none());
        assert_eq!(
            state.get("messages").unwrap().as_list().unwrap()[0],
            Value::List(vec![
                Value::Bool(false),
                Value::Bytes(bytes::Bytes::from_static(b"220 ready\r\n")),
                Value::Float(1_700_000_000.25),
            ])
        );
        let back = MitmproxyReader::new(&exported[..]).next().unwrap().unwrap();
        assert_eq!(
            back.tcp.as_ref().unwrap().messages,
            flow.tcp.as_ref().unwrap().messages
        );
        assert_eq!(back.request.url(), "tcp://10.0.0.9:25");
        assert_eq!(back.server_conn.unwrap().address, "10.0.0.9:25");
    }
}
