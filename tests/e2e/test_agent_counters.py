"""Listener counters of agent-served load balancers count every connection exactly once, on both
providers: agents send their counters as they move (not only with a status change); across a
restart of the controller the agent's cumulative counters are not added a second time; across a
move to another agent (by the failover API, and by the failover of a SIGKILLed agent) the new
agent's counters, which start from zero, all count."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import Agent, agent_token, free_port, poll, start_statera, stop_server, wait_lb_active
from test_handover import _lb, _total_connections

E2E_STORES = ("sqlite",)


def _get(vip: str, port: int, n: int) -> None:
    for _ in range(n):
        c = http.client.HTTPConnection(vip, port, timeout=5)
        c.request("GET", "/")
        assert c.getresponse().status == 200
        c.close()


def _settled(server, listener_id: str, expect: int) -> int:
    """The listener's total_connections once it has reached `expect` and stayed 6 s (counters are
    read and sent every 5 s)."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = _total_connections(server, listener_id)
        if now != last:
            last, since = now, time.monotonic()
        elif now >= expect and time.monotonic() - since > 6:
            return now
        time.sleep(0.25)
    return last


def test_counters_count_each_connection_once_across_restarts_and_failovers(backends):
    providers = ["native"] + (["haproxy"] if shutil.which("haproxy") else [])
    if len(providers) == 1 and os.environ.get("CI") == "true":
        pytest.fail("no haproxy executable: the haproxy half of the counters test cannot run")
    root = Path(tempfile.mkdtemp(prefix="statera-e2e-agent-counters-"))
    controller = f"127.0.0.1:{free_port()}"
    serve_args = ["--agent-listen", controller, "--agent-timeout", "2"]
    agents: list[Agent] = []
    try:
        with contextlib.ExitStack() as servers:
            first = servers.enter_context(start_statera(data_dir=root, extra_args=serve_args))
            port = first.port
            serve_data = root / "data"
            ca = serve_data / "agent-pki" / "ca.pem"
            agents.append(Agent("agent-1", controller, root / "agent-1", agent_token(serve_data), ca))
            agents[0].wait_session()
            lbs = [(*_lb(first, f"counted-{p}", p, 8080 + i, backends[0]), 8080 + i)
                   for i, p in enumerate(providers)]
            for _, vip, listener_id, lport in lbs:
                _get(vip, lport, 40)
            for _, _, listener_id, _ in lbs:
                assert _settled(first, listener_id, 40) == 40

            # The controller restarts: the agent reports its counters since it started (40) to a
            # controller that has not seen them; they are not added again.
            stop_server(first)
            again = servers.enter_context(start_statera(data_dir=root, port=port, extra_args=serve_args))
            poll(lambda: "agent connected" in again.log_path.read_text(errors="replace"), 30,
                 "the agent to reconnect")
            for _, vip, listener_id, lport in lbs:
                _get(vip, lport, 10)
            for _, _, listener_id, _ in lbs:
                assert _settled(again, listener_id, 50) == 50

            # A second agent. The haproxy load balancer is moved to it through the failover API,
            # then the first agent is SIGKILLed and the native one fails over by itself (not the
            # haproxy one: on one host the killed agent's HAProxy would keep its VIP bound). The new
            # agent's counters (from zero) add to what was counted.
            agents.append(Agent("agent-2", controller, root / "agent-2", agent_token(serve_data), ca))
            agents[1].wait_session()

            def moved(lb_id: str) -> bool:
                r = again.api("GET", f"/v2/octavia/amphorae?loadbalancer_id={lb_id}")
                return r.json()["amphorae"][0]["compute_id"] == "agent-2"

            probes: dict[str, list[int]] = {lb_id: [] for lb_id, _, _, _ in lbs}

            def served_again(lb_id: str, vip: str, lport: int) -> None:
                poll(lambda: moved(lb_id), 20, "the load balancer to move to agent-2")
                wait_lb_active(again, lb_id)
                poll(lambda: _try_get(vip, lport, probes[lb_id]), 20, "the VIP to answer from agent-2")
                _get(vip, lport, 20)

            for lb_id, vip, _, lport in lbs[1:]:
                r = again.api("PUT", f"/v2/lbaas/loadbalancers/{lb_id}/failover")
                assert r.status == 202, r.body[:300]
                served_again(lb_id, vip, lport)
            agents[0].process.kill()
            agents[0].process.wait(timeout=10)
            lb_id, vip, _, lport = lbs[0]
            served_again(lb_id, vip, lport)
            for lb_id, _, listener_id, _ in lbs:
                expect = 50 + len(probes[lb_id]) + 20
                assert _settled(again, listener_id, expect) == expect
    finally:
        for a in agents:
            a.stop()
        shutil.rmtree(root, ignore_errors=True)


def _try_get(vip: str, port: int, connected: list[int]) -> bool:
    """One GET; a connection the load balancer accepted is counted in `connected` (it counts in
    its listener's total_connections whether or not the request then succeeds)."""
    c = http.client.HTTPConnection(vip, port, timeout=5)
    try:
        c.connect()
    except OSError:
        return False
    connected.append(1)
    try:
        c.request("GET", "/")
        return c.getresponse().status == 200
    except OSError:
        return False
    finally:
        c.close()
