"""The `witm:plugin` world's exports, written once for every Python plugin:
each export wraps the host's handles in `witm` objects, calls the plugin's
functions of mitmproxy's names, and releases the handles it fetched.
`plugins/build-python.sh` generates the entry module that calls
`make_world(plugin_module)`."""

import witm
from wit_world.imports.types import Events

#: witm's event → (the flag, mitmproxy's names for it).
EVENTS = {
    "client_connect": (Events.CLIENT_CONNECT, ("client_connected",)),
    "request": (Events.REQUEST, ("request",)),
    "response": (Events.RESPONSE, ("response",)),
    "error": (Events.ERROR, ("error",)),
    "client_disconnect": (Events.CLIENT_DISCONNECT, ("client_disconnected",)),
    "done": (Events.DONE, ("done",)),
    "http_connect": (Events.HTTP_CONNECT, ("http_connect",)),
    "tls_clienthello": (Events.TLS_CLIENTHELLO, ("tls_clienthello",)),
    "request_headers": (Events.REQUEST_HEADERS, ("requestheaders",)),
    "response_headers": (Events.RESPONSE_HEADERS, ("responseheaders",)),
    "websocket_message": (Events.WEBSOCKET_MESSAGE, ("websocket_message",)),
    "server_connect": (Events.SERVER_CONNECT, ("server_connected", "server_connect")),
    "server_disconnect": (Events.SERVER_DISCONNECT, ("server_disconnected",)),
    "tick": (Events.TICK, ("tick",)),
}


def _handlers(module):
    """The plugin's callables per witm event: the module's functions, then
    each addon's methods, in `addons` order (as mitmproxy calls them)."""
    sources = [module, *getattr(module, "addons", [])]
    found = {}
    for event, (_, names) in EVENTS.items():
        calls = [
            getattr(source, name)
            for source in sources
            for name in names
            if callable(getattr(source, name, None))
        ]
        if calls:
            found[event] = calls
    starts = [
        getattr(source, "running")
        for source in sources
        if callable(getattr(source, "running", None))
    ]
    return found, starts


def make_world(module):
    """The `WitWorld` class componentize-py exports for `module`."""
    handlers, starts = _handlers(module)

    def run(ctx, calls, arguments):
        event = witm._Event()
        witm._Event.current = event
        witm.ctx = ctx
        try:
            for call in calls:
                call(*arguments())
        finally:
            event.release()
            witm._Event.current = None
            witm.ctx = None

    def dispatch(event, wrap):
        calls = handlers.get(event)
        if calls is None:
            return lambda self, ctx, *handles: None

        def export(self, ctx, *handles):
            run(ctx, calls, lambda: wrap(*handles))

        return export

    def flow(handle):
        return (witm.Flow(handle),)

    class WitWorld:
        def start(self, ctx, args):
            witm.args = list(args)
            witm._install_logging()
            if starts:
                run(ctx, starts, lambda: ())
            subscribed = Events(0)
            for event in handlers:
                subscribed |= EVENTS[event][0]
            return subscribed

        client_connect = dispatch("client_connect", lambda c: (witm.ClientConn(c),))
        request = dispatch("request", flow)
        response = dispatch("response", flow)
        error = dispatch("error", flow)
        client_disconnect = dispatch("client_disconnect", lambda c: (witm.ClientConn(c),))
        done = dispatch("done", lambda: ())
        http_connect = dispatch("http_connect", flow)
        tls_clienthello = dispatch(
            "tls_clienthello", lambda c, h: (witm.ClientHelloData(c, h),)
        )
        request_headers = dispatch("request_headers", flow)
        response_headers = dispatch("response_headers", flow)
        websocket_message = dispatch(
            "websocket_message", lambda f, m: (witm.Flow(f, witm.WebSocketMessage(m)),)
        )
        server_connect = dispatch("server_connect", lambda s: (witm.ServerConn(s),))
        server_disconnect = dispatch("server_disconnect", lambda s: (witm.ServerConn(s),))
        tick = dispatch("tick", lambda: ())

    return WitWorld
