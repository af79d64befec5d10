"""{{name}}: adds `x-{{name}}: hello` to every response."""


def response(flow):
    flow.response.headers["x-{{name}}"] = "hello"
