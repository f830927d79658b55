#!/usr/bin/env python3
"""Control-plane benchmark of `statera serve` (issue 2).

Python 3 standard library only. Run it through `bench/control-plane`, which builds the release
binary first; or directly: `python3 bench/control_plane.py --binary target/release/statera`.

What it does, every step bounded in count and time, all traffic on 127.0.0.0/8:

* starts two tiny HTTP backends (this script in `--backend` mode, an asyncio server answering
  `HTTP/1.1 200` with its name) and a real `statera serve` per scenario, each on a free port with
  a temporary data dir and its own host subnet (127.180.0.0/16);
* time to serve: N tries of a fully populated create (HTTP listener, ROUND_ROBIN pool of the two
  backends, an HTTP health monitor), timing POST->201, POST->VIP answers 200 from a backend
  (fresh connection every ~1 ms) and POST->provisioning_status ACTIVE; each LB is then deleted
  (cascade) and the script waits for its 404 so its VIP:port is closed before the next try;
* API throughput: plain load balancer creates per second (1 client and 8 concurrent clients) and
  lists per second (GET ?limit=100, 1 and 8 clients);
* memory: VmRSS of a fresh server, then holding 1,000 idle load balancers, each with one HTTP
  listener (a bound VIP socket) and a pool of 2 members (no monitor: idle);
* list latency at scale: a fresh server with 1,000 load balancers and 10,000 members (one pool of
  10 members each, no listener, so no socket is bound), then first page, a page via marker, a
  pool's members, a filter by name: median and p99;
* stores and controllers (issue 15): for each store of --stores (sqlite, postgres) and each
  node count of --controllers (1, 3; SQLite runs 1 only), N `statera serve --role
  api,controller` on one store (PostgreSQL: a throwaway cluster, one fresh database per
  deployment, `statera db upgrade` first), the client sending each request to the next node's
  API port: plain creates/s with 1 and N clients, POST->201 and POST->ACTIVE one at a time, then
  populated with plain creates (no listeners, so no sockets) to each count of --scale (at most
  --populate-timeout seconds of creating each): the populate rate, list latency (first page, a
  page via marker, a filter by name) with the nodes' and PostgreSQL's CPU per request, RSS of
  each node, and every acknowledged create counted once on every node.

Every process started is stopped by its pid, temporary dirs and databases are removed (and the
PostgreSQL cluster stopped). The results are printed
as a markdown table (and written to --output if given).
"""

import argparse
import asyncio
import concurrent.futures
import datetime
import http.client
import json
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST_SUBNET = "127.180.0.0/16"
LISTENER_PORT = 8080  # unprivileged, so the benchmark needs no capability
AMPHORA_TTS_S = 60  # Octavia amphora: ~1 minute to ACTIVE (known figure, not measured here)
GOAL_TTS_MS = 50
GOAL_PAGE_MS = 20
# Every server gets this settings file (in the work dir): a load balancer's VIP port counts
# against the project's Neutron port quota (500 by default, as in Neutron), which the thousands
# of load balancers below would exceed.
BENCH_CONFIG = "statera-bench.toml"
BENCH_CONFIG_TEXT = "[neutron.quotas]\nport = -1\n"


# --------------------------------------------------------------------------------------------
# Backends: `control_plane.py --backend PORT NAME` runs one in its own process (no GIL sharing
# with the timing loop).


def run_backend(port: int, name: str) -> None:
    body = name.encode() + b"\n"
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
    )

    async def handle(reader, writer):
        try:
            while True:
                req = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                close = b"connection: close" in req.lower()
                writer.write(head + (b"Connection: close\r\n\r\n" if close else b"\r\n") + body)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# Helpers.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def ms(x):
    return x * 1000.0


def summary(values):
    """(median, p99, max) in ms of durations in seconds."""
    return (ms(statistics.median(values)), ms(pct(values, 99)), ms(max(values)))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def revision() -> str:
    """The git revision the benchmark runs from (the binary is built from the same tree)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no",
                                "--", "crates", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + (" + uncommitted changes under crates/" if dirty else "")


def stop_pid(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


def fs_type(path):
    """The filesystem type holding `path` (longest mount point of /proc/mounts)."""
    path = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


def fsync_ms(directory, n=100):
    """Median and p99 ms of a 4 KiB write + fsync in `directory` (what durability full pays
    per commit, roughly: SQLite in WAL mode fsyncs the WAL once per transaction)."""
    path = os.path.join(directory, "fsync-probe")
    lat = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for i in range(n):
            os.pwrite(fd, os.urandom(4096), i * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    return ms(statistics.median(lat)), ms(pct(lat, 99))


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version()}


class Api:
    """One keep-alive connection to the API (one per client thread)."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, parse=True):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if not parse:
            return resp.status, raw
        return resp.status, (json.loads(raw) if raw else None)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def expect(status, body, want, what):
    if status not in want:
        raise RuntimeError(f"{what}: HTTP {status}: {str(body)[:300]}")


def vip_get(vip: str, port: int, names) -> bool:
    """One HTTP GET on a fresh connection: did a backend answer 200?"""
    try:
        with socket.create_connection((vip, port), timeout=1.0) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                if len(data) > 65536:
                    break
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 200") and any(n.encode() in data for n in names)


# --------------------------------------------------------------------------------------------
# The server under test.


class Server:
    def __init__(self, binary, durability, workdir):
        self.binary = binary
        self.durability = durability
        self.dir = tempfile.mkdtemp(prefix=f"statera-bench-{durability}-", dir=workdir)
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "serve.log"), "wb")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", os.path.join(self.dir, "data"), "--host-subnet", HOST_SUBNET,
             "--durability", durability, "--auth", "noauth", "--noauth-default-roles", "admin,member,reader",
             "--config", os.path.join(workdir, BENCH_CONFIG)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.api = Api(self.port)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"statera serve exited: {self.tail_log()}")
            try:
                status, _ = self.api.request("GET", "/v2/lbaas/loadbalancers?limit=1")
                if status == 200:
                    break
            except OSError:
                self.api.close()
            if time.monotonic() > deadline:
                raise RuntimeError("statera serve did not answer within 30 s")
            time.sleep(0.05)
        self.subnet_id, self.subnet_source = self.find_subnet()

    def tail_log(self):
        self.log.flush()
        with open(os.path.join(self.dir, "serve.log"), "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def find_subnet(self):
        try:
            status, body = self.api.request("GET", "/v2.0/subnets?name=host-subnet")
            if status == 200 and body and body.get("subnets"):
                return body["subnets"][0]["id"], "API"
        except (OSError, ValueError):
            self.api.close()
        # Fallback: the store's own record (read-only, WAL allows a concurrent reader).
        db = sqlite3.connect(f"file:{os.path.join(self.dir, 'data', 'statera.sqlite')}?mode=ro",
                             uri=True, timeout=10)
        try:
            for sid, doc in db.execute("SELECT id, doc FROM subnets"):
                if json.loads(doc).get("name") == "host-subnet":
                    return sid, "SQLite (subnets API unavailable)"
        finally:
            db.close()
        raise RuntimeError("no host-subnet")

    def rss(self):
        return rss_kib(self.proc.pid)

    def stop(self):
        self.api.close()
        stop_pid(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Bodies.


def lb_full(name, subnet_id, backends, monitor=True, listener=True):
    pool = {"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "members": [{"address": "127.0.0.1", "protocol_port": p} for _, p in backends]}
    if monitor:
        pool["healthmonitor"] = {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3,
                                 "http_method": "GET", "url_path": "/", "expected_codes": "200"}
    lb = {"name": name, "vip_subnet_id": subnet_id, "pools": [pool]}
    if listener:
        lb["listeners"] = [{"name": "l", "protocol": "HTTP", "protocol_port": LISTENER_PORT,
                            "default_pool": {"name": "p"}}]
    return {"loadbalancer": lb}


def lb_pool_only(name, subnet_id, n_members, base_port):
    pool = {"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "members": [{"address": "127.0.0.1", "protocol_port": base_port + j}
                        for j in range(n_members)]}
    return {"loadbalancer": {"name": name, "vip_subnet_id": subnet_id, "pools": [pool]}}


def wait_gone(api, lb_id, deadline_s=10.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        status, _ = api.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}", parse=False)
        if status == 404:
            return True
        time.sleep(0.002)
    return False


def wait_all_active(api, ids, deadline_s):
    """Poll each load balancer (oldest first, as the controller works) until it is ACTIVE;
    returns the seconds it took. One GET per object rather than big lists, so the server does
    not render thousands of objects while the benchmark waits (that would skew RSS)."""
    t0 = time.monotonic()
    for lb_id in ids:
        while True:
            status, body = api.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}")
            expect(status, body, (200,), "show")
            ps = body["loadbalancer"]["provisioning_status"]
            if ps == "ACTIVE":
                break
            if ps == "ERROR":
                raise RuntimeError(f"load balancer {lb_id} went to ERROR")
            if time.monotonic() - t0 > deadline_s:
                raise RuntimeError(f"load balancers not ACTIVE after {deadline_s} s")
            time.sleep(0.01)
    return time.monotonic() - t0


def parallel_creates(port, bodies, clients, vips=None, deadline=None):
    """POST every body with `clients` threads, one keep-alive connection each; returns
    (ids in creation order, wall seconds, per-request seconds); `vips` gets the VIP addresses.
    `port` may be a list of API ports (the nodes of one deployment): each client then sends its
    requests round-robin over them, one keep-alive connection per node. With `deadline` (a
    time.monotonic() value) the clients stop sending when it passes (fewer ids come back)."""
    ports = port if isinstance(port, list) else [port]
    lock = threading.Lock()
    queue = list(enumerate(bodies))[::-1]
    order = []
    ids = [None] * len(bodies)
    if vips is None:
        vips = {}
    lat = []

    start = [0]

    def worker():
        with lock:
            k = start[0]
            start[0] += 1
        apis = [Api(p) for p in ports]
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    if deadline is not None and time.monotonic() > deadline:
                        return
                    i, body = queue.pop()
                api = apis[k % len(apis)]
                k += 1
                t = time.perf_counter()
                status, resp = api.request("POST", "/v2/lbaas/loadbalancers", body)
                dt = time.perf_counter() - t
                expect(status, resp, (201,), "create")
                with lock:
                    ids[i] = resp["loadbalancer"]["id"]
                    order.append(i)
                    vips[i] = resp["loadbalancer"]["vip_address"]
                    lat.append(dt)
        finally:
            for api in apis:
                api.close()

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        for f in [ex.submit(worker) for _ in range(clients)]:
            f.result()
    return [ids[i] for i in order], time.perf_counter() - t0, lat


def parallel_gets(port, path, total, clients):
    """GET `path` `total` times with `clients` threads; `port` may be a list (round-robin)."""
    ports = port if isinstance(port, list) else [port]
    per = total // clients
    lat = []
    lock = threading.Lock()

    def worker(k):
        apis = [Api(p) for p in ports]
        mine = []
        try:
            for j in range(per):
                api = apis[(k + j) % len(apis)]
                t = time.perf_counter()
                status, raw = api.request("GET", path, parse=False)
                mine.append(time.perf_counter() - t)
                expect(status, raw, (200,), path)
        finally:
            for api in apis:
                api.close()
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        for f in [ex.submit(worker, k) for k in range(clients)]:
            f.result()
    return per * clients / (time.perf_counter() - t0), lat


# --------------------------------------------------------------------------------------------
# Scenarios.


def time_to_serve(srv, backends, tries, log):
    names = [n for n, _ in backends]
    api = srv.api
    rows = []
    vips = set()
    for i in range(tries):
        body = lb_full(f"tts-{i}", srv.subnet_id, backends)
        t0 = time.perf_counter()
        status, resp = api.request("POST", "/v2/lbaas/loadbalancers", body)
        t_201 = time.perf_counter() - t0
        expect(status, resp, (201,), "fully populated create")
        lb = resp["loadbalancer"]
        vip, lb_id = lb["vip_address"], lb["id"]
        vips.add(vip)
        t_served = t_active = None
        while t_served is None or t_active is None:
            now = time.perf_counter() - t0
            if now > 10.0:
                raise RuntimeError(f"try {i}: VIP {vip} served={t_served} active={t_active} "
                                   f"after 10 s")
            if t_served is None and vip_get(vip, LISTENER_PORT, names):
                t_served = time.perf_counter() - t0
            if t_active is None:
                st, lbb = api.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}")
                expect(st, lbb, (200,), "show")
                ps = lbb["loadbalancer"]["provisioning_status"]
                if ps == "ACTIVE":
                    t_active = time.perf_counter() - t0
                elif ps == "ERROR":
                    raise RuntimeError(f"try {i}: load balancer went to ERROR")
            if t_served is None or t_active is None:
                time.sleep(0.001)
        td = time.perf_counter()
        st, b = api.request("DELETE", f"/v2/lbaas/loadbalancers/{lb_id}?cascade=true")
        expect(st, b, (202, 204), "delete")
        if not wait_gone(api, lb_id):
            raise RuntimeError(f"try {i}: load balancer not gone 10 s after DELETE")
        t_gone = time.perf_counter() - td
        if vip_get(vip, LISTENER_PORT, names):
            raise RuntimeError(f"try {i}: {vip}:{LISTENER_PORT} still serves after deletion")
        rows.append((t_201, t_served, t_active, t_gone))
        if (i + 1) % 25 == 0:
            log(f"  time to serve: {i + 1}/{tries}")
    return {
        "tries": tries,
        "post_201": summary([r[0] for r in rows]),
        "served": summary([r[1] for r in rows]),
        "active": summary([r[2] for r in rows]),
        "delete_gone": summary([r[3] for r in rows]),
        "distinct_vips": len(vips),
    }


def throughput(srv, n_seq, n_conc, clients, n_lists, log):
    bodies = [{"loadbalancer": {"name": f"tp-s-{i}", "vip_subnet_id": srv.subnet_id}}
              for i in range(n_seq)]
    ids, wall, lat_seq = parallel_creates(srv.port, bodies, 1)
    log(f"  creates, 1 client: {n_seq / wall:.0f}/s")
    bodies = [{"loadbalancer": {"name": f"tp-c-{i}", "vip_subnet_id": srv.subnet_id}}
              for i in range(n_conc)]
    ids2, wall2, lat_conc = parallel_creates(srv.port, bodies, clients)
    log(f"  creates, {clients} clients: {n_conc / wall2:.0f}/s")
    settle = wait_all_active(srv.api, ids + ids2, 120)
    path = "/v2/lbaas/loadbalancers?limit=100"
    c0 = cpu_s(srv.proc.pid)
    lists_seq, lat_l1 = parallel_gets(srv.port, path, n_lists, 1)
    list_cpu_ms = ms((cpu_s(srv.proc.pid) - c0) / n_lists)
    lists_conc, lat_lc = parallel_gets(srv.port, path, n_lists, clients)
    log(f"  lists: {lists_seq:.0f}/s (1 client), {lists_conc:.0f}/s ({clients} clients)")
    return {
        "creates_seq": n_seq / wall, "creates_seq_lat": summary(lat_seq), "n_seq": n_seq,
        "creates_conc": n_conc / wall2, "creates_conc_lat": summary(lat_conc), "n_conc": n_conc,
        "clients": clients, "settle_s": settle,
        "lists_seq": lists_seq, "lists_seq_lat": summary(lat_l1),
        "lists_conc": lists_conc, "lists_conc_lat": summary(lat_lc), "n_lists": n_lists,
        "list_cpu_ms": list_cpu_ms,
    }


def memory(srv, backends, n_lbs, clients, log):
    names = [n for n, _ in backends]
    time.sleep(1.0)
    rss0 = srv.rss()
    bodies = [lb_full(f"mem-{i}", srv.subnet_id, backends, monitor=False) for i in range(n_lbs)]
    vip_of = {}
    ids, wall, lat = parallel_creates(srv.port, bodies, clients, vip_of)
    settle = wait_all_active(srv.api, ids, 300)
    log(f"  memory: {n_lbs} LBs with listeners created in {wall:.1f} s, all ACTIVE "
        f"{settle:.1f} s later")
    # Every VIP must actually serve (the data plane holds them all).
    vips = list(vip_of.values())
    served = sum(1 for v in vips if vip_get(v, LISTENER_PORT, names))
    time.sleep(2.0)
    rss1 = srv.rss()
    return {"n": n_lbs, "rss_start_kib": rss0, "rss_kib": rss1,
            "per_lb_kib": (rss1 - rss0) / n_lbs, "create_rate": n_lbs / wall,
            "create_lat": summary(lat), "settle_s": settle, "vips_served": served,
            "vips": len(vips)}


def list_scale(srv, n_lbs, n_members, reps, clients, log):
    rss0 = srv.rss()
    bodies = [lb_pool_only(f"scale-{i:04d}", srv.subnet_id, n_members, 20000)
              for i in range(n_lbs)]
    ids, wall, create_lat = parallel_creates(srv.port, bodies, clients)
    settle = wait_all_active(srv.api, ids, 300)
    log(f"  scale: {n_lbs} LBs x {n_members} members created in {wall:.1f} s, all ACTIVE "
        f"{settle:.1f} s later")
    api = srv.api
    status, body = api.request("GET", "/v2/lbaas/pools?limit=1000&fields=id")
    expect(status, body, (200,), "pools")
    n_pools = len(body["pools"])
    pool_id = body["pools"][n_pools // 2]["id"]
    status, body = api.request("GET", f"/v2/lbaas/pools/{pool_id}/members")
    expect(status, body, (200,), "members")
    members_in_pool = len(body["members"])
    # The marker of a page in the middle: walk the pages once.
    status, body = api.request("GET", "/v2/lbaas/loadbalancers?limit=100")
    expect(status, body, (200,), "list")
    first = body["loadbalancers"]
    marker, pages = None, 0
    while True:
        q = "/v2/lbaas/loadbalancers?limit=100" + (f"&marker={marker}" if marker else "")
        status, body = api.request("GET", q)
        page = body["loadbalancers"]
        pages += 1
        if len(page) < 100 or pages * 100 >= n_lbs:
            break
        marker = page[-1]["id"]
        if pages >= max(1, n_lbs // 200):
            break
    one_name = first[len(first) // 2]["name"]
    cases = [
        ("`GET /v2/lbaas/loadbalancers?limit=100` (first page)",
         "/v2/lbaas/loadbalancers?limit=100", min(100, n_lbs), GOAL_PAGE_MS),
        (f"`GET /v2/lbaas/loadbalancers?limit=100&marker=…` (page {pages + 1})",
         f"/v2/lbaas/loadbalancers?limit=100&marker={marker}",
         min(100, max(0, n_lbs - 100 * pages)), GOAL_PAGE_MS),
        ("`GET /v2/lbaas/pools?limit=100` (first page)",
         "/v2/lbaas/pools?limit=100", min(100, n_pools), GOAL_PAGE_MS),
        (f"`GET /v2/lbaas/pools/{{id}}/members` ({members_in_pool} members)",
         f"/v2/lbaas/pools/{pool_id}/members", members_in_pool, None),
        ("`GET /v2/lbaas/loadbalancers?name=<one>`",
         f"/v2/lbaas/loadbalancers?name={one_name}", 1, None),
        (f"`GET /v2/lbaas/loadbalancers` (all {n_lbs}, no limit)",
         "/v2/lbaas/loadbalancers", n_lbs, None),
    ]
    if marker is None:  # a single page: no marker case
        cases.pop(1)
    results = []
    for label, path, want_items, goal in cases:
        status, body = api.request("GET", path)
        expect(status, body, (200,), path)
        key = path.split("?")[0].rstrip("/").rsplit("/", 1)[1]
        key = key if key in ("members", "pools") else "loadbalancers"
        got = len(body[key])
        if got != want_items:
            raise RuntimeError(f"{path}: {got} items, expected {want_items}")
        _, raw = api.request("GET", path, parse=False)
        n = reps if want_items < 1000 else max(20, reps // 4)
        lat = []
        c0 = cpu_s(srv.proc.pid)
        for _ in range(n):
            t = time.perf_counter()
            status, raw = api.request("GET", path, parse=False)
            lat.append(time.perf_counter() - t)
            expect(status, raw, (200,), path)
        cpu_ms = ms((cpu_s(srv.proc.pid) - c0) / n)
        results.append({"label": label, "n": n, "items": got, "bytes": len(raw),
                        "lat": summary(lat), "goal": goal, "cpu_ms": cpu_ms})
        log(f"  {label}: median {ms(statistics.median(lat)):.2f} ms")
    time.sleep(1.0)
    rss1 = srv.rss()
    return {"n_lbs": n_lbs, "n_members": n_lbs * n_members, "create_rate": n_lbs / wall,
            "create_lat": summary(create_lat), "settle_s": settle, "cases": results,
            "rss_start_kib": rss0, "rss_kib": rss1}


# --------------------------------------------------------------------------------------------
# Store backends and several controllers (issue 15): SQLite vs PostgreSQL, 1 and 3 nodes.


class PgCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1: `scripts/pg-cluster` when the tree has it,
    else the same steps inline (initdb/pg_ctl of Debian's `postgresql` as the `postgres` user,
    trust auth on 127.0.0.1 and the socket, fsync and synchronous_commit on). One database per
    scenario, dropped after it."""

    def __init__(self, tmpdir, script, log):
        self.log = log
        self.script = script
        self.bindir = self.find_bindir()
        self.dir = tempfile.mkdtemp(prefix="statera-bench-pg-", dir=tmpdir)
        os.chmod(self.dir, 0o700)
        self.as_pg = []
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_pg = ["runuser", "-u", "postgres", "--"]
        elif pwd_name() != "postgres":
            raise RuntimeError("PostgreSQL scenarios need root or the postgres user "
                               "(initdb and pg_ctl run as postgres)")
        self.started = False
        self.port = None
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def find_bindir():
        import glob
        dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
                if os.path.exists(os.path.join(d, "pg_ctl"))]
        if not dirs:
            raise RuntimeError("no PostgreSQL server programs under /usr/lib/postgresql/*/bin "
                               "(install Debian's postgresql package)")
        return sorted(dirs, key=lambda d: int(d.split("/")[-2].split(".")[0]))[-1]

    def run_pg(self, cmd, timeout=120):
        return subprocess.run(self.as_pg + cmd, cwd="/", capture_output=True, text=True,
                              timeout=timeout)

    def start(self):
        if self.script:
            r = subprocess.run([self.script, "start", self.dir], capture_output=True, text=True,
                               timeout=180)
            if r.returncode != 0:
                raise RuntimeError(f"{self.script} start: {r.stderr[-2000:]}")
            self.started = True
            url = r.stdout.strip().splitlines()[-1]
            self.port = int(url.rsplit(":", 1)[1].split("/")[0])
            self.data = os.path.join(self.dir, "data")
            self.how = "`scripts/pg-cluster`"
        else:
            self.port = free_port()
            self.data = os.path.join(self.dir, "data")
            r = self.run_pg([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U",
                             "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--auth-local=trust",
                             "--auth-host=trust"])
            if r.returncode != 0:
                raise RuntimeError(f"initdb: {r.stdout[-1000:]} {r.stderr[-1000:]}")
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                f.write(f"\n# bench/control_plane.py\nlisten_addresses = '127.0.0.1'\n"
                        f"port = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                        "fsync = on\nsynchronous_commit = on\nmax_connections = 300\n"
                        "shared_buffers = 64MB\n")
            self.started = True
            r = self.run_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l",
                             os.path.join(self.dir, "postgres.log"), "-w", "-t", "60", "start"])
            if r.returncode != 0:
                raise RuntimeError(f"pg_ctl start: {r.stderr[-1000:]}")
            self.how = "initdb/pg_ctl inline"
        self.version = self.psql("postgres", "SHOW server_version").strip()
        self.log(f"PostgreSQL {self.version} on 127.0.0.1:{self.port} ({self.how})")

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db, sql):
        r = subprocess.run([os.path.join(self.bindir, "psql"), "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", "postgres", "-d", db, "-X", "-q", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {r.stderr.strip()}")
        return r.stdout

    def create_db(self, name):
        self.psql("postgres", f"CREATE DATABASE {name}")

    def drop_db(self, name):
        try:
            self.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            self.log(f"  (could not drop database {name}: {e})")

    def xacts(self, name):
        """(commits, rollbacks) of database `name` so far (pg_stat_database; the counters
        reach it within a second or so of each transaction)."""
        c, r = self.psql("postgres", "SELECT xact_commit, xact_rollback FROM pg_stat_database "
                                     f"WHERE datname = '{name}'").strip().split("|")
        return int(c), int(r)

    def db_size(self, name):
        return int(self.psql("postgres", f"SELECT pg_database_size('{name}')").strip())

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def cpu_s(self):
        """CPU seconds of the postmaster and its live children (the backends serving the
        nodes' pooled connections; a backend that has exited is not counted)."""
        try:
            root = self.postmaster_pid()
        except (OSError, ValueError):
            return 0.0
        total = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) == root or int(fields[1]) == root:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self):
        try:
            if self.started:
                if self.script:
                    subprocess.run([self.script, "stop", self.dir], capture_output=True,
                                   timeout=120)
                else:
                    pg_ctl = os.path.join(self.bindir, "pg_ctl")
                    r = self.run_pg([pg_ctl, "-D", self.data, "stop", "-m", "fast", "-w",
                                     "-t", "60"])
                    if r.returncode != 0:
                        self.run_pg([pg_ctl, "-D", self.data, "stop", "-m", "immediate", "-w",
                                     "-t", "60"])
                self.started = False
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def pwd_name():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


class Deployment:
    """`nodes` × `statera serve --role api,controller` on one store: SQLite in the (single)
    node's data dir, or one PostgreSQL database (`statera db upgrade` first). Each node has its
    own data dir (its node id), API port and log; every node gets the same host subnet."""

    def __init__(self, binary, store, nodes, workdir, pg, durability, tag,
                 controller_timeout=None):
        self.binary = binary
        self.store = store
        self.dir = tempfile.mkdtemp(prefix=f"statera-bench-{tag}-", dir=workdir)
        self.procs, self.ports, self.logs = [], [], []
        self.pg, self.db = pg, None
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        env.pop("STATERA_STORE", None)
        self.env = env
        common = ["--host-subnet", HOST_SUBNET, "--durability", durability, "--auth", "noauth",
                  "--noauth-default-roles", "admin,member,reader",
                  "--config", os.path.join(workdir, BENCH_CONFIG)]
        if store == "postgres":
            self.db = f"statera_bench_{tag.replace('-', '_')}"
            pg.drop_db(self.db)
            pg.create_db(self.db)
            url = pg.url(self.db)
            r = subprocess.run([binary, "db", "upgrade", "--store", url], capture_output=True,
                               text=True, timeout=120, env=env)
            if r.returncode != 0:
                raise RuntimeError(f"statera db upgrade: {r.stdout[-1000:]} {r.stderr[-1000:]}")
            common += ["--store", url, "--role", "api,controller"]
            if controller_timeout is not None:
                common += ["--controller-timeout", str(controller_timeout)]
        elif nodes != 1:
            raise RuntimeError("SQLite is one node's store")
        # The first node alone (it bootstraps the host network on a fresh store), then the rest.
        self.start_node(0, common)
        self.wait_ready([0])
        for i in range(1, nodes):
            self.start_node(i, common)
        self.wait_ready(range(1, nodes))
        self.api = Api(self.ports[0])
        status, body = self.api.request("GET", "/v2.0/subnets?name=host-subnet")
        expect(status, body, (200,), "subnets")
        self.subnet_id = body["subnets"][0]["id"]

    def start_node(self, i, common):
        port = free_port()
        ndir = os.path.join(self.dir, f"node-{i}")
        os.makedirs(ndir)
        log = open(os.path.join(ndir, "serve.log"), "wb")
        args = [self.binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                os.path.join(ndir, "data")] + common
        if self.store == "postgres":
            args += ["--node-id", f"bench-node-{i}"]
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                           env=self.env))
        self.ports.append(port)
        self.logs.append(log)

    def wait_ready(self, which):
        for i in which:
            api = Api(self.ports[i])
            deadline = time.monotonic() + 60
            try:
                while True:
                    if self.procs[i].poll() is not None:
                        raise RuntimeError(f"node {i} exited: {self.tail_log(i)}")
                    try:
                        status, _ = api.request("GET", "/v2/lbaas/loadbalancers?limit=1")
                        if status == 200:
                            break
                    except OSError:
                        api.close()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"node {i} did not answer within 60 s: "
                                           f"{self.tail_log(i)}")
                    time.sleep(0.05)
            finally:
                api.close()

    def tail_log(self, i, n=2000):
        self.logs[i].flush()
        with open(os.path.join(self.dir, f"node-{i}", "serve.log"), "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def log_lines(self, i, pattern):
        """Lines of node i's log containing `pattern` (WARN and ERROR, say)."""
        self.logs[i].flush()
        with open(os.path.join(self.dir, f"node-{i}", "serve.log"), "rb") as f:
            return [l.decode(errors="replace").rstrip() for l in f if pattern.encode() in l]

    def cpu_s(self):
        return sum(cpu_s(p.pid) for p in self.procs)

    def rss(self):
        return [rss_kib(p.pid) for p in self.procs]

    def check_alive(self):
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                raise RuntimeError(f"node {i} exited ({p.returncode}): {self.tail_log(i)}")

    def stop(self, keep_logs_in=None):
        self.api.close() if hasattr(self, "api") else None
        for p in self.procs:
            stop_pid(p)
        for l in self.logs:
            l.close()
        if keep_logs_in:
            for i in range(len(self.procs)):
                src = os.path.join(self.dir, f"node-{i}", "serve.log")
                if os.path.exists(src):
                    shutil.copy(src, os.path.join(keep_logs_in,
                                                  f"{os.path.basename(self.dir)}-node-{i}.log"))
        if self.db:
            self.pg.drop_db(self.db)
        shutil.rmtree(self.dir, ignore_errors=True)


class RoundRobin:
    """One client sending its requests round-robin over the nodes (a keep-alive connection to
    each)."""

    def __init__(self, ports):
        self.apis = [Api(p) for p in ports]
        self.k = 0

    def next(self):
        api = self.apis[self.k % len(self.apis)]
        self.k += 1
        return api

    def close(self):
        for a in self.apis:
            a.close()


def wait_none_pending(dep, deadline_s):
    """Until no load balancer is PENDING_CREATE (asked of every node in turn: a filter on the
    summaries, one rendered item at most); returns the seconds it took."""
    rr = RoundRobin(dep.ports)
    t0 = time.monotonic()
    try:
        while True:
            status, body = rr.next().request(
                "GET", "/v2/lbaas/loadbalancers?provisioning_status=PENDING_CREATE&limit=1")
            expect(status, body, (200,), "pending list")
            if not body["loadbalancers"]:
                # and on every node (each syncs with the store before answering)
                if all(not a.request("GET", "/v2/lbaas/loadbalancers?provisioning_status="
                                            "PENDING_CREATE&limit=1")[1]["loadbalancers"]
                       for a in rr.apis):
                    return time.monotonic() - t0
            if time.monotonic() - t0 > deadline_s:
                raise RuntimeError(f"load balancers still PENDING_CREATE after {deadline_s} s")
            dep.check_alive()
            time.sleep(0.2)
    finally:
        rr.close()


def store_creates(dep, n_seq, n_conc, clients, log):
    """Plain LB creates, 1 client and `clients` clients, round-robin over the nodes."""
    out = {}
    bodies = [{"loadbalancer": {"name": f"st-s-{i}", "vip_subnet_id": dep.subnet_id}}
              for i in range(n_seq)]
    _, wall, lat = parallel_creates(dep.ports, bodies, 1)
    out["seq"] = (n_seq / wall, summary(lat), n_seq)
    bodies = [{"loadbalancer": {"name": f"st-c-{i}", "vip_subnet_id": dep.subnet_id}}
              for i in range(n_conc)]
    _, wall, lat = parallel_creates(dep.ports, bodies, clients)
    out["conc"] = (n_conc / wall, summary(lat), n_conc)
    log(f"  creates: {out['seq'][0]:.0f}/s (1 client), {out['conc'][0]:.0f}/s "
        f"({clients} clients)")
    out["settle_s"] = wait_none_pending(dep, 300)
    return out


def store_active(dep, tries, log):
    """POST a plain LB to node i % N and poll its GET on the same node (every ~1 ms, at most
    10 s) until ACTIVE: POST→201 and POST→ACTIVE, one at a time."""
    rr = RoundRobin(dep.ports)
    r201, ract = [], []
    try:
        for i in range(tries):
            api = rr.next()
            t0 = time.perf_counter()
            status, resp = api.request("POST", "/v2/lbaas/loadbalancers",
                                       {"loadbalancer": {"name": f"st-a-{i}",
                                                         "vip_subnet_id": dep.subnet_id}})
            r201.append(time.perf_counter() - t0)
            expect(status, resp, (201,), "create")
            lb_id = resp["loadbalancer"]["id"]
            while True:
                st, body = api.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}")
                expect(st, body, (200,), "show")
                ps = body["loadbalancer"]["provisioning_status"]
                if ps == "ACTIVE":
                    ract.append(time.perf_counter() - t0)
                    break
                if ps == "ERROR":
                    raise RuntimeError(f"load balancer {lb_id} went to ERROR")
                if time.perf_counter() - t0 > 10:
                    dep.check_alive()
                    raise RuntimeError(f"load balancer {lb_id} not ACTIVE after 10 s")
                time.sleep(0.001)
    finally:
        rr.close()
    log(f"  POST → ACTIVE: median {ms(statistics.median(ract)):.1f} ms")
    return {"tries": tries, "post_201": summary(r201), "active": summary(ract)}


def count_lbs(dep):
    """How many load balancers the store holds (node 0's view)."""
    return count_lbs_each(dep, dep.ports[:1])[0]


def count_lbs_each(dep, ports=None):
    """How many load balancers each node lists, walking the pages (a page holds at most
    pagination_max_limit, 1,000 by default); negative if an id came twice."""
    out = []
    for p in ports or dep.ports:
        api = Api(p, timeout=120)
        ids, marker = [], None
        try:
            for _ in range(1000):
                q = "/v2/lbaas/loadbalancers?limit=1000&fields=id" + (
                    f"&marker={marker}" if marker else "")
                status, body = api.request("GET", q)
                expect(status, body, (200,), "count")
                page = [x["id"] for x in body["loadbalancers"]]
                ids += page
                if len(page) < 1000:
                    break
                marker = page[-1]
            out.append(len(set(ids)) if len(set(ids)) == len(ids) else -len(ids))
        finally:
            api.close()
    return out


def store_populate(dep, target, have, clients, timeout_s, log):
    """Plain LB creates with `clients` clients (round-robin) until the store holds `target`
    (at most `timeout_s` seconds of creating), then until none is PENDING_CREATE."""
    need = max(0, target - have)
    bodies = [{"loadbalancer": {"name": f"pop-{have + i:06d}", "vip_subnet_id": dep.subnet_id}}
              for i in range(need)]
    ids, wall, lat = parallel_creates(dep.ports, bodies, clients,
                                      deadline=time.monotonic() + timeout_s)
    settle = wait_none_pending(dep, 600)
    log(f"  populate: {len(ids)} creates in {wall:.1f} s ({len(ids) / max(wall, 1e-9):.0f}/s), "
        f"none pending {settle:.1f} s later")
    return {"created": len(ids), "wall": wall, "rate": len(ids) / max(wall, 1e-9),
            "lat": summary(lat) if lat else None, "settle_s": settle,
            "bounded": len(ids) < need}


def store_lists(dep, n_lbs, reps, log, pg=None):
    """List latency with one client round-robin over the nodes: first page, a page in the
    middle via marker, a filter by name; nodes' (and PostgreSQL's) CPU per request."""
    api = dep.api
    # The marker of a page in the middle: walk there once.
    marker, pages, names = None, 0, []
    while pages < max(1, n_lbs // 200):
        q = "/v2/lbaas/loadbalancers?limit=100" + (f"&marker={marker}" if marker else "")
        status, body = api.request("GET", q)
        expect(status, body, (200,), q)
        page = body["loadbalancers"]
        pages += 1
        if not page:
            break
        names.append(page[len(page) // 2]["name"])
        if len(page) < 100:
            break
        marker = page[-1]["id"]
    one_name = names[-1]
    cases = [("first page, `GET /v2/lbaas/loadbalancers?limit=100`",
              "/v2/lbaas/loadbalancers?limit=100", min(100, n_lbs)),
             (f"page {pages + 1} via `marker`, `…?limit=100&marker=…`",
              f"/v2/lbaas/loadbalancers?limit=100&marker={marker}",
              min(100, max(0, n_lbs - 100 * pages))),
             ("filter by name, `…?name=<one>`",
              f"/v2/lbaas/loadbalancers?name={one_name}", 1)]
    if marker is None:
        cases.pop(1)
    rr = RoundRobin(dep.ports)
    results = []
    try:
        for label, path, want in cases:
            for a in rr.apis:  # warm every node's connection; check the answer
                status, body = a.request("GET", path)
                expect(status, body, (200,), path)
                if len(body["loadbalancers"]) != want:
                    raise RuntimeError(f"{path}: {len(body['loadbalancers'])} items, "
                                       f"expected {want}")
            lat = []
            c0 = dep.cpu_s()
            p0 = pg.cpu_s() if pg else 0.0
            for _ in range(reps):
                t = time.perf_counter()
                status, raw = rr.next().request("GET", path, parse=False)
                lat.append(time.perf_counter() - t)
                expect(status, raw, (200,), path)
            cpu = ms((dep.cpu_s() - c0) / reps)
            pg_cpu = ms((pg.cpu_s() - p0) / reps) if pg else None
            results.append({"label": label, "n": reps, "items": want, "lat": summary(lat),
                            "cpu_ms": cpu, "pg_cpu_ms": pg_cpu})
            log(f"  {label}: median {ms(statistics.median(lat)):.2f} ms")
    finally:
        rr.close()
    return results


def warn_kinds(lines):
    """WARN/ERROR log lines by kind (colours, timestamps, uuids and numbers taken out), most
    frequent first: [(count, kind, first line)]."""
    import re
    kinds = {}
    for line in lines:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
        kind = re.sub(r"^\S+\s+", "", plain)
        kind = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", kind)
        kind = re.sub(r"bench-node-\d+", "<node>", kind)
        kind = re.sub(r"\d+(\.\d+)?", "<n>", kind)[:200]
        if kind in kinds:
            kinds[kind][0] += 1
        else:
            kinds[kind] = [1, plain[:400]]
    return sorted(((c, k, first) for k, (c, first) in kinds.items()), reverse=True)


def store_scenario(binary, store, nodes, scales, args, workdir, pg, log):
    tag = f"{store}-{nodes}"
    log(f"store={store}, {nodes} node(s) with api,controller")
    dep = Deployment(binary, store, nodes, workdir, pg, args.durability[0], tag,
                     args.controller_timeout)
    res = {"store": store, "nodes": nodes, "rss_start_kib": None, "scales": []}
    try:
        time.sleep(0.5)
        res["rss_start_kib"] = dep.rss()
        res["creates"] = store_creates(dep, args.creates, args.creates * 2, args.clients, log)
        res["active"] = store_active(dep, args.active_tries, log)
        have = count_lbs(dep)  # the creates above (a small list)
        for target in scales:
            if have >= target:
                log(f"  already {have} LBs, more than {target}: skipped")
                continue
            c0, p0 = dep.cpu_s(), (pg.cpu_s() if pg else 0.0)
            if store == "postgres":
                time.sleep(1.5)
                x0 = pg.xacts(dep.db)
            pop = store_populate(dep, target, have, args.clients, args.populate_timeout, log)
            if store == "postgres":
                time.sleep(1.5)
                x1 = pg.xacts(dep.db)
                pop["xacts"] = tuple((b - a) / max(1, pop["created"]) for a, b in zip(x0, x1))
                log(f"  PostgreSQL transactions per create: {pop['xacts'][0]:.1f} commits, "
                    f"{pop['xacts'][1]:.1f} rollbacks (all nodes, reads included)")
            pop["cpu_per_create_ms"] = ms((dep.cpu_s() - c0) / max(1, pop["created"]))
            pop["pg_cpu_per_create_ms"] = (ms((pg.cpu_s() - p0) / max(1, pop["created"]))
                                           if store == "postgres" else None)
            have += pop["created"]
            lists = store_lists(dep, have, args.reps, log, pg if store == "postgres" else None)
            time.sleep(1.0)
            rss = dep.rss()
            db_bytes = pg.db_size(dep.db) if store == "postgres" else None
            load = loadavg()
            # Every acknowledged create is there exactly once, on every node (after the RSS, as
            # the unbounded list makes the node render every object).
            counts = count_lbs_each(dep)
            status, body = dep.api.request(
                "GET", "/v2/lbaas/loadbalancers?provisioning_status=ERROR&limit=1000&fields=id")
            expect(status, body, (200,), "errors")
            errors = len(body["loadbalancers"])
            res["scales"].append({"target": target, "pop": pop, "lists": lists, "rss_kib": rss,
                                  "db_bytes": db_bytes, "load": load, "n": have,
                                  "counts": counts, "errors": errors})
            log(f"  RSS at {have} LBs: {', '.join(f'{r / 1024:.1f}' for r in rss)} MiB; "
                f"nodes count {counts}")
            if any(c != have for c in counts):
                log(f"  **acknowledged creates {have}, nodes list {counts}**")
            if pop["bounded"]:
                log(f"  populate stopped at its bound ({args.populate_timeout} s): no larger scale")
                break
        res["warnings"] = warn_kinds(l for i in range(nodes) for l in dep.log_lines(i, "WARN")
                                     + dep.log_lines(i, "ERROR"))
    finally:
        dep.stop(keep_logs_in=args.keep_logs)
    return res


def report_stores(stores, args):
    out = []
    w = out.append
    if not stores:
        return ""
    d = args.durability[0]
    w("")
    w("")
    w(f"Stores and controllers (plain load balancers, no listeners; durability {d} on SQLite; "
      f"PostgreSQL with fsync and synchronous_commit on; N nodes each `--role api,controller` "
      f"on one database, one client spreading its requests round-robin over the N API ports):")
    w("")
    head = [f"{r['store']}, {r['nodes']} node{'s' if r['nodes'] > 1 else ''}" for r in stores]
    w("| figure | " + " | ".join(head) + " |")
    w("|---|" + "---|" * len(stores) + "")
    c = stores[0]["creates"]

    def row(label, cells):
        w(f"| {label} | " + " | ".join(cells) + " |")

    row(f"creates/s, 1 client ({c['seq'][2]} creates); latency median / p99 ms",
        [f"{r['creates']['seq'][0]:.0f}/s; {fmt_lat(r['creates']['seq'][1])}" for r in stores])
    row(f"creates/s, {args.clients} clients ({c['conc'][2]} creates); latency median / p99 ms",
        [f"{r['creates']['conc'][0]:.0f}/s; {fmt_lat(r['creates']['conc'][1])}"
         for r in stores])
    a = stores[0]["active"]
    row(f"POST → 201, median / p99 ms ({a['tries']} one at a time)",
        [fmt_lat(r["active"]["post_201"]) for r in stores])
    row("POST → provisioning_status ACTIVE, median / p99 ms",
        [fmt_lat(r["active"]["active"]) for r in stores])
    targets = sorted({s["target"] for r in stores for s in r["scales"]})
    for t in targets:
        at = [next((s for s in r["scales"] if s["target"] == t), None) for r in stores]

        def cell(f):
            return [f(s) if s else "—" for s in at]

        row(f"**{t:,}**: populate, creates/s ({args.clients} clients; then until none is "
            f"PENDING_CREATE; CPU per create: nodes + PostgreSQL)",
            cell(lambda s: f"{s['pop']['rate']:.0f}/s ({s['pop']['created']:,} in "
                           f"{s['pop']['wall']:.0f} s{', **bounded**' if s['pop']['bounded'] else ''}"
                           f", + {s['pop']['settle_s']:.0f} s"
                           f"; {s['pop']['cpu_per_create_ms']:.1f}"
                           + (f" + {s['pop']['pg_cpu_per_create_ms']:.1f}"
                              if s['pop']['pg_cpu_per_create_ms'] is not None else "")
                           + " ms)"))
        labels = [c["label"] for c in next(s for s in at if s)["lists"]]
        for k, label in enumerate(labels):
            def lc(s, k=k):
                if k >= len(s["lists"]):
                    return "—"
                x = s["lists"][k]
                cpu = f"{x['cpu_ms']:.1f}"
                if x["pg_cpu_ms"] is not None:
                    cpu += f" + {x['pg_cpu_ms']:.1f}"
                return f"{fmt_lat(x['lat'])} (CPU {cpu})"
            row(f"at {t:,}: {label}, median / p99 ms over {args.reps} (CPU ms/request: nodes "
                f"+ PostgreSQL)", cell(lc))
        row(f"at {t:,}: PostgreSQL transactions per create while populating: commits / "
            f"rollbacks (all nodes, syncs and heartbeats included)",
            cell(lambda s: f"{s['pop']['xacts'][0]:.1f} / {s['pop']['xacts'][1]:.1f}"
                 if s["pop"].get("xacts") else "—"))
        row(f"at {t:,}: RSS of each node, MiB (fresh)",
            [", ".join(f"{x / 1024:.1f}" for x in s["rss_kib"]) + " ("
             + ", ".join(f"{x / 1024:.1f}" for x in r["rss_start_kib"]) + ")" if s else "—"
             for s, r in zip(at, stores)])
        row(f"at {t:,}: PostgreSQL database size", cell(
            lambda s: f"{s['db_bytes'] / 2**20:.1f} MiB" if s["db_bytes"] is not None else "—"))
        row(f"at {t:,}: load average (1/5/15) after the lists", cell(lambda s: s["load"]))
    w("")
    for r in stores:
        if r.get("warnings"):
            total = sum(c for c, _, _ in r["warnings"])
            w(f"{r['store']}, {r['nodes']} node(s): {total:,} WARN/ERROR log line(s) over the "
              f"nodes; most frequent kinds:")
            w("")
            for c, _, first in r["warnings"][:5]:
                w(f"- {c:,} × `{first[:300]}`")
            w("")
    for r in stores:
        for sc in r["scales"]:
            if any(c != sc["n"] for c in sc["counts"]) or sc.get("errors"):
                w(f"**{r['store']}, {r['nodes']} node(s), at {sc['target']:,}: acknowledged "
                  f"creates {sc['n']:,}, each node lists {sc['counts']}, in ERROR: "
                  f"{sc.get('errors')}**  ")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Report.


def fmt_lat(t):
    return f"{t[0]:.2f} / {t[1]:.2f}"


def report(info, args, runs, mem, scale):
    out = []
    w = out.append
    w(f"Date: {info['date']}  ")
    w(f"Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, Linux {info['kernel']}, "
      f"Python {info['python']}  ")
    w(f"Command: `bench/control-plane {' '.join(args.argv)}`".rstrip() + "  ")
    w(f"Statera revision: {info['revision']} (this tree's; a binary given with --binary may be "
      f"another's)  ")
    w(f"Load average (1/5/15 min) at start: {info['load_start']}, at end: {info['load_end']}  ")
    w(f"Server: `statera serve` (release), host subnet {HOST_SUBNET}, subnet id from "
      f"{info.get('subnet_source', 'API')}, data dir on {info['fs']} (4 KiB write + fsync there: median "
      f"{info['fsync'][0]:.2f} ms, p99 {info['fsync'][1]:.2f} ms); client and server on the "
      f"same machine")
    if not (any("tts" in r or "tp" in r for r in runs) or mem or scale):
        return "\n".join(out)
    w("")
    w("| figure | durability | result | goal / reference |")
    w("|---|---|---|---|")
    for r in runs:
        if "tts" not in r:
            continue
        d = r["durability"]
        t = r["tts"]
        ok = "met" if t["served"][0] < GOAL_TTS_MS else "**missed**"
        w(f"| time to serve: POST → VIP answers 200 from a backend, median / p99 (max) "
          f"over {t['tries']} tries | {d} | {fmt_lat(t['served'])} ms ({t['served'][2]:.1f}) "
          f"| < {GOAL_TTS_MS} ms median ({ok}); Octavia amphora ~{AMPHORA_TTS_S} s (known figure, "
          f"not measured) |")
        w(f"| … POST → 201, median / p99 | {d} | {fmt_lat(t['post_201'])} ms | |")
        w(f"| … POST → provisioning_status ACTIVE (API), median / p99 | {d} | "
          f"{fmt_lat(t['active'])} ms | |")
        w(f"| … DELETE ?cascade → 404, median / p99 | {d} | {fmt_lat(t['delete_gone'])} ms | |")
    for r in runs:
        if "tp" not in r:
            continue
        d = r["durability"]
        tp = r["tp"]
        w(f"| creates/s, plain LB, 1 client ({tp['n_seq']} creates); latency median / p99 | "
          f"{d} | {tp['creates_seq']:.0f}/s; {fmt_lat(tp['creates_seq_lat'])} ms | |")
        w(f"| creates/s, plain LB, {tp['clients']} clients ({tp['n_conc']} creates); latency "
          f"median / p99 | {d} | {tp['creates_conc']:.0f}/s; {fmt_lat(tp['creates_conc_lat'])} "
          f"ms | |")
        w(f"| lists/s, `GET ?limit=100` (of {tp['n_seq'] + tp['n_conc']} LBs), 1 client; "
          f"latency median / p99 | {d} | {tp['lists_seq']:.0f}/s; "
          f"{fmt_lat(tp['lists_seq_lat'])} ms; server CPU {tp['list_cpu_ms']:.1f} ms/request | |")
        w(f"| lists/s, `GET ?limit=100`, {tp['clients']} clients | {d} | "
          f"{tp['lists_conc']:.0f}/s; {fmt_lat(tp['lists_conc_lat'])} ms | |")
    if scale:
        d = args.durability[0]
        w(f"| fully populated creates/s (pool of 10 members, no listener), {args.clients} "
          f"clients | {d} | {scale['create_rate']:.0f}/s | |")
        for c in scale["cases"]:
            goal = ""
            if c["goal"]:
                goal = f"< {c['goal']} ms ({'met' if c['lat'][0] < c['goal'] else '**missed**'})"
            w(f"| at {scale['n_lbs']:,} LBs / {scale['n_members']:,} members: {c['label']}, "
              f"{c['items']} items, {c['bytes']:,} bytes; median / p99 over {c['n']} | {d} | "
              f"{fmt_lat(c['lat'])} ms; server CPU {c['cpu_ms']:.1f} ms/request | {goal} |")
    if mem:
        d = args.durability[0]
        w(f"| fully populated creates/s (HTTP listener + pool of 2), {args.clients} clients "
          f"| {d} | {mem['create_rate']:.0f}/s | |")
        w(f"| RSS of a fresh `statera serve` | {d} | {mem['rss_start_kib'] / 1024:.1f} MiB | |")
        w(f"| RSS holding {mem['n']:,} idle LBs (1 HTTP listener bound + pool of 2 members each; "
          f"{mem['vips_served']}/{mem['vips']} VIPs answered 200) | {d} | "
          f"{mem['rss_kib'] / 1024:.1f} MiB | |")
        w(f"| … per load balancer | {d} | {mem['per_lb_kib']:.1f} KiB | |")
    if scale:
        w(f"| RSS holding {scale['n_lbs']:,} LBs / {scale['n_members']:,} members (no "
          f"listeners) | {args.durability[0]} | {scale['rss_kib'] / 1024:.1f} MiB (fresh: "
          f"{scale['rss_start_kib'] / 1024:.1f} MiB) | |")
    w("")
    w("Latencies are measured by the Python client (keep-alive connection, response read in "
      "full, not parsed), so they include its own overhead; the VIP is polled with a fresh "
      "connection every ~1 ms, so time-to-serve has ~1 ms resolution. Server CPU per request "
      "is the statera process's user+system time over the requests (10 ms clock ticks, so "
      "it is only meaningful summed over many requests); unlike wall time it does not grow "
      "when other processes compete for the CPUs.")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--backend":
        run_backend(int(sys.argv[2]), sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default="target/release/statera")
    p.add_argument("--durability", default="full,normal",
                   help="comma-separated; time-to-serve and throughput run for each, memory and "
                        "scale for the first (default: full,normal)")
    p.add_argument("--tries", type=int, default=100, help="time-to-serve tries (default 100)")
    p.add_argument("--creates", type=int, default=200,
                   help="plain creates per throughput measurement (default 200)")
    p.add_argument("--lists", type=int, default=400, help="lists per measurement (default 400)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--lbs", type=int, default=1000, help="LBs for memory and scale (1000)")
    p.add_argument("--members", type=int, default=10, help="members per LB at scale (10)")
    p.add_argument("--reps", type=int, default=200, help="requests per list latency (200)")
    p.add_argument("--skip", default="",
                   help="comma-separated: tts,throughput,memory,scale,stores")
    p.add_argument("--stores", default="sqlite,postgres",
                   help="store backends of the stores scenario (default: sqlite,postgres)")
    p.add_argument("--controllers", default="1,3",
                   help="nodes (each api,controller) per deployment; SQLite runs 1 only "
                        "(default: 1,3)")
    p.add_argument("--scale", default="1000,10000",
                   help="load balancers to populate to for list latency and RSS, ascending "
                        "(default: 1000,10000)")
    p.add_argument("--active-tries", type=int, default=100,
                   help="POST → ACTIVE tries per deployment (default 100)")
    p.add_argument("--populate-timeout", type=float, default=900,
                   help="seconds of creating at most per populate step (default 900)")
    p.add_argument("--pg-cluster", default=None,
                   help="the script that starts/stops a throwaway PostgreSQL cluster (default: "
                        "scripts/pg-cluster of this tree if it has one, else inline "
                        "initdb/pg_ctl)")
    p.add_argument("--controller-timeout", type=float, default=None,
                   help="`statera serve --controller-timeout` of the PostgreSQL nodes (default: "
                        "Statera's)")
    p.add_argument("--keep-logs", default=None,
                   help="copy each stores-scenario node's log into this directory")
    p.add_argument("--output", help="also write the markdown table to this file")
    p.add_argument("--tmpdir", help="where the temporary data dirs go (default: $TMPDIR or "
                                    "/tmp); fsync cost depends on this filesystem")
    argv = sys.argv[1:]
    args = p.parse_args(argv)
    args.argv = [a for a in argv if not a.startswith("--binary") and a != args.binary
                 and not a.startswith("--tmpdir") and a != args.tmpdir
                 and not a.startswith("--keep-logs") and a != args.keep_logs
                 and not a.startswith("--pg-cluster") and a != args.pg_cluster]
    args.stores = [x.strip() for x in args.stores.split(",") if x.strip()]
    args.controllers = [int(x) for x in args.controllers.split(",") if x.strip()]
    args.scale = sorted(int(x) for x in args.scale.split(",") if x.strip())
    for st in args.stores:
        if st not in ("sqlite", "postgres"):
            sys.exit(f"--stores: unknown store {st!r} (sqlite, postgres)")
    if args.pg_cluster is None:
        script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "scripts", "pg-cluster")
        args.pg_cluster = script if os.access(script, os.X_OK) else ""
    args.durability = [d.strip() for d in args.durability.split(",") if d.strip()]
    skip = set(s.strip() for s in args.skip.split(",") if s.strip())
    if "stores" not in skip and "postgres" in args.stores:
        # Fail before hours of other scenarios rather than after them.
        try:
            PgCluster.find_bindir()
        except RuntimeError as e:
            sys.exit(f"{e}; or run with --stores sqlite or --skip stores")
        if os.geteuid() != 0 and pwd_name() != "postgres":
            sys.exit("the PostgreSQL scenarios run initdb/pg_ctl as the postgres user: run as "
                     "root (or postgres), or with --stores sqlite or --skip stores")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: build it with `cargo build --release -p statera`")
    binary = os.path.abspath(args.binary)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    info = machine()
    info["date"] = datetime.date.today().isoformat()
    info["revision"] = revision()
    info["load_start"] = loadavg()
    workdir = tempfile.mkdtemp(prefix="statera-bench-", dir=args.tmpdir)
    info["fs"] = fs_type(workdir)
    backends = []
    procs = []
    servers = []
    runs, mem, scale, stores = [], None, None, []
    pg = None
    try:
        # A private copy, so a concurrent `cargo build` cannot swap the binary between scenarios.
        shutil.copy2(binary, os.path.join(workdir, "statera"))
        with open(os.path.join(workdir, BENCH_CONFIG), "w") as f:
            f.write(BENCH_CONFIG_TEXT)
        binary = os.path.join(workdir, "statera")
        info["fsync"] = fsync_ms(workdir)
        for name in ("backend-1", "backend-2"):
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                           "--backend", str(port), name]))
            backends.append((name, port))
        for name, port in backends:
            end = time.monotonic() + 10
            while not vip_get("127.0.0.1", port, [name]):
                if time.monotonic() > end:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.05)

        for d in args.durability:
            if "tts" in skip and "throughput" in skip:
                break
            log(f"durability={d}: time to serve and throughput")
            srv = Server(binary, d, workdir)
            servers.append(srv)
            info["subnet_source"] = srv.subnet_source
            run = {"durability": d, "subnet_source": srv.subnet_source,
                   "rss_start_kib": srv.rss()}
            if "tts" not in skip:
                run["tts"] = time_to_serve(srv, backends, args.tries, log)
            if "throughput" not in skip:
                run["tp"] = throughput(srv, args.creates, args.creates * 2, args.clients,
                                       args.lists, log)
            srv.stop()
            servers.remove(srv)
            runs.append(run)

        d = args.durability[0]
        if "memory" not in skip:
            log(f"durability={d}: memory with {args.lbs} idle LBs")
            srv = Server(binary, d, workdir)
            servers.append(srv)
            info["subnet_source"] = srv.subnet_source
            mem = memory(srv, backends, args.lbs, args.clients, log)
            srv.stop()
            servers.remove(srv)
        if "scale" not in skip:
            log(f"durability={d}: list latency at {args.lbs} LBs x {args.members} members")
            srv = Server(binary, d, workdir)
            servers.append(srv)
            info["subnet_source"] = srv.subnet_source
            scale = list_scale(srv, args.lbs, args.members, args.reps, args.clients, log)
            srv.stop()
            servers.remove(srv)
        if "stores" not in skip:
            if "postgres" in args.stores:
                pg = PgCluster(args.tmpdir, args.pg_cluster, log)
                info["postgres"] = f"PostgreSQL {pg.version} ({pg.how})"
            for st in args.stores:
                for n in args.controllers:
                    if st == "sqlite" and n != 1:
                        log(f"store=sqlite, {n} nodes: skipped (SQLite is one node's store)")
                        continue
                    stores.append(store_scenario(binary, st, n, args.scale, args, workdir, pg,
                                                 log))
    finally:
        if pg is not None:
            pg.stop()
        for srv in servers:
            srv.stop()
        for proc in procs:
            stop_pid(proc, 5)
        shutil.rmtree(workdir, ignore_errors=True)

    info["load_end"] = loadavg()
    text = report(info, args, runs, mem, scale) + report_stores(stores, args)
    if info.get("postgres"):
        text += f"\n\n{info['postgres']}, cluster on {info['fs']} like the SQLite data dirs."
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
