"""What an untrusted Python plugin might try, one act per request path (the
Python twin of tests/plugins/hostile): `/loop` spins forever, `/passwd`
reads /etc/passwd, `/env` reads WITM_SECRET, `/socket?port=N` connects to
127.0.0.1:N. What it got back goes to the origin in `x-hostile`."""

import os
import socket

from witm_sdk import Events, Plugin


def attempt(path):
    if path.startswith("/loop"):
        n = 0
        while True:
            n += 1
    if path.startswith("/passwd"):
        try:
            with open("/etc/passwd") as f:
                return f"read {len(f.read())} bytes"
        except OSError as e:
            return f"denied: {e}"
    if path.startswith("/env"):
        value = os.environ.get("WITM_SECRET")
        return "denied: not set" if value is None else f"got {value}"
    if path.startswith("/socket"):
        port = int("".join(c for c in path.split("port=")[-1] if c.isdigit()) or "1")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return "connected"
        except Exception as e:  # noqa: BLE001  (any refusal counts)
            return f"denied: {e}"
    return None


class WitWorld(Plugin):
    events = Events.REQUEST

    def request(self, ctx, flow):
        with flow.request() as request:
            outcome = attempt(request.path())
            if outcome is not None:
                with request.headers() as headers:
                    headers.set("x-hostile", outcome)
