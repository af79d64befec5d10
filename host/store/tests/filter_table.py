#!/usr/bin/env python3
"""Checks filter_table.json against mitmproxy's own flowfilter.

Builds each flow of the table with mitmproxy's test helpers (tflow,
twebsocketflow), then parses every row's expression with
mitmproxy.flowfilter and compares what it says with the row's expected
value: true, false, or "error" (the expression is refused). Prints each
mismatch and exits 1 if there is any.

    python filter_table.py [path/to/filter_table.json]

Needs mitmproxy (11.0.2 is what the table was checked with) in the Python
that runs it. The Rust side, filter_table.rs, reads the same file.
"""

import base64
import json
import pathlib
import sys

from mitmproxy import flowfilter
from mitmproxy import http
from mitmproxy.net import encoding
from mitmproxy.test import tflow


def headers(pairs):
    return http.Headers([(n.encode(), v.encode()) for n, v in pairs])


def content(spec):
    if "content_b64" in spec:
        return base64.b64decode(spec["content_b64"])
    return spec["content"].encode()


def change_message(message, spec):
    for field in ("method", "scheme", "path", "http_version", "reason"):
        if field in spec:
            setattr(message, field, spec[field])
    if "host" in spec:
        message.data.host = spec["host"]
    if "port" in spec:
        message.data.port = spec["port"]
    if "status" in spec:
        message.status_code = spec["status"]
    if "authority" in spec:
        message.authority = spec["authority"]
    if "headers" in spec:
        message.headers = headers(spec["headers"])
    if spec.get("streamed"):
        message.raw_content = None
    elif "content" in spec or "content_b64" in spec or "encode" in spec:
        body = content(spec) if ("content" in spec or "content_b64" in spec) else message.raw_content
        if "encode" in spec:
            body = encoding.encode(body, spec["encode"])
        message.raw_content = body


def make_flow(spec):
    if spec["base"] == "websocket":
        flow = tflow.twebsocketflow()
    elif spec["base"] == "tcp":
        flow = tflow.ttcpflow(err=spec.get("err", False))
    else:
        flow = tflow.tflow(resp=spec.get("resp", False), err=spec.get("err", False))
    if "request" in spec:
        change_message(flow.request, spec["request"])
    if "response" in spec:
        change_message(flow.response, spec["response"])
    if "client" in spec:
        flow.client_conn.peername = tuple(spec["client"]) if spec["client"] else None
    if "server" in spec:
        if spec["server"] is None:
            flow.server_conn = None
        elif spec["server"] == "no address":
            flow.server_conn.address = None
        else:
            flow.server_conn.address = tuple(spec["server"])
    if spec.get("marked"):
        flow.marked = spec["marked"] if isinstance(spec["marked"], str) else ":default:"
    if "comment" in spec:
        flow.comment = spec["comment"]
    for key, value in spec.get("metadata", []):
        flow.metadata[key] = value
    if "replay" in spec:
        flow.is_replay = spec["replay"]
    return flow


def outcome(expression, flow):
    try:
        selected = flowfilter.parse(expression)
    except ValueError:
        return "error"
    return bool(selected(flow))


def main():
    path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("filter_table.json"))
    table = json.loads(path.read_text(encoding="utf-8"))
    flows = {name: make_flow(spec) for name, spec in table["flows"].items()}
    mismatches = 0
    for row in table["rows"]:
        expression, flow, expected = row[:3]
        got = outcome(expression, flows[flow])
        if got != expected:
            mismatches += 1
            print(f"MISMATCH {expression!r} on {flow}: mitmproxy says {got}, the table {expected}")
    print(f"{len(table['rows'])} rows, {mismatches} mismatches")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
