"""Write witm plugins in Python (componentize-py).

Subclass `Plugin`, set `events`, write only the events you want, and name
the class `WitWorld` in your module; every other event does nothing:

    from witm_sdk import Events, Plugin

    class WitWorld(Plugin):
        events = Events.RESPONSE

        def response(self, ctx, flow):
            ...

Handles returned by the host (a flow's request, its headers, ...) are
released by `with` blocks; use them so the host's table does not grow.
The API reference is the WIT, `wit/plugin.wit`.
"""

from wit_world.imports.types import Events, Level  # noqa: F401  (re-exported)


class Plugin:
    """No-op defaults for every event of the witm:plugin world."""

    #: The events to receive; the proxy never calls the others.
    events = Events(0)

    def start(self, ctx, args):
        return self.events

    def client_connect(self, ctx, conn):
        pass

    def request(self, ctx, flow):
        pass

    def response(self, ctx, flow):
        pass

    def error(self, ctx, flow):
        pass

    def client_disconnect(self, ctx, conn):
        pass

    def done(self, ctx):
        pass

    def request_headers(self, ctx, flow):
        pass

    def response_headers(self, ctx, flow):
        pass

    def websocket_message(self, ctx, flow, message):
        pass

    def server_connect(self, ctx, server):
        pass

    def server_disconnect(self, ctx, server):
        pass

    def http_connect(self, ctx, flow):
        pass

    def tls_clienthello(self, ctx, conn, hello):
        pass

    def tick(self, ctx):
        pass
