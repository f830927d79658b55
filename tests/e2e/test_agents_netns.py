"""Agents with the netns network driver: the multi-host picture on one machine.

The controller (`statera serve --network-driver netns --agent-listen`) keeps the switch: one
bridge per tenant network in `<prefix>switch`, and the routers. Each agent is a "host": a network
namespace of its own that the agent process runs in (`nsenter --net`; it reaches the controller
over the controller's Unix socket, `unix:<data-dir>/agents.sock`, which no network namespace
hides), holding a bridge per network, each trunked to the controller's bridge of that network by
a veth pair; its load balancers' namespaces are under a prefix of its own. A load balancer's namespace (its VIP
leg, routes and ingress filter, computed by the controller and carried in its configuration) is
built on the host of the agent serving it.

- A load balancer placed on an agent is plumbed on that agent's host only, and a "VM" client on
  the tenant network reaches its member (another "VM") through it.
- Its agent is upgraded (socket handover) under a bounded client loop: no request fails, and
  the namespace is taken as it is.
- Under a bounded client loop, its agent is SIGKILLed: within the timeout and a margin it is
  served again from the other host on the same VIP; the dead host's trunks are taken down
  (fenced: its leftover namespace still holds the VIP's MAC and address). The killed agent,
  started again, has its stale namespace removed and its trunks up again.
- The controller restarted while the agent now serving it is dead: when the new controller's
  grace for absent agents ends, that agent's host is fenced and the load balancer is served from
  the other host.

Needs root (CI runs as root); everything is removed by name or pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import Agent, agent_token, free_port, poll, start_statera, stop_server, wait_lb_active
from netns_support import namespaces, require_root, run, short

E2E_STORES = ("sqlite",)
SUBNET = "10.43.0.0/24"
GATEWAY = "10.43.0.1"
VIP = "10.43.0.10"
CLIENT = "10.43.0.50"
MEMBER = "10.43.0.60"
TIMEOUT_S = 3
UPGRADES = 3


@pytest.fixture(scope="module", autouse=True)
def _root():
    require_root()


def links(ns: str) -> dict[str, tuple[str, str]]:
    """Interface → (state, alias) in `ns`."""
    if ns not in namespaces(ns):
        return {}
    out = run("ip", "-n", ns, "-o", "link", "show").stdout
    result = {}
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        words = line.split()
        state = words[words.index("state") + 1] if "state" in words else "?"
        alias = line.split(" alias ", 1)[1].strip() if " alias " in line else ""
        result[name] = (state, alias)
    return result


def trunks_of(switch: str, host: str) -> dict[str, str]:
    """The switch's ends of `host`'s trunks → their state."""
    return {n: st for n, (st, alias) in links(switch).items() if alias == f"statera-trunk:{host}"}


def ok(server, method, path, body=None):
    r = server.api(method, path, body)
    assert r.status < 300, f"{method} {path} -> {r.status}: {r.body[:400]!r}"
    return r.json() if r.body else None


def plug_vm(server, switch: str, ns: str, net: dict, subnet: dict, address: str) -> None:
    """A "VM": a Neutron port with `address`, its namespace on the switch's bridge."""
    port = ok(server, "POST", "/v2.0/ports", {"port": {
        "network_id": net["id"], "name": ns,
        "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": address}]}})["port"]
    tap = f"tap{short(port['id'])}"
    run("ip", "netns", "add", ns)
    run("ip", "-n", switch, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", ns)
    run("ip", "-n", switch, "link", "set", tap, "master", f"brq{short(net['id'])}", "up")
    run("ip", "-n", ns, "link", "set", "lo", "up")
    run("ip", "-n", ns, "link", "set", "eth0", "address", port["mac_address"])
    run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
    run("ip", "-n", ns, "link", "set", "eth0", "up")


def get(client_ns: str) -> str:
    """One fresh-connection GET of the VIP from the client "VM": the body, or "" on failure."""
    p = run("ip", "netns", "exec", client_ns, "curl", "-s", "-m", "2", f"http://{VIP}/", check=False)
    return p.stdout.strip() if p.returncode == 0 else ""


def test_load_balancers_live_on_their_agents_hosts_and_move_with_a_killed_agent(tmp_path):
    if not shutil.which("curl"):
        pytest.fail("curl is needed in the client namespace (the test command installs it)")
    prefix = f"sta{os.getpid() % 100000}-"
    switch = f"{prefix}switch"
    hosts = {"host-1": f"{prefix}h1-", "host-2": f"{prefix}h2-"}
    client_ns, member_ns = f"{prefix}vm-client", f"{prefix}vm-member"
    root = Path(tempfile.mkdtemp(prefix="statera-e2e-agents-netns-"))
    controller = f"127.0.0.1:{free_port()}"
    serve_args = ["--network-driver", "netns", "--namespace-prefix", prefix,
                  "--agent-listen", controller, "--agent-timeout", str(TIMEOUT_S)]
    agents: dict[str, Agent] = {}
    member = None

    def start_agent(name: str, token: str | None = None) -> Agent:
        # In its host's namespace (its switch: the host's bridges live there, as in a
        # hypervisor's root namespace), reaching the controller over its Unix socket.
        host_ns = f"{hosts[name]}switch"
        if host_ns not in namespaces(host_ns):
            run("ip", "netns", "add", host_ns)
        a = Agent(name, f"unix:{root / 'data' / 'agents.sock'}", root / name, token,
                  root / "data" / "agent-pki" / "ca.pem" if token else None,
                  extra_args=["--network-driver", "netns", "--namespace-prefix", hosts[name],
                              "--uplink-namespace", switch],
                  # nsenter, not `ip netns exec`: that one also gives the process a mount
                  # namespace of its own, where the namespaces the agent names would stay.
                  wrapper=["nsenter", f"--net=/run/netns/{host_ns}"])
        # nsenter enters the namespace and execs: the agent process itself lives there.
        poll(lambda: os.stat(f"/proc/{a.process.pid}/ns/net").st_ino == os.stat(f"/run/netns/{host_ns}").st_ino,
             5, f"{name}'s agent in its host's namespace")
        agents[name] = a
        return a

    try:
        with start_statera(data_dir=root, extra_args=serve_args) as server:
            net = ok(server, "POST", "/v2.0/networks", {"network": {"name": "tenant"}})["network"]
            subnet = ok(server, "POST", "/v2.0/subnets", {"subnet": {
                "network_id": net["id"], "cidr": SUBNET, "ip_version": 4, "gateway_ip": GATEWAY}})["subnet"]
            bridge = f"brq{short(net['id'])}"
            poll(lambda: bridge in links(switch), 10, "the network's bridge in the switch")
            plug_vm(server, switch, client_ns, net, subnet, CLIENT)
            plug_vm(server, switch, member_ns, net, subnet, MEMBER)
            member = subprocess.Popen(
                ["ip", "netns", "exec", member_ns, "python3", "-c",
                 "import http.server as h\n"
                 "class H(h.BaseHTTPRequestHandler):\n"
                 "    def do_GET(self):\n"
                 "        self.send_response(200); self.send_header('Content-Length', '6'); self.end_headers()\n"
                 "        self.wfile.write(b'member')\n"
                 "    def log_message(self, *a): pass\n"
                 f"h.ThreadingHTTPServer(('{MEMBER}', 8080), H).serve_forever()\n"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            for name in hosts:
                start_agent(name, agent_token(root / "data")).wait_session()

            lb = ok(server, "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {
                "name": "hosted", "vip_subnet_id": subnet["id"], "vip_address": VIP, "provider": "native",
                "listeners": [{"name": "web", "protocol": "HTTP", "protocol_port": 80, "default_pool": {
                    "name": "pool", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                    "members": [{"address": MEMBER, "protocol_port": 8080, "subnet_id": subnet["id"]}]}}]}})["loadbalancer"]
            wait_lb_active(server, lb["id"])

            def placed_on() -> str | None:
                r = server.api("GET", f"/v2/octavia/amphorae?loadbalancer_id={lb['id']}")
                amphorae = r.json()["amphorae"]
                return amphorae[0]["compute_id"] if amphorae else None

            first = placed_on()
            assert first in hosts, first
            other = next(h for h in hosts if h != first)
            # Its namespace is on its agent's host only: not on the other, not the controller's.
            assert f"{hosts[first]}lb-{lb['id']}" in namespaces(hosts[first])
            assert not namespaces(hosts[other]) - {f"{hosts[other]}switch"}
            assert f"{prefix}lb-{lb['id']}" not in namespaces(prefix)
            # The host's bridge holds the VIP's leg and the trunk; the switch holds its trunk's end.
            host_links = links(f"{hosts[first]}switch")
            assert f"tap{short(lb['vip_port_id'])}" in host_links and f"up{short(net['id'])}" in host_links, host_links
            assert list(trunks_of(switch, first).values()) == ["UP"], links(switch)
            poll(lambda: get(client_ns) == "member", 10, "the member through the VIP on the first host")

            # Upgrades of the serving agent (a new process takes its sockets over; the namespace
            # is found as it is, not rebuilt) under a bounded client loop: nothing fails.
            results: list[str] = []
            stop = threading.Event()

            def loop():
                for _ in range(3000):
                    if stop.is_set():
                        return
                    results.append(get(client_ns))

            clients = threading.Thread(target=loop, daemon=True)
            clients.start()
            try:
                for n in range(UPGRADES):
                    old = agents[first]
                    start_agent(first)
                    assert old.process.wait(timeout=60) == 0, f"upgrade {n + 1}: the old agent\n{old.text()[-2000:]}"
                    old.stop()
                    agents[first].wait_session()
                    time.sleep(0.5)
            finally:
                stop.set()
                clients.join(timeout=30)
            failed = [r for r in results if r != "member"]
            print(f"\n{UPGRADES} agent upgrades with netns: {len(results)} GETs, {len(failed)} failed")
            assert results and not failed, f"{len(failed)} of {len(results)} GETs failed across the upgrades"
            assert placed_on() == first

            # SIGKILL the serving agent under a bounded client loop.
            agents[first].process.send_signal(signal.SIGKILL)
            agents[first].process.wait(timeout=10)
            killed = time.monotonic()
            back_at = None
            for _ in range(600):
                if time.monotonic() - killed > TIMEOUT_S + 20:
                    break
                if get(client_ns) == "member" and placed_on() == other:
                    back_at = time.monotonic() - killed
                    break
                time.sleep(0.1)
            assert back_at is not None, f"not served from {other} within {TIMEOUT_S + 20} s"
            print(f"\nserved again from {other}'s host {back_at:.2f} s after {first}'s agent was killed "
                  f"(--agent-timeout {TIMEOUT_S})")
            assert back_at < TIMEOUT_S + 10, back_at
            assert f"{hosts[other]}lb-{lb['id']}" in namespaces(hosts[other])
            # The dead agent's host still holds the old namespace (nobody removed it), cut off.
            assert f"{hosts[first]}lb-{lb['id']}" in namespaces(hosts[first])
            poll(lambda: set(trunks_of(switch, first).values()) == {"DOWN"}, 5, f"{first}'s trunks fenced")
            assert set(trunks_of(switch, other).values()) == {"UP"}, links(switch)
            for _ in range(20):
                assert get(client_ns) == "member"

            # The killed agent comes back: its stale copy goes, its host joins again, and the
            # load balancer is served on from where it moved.
            agents[first].stop()
            start_agent(first).wait_session()
            poll(lambda: f"{hosts[first]}lb-{lb['id']}" not in namespaces(hosts[first]), 15,
                 f"the stale namespace removed from {first}'s host")
            poll(lambda: not trunks_of(switch, first) or set(trunks_of(switch, first).values()) == {"UP"}, 10,
                 f"{first}'s trunks up again (or gone with its last load balancer)")
            assert placed_on() == other
            for _ in range(20):
                assert get(client_ns) == "member"

            # The controller restarted while the serving agent is dead: the new one knows of no
            # placement. When its start's grace ends (20 s), the absent agent's host is fenced
            # and the load balancer, claimed by no agent, is placed anew.
            agents[other].process.send_signal(signal.SIGKILL)
            agents[other].process.wait(timeout=10)
            port = server.port
            assert stop_server(server) == 0
        with start_statera(data_dir=root, port=port, extra_args=serve_args) as server:
            restarted = time.monotonic()
            poll(lambda: set(trunks_of(switch, other).values()) == {"DOWN"}, 40,
                 f"{other}'s host fenced after the controller's restart")
            poll(lambda: placed_on() == first and get(client_ns) == "member", 40,
                 f"the load balancer served from {first}'s host after the controller's restart")
            print(f"controller restarted with {other}'s agent dead: served from {first}'s host "
                  f"{time.monotonic() - restarted:.1f} s after its start")
            assert f"{hosts[first]}lb-{lb['id']}" in namespaces(hosts[first])

            # Deleted: removed from its host; nothing of it left there.
            r = server.api("DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true")
            assert r.status == 204, r.body
            poll(lambda: not namespaces(hosts[first]) - {f"{hosts[first]}switch"}, 15,
                 f"the namespace removed from {first}'s host")
            assert not trunks_of(switch, first), links(switch)
    finally:
        if member is not None:
            member.kill()
            member.wait(timeout=10)
        for a in agents.values():
            with contextlib.suppress(Exception):
                a.stop()
        for ns in sorted(namespaces(prefix), key=lambda n: n.endswith("switch")):
            run("ip", "netns", "delete", ns, check=False)
        shutil.rmtree(root, ignore_errors=True)
