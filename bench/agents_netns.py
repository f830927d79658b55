#!/usr/bin/env python3
"""Agents with the netns network driver (issue 14): what a load balancer's namespace on its
agent's host costs, and how long a killed agent's load balancers take to serve again from
another host when each needs its namespace built there.

Python 3 standard library only, as root: `sudo python3 bench/agents_netns.py --binary
target/release/statera`. The reference for the same counts with VIPs on loopback (no namespaces)
is `bench/agents.py --agents 2 --lbs 200`.

Every step is bounded in count and time; all traffic stays inside namespaces this script makes:

* one controller (`statera serve --network-driver netns --agent-listen`, noauth, a temporary data
  dir, the namespace prefix --prefix) and --agents agents, each in a "host" namespace of its own
  (`nsenter --net`), reaching the controller over its Unix socket;
* a tenant network and subnet (10.44.0.0/20) and a client "VM" namespace on its bridge;
* --lbs load balancers (one HTTP listener, no pool: the load balancer itself answers 503),
  --clients at a time: the time until all are ACTIVE (each one's namespace, leg, routes and
  nftables ruleset built on its agent's host before it binds);
* the agent serving the most SIGKILLed: from the client namespace, every one of its VIPs probed
  round-robin until it answers again (from the other host, where its namespace is built anew);
  first and last.

Every process is stopped by its pid, every namespace under the prefix deleted, the temporary dir
removed. Results are printed as a markdown table (and written to --output if given).
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from agents_common import api, free_port, report, stop_all, wait

PROBE = r"""
import socket, sys, time, json
vips = sys.stdin.read().split()
start, first, left = time.monotonic(), None, list(vips)
while left and time.monotonic() - start < float(sys.argv[1]):
    still = []
    for vip in left:
        try:
            with socket.create_connection((vip, 80), timeout=0.2) as s:
                s.settimeout(0.5)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                ok = s.recv(12).startswith(b"HTTP/1.")
        except OSError:
            ok = False
        if ok:
            first = first or time.monotonic() - start
        else:
            still.append(vip)
    left = still
print(json.dumps({"first": first, "all": time.monotonic() - start, "left": len(left)}))
"""


def ok(port: int, method: str, path: str, body=None):
    status, doc = api(port, method, path, body)
    if status >= 300:
        raise SystemExit(f"{method} {path}: {status} {doc}")
    return doc


def run(*cmd: str) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise SystemExit(f"$ {' '.join(cmd)}: {p.stderr}")
    return p.stdout


def namespaces(prefix: str) -> list[str]:
    return [n for n in os.listdir("/run/netns") if n.startswith(prefix)] if os.path.isdir("/run/netns") else []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default="target/release/statera")
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--lbs", type=int, default=200)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--agent-timeout", type=float, default=5)
    p.add_argument("--prefix", default=f"sbn{os.getpid() % 10000}-")
    p.add_argument("--output")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    if not 1 <= a.lbs <= 4000:
        raise SystemExit("--lbs: 1-4000 (the subnet is a /20)")
    binary = os.path.abspath(a.binary)
    root = tempfile.mkdtemp(prefix="statera-bench-agents-netns-")
    prefix, procs, rows = a.prefix, [], []
    switch, client = f"{prefix}switch", f"{prefix}vm-client"
    try:
        api_port = free_port()
        data = os.path.join(root, "controller")
        env = {**os.environ, "RUST_LOG": "warn", "NO_COLOR": "1"}
        settings = os.path.join(root, "statera-bench.toml")
        with open(settings, "w") as f:
            f.write("[neutron.quotas]\nport = -1\n")
        server = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{api_port}", "--data-dir", data,
             "--auth", "noauth", "--noauth-default-roles", "admin,member,reader", "--config", settings,
             "--network-driver", "netns", "--namespace-prefix", prefix,
             "--agent-listen", f"127.0.0.1:{free_port()}", "--agent-timeout", str(a.agent_timeout)],
            stdout=open(os.path.join(root, "controller.log"), "ab"), stderr=subprocess.STDOUT, env=env)
        procs.append(server)
        wait(lambda: os.path.exists(os.path.join(data, "agents.sock")), 30, "the controller")
        wait(lambda: server.poll() is None and api(api_port, "GET", "/")[0] == 200, 30, "the API")
        net = ok(api_port, "POST", "/v2.0/networks", {"network": {"name": "bench"}})["network"]
        subnet = ok(api_port, "POST", "/v2.0/subnets", {"subnet": {
            "network_id": net["id"], "cidr": "10.44.0.0/20", "ip_version": 4, "gateway_ip": "10.44.0.1"}})["subnet"]
        bridge = "brq" + net["id"].replace("-", "")[:11]
        wait(lambda: bridge in run("ip", "-n", switch, "-o", "link", "show") if switch in namespaces(prefix) else False,
             10, "the network's bridge")
        port = ok(api_port, "POST", "/v2.0/ports", {"port": {
            "network_id": net["id"], "name": "client", "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": "10.44.15.250"}]}})["port"]
        tap = "tap" + port["id"].replace("-", "")[:11]
        run("ip", "netns", "add", client)
        run("ip", "-n", switch, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", client)
        run("ip", "-n", switch, "link", "set", tap, "master", bridge, "up")
        for cmd in (["link", "set", "lo", "up"], ["link", "set", "eth0", "address", port["mac_address"]],
                    ["addr", "add", "10.44.15.250/20", "dev", "eth0"], ["link", "set", "eth0", "up"]):
            run("ip", "-n", client, *cmd)

        agents = []
        for i in range(a.agents):
            host = f"{prefix}h{i + 1}-"
            run("ip", "netns", "add", f"{host}switch")
            token = run(binary, "agents", "token", "--data-dir", data).strip()
            log = os.path.join(root, f"agent-{i + 1}.log")
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{host}switch", binary, "agent",
                 "--controller", f"unix:{data}/agents.sock", "--data-dir", os.path.join(root, f"agent-{i + 1}"),
                 "--name", f"agent-{i + 1}", "--enroll-token", token, "--ca-file", os.path.join(data, "agent-pki", "ca.pem"),
                 "--network-driver", "netns", "--namespace-prefix", host, "--uplink-namespace", switch],
                stdout=open(log, "ab"), stderr=subprocess.STDOUT, env={**env, "RUST_LOG": "info"})
            procs.append(proc)
            agents.append(proc)
            wait(lambda: "session with the controller" in open(log, errors="replace").read()
                 .replace("no session with the controller", ""), 30, f"agent-{i + 1}'s session")

        def create(i: int):
            body = {"loadbalancer": {"name": f"bench-{i}", "vip_subnet_id": subnet["id"], "provider": "native",
                                     "listeners": [{"name": f"l-{i}", "protocol": "HTTP", "protocol_port": 80}]}}
            doc = ok(api_port, "POST", "/v2/lbaas/loadbalancers", body)["loadbalancer"]
            return doc["id"], doc["vip_address"]

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
            lbs = list(pool.map(create, range(a.lbs)))

        def all_active() -> bool:
            _, doc = api(api_port, "GET", "/v2/lbaas/loadbalancers?fields=provisioning_status")
            states = [lb["provisioning_status"] for lb in doc["loadbalancers"]]
            if "ERROR" in states:
                raise SystemExit("a load balancer went ERROR (see the logs)")
            return states.count("ACTIVE") == a.lbs

        wait(all_active, 600, "every load balancer ACTIVE")
        active_s = time.monotonic() - started
        rows.append((f"{a.lbs} load balancers created ({a.clients} clients), each plumbed on its agent's host",
                     f"all ACTIVE after {active_s:.1f} s ({a.lbs / active_s:.0f}/s)"))
        placed = {}
        for i, proc in enumerate(agents):
            kept = os.path.join(root, f"agent-{i + 1}", "configs")
            placed[proc.pid] = {f[:-5] for f in os.listdir(kept) if f.endswith(".json")}
        rows.append(("load balancers per agent", ", ".join(str(len(placed[proc.pid])) for proc in agents)))

        victim = max(agents, key=lambda proc: len(placed[proc.pid]))
        vips = [vip for lb_id, vip in lbs if lb_id in placed[victim.pid]]
        victim.kill()
        victim.wait(timeout=10)
        probe = subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c", PROBE, "300"],
                               input=" ".join(vips), capture_output=True, text=True, timeout=330)
        result = json.loads(probe.stdout)
        rows.append((f"failover: agent with {len(vips)} load balancers SIGKILLed (--agent-timeout {a.agent_timeout:g} s), "
                     "probed from the client namespace",
                     f"first serving again after {result['first'] or 0:.1f} s, all after {result['all']:.1f} s"
                     + (f" ({result['left']} NOT back)" if result["left"] else "")))
    finally:
        stop_all(procs)
        for ns in sorted(namespaces(prefix), key=lambda n: n.endswith("switch")):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    head = (f"{datetime.date.today()}, {platform.node()}, {os.cpu_count()} CPUs, {a.agents} agents (netns hosts), "
            f"{a.lbs} load balancers, binary {os.path.basename(binary)}")
    report(head, rows, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
