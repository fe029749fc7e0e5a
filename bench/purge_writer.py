#!/usr/bin/env python3
"""Paced writes through the server while bench/purge.sh measures (issue 20): each pair is a
login and a logout of the same session, on the tables that the purge deletes from.

- the login is a refresh-token grant (POST /0.1/token with a refresh token and its client id): a
  new session and token are written, with their event, and no password is hashed;
- the logout deletes that token (DELETE /0.1/token/{token}), and its session with it.

    bench/purge_writer.py BASE_URL REFRESH_TOKEN CLIENT_ID RATE SECONDS

RATE pairs per second for SECONDS of wall-clock time, on one keep-alive connection, each pair due
i / RATE seconds after the start (started at once when late; none started after SECONDS). Each
latency counts from the request's own start; the logins' also from the time each was due
(`due_p99`), so that a stall counts for every login due during it, not only for the one it held.
On a machine whose cores are full, that one also counts this process's own waits for a core.
Prints one line: "pairs N rate R login_p50 A login_p99 B due_p99 C logout_p50 D logout_p99 E
max F" (N pairs completed, R per second; milliseconds). Exits 1 when an answer was not the
expected status. Standard library only.
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
    logins, dues, logouts, errors = [], [], [], []

    def call(method, path, expected, since, **kw):
        try:
            conn.request(method, path, **kw)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            errors.append(f"{method} {path}: {e}")
            return None, 0.0
        elapsed = (time.perf_counter() - since) * 1000
        if resp.status != expected:
            errors.append(f"{method} {path}: {resp.status} {data[:200]!r}")
            return None, elapsed
        return data, elapsed

    start = time.perf_counter()
    deadline = start + seconds
    i = 0
    while True:
        due = start + i / rate
        now = time.perf_counter()
        if due >= deadline or now >= deadline:
            break
        if due > now:
            time.sleep(due - now)
        i += 1
        sent = time.perf_counter()
        data, ms = call("POST", "/0.1/token", 200, sent, body=body, headers=headers)
        if data is None:
            continue
        logins.append(ms)
        dues.append(ms + (sent - due) * 1000)
        token = json.loads(data)["data"]["token"]
        data, ms = call("DELETE", f"/0.1/token/{token}", 200, time.perf_counter())
        if data is not None:
            logouts.append(ms)
    elapsed = time.perf_counter() - start
    print(
        "pairs %d rate %.1f login_p50 %.2f login_p99 %.2f due_p99 %.2f logout_p50 %.2f"
        " logout_p99 %.2f max %.2f"
        % (
            len(logouts),
            len(logouts) / elapsed,
            percentile(logins, 50),
            percentile(logins, 99),
            percentile(dues, 99),
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
