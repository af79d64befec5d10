"""Answers every request to a domain, and its subdomains, with a 403 made
by the plugin: the server never sees it. The domain is the plugin's
argument (`-s "block_domain.wasm ads.example"`), `blocked.example` by
default."""

import witm
from witm import Response

blocked = "blocked.example"


def running():
    global blocked
    if witm.args:
        blocked = witm.args[0].lower()


def request(flow):
    host = flow.request.host.lower()
    if host == blocked or host.endswith("." + blocked):
        flow.response = Response.make(
            403, b"blocked by witm\n", {"content-type": "text/plain"}
        )
