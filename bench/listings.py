#!/usr/bin/env python3
"""Listing latencies for bench/scale.sh (issue 20).

    listings.py BASE TOKEN N OUT.json NAME=PATH[|Header: value]...

Sends N sequential GET requests (one keep-alive connection) per listing after 5 warm-up ones,
checks each answers 200, and prints p50/p99/max in ms; writes {name: [p50, p99]} to OUT.json.
"""
import http.client
import json
import sys
import time
import urllib.parse


def pct(sorted_values, p):
    # Nearest-rank percentile.
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def main():
    base, token, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    results = {}
    for spec in sys.argv[5:]:
        name, _, rest = spec.partition("=")
        path, _, header = rest.partition("|")
        headers = {"X-Auth-Token": token, "Accept": "application/json"}
        if header:
            k, _, v = header.partition(":")
            headers[k.strip()] = v.strip()
        times = []
        total = None
        for i in range(n + 5):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = (time.perf_counter() - started) * 1000
            if resp.status != 200:
                print(f"listings: {name} {path} answered {resp.status}: {body[:300]!r}",
                      file=sys.stderr)
                sys.exit(1)
            if i >= 5:
                times.append(elapsed)
            else:
                doc = json.loads(body)
                if isinstance(doc, dict):
                    total = (doc.get("total"), doc.get("filtered"), len(doc.get("items", [])))
        times.sort()
        p50, p99 = pct(times, 50), pct(times, 99)
        results[name] = [p50, p99]
        print(f"  {name:<16} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  max {times[-1]:8.2f} ms"
              f"  (total, filtered, items) = {total}", flush=True)
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
