"""Adds `newheader: foo` to every response: the seed's add_header.py, as it
reads in mitmproxy."""


def response(flow):
    flow.response.headers["newheader"] = "foo"
