"""Routes each request through the upstream proxy its `x-route` header
names (`direct`: straight to the server) with witm's `set_upstream`, and
tells the server what `upstream` reads back, in `x-upstream-seen`."""


def request(flow):
    chosen = flow.request.headers.get("x-route")
    if chosen is None:
        return
    del flow.request.headers["x-route"]
    flow.set_upstream(None if chosen == "direct" else chosen)
    flow.request.headers["x-upstream-seen"] = flow.upstream or "direct"
