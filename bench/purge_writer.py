#!/usr/bin/env python3
"""Paced writes through the server while bench/purge.sh measures (issue 20): each pair is a
login and a logout of the same session, on the tables that the purge deletes from.

- the login is a refresh-token grant (POST /0.1/token with a refresh token and its client id): a
  new session and token are written, with their event, and no password is hashed;
- the logout deletes that token (DELETE /0.1/token/{token}), and its session with it.

    bench/purge_writer.py BASE_URL REFRESH_TOKEN CLIENT_ID RATE SECONDS

RATE pairs per second for SECONDS, on one keep-alive connection, each pair started on its
schedule (i / RATE seconds after the start) or at once when late. Prints one line:
"pairs N errors E login_p50 A login_p99 B logout_p50 C logout_p99 D max E" (milliseconds; each
latency from the request's own start). Exits 1 when an answer was not the expected status.
Standard library only.
"""
import http.client
import json
import sys
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    base, refresh, client, rate, seconds = sys.argv[1:6]
    rate, seconds = float(rate), float(seconds)
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"refresh_token": refresh, "client_id": client, "expiration": 600})
    headers = {"Content-Type": "application/json"}
    logins, logouts, errors = [], [], []

    def call(method, path, expected, **kw):
        started = time.perf_counter()
        try:
            conn.request(method, path, **kw)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            errors.append(f"{method} {path}: {e}")
            return None, 0.0
        elapsed = (time.perf_counter() - started) * 1000
        if resp.status != expected:
            errors.append(f"{method} {path}: {resp.status} {data[:200]!r}")
            return None, elapsed
        return data, elapsed

    start = time.perf_counter()
    i = 0
    while True:
        due = start + i / rate
        now = time.perf_counter()
        if due - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        i += 1
        data, ms = call("POST", "/0.1/token", 200, body=body, headers=headers)
        if data is None:
            continue
        logins.append(ms)
        token = json.loads(data)["data"]["token"]
        data, ms = call("DELETE", f"/0.1/token/{token}", 200)
        if data is not None:
            logouts.append(ms)
    print(
        "pairs %d errors %d login_p50 %.2f login_p99 %.2f logout_p50 %.2f logout_p99 %.2f max %.2f"
        % (
            i,
            len(errors),
            percentile(logins, 50),
            percentile(logins, 99),
            percentile(logouts, 50),
            percentile(logouts, 99),
            max(logins + logouts, default=float("nan")),
        )
    )
    for e in errors[:5]:
        print("purge_writer: " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
