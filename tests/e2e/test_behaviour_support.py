"""Helpers for the provider behaviour suite (test_behaviour*.py); this module holds no tests.

- `provider` fixture: every behaviour test runs once per provider ("native", "haproxy").
- Members: `HttpMember` (an HTTP server on 127.0.0.1 that answers with its name, echoes the
  request head it received as JSON, holds `/hold/...` requests until released, sets cookies on
  `/setcookie?...`, and can be killed and restarted on the same port) and `TcpMember` (a raw TCP
  server: echo, or PROXY protocol v1/v2 parsing).
- Clients: `get()` (one request on a fresh connection, optionally from a chosen 127.x source
  address), `Load` (a client thread doing requests continuously for a bounded time).
- Load balancers: `make_lb()` (one fully populated create, then wait ACTIVE), `change()` (one API
  change, then wait ACTIVE the way a client does), `delete_lb()`.

Everything is bounded in time and everything started is stopped by a context manager or a
fixture finaliser. Traffic only goes to 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import itertools
import json
import select
import shutil
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

import pytest
from conftest import StateraServer, poll

PROVIDERS = ["native", "haproxy"]
ACTIVE_TIMEOUT = 30.0
FAST_POLL = 0.02  # how often change() polls for ACTIVE (the reload test makes 100 changes)

# Distinct listener ports per test (each LB also has its own VIP, so this only keeps logs and
# errors unambiguous). Unprivileged: ip_unprivileged_port_start is usually 1024.
_ports = itertools.count(18000)


def next_port() -> int:
    return next(_ports)


@pytest.fixture(params=PROVIDERS)
def provider(request, statera_server) -> str:
    """The provider a behaviour test runs against. HAProxy is listed as unavailable (creates
    answer 501) where no haproxy executable is installed: then its half of the suite is skipped
    with that reason."""
    name = request.param
    if name == "haproxy":
        r = statera_server.api("GET", "/v2/lbaas/providers")
        names = [p["name"] for p in r.json().get("providers", [])] if r.status == 200 else []
        if "haproxy" not in names or shutil.which("haproxy") is None:
            pytest.skip("no haproxy executable on this machine: the haproxy provider is unavailable")
    return name


# ---------------------------------------------------------------------------------------------
# HTTP members


@dataclass
class HttpMember:
    """An HTTP member on 127.0.0.1. Every answer carries `X-Backend: <name>` and a JSON body
    {"member", "path", "headers", "client"} (the request head as the member saw it).

    - `/hold/...` waits (at most `HOLD_MAX` s) until `release()` before answering;
    - `/setcookie?name=value` answers with `Set-Cookie: name=value`;
    - `/slow?ms=N` answers after N ms.

    `kill()` stops it like a process dying between two requests: connects are refused from then
    on, and every idle keep-alive connection (one that has answered and waits for its next
    request) is shut down at once, so a proxy that sends on it just then loses its request; the
    requests it has already accepted are answered first (with `Connection: close`). Cutting an
    accepted request instead would be visible to the client through either provider: a request
    a member received is never replayed on a fresh connection (native replays an idempotent
    request only when a *reused* connection lost it; HAProxy, configured like Octavia's amphora,
    retries only failed connects) — that is no failover behaviour, just a lost request.
    `start()` serves again on the same port."""

    name: str
    port: int = 0
    requests: list[dict] = field(default_factory=list, repr=False)
    HOLD_MAX = 15.0

    def __post_init__(self):
        self._server = None
        self._thread = None
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, bool] = {}  # socket -> busy answering
        self._release = threading.Event()
        self.held = 0  # requests currently held in /hold
        self.alive = False

    # -- lifecycle

    def start(self) -> "HttpMember":
        member = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Head and body go out in two writes: without NODELAY, Nagle holds the body
                # until the proxy's delayed ACK (~20-40 ms per request on loopback).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # Busy from the start: a proxy opens a connection to send a request on it.
                with member._lock:
                    member._conns[self.connection] = True

            def finish(self):
                with member._lock:
                    member._conns.pop(self.connection, None)
                with contextlib.suppress(OSError):
                    super().finish()

            def _busy(self, busy: bool):
                with member._lock:
                    if self.connection in member._conns:
                        member._conns[self.connection] = busy

            def _answer(self, with_body: bool):
                self._busy(True)
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    if length:
                        self.rfile.read(length)
                    parsed = urllib.parse.urlsplit(self.path)
                    record = {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "client": self.client_address[0],
                        "time": time.monotonic(),
                    }
                    member.requests.append(record)
                    extra = []
                    if parsed.path.startswith("/hold"):
                        with member._lock:
                            member.held += 1
                        try:
                            member._release.wait(member.HOLD_MAX)
                        finally:
                            with member._lock:
                                member.held -= 1
                    elif parsed.path == "/slow":
                        ms = int(urllib.parse.parse_qs(parsed.query).get("ms", ["100"])[0])
                        time.sleep(ms / 1000)
                    elif parsed.path == "/setcookie":
                        extra.append(("Set-Cookie", parsed.query + "; Path=/"))
                    body = json.dumps(
                        {"member": member.name, "path": self.path, "headers": record["headers"],
                         "client": record["client"]}
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("X-Backend", member.name)
                    for k, v in extra:
                        self.send_header(k, v)
                    if not member.alive:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    if with_body:
                        self.wfile.write(body)
                    self.wfile.flush()
                finally:
                    self._busy(False)
                if not member.alive:
                    self.close_connection = True

            def do_GET(self):
                self._answer(True)

            def do_POST(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

        srv = _QuietServer(("127.0.0.1", self.port), Handler)
        srv.daemon_threads = True
        srv.request_queue_size = 128
        self.port = srv.server_address[1]
        self._server = srv
        self.alive = True
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def kill(self) -> None:
        if self._server is None:
            return
        self.alive = False
        srv, self._server = self._server, None
        srv.shutdown()  # the accept loop stops
        self._thread.join(timeout=5)
        # Serve what the kernel already accepted (the proxy sent those requests), then close the
        # listening socket: from here on connects are refused.
        srv.socket.setblocking(False)
        while True:
            try:
                conn, addr = srv.socket.accept()
            except OSError:
                break
            conn.setblocking(True)
            srv.process_request(conn, addr)
        srv.socket.close()
        with self._lock:
            idle = [s for s, busy in self._conns.items() if not busy]
        for s in idle:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.release()
        self.kill()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """Let every held request (and every later one) answer."""
        self._release.set()

    def hold(self) -> None:
        """Make /hold requests wait again."""
        self._release.clear()

    def member_body(self) -> dict:
        return {"address": "127.0.0.1", "protocol_port": self.port, "name": self.name}


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # resets from proxies and kills are expected here; keep pytest's output readable


@contextlib.contextmanager
def http_members(*names: str):
    members = [HttpMember(n).start() for n in names]
    try:
        yield members
    finally:
        for m in members:
            m.stop()


# ---------------------------------------------------------------------------------------------
# Raw TCP members

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_proxy_header(conn: socket.socket) -> dict:
    """Read a PROXY protocol v1 line or v2 header from `conn` (nothing more) and return
    {"version", "src", "src_port", "dst", "dst_port"} (or {"version": None, "first": bytes} when
    the first bytes are no PROXY header)."""
    first = _recv_exact(conn, 12)
    if first == PROXY_V2_SIGNATURE:
        ver_cmd, fam, length = struct.unpack("!BBH", _recv_exact(conn, 4))
        payload = _recv_exact(conn, length)
        out = {"version": 2, "command": ver_cmd & 0x0F, "family": fam}
        if fam == 0x11:  # TCP over IPv4
            src, dst, sport, dport = struct.unpack("!4s4sHH", payload[:12])
            out.update(src=socket.inet_ntoa(src), dst=socket.inet_ntoa(dst), src_port=sport, dst_port=dport)
        return out
    if first.startswith(b"PROXY "):
        line = first
        while not line.endswith(b"\r\n"):
            if len(line) > 107:
                raise ValueError(f"PROXY v1 line too long: {line!r}")
            line += _recv_exact(conn, 1)
        parts = line.decode().split()
        out = {"version": 1, "family": parts[1]}
        if parts[1] in ("TCP4", "TCP6"):
            out.update(src=parts[2], dst=parts[3], src_port=int(parts[4]), dst_port=int(parts[5]))
        return out
    return {"version": None, "first": first}


@dataclass
class TcpMember:
    """A raw TCP member on 127.0.0.1. Mode "echo": answers every chunk with `<name>:<chunk>`.
    Mode "proxy": first reads a PROXY header, answers one JSON line describing it (plus
    "member"), then echoes like "echo". `accepted` counts connections accepted."""

    name: str
    mode: str = "echo"
    port: int = 0
    accepted: int = 0
    headers: list[dict] = field(default_factory=list, repr=False)

    def start(self) -> "TcpMember":
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        conn.settimeout(20)
        with contextlib.suppress(OSError, ValueError, ConnectionError):
            if self.mode == "proxy":
                info = read_proxy_header(conn)
                info["member"] = self.name
                self.headers.append(info)
                conn.sendall(json.dumps(info).encode() + b"\n")
            while not self._stop.is_set():
                data = conn.recv(4096)
                if not data:
                    break
                conn.sendall(self.name.encode() + b":" + data)
        with contextlib.suppress(OSError):
            conn.close()

    def stop(self):
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def member_body(self) -> dict:
        return {"address": "127.0.0.1", "protocol_port": self.port, "name": self.name}


@contextlib.contextmanager
def tcp_members(*names: str, mode: str = "echo"):
    members = [TcpMember(n, mode=mode).start() for n in names]
    try:
        yield members
    finally:
        for m in members:
            m.stop()


def tcp_connect(host: str, port: int, source: str | None = None, timeout: float = 5.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def recv_line(s: socket.socket, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# ---------------------------------------------------------------------------------------------
# HTTP clients


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def member(self) -> str | None:
        return self.headers.get("X-Backend")

    def json(self) -> dict:
        return json.loads(self.body)


def get(
    host: str,
    port: int,
    path: str = "/",
    headers: dict[str, str] | None = None,
    source: str | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One GET on a fresh connection (from `source`, a 127.x address, when given); never
    follows redirects."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def members_of(host: str, port: int, n: int, path: str = "/", **kw) -> list[str | None]:
    """The member answering each of `n` requests, each on a fresh connection."""
    out = []
    for _ in range(n):
        r = get(host, port, path, **kw)
        assert r.status == 200, f"GET {path} -> {r.status} {r.body[:200]!r}"
        out.append(r.member)
    return out


class KeepAliveClient:
    """One keep-alive HTTP connection, as a browser keeps one: before each request it checks
    whether the proxy closed the idle connection, and only then opens a new one (counted in
    `reconnects`)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = -1

    def _closed_by_peer(self) -> bool:
        sock = self.conn.sock if self.conn else None
        if sock is None:
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""

    def get(self, path: str = "/") -> Reply:
        if self._closed_by_peer():
            if self.conn:
                self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.connect()
            self.reconnects += 1
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.will_close:
            self.conn.close()
            self.conn = None
        return Reply(resp.status, resp.headers, body)

    def members(self, n: int, path: str = "/") -> list[str | None]:
        out = []
        for _ in range(n):
            r = self.get(path)
            assert r.status == 200, f"GET {path} -> {r.status} {r.body[:200]!r}"
            out.append(r.member)
        return out

    def close(self):
        if self.conn:
            self.conn.close()


class Load:
    """A client thread doing GET requests continuously until stopped or `duration` s passed.
    `keepalive=False`: a fresh connection per request. Records every outcome."""

    def __init__(self, host: str, port: int, path: str = "/", duration: float = 60.0,
                 keepalive: bool = False, source: str | None = None, pause: float = 0.0,
                 resend_on_reused_close: bool = False):
        self.host, self.port, self.path = host, port, path
        self.duration, self.keepalive, self.source, self.pause = duration, keepalive, source, pause
        # Do as browsers and HTTP libraries do: a request whose reused keep-alive connection
        # was closed before any answer is sent again on a new one (counted in `resent`).
        self.resend_on_reused_close = resend_on_reused_close
        self.resent = 0
        self.ok = 0
        self.by_member: dict[str, int] = {}
        self.errors: list[str] = []
        self.timeline: list[tuple[float, str]] = []  # (time, member or "ERR:...")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=20)

    def _record(self, what: str):
        self.timeline.append((time.monotonic(), what))

    def _run(self):
        deadline = time.monotonic() + self.duration
        conn = None
        src = (self.source, 0) if self.source else None
        reused = False
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10, source_address=src)
                    reused = False
                elif self.keepalive:
                    reused = True
                conn.request("GET", self.path)
                resp = conn.getresponse()
                resp.read()
                member = resp.headers.get("X-Backend")
                if resp.status == 200:
                    self.ok += 1
                    self.by_member[member] = self.by_member.get(member, 0) + 1
                    self._record(member)
                else:
                    self.errors.append(f"{time.monotonic():.3f} HTTP {resp.status}")
                    self._record(f"ERR:{resp.status}")
                if not self.keepalive or resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                closed = isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
                if reused and closed and self.resend_on_reused_close:
                    self.resent += 1
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
                    continue
                self.errors.append(f"{time.monotonic():.3f} {e!r}")
                self._record(f"ERR:{e!r}")
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
            if self.pause:
                time.sleep(self.pause)
        with contextlib.suppress(Exception):
            if conn is not None:
                conn.close()

    def count_since(self, t0: float) -> dict[str, int]:
        out: dict[str, int] = {}
        for t, what in list(self.timeline):
            if t >= t0:
                out[what] = out.get(what, 0) + 1
        return out


# ---------------------------------------------------------------------------------------------
# Load balancers through the API


def host_subnet_id(server: StateraServer) -> str:
    r = server.api("GET", "/v2.0/subnets?name=host-subnet")
    assert r.status == 200, r.body
    subnets = r.json()["subnets"]
    assert subnets, "no host-subnet"
    return subnets[0]["id"]


def wait_active(server: StateraServer, lb_id: str, timeout: float = ACTIVE_TIMEOUT, interval: float = FAST_POLL) -> dict:
    """Poll the LB until ACTIVE (fail at once on ERROR), like every Octavia client does."""
    seen: list[str] = []

    def check():
        r = server.api("GET", f"/v2/lbaas/loadbalancers/{lb_id}")
        assert r.status == 200, f"GET loadbalancer {lb_id} -> {r.status} {r.body[:500]!r}"
        lb = r.json()["loadbalancer"]
        status = lb["provisioning_status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        assert status != "ERROR", f"load balancer {lb_id} went to ERROR (statuses seen: {seen})\n{server.log_tail(30)}"
        return lb if status == "ACTIVE" else None

    return poll(check, timeout, lambda: f"load balancer {lb_id} to be ACTIVE (seen: {seen})", interval=interval)


@dataclass
class Lb:
    server: StateraServer
    id: str
    vip: str
    provider: str
    listeners: dict[str, dict]  # by name
    pools: dict[str, dict]  # by name
    members: dict[str, dict]  # by name (member names are unique per test)

    def change(self, method: str, path: str, body=None, expect: int | tuple = (200, 201, 202, 204)) -> dict | None:
        """One API change, then wait until the LB is ACTIVE again."""
        return change(self.server, self.id, method, path, body, expect)

    def member_path(self, name: str) -> str:
        m = self.members[name]
        return f"/v2/lbaas/pools/{m['pool_id']}/members/{m['id']}"

    def get_member(self, name: str) -> dict:
        r = self.server.api("GET", self.member_path(name))
        assert r.status == 200, r.body
        return r.json()["member"]

    def stats(self) -> dict:
        r = self.server.api("GET", f"/v2/lbaas/loadbalancers/{self.id}/stats")
        assert r.status == 200, r.body
        return r.json()["stats"]

    def status_tree(self) -> dict:
        r = self.server.api("GET", f"/v2/lbaas/loadbalancers/{self.id}/status")
        assert r.status == 200, r.body
        return r.json()["statuses"]["loadbalancer"]


def change(server: StateraServer, lb_id: str, method: str, path: str, body=None, expect=(200, 201, 202, 204)):
    expect = expect if isinstance(expect, tuple) else (expect,)
    r = server.api(method, path, body)
    assert r.status in expect, f"{method} {path} -> {r.status} {r.body[:500]!r}"
    wait_active(server, lb_id)
    return r.json() if r.body else None


def make_lb(server: StateraServer, provider: str, listeners: list[dict], pools: list[dict], name: str = "lb-behaviour") -> Lb:
    """A fully populated create (listeners, pools, members, monitors, L7 policies in one call),
    then wait ACTIVE; returns the LB with its children looked up by name."""
    body = {
        "loadbalancer": {
            "name": name,
            "vip_subnet_id": host_subnet_id(server),
            "provider": provider,
            "listeners": listeners,
            "pools": pools,
        }
    }
    r = server.api("POST", "/v2/lbaas/loadbalancers", body)
    assert r.status == 201, f"create LB -> {r.status} {r.body[:800]!r}"
    lb = r.json()["loadbalancer"]
    wait_active(server, lb["id"])
    lb_id = lb["id"]
    ls = server.api("GET", f"/v2/lbaas/listeners?loadbalancer_id={lb_id}").json()["listeners"]
    ps = server.api("GET", f"/v2/lbaas/pools?loadbalancer_id={lb_id}").json()["pools"]
    members = {}
    for p in ps:
        for m in server.api("GET", f"/v2/lbaas/pools/{p['id']}/members").json()["members"]:
            m["pool_id"] = p["id"]
            members[m["name"]] = m
    return Lb(server, lb_id, lb["vip_address"], provider,
              {l["name"]: l for l in ls}, {p["name"]: p for p in ps}, members)


def delete_lb(lb: Lb) -> None:
    r = lb.server.api("DELETE", f"/v2/lbaas/loadbalancers/{lb.id}?cascade=true")
    assert r.status in (204, 404), f"delete LB -> {r.status} {r.body[:300]!r}"

    def gone():
        return lb.server.api("GET", f"/v2/lbaas/loadbalancers/{lb.id}").status == 404

    poll(gone, ACTIVE_TIMEOUT, f"load balancer {lb.id} to be deleted")


@contextlib.contextmanager
def load_balancer(server: StateraServer, provider: str, listeners: list[dict], pools: list[dict], name: str = "lb-behaviour"):
    lb = make_lb(server, provider, listeners, pools, name)
    try:
        yield lb
    finally:
        delete_lb(lb)


def http_lb(server, provider, members, *, algorithm="ROUND_ROBIN", port=None, pool_extra=None,
            listener_extra=None, protocol="HTTP", pool_protocol=None, name="lb-behaviour"):
    """A load balancer with one listener (named "l") whose default pool "p" holds `members`
    (dicts for the member bodies; see HttpMember.member_body)."""
    port = port or next_port()
    listener = {"name": "l", "protocol": protocol, "protocol_port": port, "default_pool": {"name": "p"},
                **(listener_extra or {})}
    pool = {"name": "p", "protocol": pool_protocol or protocol, "lb_algorithm": algorithm,
            "members": members, **(pool_extra or {})}
    return load_balancer(server, provider, [listener], [pool], name)


def member_status(lb: Lb, name: str) -> str:
    return lb.get_member(name)["operating_status"]


def wait_member_status(lb: Lb, name: str, status: str, timeout: float) -> float:
    """Wait until the member's operating_status is `status`; return the seconds it took."""
    t0 = time.monotonic()
    seen: list[str] = []

    def check():
        s = member_status(lb, name)
        if not seen or seen[-1] != s:
            seen.append(s)
        return s == status

    poll(check, timeout, lambda: f"member {name} to be {status} (seen: {seen})", interval=0.1)
    return time.monotonic() - t0


def wait_traffic_only(lb: Lb, port: int, expected: set[str], timeout: float, n: int = 6, path: str = "/"):
    """Wait until `n` consecutive requests (fresh connections) all answer 200 from a member in
    `expected`; returns the members seen in that last round."""
    last: list = []

    def check():
        seen = []
        for _ in range(n):
            try:
                r = get(lb.vip, port, path, timeout=5)
            except OSError as e:
                last[:] = [repr(e)]
                return None
            seen.append(r.member if r.status == 200 else f"HTTP {r.status}")
        last[:] = seen
        return seen if set(seen) <= expected else None

    return poll(check, timeout, lambda: f"traffic only to {expected} (last round: {last})", interval=0.1)
