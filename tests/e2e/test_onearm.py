"""One-arm mode on real network namespaces (the `netns` network driver), built entirely through
Statera's API with the ordinary `openstack` CLI, for each provider (native, haproxy), with the
data plane in `statera serve` and with it in a `statera agent` whose "host" (a namespace prefix
of its own, its bridges trunked to the controller's switch) holds the load balancer's namespace:

  ns client 172.24.4.50 ── bridge of network "ext" (172.24.4.0/24, external)
  router r1: gateway 172.24.4.1, floating IP 172.24.4.100 → VIP, interface 10.20.0.1
  ns lb (Statera's): ONE leg 10.20.0.10 on network "tenant" (10.20.0.0/24)
  ns web1..3: 10.20.0.11-13, default route via the router (not the load balancer)

Statera creates the router, the load balancer namespace and the bridges; the test plugs its own
"hosts" (client, members) into the bridges the way a hypervisor plugs a VM's port: a veth into
the network's bridge (`brq` + the first 11 hex digits of the network id, in the namespace
`<prefix>switch`), carrying the MAC and address of a Neutron port created through the API.

Each numbered step proves the numbered check of shared/onearm/README.md. Needs root (CI runs as
root); every namespace, process and capture the test makes is removed by name or pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ACTIVE_TIMEOUT, OpenStackCli, free_port, poll, start_statera, wait_lb_active, with_agent
from netns_support import require_root, run, short

@pytest.fixture(scope="module", autouse=True)
def _root():
    require_root()

BACKEND = Path(__file__).with_name("onearm_backend.py")
CLIENT_IP = "172.24.4.50"
FIP = "172.24.4.100"
FIP_DNAT = "172.24.4.101"
VIP = "10.20.0.10"
PLAIN_DNAT_IP = "10.20.0.20"
MEMBERS = {"web1": "10.20.0.11", "web2": "10.20.0.12", "web3": "10.20.0.13"}
DELAY, TIMEOUT, RISE, FALL = 1, 1, 2, 2


class Topology:
    """What the test created outside Statera (namespaces, processes), removed by name/pid."""

    def __init__(self, prefix: str, workdir: Path, lb_prefix: str | None = None):
        self.prefix = prefix
        # Where load balancers' namespaces live: the controller's prefix, or its agent's host's.
        self.lb_prefix = lb_prefix or prefix
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def switch(self) -> str:
        return f"{self.prefix}switch"

    def lb_ns(self, lb_id: str) -> str:
        return f"{self.lb_prefix}lb-{lb_id}"

    @property
    def lb_switch(self) -> str:
        """The switch namespace load balancers' legs are plugged into."""
        return f"{self.lb_prefix}switch"

    def router_ns(self, router_id: str) -> str:
        return f"{self.prefix}router-{router_id}"

    def host(self, name: str, network_id: str, port: dict, gateway: str, prefix_len: int = 24) -> str:
        """A namespace plugged into `network_id`'s bridge with `port`'s MAC and address."""
        ns = f"{self.prefix}h-{name}"
        address = port["fixed_ips"][0]["ip_address"]
        tap = f"tap{short(port['id'])}"
        run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        run("ip", "-n", self.switch, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", ns)
        run("ip", "-n", self.switch, "link", "set", tap, "master", f"brq{short(network_id)}", "up")
        run("ip", "-n", ns, "link", "set", "eth0", "address", port["mac_address"])
        run("ip", "-n", ns, "addr", "add", f"{address}/{prefix_len}", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "route", "add", "default", "via", gateway)
        return ns

    def start_backend(self, name: str) -> None:
        ns = f"{self.prefix}h-{name}"
        log = self.workdir / f"{name}.jsonl"
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(BACKEND), name, MEMBERS[name], str(log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / f"{name}.err", "ab"),
        )
        self.processes[name] = proc

        def answers():
            p = run("ip", "netns", "exec", ns, "curl", "-s", "-m", "1", f"http://{MEMBERS[name]}/", check=False)
            return p.stdout.strip() == name

        poll(answers, 10, f"backend {name} to answer")

    def stop_backend(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def requests(self, name: str) -> list[dict]:
        log = self.workdir / f"{name}.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def client_get(self, url: str, timeout: float = 3) -> subprocess.CompletedProcess:
        return run(
            "ip", "netns", "exec", f"{self.prefix}h-client", "curl", "-s", "-m", str(timeout), url,
            check=False, timeout=timeout + 10,
        )

    def cleanup(self) -> None:
        for name in list(self.processes):
            self.stop_backend(name)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


@contextlib.contextmanager
def capture(ns: str, dev: str, path: Path):
    """tcpdump on `dev` in `ns` while the block runs (bounded: 20,000 packets)."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-n", "--immediate-mode", "-U", "-c", "20000", "-w", str(path), "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # tcpdump says "listening on …" once the capture is open.
        line = proc.stderr.readline()
        assert "listening" in line, f"tcpdump did not start: {line}"
        yield
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def count_packets(path: Path, expression: str) -> int:
    p = run("tcpdump", "-n", "-r", str(path), expression, check=False)
    return len([line for line in p.stdout.splitlines() if line.strip()])


def ns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def switch_links(topo: Topology, switch: str | None = None) -> list[str]:
    switch = switch or topo.switch
    if not ns_exists(switch):
        return []
    out = run("ip", "-n", switch, "-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[("native", "embedded"), ("haproxy", "embedded"),
                                        ("native", "agent"), ("haproxy", "agent")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def env(request):
    provider, placement = request.param
    if provider == "haproxy" and not any(
        os.access(os.path.join(d, "haproxy"), os.X_OK) for d in os.environ.get("PATH", "").split(":")
    ):
        pytest.fail("haproxy is not installed (scripts/test installs it)", pytrace=False)
    prefix = f"st{os.getpid() % 100000}{provider[0]}{placement[0]}-"
    workdir = Path(tempfile.mkdtemp(prefix=f"statera-onearm-{provider}-{placement}-"))
    args = ["--network-driver", "netns", "--namespace-prefix", prefix]
    agent_prefix = f"{prefix}a1-" if placement == "agent" else None
    topo = Topology(prefix, workdir, agent_prefix)
    controller = f"127.0.0.1:{free_port()}"
    if placement == "agent":
        args += ["--agent-listen", controller]
    with start_statera(extra_args=args) as server, contextlib.ExitStack() as agent:
        if placement == "agent":
            agent.enter_context(with_agent(server, controller, "host-a1", extra_args=[
                "--network-driver", "netns", "--namespace-prefix", agent_prefix, "--uplink-namespace", topo.switch]))
        try:
            yield {"provider": provider, "server": server, "cli": OpenStackCli(server.endpoint), "topo": topo, "state": {}}
        finally:
            topo.cleanup()
    # Statera stopped: anything of ours still in the kernel is a leak.
    left = [n for n in os.listdir("/run/netns") if n.startswith(prefix)] if os.path.isdir("/run/netns") else []
    subprocess.run(["rm", "-rf", str(workdir)])
    for ns in left:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def need(state, *keys):
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step failed, so {', '.join(missing)} is unknown", pytrace=False)
    return [state[k] for k in keys] if len(keys) > 1 else state[keys[0]]


def api(env, method, path, body=None):
    r = env["server"].api(method, path, body)
    assert r.status < 300, f"{method} {path} -> {r.status}: {r.body[:500]!r}"
    return r.json() if r.body else None


def six_names(topo: Topology, url: str) -> list[str]:
    out = []
    for _ in range(6):
        p = topo.client_get(url)
        out.append(p.stdout.strip() if p.returncode == 0 else f"<curl exit {p.returncode}>")
    return out


def assert_round_robin(names: list[str]) -> None:
    first = names[:3]
    assert sorted(first) == ["web1", "web2", "web3"], names
    assert names[3:] == first, names


# ---------------------------------------------------------------------------------------------


def test_00_topology(env):
    """Networks, subnets, router with gateway and interface, ports for the hosts, the load
    balancer with listener/pool/members/monitor, and the floating IP, all through the CLI."""
    cli, topo, st = env["cli"], env["topo"], env["state"]
    ext = cli.json("network", "create", "--external", "ext")
    cli.json("subnet", "create", "--network", "ext", "--subnet-range", "172.24.4.0/24", "--gateway", "none", "--no-dhcp", "ext-subnet")
    tenant = cli.json("network", "create", "tenant")
    cli.json("subnet", "create", "--network", "tenant", "--subnet-range", "10.20.0.0/24", "--gateway", "10.20.0.1", "tenant-subnet")
    router = cli.json("router", "create", "r1")
    cli.run("router", "set", "--external-gateway", "ext", "--fixed-ip", "subnet=ext-subnet,ip-address=172.24.4.1", "r1")
    cli.run("router", "add", "subnet", "r1", "tenant-subnet")
    st.update(ext=ext["id"], tenant=tenant["id"], router=router["id"])

    client_port = cli.json("port", "create", "--network", "ext", "--fixed-ip", f"subnet=ext-subnet,ip-address={CLIENT_IP}", "client")
    poll(lambda: ns_exists(topo.switch) and f"brq{short(ext['id'])}" in switch_links(topo), 10, "the external bridge")
    topo.host("client", ext["id"], client_port, "172.24.4.1")
    for name, address in MEMBERS.items():
        port = cli.json("port", "create", "--network", "tenant", "--fixed-ip", f"subnet=tenant-subnet,ip-address={address}", name)
        topo.host(name, tenant["id"], port, "10.20.0.1")
        topo.start_backend(name)

    provider = env["provider"]
    lb = cli.json("loadbalancer", "create", "--name", "lb1", "--vip-subnet-id", "tenant-subnet", "--vip-address", VIP, "--provider", provider, "--wait")
    st.update(lb=lb["id"], vip_port=lb["vip_port_id"])
    listener = cli.json("loadbalancer", "listener", "create", "--name", "http", "--protocol", "HTTP", "--protocol-port", "80", "--insert-headers", "X-Forwarded-For=true", "--wait", "lb1")
    st["listener"] = listener["id"]
    cli.json("loadbalancer", "pool", "create", "--name", "web", "--listener", "http", "--protocol", "HTTP", "--lb-algorithm", "ROUND_ROBIN", "--wait")
    for name, address in MEMBERS.items():
        m = cli.json("loadbalancer", "member", "create", "--name", name, "--address", address, "--protocol-port", "80", "--wait", "web")
        st[f"member_{name}"] = m["id"]
    cli.json(
        "loadbalancer", "healthmonitor", "create", "--name", "hm", "--type", "HTTP", "--url-path", "/",
        "--delay", str(DELAY), "--timeout", str(TIMEOUT), "--max-retries", str(RISE), "--max-retries-down", str(FALL), "--wait", "web",
    )
    # A TCP listener whose pool speaks PROXY to the members' port 8081.
    cli.json("loadbalancer", "listener", "create", "--name", "tcp", "--protocol", "TCP", "--protocol-port", "8080", "--wait", "lb1")
    cli.json("loadbalancer", "pool", "create", "--name", "proxy", "--listener", "tcp", "--protocol", "PROXY", "--lb-algorithm", "ROUND_ROBIN", "--wait")
    for name, address in MEMBERS.items():
        cli.json("loadbalancer", "member", "create", "--address", address, "--protocol-port", "8081", "--wait", "proxy")

    fip = cli.json("floating", "ip", "create", "--floating-ip-address", FIP, "--port", lb["vip_port_id"], "ext")
    assert fip["fixed_ip_address"] == VIP and fip["router_id"] == router["id"], fip
    st["fip"] = fip["id"]
    wait_lb_active(env["server"], lb["id"])

    def members_online():
        tree = api(env, "GET", f"/v2/lbaas/loadbalancers/{lb['id']}/status")
        pools = [p for listener in tree["statuses"]["loadbalancer"]["listeners"] for p in listener["pools"]]
        web = [m for p in pools if p["name"] == "web" for m in p["members"]]
        return len(web) == 3 and all(m["operating_status"] == "ONLINE" for m in web)

    poll(members_online, 20, "the members to be ONLINE")

    # The floating IP answers (the router's NAT is in place).
    poll(lambda: topo.client_get(f"http://{FIP}/").returncode == 0, 15, "the floating IP to answer")
    router_port = api(env, "GET", f"/v2.0/ports?device_id={router['id']}&device_owner=network:router_interface")["ports"][0]
    st["qr_dev"] = f"qr-{short(router_port['id'])}"


def test_01_round_robin_through_the_floating_ip(env):
    st, topo = env["state"], env["topo"]
    need(st, "fip")
    names = six_names(topo, f"http://{FIP}/")
    assert_round_robin(names)


def test_02_members_see_the_load_balancer_address(env):
    st, topo = env["state"], env["topo"]
    need(st, "fip")
    seen = [r for name in MEMBERS for r in topo.requests(name) if r["port"] == 80 and r["path"] == "/"]
    # The members' own readiness probes (from their own namespace) are not LB traffic.
    from_lb = [r for r in seen if r["peer"] != MEMBERS[r["name"]]]
    assert from_lb, "no request reached a member through the load balancer"
    assert {r["peer"] for r in from_lb} == {VIP}, from_lb


def test_03_client_identity_xff_and_proxy(env):
    st, topo = env["state"], env["topo"]
    need(st, "fip")
    before = {name: len(topo.requests(name)) for name in MEMBERS}
    assert topo.client_get(f"http://{FIP}/xff").stdout.strip() in MEMBERS
    new = [r for name in MEMBERS for r in topo.requests(name)[before[name]:] if r["path"] == "/xff"]
    assert [r["xff"] for r in new] == [CLIENT_IP], new

    p = topo.client_get(f"http://{FIP}:8080/proxy")
    assert p.returncode == 0 and p.stdout.strip() in MEMBERS, p
    proxied = [r for name in MEMBERS for r in topo.requests(name) if r["path"] == "/proxy"]
    assert len(proxied) == 1 and proxied[0]["port"] == 8081, proxied
    assert proxied[0]["proxy"].startswith(f"PROXY TCP4 {CLIENT_IP} "), proxied
    assert proxied[0]["peer"] == VIP


def test_04_symmetric_path_no_member_to_client_packets_at_the_router(env):
    st, topo = env["state"], env["topo"]
    router, qr_dev = need(st, "router", "qr_dev")
    pcap = topo.workdir / "router-qr.pcap"
    with capture(topo.router_ns(router), qr_dev, pcap):
        names = six_names(topo, f"http://{FIP}/")
    assert_round_robin(names)
    members = " or ".join(f"src host {a}" for a in MEMBERS.values())
    assert count_packets(pcap, f"({members}) and dst host {CLIENT_IP}") == 0
    # The capture did see the traffic: the load balancer's replies to the client.
    assert count_packets(pcap, f"src host {VIP} and dst host {CLIENT_IP}") > 0


def test_05_one_leg_only(env):
    st, topo = env["state"], env["topo"]
    lb = need(st, "lb")
    out = run("ip", "-n", topo.lb_ns(lb), "-o", "link", "show").stdout
    links = sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())
    assert len(links) == 2 and "lo" in links, links
    addrs = run("ip", "-n", topo.lb_ns(lb), "-o", "-4", "addr", "show", "scope", "global").stdout
    assert [line.split()[3] for line in addrs.splitlines()] == [f"{VIP}/24"], addrs
    route = run("ip", "-n", topo.lb_ns(lb), "route", "show", "default").stdout
    assert "via 10.20.0.1" in route, route
    port = api(env, "GET", f"/v2.0/ports/{st['vip_port']}")["port"]
    mac = run("ip", "-n", topo.lb_ns(lb), "-o", "link", "show", links[0] if links[1] == "lo" else links[1]).stdout
    assert port["mac_address"] in mac, (port["mac_address"], mac)


def test_06_dead_member_down_and_back(env):
    st, topo, server = env["state"], env["topo"], env["server"]
    lb, member = need(st, "lb", "member_web2")

    def status():
        tree = api(env, "GET", f"/v2/lbaas/loadbalancers/{lb}/status")
        for listener in tree["statuses"]["loadbalancer"]["listeners"]:
            for p in listener["pools"]:
                for m in p["members"]:
                    if m["id"] == member:
                        return m["operating_status"]
        raise AssertionError(f"member {member} is not in the status tree: {tree}")

    topo.stop_backend("web2")
    started = time.monotonic()
    # delay × max_retries_down + timeout, plus the report path and scheduling slack.
    poll(lambda: status() == "ERROR", DELAY * FALL + TIMEOUT + 8, "web2 to be marked ERROR")
    took_down = time.monotonic() - started
    names = six_names(topo, f"http://{FIP}/")
    assert "web2" not in names and all(n in MEMBERS for n in names), names
    topo.start_backend("web2")
    started = time.monotonic()
    poll(lambda: status() == "ONLINE", DELAY * RISE + TIMEOUT + 8, "web2 to be ONLINE again")
    took_up = time.monotonic() - started
    poll(lambda: "web2" in six_names(topo, f"http://{FIP}/"), 10, "web2 back in rotation")
    print(f"[{env['provider']}] down after {took_down:.1f} s, back after {took_up:.1f} s")


def test_07_in_flight_request_survives_a_change(env):
    st, topo, cli = env["state"], env["topo"], env["cli"]
    lb = need(st, "lb")
    slow = subprocess.Popen(
        ["ip", "netns", "exec", f"{topo.prefix}h-client", "curl", "-s", "-m", "20", "-w", " %{http_code}", f"http://{FIP}/slow?s=3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.7)
    cli.run("loadbalancer", "listener", "set", "--connection-limit", "5000", "--wait", "http")
    wait_lb_active(env["server"], lb)
    out, err = slow.communicate(timeout=30)
    assert slow.returncode == 0, (out, err)
    name, code = out.split()
    assert name in MEMBERS and code == "200", out


def test_08_negative_control_dnat_without_snat(env):
    """Not Statera's path: a namespace doing only DNAT (no SNAT) towards a member fails — the
    member answers the client directly through the router — and adding SNAT fixes it. This is
    why the load balancer is a full proxy (its connections to members leave from the VIP)."""
    st, topo, cli = env["state"], env["topo"], env["cli"]
    router, qr_dev, tenant = need(st, "router", "qr_dev", "tenant")
    port = cli.json("port", "create", "--network", "tenant", "--fixed-ip", f"subnet=tenant-subnet,ip-address={PLAIN_DNAT_IP}", "plain-dnat")
    ns = topo.host("plaindnat", tenant, port, "10.20.0.1")
    run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    rules = (
        "table ip plain {\n"
        "  chain pre { type nat hook prerouting priority dstnat; policy accept;\n"
        f"    ip daddr {PLAIN_DNAT_IP} tcp dport 80 dnat to {MEMBERS['web1']}:80\n  }}\n"
        "}\n"
    )
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True)
    cli.json("floating", "ip", "create", "--floating-ip-address", FIP_DNAT, "--port", port["id"], "ext")
    # The router's translation for the new floating IP is in place (the reconciler follows the
    # API), so a failure below is the missing SNAT's, not a missing DNAT's.
    poll(
        lambda: FIP_DNAT in run("ip", "netns", "exec", topo.router_ns(router), "nft", "list", "table", "ip", "statera-nat").stdout,
        10,
        "the router to translate the second floating IP",
    )
    pcap = topo.workdir / "negative.pcap"
    with capture(topo.router_ns(router), qr_dev, pcap):
        failed = topo.client_get(f"http://{FIP_DNAT}/", timeout=3)
    assert failed.returncode != 0, failed.stdout
    assert count_packets(pcap, f"src host {MEMBERS['web1']} and dst host {CLIENT_IP}") > 0
    snat = (
        "table ip plain {\n"
        "  chain post { type nat hook postrouting priority srcnat; policy accept;\n"
        f"    ip daddr {MEMBERS['web1']} tcp dport 80 snat to {PLAIN_DNAT_IP}\n  }}\n"
        "}\n"
    )
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=snat, text=True, check=True)
    fixed = topo.client_get(f"http://{FIP_DNAT}/", timeout=5)
    assert fixed.returncode == 0 and fixed.stdout.strip() == "web1", fixed


def test_09_security_group_opens_and_closes_the_port(env):
    st, topo, cli = env["state"], env["topo"], env["cli"]
    vip_port = need(st, "vip_port")
    cli.json("security", "group", "create", "web-sg")
    cli.run("port", "set", "--security-group", "web-sg", vip_port)
    poll(lambda: topo.client_get(f"http://{FIP}/", timeout=1).returncode != 0, 10, "the VIP to close (no ingress rule)")
    rule = cli.json("security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "80", "--remote-ip", "0.0.0.0/0", "web-sg")
    poll(lambda: topo.client_get(f"http://{FIP}/", timeout=1).returncode == 0, 10, "the rule to open port 80")
    # Only what the rule allows: the TCP listener on 8080 stays closed.
    assert topo.client_get(f"http://{FIP}:8080/", timeout=1).returncode != 0
    cli.run("security", "group", "rule", "delete", rule["id"])
    poll(lambda: topo.client_get(f"http://{FIP}/", timeout=1).returncode != 0, 10, "the VIP to close again")
    cli.run("port", "set", "--no-security-group", vip_port)
    poll(lambda: topo.client_get(f"http://{FIP}/", timeout=1).returncode == 0, 10, "the listener ports to open again")


def test_10_allowed_cidrs(env):
    st, topo, cli = env["state"], env["topo"], env["cli"]
    lb = need(st, "lb")
    cli.run("loadbalancer", "listener", "set", "--allowed-cidr", "10.99.0.0/16", "--wait", "http")
    wait_lb_active(env["server"], lb)
    assert topo.client_get(f"http://{FIP}/", timeout=1).returncode != 0
    # The other listener has no restriction.
    assert topo.client_get(f"http://{FIP}:8080/", timeout=2).returncode == 0
    cli.run("loadbalancer", "listener", "unset", "--allowed-cidrs", "--wait", "http")
    wait_lb_active(env["server"], lb)
    assert topo.client_get(f"http://{FIP}/", timeout=2).returncode == 0


def test_11_teardown_leaves_nothing(env):
    st, topo, cli, server = env["state"], env["topo"], env["cli"], env["server"]
    lb, vip_port = need(st, "lb", "vip_port")
    lb_ns = topo.lb_ns(lb)
    assert ns_exists(lb_ns)
    cli.run("loadbalancer", "delete", "--cascade", "--wait", "lb1")
    poll(lambda: not ns_exists(lb_ns), 10, "the load balancer namespace to go")
    assert f"tap{short(vip_port)}" not in switch_links(topo, topo.lb_switch)
    # Its floating IP is disassociated (the port is gone), as Neutron does.
    fip = api(env, "GET", f"/v2.0/floatingips/{st['fip']}")["floatingip"]
    assert fip["port_id"] is None and fip["fixed_ip_address"] is None and fip["status"] == "DOWN", fip

    # Then everything else, the way a tenant tears down: the test's own hosts first.
    topo.cleanup()
    for fip in api(env, "GET", "/v2.0/floatingips")["floatingips"]:
        cli.run("floating", "ip", "delete", fip["id"])
    for name in [*MEMBERS, "client", "plain-dnat"]:
        cli.run("port", "delete", name)
    cli.run("router", "remove", "subnet", "r1", "tenant-subnet")
    cli.run("router", "unset", "--external-gateway", "r1")
    cli.run("router", "delete", "r1")
    cli.run("security", "group", "delete", "web-sg")
    cli.run("subnet", "delete", "tenant-subnet", "ext-subnet")
    cli.run("network", "delete", "tenant", "ext")

    def nothing_left():
        return not [n for n in os.listdir("/run/netns") if n.startswith(topo.prefix)]

    poll(nothing_left, 15, "every namespace under the prefix to go")
    tables = run("nft", "list", "tables").stdout
    assert "statera" not in tables, tables
