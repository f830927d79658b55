"""The data plane in its own process: `statera serve --agent-listen` drives `statera agent`
over gRPC with mutual TLS (crates/statera-agent).

- An agent enrols with a one-time token and the controller's CA, then serves what the controller
  sends: a native and an haproxy load balancer answer through it.
- Under continuous load (a fresh-connection and a keep-alive client per load balancer), the
  controller is stopped (SIGTERM) and started again 5 times, once staying down for 60 s: no
  request fails, counters never decrease — the agent serves on while no controller is there, and
  its health checks still take out a member that dies meanwhile.
- The agent is upgraded 20 times by handover (a second `statera agent` on its data directory
  takes its sockets over): no request fails.
- Refusals: a used token, a certificate from another CA, a revoked agent — each refused, and
  nothing placed on them."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from types import SimpleNamespace
from pathlib import Path

import pytest

from conftest import (Agent, agent_token, free_port, poll, start_backends, start_statera, statera_binary,
                      stop_server, wait_lb_active)
from test_handover import Client, _create, _lb, _total_connections

E2E_STORES = ("sqlite",)
RESTARTS = 5
AGENT_UPGRADES = 20
CONTROLLER_AWAY_S = 60


_token = agent_token


def _statera_version() -> str:
    out = subprocess.run([str(statera_binary()), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def _wait_log(what: str, read, timeout: float = 20) -> None:
    poll(lambda: what in read(), timeout, f"{what!r} in the log")


@contextlib.contextmanager
def _breakable_backend(name: str):
    """An HTTP backend answering its name, or 503 once its `broken` event is set."""
    broken = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            status, body = (503, b"broken") if broken.is_set() else (200, name.encode())
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(name=name, host="127.0.0.1", port=srv.server_address[1], broken=broken)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_agent_serves_across_controller_restarts_and_its_own_upgrades(backends):
    providers = ["native"] + (["haproxy"] if shutil.which("haproxy") else [])
    if len(providers) == 1 and os.environ.get("CI") == "true":
        pytest.fail("no haproxy executable: the haproxy half of the agent test cannot run")
    root = Path(tempfile.mkdtemp(prefix="statera-e2e-agents-"))
    agent_port = free_port()
    controller = f"127.0.0.1:{agent_port}"
    serve_args = ["--agent-listen", controller]
    agents: list[Agent] = []
    clients: list[Client] = []
    try:
        with contextlib.ExitStack() as servers:
            first = servers.enter_context(start_statera(data_dir=root, extra_args=serve_args))
            port = first.port
            serve_data = root / "data"
            ca = serve_data / "agent-pki" / "ca.pem"
            agent_dir = root / "agent-1"
            agent = Agent("agent-1", controller, agent_dir, _token(serve_data), ca)
            agents.append(agent)
            _wait_log("agent: session with the controller", agent.text)

            lbs = []
            for i, provider in enumerate(providers):
                lb_id, vip, listener_id = _lb(first, f"agent-{provider}", provider, 8080 + i, backends[0])
                lbs.append((provider, lb_id, vip, 8080 + i, listener_id))
            # Served by the agent: its kept configurations name them.
            kept = {p.stem for p in (agent_dir / "configs").glob("*.json")}
            assert {lb[1] for lb in lbs} <= kept, f"kept by the agent: {kept}"
            for provider, _, vip, lport, _ in lbs:
                for keep_alive in (False, True):
                    kind = "keep-alive" if keep_alive else "fresh"
                    clients.append(Client(f"{provider}/{kind}", vip, lport, backends[0].name.encode(), keep_alive))
            for c in clients:
                c.start()
            time.sleep(1)
            counters = {lb[4]: _total_connections(first, lb[4]) for lb in lbs}

            # A load balancer with an HTTP health monitor over two members of its own, to show the
            # agent enforces health while no controller is there. The second member goes bad by
            # answering 503 (still accepting connections, so only a health check takes it out:
            # without one its 503s would reach the clients).
            hc = [*servers.enter_context(start_backends("hc-up")),
                  servers.enter_context(_breakable_backend("hc-down"))]
            subnet_id = first.api("GET", "/v2.0/subnets?name=host-subnet").json()["subnets"][0]["id"]
            hc_lb = _create(first, "/v2/lbaas/loadbalancers", "loadbalancer", {
                "name": "agent-hc", "vip_subnet_id": subnet_id, "provider": "native",
                "listeners": [{
                    "name": "agent-hc-l", "protocol": "HTTP", "protocol_port": 8090,
                    "default_pool": {
                        "name": "agent-hc-p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                        "members": [{"address": b.host, "protocol_port": b.port} for b in hc],
                        "healthmonitor": {"type": "HTTP", "delay": 1, "timeout": 1, "max_retries": 1,
                                          "url_path": "/", "expected_codes": "200"},
                    },
                }],
            })
            hc_vip = wait_lb_active(first, hc_lb["id"])["vip_address"]

            def hc_answers() -> list[str]:
                out = []
                for _ in range(10):
                    try:
                        c = http.client.HTTPConnection(hc_vip, 8090, timeout=2)
                        c.request("GET", "/")
                        out.append(c.getresponse().read().decode())
                        c.close()
                    except OSError as e:
                        out.append(f"error: {e}")
                return out

            poll(lambda: set(hc_answers()) == {"hc-up", "hc-down"}, 20, "both health-checked members to serve")

            # The controller stopped and started again: the agent serves on.
            current = first
            for n in range(RESTARTS):
                before = sum(c.ok for c in clients)
                assert stop_server(current) == 0
                if n == 0:
                    # Away for a minute: traffic goes on, and a member that dies meanwhile is
                    # taken out by the agent's own health checks.
                    away = time.monotonic()
                    hc[1].broken.set()
                    poll(lambda: set(hc_answers()) == {"hc-up"}, 15,
                         "the agent to take the dead member out with no controller")
                    print(f"\ncontroller away: the dead member was out after {time.monotonic() - away:.1f} s")
                    time.sleep(max(0.0, CONTROLLER_AWAY_S - (time.monotonic() - away)))
                else:
                    time.sleep(0.5)
                current = servers.enter_context(start_statera(data_dir=root, port=port, extra_args=serve_args))
                for provider, lb_id, _, _, listener_id in lbs:
                    wait_lb_active(current, lb_id)
                    now = _total_connections(current, listener_id)
                    assert now >= counters[listener_id], f"restart {n + 1}: {provider} counters {counters[listener_id]} -> {now}"
                    counters[listener_id] = now
                assert sum(c.ok for c in clients) > before, f"restart {n + 1}: no request answered"
            assert set(hc_answers()) == {"hc-up"}
            # The controller, back, shows what the agent found.
            pool_id = hc_lb["listeners"][0]["default_pool_id"]

            def hc_down_status() -> str:
                members = current.api("GET", f"/v2/lbaas/pools/{pool_id}/members").json()["members"]
                return next(m["operating_status"] for m in members if m["protocol_port"] == hc[1].port)

            poll(lambda: hc_down_status() == "ERROR", 20, "the bad member's operating_status ERROR")
            restart_summary = ", ".join(f"{c.name}: {c.ok} ok, {c.resent} resent, {len(c.failures)} failed" for c in clients)

            # The agent upgraded by handover.
            for n in range(AGENT_UPGRADES):
                before = sum(c.ok for c in clients)
                new = Agent("agent-1", controller, agent_dir)
                agents.append(new)
                try:
                    code = agent.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"upgrade {n + 1}: the old agent did not exit\n{agent.text()[-3000:]}")
                assert code == 0, f"upgrade {n + 1}: the old agent exited with {code}\n{agent.text()[-3000:]}"
                agent = new
                _wait_log("agent: session with the controller", agent.text)
                deadline = time.monotonic() + 10
                while sum(c.ok for c in clients) <= before and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert sum(c.ok for c in clients) > before, f"agent upgrade {n + 1}: no request answered"
                for provider, _, _, _, listener_id in lbs:
                    now = _total_connections(current, listener_id)
                    assert now >= counters[listener_id], f"agent upgrade {n + 1}: {provider} counters {counters[listener_id]} -> {now}"
                    counters[listener_id] = now
            # Still driven: a change reaches the agent.
            r = current.api("PUT", f"/v2/lbaas/loadbalancers/{lbs[0][1]}", {"loadbalancer": {"description": "after"}})
            assert r.status == 200, r.body[:300]
            wait_lb_active(current, lbs[0][1])

            for c in clients:
                c.stop.set()
            for c in clients:
                c.join(timeout=30)
            summary = ", ".join(f"{c.name}: {c.ok} ok, {c.resent} resent, {len(c.failures)} failed" for c in clients)
            print(f"\nafter {RESTARTS} controller restarts: {restart_summary}\n"
                  f"after {AGENT_UPGRADES} agent upgrades too: {summary}")
            failures = [f"{c.name}: {f}" for c in clients for f in c.failures[:5]]
            assert not failures, f"requests failed ({summary}):\n" + "\n".join(failures)

            # Refusals.
            token = _token(serve_data)
            second = Agent("agent-2", controller, root / "agent-2", token, ca)
            agents.append(second)
            _wait_log("agent: session with the controller", second.text)
            reused = Agent("agent-3", controller, root / "agent-3", token, ca)
            agents.append(reused)
            assert reused.process.wait(timeout=30) != 0
            assert "enrolment refused" in reused.text(), reused.text()[-2000:]
            # A token does not let its holder become an enrolled agent.
            taken_name = Agent("agent-1", controller, root / "agent-1-again", _token(serve_data), ca)
            agents.append(taken_name)
            assert taken_name.process.wait(timeout=30) != 0
            assert "is enrolled: revoke it first" in taken_name.text(), taken_name.text()[-2000:]
            # An agent started on the controller's data directory does not take it over.
            intruder = Agent("agent-9", controller, serve_data)
            agents.append(intruder)
            assert intruder.process.wait(timeout=60) != 0
            assert current.process.poll() is None and current.api("GET", "/").status == 200
            assert "asked to take over this serve: refused" in current.log_path.read_text(errors="replace")
            out = subprocess.run([str(statera_binary()), "agents", "revoke", "agent-2", "--data-dir", str(serve_data)],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            second.stop()
            again = Agent("agent-2", controller, root / "agent-2")
            agents.append(again)
            _wait_log("session refused", again.text)
            assert "revoked or not issued here: refused" in current.log_path.read_text(errors="replace")
            # A certificate made by another CA.
            forged_dir = root / "forged" / "agent-cert"
            forged_dir.mkdir(parents=True)
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-subj", "/CN=agent-1", "-days", "2",
                            "-keyout", str(forged_dir / "key.pem"), "-out", str(forged_dir / "cert.pem")],
                           check=True, capture_output=True, timeout=30)
            shutil.copy(ca, forged_dir / "ca.pem")
            forged = Agent("agent-1", controller, root / "forged")
            agents.append(forged)
            _wait_log("agent: no session with the controller", forged.text)
            assert "agent: session with the controller" not in forged.text()
            # Nothing was placed on the refused agents: the first agent serves all.
            kept = {p.stem for p in (agent_dir / "configs").glob("*.json")}
            assert {lb[1] for lb in lbs} <= kept
            for provider, lb_id, _, _, _ in lbs:
                r = current.api("DELETE", f"/v2/lbaas/loadbalancers/{lb_id}?cascade=True")
                assert r.status == 204, r.body[:300]
            stop_server(current)
    finally:
        for c in clients:
            c.stop.set()
        for a in agents:
            a.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_killed_agents_load_balancers_serve_again_from_another(backends):
    """Two agents; SIGKILL one under load: its load balancers serve again from the other within
    --agent-timeout and a margin, on the same VIPs. The killed agent, started again, comes back
    without them. Then `PUT /loadbalancers/{id}/failover` moves one to it, and
    `PUT /amphorae/{id}/failover` moves it back."""
    root = Path(tempfile.mkdtemp(prefix="statera-e2e-agent-failover-"))
    controller = f"127.0.0.1:{free_port()}"
    timeout_s = 3
    serve_args = ["--agent-listen", controller, "--agent-timeout", str(timeout_s)]
    agents: list[Agent] = []
    try:
        with start_statera(data_dir=root, extra_args=serve_args) as server:
            serve_data = root / "data"
            ca = serve_data / "agent-pki" / "ca.pem"
            for name in ("agent-1", "agent-2"):
                a = Agent(name, controller, root / name, _token(serve_data), ca)
                agents.append(a)
                _wait_log("agent: session with the controller", a.text)
            lbs = [_lb(server, f"fo-{i}", "native", 8080, backends[0]) for i in range(4)]
            on = {name: {p.stem for p in (root / name / "configs").glob("*.json")} for name in ("agent-1", "agent-2")}
            assert all(on.values()), f"placement should spread over both agents: {on}"
            moved = [(lb_id, vip) for lb_id, vip, _ in lbs if lb_id in on["agent-2"]]

            def answers(vip: str, backend=backends[0]) -> bool:
                try:
                    c = http.client.HTTPConnection(vip, 8080, timeout=1)
                    c.request("GET", "/")
                    ok = c.getresponse().read() == backend.name.encode()
                    c.close()
                    return ok
                except OSError:
                    return False

            assert all(answers(vip) for _, vip in moved)

            def compute_id(lb_id: str) -> str | None:
                r = server.api("GET", f"/v2/octavia/amphorae?loadbalancer_id={lb_id}")
                assert r.status == 200, r.body[:300]
                amphorae = r.json()["amphorae"]
                return amphorae[0]["compute_id"] if amphorae else None

            for lb_id, _ in moved:
                poll(lambda: compute_id(lb_id) == "agent-2", 10, "the amphora API to name agent-2")
            # The amphora shows the agent's host address (where it connects
            # from) and its version, as Octavia's shows the amphora's
            # management address and image.
            amphora = server.api("GET", f"/v2/octavia/amphorae?loadbalancer_id={moved[0][0]}").json()["amphorae"][0]
            assert amphora["lb_network_ip"] == "127.0.0.1", amphora
            assert amphora["ha_ip"] == moved[0][1], amphora
            assert amphora["image_id"] == _statera_version(), amphora
            killed_at = time.monotonic()
            agents[1].process.kill()
            agents[1].process.wait(timeout=10)
            back = {}
            deadline = killed_at + timeout_s + 10
            while len(back) < len(moved) and time.monotonic() < deadline:
                for lb_id, vip in moved:
                    if lb_id not in back and answers(vip):
                        back[lb_id] = time.monotonic() - killed_at
                time.sleep(0.05)
            print(f"\nagent killed: {len(back)}/{len(moved)} load balancers served again by the other agent "
                  f"after {', '.join(f'{t:.2f} s' for t in sorted(back.values()))} (--agent-timeout {timeout_s} s)")
            assert len(back) == len(moved), f"not served again within {timeout_s + 10} s: {back}"
            for lb_id, vip in moved:
                assert wait_lb_active(server, lb_id)["vip_address"] == vip
                # The amphora API shows the move.
                poll(lambda: compute_id(lb_id) == "agent-1", 10, "the amphora API to name agent-1")
            assert {lb for lb, _ in moved} <= {p.stem for p in (root / "agent-1" / "configs").glob("*.json")}
            # The killed agent comes back without them: they stay with the other one.
            again = Agent("agent-2", controller, root / "agent-2")
            agents.append(again)
            _wait_log("agent: session with the controller", again.text)
            time.sleep(1)
            assert all(answers(vip) for _, vip in moved)

            def kept_by(name: str) -> set[str]:
                return {p.stem for p in (root / name / "configs").glob("*.json")}

            # Nor does it keep them (it would restore them at its next start).
            poll(lambda: not kept_by("agent-2") & {lb for lb, _ in moved}, 10,
                 "the returning agent to drop the configurations of what moved")
            text = server.log_path.read_text(errors="replace")
            assert "failed over to another agent" in text

            # A failover asked through the API moves a load balancer to the other agent, and an
            # amphora failover moves it back; its VIP serves after each.
            lb_id, vip = moved[0]
            for n, (path, to, off) in enumerate([
                (f"/v2/lbaas/loadbalancers/{lb_id}/failover", "agent-2", "agent-1"),
                (None, "agent-1", "agent-2"),
            ]):
                if path is None:
                    r = server.api("GET", f"/v2/octavia/amphorae?loadbalancer_id={lb_id}")
                    path = f"/v2/octavia/amphorae/{r.json()['amphorae'][0]['id']}/failover"
                r = server.api("PUT", path)
                assert r.status == 202, r.body[:300]
                assert wait_lb_active(server, lb_id)["vip_address"] == vip
                poll(lambda: compute_id(lb_id) == to, 10, f"the amphora API to name {to} after failover {n + 1}")
                assert lb_id in kept_by(to) and lb_id not in kept_by(off), (kept_by("agent-1"), kept_by("agent-2"))
                poll(lambda: answers(vip), 10, f"the VIP to answer after failover {n + 1}")
            assert "failed over to another agent, as asked" in server.log_path.read_text(errors="replace")

            # An availability zone whose profile names agent-2: its load balancers are placed on
            # agent-2 only, and a failover with no other agent of the zone stays there.
            r = server.api("POST", "/v2/lbaas/availabilityzoneprofiles", {"availability_zone_profile": {
                "name": "only-agent-2", "provider_name": "native",
                "availability_zone_data": json.dumps({"agents": ["agent-2"]})}})
            assert r.status == 201, r.body[:300]
            profile_id = r.json()["availability_zone_profile"]["id"]
            r = server.api("POST", "/v2/lbaas/availabilityzones", {"availability_zone": {
                "name": "zone-2", "availability_zone_profile_id": profile_id}})
            assert r.status == 201, r.body[:300]
            # Spreading by load alone would pick agent-1 on a tie (names break ties): make agent-2
            # serve at least as many first, by failing load balancers over to it.
            def served_by(name: str) -> list[str]:
                r = server.api("GET", "/v2/octavia/amphorae")
                return [a["loadbalancer_id"] for a in r.json()["amphorae"] if a["compute_id"] == name]

            while len(served_by("agent-2")) < len(served_by("agent-1")):
                lb_to_move = served_by("agent-1")[0]
                assert server.api("PUT", f"/v2/lbaas/loadbalancers/{lb_to_move}/failover").status == 202
                wait_lb_active(server, lb_to_move)
                poll(lambda: lb_to_move in served_by("agent-2"), 10, "the failed-over load balancer on agent-2")
            zoned = [_lb(server, f"zoned-{i}", "native", 8080, backends[0], availability_zone="zone-2")
                     for i in range(2)]
            for lb_id, vip, _ in zoned:
                assert lb_id in kept_by("agent-2") and lb_id not in kept_by("agent-1")
                assert answers(vip)
            r = server.api("PUT", f"/v2/lbaas/loadbalancers/{zoned[0][0]}/failover")
            assert r.status == 202, r.body[:300]
            wait_lb_active(server, zoned[0][0])
            assert zoned[0][0] in kept_by("agent-2") and zoned[0][0] not in kept_by("agent-1")
            assert answers(zoned[0][1])
            # The zone's only agent dies: its load balancers have nowhere to go. They are reported
            # as served nowhere (operating status ERROR, listeners ERROR) instead of the last ONLINE
            # report standing, and are ONLINE again when the agent comes back.
            again.process.kill()
            again.process.wait(timeout=10)

            def operating(lb_id: str) -> tuple[str, set[str]]:
                lb = server.api("GET", f"/v2/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]
                listeners = {server.api("GET", f"/v2/lbaas/listeners/{ref['id']}").json()["listener"]
                             ["operating_status"] for ref in lb["listeners"]}
                return lb["operating_status"], listeners

            for lb_id, _, _ in zoned:
                poll(lambda: operating(lb_id) == ("ERROR", {"ERROR"}), timeout_s + 10,
                     "a load balancer served nowhere to read ERROR")
            assert "served nowhere" in server.log_path.read_text(errors="replace")
            back = Agent("agent-2", controller, root / "agent-2")
            agents.append(back)
            back.wait_session()
            for lb_id, vip, _ in zoned:
                poll(lambda: operating(lb_id) == ("ONLINE", {"ONLINE"}), 15,
                     "the zone's load balancers ONLINE again with their agent")
                assert answers(vip)
            # A change to a load balancer whose agent has just died is applied on another agent
            # once the agent is gone past --agent-timeout (not held for the 20 s an agent is
            # waited for, then ERROR, with the failover serving the old configuration).
            lb_id, vip = moved[0]
            assert compute_id(lb_id) == "agent-1"
            pool_id = server.api("GET", f"/v2/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]["pools"][0]["id"]
            old_member = server.api("GET", f"/v2/lbaas/pools/{pool_id}/members").json()["members"][0]["id"]
            agents[0].process.kill()
            agents[0].process.wait(timeout=10)
            changed_at = time.monotonic()
            r = server.api("POST", f"/v2/lbaas/pools/{pool_id}/members", {"member": {
                "address": backends[1].host, "protocol_port": backends[1].port}})
            assert r.status == 201, r.body[:300]
            wait_lb_active(server, lb_id)
            took = time.monotonic() - changed_at
            assert compute_id(lb_id) == "agent-2"
            assert server.api("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{old_member}").status == 204
            wait_lb_active(server, lb_id)

            poll(lambda: answers(vip, backends[1]), 10, "the changed load balancer to answer from its new member on agent-2")
            print(f"\nchange to a load balancer of a killed agent: ACTIVE on the other agent after {took:.2f} s")
            assert took < timeout_s + 10, took
            # A zone's agents must be a non-empty list of names.
            r = server.api("POST", "/v2/lbaas/availabilityzoneprofiles", {"availability_zone_profile": {
                "name": "bad", "provider_name": "native", "availability_zone_data": json.dumps({"agents": []})}})
            assert r.status == 501, r.body[:300]
    finally:
        for a in agents:
            a.stop()
        shutil.rmtree(root, ignore_errors=True)
