"""Lets a request through only if an auth service says its bearer token is
valid (`witm.http_get`). `-s "bearer_auth.wasm http://127.0.0.1:9000/check 60"`:
200 from the service means valid, 401 or 403 not (the client gets a 401);
answers are kept in the key-value store for the second argument's seconds
(60 by default). When the service cannot be asked, the client gets a 503.
The service must be in the plugin's `allowed_hosts`."""

import logging

import witm
from witm import Response

url = ""
keep = 60.0


def running():
    global url, keep
    if not witm.args:
        raise ValueError("usage: bearer_auth.wasm AUTH_SERVICE_URL [CACHE_SECONDS]")
    url = witm.args[0]
    if len(witm.args) > 1:
        keep = float(witm.args[1])


def refuse(flow, status, text):
    headers = {"content-type": "text/plain"}
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    flow.response = Response.make(status, text.encode(), headers)


def request(flow):
    authorization = flow.request.headers.get("authorization", "")
    if not authorization.startswith("Bearer "):
        return refuse(flow, 401, "a bearer token is required\n")
    now = flow.request.timestamp_start
    key = "bearer:" + authorization[len("Bearer "):].strip()
    cached = witm.kv_get(key)
    if cached and float(cached.split(":")[1]) > now:
        valid = cached.startswith("valid:")
    else:
        try:
            answer = witm.http_get(url, {"authorization": authorization})
        except witm.HostError as e:
            logging.warning("auth service not asked: %s", e)
            return refuse(flow, 503, "the auth service is unavailable\n")
        if answer.status_code not in (200, 401, 403):
            return refuse(flow, 503, "the auth service is unavailable\n")
        valid = answer.status_code == 200
        witm.kv_set(key, f"{'valid' if valid else 'invalid'}:{now + keep}")
    if not valid:
        refuse(flow, 401, "the bearer token is not valid\n")
