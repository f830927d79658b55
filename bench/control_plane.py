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
  pool's members, a filter by name: median and p99.

Every process started is stopped by its pid, temporary dirs are removed. The results are printed
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
             "--durability", durability, "--auth", "noauth", "--noauth-default-roles", "admin,member,reader"],
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


def parallel_creates(port, bodies, clients, vips=None):
    """POST every body with `clients` threads, one keep-alive connection each; returns
    (ids in creation order, wall seconds, per-request seconds); `vips` gets the VIP addresses."""
    lock = threading.Lock()
    queue = list(enumerate(bodies))[::-1]
    order = []
    ids = [None] * len(bodies)
    if vips is None:
        vips = {}
    lat = []

    def worker():
        api = Api(port)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    i, body = queue.pop()
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
            api.close()

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        for f in [ex.submit(worker) for _ in range(clients)]:
            f.result()
    return [ids[i] for i in order], time.perf_counter() - t0, lat


def parallel_gets(port, path, total, clients):
    per = total // clients
    lat = []
    lock = threading.Lock()

    def worker():
        api = Api(port)
        mine = []
        try:
            for _ in range(per):
                t = time.perf_counter()
                status, raw = api.request("GET", path, parse=False)
                mine.append(time.perf_counter() - t)
                expect(status, raw, (200,), path)
        finally:
            api.close()
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        for f in [ex.submit(worker) for _ in range(clients)]:
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
    w(f"Statera revision: {info['revision']}  ")
    w(f"Load average (1/5/15 min) at start: {info['load_start']}, at end: {info['load_end']}  ")
    w(f"Server: `statera serve` (release), host subnet {HOST_SUBNET}, subnet id from "
      f"{info['subnet_source']}, data dir on {info['fs']} (4 KiB write + fsync there: median "
      f"{info['fsync'][0]:.2f} ms, p99 {info['fsync'][1]:.2f} ms); client and server on the "
      f"same machine")
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
    p.add_argument("--skip", default="", help="comma-separated: tts,throughput,memory,scale")
    p.add_argument("--output", help="also write the markdown table to this file")
    p.add_argument("--tmpdir", help="where the temporary data dirs go (default: $TMPDIR or "
                                    "/tmp); fsync cost depends on this filesystem")
    argv = sys.argv[1:]
    args = p.parse_args(argv)
    args.argv = [a for a in argv if not a.startswith("--binary") and a != args.binary
                 and not a.startswith("--tmpdir") and a != args.tmpdir]
    args.durability = [d.strip() for d in args.durability.split(",") if d.strip()]
    skip = set(s.strip() for s in args.skip.split(",") if s.strip())
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
    runs, mem, scale = [], None, None
    try:
        # A private copy, so a concurrent `cargo build` cannot swap the binary between scenarios.
        shutil.copy2(binary, os.path.join(workdir, "statera"))
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
    finally:
        for srv in servers:
            srv.stop()
        for proc in procs:
            stop_pid(proc, 5)
        shutil.rmtree(workdir, ignore_errors=True)

    info["load_end"] = loadavg()
    text = report(info, args, runs, mem, scale)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
