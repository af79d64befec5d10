"""Adds `"witm": "rewritten"` to every JSON object a server answers with,
working on the decoded content: a gzip body is decoded for the plugin and
encoded again after it."""

import json


def response(flow):
    if "json" not in flow.response.headers.get("content-type", "").lower():
        return
    try:
        data = flow.response.json()
    except ValueError:
        return
    if isinstance(data, dict):
        data["witm"] = "rewritten"
        flow.response.content = json.dumps(data).encode()
