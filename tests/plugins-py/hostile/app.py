"""What an untrusted Python plugin might try, one act per request path (the
Python twin of tests/plugins/hostile): `/loop` spins forever, `/bomb`
grows its memory without end, `/passwd` reads /etc/passwd, `/env` reads
WITM_SECRET, `/socket?port=N` connects to 127.0.0.1:N. What it got back goes to the origin in `x-hostile`.

And what it might make the host hold or do, as the Rust plugin does (see
tests/plugins/hostile/src/lib.rs): `/kv-flood`, `/header-flood`,
`/response-flood`, `/dup-flood`, `/metadata-flood`, `/handle-flood`,
`/log-flood`, `/replay-loopback?port=N`, `/unzip`."""

import os
import socket
import sys

from componentize_py_types import Err
from wit_world.imports.types import Level, Response
from witm_sdk import Events, Plugin

#: What the floods keep, so nothing is released before the call ends.
KEPT = []


def refusal(e):
    """`OverBudget: why` for a host error."""
    kind = type(e.value).__name__.removeprefix("HostError_")
    return f"{kind}: {getattr(e.value, 'value', '')}"


def port_of(path):
    return int("".join(c for c in path.split("port=")[-1] if c.isdigit()) or "1")


def budget_act(ctx, flow, request, path):
    """The acts against the host's budgets; None for other paths."""
    if path.startswith("/kv-flood"):
        value = "v" * ((1 << 20) - 128)
        for stored in range(10_000):
            try:
                ctx.kv_set(f"flood-{stored}", value)
            except Err as e:
                return f"stored {stored} MiB; then: {refusal(e)}"
        return "stored 10000 MiB; then: none"
    if path.startswith("/header-flood"):
        with request.headers() as headers:
            value = "h" * 1024
            for appended in range(1_000_000):
                try:
                    headers.append("x-flood", value)
                except Err as e:
                    headers.remove("x-flood")
                    return f"appended {appended}; then: {refusal(e)}"
        return "appended 1000000; then: none"
    if path.startswith("/response-flood"):
        body = b"B" * (1 << 20)
        for _ in range(100_000):
            KEPT.append(Response(200, [], body))
        return f"made {len(KEPT)} responses"
    if path.startswith("/dup-flood"):
        for _ in range(1_000_000):
            KEPT.append(ctx.duplicate_flow(flow))
        return f"duplicated {len(KEPT)}"
    if path.startswith("/metadata-flood"):
        value = "m" * (64 << 10)
        for i in range(100_000):
            flow.set_metadata(f"flood-{i}", value)
        return "set 100000 notes"
    if path.startswith("/handle-flood"):
        for _ in range(1_000_000):
            KEPT.append(flow.request())
        return "kept 1000000 handles"
    if path.startswith("/log-flood"):
        line = "l" * (8 << 10)
        for _ in range(100_000):
            ctx.log(Level.INFO, line)
        chunk = "o" * (1 << 20)
        for _ in range(10):
            sys.stdout.write(chunk)
        return "logged"
    if path.startswith("/replay-loopback"):
        with ctx.duplicate_flow(flow) as copy, copy.request() as copied:
            try:
                copied.set_url(f"http://127.0.0.1:{port_of(path)}/secret")
                ctx.replay_request(copy)
                return "replayed"
            except Err as e:
                return f"denied: {refusal(e)}"
    if path.startswith("/unzip"):
        for decoded in range(1, 1001):
            try:
                request.content()
            except Err as e:
                if decoded == 1000:
                    return f"decoded {decoded}; then: {refusal(e)}"
        return "decoded 1000; then: none"
    return None


def attempt(path):
    if path.startswith("/loop"):
        n = 0
        while True:
            n += 1
    if path.startswith("/bomb"):
        kept = []
        while True:
            kept.append(bytearray(1 << 20))
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
        port = port_of(path)
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
            path = request.path()
            outcome = budget_act(ctx, flow, request, path)
            if outcome is None:
                outcome = attempt(path)
            if outcome is not None:
                with request.headers() as headers:
                    headers.set("x-hostile", outcome)
