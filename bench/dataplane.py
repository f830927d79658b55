#!/usr/bin/env python3
"""Data-plane benchmark of Statera (issue 3): the native engine against HAProxy, same objects.

Python 3 standard library only; the load comes from `wrk`. Run it through `bench/dataplane`,
which builds the release binary first; or directly:
`python3 bench/dataplane.py --binary target/release/statera`.

What it does, every step bounded in time, all traffic on 127.0.0.0/8:

* starts nginx (a generated config in a temporary dir: one process, `worker_processes 1`,
  `master_process off`, keep-alive on, access_log off) listening on two 127.0.0.1 ports and
  serving /small (100 bytes), /64k (64 KiB) and /1m (1 MiB): the two backends;
* starts one real `statera serve` (free port, temporary data dir, host subnet 127.190.0.0/24);
* creates through the API two fully populated load balancers with the same objects, one with
  `"provider": "native"` and one with `"provider": "haproxy"`: an HTTP listener on port 8080
  (insert_headers X-Forwarded-For, ROUND_ROBIN pool of the two nginx ports) and a TCP listener on
  port 9090 (TCP pool of the same members); waits for ACTIVE and checks every VIP answers (and
  that X-Forwarded-For reaches the backend through the HTTP listeners);
* memory with idle clients: opens N idle TCP connections (default 10,000) to each HTTP listener
  in turn and reads the RSS of `statera serve` / of the load balancer's HAProxy processes before
  and after (and checks, by counting the proxy's file descriptors, that they were accepted);
* throughput: `wrk` against the native VIP, the HAProxy VIP and nginx directly, interleaved
  (native, haproxy, direct, native, haproxy, direct, …) for several rounds, the same wrk load for
  every target; medians over the rounds. Rows: small responses over keep-alive (req/s, p99), a
  new connection per request (`Connection: close`, req/s), 64 KiB and 1 MiB responses (MiB/s
  from wrk's Transfer/sec), 1 MiB through the TCP listener (L4, MiB/s), small responses over
  one keep-alive connection from a member with Nagle on that writes head and body in two sends
  (Python's http.server on another listener, port 8081: what a delayed ACK on the proxy's member
  connection costs, req/s); and the proxy's CPU time
  (utime + stime from /proc) and context switches (voluntary + involuntary, all threads) per
  request or per MiB during those runs, and the connections the proxy opened to the backends
  (nginx's stub_status) per 1,000 requests;
* with --profile ROWS: one more run per proxy and row under `perf record -g`, and the top of
  `perf report` (by DSO, then by symbol) in the output.

Every process started (nginx, statera, wrk, perf) is stopped by its pid; the HAProxy processes
belong to statera, which stops them when it is stopped; temporary dirs are removed. The results
are printed as a markdown table (and written to --output if given).
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST_SUBNET = "127.190.0.0/24"
HTTP_PORT = 8080  # unprivileged listener ports, so the benchmark needs no capability
TCP_PORT = 9090
NAGLE_PORT = 8081
SMALL_BYTES = 100
WANT_NOFILE = 65536  # raised to this when the process may (root); else the hard limit is used
GOAL = 1.0
STRETCH = 1.2

# Each row: key, label, path, wrk extra args, listener ("http" or "tcp"), metric.
ROWS = [
    ("small", "small responses (100 B), keep-alive", "/small", [], "http", "rps"),
    ("close", "new connection per request (100 B, `Connection: close`)", "/small",
     ["-H", "Connection: close"], "http", "rps"),
    ("64k", "64 KiB responses, keep-alive", "/64k", [], "http", "mibps"),
    ("1m", "1 MiB responses, keep-alive", "/1m", [], "http", "mibps"),
    ("tcp", "L4: 1 MiB responses through the TCP listener", "/1m", [], "tcp", "mibps"),
    # One connection: with many, the member's per-response stall hides behind concurrency.
    ("nagle", "small responses from a member with Nagle on, head and body in two sends "
     "(Python http.server), 1 keep-alive connection", "/small", ["-t1", "-c1"], "nagle", "rps"),
]
TARGETS = ("native", "haproxy", "direct")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Helpers.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of process `pid` so far, in clock ticks (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def ctx_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of process `pid` so far, summed over its
    current threads (/proc/<pid>/task/*/status)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def revision() -> str:
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


def stop_pid(proc: subprocess.Popen, grace: float = 10.0, sig=signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def first_line(cmd) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (r.stdout + r.stderr).strip()
    return text.splitlines()[0].strip() if text else "unknown"


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
    return {
        "nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
        "python": platform.python_version(),
        "haproxy": first_line(["haproxy", "-v"]).split(" - ")[0],
        "nginx": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "--version"]),
    }


def raise_nofile(want: int):
    """Raise RLIMIT_NOFILE (inherited by statera and its HAProxy processes); returns
    (soft, hard, note)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    note = ""
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            note = f"hard limit raised from {hard} to {want}"
        except (ValueError, OSError):
            note = f"hard limit {hard} (not allowed to raise it)"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE) + (note,)


def http_get(host, port, path, timeout=2.0):
    """One GET on a fresh connection: (status, headers, body) or None."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, dict(resp.getheaders()), body
    except (OSError, http.client.HTTPException):
        return None


# --------------------------------------------------------------------------------------------
# Backends: nginx.

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port1} backlog=4096;
        listen 127.0.0.1:{port2} backlog=4096;
        root {dir}/www;
        location = /xff {{ default_type text/plain; return 200 "xff=$http_x_forwarded_for\\n"; }}
        location = /status {{ stub_status; }}
    }}
}}
"""


class Nginx:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "www"))
        www = os.path.join(self.dir, "www")
        with open(os.path.join(www, "small"), "wb") as f:
            f.write((b"x" * (SMALL_BYTES - 1)) + b"\n")
        with open(os.path.join(www, "64k"), "wb") as f:
            f.write(os.urandom(64 * 1024))
        with open(os.path.join(www, "1m"), "wb") as f:
            f.write(os.urandom(1024 * 1024))
        self.ports = (free_port(), free_port())
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, port1=self.ports[0], port2=self.ports[1]))
        self.log = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        for port in self.ports:
            while True:
                r = http_get("127.0.0.1", port, "/small")
                if r and r[0] == 200 and len(r[2]) == SMALL_BYTES:
                    break
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"nginx did not serve on {port}: {self.tail()}")
                time.sleep(0.05)

    def accepts(self):
        """Connections nginx has accepted so far (stub_status), less the one asking."""
        r = http_get("127.0.0.1", self.ports[0], "/status")
        if not r or r[0] != 200:
            return None
        m = re.search(rb"\n\s*(\d+)\s+\d+\s+\d+", r[2])
        return int(m.group(1)) - 1 if m else None

    def tail(self):
        out = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    out += f.read()[-1000:].decode(errors="replace")
            except OSError:
                pass
        return out

    def stop(self):
        stop_pid(self.proc, 5, signal.SIGQUIT)  # graceful shutdown
        self.log.close()


# A member with Nagle on that writes its head and body in two sends, as Python's http.server
# (and many small frameworks) does: it holds the body until the proxy acknowledges the head.
NAGLE_MEMBER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = b"x" * 99 + b"\\n"
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


class NagleMember:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", NAGLE_MEMBER, str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while True:
            r = http_get("127.0.0.1", self.port, "/small")
            if r and r[0] == 200 and len(r[2]) == SMALL_BYTES:
                break
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("the Nagle member did not serve")
            time.sleep(0.05)

    def stop(self):
        stop_pid(self.proc, 5)


# --------------------------------------------------------------------------------------------
# The server under test.


class Api:
    def __init__(self, port: int, timeout: float = 30.0):
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
        return resp.status, (json.loads(raw) if raw else None)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def expect(status, body, want, what):
    if status not in want:
        raise RuntimeError(f"{what}: HTTP {status}: {str(body)[:500]}")


class Server:
    def __init__(self, binary, workdir):
        self.dir = os.path.join(workdir, "serve")
        os.makedirs(self.dir)
        # Short: HAProxy's stats socket lives in <data-dir>/haproxy/<lb_id>/ and a unix socket
        # path has at most ~100 bytes.
        self.data_dir = os.path.join(workdir, "d")
        if len(os.path.join(self.data_dir, "haproxy", "x" * 36, "stats.sock")) > 97:
            raise RuntimeError(f"{workdir} is too long a path for HAProxy's unix sockets "
                               "(at most 97 bytes): pass a shorter --tmpdir")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "serve.log"), "wb")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
             "--host-subnet", HOST_SUBNET, "--durability", "normal",
             "--auth", "noauth", "--noauth-default-roles", "admin,member,reader"],
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
        status, body = self.api.request("GET", "/v2.0/subnets?name=host-subnet")
        expect(status, body, (200,), "subnets")
        self.subnet_id = body["subnets"][0]["id"]
        status, body = self.api.request("GET", "/v2/lbaas/providers")
        expect(status, body, (200,), "providers")
        names = {p["name"] for p in body.get("providers", [])}
        if "haproxy" not in names:
            raise RuntimeError(f"statera lists no haproxy provider: {body}")

    def tail_log(self):
        self.log.flush()
        with open(os.path.join(self.dir, "serve.log"), "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def haproxy_pids(self, lb_id):
        """The HAProxy processes of one load balancer: their command line names its directory
        (<data-dir>/haproxy/<lb_id>/)."""
        needle = os.path.join(self.data_dir, "haproxy", lb_id) + "/"
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if cmd and os.path.basename(cmd[0]) == b"haproxy" and \
                    any(needle.encode() in a for a in cmd):
                pids.append(int(entry))
        return sorted(pids)

    def stop(self):
        self.api.close()
        stop_pid(self.proc, 20)
        self.log.close()


def haproxy_maxconn(cfg_path):
    try:
        with open(cfg_path) as f:
            for line in f:
                parts = line.split()
                if parts[:1] == ["maxconn"]:
                    return int(parts[1])  # the first one is in `global`
    except (OSError, ValueError, IndexError):
        pass
    return None


def haproxy_threads(pids):
    """Threads of the busiest-threaded process (the worker; the master has one)."""
    best = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        best = max(best, int(line.split()[1]))
        except OSError:
            pass
    return best


def lb_body(name, provider, subnet_id, ports, nagle_port):
    members = [{"address": "127.0.0.1", "protocol_port": p} for p in ports]
    return {"loadbalancer": {
        "name": name, "vip_subnet_id": subnet_id, "provider": provider,
        "listeners": [
            {"name": f"{name}-http", "protocol": "HTTP", "protocol_port": HTTP_PORT,
             "insert_headers": {"X-Forwarded-For": "true"},
             "default_pool": {"name": f"{name}-http-pool"}},
            {"name": f"{name}-tcp", "protocol": "TCP", "protocol_port": TCP_PORT,
             "default_pool": {"name": f"{name}-tcp-pool"}},
            {"name": f"{name}-nagle", "protocol": "HTTP", "protocol_port": NAGLE_PORT,
             "default_pool": {"name": f"{name}-nagle-pool"}},
        ],
        "pools": [
            {"name": f"{name}-http-pool", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
             "members": members},
            {"name": f"{name}-tcp-pool", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
             "members": members},
            {"name": f"{name}-nagle-pool", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
             "members": [{"address": "127.0.0.1", "protocol_port": nagle_port}]},
        ],
    }}


def create_lb(srv, provider, ports, nagle_port):
    status, body = srv.api.request("POST", "/v2/lbaas/loadbalancers",
                                   lb_body(f"dp-{provider}", provider, srv.subnet_id, ports,
                                           nagle_port))
    expect(status, body, (201,), f"create ({provider})")
    lb = body["loadbalancer"]
    end = time.monotonic() + 60
    while True:
        status, got = srv.api.request("GET", f"/v2/lbaas/loadbalancers/{lb['id']}")
        expect(status, got, (200,), "show")
        ps = got["loadbalancer"]["provisioning_status"]
        if ps == "ACTIVE":
            break
        if ps == "ERROR" or time.monotonic() > end:
            raise RuntimeError(f"{provider} load balancer: {ps}: {srv.tail_log()}")
        time.sleep(0.05)
    vip = lb["vip_address"]
    # Every listener answers, round robin reaches the backend, X-Forwarded-For is inserted.
    end = time.monotonic() + 20
    for port in (HTTP_PORT, TCP_PORT, NAGLE_PORT):
        while True:
            r = http_get(vip, port, "/small")
            if r and r[0] == 200 and len(r[2]) == SMALL_BYTES:
                break
            if time.monotonic() > end:
                raise RuntimeError(f"{provider}: {vip}:{port} does not serve: {r}")
            time.sleep(0.1)
    r = http_get(vip, HTTP_PORT, "/xff")
    if not r or b"xff=127.0.0.1" not in r[2]:
        raise RuntimeError(f"{provider}: X-Forwarded-For not inserted: {r}")
    r = http_get(vip, HTTP_PORT, "/1m")
    if not r or len(r[2]) != 1024 * 1024:
        raise RuntimeError(f"{provider}: /1m through {vip}:{HTTP_PORT} is wrong")
    return lb["id"], vip


# --------------------------------------------------------------------------------------------
# Measurements.

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
BYTES = {"B": 1 / 1048576, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1048576.0}


def parse_wrk(text):
    """Requests/s, MiB/s (wrk's KB/MB are binary), p99 ms, requests, errors."""
    def grab(pattern):
        m = re.search(pattern, text, re.M)
        return m.groups() if m else None

    rps = grab(r"^Requests/sec:\s+([\d.]+)")
    tps = grab(r"^Transfer/sec:\s+([\d.]+)([KMGT]?B)")
    p99 = grab(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)")
    reqs = grab(r"^\s+(\d+) requests in")
    if not (rps and tps and reqs):
        raise RuntimeError(f"cannot read wrk output:\n{text}")
    errors = 0
    sock = grab(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    if sock:
        errors += sum(int(x) for x in sock)
    non2xx = grab(r"Non-2xx or 3xx responses: (\d+)")
    if non2xx:
        errors += int(non2xx[0])
    return {
        "rps": float(rps[0]),
        "mibps": float(tps[0]) * BYTES[tps[1]],
        "p99_ms": float(p99[0]) * UNITS[p99[1]] if p99 else None,
        "requests": int(reqs[0]),
        "errors": errors,
    }


class Target:
    def __init__(self, name, host, http_port, tcp_port, pids_fn, nagle_port=NAGLE_PORT):
        self.name = name
        self.host = host
        self.ports = {"http": http_port, "tcp": tcp_port, "nagle": nagle_port}
        self.pids_fn = pids_fn  # the proxy's processes (empty for direct)

    def cpu_ticks(self, pids):
        return sum(cpu_ticks(p) for p in pids)


def run_wrk(args, target, row, duration, workdir, procs, nginx=None):
    key, _, path, extra, listener, _ = row
    url = f"http://{target.host}:{target.ports[listener]}{path}"
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency",
           "--timeout", "10s"] + extra + [url]
    pids = target.pids_fn()
    a0 = nginx.accepts() if nginx else None
    c0 = target.cpu_ticks(pids)
    x0 = sum(ctx_switches(p) for p in pids)
    out_path = os.path.join(workdir, "wrk.out")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        try:
            proc.wait(duration + 30)
        except subprocess.TimeoutExpired:
            stop_pid(proc, 5)
            raise RuntimeError(f"wrk did not finish: {' '.join(cmd)}")
        finally:
            procs.remove(proc)
    c1 = target.cpu_ticks(pids)
    x1 = sum(ctx_switches(p) for p in pids)
    a1 = nginx.accepts() if nginx else None
    with open(out_path) as f:
        text = f.read()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n{text}")
    r = parse_wrk(text)
    r["cpu_s"] = (c1 - c0) / os.sysconf("SC_CLK_TCK") if pids else None
    r["ctx"] = x1 - x0 if pids else None
    r["mib"] = r["mibps"] * duration
    # Connections the backends accepted during the run (minus the status request before it).
    r["backend_conns"] = a1 - a0 - 1 if a0 is not None and a1 is not None else None
    return r


def idle_memory(n, target, deadline_s=60.0):
    """Opens `n` idle TCP connections to the target's HTTP listener; RSS of its processes
    before and after (KiB), connections opened, and how many the proxy accepted (by its file
    descriptors)."""
    pids = target.pids_fn()
    time.sleep(1.0)
    rss0 = sum(rss_kib(p) for p in pids)
    fd0 = sum(fd_count(p) for p in pids)
    socks = []
    failed = 0
    t0 = time.monotonic()
    try:
        while len(socks) < n and time.monotonic() - t0 < deadline_s:
            try:
                s = socket.create_connection((target.host, target.ports["http"]), timeout=3.0)
                socks.append(s)
            except OSError:
                failed += 1
                if failed > 100:
                    break
        opened = len(socks)
        connect_s = time.monotonic() - t0
        # Wait until the proxy has accepted them (its descriptors grew), at most 20 s.
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if sum(fd_count(p) for p in pids) - fd0 >= opened:
                break
            time.sleep(0.2)
        accepted = sum(fd_count(p) for p in pids) - fd0
        time.sleep(2.0)
        rss1 = sum(rss_kib(p) for p in pids)
        # Still open? (nothing was sent; a proxy closing idle clients would show here)
        alive = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    continue
            except BlockingIOError:
                alive += 1
                continue
            except OSError:
                continue
    finally:
        for s in socks:
            s.close()
    time.sleep(2.0)
    return {"n": n, "opened": opened, "accepted": accepted, "alive": alive, "failed": failed,
            "connect_s": connect_s, "rss0": rss0, "rss1": rss1,
            "delta_kib": rss1 - rss0, "pids": len(pids)}


def profile(args, target, row, workdir, procs):
    """perf record -g on the target's processes during one wrk run; the top of perf report."""
    pids = target.pids_fn()
    data = os.path.join(workdir, f"perf-{target.name}-{row[0]}.data")
    perf = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-o", data, "-p",
                             ",".join(str(p) for p in pids)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(perf)
    try:
        time.sleep(0.5)
        run_wrk(args, target, row, args.duration, workdir, procs)
    finally:
        stop_pid(perf, 30, signal.SIGINT)
        procs.remove(perf)
    if args.keep_profiles:
        os.makedirs(args.keep_profiles, exist_ok=True)
        shutil.copy(data, os.path.join(args.keep_profiles, os.path.basename(data)))
    try:
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                              "--sort", "dso,symbol", "-g", "none", "--percent-limit", "1"],
                             capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "(perf report timed out)"
    lines = [" ".join(ln.split()).rstrip(" -") for ln in rep.stdout.splitlines()
             if ln.strip() and not ln.startswith("#")]
    try:
        by_dso = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                 "--sort", "dso", "-g", "none", "-n"],
                                capture_output=True, text=True, timeout=300).stdout
    except subprocess.TimeoutExpired:
        by_dso = ""
    dsos = [" ".join(ln.split()) for ln in by_dso.splitlines()
            if ln.strip() and not ln.startswith("#")][:4]
    return "\n".join(["by DSO (share, samples): " + "; ".join(dsos)] + lines[:40])


# --------------------------------------------------------------------------------------------
# Report.


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def report(info, args, rows, results, mem, profiles):
    out = []
    w = out.append
    w(f"Date: {info['date']}  ")
    w(f"Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, Linux {info['kernel']}, "
      f"Python {info['python']}  ")
    w(f"Versions: {info['haproxy']}; {info['nginx']}; {info['wrk']}  ")
    w(f"Command: `{' '.join(['bench/dataplane'] + args.argv)}`  ")
    w(f"Statera revision: {info['revision']}  ")
    w(f"Load: wrk -t{args.threads} -c{args.connections}, {args.rounds} rounds of "
      f"{args.duration} s per target and row, interleaved native, haproxy, direct; medians "
      f"over the rounds  ")
    w(f"Proxies: statera serve (tokio multi-thread runtime, default workers = CPUs); HAProxy "
      f"worker with {info.get('haproxy_threads', '?')} threads (HAProxy's default), global "
      f"maxconn {info.get('haproxy_maxconn', '?')}; backends: one nginx process "
      f"(worker_processes 1) on two ports  ")
    w(f"RLIMIT_NOFILE: {info['nofile']}  ")
    w(f"Load average (1/5/15 min) at start: {info['load_start']}, at end: {info['load_end']}")
    w("")
    w("| row | Statera (native) | HAProxy | Statera / HAProxy | direct to the backend | goal |")
    w("|---|---|---|---|---|---|")

    def goal_text(ratio, higher_better):
        if ratio is None:
            return "–"
        if higher_better:
            verdict = ("met, stretch met" if ratio >= STRETCH else "met" if ratio >= GOAL
                       else "**missed**")
            return f"≥ {GOAL:.1f}× (stretch {STRETCH:.1f}×): {verdict}"
        return f"≤ 1.0× (no worse): {'met' if ratio <= 1.0 else '**missed**'}"

    def ratio(a, b):
        return a / b if a is not None and b else None

    for row in rows:
        key, label, _, _, listener, metric = row
        r = results[key]
        vals = {t: med([x[metric] for x in r[t]]) for t in TARGETS if r.get(t)}
        unit = "req/s" if metric == "rps" else "MiB/s"
        direct = vals.get("direct")
        if key == "tcp":
            direct = med([x[metric] for x in results["1m"].get("direct", [])])
        q = ratio(vals.get("native"), vals.get("haproxy"))
        w(f"| {label}: {unit} | {fmt(vals.get('native'))} | {fmt(vals.get('haproxy'))} | "
          f"{fmt(q, 2)}× | {fmt(direct)} | {goal_text(q, True)} |")
        if key == "small":
            p = {t: med([x["p99_ms"] for x in r[t]]) for t in TARGETS if r.get(t)}
            q = ratio(p.get("native"), p.get("haproxy"))
            w(f"| … p99 latency, ms | {fmt(p.get('native'), 2)} | {fmt(p.get('haproxy'), 2)} | "
              f"{fmt(q, 2)}× | {fmt(p.get('direct'), 2)} | {goal_text(q, False)} |")
    for row in rows:
        key, label, _, _, _, metric = row
        r = results[key]
        c = {}
        for t in ("native", "haproxy"):
            if metric == "rps":
                c[t] = med([x["cpu_s"] * 1e6 / x["requests"] for x in r[t] if x["requests"]])
            else:
                c[t] = med([x["cpu_s"] * 1e3 / x["mib"] for x in r[t] if x["mib"]])
        unit = "CPU µs per request" if metric == "rps" else "CPU ms per MiB"
        q = ratio(c["native"], c["haproxy"])
        w(f"| proxy {unit}, {label} | {fmt(c['native'], 1 if metric == 'rps' else 2)} | "
          f"{fmt(c['haproxy'], 1 if metric == 'rps' else 2)} | {fmt(q, 2)}× | | "
          f"lower is better |")
    for row in rows:
        key, label, _, _, _, metric = row
        r = results[key]
        c = {}
        for t in ("native", "haproxy"):
            if metric == "rps":
                c[t] = med([x["ctx"] / x["requests"] for x in r[t] if x["requests"]])
            else:
                c[t] = med([x["ctx"] / x["mib"] for x in r[t] if x["mib"]])
        unit = "per request" if metric == "rps" else "per MiB"
        q = ratio(c["native"], c["haproxy"])
        w(f"| proxy context switches {unit}, {label} | {fmt(c['native'], 2)} | "
          f"{fmt(c['haproxy'], 2)} | {fmt(q, 2)}× | | lower is better |")
    if mem:
        mn, mh = mem["native"], mem["haproxy"]
        q = ratio(mn["delta_kib"], mh["delta_kib"])
        w(f"| RSS growth with {mn['n']:,} idle client connections, MiB (KiB per connection) | "
          f"{mn['delta_kib'] / 1024:.1f} ({mn['delta_kib'] / max(1, mn['opened']):.1f}) | "
          f"{mh['delta_kib'] / 1024:.1f} ({mh['delta_kib'] / max(1, mh['opened']):.1f}) | "
          f"{fmt(q, 2)}× | | lower is better |")
    for row in rows:
        key, label, _, _, _, metric = row
        if key not in ("small", "64k"):
            continue
        c = {t: med([x["backend_conns"] * 1000 / x["requests"] for x in results[key][t]
                     if x["backend_conns"] is not None and x["requests"]]) for t in TARGETS}
        w(f"| backend connections opened per 1,000 requests, {label} | "
          f"{fmt(c['native'], 1)} | {fmt(c['haproxy'], 1)} | | {fmt(c['direct'], 1)} | "
          f"lower is better (keep-alive to members) |")
    w("")
    errs = {t: sum(x["errors"] for k in results for x in results[k].get(t, [])) for t in TARGETS}
    w("wrk errors (socket errors + non-2xx) over all runs: "
      + ", ".join(f"{t} {errs[t]}" for t in TARGETS) + ".")
    w("")
    w("Per round (native / haproxy / direct):")
    w("")
    for row in rows:
        key, label, _, _, _, metric = row
        r = results[key]
        parts = []
        for i in range(args.rounds):
            vals = []
            for t in TARGETS:
                xs = r.get(t, [])
                vals.append(fmt(xs[i][metric]) if i < len(xs) else "–")
            parts.append(" / ".join(vals))
        ratios = [f"{a[metric] / b[metric]:.2f}" for a, b in zip(r["native"], r["haproxy"])
                  if b[metric]]
        w(f"- {label} ({'req/s' if metric == 'rps' else 'MiB/s'}): " + "; ".join(parts)
          + f" (Statera / HAProxy per round: {', '.join(ratios)})")
    if mem:
        w("")
        for t in ("native", "haproxy"):
            m = mem[t]
            w(f"- idle connections, {t}: {m['opened']:,} opened in {m['connect_s']:.1f} s "
              f"({m['failed']} failed), {m['accepted']:,} accepted (proxy descriptors), "
              f"{m['alive']:,} still open at the measurement; RSS of {m['pids']} process(es) "
              f"{m['rss0'] / 1024:.1f} → {m['rss1'] / 1024:.1f} MiB")
    if profiles:
        for (name, key), text in profiles.items():
            w("")
            w(f"perf profile, {name}, row {key} (`perf report --no-children --sort dso,symbol`, "
              "≥ 1 %):")
            w("")
            w("```text")
            w(text)
            w("```")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default="target/release/statera")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--idle", type=int, default=10000,
                   help="idle client connections for the memory row (default 10000; 0 skips)")
    p.add_argument("--quick", action="store_true",
                   help="2 rounds of 3 s, 2,000 idle connections (a smoke run, not a result)")
    p.add_argument("--rows", default=",".join(r[0] for r in ROWS),
                   help="comma-separated subset of " + ",".join(r[0] for r in ROWS))
    p.add_argument("--profile", default="",
                   help="comma-separated rows to profile after the rounds: one extra wrk run "
                        "per target under `perf record -g` (needs perf)")
    p.add_argument("--keep-profiles", default="", metavar="DIR",
                   help="copy the perf.data files of --profile into DIR (for perf report -i)")
    p.add_argument("--output", help="also write the markdown to this file")
    p.add_argument("--tmpdir", help="where the temporary dir goes (default: $TMPDIR or /tmp)")
    argv = sys.argv[1:]
    args = p.parse_args(argv)
    args.argv = [a for a in argv if not a.startswith("--binary") and a != args.binary
                 and not a.startswith("--tmpdir") and a != args.tmpdir
                 and not a.startswith("--output") and a != args.output]
    if args.quick:
        args.rounds, args.duration = 2, 3
        if "--idle" not in " ".join(argv):
            args.idle = 2000
    rows_wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    prof_rows = [r.strip() for r in args.profile.split(",") if r.strip()]
    for k in rows_wanted + prof_rows:
        if k not in {r[0] for r in ROWS}:
            sys.exit(f"unknown row {k}")
    rows = [r for r in ROWS if r[0] in rows_wanted]
    for tool in ("nginx", "haproxy", "wrk") + (("perf",) if prof_rows else ()):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install {tool if tool != 'perf' else 'linux-perf'})")
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: build it with `cargo build --release -p statera`")
    binary = os.path.abspath(args.binary)

    info = machine()
    info["date"] = datetime.date.today().isoformat()
    info["revision"] = revision()
    info["load_start"] = loadavg()
    soft, hard, note = raise_nofile(max(WANT_NOFILE, args.idle + 2000))
    info["nofile"] = f"{soft} (soft = hard{'; ' + note if note else ''})"
    if args.idle + 1000 > soft:
        log(f"RLIMIT_NOFILE is {soft}: too low for {args.idle} idle connections; using "
            f"{max(0, soft - 1000)}")
        info["nofile"] += f"; too low for {args.idle} idle connections, used {soft - 1000}"
        args.idle = max(0, soft - 1000)

    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the cleanup below still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="sdp-", dir=args.tmpdir)
    procs = []
    nginx = srv = nagle = None
    results = {r[0]: {t: [] for t in TARGETS} for r in ROWS}
    mem = None
    profiles = {}
    try:
        # A private copy, so a concurrent `cargo build` cannot swap the binary under the run.
        shutil.copy2(binary, os.path.join(workdir, "statera"))
        binary = os.path.join(workdir, "statera")
        log("starting nginx and statera serve")
        nginx = Nginx(workdir)
        nagle = NagleMember()
        srv = Server(binary, workdir)
        lbs = {}
        for provider in ("native", "haproxy"):
            lbs[provider] = create_lb(srv, provider, nginx.ports, nagle.port)
            log(f"  {provider}: load balancer {lbs[provider][0]} ACTIVE on {lbs[provider][1]}")
        ha_lb = lbs["haproxy"][0]
        if not srv.haproxy_pids(ha_lb):
            raise RuntimeError("no HAProxy process found for the haproxy load balancer")
        targets = {
            "native": Target("native", lbs["native"][1], HTTP_PORT, TCP_PORT,
                             lambda: [srv.proc.pid]),
            "haproxy": Target("haproxy", lbs["haproxy"][1], HTTP_PORT, TCP_PORT,
                              lambda: srv.haproxy_pids(ha_lb)),
            "direct": Target("direct", "127.0.0.1", nginx.ports[0], nginx.ports[0], lambda: [],
                             nagle.port),
        }
        info["haproxy_threads"] = haproxy_threads(srv.haproxy_pids(ha_lb))
        # HAProxy accepts at most its global maxconn, which the provider derives from the hard
        # RLIMIT_NOFILE (about half of it): never open more idle clients than both can hold.
        maxconn = haproxy_maxconn(os.path.join(srv.data_dir, "haproxy", ha_lb, "haproxy.cfg"))
        info["haproxy_maxconn"] = maxconn
        if maxconn and args.idle > maxconn - 100:
            log(f"HAProxy's global maxconn is {maxconn}: {maxconn - 100} idle connections "
                f"instead of {args.idle}")
            info["nofile"] += (f"; HAProxy's global maxconn is {maxconn} under it, so "
                               f"{maxconn - 100:,} idle connections instead of {args.idle:,}")
            args.idle = maxconn - 100

        if args.idle > 0:
            mem = {}
            for t in ("native", "haproxy"):
                log(f"idle connections: {args.idle} to {t}")
                mem[t] = idle_memory(args.idle, targets[t])
                log(f"  {t}: +{mem[t]['delta_kib'] / 1024:.1f} MiB, accepted "
                    f"{mem[t]['accepted']}, alive {mem[t]['alive']}")

        # Warm-up: every target and row once, short, not recorded.
        log("warm-up")
        for row in rows:
            for t in TARGETS:
                if t == "direct" and row[4] == "tcp":
                    continue
                run_wrk(args, targets[t], row, 2, workdir, procs)

        for rnd in range(args.rounds):
            log(f"round {rnd + 1}/{args.rounds}")
            for row in rows:
                for t in TARGETS:
                    if t == "direct" and row[4] == "tcp":
                        continue  # the same request as the 1m row's direct run
                    r = run_wrk(args, targets[t], row, args.duration, workdir, procs, nginx)
                    results[row[0]][t].append(r)
                    metric = row[5]
                    log(f"  {row[0]:5s} {t:7s} {r[metric]:10.0f} "
                        f"{'req/s' if metric == 'rps' else 'MiB/s'}"
                        + (f"  p99 {r['p99_ms']:.2f} ms" if r["p99_ms"] is not None else "")
                        + (f"  cpu {r['cpu_s']:.2f} s" if r["cpu_s"] is not None else "")
                        + (f"  errors {r['errors']}" if r["errors"] else ""))
        for key in prof_rows:
            row = next(r for r in ROWS if r[0] == key)
            for t in ("native", "haproxy"):
                log(f"profiling {t}, row {key}")
                profiles[(t, key)] = profile(args, targets[t], row, workdir, procs)
    finally:
        for proc in list(procs):
            stop_pid(proc, 5)
        if srv is not None:
            srv.stop()
        if nginx is not None:
            nginx.stop()
        if nagle is not None:
            nagle.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    info["load_end"] = loadavg()
    text = report(info, args, rows, results, mem, profiles)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
