"""The netns driver's lifecycle: the kernel follows the store, refused requests leave nothing in
the kernel, and a restart after a crash rebuilds what is missing and removes what is orphaned.
Needs root (CI runs as root); everything the test creates is removed by name or pid."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from conftest import free_port, poll, start_statera, wait_lb_active
from netns_support import namespaces, require_root, run, short

@pytest.fixture(scope="module", autouse=True)
def _root():
    require_root()

VIP = "10.40.0.10"
CLIENT = "10.40.0.50"


def switch_links(prefix: str) -> set[str]:
    if f"{prefix}switch" not in namespaces(prefix):
        return set()
    out = run("ip", "-n", f"{prefix}switch", "-o", "link", "show").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()} - {"lo"}


def kernel(prefix: str):
    return namespaces(prefix), switch_links(prefix)


def ok(server, method, path, body=None, status=None):
    r = server.api(method, path, body)
    if status is not None:
        assert r.status == status, f"{method} {path} -> {r.status} (wanted {status}): {r.body[:400]!r}"
    else:
        assert r.status < 300, f"{method} {path} -> {r.status}: {r.body[:400]!r}"
    return r.json() if r.body else None


def vip_answers(client_ns: str) -> bool:
    p = run("ip", "netns", "exec", client_ns, "curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", f"http://{VIP}/", check=False)
    # No pool behind the listener: the load balancer itself answers 503.
    return p.stdout.strip() == "503"


def test_kernel_follows_store_refusals_leave_nothing_restart_reconciles():
    prefix = f"stl{os.getpid() % 100000}-"
    client_ns = f"{prefix}h-client"
    orphan_ns = f"{prefix}lb-{uuid.uuid4()}"
    data_dir = Path(tempfile.mkdtemp(prefix="statera-netns-life-"))
    port = free_port()
    args = ["--network-driver", "netns", "--namespace-prefix", prefix]
    try:
        with start_statera(data_dir=data_dir, port=port, extra_args=args) as server:
            net = ok(server, "POST", "/v2.0/networks", {"network": {"name": "life"}})["network"]
            subnet = ok(server, "POST", "/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.40.0.0/24", "ip_version": 4, "gateway_ip": "10.40.0.1", "name": "life-subnet"}})["subnet"]
            bridge = f"brq{short(net['id'])}"
            poll(lambda: bridge in switch_links(prefix), 10, "the network's bridge")

            # A "VM" port and its namespace on the bridge.
            cport = ok(server, "POST", "/v2.0/ports", {"port": {"network_id": net["id"], "name": "client", "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": CLIENT}]}})["port"]
            tap = f"tap{short(cport['id'])}"
            run("ip", "netns", "add", client_ns)
            run("ip", "-n", f"{prefix}switch", "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", client_ns)
            run("ip", "-n", f"{prefix}switch", "link", "set", tap, "master", bridge, "up")
            run("ip", "-n", client_ns, "link", "set", "eth0", "address", cport["mac_address"])
            run("ip", "-n", client_ns, "addr", "add", f"{CLIENT}/24", "dev", "eth0")
            run("ip", "-n", client_ns, "link", "set", "eth0", "up")

            lb = ok(server, "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "life", "vip_subnet_id": subnet["id"], "vip_address": VIP, "listeners": [{"name": "l", "protocol": "HTTP", "protocol_port": 80}]}})["loadbalancer"]
            wait_lb_active(server, lb["id"])
            lb_ns = f"{prefix}lb-{lb['id']}"
            poll(lambda: vip_answers(client_ns), 10, "the VIP to answer from the client namespace")
            before = kernel(prefix)
            assert lb_ns in before[0] and f"tap{short(lb['vip_port_id'])}" in before[1], before

            # Refused requests: a clear 4xx and nothing new in the kernel.
            ok(server, "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": subnet["id"], "vip_address": "10.99.0.5"}}, status=400)
            ok(server, "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": subnet["id"], "vip_address": CLIENT}}, status=409)
            ok(server, "POST", "/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.40.0.128/25", "ip_version": 4}}, status=400)
            ext = ok(server, "POST", "/v2.0/networks", {"network": {"name": "ext", "router:external": True}})["network"]
            ok(server, "POST", "/v2.0/subnets", {"subnet": {"network_id": ext["id"], "cidr": "172.31.9.0/24", "ip_version": 4, "gateway_ip": None}})
            ok(server, "POST", "/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"], "port_id": lb["vip_port_id"]}}, status=404)
            r = server.api("GET", "/v2.0/floatingips")
            assert r.json()["floatingips"] == [], r.body
            ok(server, "DELETE", f"/v2.0/networks/{ext['id']}")
            poll(lambda: kernel(prefix) == before, 10, "the kernel to be as before the refused requests")

            # A crash; meanwhile the kernel loses the LB's namespace and gains orphans.
            server.process.kill()
            server.process.wait(timeout=10)
        run("ip", "netns", "delete", lb_ns)
        run("ip", "netns", "add", orphan_ns)
        run("ip", "-n", f"{prefix}switch", "link", "add", "brq00000000000", "type", "bridge")
        run("ip", "-n", f"{prefix}switch", "link", "set", "brq00000000000", "alias", "statera")

        with start_statera(data_dir=data_dir, port=port, extra_args=args) as server:
            poll(lambda: vip_answers(client_ns), 20, "the VIP to answer again after the restart")
            poll(lambda: orphan_ns not in namespaces(prefix), 10, "the orphaned namespace to go")
            assert "brq00000000000" not in switch_links(prefix)
            assert kernel(prefix) == before, (kernel(prefix), before)

            # Cascade delete, then the network: nothing of Statera's is left.
            ok(server, "DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true")
            poll(lambda: lb_ns not in namespaces(prefix), 15, "the LB namespace to go")
            run("ip", "netns", "delete", client_ns)
            ok(server, "DELETE", f"/v2.0/ports/{cport['id']}")
            ok(server, "DELETE", f"/v2.0/subnets/{subnet['id']}")
            ok(server, "DELETE", f"/v2.0/networks/{net['id']}")
            poll(lambda: not namespaces(prefix), 15, "every namespace under the prefix to go")
    finally:
        for ns in namespaces(prefix):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        subprocess.run(["rm", "-rf", str(data_dir)])
