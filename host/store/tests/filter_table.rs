//! The filter table: every row of `filter_table.json` — an expression, a
//! flow, and whether mitmproxy 11 selects it or refuses the expression — as
//! witm's `Filter` sees it. `filter_table.py` checks the same rows against
//! mitmproxy itself, so both sides answer to one table. A row may say that
//! witm differs on purpose, and why; every other row must agree.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::Value;
use witm_flow::encoding::ContentEncoding;
use witm_flow::{
    Body, ClientConn, ErrorKind, Flow, FlowError, Headers, MetaValue, Request, Response, ServerConn,
};
use witm_store::Filter;

fn table() -> Value {
    let text = include_str!("filter_table.json");
    serde_json::from_str(text).expect("filter_table.json is JSON")
}

fn headers_of(pairs: &[(&str, &str)]) -> Headers {
    Headers::from_pairs(pairs.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())))
}

/// mitmproxy's `tflow()`: a GET of http://address:22/path.
fn base_request() -> Request {
    Request {
        method: "GET".into(),
        scheme: "http".into(),
        host: "address".into(),
        port: 22,
        path: "/path".into(),
        http_version: "HTTP/1.1".into(),
        headers: headers_of(&[("header", "qvalue"), ("content-length", "7")]),
        body: Body::Buffered(Bytes::from_static(b"content")),
        ..Request::default()
    }
}

/// mitmproxy's `tresp()`.
fn base_response() -> Response {
    let mut response = Response::make(
        200,
        headers_of(&[("header-response", "svalue"), ("content-length", "7")]),
        "message",
    );
    response.reason = "OK".into();
    response.http_version = "HTTP/1.1".into();
    response
}

fn client(host: &str, port: u16) -> Arc<ClientConn> {
    let ip: IpAddr = host.parse().expect("a client IP");
    Arc::new(ClientConn::new(SocketAddr::new(ip, port)))
}

fn server(address: &str) -> Option<Arc<ServerConn>> {
    Some(Arc::new(ServerConn {
        address: address.into(),
        ..ServerConn::default()
    }))
}

/// mitmproxy's `tflow()` or `twebsocketflow()`, before the changes a
/// table flow lists.
fn base_flow(spec: &Value) -> Flow {
    let mut flow = Flow {
        client: client("127.0.0.1", 22),
        server_conn: server("address:22"),
        ..Flow::default()
    };
    if spec["base"] == "tcp" {
        // ttcpflow()'s messages.
        let mut tcp = Flow::tcp(flow.client.clone(), "address", 22);
        let data = tcp.tcp.as_mut().unwrap();
        for (from_client, content) in [(true, &b"hello"[..]), (false, b"it's me")] {
            data.record(witm_flow::RecordedMessage {
                from_client,
                is_text: false,
                content: bytes::Bytes::from_static(content),
                timestamp: 0,
                dropped: false,
            });
        }
        if spec["err"] == true {
            tcp.error = Some(FlowError::new(ErrorKind::Server, "error"));
        }
        return tcp;
    }
    if spec["base"] == "websocket" {
        flow.request = Request {
            host: "example.com".into(),
            port: 80,
            path: "/ws".into(),
            headers: headers_of(&[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "1234"),
            ]),
            body: Body::default(),
            ..base_request()
        };
        let mut response = Response::make(
            101,
            headers_of(&[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-accept", ""),
            ]),
            "",
        );
        response.reason = "Switching Protocols".into();
        response.http_version = "HTTP/1.1".into();
        flow.response = Some(response);
        // twebsocketflow()'s messages.
        let message = |from_client, is_text, content: &'static [u8]| witm_flow::RecordedMessage {
            from_client,
            is_text,
            content: bytes::Bytes::from_static(content),
            timestamp: 0,
            dropped: false,
        };
        flow.websocket = Some(Box::new(witm_flow::WebSocketData {
            messages: vec![
                message(true, false, b"hello binary"),
                message(true, true, b"hello text"),
                message(false, true, b"it's me"),
            ],
            ..Default::default()
        }));
        return flow;
    }
    flow.request = base_request();
    if spec["resp"] == true {
        flow.response = Some(base_response());
    }
    if spec["err"] == true {
        flow.error = Some(FlowError::new(ErrorKind::Server, "error"));
    }
    flow
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"))
}

/// A table's metadata value as the typed value mitmproxy's Python has.
fn meta(value: &Value) -> MetaValue {
    match value {
        Value::Null => MetaValue::Null,
        Value::Bool(b) => MetaValue::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| MetaValue::Float(n.as_f64().unwrap()), MetaValue::Int),
        Value::String(s) => MetaValue::Str(s.clone()),
        Value::Array(items) => MetaValue::List(items.iter().map(meta).collect()),
        Value::Object(fields) => MetaValue::Dict(
            fields
                .iter()
                .map(|(k, v)| (MetaValue::Str(k.clone()), meta(v)))
                .collect(),
        ),
    }
}

/// The headers and body a table flow gives a message.
fn change(headers: &mut Headers, body: &mut Body, spec: &Value) {
    if let Some(pairs) = spec.get("headers") {
        let pairs = pairs.as_array().expect("headers are a list");
        *headers = Headers::from_pairs(pairs.iter().map(|pair| {
            (
                text(&pair[0]).to_owned(),
                Bytes::copy_from_slice(text(&pair[1]).as_bytes()),
            )
        }));
    }
    if spec["streamed"] == true {
        *body = Body::Streamed;
        return;
    }
    let mut content = match (spec.get("content"), spec.get("content_b64")) {
        (Some(t), _) => Some(text(t).as_bytes().to_vec()),
        (_, Some(b)) => Some(BASE64.decode(text(b)).expect("base64")),
        _ => None,
    };
    if let Some(coding) = spec.get("encode") {
        let plain = content
            .take()
            .unwrap_or_else(|| body.bytes().expect("a held body").to_vec());
        let coding = ContentEncoding::from_header(Some(text(coding))).expect("a known coding");
        content = Some(coding.encode(&plain).expect("encodes"));
    }
    if let Some(content) = content {
        *body = Body::Buffered(Bytes::from(content));
    }
}

fn make_flow(spec: &Value) -> Flow {
    let mut flow = base_flow(spec);
    if let Some(r) = spec.get("request") {
        let request = &mut flow.request;
        if let Some(v) = r.get("method") {
            request.method = text(v).into();
        }
        if let Some(v) = r.get("scheme") {
            request.scheme = text(v).into();
        }
        if let Some(v) = r.get("host") {
            request.host = text(v).into();
        }
        if let Some(v) = r.get("port") {
            request.port = v.as_u64().expect("a port") as u16;
        }
        if let Some(v) = r.get("path") {
            request.path = text(v).into();
        }
        if let Some(v) = r.get("http_version") {
            request.http_version = text(v).into();
        }
        // "authority" is mitmproxy's; witm derives it from host and port.
        change(&mut request.headers, &mut request.body, r);
    }
    if let Some(r) = spec.get("response") {
        let response = flow.response.as_mut().expect("a flow with a response");
        if let Some(v) = r.get("status") {
            response.status = v.as_u64().expect("a status") as u16;
        }
        change(&mut response.headers, &mut response.body, r);
    }
    match spec.get("client") {
        Some(Value::Null) => flow.client = Flow::default().client,
        Some(c) => flow.client = client(text(&c[0]), c[1].as_u64().expect("a port") as u16),
        None => {}
    }
    match spec.get("server") {
        Some(Value::Null) => flow.server_conn = None,
        Some(Value::String(s)) if s == "no address" => flow.server_conn = server(""),
        Some(s) => {
            flow.server_conn = server(&format!("{}:{}", text(&s[0]), s[1]));
        }
        None => {}
    }
    match &spec["marked"] {
        Value::Bool(marked) => flow.set_marked(*marked),
        Value::String(marker) => flow.marker = marker.clone(),
        _ => {}
    }
    if let Some(c) = spec.get("comment") {
        flow.comment = text(c).into();
    }
    if let Some(m) = spec.get("metadata") {
        flow.metadata = m
            .as_array()
            .expect("metadata is a list")
            .iter()
            .map(|pair| (text(&pair[0]).to_owned(), meta(&pair[1])))
            .collect();
    }
    if let Some(side) = spec.get("replay") {
        flow.is_replay = witm_flow::ReplaySide::from_name(text(side));
    }
    flow
}

/// What witm says of `expression` on `flow`: true, false or "error".
fn outcome(expression: &str, flow: &Flow) -> Value {
    match Filter::parse(expression) {
        Ok(filter) => Value::Bool(filter.matches(flow)),
        Err(_) => Value::String("error".into()),
    }
}

#[test]
fn every_row_is_what_mitmproxy_says_or_a_documented_difference() {
    let table = table();
    let flows: std::collections::HashMap<&str, Flow> = table["flows"]
        .as_object()
        .expect("flows by name")
        .iter()
        .map(|(name, spec)| (name.as_str(), make_flow(spec)))
        .collect();
    let rows = table["rows"].as_array().expect("a list of rows");
    let mut mismatches = Vec::new();
    let mut differences = 0;
    for row in rows {
        let expression = text(&row[0]);
        let flow = &flows[text(&row[1])];
        let expected = match row.get(3) {
            Some(difference) => {
                differences += 1;
                assert!(
                    difference["why"].is_string(),
                    "{expression:?}: a difference says why"
                );
                &difference["witm"]
            }
            None => &row[2],
        };
        let got = outcome(expression, flow);
        if &got != expected {
            let why = Filter::parse(expression)
                .err()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            mismatches.push(format!(
                "{expression:?} on {}: witm says {got}{why}, the table {expected}",
                row[1]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} rows differ:\n{}",
        mismatches.len(),
        rows.len(),
        mismatches.join("\n")
    );
    assert!(rows.len() >= 150, "the table has {} rows", rows.len());
    assert!(differences < rows.len() / 10, "{differences} differences");
}

#[test]
fn the_deliberate_differences_are_errors_that_name_the_feature_or_limit() {
    let table = table();
    for row in table["rows"].as_array().expect("rows") {
        let Some(difference) = row.get(3) else {
            continue;
        };
        if difference["witm"] != "error" {
            continue;
        }
        let expression = text(&row[0]);
        let error = Filter::parse(expression).expect_err(expression);
        assert!(
            error.message.contains("not supported") || error.message.contains("size limit"),
            "{expression:?}: {error}"
        );
    }
}
