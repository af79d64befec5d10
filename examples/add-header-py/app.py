"""Adds `newheader: foo` to every response: the seed's add_header.py, in Python."""

from witm_sdk import Events, Plugin


class WitWorld(Plugin):
    events = Events.RESPONSE

    def response(self, ctx, flow):
        response = flow.response()
        if response is not None:
            with response, response.headers() as headers:
                headers.set("newheader", "foo")
