"""Sends N requests of one kind to a wazo-auth server on one keep-alive connection (for
bench/instructions.sh) and checks every answer's status."""
import base64
import http.client
import json
import sys
import uuid

port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
basic = "Basic " + base64.b64encode(b"alice:alice-secret").decode()
body = json.dumps({"backend": "example_static", "expiration": 600})


def call(method, path, expected, **kw):
    conn.request(method, path, **kw)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != expected:
        sys.exit(f"{method} {path}: {resp.status} {data[:200]!r}")
    return data


def login():
    headers = {"Authorization": basic, "Content-Type": "application/json"}
    data = call("POST", "/0.1/token", 200, body=body, headers=headers)
    return json.loads(data)["data"]["token"]


token = login() if kind != "login" else None
unknown = str(uuid.uuid4())
requests = {
    "ceiling": lambda: call("GET", "/0.1/_bench/ceiling", 200),
    "get": lambda: call("GET", f"/0.1/token/{token}", 200),
    "head_match": lambda: call("HEAD", f"/0.1/token/{token}?scope=confd.users.read", 204),
    "head_nomatch": lambda: call("HEAD", f"/0.1/token/{token}?scope=auth.tenants.read", 403),
    "get_unknown": lambda: call("GET", f"/0.1/token/{unknown}", 404),
    "login": login,
}
for _ in range(n):
    requests[kind]()
