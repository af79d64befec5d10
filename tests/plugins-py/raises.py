"""Raises in `request` for paths starting /throw; adds `x-ok: py` to
everything else: a failing Python plugin must be contained like a Rust
trap."""


def request(flow):
    if flow.request.path.startswith("/throw"):
        raise RuntimeError("raised on purpose")
    flow.request.headers["x-ok"] = "py"
