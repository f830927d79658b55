"""Fault suite, bounded resources (issue 12, items 7 and 8), against a real `statera serve`:

- descriptor exhaustion by one tenant: with a small descriptor limit, idle connections to one
  load balancer's VIP are refused at its ceiling (and counted), while the API keeps answering
  and another load balancer keeps serving; the haproxy provider renders the same ceiling;
- slow and half-sent requests to the API: closed at the header timeout, a withheld body answered
  408 at the body timeout, an idle keep-alive connection closed at the idle timeout, and the
  connection limit holds.

Every loop is bounded in count and time; every socket and process is closed in `finally`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import selectors
import resource
import socket
import struct
import time

import pytest

from conftest import http_get, poll, start_backends, start_statera, wait_http_ok, wait_lb_active

# A descriptor limit small enough to exhaust with a few hundred connections. With it the budget
# is 64 API connections, 128 for the control plane, 512 for pipes and 320 descriptors for load
# balancers: 160 connections in all, 80 per load balancer (the server logs the numbers).
NOFILE = 1024
# Connections opened to the attacked VIP: past the ceiling, and enough to take every descriptor
# of a server without ceilings (each proxied connection costs two).
FLOOD = 700


def require(condition: bool, reason: str) -> None:
    """Skip (with the reason) on a developer's machine, fail under CI=true."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"prerequisite missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _create(server, path, envelope, body):
    r = server.api("POST", path, {envelope: body})
    assert r.status == 201, f"POST {path} {body} -> {r.status}: {r.body[:500]!r}"
    return r.json()[envelope]


def _subnet_id(server) -> str:
    return server.api("GET", "/v2.0/subnets?name=host-subnet").json()["subnets"][0]["id"]


def _lb_with_listener(server, name, protocol, port, member, provider=None):
    """A load balancer with one listener (no connection_limit: Octavia's -1) and one member."""
    body = {"name": name, "vip_subnet_id": _subnet_id(server)}
    if provider:
        body["provider"] = provider
    lb = _create(server, "/v2/lbaas/loadbalancers", "loadbalancer", body)
    vip = wait_lb_active(server, lb["id"])["vip_address"]
    listener = _create(server, "/v2/lbaas/listeners", "listener", {
        "name": name, "protocol": protocol, "protocol_port": port, "loadbalancer_id": lb["id"],
    })
    wait_lb_active(server, lb["id"])
    pool = _create(server, "/v2/lbaas/pools", "pool", {
        "name": name, "protocol": protocol, "lb_algorithm": "ROUND_ROBIN", "listener_id": listener["id"],
    })
    wait_lb_active(server, lb["id"])
    host, port_ = member
    _create(server, f"/v2/lbaas/pools/{pool['id']}/members", "member", {"address": host, "protocol_port": port_})
    wait_lb_active(server, lb["id"])
    return lb, listener, vip


def _budget(server) -> dict[str, int]:
    """The numbers of the server's `descriptor budget` log line."""
    line = next((l for l in server.log_path.read_text().splitlines() if "descriptor budget" in l), None)
    assert line, f"no 'descriptor budget' line in the log:\n{server.log_tail()}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def _state(sock: socket.socket) -> str:
    """'open' (nothing to read, not closed), 'closed' (EOF) or 'reset', without blocking."""
    sock.settimeout(0)  # a socket with a timeout would wait for data despite MSG_DONTWAIT
    try:
        data = sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return "reset" if e.errno in (errno.ECONNRESET, errno.EPIPE) else f"error {e.errno}"
    return "closed" if data == b"" else "open"


class _Sink:
    """A TCP member that completes handshakes (kernel backlog) and never reads: the cheapest
    member for many idle connections. `reset()` drops every connection it queued (the relay
    then ends them) and listens again on the same port."""

    def __init__(self):
        self.sock = self._listen(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()

    @staticmethod
    def _listen(addr):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        s.listen(2048)
        return s

    def reset(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.sock = self._listen(self.addr)

    def close(self):
        self.sock.close()


@contextlib.contextmanager
def _sink():
    sink = _Sink()
    try:
        yield sink
    finally:
        sink.close()


def _raise_own_nofile(need: int) -> None:
    """This process holds the flood's client sockets: make room for them (a CI runner's soft
    limit is often 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        require(hard >= need, f"the test needs {need} descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def test_one_tenant_cannot_exhaust_the_descriptor_table():
    _raise_own_nofile(4 * FLOOD)
    sockets: list[socket.socket] = []
    with start_statera(nofile=NOFILE) as server, _sink() as sink, start_backends("other-lb") as (other,):
        try:
            # The tenant's load balancer: a TCP listener (two descriptors a connection) with
            # connection_limit -1, its member a sink. Another tenant's: HTTP, a real backend.
            lb_a, listener_a, vip_a = _lb_with_listener(server, "flooded", "TCP", 8080, sink.addr)
            lb_b, _, vip_b = _lb_with_listener(server, "bystander", "HTTP", 8080, (other.host, other.port))
            url_b = f"http://{vip_b}:8080/"
            assert wait_http_ok(url_b).body.decode() == "other-lb"

            # The flood: idle connections to A's VIP, bounded in count and time.
            started = time.monotonic()
            for _ in range(FLOOD):
                s = socket.socket()
                sockets.append(s)
                s.settimeout(2)
                try:
                    s.connect((vip_a, 8080))
                except OSError:
                    pass
                assert time.monotonic() - started < 60, "the flood took over 60 s"
            time.sleep(1.0)  # the accept loop has seen every connection

            # The API keeps answering, reads and writes alike.
            r = server.api("GET", "/v2/lbaas/loadbalancers", timeout=5)
            assert r.status == 200, f"the API failed under the flood: {r.status} {r.body[:300]!r}"
            r = server.api("PUT", f"/v2/lbaas/loadbalancers/{lb_b['id']}", {"loadbalancer": {"description": "still here"}}, timeout=5)
            assert r.status == 200, f"a write failed under the flood: {r.status} {r.body[:300]!r}"
            wait_lb_active(server, lb_b["id"])
            # The other load balancer keeps serving, new connections included.
            for _ in range(5):
                assert http_get(url_b, timeout=5).body.decode() == "other-lb"

            # A's connections: the ceiling's worth held, every other one reset at once.
            budget = _budget(server)
            assert budget["nofile"] == NOFILE, budget
            ceiling = budget["lb_connections_each"]
            assert 0 < ceiling < FLOOD // 2, budget
            # (A reset can also show as an end of stream, or fail the connect itself.)
            states = [_state(s) for s in sockets]
            summary = {x: states.count(x) for x in set(states)}
            held = states.count("open")
            reset = states.count("reset") + states.count("closed")
            assert held == ceiling, f"{held} connections held, the ceiling is {ceiling} ({budget}, {summary})"
            assert reset == FLOOD - ceiling, f"{reset} reset of {FLOOD} ({summary})"

            # The refusals are counted: in the listener's request_errors (the API's stats,
            # collected every few seconds) and in the log (rate-limited).
            def counted():
                r = server.api("GET", f"/v2/lbaas/listeners/{listener_a['id']}/stats")
                stats = r.json()["stats"]
                return stats if stats["request_errors"] >= reset else None

            stats = poll(counted, 20, f"listener stats to count {reset} refusals")
            assert stats["active_connections"] == ceiling, stats
            # While it holds its ceiling the listener shows it (HAProxy's FULL): DEGRADED.
            def listener_status():
                return server.api("GET", f"/v2/lbaas/listeners/{listener_a['id']}").json()["listener"]["operating_status"]

            poll(lambda: listener_status() == "DEGRADED", 20, "the flooded listener to be DEGRADED")
            assert "connections refused" in server.log_path.read_text(), server.log_tail()

            # Once the flood is gone, A takes connections again. (A relay whose client left
            # waits for its member to finish too: the sink lets go of its side.)
            for s in sockets:
                s.close()
            sockets.clear()
            sink.reset()

            def admits_again():
                try:
                    with socket.create_connection((vip_a, 8080), timeout=2) as s:
                        time.sleep(0.3)
                        return _state(s) == "open"
                except OSError:
                    return False  # reset: the ceiling's places are not all back yet

            poll(admits_again, 10, "the flooded load balancer to take connections again")
            poll(lambda: listener_status() == "ONLINE", 20, "the listener to be ONLINE again")
        finally:
            for s in sockets:
                s.close()


def test_haproxy_gets_the_same_ceiling():
    with start_statera(nofile=NOFILE) as server, _sink() as sink:
        providers = server.api("GET", "/v2/lbaas/providers").json()["providers"]
        haproxy = next((p for p in providers if p["name"] == "haproxy"), None)
        require(haproxy is not None and "unavailable" not in haproxy["description"], "no haproxy executable on this machine")
        ceiling = _budget(server)["lb_connections_each"]
        lb, listener, _ = _lb_with_listener(server, "haproxy-ceiling", "TCP", 8080, sink.addr, provider="haproxy")
        cfg = (server.data_dir / "data" / "haproxy" / lb["id"] / "haproxy.cfg").read_text()
        global_section = cfg.split("defaults")[0]
        frontend = cfg.split(f"frontend {listener['id']}")[1].split("\nbackend")[0]
        assert f"maxconn {ceiling}" in global_section, cfg
        assert f"maxconn {ceiling}" in frontend, cfg


# ---------------------------------------------------------------------------------------------
# Slow and half-sent requests

HEADER_MS, BODY_MS, IDLE_MS, MAX_CONNECTIONS = 1500, 1500, 3000, 16
SLOW_ARGS = [
    "--api-header-timeout-ms", str(HEADER_MS),
    "--api-body-timeout-ms", str(BODY_MS),
    "--api-idle-timeout-ms", str(IDLE_MS),
    "--api-max-connections", str(MAX_CONNECTIONS),
]
MARGIN = 1.5  # seconds of scheduling slack past a timeout


@pytest.fixture(scope="module")
def slow_server():
    with start_statera(extra_args=SLOW_ARGS) as server:
        yield server


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _closed_after(sock: socket.socket, bound: float) -> float:
    """Seconds until the server closes `sock` (reading and dropping what it sends); fails past
    `bound`."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < bound:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    raise AssertionError(f"the connection was still open after {bound:.1f} s")


def _read_response(sock: socket.socket, bound: float) -> tuple[int, dict[str, str], bytes, float]:
    """One HTTP response read up to the connection's end: (status, headers, body, seconds)."""
    start = time.monotonic()
    data = b""
    sock.settimeout(0.1)
    while time.monotonic() - start < bound:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    elapsed = time.monotonic() - start
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1 "), f"no response within {bound:.1f} s: {data[:200]!r}"
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return int(lines[0].split()[1]), headers, body, elapsed


def test_half_sent_heads_are_closed_at_the_header_timeout(slow_server):
    socks = []
    try:
        for _ in range(10):
            s = _connect(slow_server)
            s.sendall(b"GET /v2/lbaas/loadbalancers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: t\r\n")
            socks.append(s)
        for s in socks:
            _closed_after(s, HEADER_MS / 1000 + MARGIN)
        # A head trickled byte by byte is closed at the same deadline: it is not an idle timer.
        s = _connect(slow_server)
        socks.append(s)
        start = time.monotonic()
        head = b"GET /v2/lbaas/loadbalancers HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
        closed = None
        for i in range(len(head)):
            try:
                s.sendall(head[i : i + 1])
            except OSError:
                closed = time.monotonic() - start
                break
            time.sleep(0.05)
            if _state(s) != "open":
                closed = time.monotonic() - start
                break
        assert closed is not None, "a trickled head was never closed"
        assert HEADER_MS / 1000 - 0.2 <= closed <= HEADER_MS / 1000 + MARGIN, closed
        # The server still answers.
        assert slow_server.api("GET", "/v2/lbaas/loadbalancers").status == 200
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize(
    "path,shape",
    [("/v2/lbaas/loadbalancers", "octavia"), ("/v2.0/networks", "neutron")],
)
def test_withheld_body_is_answered_408_at_the_body_timeout(slow_server, path, shape):
    with _connect(slow_server) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: 100\r\n\r\n{{\"a\":".encode()
        )
        status, headers, body, elapsed = _read_response(s, BODY_MS / 1000 + MARGIN + 2)
    assert status == 408, (status, body)
    assert BODY_MS / 1000 - 0.2 <= elapsed <= BODY_MS / 1000 + MARGIN, elapsed
    assert headers.get("connection") == "close", headers
    assert headers.get("x-openstack-request-id", "").startswith("req-"), headers
    doc = json.loads(body)
    if shape == "octavia":
        assert doc["faultcode"] == "Client" and "did not arrive" in doc["faultstring"], doc
        assert doc["debuginfo"] is None, doc
    else:
        assert doc["NeutronError"]["type"] == "RequestTimeout", doc
        assert "did not arrive" in doc["NeutronError"]["message"], doc


def test_oversized_body_is_413_without_reading_it(slow_server):
    with _connect(slow_server) as s:
        s.sendall(
            b"POST /v2/lbaas/loadbalancers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{"
        )
        status, _, body, elapsed = _read_response(s, 5)
    assert status == 413, (status, body)
    assert elapsed < BODY_MS / 1000, elapsed
    assert json.loads(body)["faultstring"] == "Request Entity Too Large"


def test_idle_keepalive_is_closed_at_the_idle_timeout(slow_server):
    with _connect(slow_server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"closed before a response: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < length:
            chunk = s.recv(65536)
            assert chunk, "closed in the middle of the response"
            body += chunk
        start = time.monotonic()
        # Past the header timeout the idle connection is still open: that timeout starts with
        # the next request's first byte.
        time.sleep(HEADER_MS / 1000 + 0.5)
        assert _state(s) == "open"
        closed = (time.monotonic() - start) + _closed_after(s, IDLE_MS / 1000 + MARGIN)
        assert IDLE_MS / 1000 - 0.2 <= closed <= IDLE_MS / 1000 + MARGIN, closed


def test_connection_limit_holds(slow_server):
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(_connect(slow_server))
        held_at = time.monotonic()
        time.sleep(0.3)
        opened = time.monotonic()
        with _connect(slow_server) as extra:
            extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, _, _, _ = _read_response(extra, HEADER_MS / 1000 + MARGIN + 3)
            waited = time.monotonic() - opened
        assert status == 200
        # Served only once the held connections were closed at their header timeout.
        assert waited >= HEADER_MS / 1000 - 0.3 - 0.3, waited
        # Each held connection is closed at its header timeout, within the scheduling margin: the
        # extra one can be served as soon as the first slot frees, before the last of the held
        # ones (timing out at the same moment) has been closed (seen once in CI on a loaded machine).
        for s in held:
            left = held_at + HEADER_MS / 1000 + MARGIN - time.monotonic()
            _closed_after(s, max(left, 0.2))
    finally:
        for s in held:
            s.close()


def test_a_flood_of_half_sent_heads_is_bounded():
    """The issue's slow-loris at a smaller scale: 300 half-sent heads against 100 connections
    and a 1 s header timeout are all closed in rounds (100 at a time, ~1 s each), and the API
    answers once they are gone; none is held longer than its rounds."""
    heads, limit, header_ms = 300, 100, 1000
    _raise_own_nofile(4 * heads)
    args = ["--api-header-timeout-ms", str(header_ms), "--api-max-connections", str(limit)]
    socks: list[socket.socket] = []
    with start_statera(extra_args=args) as server, selectors.DefaultSelector() as sel:
        try:
            start = time.monotonic()
            for _ in range(heads):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                s.sendall(b"GET /v2/lbaas/loadbalancers HTTP/1.1\r\nHost: x\r\n")
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
                socks.append(s)
            rounds = -(-heads // limit)
            bound = rounds * header_ms / 1000 + 2 * MARGIN
            open_ = set(socks)
            while open_ and time.monotonic() - start < bound:
                for key, _ in sel.select(timeout=0.1):
                    if _state(key.fileobj) != "open":
                        sel.unregister(key.fileobj)
                        open_.discard(key.fileobj)
            elapsed = time.monotonic() - start
            assert not open_, f"{len(open_)} of {heads} half-sent heads still open after {elapsed:.1f} s"
            assert elapsed >= (rounds - 1) * header_ms / 1000, f"{elapsed:.1f} s: the connection limit did not hold"
            assert server.api("GET", "/v2/lbaas/loadbalancers", timeout=5).status == 200
        finally:
            for s in socks:
                s.close()
