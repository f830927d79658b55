#!/usr/bin/env python3
"""The cost of authentication (issue 13): the built-in Keystone against noauth.

Python 3 standard library only:
`python3 bench/identity.py --binary target/release/statera [--output FILE]`.

Starts two `statera serve` (free ports on 127.0.0.1, temporary data dirs, host subnet
127.181.0.0/16 and 127.182.0.0/16): one in auth mode `builtin` (the default; the admin password
given with STATERA_ADMIN_PASSWORD), one in `noauth` with default roles admin,member,reader. Then,
every loop bounded in count:

* tokens issued per second by password (argon2id: deliberately costly) and by token rescoping
  (`"methods": ["token"]`, what Horizon and the openstacksdk inside it do), 1 and 4 clients;
* `GET /v2/lbaas/loadbalancers` (10 load balancers present) over one keep-alive connection with a
  builtin token and with noauth: median and p99 wall time, and the server's CPU time per request
  (from /proc/<pid>/stat, because wall time on a shared machine moves with other load);
* plain load balancer creates per second, 1 client, builtin vs noauth, in interleaved rounds
  (the mode measured first alternates), medians.

Every process is stopped by its pid and every temporary directory removed. Prints a markdown
table (and writes it to --output).
"""

import argparse
import concurrent.futures
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PASSWORD = "bench-admin-password"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: str, auth_args: list[str], subnet: str):
        self.dir = tempfile.mkdtemp(prefix="statera-bench-identity-")
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["STATERA_ADMIN_PASSWORD"] = PASSWORD
        env.setdefault("RUST_LOG", "warn")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             os.path.join(self.dir, "data"), "--host-subnet", subnet, "--durability", "normal",
             *auth_args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.request("GET", "/")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit("statera did not start")
            time.sleep(0.1)

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.conn()
        try:
            h = {"Accept": "application/json", **(headers or {})}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            payload = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), payload
        finally:
            if own:
                conn.close()

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def password_body():
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}


def rescope_body(token):
    return {"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                     "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}


def issue(server, body, conn=None) -> str:
    status, headers, payload = server.request("POST", "/v3/auth/tokens?nocatalog", body, conn=conn)
    if status != 201:
        raise SystemExit(f"token issue answered {status}: {payload[:200]!r}")
    return headers["x-subject-token"]


def rate(server, n: int, clients: int, body_fn) -> float:
    """Tokens per second: n issues spread over `clients` threads, each on its own connection."""
    def worker(count):
        conn = server.conn()
        try:
            for _ in range(count):
                issue(server, body_fn(), conn=conn)
        finally:
            conn.close()
    per = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, per))
    return n / (time.perf_counter() - start)


def list_latency(server, headers, n: int):
    conn = server.conn()
    times = []
    try:
        for _ in range(20):  # warm-up
            server.request("GET", "/v2/lbaas/loadbalancers", headers=headers, conn=conn)
        cpu0 = server.cpu_s()
        for _ in range(n):
            t = time.perf_counter()
            status, _, _ = server.request("GET", "/v2/lbaas/loadbalancers", headers=headers, conn=conn)
            times.append(time.perf_counter() - t)
            assert status == 200, status
        cpu = (server.cpu_s() - cpu0) / n
    finally:
        conn.close()
    times.sort()
    return statistics.median(times) * 1e3, times[int(len(times) * 0.99) - 1] * 1e3, cpu * 1e6


def subnet_id(server, headers) -> str:
    status, _, payload = server.request("GET", "/v2.0/subnets?name=host-subnet", headers=headers)
    assert status == 200, status
    return json.loads(payload)["subnets"][0]["id"]


CREATE_ROUNDS = 6


def creates_per_s(server, headers, n: int, prefix: str = "b") -> float:
    sid = subnet_id(server, headers)
    conn = server.conn()
    try:
        start = time.perf_counter()
        for i in range(n):
            status, _, payload = server.request(
                "POST", "/v2/lbaas/loadbalancers",
                {"loadbalancer": {"name": f"{prefix}-{i}", "vip_subnet_id": sid}}, headers=headers, conn=conn)
            assert status == 201, (status, payload[:200])
        return n / (time.perf_counter() - start)
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/statera")
    ap.add_argument("--passwords", type=int, default=60, help="password tokens per client count")
    ap.add_argument("--rescopes", type=int, default=400, help="rescoped tokens per client count")
    ap.add_argument("--lists", type=int, default=1000, help="list requests per mode")
    ap.add_argument("--creates", type=int, default=200, help="load balancer creates per mode")
    ap.add_argument("--output")
    args = ap.parse_args()

    builtin = Server(args.binary, [], "127.181.0.0/16")
    noauth = Server(args.binary, ["--auth", "noauth", "--noauth-default-roles", "admin,member,reader"],
                    "127.182.0.0/16")
    rows = []
    try:
        token = issue(builtin, password_body())
        bh = {"X-Auth-Token": token}
        nh = {"X-Auth-Token": "anything"}
        for clients in (1, 4):
            rows.append((f"tokens/s by password, {clients} client(s)",
                         f"{rate(builtin, args.passwords, clients, password_body):.1f}"))
        for clients in (1, 4):
            rows.append((f"tokens/s by token rescoping, {clients} client(s)",
                         f"{rate(builtin, args.rescopes, clients, lambda: rescope_body(token)):.0f}"))
        for server, headers in ((builtin, bh), (noauth, nh)):
            sid = subnet_id(server, headers)
            for i in range(10):
                server.request("POST", "/v2/lbaas/loadbalancers",
                               {"loadbalancer": {"name": f"l{i}", "vip_subnet_id": sid}}, headers=headers)
        lat = {}
        for name, server, headers in (("builtin", builtin, bh), ("noauth", noauth, nh)):
            lat[name] = list_latency(server, headers, args.lists)
        for name in ("builtin", "noauth"):
            med, p99, cpu = lat[name]
            rows.append((f"GET /v2/lbaas/loadbalancers (10 LBs), {name}: median / p99 ms, server CPU µs/req",
                         f"{med:.3f} / {p99:.3f}, {cpu:.0f}"))
        rows.append(("list median, builtin / noauth", f"{lat['builtin'][0] / lat['noauth'][0]:.2f}x"))
        # Creates in interleaved rounds, the mode that goes first alternating: the
        # controller of the mode that just ran is still applying its load balancers
        # while the other one is measured, so a fixed order biases the ratio by ±10 %.
        rounds = {"builtin": [], "noauth": []}
        per_round = max(1, args.creates // CREATE_ROUNDS)
        modes = [("builtin", builtin, bh), ("noauth", noauth, nh)]
        for r in range(CREATE_ROUNDS):
            for name, server, headers in (modes if r % 2 == 0 else modes[::-1]):
                rounds[name].append(creates_per_s(server, headers, per_round, f"r{r}"))
        cr = {name: statistics.median(v) for name, v in rounds.items()}
        for name in ("builtin", "noauth"):
            rows.append((f"LB creates/s, 1 client, {name} (median of {CREATE_ROUNDS} rounds)", f"{cr[name]:.0f}"))
        ratios = [b / n for b, n in zip(rounds["builtin"], rounds["noauth"])]
        rows.append(("creates/s, builtin / noauth (median of per-round ratios)",
                     f"{statistics.median(ratios):.2f}x"))
    finally:
        builtin.stop()
        noauth.stop()

    load = os.getloadavg()
    out = [
        f"{datetime.date.today()}, {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}, load average {load[0]:.1f} at the end",
        "",
        "| figure | result |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
    ]
    text = "\n".join(out)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
