"""Write witm plugins in Python the way mitmproxy addons are written.

A plugin is one module of event functions (or an `addons = [...]` list of
objects with event methods), as in mitmproxy:

    def response(flow):
        flow.response.headers["newheader"] = "foo"

Build it with `plugins/build-python.sh add_header.py add_header.wasm` and
run it with `witm -s add_header.wasm`.

What witm does for you:

- subscriptions: the plugin receives exactly the events it defines;
- handles: `flow.request`, `flow.response.headers`, ... are host handles,
  fetched when first used and released when the event returns (keep plain
  values, not these objects, across events);
- names: mitmproxy's (`requestheaders`, `responseheaders`, `request`,
  `response`, `error`, `http_connect`, `client_connected`,
  `client_disconnected`, `server_connected`, `server_disconnected`,
  `tls_clienthello`, `websocket_message`, `running`, `done`);
- logging: the `logging` module writes to witm's log;
- errors: a host refusal raises `witm.HostError` (or a subclass:
  `BodyStreamed`, `Denied`, `OverBudget`, `TimedOut`, `Unreachable`); an
  exception escaping an event is contained like any plugin failure (the
  flow goes on, or fails, as the plugin's failure policy says).

`witm.args` holds the plugin's arguments (`-s "plugin.wasm a b"`),
`witm.ctx` the raw context during an event (key-value store:
`witm.kv_get`/`witm.kv_set`). `witm.http_send`/`witm.http_get` call out
(where the plugin's `allowed_hosts` grants it) and `witm.set_tick(ms)`
asks for the `tick` event. The raw API is `wit/plugin.wit`.
"""

import json as _json
import logging as _logging
from collections.abc import MutableMapping
from urllib.parse import urlsplit, urlunsplit

from componentize_py_types import Err as _Err
from wit_world.imports import types as _types

__all__ = [
    "BodyStreamed",
    "Denied",
    "Flow",
    "Headers",
    "HostError",
    "HttpResponse",
    "OverBudget",
    "Request",
    "Response",
    "TimedOut",
    "Unreachable",
    "args",
    "http_get",
    "http_send",
    "kv_get",
    "kv_set",
    "set_tick",
]

#: The plugin's arguments, set before `running`.
args = []

#: The context of the event running now (None between events).
ctx = None


class HostError(Exception):
    """witm refused a call; the text says why."""


class BodyStreamed(HostError):
    """The body was streamed, not held (subscribe to the event that needs
    it, or it was over the proxy's limit)."""


class Denied(HostError, PermissionError):
    """The plugin's configuration does not grant this."""


class OverBudget(HostError, MemoryError):
    """This would make witm hold more for the plugin than its budget."""


class TimedOut(HostError, TimeoutError):
    """An outbound call took longer than its timeout or the event's deadline."""


class Unreachable(HostError, ConnectionError):
    """An outbound call could not be made or answered."""


def _raise(error):
    """Python's exception for a WIT `host-error`."""
    value = error.value
    kind = type(value).__name__.removeprefix("HostError_")
    text = getattr(value, "value", None) or kind
    raise {
        "BodyStreamed": BodyStreamed,
        "Denied": Denied,
        "OverBudget": OverBudget,
        "TimedOut": TimedOut,
        "Unreachable": Unreachable,
    }.get(kind, HostError)(text) from None


def _call(method, *arguments):
    try:
        return method(*arguments)
    except _Err as error:
        _raise(error)


class _Event:
    """The handles one event fetched, released when it returns."""

    current = None

    def __init__(self):
        self.owned = []

    def keep(self, handle):
        self.owned.append(handle)
        return handle

    def release(self):
        for handle in reversed(self.owned):
            try:
                handle.__exit__(None, None, None)
            except Exception:  # already given to the host (set-response)
                pass
        self.owned.clear()


def _own(handle):
    """Registers an owned handle with the running event."""
    event = _Event.current
    if event is not None and handle is not None:
        event.keep(handle)
    return handle


def kv_get(key):
    """A value of the plugin's key-value store (shared by its instances)."""
    return ctx.kv_get(key)


def kv_set(key, value):
    """Sets (None: removes) a value of the key-value store."""
    _call(ctx.kv_set, key, value)


class HttpResponse:
    """The answer to `http_send`: `status_code`, `headers` (a list of
    (name, value) pairs), `content` (bytes) and `text`."""

    def __init__(self, answer):
        self.status_code = answer.status
        self.headers = list(answer.headers)
        self.content = bytes(answer.body)

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def header(self, name):
        """The first value of header `name`, or None."""
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)


def http_send(method, url, headers=None, body=b"", timeout_ms=0):
    """Sends an HTTP request and returns its `HttpResponse`; the proxy
    serves other flows while this waits. Raises `Denied` where the plugin's
    `allowed_hosts` does not grant the URL, `TimedOut`, `Unreachable` or
    `OverBudget`. `headers` is a dict or a list of pairs."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if isinstance(body, str):
        body = body.encode()
    request = _types.OutgoingRequest(
        method=method,
        url=url,
        headers=[(str(n), str(v)) for n, v in pairs],
        body=bytes(body),
        timeout_ms=int(timeout_ms),
    )
    return HttpResponse(_call(ctx.http_send, request))


def http_get(url, headers=None, timeout_ms=0):
    """`http_send("GET", url, headers)`."""
    return http_send("GET", url, headers, b"", timeout_ms)


def set_tick(period_ms):
    """Asks for the `tick` event every `period_ms` (0 stops it); define a
    `tick()` function to receive it."""
    _call(ctx.set_tick, int(period_ms))


class Headers(MutableMapping):
    """A message's headers: case-insensitive names, several values each.

    `headers[name]` is the values joined with ", "; setting it replaces
    them all; `get_all`, `set_all`, `add` and `insert` work on single values.
    """

    def __init__(self, handle):
        self._handle = handle

    def __getitem__(self, name):
        value = self._handle.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name, value):
        _call(self._handle.set, name, str(value))

    def __delitem__(self, name):
        if self._handle.get(name) is None:
            raise KeyError(name)
        self._handle.remove(name)

    def __iter__(self):
        seen = set()
        for name, _ in self._handle.entries():
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self):
        return sum(1 for _ in self)

    def __contains__(self, name):
        return isinstance(name, str) and self._handle.get(name) is not None

    def get_all(self, name):
        """Every value of `name`, in order."""
        return self._handle.get_all(name)

    def set_all(self, name, values):
        """Replaces the values of `name` with `values`."""
        self._handle.remove(name)
        for value in values:
            _call(self._handle.append, name, str(value))

    def add(self, name, value):
        """Adds a value after the existing ones."""
        _call(self._handle.append, name, str(value))

    def insert(self, index, name, value):
        """Inserts a field at `index` in wire order."""
        _call(self._handle.insert, index, name, str(value))

    @property
    def fields(self):
        """All (name, value) pairs in wire order."""
        return self._handle.entries()

    def __repr__(self):
        return f"Headers({self.fields!r})"


class _Message:
    """What requests and responses share: headers, bodies, content."""

    def __init__(self, handle):
        self._handle = handle
        self._headers = None
        self._trailers = None

    @property
    def headers(self):
        if self._headers is None:
            self._headers = Headers(_own(self._handle.headers()))
        return self._headers

    @property
    def trailers(self):
        """The trailers (empty if there were none)."""
        if self._trailers is None:
            self._trailers = Headers(_own(self._handle.trailers()))
        return self._trailers

    @property
    def http_version(self):
        return self._handle.http_version()

    @property
    def timestamp_start(self):
        """When it started, in seconds since the epoch (as mitmproxy)."""
        return self._handle.timestamp_start() / 1000

    @property
    def raw_content(self):
        """The body as on the wire (still content-encoded)."""
        return bytes(_call(self._handle.body))

    @raw_content.setter
    def raw_content(self, body):
        _call(self._handle.set_body, bytes(body))

    @property
    def content(self):
        """The body, decoded from its `content-encoding`."""
        return bytes(_call(self._handle.content))

    @content.setter
    def content(self, content):
        if isinstance(content, str):
            content = content.encode()
        _call(self._handle.set_content, bytes(content))

    @property
    def text(self):
        """The decoded body as text (in its charset)."""
        return _call(self._handle.text)

    @text.setter
    def text(self, text):
        _call(self._handle.set_text, text)

    def get_content(self):
        return self.content

    def set_content(self, content):
        self.content = content

    def get_text(self):
        return self.text

    def set_text(self, text):
        self.text = text

    def json(self, **kwargs):
        """The decoded body parsed as JSON."""
        return _json.loads(self.content, **kwargs)

    @property
    def stream(self):
        """Whether the body streams instead of being held for events."""
        return self._handle.stream_body()

    @stream.setter
    def stream(self, enabled):
        self._handle.set_stream_body(bool(enabled))


class Request(_Message):
    """A flow's request (mitmproxy's `http.Request`)."""

    @property
    def method(self):
        return self._handle.method()

    @method.setter
    def method(self, method):
        _call(self._handle.set_method, method)

    @property
    def scheme(self):
        return self._handle.scheme()

    @scheme.setter
    def scheme(self, scheme):
        self._replace_url(scheme=scheme)

    @property
    def host(self):
        return self._handle.host()

    @host.setter
    def host(self, host):
        port = self.port
        self._replace_url(netloc=_netloc(host, port, self.scheme))

    @property
    def port(self):
        return self._handle.port()

    @port.setter
    def port(self, port):
        self._replace_url(netloc=_netloc(self.host, int(port), self.scheme))

    @property
    def authority(self):
        return self._handle.authority()

    @property
    def path(self):
        return self._handle.path()

    @path.setter
    def path(self, path):
        _call(self._handle.set_path, path)

    @property
    def url(self):
        return self._handle.url()

    @url.setter
    def url(self, url):
        _call(self._handle.set_url, url)

    pretty_url = url
    pretty_host = host

    @property
    def query(self):
        """The query's (name, value) pairs as a dict (the last value of a
        repeated name wins); assign a dict or a list of pairs."""
        return dict(self._handle.query())

    @query.setter
    def query(self, pairs):
        items = pairs.items() if hasattr(pairs, "items") else pairs
        self._handle.set_query([(str(k), str(v)) for k, v in items])

    @property
    def cookies(self):
        """The request's cookies as a dict."""
        return dict(self._handle.cookies())

    def _replace_url(self, **parts):
        url = urlsplit(self.url)._replace(**parts)
        self.url = urlunsplit(url)


def _netloc(host, port, scheme):
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return host if port == default else f"{host}:{port}"


class Response(_Message):
    """A response (mitmproxy's `http.Response`): the server's, or one made
    with `Response.make` to answer the client without the server."""

    @classmethod
    def make(cls, status_code=200, content=b"", headers=()):
        """A new response; assign it to `flow.response` in `request` (or
        `requestheaders`) to answer the client yourself."""
        if isinstance(content, str):
            content = content.encode()
        if hasattr(headers, "items"):
            headers = headers.items()
        fields = [(str(k), str(v)) for k, v in headers]
        return cls(_own(_types.Response(status_code, fields, bytes(content))))

    @property
    def status_code(self):
        return self._handle.status()

    @status_code.setter
    def status_code(self, status):
        _call(self._handle.set_status, int(status))

    @property
    def reason(self):
        return self._handle.reason()

    @property
    def cookies(self):
        """The `set-cookie` cookies: name → (value, attributes)."""
        return {
            c.name: (c.value, dict(c.attributes)) for c in self._handle.cookies()
        }


class ClientConn:
    """The client's connection (mitmproxy's `connection.Client`)."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def id(self):
        return self._handle.id()

    @property
    def peername(self):
        """(host, port) of the client."""
        host, _, port = self._handle.address().rpartition(":")
        return (host.strip("[]"), int(port or 0))

    @property
    def sni(self):
        return self._handle.tls_sni()

    @property
    def alpn(self):
        return self._handle.alpn()

    @property
    def timestamp_start(self):
        return self._handle.timestamp_start() / 1000


class ServerConn:
    """The server's connection (mitmproxy's `connection.Server`)."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def address(self):
        host, _, port = self._handle.address().rpartition(":")
        return (host.strip("[]"), int(port or 0))

    @property
    def sni(self):
        return self._handle.sni()

    @property
    def alpn(self):
        return self._handle.alpn()


class Error:
    """A flow's failure (mitmproxy's `flow.Error`)."""

    def __init__(self, record):
        self.msg = record.message
        self.kind = type(record.kind).__name__ if not isinstance(record.kind, int) else record.kind
        self.timestamp = record.timestamp / 1000

    def __str__(self):
        return self.msg


class _Metadata(MutableMapping):
    """`flow.metadata`: string keys and values kept with the flow."""

    def __init__(self, handle):
        self._handle = handle

    def __getitem__(self, key):
        value = self._handle.metadata(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        self._handle.set_metadata(key, str(value))

    def __delitem__(self, key):
        self[key]
        self._handle.set_metadata(key, None)

    def __iter__(self):
        return iter([k for k, _ in self._handle.metadata_entries()])

    def __len__(self):
        return len(self._handle.metadata_entries())


class WebSocketMessage:
    """A WebSocket message (mitmproxy's `websocket.WebSocketMessage`)."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def from_client(self):
        return self._handle.from_client()

    @property
    def is_text(self):
        return self._handle.is_text()

    @property
    def content(self):
        return bytes(self._handle.content())

    @content.setter
    def content(self, content):
        if isinstance(content, str):
            content = content.encode()
        self._handle.set_content(bytes(content))

    @property
    def text(self):
        return self._handle.text()

    @text.setter
    def text(self, text):
        self._handle.set_text(text)

    def drop(self):
        """Drops the message instead of forwarding it."""
        self._handle.drop_message()


class _WebSocket:
    """`flow.websocket`: `messages[-1]` is the message of this event (witm
    keeps no history of messages for plugins)."""

    def __init__(self, message):
        self.messages = [message] if message is not None else []


class Flow:
    """An HTTP flow (mitmproxy's `http.HTTPFlow`), valid during its event."""

    def __init__(self, handle, message=None):
        self._handle = handle
        self._request = None
        self._response = None
        self._response_fetched = False
        self.websocket = _WebSocket(message)

    @property
    def id(self):
        return self._handle.id()

    @property
    def request(self):
        if self._request is None:
            self._request = Request(_own(self._handle.request()))
        return self._request

    @property
    def response(self):
        """The response, or None before there is one."""
        if not self._response_fetched:
            handle = _own(self._handle.response())
            self._response = Response(handle) if handle is not None else None
            self._response_fetched = True
        return self._response

    @response.setter
    def response(self, response):
        if not isinstance(response, Response):
            raise TypeError("flow.response takes a witm.Response (Response.make)")
        self._handle.set_response(response._handle)
        # The handle now belongs to the flow: fetch the flow's view of it.
        self._response_fetched = False
        self._response = None

    @property
    def error(self):
        record = self._handle.error()
        return Error(record) if record is not None else None

    @property
    def client_conn(self):
        return ClientConn(_own(self._handle.client_conn()))

    @property
    def server_conn(self):
        """The server's address, ALPN and certificate, as witm saw them."""
        return _FlowServer(self._handle)

    @property
    def metadata(self):
        return _Metadata(self._handle)

    @property
    def marked(self):
        return self._handle.marked()

    @marked.setter
    def marked(self, marked):
        self._handle.set_marked(bool(marked))

    @property
    def comment(self):
        return self._handle.comment()

    @comment.setter
    def comment(self, comment):
        self._handle.set_comment(comment)

    def kill(self):
        """Drops the client connection instead of answering."""
        self._handle.kill()

    @property
    def upstream(self):
        """The upstream proxy chosen for this flow (credentials left out),
        or None: straight, or not chosen (the listener's mode decides)."""
        return self._handle.upstream()

    def set_upstream(self, proxy):
        """Routes this flow through the upstream proxy
        `http[s]://[user:password@]host[:port]`, or straight to the server
        with None, instead of the listener's mode (witm's own; in
        `http_connect` it routes the whole tunnel). HostError `invalid` for
        a malformed URL."""
        _call(self._handle.set_upstream, proxy)

    @property
    def killable(self):
        return True


class _FlowServer:
    def __init__(self, handle):
        self._handle = handle

    @property
    def address(self):
        address = self._handle.server_address()
        if address is None:
            return None
        host, _, port = address.rpartition(":")
        return (host.strip("[]"), int(port or 0))

    @property
    def alpn(self):
        return self._handle.server_alpn()


class ClientHelloData:
    """`tls_clienthello`'s argument (mitmproxy's `tls.ClientHelloData`)."""

    def __init__(self, conn, hello):
        self.context = _Context(ClientConn(conn))
        self._hello = hello
        self.client_hello = self

    @property
    def sni(self):
        return self._hello.sni()

    @property
    def alpn_protocols(self):
        return self._hello.alpn_protocols()

    @property
    def ignore_connection(self):
        return self._hello.ignore_connection()

    @ignore_connection.setter
    def ignore_connection(self, ignore):
        self._hello.set_ignore_connection(bool(ignore))


class _Context:
    def __init__(self, client):
        self.client = client


class _LogToWitm(_logging.Handler):
    """Sends `logging` records to witm's log during an event."""

    LEVELS = (
        (_logging.ERROR, _types.Level.ERROR),
        (_logging.WARNING, _types.Level.WARN),
        (_logging.INFO, _types.Level.INFO),
    )

    def emit(self, record):
        if ctx is None:
            return
        level = next((lv for at, lv in self.LEVELS if record.levelno >= at), _types.Level.DEBUG)
        try:
            ctx.log(level, self.format(record))
        except Exception:
            pass


def _install_logging():
    root = _logging.getLogger()
    if not any(isinstance(h, _LogToWitm) for h in root.handlers):
        root.addHandler(_LogToWitm())
        root.setLevel(_logging.INFO)
