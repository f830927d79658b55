"""Restarting `statera serve` without dropping a request: a second `statera serve` on the same
data directory takes the running one's sockets over (crates/statera/src/handover.rs) and the old
one drains and exits. Under continuous load through a native and an haproxy load balancer — a
client opening a fresh connection per request and a keep-alive client — 20 handovers in a row
must cost no request, and the listener counters must never decrease.

A keep-alive client may find its idle connection closed by the draining process just as it sends
its next request; like every HTTP client that reuses connections (RFC 9112 9.3.1), it then sends
the request again on a new connection. Those resends are counted and reported, not failures; a
request that fails on a fresh connection, or that gets an answer other than the backend's, is a
failure."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import start_statera, stop_server, wait_lb_active

E2E_STORES = ("sqlite",)
HANDOVERS = int(os.environ.get("STATERA_E2E_HANDOVERS", "20"))
LOAD_SECONDS_MAX = 300  # every load loop ends by then, whatever happens
REQUESTS_MAX = 400_000  # and after this many requests per client


def _create(server, path, envelope, body):
    r = server.api("POST", path, {envelope: body})
    assert r.status == 201, f"POST {path} {body} -> {r.status}: {r.body[:500]!r}"
    return r.json()[envelope]


def _lb(server, name, provider, port, backend, **extra) -> tuple[str, str, str]:
    """A load balancer with one HTTP listener on `port` and `backend` as its member (and the
    `extra` attributes); returns (lb id, VIP, listener id)."""
    subnet_id = server.api("GET", "/v2.0/subnets?name=host-subnet").json()["subnets"][0]["id"]
    lb = _create(server, "/v2/lbaas/loadbalancers", "loadbalancer", {
        **extra, "name": name, "vip_subnet_id": subnet_id, "provider": provider,
        "listeners": [{
            "name": f"{name}-l", "protocol": "HTTP", "protocol_port": port,
            "default_pool": {
                "name": f"{name}-p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "members": [{"address": backend.host, "protocol_port": backend.port}],
            },
        }],
    })
    lb = wait_lb_active(server, lb["id"])
    return lb["id"], lb["vip_address"], lb["listeners"][0]["id"]


class Client(threading.Thread):
    """GETs `/` on host:port until told to stop; counts answers, failures and resends."""

    def __init__(self, name: str, host: str, port: int, expect: bytes | None, keep_alive: bool,
                 path: str = "/", headers: dict[str, str] | None = None):
        super().__init__(name=name, daemon=True)
        self.host, self.port, self.expect, self.keep_alive = host, port, expect, keep_alive
        self.path, self.headers = path, headers or {}
        self.ok = 0
        self.resent = 0
        self.failures: list[str] = []
        self.stop = threading.Event()

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def _once(self, conn: http.client.HTTPConnection) -> tuple[bytes, bool]:
        headers = dict(self.headers)
        if not self.keep_alive:
            headers["Connection"] = "close"
        conn.request("GET", self.path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise AssertionError(f"status {response.status}")
        return body, response.will_close

    def run(self) -> None:
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        conn = None
        reused = False
        for _ in range(REQUESTS_MAX):
            if self.stop.is_set() or time.monotonic() > deadline:
                break
            if conn is None:
                conn, reused = self._connection(), False
            try:
                body, closing = self._once(conn)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = None
                if reused:
                    # The server closed an idle kept-alive connection as the request went out:
                    # send it again on a new connection, as clients do.
                    self.resent += 1
                    continue
                self.failures.append(f"{type(e).__name__}: {e}")
                continue
            except (OSError, http.client.HTTPException, AssertionError) as e:
                conn.close()
                conn = None
                self.failures.append(f"{type(e).__name__}: {e}")
                continue
            if self.expect is not None and body != self.expect:
                self.failures.append(f"unexpected body {body[:80]!r}")
            else:
                self.ok += 1
            if closing or not self.keep_alive:
                conn.close()
                conn = None
            else:
                reused = True
        if conn is not None:
            conn.close()


def _total_connections(server, listener_id: str) -> int:
    r = server.api("GET", f"/v2/lbaas/listeners/{listener_id}/stats")
    assert r.status == 200, f"listener stats -> {r.status} {r.body[:200]!r}"
    return r.json()["stats"]["total_connections"]


def test_handovers_under_load_drop_nothing(backends):
    providers = ["native"]
    if shutil.which("haproxy"):
        providers.append("haproxy")
    elif os.environ.get("CI") == "true":
        pytest.fail("no haproxy executable: the haproxy half of the handover test cannot run")
    data_dir = Path(tempfile.mkdtemp(prefix="statera-e2e-handover-"))
    clients: list[Client] = []
    try:
        with contextlib.ExitStack() as servers:
            first = servers.enter_context(start_statera(data_dir=data_dir))
            port = first.port
            lbs = []
            for i, provider in enumerate(providers):
                lb_id, vip, listener_id = _lb(first, f"handover-{provider}", provider, 8080 + i, backends[0])
                lbs.append((provider, lb_id, vip, 8080 + i, listener_id))
            for provider, _, vip, lport, _ in lbs:
                for keep_alive in (False, True):
                    kind = "keep-alive" if keep_alive else "fresh"
                    clients.append(Client(f"{provider}/{kind}", vip, lport, backends[0].name.encode(), keep_alive))
            # The API answers across the handovers too: requests wait in its socket's queue.
            clients.append(Client("api", "127.0.0.1", port, None, False, path="/v2/lbaas/loadbalancers",
                                  headers={"X-Auth-Token": "e2e"}))
            for c in clients:
                c.start()
            time.sleep(1)
            counters = {lb[4]: _total_connections(first, lb[4]) for lb in lbs}
            current = first
            took = []
            for n in range(HANDOVERS):
                before = sum(c.ok for c in clients)
                started = time.monotonic()
                new = servers.enter_context(start_statera(data_dir=data_dir, port=port))
                # The old one hands over, drains and exits by itself.
                try:
                    code = current.process.wait(timeout=60)
                except Exception:
                    pytest.fail(f"handover {n + 1}: the old statera did not exit\n{current.log_tail()}")
                assert code == 0, f"handover {n + 1}: the old statera exited with {code}\n{current.log_tail()}"
                took.append(time.monotonic() - started)
                current = new
                for provider, lb_id, _, _, listener_id in lbs:
                    wait_lb_active(current, lb_id)
                    now = _total_connections(current, listener_id)
                    assert now >= counters[listener_id], (
                        f"handover {n + 1}: {provider} listener's total_connections went from "
                        f"{counters[listener_id]} to {now}"
                    )
                    counters[listener_id] = now
                # Traffic kept flowing across the handover.
                deadline = time.monotonic() + 10
                while sum(c.ok for c in clients) <= before and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert sum(c.ok for c in clients) > before, f"handover {n + 1}: no request answered since"
            for c in clients:
                c.stop.set()
            for c in clients:
                c.join(timeout=30)
            summary = ", ".join(f"{c.name}: {c.ok} ok, {c.resent} resent, {len(c.failures)} failed" for c in clients)
            print(f"\n{HANDOVERS} handovers (median {sorted(took)[len(took) // 2]:.2f} s, max {max(took):.2f} s): {summary}")
            failures = [f"{c.name}: {f}" for c in clients for f in c.failures[:5]]
            assert not failures, f"requests failed across {HANDOVERS} handovers ({summary}):\n" + "\n".join(failures)
            assert all(c.ok > 0 for c in clients), summary
            stop_server(current)
    finally:
        for c in clients:
            c.stop.set()
        shutil.rmtree(data_dir, ignore_errors=True)
