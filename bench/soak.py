#!/usr/bin/env python3
"""Soak test: mixed load (logins, token checks, revocations, user and policy edits) against the
real server for a while, with a PostgreSQL restart in the middle. Reports 5xx answers outside the
outage window (must be 0), acknowledged writes that were lost (must be 0), and peak memory.

    bench/soak.py [--seconds 600]     (run from the repository; builds in release mode)

Exits non-zero when a 5xx happened outside the outage window or an acknowledged write is lost.
Standard library only.
"""
import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 9620
BASE = f"http://127.0.0.1:{PORT}/0.1"


def call(method, path, token=None, body=None, basic=None, timeout=15):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and raw[:1] in b"{[\"" else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, None
    except Exception:  # connection refused / reset / timeout
        return 0, None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.answers = []  # (time, status, what)
        self.users = {}  # uuid -> username, acknowledged creations
        self.tokens = {}  # token -> expiry (acknowledged logins)
        self.revoked = {}  # token -> time its revocation was acknowledged
        self.policies = set()

    def record(self, status, what):
        with self.lock:
            self.answers.append((time.time(), status, what))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    args = ap.parse_args()
    duration = args.seconds

    subprocess.run(["scripts/install-deps.sh"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "wazo-auth",
                    "-p", "wazo-user-backend"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="wazo-auth-soak.")
    os.chmod(work, 0o755)
    plugins = os.path.join(work, "plugins")
    os.makedirs(plugins)
    shutil.copy(os.path.join(ROOT, "target/release/libwazo_auth_wazo_user.so"), plugins)
    os.chmod(plugins, 0o755)
    os.chmod(os.path.join(plugins, "libwazo_auth_wazo_user.so"), 0o755)
    config = os.path.join(work, "config.yml")
    with open(config, "w") as f:
        f.write(f"""log_level: warning
rest_api: {{listen: 127.0.0.1, port: {PORT}}}
managed_db: {{data_dir: {work}/pg}}
secret_key_file: {work}/secret.keys
plugin_dir: {plugins}
enabled_backend_plugins: {{wazo_user: true, ldap_user: false}}
enabled_external_auth_plugins: {{google: false, microsoft: false, mobile: false}}
bootstrap_user_on_startup: true
bootstrap_user_username: admin
bootstrap_user_password: soak-admin
password_hash_scheme: argon2id
db_timeout: 2
login_throttle: {{enabled: false}}
""")
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([os.path.join(ROOT, "target/release/wazo-auth"), "-c", config],
                              stdout=log, stderr=log)
    stats = Stats()
    stop = threading.Event()
    outage = {"start": None, "end": None}
    peak = {"rss": 0}
    try:
        for _ in range(300):
            if call("HEAD", "/status")[0] == 200:
                break
            time.sleep(0.1)
        status, body = call("POST", "/token", basic="admin:soak-admin", body={"expiration": duration + 600})
        assert status == 200, (status, body)
        admin = body["data"]["token"]

        def admin_edits():
            n = 0
            while not stop.is_set():
                n += 1
                name = f"soak{n}-{random.randint(0, 1 << 30)}"
                status, body = call("POST", "/users", admin, {"username": name, "password": "pw"})
                stats.record(status, "create user")
                if status == 200:
                    with stats.lock:
                        stats.users[body["uuid"]] = name
                    status, _ = call("PUT", f"/users/{body['uuid']}", admin,
                                     {"username": name, "firstname": "Soak"})
                    stats.record(status, "update user")
                status, body = call("POST", "/policies", admin, {"name": f"p{n}-{random.randint(0, 1 << 30)}", "acl": ["soak.#"]})
                stats.record(status, "create policy")
                if status == 200:
                    with stats.lock:
                        stats.policies.add(body["uuid"])
                    users = list(stats.users)
                    if users:
                        status, _ = call("PUT", f"/users/{random.choice(users)}/policies/{body['uuid']}", admin)
                        stats.record(status, "attach policy")
                time.sleep(0.05)

        def logins():
            while not stop.is_set():
                with stats.lock:
                    names = list(stats.users.values())
                if not names:
                    time.sleep(0.1)
                    continue
                status, body = call("POST", "/token", basic=f"{random.choice(names)}:pw",
                                    body={"expiration": 3600})
                stats.record(status, "login")
                if status == 200:
                    with stats.lock:
                        stats.tokens[body["data"]["token"]] = time.time() + 3600

        def checks():
            while not stop.is_set():
                with stats.lock:
                    tokens = list(stats.tokens)
                if not tokens:
                    time.sleep(0.05)
                    continue
                token = random.choice(tokens)
                sent = time.time()
                status, _ = call("HEAD", f"/token/{token}?scope=soak.read")
                stats.record(status, "check")
                with stats.lock:
                    revoked_at = stats.revoked.get(token)
                # A violation only if the revocation was acknowledged before the check was sent.
                if status == 204 and revoked_at is not None and revoked_at < sent:
                    stats.record(-1, "revoked token accepted")

        def revocations():
            while not stop.is_set():
                with stats.lock:
                    tokens = [t for t in stats.tokens if t not in stats.revoked]
                if len(tokens) < 5:
                    time.sleep(0.2)
                    continue
                token = random.choice(tokens)
                status, _ = call("DELETE", f"/token/{token}")
                stats.record(status, "revoke")
                if status == 200:
                    with stats.lock:
                        stats.revoked[token] = time.time()
                time.sleep(0.02)

        def memory():
            while not stop.is_set():
                try:
                    with open(f"/proc/{server.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS"):
                                peak["rss"] = max(peak["rss"], int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(1)

        threads = [threading.Thread(target=t, daemon=True)
                   for t in [admin_edits, logins, logins, checks, checks, checks, revocations, memory]]
        for t in threads:
            t.start()
        time.sleep(duration / 2)
        # The database restart in the middle.
        pg_bin = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        pg_ctl = f"/usr/lib/postgresql/{pg_bin}/bin/pg_ctl"
        runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        outage["start"] = time.time()
        subprocess.run(runas + [pg_ctl, "-D", f"{work}/pg", "-m", "fast", "-w", "stop"], check=True,
                       stdout=subprocess.DEVNULL)
        time.sleep(5)
        subprocess.run(runas + [pg_ctl, "-D", f"{work}/pg", "-l", f"{work}/pg/log/postgres.log", "-w", "start"],
                       check=True, stdout=subprocess.DEVNULL)
        # Allow the pools and the listener a moment to reconnect.
        for _ in range(200):
            if call("HEAD", "/status")[0] == 200:
                break
            time.sleep(0.05)
        outage["end"] = time.time() + 2
        time.sleep(duration / 2)
        stop.set()
        for t in threads:
            t.join(timeout=30)

        # Verification: nothing acknowledged is lost.
        lost = []
        for uuid in list(stats.users):
            if call("GET", f"/users/{uuid}", admin)[0] != 200:
                lost.append(f"user {uuid}")
        for uuid in list(stats.policies):
            if call("GET", f"/policies/{uuid}", admin)[0] != 200:
                lost.append(f"policy {uuid}")
        sample = random.sample(list(stats.tokens), min(2000, len(stats.tokens)))
        for token in sample:
            expected = 404 if token in stats.revoked else 204
            got = call("HEAD", f"/token/{token}")[0]
            if got != expected:
                lost.append(f"token {token[:8]}: {got} instead of {expected}")

        def in_outage(t):
            return outage["start"] <= t <= outage["end"]

        total = len(stats.answers)
        errors = [a for a in stats.answers if (a[1] >= 500 or a[1] == 0) and not in_outage(a[0])]
        errors_in_outage = [a for a in stats.answers if (a[1] >= 500 or a[1] == 0) and in_outage(a[0])]
        violations = [a for a in stats.answers if a[1] == -1]
        by_kind = {}
        for _, status, what in stats.answers:
            by_kind[what] = by_kind.get(what, 0) + 1
        print(f"soak: {duration} s, {total} requests: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
        print(f"soak: outage window {outage['end'] - outage['start']:.1f} s; 5xx/unanswered inside it: {len(errors_in_outage)}")
        print(f"soak: 5xx or unanswered outside the outage: {len(errors)}")
        for e in errors[:10]:
            print(f"  {time.strftime('%H:%M:%S', time.localtime(e[0]))} {e[1]} {e[2]}")
        print(f"soak: revoked tokens accepted: {len(violations)}")
        print(f"soak: acknowledged writes checked: {len(stats.users)} users, {len(stats.policies)} policies, "
              f"{len(sample)} tokens; lost: {len(lost)}")
        for l in lost[:10]:
            print(f"  {l}")
        print(f"soak: peak resident memory {peak['rss'] / 1024:.1f} MB")
        with open(os.path.join(work, "server.log")) as f:
            panics = sum(1 for line in f if "panicked" in line)
        print(f"soak: panics in the server log: {panics}")
        ok = not errors and not lost and not violations and panics == 0
        print("soak: OK" if ok else "soak: FAILED")
        return 0 if ok else 1
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
