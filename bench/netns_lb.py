#!/usr/bin/env python3
"""Network-driver benchmark: `statera serve --network-driver netns` with many load balancers.

Python 3 standard library only; needs root (network namespaces). Run it through `bench/netns`,
which builds the release binary first; or directly:
`python3 bench/netns_lb.py --binary target/release/statera`.

Per provider (native, haproxy) and round, with a fresh server each time:

* starts `statera serve --network-driver netns --namespace-prefix bn<pid><p><round>-
  --durability normal` on a free port with its own short temporary data dir;
* creates one network and subnet (10.30.0.0/16, gateway 10.30.0.1) through the Neutron API, two
  Neutron ports (10.30.0.2 "client", 10.30.0.3 "member") and plugs a namespace for each into the
  network's bridge (veth into `brq<net[:11]>` in `<prefix>switch`, the port's MAC and address),
  the way tests/e2e/test_onearm.py plugs its hosts; the member namespace runs a tiny HTTP backend
  on 10.30.0.3:80 (this script in `--backend` mode), the client namespace runs a prober (this
  script in `--prober` mode, its sockets live in the client namespace);
* creates N fully populated load balancers (HTTP listener :80, ROUND_ROBIN pool, one member =
  the backend) with C concurrent API clients; every VIP is handed to the prober the moment its
  POST returns 201, and the prober reports (CLOCK_MONOTONIC, shared by all processes) when the VIP
  first answers `HTTP 200` with the backend's body. Reported: wall time from the first POST to
  the last VIP answering, per load balancer POST -> first 200 (median / p99 / max), POST -> 201,
  and when the API last showed one not ACTIVE;
* with the N load balancers up: `statera serve`'s VmRSS, threads and file descriptors minus their
  values before the creates (for haproxy also the RSS of the HAProxy processes), namespaces under
  the prefix, interfaces in the switch namespace, lines of `nft list ruleset` in one load
  balancer namespace, and the cost of one `ip` spawn against the loaded switch namespace;
* deletes all N (DELETE ?cascade=true, C clients) and waits until every `<prefix>lb-` namespace
  and every load balancer's tap in the switch namespace are gone: wall time and per load
  balancer DELETE -> gone;
* once per provider, before the timed rounds, a small counting run (`--count-lbs`, default 10)
  starts the server with a PATH whose `ip`, `nft` and `haproxy` are logging wrappers that exec
  the real programs: process spawns per load balancer create and delete, by command.

Everything created is removed even on failure: namespaces by name (the prefix is unique to this
run), processes by pid, temporary dirs. Every wait is bounded in time.
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
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CIDR = "10.30.0.0/16"
GATEWAY = "10.30.0.1"
CLIENT_IP = "10.30.0.2"
MEMBER_IP = "10.30.0.3"
PREFIX_LEN = 16
LISTENER_PORT = 80
NETNS_DIR = "/run/netns"
HERE = os.path.abspath(__file__)
CREATE_DEADLINE_S = 600
DELETE_DEADLINE_S = 600


# --------------------------------------------------------------------------------------------
# Helper processes, run inside namespaces with `ip netns exec NS python3 netns_lb.py --...`.


def run_backend(address: str, port: int) -> None:
    body = b"member\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n"

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
        server = await asyncio.start_server(handle, address, port, backlog=1024)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def run_prober(deadline_s: float) -> None:
    """Reads VIP addresses on stdin (one per line); probes each (fresh connection, GET /) until
    it answers 200 with the backend's body; prints `VIP MONOTONIC ATTEMPTS` when it first does.
    The interval between attempts grows with the number of VIPs still pending (10 ms + 1.5 ms per
    pending VIP, at most 250 ms) so the prober does not starve the server of the 2 CPUs."""
    pending = set()

    async def attempt(vip):
        w = None
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(vip, LISTENER_PORT), 0.3)
            w.write(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(r.read(65536), 2.0)
            first = data.split(b"\r\n", 1)[0]
            return b" 200" in first and b"member" in data
        except (OSError, asyncio.TimeoutError):
            return False
        finally:
            if w is not None:
                w.close()

    async def probe(vip):
        end = time.monotonic() + deadline_s
        n = 0
        while time.monotonic() < end:
            n += 1
            if await attempt(vip):
                print(f"{vip} {time.monotonic():.6f} {n}", flush=True)
                pending.discard(vip)
                return
            await asyncio.sleep(min(0.25, 0.01 + 0.0015 * len(pending)))
        print(f"{vip} timeout {n}", flush=True)
        pending.discard(vip)

    async def main():
        loop = asyncio.get_running_loop()
        tasks = set()

        def start(vip):
            pending.add(vip)
            t = loop.create_task(probe(vip))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

        def reader():
            for line in sys.stdin:
                vip = line.strip()
                if vip:
                    loop.call_soon_threadsafe(start, vip)
            loop.call_soon_threadsafe(lambda: os._exit(0))

        threading.Thread(target=reader, daemon=True).start()
        print("ready", flush=True)
        while True:
            await asyncio.sleep(3600)

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# Helpers.


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def run(*cmd, check=True, timeout=30, stdin=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and p.returncode != 0:
        raise RuntimeError(f"$ {' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[:500]}")
    return p


def proc_status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def pss_kib(pid):
    """Proportional set size (shared pages split between the processes sharing them)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def threads(pid):
    return int(proc_status(pid)["Threads"])


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu(pid):
    """(own user+system, waited-for children's user+system) CPU seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return ((int(fields[11]) + int(fields[12])) / tck, (int(fields[13]) + int(fields[14])) / tck)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def namespaces(prefix):
    try:
        return [n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)]
    except FileNotFoundError:
        return []


def ns_links(ns):
    p = run("ip", "-n", ns, "-o", "link", "show", check=False, timeout=20)
    if p.returncode != 0:
        return None
    return [line.split(":")[1].strip().split("@")[0] for line in p.stdout.splitlines()]


def short(uuid):
    return uuid.replace("-", "")[:11]


def pids_with(text):
    """Pids of processes whose command line contains `text`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


def revision():
    root = os.path.dirname(os.path.dirname(HERE))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no",
                                "--", "crates", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + (" + uncommitted changes under crates/" if dirty else "")


class Api:
    """One keep-alive connection to the API."""

    def __init__(self, port, timeout=60.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None):
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
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:300]
        return resp.status, parsed

    def ok(self, method, path, body=None, want=(200, 201, 202, 204)):
        status, resp = self.request(method, path, body)
        if status not in want:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {str(resp)[:300]}")
        return resp

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------------------------
# One scenario: a server, a network, two hosts, N load balancers up and down.


class Scenario:
    def __init__(self, args, provider, tag, count_execs=False):
        self.args = args
        self.provider = provider
        self.prefix = f"bn{os.getpid() % 10000}{provider[0]}{tag}-"
        # Hosts are named outside the driver's prefix: nothing of Statera's can take them.
        self.hosts_prefix = f"bn{os.getpid() % 10000}{provider[0]}{tag}h-"
        self.dir = tempfile.mkdtemp(prefix="bn", dir="/tmp")  # short: HAProxy's socket paths
        self.count_execs = count_execs
        self.exec_log = os.path.join(self.dir, "execs.log")
        self.procs = []
        self.server = None
        self.prober = None
        self.answers = {}  # vip -> (monotonic, attempts) or None (timeout)
        self.answers_cv = threading.Condition()
        self.port = free_port()
        self.api = Api(self.port)

    # ---- setup

    def wrappers(self):
        wdir = os.path.join(self.dir, "bin")
        os.mkdir(wdir)
        for prog in ("ip", "nft", "haproxy"):
            real = shutil.which(prog) or shutil.which(prog, path="/usr/sbin:/sbin")
            if real is None:
                continue
            path = os.path.join(wdir, prog)
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\necho "{prog} $*" >> {self.exec_log}\nexec {real} "$@"\n')
            os.chmod(path, 0o755)
        return wdir

    def start_server(self):
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        if self.count_execs:
            env["PATH"] = self.wrappers() + ":" + env.get("PATH", "/usr/bin:/bin")
        self.log_path = os.path.join(self.dir, "serve.log")
        self.log_file = open(self.log_path, "wb")
        self.server = subprocess.Popen(
            [self.args.binary, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", os.path.join(self.dir, "data"), "--host-subnet", "127.231.0.0/24",
             "--network-driver", "netns", "--namespace-prefix", self.prefix,
             "--durability", "normal", "--auth", "noauth", "--noauth-default-roles", "admin,member,reader"],
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT, env=env,
            cwd=self.dir)
        deadline = time.monotonic() + 30
        while True:
            if self.server.poll() is not None:
                raise RuntimeError(f"statera serve exited: {self.tail_log()}")
            try:
                status, _ = self.api.request("GET", "/v2/lbaas/loadbalancers?limit=1")
                if status == 200:
                    return
            except OSError:
                self.api.close()
            if time.monotonic() > deadline:
                raise RuntimeError("statera serve did not answer within 30 s")
            time.sleep(0.05)

    def tail_log(self, n=2000):
        self.log_file.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    @property
    def switch(self):
        return f"{self.prefix}switch"

    def host(self, name, net_id, port):
        ns = f"{self.hosts_prefix}{name}"
        tap = f"tap{short(port['id'])}"
        address = port["fixed_ips"][0]["ip_address"]
        run("ip", "netns", "add", ns)
        self.host_ns.append(ns)
        run("ip", "-n", self.switch, "link", "add", tap, "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        run("ip", "-n", self.switch, "link", "set", tap, "master", f"brq{short(net_id)}", "up")
        run("ip", "-n", ns, "link", "set", "eth0", "address", port["mac_address"])
        run("ip", "-n", ns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "route", "add", "default", "via", GATEWAY)
        return ns

    def setup(self):
        self.host_ns = []
        self.start_server()
        net = self.api.ok("POST", "/v2.0/networks", {"network": {"name": "bench-net"}})["network"]
        sub = self.api.ok("POST", "/v2.0/subnets", {"subnet": {
            "network_id": net["id"], "name": "bench-subnet", "ip_version": 4, "cidr": CIDR,
            "gateway_ip": GATEWAY}})["subnet"]
        self.net_id, self.subnet_id = net["id"], sub["id"]
        ports = {}
        for name, ip in (("client", CLIENT_IP), ("member", MEMBER_IP)):
            ports[name] = self.api.ok("POST", "/v2.0/ports", {"port": {
                "network_id": net["id"], "name": f"bench-{name}",
                "fixed_ips": [{"subnet_id": sub["id"], "ip_address": ip}]}})["port"]
        bridge = f"brq{short(net['id'])}"
        end = time.monotonic() + 20
        while not (os.path.exists(os.path.join(NETNS_DIR, self.switch))
                   and bridge in (ns_links(self.switch) or [])):
            if time.monotonic() > end:
                raise RuntimeError(f"bridge {bridge} not in {self.switch} after 20 s")
            time.sleep(0.05)
        self.client_ns = self.host("client", net["id"], ports["client"])
        self.member_ns = self.host("member", net["id"], ports["member"])
        # ARP retries every 100 ms instead of 1 s in the probing namespace: a VIP probed before
        # its leg exists is found within ~100 ms of it appearing, not up to 1 s later.
        run("ip", "netns", "exec", self.client_ns, "sysctl", "-q", "-w",
            "net.ipv4.neigh.eth0.retrans_time_ms=100")
        backend = subprocess.Popen(
            ["ip", "netns", "exec", self.member_ns, sys.executable, HERE, "--backend", MEMBER_IP,
             str(LISTENER_PORT)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "backend.err"), "wb"))
        self.procs.append(backend)
        end = time.monotonic() + 15
        while True:
            p = run("ip", "netns", "exec", self.client_ns, "curl", "-s", "-m", "1",
                    f"http://{MEMBER_IP}/", check=False)
            if p.stdout.strip() == "member":
                break
            if time.monotonic() > end:
                raise RuntimeError("the backend does not answer from the client namespace")
            time.sleep(0.1)
        self.prober = subprocess.Popen(
            ["ip", "netns", "exec", self.client_ns, sys.executable, HERE, "--prober",
             str(CREATE_DEADLINE_S)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.dir, "prober.err"), "wb"), text=True, bufsize=1)
        self.procs.append(self.prober)
        if self.prober.stdout.readline().strip() != "ready":
            raise RuntimeError("the prober did not start")
        threading.Thread(target=self.read_prober, daemon=True).start()

    def read_prober(self):
        for line in self.prober.stdout:
            parts = line.split()
            if len(parts) != 3:
                continue
            vip, t, n = parts
            with self.answers_cv:
                self.answers[vip] = None if t == "timeout" else (float(t), int(n))
                self.answers_cv.notify_all()

    # ---- the measured part

    def body(self, i):
        return {"loadbalancer": {
            "name": f"bench-{i}", "vip_subnet_id": self.subnet_id, "provider": self.provider,
            "listeners": [{"name": "l", "protocol": "HTTP", "protocol_port": LISTENER_PORT,
                           "default_pool": {"name": "p"}}],
            "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                       "members": [{"address": MEMBER_IP, "protocol_port": LISTENER_PORT,
                                    "subnet_id": self.subnet_id}]}]}}

    def parallel(self, n, fn):
        """Runs fn(api, i) for i in 0..n with `clients` threads (one keep-alive connection each)."""
        lock = threading.Lock()
        queue = list(range(n))[::-1]

        def worker():
            api = Api(self.port)
            try:
                while True:
                    with lock:
                        if not queue:
                            return
                        i = queue.pop()
                    fn(api, i)
            finally:
                api.close()

        with concurrent.futures.ThreadPoolExecutor(self.args.clients) as ex:
            for f in [ex.submit(worker) for _ in range(self.args.clients)]:
                f.result()

    def exec_mark(self):
        if not self.count_execs:
            return 0
        try:
            with open(self.exec_log) as f:
                return len(f.readlines())
        except FileNotFoundError:
            return 0

    def execs_between(self, a, b):
        with open(self.exec_log) as f:
            lines = f.readlines()[a:b]
        kinds = {}
        for line in lines:
            words = []
            for w in line.split():
                if w.startswith(self.prefix) or w.startswith(self.hosts_prefix):
                    w = "<ns>"
                elif re.fullmatch(r"(tap|vip-|brq)[0-9a-f]{11}", w):
                    w = w[:3].rstrip("-") + "…"
                elif "/" in w and len(w) > 30:
                    w = "<path>"
                words.append(w)
            key = " ".join(words[:7])
            kinds[key] = kinds.get(key, 0) + 1
        return len(lines), kinds

    def measure(self):
        n = self.args.lbs
        pid = self.server.pid
        time.sleep(1.0)
        before = {"rss": rss_kib(pid), "threads": threads(pid), "fds": fds(pid),
                  "cpu": cpu(pid)}
        m0 = self.exec_mark()
        post_t0 = [None] * n
        post_dt = [None] * n
        ids = [None] * n
        vips = [None] * n
        taps = [None] * n
        lock = threading.Lock()

        def create(api, i):
            t = time.monotonic()
            lb = api.ok("POST", "/v2/lbaas/loadbalancers", self.body(i), want=(201,))["loadbalancer"]
            dt = time.monotonic() - t
            with lock:
                post_t0[i], post_dt[i] = t, dt
                ids[i], vips[i] = lb["id"], lb["vip_address"]
                taps[i] = f"tap{short(lb['vip_port_id'])}"
                self.prober.stdin.write(lb["vip_address"] + "\n")
                self.prober.stdin.flush()

        log(f"  {self.provider}: creating {n} load balancers ({self.args.clients} clients)")
        t_start = time.monotonic()
        err = []

        def guarded():
            try:
                self.parallel(n, create)
            except Exception as e:  # noqa: BLE001 — reported below
                err.append(e)

        creator = threading.Thread(target=guarded, daemon=True)
        creator.start()
        # Wait for every VIP to answer, polling provisioning status on the side.
        active_at = {}
        end = t_start + CREATE_DEADLINE_S
        next_poll = 0.0
        while True:
            now = time.monotonic()
            if now > end:
                raise RuntimeError(f"not all VIPs answered within {CREATE_DEADLINE_S} s "
                                   f"({len(self.answers)}/{n})")
            if err:
                raise err[0]
            if self.server.poll() is not None:
                raise RuntimeError(f"statera serve exited: {self.tail_log()}")
            if now >= next_poll and len(active_at) < n:
                next_poll = now + 0.5
                body = self.api.ok("GET", "/v2/lbaas/loadbalancers?limit=1000")
                t = time.monotonic()
                for lb in body["loadbalancers"]:
                    if lb["provisioning_status"] == "ACTIVE":
                        active_at.setdefault(lb["id"], t)
                    elif lb["provisioning_status"] == "ERROR":
                        raise RuntimeError(f"load balancer {lb['id']} went to ERROR: "
                                           f"{self.tail_log()}")
            with self.answers_cv:
                done = not creator.is_alive() and all(v in self.answers for v in vips)
                if done and len(active_at) >= n:
                    break
                if not done:
                    self.answers_cv.wait(0.1)
            if done:
                time.sleep(0.05)
        creator.join()
        missing = [v for v in vips if self.answers.get(v) is None]
        if missing:
            raise RuntimeError(f"{len(missing)} VIPs never answered, e.g. {missing[:3]}")
        answered = [self.answers[v][0] for v in vips]
        t_all = max(answered) - t_start
        per_lb = [self.answers[v][0] - post_t0[i] for i, v in enumerate(vips)]
        attempts = [self.answers[v][1] for v in vips]
        t_active = max(active_at.values()) - t_start
        cpu_created = cpu(pid)
        m1 = self.exec_mark()
        log(f"  {self.provider}: all {n} VIPs answer after {t_all:.2f} s")

        # With the N load balancers up.
        time.sleep(2.0)
        up = {"rss": rss_kib(pid), "threads": threads(pid), "fds": fds(pid)}
        hap_pids = pids_with(os.path.join(self.dir, "data", "haproxy"))
        hap_rss = sum(rss_kib(p) for p in hap_pids if os.path.exists(f"/proc/{p}"))
        hap_pss = sum(pss_kib(p) for p in hap_pids)
        statera_pss = pss_kib(pid)
        lb_ns = namespaces(f"{self.prefix}lb-")
        all_ns = namespaces(self.prefix)
        sw_links = ns_links(self.switch) or []
        one_ns = f"{self.prefix}lb-{ids[n // 2]}"
        nft_lines = len(run("ip", "netns", "exec", one_ns, "nft", "list", "ruleset").stdout
                        .splitlines())
        one_links = ns_links(one_ns) or []
        # What one `ip` spawn costs against this switch namespace (the driver lists it on every
        # plug): median of 20.
        spawn = []
        for _ in range(20):
            t = time.monotonic()
            run("ip", "-n", self.switch, "-o", "link", "show")
            spawn.append(time.monotonic() - t)
        spawn_small = []
        for _ in range(20):
            t = time.monotonic()
            run("ip", "-n", one_ns, "-o", "addr", "show", "dev", "lo")
            spawn_small.append(time.monotonic() - t)

        # Delete them all.
        del_t0 = [None] * n

        def delete(api, i):
            del_t0[i] = time.monotonic()
            api.ok("DELETE", f"/v2/lbaas/loadbalancers/{ids[i]}?cascade=true", want=(202, 204))

        log(f"  {self.provider}: deleting {n} load balancers")
        m2 = self.exec_mark()
        cpu_before_delete = cpu(pid)
        t_del = time.monotonic()
        err.clear()

        def guarded_delete():
            try:
                self.parallel(n, delete)
            except Exception as e:  # noqa: BLE001 — reported below
                err.append(e)

        deleter = threading.Thread(target=guarded_delete, daemon=True)
        deleter.start()
        ns_gone, tap_gone = {}, {}
        want_ns = {f"{self.prefix}lb-{i}": k for k, i in enumerate(ids)}
        want_tap = {t: k for k, t in enumerate(taps)}
        end = t_del + DELETE_DEADLINE_S
        next_links = 0.0
        while len(ns_gone) < n or len(tap_gone) < n:
            now = time.monotonic()
            if now > end:
                raise RuntimeError(f"after {DELETE_DEADLINE_S} s: {n - len(ns_gone)} namespaces, "
                                   f"{n - len(tap_gone)} taps left")
            if err:
                raise err[0]
            present = set(namespaces(f"{self.prefix}lb-"))
            for name, k in want_ns.items():
                if k not in ns_gone and name not in present and del_t0[k] is not None:
                    ns_gone[k] = now
            if now >= next_links:
                next_links = now + 0.1
                links = set(ns_links(self.switch) or [])
                t = time.monotonic()
                for name, k in want_tap.items():
                    if k not in tap_gone and name not in links and del_t0[k] is not None:
                        tap_gone[k] = t
            time.sleep(0.01)
        deleter.join()
        t_deleted = max(max(ns_gone.values()), max(tap_gone.values())) - t_del
        per_del = [max(ns_gone[k], tap_gone[k]) - del_t0[k] for k in range(n)]
        # And the API agrees.
        end = time.monotonic() + 60
        while True:
            left = self.api.ok("GET", "/v2/lbaas/loadbalancers?limit=1000")["loadbalancers"]
            if not left:
                break
            if time.monotonic() > end:
                raise RuntimeError(f"{len(left)} load balancers still listed 60 s after")
            time.sleep(0.1)
        t_api_gone = time.monotonic() - t_del
        cpu_deleted = cpu(pid)
        m3 = self.exec_mark()
        time.sleep(1.0)
        after = {"rss": rss_kib(pid), "threads": threads(pid), "fds": fds(pid)}
        hap_left = [p for p in pids_with(os.path.join(self.dir, "data", "haproxy"))]
        log(f"  {self.provider}: all {n} gone after {t_deleted:.2f} s")

        res = {
            "provider": self.provider, "n": n,
            "create_wall": t_all, "create_active": t_active,
            "per_lb": per_lb, "post_201": post_dt, "attempts": attempts,
            "create_cpu": cpu_created[0] - before["cpu"][0],
            "create_child_cpu": cpu_created[1] - before["cpu"][1],
            "rss_before": before["rss"], "rss_up": up["rss"], "rss_after": after["rss"],
            "threads_before": before["threads"], "threads_up": up["threads"],
            "threads_after": after["threads"],
            "fds_before": before["fds"], "fds_up": up["fds"], "fds_after": after["fds"],
            "haproxy_procs": len(hap_pids), "haproxy_rss": hap_rss, "haproxy_pss": hap_pss,
            "statera_pss": statera_pss, "first_answer": min(answered) - t_start,
            "answer_offsets": sorted(a - t_start for a in answered),
            "haproxy_left": len(hap_left),
            "lb_namespaces": len(lb_ns), "prefix_namespaces": len(all_ns),
            "switch_links": len(sw_links), "nft_lines": nft_lines, "lb_ns_links": len(one_links),
            "spawn_switch_ms": statistics.median(spawn) * 1000,
            "spawn_small_ms": statistics.median(spawn_small) * 1000,
            "delete_wall": t_deleted, "delete_api": t_api_gone, "per_del": per_del,
            "delete_cpu": cpu_deleted[0] - cpu_before_delete[0],
            "delete_child_cpu": cpu_deleted[1] - cpu_before_delete[1],
            "load": loadavg(),
        }
        if self.count_execs:
            res["execs_create"] = self.execs_between(m0, m1)
            res["execs_delete"] = self.execs_between(m2, m3)
        return res

    # ---- cleanup

    def cleanup(self):
        if self.prober is not None and self.prober.stdin:
            try:
                self.prober.stdin.close()
            except OSError:
                pass
        self.api.close()
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(10)
        for p in self.procs:  # backend, prober (the `ip netns exec` exec'd python: same pid)
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        # HAProxy processes of this data dir, if the server left any.
        for p in pids_with(os.path.join(self.dir, "data", "haproxy")):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        leftover = namespaces(f"{self.prefix}lb-") + namespaces(f"{self.prefix}router-")
        for ns in namespaces(self.prefix) + namespaces(self.hosts_prefix):
            run("ip", "netns", "delete", ns, check=False)
        if hasattr(self, "log_file"):
            self.log_file.close()
            if self.args.keep_logs:
                dst = os.path.join(self.args.keep_logs, os.path.basename(self.dir) + ".log")
                shutil.copy(self.log_path, dst)
        shutil.rmtree(self.dir, ignore_errors=True)
        return leftover


def scenario(args, provider, tag, count_execs=False, lbs=None):
    saved = args.lbs
    if lbs is not None:
        args.lbs = lbs
    s = Scenario(args, provider, tag, count_execs)
    try:
        s.setup()
        res = s.measure()
        warn = [line for line in s.tail_log(200000).splitlines()
                if " WARN " in line or " ERROR " in line]
        res["warnings"] = warn
        return res
    finally:
        left = s.cleanup()
        args.lbs = saved
        # The switch namespace and the two hosts are expected to be there at the end (the
        # network still exists); a load balancer namespace would be a leak (or a failed run).
        if left:
            log(f"  note: {len(left)} load balancer/router namespaces under {s.prefix} were "
                f"still there at cleanup and were deleted: {left[:3]}")


# --------------------------------------------------------------------------------------------
# Report.


def fmt_ms(v):
    return f"{v * 1000:,.0f}"


def report(args, info, runs, counts):
    out = []
    w = out.append
    n = args.lbs
    w(f"Date: {info['date']}  ")
    w(f"Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, Linux {info['kernel']}, Python "
      f"{info['python']}; {info['haproxy']}  ")
    w(f"Command: `bench/netns {' '.join(args.argv)}`".rstrip() + "  ")
    w(f"Statera revision: {info['revision']}; `statera serve --network-driver netns "
      f"--durability normal`; {args.clients} concurrent API clients  ")
    w(f"Load average (1/5/15 min) at start: {info['load_start']}, at end: {info['load_end']}")
    w("")
    providers = list(dict.fromkeys(r["provider"] for r in runs))
    rounds = {p: [r for r in runs if r["provider"] == p] for p in providers}

    def med(p, f):
        return statistics.median(f(r) for r in rounds[p])

    def row(label, f, fmt):
        cells = []
        for p in providers:
            vals = [f(r) for r in rounds[p]]
            m = statistics.median(vals)
            cell = fmt(m)
            if len(vals) > 1:
                cell += f" ({', '.join(fmt(v) for v in vals)})"
            cells.append(cell)
        w(f"| {label} | " + " | ".join(cells) + " |")

    nr = max(len(v) for v in rounds.values())
    w(f"Medians over {nr} round(s) (each round's value in parentheses).")
    w("")
    w("| figure | " + " | ".join(providers) + " |")
    w("|---|" + "---|" * len(providers))
    row(f"create {n}: first POST → last VIP answers 200, s", lambda r: r["create_wall"],
        lambda v: f"{v:.2f}")
    row("… load balancers per second", lambda r: r["n"] / r["create_wall"], lambda v: f"{v:.1f}")
    row("… first POST → first VIP answers 200, s", lambda r: r["first_answer"],
        lambda v: f"{v:.2f}")
    row("… per LB POST → first 200, median ms", lambda r: statistics.median(r["per_lb"]), fmt_ms)
    row("… per LB POST → first 200, p99 ms", lambda r: pct(r["per_lb"], 99), fmt_ms)
    row("… per LB POST → first 200, max ms", lambda r: max(r["per_lb"]), fmt_ms)
    row("… per LB POST → 201, median ms", lambda r: statistics.median(r["post_201"]),
        lambda v: f"{v * 1000:.1f}")
    row("… first POST → all ACTIVE in the API (0.5 s polls), s", lambda r: r["create_active"],
        lambda v: f"{v:.2f}")
    row("… statera CPU per LB (own + waited-for children), ms",
        lambda r: (r["create_cpu"] + r["create_child_cpu"]) / r["n"],
        lambda v: f"{v * 1000:.0f}")
    row("…… of which children (`ip`, `nft`, `haproxy -c`), ms", lambda r: r["create_child_cpu"] / r["n"],
        lambda v: f"{v * 1000:.0f}")
    row(f"delete {n} (cascade): first DELETE → all namespaces and taps gone, s",
        lambda r: r["delete_wall"], lambda v: f"{v:.2f}")
    row("… per LB DELETE → its namespace and tap gone, median ms",
        lambda r: statistics.median(r["per_del"]), fmt_ms)
    row("… per LB DELETE → gone, p99 ms", lambda r: pct(r["per_del"], 99), fmt_ms)
    row("… first DELETE → API lists none, s", lambda r: r["delete_api"], lambda v: f"{v:.2f}")
    row("… statera CPU per LB (own + children), ms",
        lambda r: (r["delete_cpu"] + r["delete_child_cpu"]) / r["n"], lambda v: f"{v * 1000:.0f}")
    row("statera RSS growth per LB, KiB", lambda r: (r["rss_up"] - r["rss_before"]) / r["n"],
        lambda v: f"{v:.0f}")
    row("statera RSS with the LBs up, MiB", lambda r: r["rss_up"] / 1024, lambda v: f"{v:.1f}")
    row("HAProxy processes' RSS per LB, KiB (sum of RSS, shared pages counted per process)",
        lambda r: r["haproxy_rss"] / r["n"], lambda v: f"{v:,.0f}")
    row("HAProxy processes' PSS per LB, KiB (shared pages split)",
        lambda r: r["haproxy_pss"] / r["n"], lambda v: f"{v:,.0f}")
    row("statera threads per LB", lambda r: (r["threads_up"] - r["threads_before"]) / r["n"],
        lambda v: f"{v:.2f}")
    row("statera file descriptors per LB", lambda r: (r["fds_up"] - r["fds_before"]) / r["n"],
        lambda v: f"{v:.2f}")
    row("namespaces under the prefix (with LBs up)", lambda r: r["prefix_namespaces"],
        lambda v: f"{v:.0f}")
    row("interfaces in the switch namespace (with LBs up)", lambda r: r["switch_links"],
        lambda v: f"{v:.0f}")
    row("interfaces in one LB namespace", lambda r: r["lb_ns_links"], lambda v: f"{v:.0f}")
    row("lines of `nft list ruleset` in one LB namespace", lambda r: r["nft_lines"],
        lambda v: f"{v:.0f}")
    row("one `ip -n <switch> -o link show` spawn with LBs up, median ms",
        lambda r: r["spawn_switch_ms"], lambda v: f"{v:.1f}")
    row("one `ip -n <lb ns> -o addr show dev lo` spawn, median ms",
        lambda r: r["spawn_small_ms"], lambda v: f"{v:.1f}")
    w("")
    for p in providers:
        rs = rounds[p]
        w(f"{p}: RSS before / with LBs / after delete (MiB), per round: " + "; ".join(
            f"{r['rss_before'] / 1024:.1f} / {r['rss_up'] / 1024:.1f} / {r['rss_after'] / 1024:.1f}"
            for r in rs) + "; threads " + "; ".join(
            f"{r['threads_before']} / {r['threads_up']} / {r['threads_after']}" for r in rs)
            + "; fds " + "; ".join(f"{r['fds_before']} / {r['fds_up']} / {r['fds_after']}"
                                   for r in rs)
            + (f"; HAProxy processes with LBs up: {rs[0]['haproxy_procs']}, left after delete: "
               f"{rs[0]['haproxy_left']}" if p == "haproxy" else "")
            + "; VIPs answering by (s after the first POST), deciles 10/50/90 %: " + "; ".join(
                "/".join(f"{pct(r['answer_offsets'], q):.2f}" for q in (10, 50, 90)) for r in rs)
            + "; probe attempts per VIP, median " + "; ".join(
                f"{statistics.median(r['attempts']):.0f}" for r in rs) + "  ")
        for r in rs:
            if r["warnings"]:
                w(f"{p}: {len(r['warnings'])} WARN/ERROR lines in the server log, first: "
                  f"`{r['warnings'][0][-300:]}`  ")
    if counts:
        w("")
        w("Process spawns by `statera serve` (logging wrappers for `ip`, `nft`, `haproxy` on its "
          "PATH), counting run of " + ", ".join(f"{c['n']} LBs ({c['provider']})" for c in counts)
          + ":")
        w("")
        w("| provider | phase | spawns per LB | by command (total over the run) |")
        w("|---|---|---|---|")
        for c in counts:
            for phase in ("create", "delete"):
                total, kinds = c[f"execs_{phase}"]
                by = "; ".join(f"`{k}` {v}" for k, v in sorted(kinds.items(), key=lambda x: -x[1]))
                w(f"| {c['provider']} | {phase} | {total / c['n']:.1f} | {by} |")
        w("")
        w("Counting run timings (wrappers add a shell per spawn, so not comparable): " + "; ".join(
            f"{c['provider']}: create {c['create_wall']:.2f} s, delete {c['delete_wall']:.2f} s"
            for c in counts))
    return "\n".join(out)


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
    hap = "no haproxy"
    if shutil.which("haproxy") or os.path.exists("/usr/sbin/haproxy"):
        p = subprocess.run([shutil.which("haproxy") or "/usr/sbin/haproxy", "-v"],
                           capture_output=True, text=True, timeout=10)
        hap = p.stdout.splitlines()[0] if p.stdout else "haproxy"
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "haproxy": hap}


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--backend":
        run_backend(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) >= 2 and sys.argv[1] == "--prober":
        run_prober(float(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default="target/release/statera")
    p.add_argument("--lbs", type=int, default=100, help="load balancers per round (100)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per provider (3)")
    p.add_argument("--providers", default="native,haproxy",
                   help="comma-separated (native,haproxy); haproxy is skipped if not installed")
    p.add_argument("--clients", type=int, default=4, help="concurrent API clients (4)")
    p.add_argument("--count-lbs", type=int, default=10,
                   help="load balancers in the spawn-counting run per provider (10; 0 skips it)")
    p.add_argument("--output", help="also write the markdown report here")
    p.add_argument("--keep-logs", help="copy each server log into this directory")
    args = p.parse_args()
    argv, skip = [], False
    for a in sys.argv[1:]:  # the command as typed to bench/netns (which adds --binary)
        if skip or a.startswith("--binary"):
            skip = a == "--binary" and not skip
            continue
        argv.append(a)
    args.argv = argv
    args.binary = os.path.abspath(args.binary)
    if os.geteuid() != 0:
        sys.exit("the netns network driver needs root")
    if not os.path.exists(args.binary):
        sys.exit(f"no binary at {args.binary} (cargo build --release -p statera)")
    providers = [x for x in args.providers.split(",") if x]
    if "haproxy" in providers and not (shutil.which("haproxy") or os.path.exists("/usr/sbin/haproxy")):
        log("haproxy is not installed: skipping the haproxy provider")
        providers.remove("haproxy")
    info = machine()
    info.update(date=datetime.date.today().isoformat(), revision=revision(), load_start=loadavg())
    log(f"{info['nproc']} CPUs, load {info['load_start']}, revision {info['revision']}")
    counts, runs = [], []
    if args.count_lbs:
        for prov in providers:
            log(f"counting run: {prov}, {args.count_lbs} LBs")
            c = scenario(args, prov, "c", count_execs=True, lbs=args.count_lbs)
            counts.append(c)
    for rnd in range(args.rounds):
        for prov in providers:
            log(f"round {rnd + 1}/{args.rounds}: {prov}, {args.lbs} LBs")
            r = scenario(args, prov, str(rnd))
            runs.append(r)
            log(f"  create {r['create_wall']:.2f} s (per LB median "
                f"{statistics.median(r['per_lb']) * 1000:.0f} ms), delete {r['delete_wall']:.2f} s, "
                f"RSS +{(r['rss_up'] - r['rss_before']) / r['n']:.0f} KiB/LB, load {r['load']}")
    info["load_end"] = loadavg()
    text = report(args, info, runs, counts)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
