"""A gRPC origin and client for witm's end-to-end tests (grpcio; no
generated code: the methods take and return raw bytes).

    grpc_peer.py serve [--cert CHAIN --key KEY]    prints the port, serves
    grpc_peer.py call TARGET [--proxy URL] [--ca PEM] [--seconds S]

`call` makes a unary call (the reply is the request reversed; the origin
adds the trailer `x-origin-trailer: yes`), a server-streaming call of five
messages, then unary calls for S seconds, and prints one `key=value` line
each: reply, trailers, stream, unary_per_s, stream_per_s (calls of 5
messages).
"""

import argparse
import sys
import time
from concurrent import futures

import grpc


def serve(args):
    def unary(request, context):
        context.set_trailing_metadata((("x-origin-trailer", "yes"),))
        return request[::-1]

    def stream(request, context):
        for i in range(int(request.decode())):
            yield str(i).encode()

    handler = grpc.method_handlers_generic_handler(
        "witm.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    if args.cert:
        with open(args.key, "rb") as key, open(args.cert, "rb") as chain:
            credentials = grpc.ssl_server_credentials([(key.read(), chain.read())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def call(args):
    if args.proxy:
        options = [("grpc.enable_http_proxy", 1), ("grpc.http_proxy", args.proxy)]
    else:
        options = [("grpc.enable_http_proxy", 0)]
    if args.ca:
        with open(args.ca, "rb") as ca:
            credentials = grpc.ssl_channel_credentials(ca.read())
        channel = grpc.secure_channel(args.target, credentials, options)
    else:
        channel = grpc.insecure_channel(args.target, options)
    unary = channel.unary_unary("/witm.Echo/Unary")
    stream = channel.unary_stream("/witm.Echo/Stream")
    reply, outcome = unary.with_call(b"hello", timeout=10)
    trailers = ",".join(f"{k}={v}" for k, v in outcome.trailing_metadata())
    print(f"reply={reply.decode()}")
    print(f"trailers={trailers}")
    print("stream=" + ",".join(m.decode() for m in stream(b"5", timeout=10)))
    calls, started = 0, time.monotonic()
    while time.monotonic() - started < args.seconds:
        unary(b"x", timeout=10)
        calls += 1
    print(f"unary_per_s={calls / max(args.seconds, 1e-9):.0f}", flush=True)
    # Server-streaming calls of 5 messages each, for as long again.
    calls, started = 0, time.monotonic()
    while time.monotonic() - started < args.seconds:
        for _ in stream(b"5", timeout=10):
            pass
        calls += 1
    print(f"stream_per_s={calls / max(args.seconds, 1e-9):.0f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    served = commands.add_parser("serve")
    served.add_argument("--cert")
    served.add_argument("--key")
    called = commands.add_parser("call")
    called.add_argument("target")
    called.add_argument("--proxy")
    called.add_argument("--ca")
    called.add_argument("--seconds", type=float, default=0)
    args = parser.parse_args()
    {"serve": serve, "call": call}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
