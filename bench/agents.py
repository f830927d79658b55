#!/usr/bin/env python3
"""Agents benchmark (issue 14): `statera serve --agent-listen` driving several `statera agent`
processes on this machine.

Python 3 standard library only: `python3 bench/agents.py --binary target/release/statera`.

Every step is bounded in count and time, all traffic stays on 127.0.0.0/8:

* starts one controller (`statera serve --agent-listen`, noauth, a temporary data dir, host
  subnet --subnet) and --agents agents, each enrolled with its own one-time token;
* creates --lbs load balancers, fully populated (one HTTP listener, so one bound VIP socket on
  its agent, and a pool with one member: a tiny backend this script runs), --clients at a time,
  and waits for all of them ACTIVE;
* RSS per load balancer in an agent: (VmRSS now - VmRSS before any load balancer) / the load
  balancers it serves, for each agent;
* push latency: --pushes times, a changed load balancer (its description: a new configuration
  version pushed to its agent), PUT -> provisioning_status ACTIVE, one at a time: median, p99;
* the controller's and each agent's idle CPU: utime+stime over --idle seconds with nothing
  happening, as a share of one core;
* failover: the agent serving the most load balancers is SIGKILLed; the time until every one of
  its load balancers answers on its VIP again (from another agent), polled round-robin.

Every process started is stopped by its pid, the temporary dir removed. Results are printed as a
markdown table (and written to --output if given).
"""

import argparse
import concurrent.futures
import datetime
import http.client
import ipaddress
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from agents_common import api, free_port, report, stop_all, wait
import http.server


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answers(vip: str, port: int) -> bool:
    try:
        c = http.client.HTTPConnection(vip, port, timeout=1)
        c.request("GET", "/")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default="target/release/statera")
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--lbs", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--pushes", type=int, default=200)
    p.add_argument("--idle", type=float, default=10.0)
    p.add_argument("--subnet", default="127.190.0.0/16")
    p.add_argument("--create-timeout", type=float, default=1800)
    p.add_argument("--output")
    a = p.parse_args()
    binary = os.path.abspath(a.binary)
    root = tempfile.mkdtemp(prefix="statera-bench-agents-")
    procs: list[subprocess.Popen] = []
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    backend.daemon_threads = True
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    rows: list[tuple[str, str]] = []
    try:
        api_port, agent_port = free_port(), free_port()
        data = os.path.join(root, "controller")
        env = {**os.environ, "RUST_LOG": "warn", "NO_COLOR": "1"}
        log = open(os.path.join(root, "controller.log"), "ab")
        # Every VIP port counts against the project's Neutron port quota (500 by default).
        settings = os.path.join(root, "statera-bench.toml")
        with open(settings, "w") as f:
            f.write("[neutron.quotas]\nport = -1\n")
        server = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{api_port}", "--data-dir", data, "--host-subnet", a.subnet,
             "--auth", "noauth", "--noauth-default-roles", "admin,member,reader",
             "--agent-listen", f"127.0.0.1:{agent_port}", "--config", settings],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append(server)
        wait(lambda: os.path.exists(os.path.join(data, "agent-pki", "ca.pem")), 30, "the controller")
        wait(lambda: api(api_port, "GET", "/")[0] == 200 if server.poll() is None else False, 30, "the API")
        agents = []
        for i in range(a.agents):
            token = subprocess.run([binary, "agents", "token", "--data-dir", data], capture_output=True,
                                   text=True, check=True).stdout.strip()
            alog = open(os.path.join(root, f"agent-{i + 1}.log"), "ab")
            proc = subprocess.Popen(
                [binary, "agent", "--controller", f"127.0.0.1:{agent_port}", "--data-dir",
                 os.path.join(root, f"agent-{i + 1}"), "--name", f"agent-{i + 1}", "--enroll-token", token,
                 "--ca-file", os.path.join(data, "agent-pki", "ca.pem")],
                stdout=alog, stderr=subprocess.STDOUT, env={**env, "RUST_LOG": "info"})
            procs.append(proc)
            agents.append(proc)
        for i, proc in enumerate(agents):
            path = os.path.join(root, f"agent-{i + 1}.log")
            wait(lambda: "session with the controller" in open(path, errors="replace").read()
                 .replace("no session with the controller", ""), 30, f"agent-{i + 1}'s session")
        time.sleep(1)
        rss_before = {proc.pid: rss_kib(proc.pid) for proc in agents}
        _, subnets = api(api_port, "GET", "/v2.0/subnets?name=host-subnet")
        subnet_id = subnets["subnets"][0]["id"]
        member_port = backend.server_address[1]

        def create(i: int):
            body = {"loadbalancer": {
                "name": f"bench-{i}", "vip_subnet_id": subnet_id,
                "listeners": [{"name": f"l-{i}", "protocol": "HTTP", "protocol_port": 8080, "default_pool": {
                    "name": f"p-{i}", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                    "members": [{"address": "127.0.0.1", "protocol_port": member_port}]}}]}}
            for _ in range(20):
                status, doc = api(api_port, "POST", "/v2/lbaas/loadbalancers", body, timeout=120)
                if status == 201:
                    return doc["loadbalancer"]["id"], doc["loadbalancer"]["vip_address"]
                time.sleep(0.5)
            raise SystemExit(f"create {i}: {status} {doc}")

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
            lbs = list(pool.map(create, range(a.lbs)))
        created_s = time.monotonic() - started

        def all_active() -> bool:
            if time.monotonic() - started > a.create_timeout:
                raise SystemExit("load balancers not ACTIVE in time")
            marker, pending = None, 0
            while True:
                q = "/v2/lbaas/loadbalancers?limit=1000&fields=id&fields=provisioning_status"
                status, doc = api(api_port, "GET", q + (f"&marker={marker}" if marker else ""), timeout=120)
                page = doc["loadbalancers"]
                pending += sum(1 for lb in page if lb["provisioning_status"] != "ACTIVE")
                if len(page) < 1000:
                    return pending == 0
                marker = page[-1]["id"]

        wait(all_active, a.create_timeout, "every load balancer ACTIVE")
        active_s = time.monotonic() - started
        rows.append(("load balancers created (fully populated, %d clients)" % a.clients,
                     f"{a.lbs} in {created_s:.0f} s ({a.lbs / created_s:.0f}/s); all ACTIVE after {active_s:.0f} s"))
        time.sleep(2)
        placed = {}
        for i, proc in enumerate(agents):
            kept = os.path.join(root, f"agent-{i + 1}", "configs")
            placed[proc.pid] = {f[:-5] for f in os.listdir(kept) if f.endswith(".json")}
        for i, proc in enumerate(agents):
            n = len(placed[proc.pid])
            grown = rss_kib(proc.pid) - rss_before[proc.pid]
            rows.append((f"agent-{i + 1}: load balancers, RSS per load balancer",
                         f"{n}, {grown / max(n, 1):.1f} KiB ({rss_kib(proc.pid) / 1024:.0f} MiB in all)"))
        rows.append(("controller RSS", f"{rss_kib(server.pid) / 1024:.0f} MiB"))

        # Push latency: one changed load balancer at a time, PUT -> ACTIVE.
        times = []
        for k in range(a.pushes):
            lb_id = lbs[(k * 7919) % len(lbs)][0]
            t0 = time.monotonic()
            status, _ = api(api_port, "PUT", f"/v2/lbaas/loadbalancers/{lb_id}",
                            {"loadbalancer": {"description": f"push {k}"}})
            if status != 200:
                raise SystemExit(f"push {k}: {status}")
            while True:
                status, doc = api(api_port, "GET", f"/v2/lbaas/loadbalancers/{lb_id}")
                if doc["loadbalancer"]["provisioning_status"] == "ACTIVE":
                    break
                if time.monotonic() - t0 > 60:
                    raise SystemExit(f"push {k} not ACTIVE in 60 s")
                time.sleep(0.002)
            times.append((time.monotonic() - t0) * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        rows.append((f"push of a changed LbConfig, PUT -> ACTIVE ({a.pushes}, one at a time)",
                     f"median {statistics.median(times):.1f} ms, p99 {p99:.1f} ms"))

        # The controller and the agents idle (heartbeats; every 5 s each agent reads its load
        # balancers' counters and sends those that moved).
        c0, t0 = cpu_seconds(server.pid), time.monotonic()
        a0 = {proc.pid: cpu_seconds(proc.pid) for proc in agents}
        time.sleep(a.idle)
        elapsed = time.monotonic() - t0
        idle = (cpu_seconds(server.pid) - c0) / elapsed
        rows.append((f"controller CPU, idle ({a.idle:.0f} s, {a.lbs} load balancers, {a.agents} agents)",
                     f"{idle * 100:.1f} % of a core"))
        agent_idle = [(cpu_seconds(proc.pid) - a0[proc.pid]) / elapsed for proc in agents]
        rows.append((f"agent CPU, idle (each, {a.lbs // max(1, a.agents)} load balancers)",
                     f"{min(agent_idle) * 100:.1f}-{max(agent_idle) * 100:.1f} % of a core"))

        # Failover: the busiest agent killed.
        victim = max(agents, key=lambda proc: len(placed[proc.pid]))
        vips = [vip for lb_id, vip in lbs if lb_id in placed[victim.pid]]
        killed = time.monotonic()
        victim.kill()
        victim.wait(timeout=10)
        left = list(vips)
        first_back = None
        while left and time.monotonic() - killed < 300:
            still = []
            for vip in left:
                if answers(vip, 8080):
                    first_back = first_back or time.monotonic() - killed
                else:
                    still.append(vip)
            left = still
            if left:
                time.sleep(0.05)
        all_back = time.monotonic() - killed
        rows.append((f"failover: agent with {len(vips)} load balancers SIGKILLed (--agent-timeout 5 s)",
                     f"first serving again after {first_back or 0:.1f} s, all after {all_back:.1f} s"
                     + (f" ({len(left)} NOT back)" if left else "")))
    finally:
        stop_all(procs)
        backend.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    head = (f"{datetime.date.today()}, {platform.node()}, {os.cpu_count()} CPUs, "
            f"{a.agents} agents, {a.lbs} load balancers, binary {os.path.basename(binary)}")
    report(head, rows, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
