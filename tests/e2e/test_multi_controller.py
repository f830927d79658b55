"""Several `statera serve` nodes on one PostgreSQL database (issue #15): every node serves every
request, a load balancer is served by one live controller, a controller may die at any moment
without losing or duplicating acknowledged work, and PostgreSQL may go away and come back.

Three nodes, each `--role api,controller` with its own data dir, API port and `--node-id`, all
with the same `--store` and the same `--host-subnet` (node 1's: the `host-net` subnet lives in the
database). Plain HTTP against the API; traffic only on 127.0.0.0/8.

How a burst is judged (as in test_crash_recovery.py): every client thread owns the load
balancers it created and changes them one request at a time, spreading its requests over the
nodes. A 2xx answer is *acknowledged* and must be applied exactly once; an error answer or a
refused connection changed nothing; a request with no answer (the node died under it) has an
*unknown* outcome, and either result is correct, but never twice. Load balancers are found by
their unique names, so a create applied twice would show.

Every loop is bounded in count and time; every node, data dir, database and cluster is removed at
the end. The failover time (a SIGKILLed controller's VIPs serving again from another node) is
printed (`-s` shows it) and written to target/e2e-logs/multi-controller-failover.txt.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pg_support
from api_call import NoAnswer, Unsent, call
from conftest import (
    ACTIVE_TIMEOUT,
    LAB_AUTH_ARGS,
    LOG_KEEP_DIR,
    StateraServer,
    e2e_stores,
    free_port,
    host_subnet_for_port,
    http_get,
    poll,
    start_statera,
    statera_binary,
)

if "postgres" not in e2e_stores():
    pytest.skip("STATERA_E2E_STORES leaves PostgreSQL out", allow_module_level=True)

NODES = 3
CONTROLLER_TIMEOUT = 5  # --controller-timeout given to every node
FAILOVER_MARGIN = 10.0  # a dead controller's VIPs serve again within CONTROLLER_TIMEOUT + this
REQUEST_TIMEOUT = 5.0  # one API request
SETTLE_TIMEOUT = 60.0  # after a burst, nothing may stay in PENDING_* longer than this
VIP_TIMEOUT = 10.0  # an ACTIVE LB's VIP must answer from a backend within this
LISTENER_PORT = 8080  # every LB's one listener (each LB has its own VIP)
BURST_THREADS = 6
BURST_MAX_OPS = 400  # per thread
BURST_MAX_SECONDS = 90.0  # per thread, a hard bound if the driver never stops it
BURST_MAX_LBS = 2  # per thread, alive at once
BURST_MAX_CREATES = 12  # per thread (the host subnet is a /24: VIPs are finite)
WRITES_BACK_TIMEOUT = 30.0  # after PostgreSQL is back, writes succeed again within this
SERVE_REFUSAL_TIMEOUT = 30.0  # serve on a schema it must refuse exits within this

FAULT_KEYS = {"faultcode", "faultstring"}


# ---------------------------------------------------------------------------------------------
# The API over urllib: api_call.py (call, NoAnswer)


def octavia_fault(doc) -> bool:
    return isinstance(doc, dict) and FAULT_KEYS <= set(doc)


def lb_body(name: str, subnet: str, backends, description: str = "") -> dict:
    """A fully populated load balancer (provider native): one HTTP listener on LISTENER_PORT whose
    default pool has a member per backend."""
    return {
        "loadbalancer": {
            "name": name,
            "description": description or f"{name} created",
            "provider": "native",
            "vip_subnet_id": subnet,
            "listeners": [
                {"name": f"{name}-l", "protocol": "HTTP", "protocol_port": LISTENER_PORT,
                 "default_pool": {"name": f"{name}-p"}}
            ],
            "pools": [
                {
                    "name": f"{name}-p",
                    "protocol": "HTTP",
                    "lb_algorithm": "ROUND_ROBIN",
                    "members": [
                        {"name": f"{name}-{b.name}", "address": b.host, "protocol_port": b.port} for b in backends
                    ],
                }
            ],
        }
    }


# ---------------------------------------------------------------------------------------------
# Nodes


class Node:
    """One `statera serve` of the deployment: a fixed port, data dir and node id, so a restart is
    "the same" node."""

    def __init__(self, idx: int, store: str, host_subnet: str | None, port: int | None = None,
                 role: str = "api,controller"):
        self.idx = idx
        self.role = role
        self.port = port or free_port()
        self.store = store
        self.host_subnet = host_subnet or host_subnet_for_port(self.port)
        self.node_id = f"e2e-node-{idx + 1}"
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"statera-e2e-mc{idx + 1}-"))
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server: StateraServer | None = None
        self._cm = None

    def start(self) -> None:
        assert self._cm is None
        cm = start_statera(
            data_dir=self.data_dir,
            port=self.port,
            store=self.store,
            role=self.role,
            node_id=self.node_id,
            host_subnet=self.host_subnet,
            extra_args=["--controller-timeout", str(CONTROLLER_TIMEOUT)],
        )
        self.server = cm.__enter__()
        self._cm = cm

    def alive(self) -> bool:
        return self.server is not None and self.server.process.poll() is None

    def kill(self) -> None:
        """SIGKILL this node's process (its pid only) and reap it."""
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (or nothing, if it is dead already): start_statera's own exit."""
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Deployment:
    def __init__(self, store: str, n: int = NODES):
        self.store = store
        self.nodes: list[Node] = []
        first = Node(0, store, None)
        self.host_subnet = first.host_subnet  # node 1's, for every node
        self.nodes.append(first)
        for i in range(1, n):
            self.nodes.append(Node(i, store, self.host_subnet))

    def __enter__(self):
        try:
            for node in self.nodes:  # one after the other: node 1 makes the deployment's objects
                node.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        errors = []
        for node in self.nodes:
            try:
                node.close()
            except AssertionError as e:  # a node that ignored SIGTERM
                errors.append(str(e))
        assert not errors, "\n".join(errors)

    def ensure_running(self) -> None:
        for node in self.nodes:
            if not node.alive():
                node.restart()

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def endpoint(self) -> str:
        """A live node's endpoint."""
        live = self.live()
        assert live, "no node alive"
        return live[0].endpoint


@pytest.fixture(scope="module")
def deployment(pg_cluster):
    with pg_support.fresh_database(pg_cluster) as url, Deployment(url) as dep:
        yield dep


@pytest.fixture
def dep(deployment):
    """The module's deployment with every node running (a test may have killed one)."""
    deployment.ensure_running()
    return deployment


def subnet_id(endpoint: str) -> str:
    status, doc = call(endpoint, "GET", "/v2.0/subnets?name=host-subnet")
    assert status == 200 and doc["subnets"], f"GET host-subnet -> {status} {doc}"
    return doc["subnets"][0]["id"]


def wait_active(endpoint: str, lb_id: str, timeout: float = ACTIVE_TIMEOUT) -> dict:
    seen: list[str] = []

    def check():
        status, doc = call(endpoint, "GET", f"/v2/lbaas/loadbalancers/{lb_id}")
        assert status == 200, f"GET loadbalancer {lb_id} -> {status} {doc}"
        lb = doc["loadbalancer"]
        if not seen or seen[-1] != lb["provisioning_status"]:
            seen.append(lb["provisioning_status"])
        assert lb["provisioning_status"] != "ERROR", f"load balancer {lb_id} went to ERROR (seen {seen})"
        return lb if lb["provisioning_status"] == "ACTIVE" else None

    return poll(check, timeout, lambda: f"load balancer {lb_id} to be ACTIVE via {endpoint} (seen {seen})")


def vip_serves(vip: str, names: set[str], timeout: float = VIP_TIMEOUT) -> str:
    """Polls http://vip:LISTENER_PORT/ until a backend answers; returns its name."""
    url = f"http://{vip}:{LISTENER_PORT}/"
    last = [None]

    def answers():
        try:
            r = http_get(url, timeout=2)
        except OSError as e:
            last[0] = repr(e)
            return None
        last[0] = f"{r.status} {r.body[:100]!r}"
        body = r.body.decode(errors="replace")
        return body if r.status == 200 and body in names else None

    return poll(answers, timeout, lambda: f"{url} to answer from a backend (last: {last[0]})", interval=0.1)


def create_lbs(dep: Deployment, backends, names: list[str], via: int = 0) -> list[dict]:
    endpoint = dep.nodes[via].endpoint
    subnet = subnet_id(endpoint)
    created = []
    for name in names:
        status, doc = call(endpoint, "POST", "/v2/lbaas/loadbalancers", lb_body(name, subnet, backends))
        assert status == 201, f"create {name} through node {via + 1} -> {status} {doc}"
        created.append(doc["loadbalancer"])
    return [wait_active(endpoint, lb["id"]) for lb in created]


def delete_lbs(dep: Deployment, lbs: list[dict]) -> None:
    endpoint = dep.endpoint()
    for lb in lbs:
        call(endpoint, "DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true")
    for lb in lbs:
        poll(lambda lb=lb: call(endpoint, "GET", f"/v2/lbaas/loadbalancers/{lb['id']}")[0] == 404,
             ACTIVE_TIMEOUT, f"load balancer {lb['id']} to be deleted")


# ---------------------------------------------------------------------------------------------
# One load balancer, three nodes


def test_lb_created_through_one_node_is_readable_everywhere_and_served(dep, backends):
    names = {b.name for b in backends}
    node1, node2, node3 = dep.nodes
    subnet = subnet_id(node1.endpoint)
    status, doc = call(node1.endpoint, "POST", "/v2/lbaas/loadbalancers", lb_body("mc-one", subnet, backends))
    assert status == 201, f"create through node 1 -> {status} {doc}"
    lb = doc["loadbalancer"]
    # The very next request, through another node: no sleep, no retry.
    for node in (node2, node3):
        status, got = call(node.endpoint, "GET", f"/v2/lbaas/loadbalancers/{lb['id']}")
        assert status == 200, f"GET through node {node.idx + 1} right after the create -> {status} {got}"
        assert got["loadbalancer"]["name"] == "mc-one" and got["loadbalancer"]["vip_address"] == lb["vip_address"]
        status, listed = call(node.endpoint, "GET", "/v2/lbaas/loadbalancers?name=mc-one")
        assert status == 200 and [x["id"] for x in listed["loadbalancers"]] == [lb["id"]], (status, listed)
        pool_id = lb["pools"][0]["id"]
        status, members = call(node.endpoint, "GET", f"/v2/lbaas/pools/{pool_id}/members")
        assert status == 200 and len(members["members"]) == len(backends), (status, members)
    active = wait_active(node3.endpoint, lb["id"])
    assert active["vip_address"] == lb["vip_address"]
    seen = set()
    for _ in range(20):
        seen.add(vip_serves(lb["vip_address"], names))
        if seen == names:
            break
    assert seen == names, f"round robin over both backends through the VIP: saw {seen}"
    # An update through node 2 is what node 1 reads next.
    status, doc = call(node2.endpoint, "PUT", f"/v2/lbaas/loadbalancers/{lb['id']}",
                       {"loadbalancer": {"description": "changed through node 2"}})
    assert status == 200, f"update through node 2 -> {status} {doc}"
    status, got = call(node1.endpoint, "GET", f"/v2/lbaas/loadbalancers/{lb['id']}")
    assert status == 200 and got["loadbalancer"]["description"] == "changed through node 2", (status, got)
    wait_active(node1.endpoint, lb["id"])
    delete_lbs(dep, [active])


def test_api_only_and_controller_only_nodes(pg_cluster, backends):
    """Roles split: an API-only node takes the create (nothing applies it while no controller
    runs), a controller-only node (no API listener) then applies and serves it."""
    names = {b.name for b in backends}
    with pg_support.fresh_database(pg_cluster) as url:
        api = Node(0, url, None, role="api")
        ctl = Node(1, url, api.host_subnet, role="controller")
        try:
            api.start()
            subnet = subnet_id(api.endpoint)
            status, doc = call(api.endpoint, "POST", "/v2/lbaas/loadbalancers", lb_body("mc-split", subnet, backends))
            assert status == 201, f"create through the API-only node -> {status} {doc}"
            lb = doc["loadbalancer"]
            time.sleep(1.0)
            status, doc = call(api.endpoint, "GET", f"/v2/lbaas/loadbalancers/{lb['id']}")
            assert status == 200 and doc["loadbalancer"]["provisioning_status"] == "PENDING_CREATE", (
                f"with no controller running the load balancer should stay PENDING_CREATE: {status} {doc}")
            ctl.start()
            with pytest.raises(Unsent):
                call(ctl.endpoint, "GET", "/")  # no API listener on a controller-only node
            active = wait_active(api.endpoint, lb["id"])
            assert active["vip_address"] == lb["vip_address"]
            vip_serves(lb["vip_address"], names)
        finally:
            ctl.close()
            api.close()


# ---------------------------------------------------------------------------------------------
# A controller dies: its load balancers move


def test_sigkilled_controller_load_balancers_serve_again_from_another_node(dep, backends):
    names = {b.name for b in backends}
    # One LB per live controller, at least: new ones go to the least loaded.
    lbs = create_lbs(dep, backends, [f"mc-fo-{i}" for i in range(NODES)])
    for lb in lbs:
        vip_serves(lb["vip_address"], names)
    victim = dep.nodes[1]
    victim.kill()
    t_kill = time.monotonic()
    # Which VIPs went down with it (the native data plane runs in the node's process).
    down = []
    for lb in lbs:
        try:
            r = http_get(f"http://{lb['vip_address']}:{LISTENER_PORT}/", timeout=1)
            ok = r.status == 200
        except OSError:
            ok = False
        if not ok:
            down.append(lb)
    assert down, (
        f"no VIP stopped answering when node {victim.idx + 1} was SIGKILLed: it served none of "
        f"{len(lbs)} load balancers created over {NODES} live controllers (a new one should go to "
        f"the least loaded)"
    )
    times = {}
    bound = CONTROLLER_TIMEOUT + FAILOVER_MARGIN
    give_up = t_kill + bound + 20.0  # measure a slow failover too, then fail
    waiting = {lb["id"]: lb for lb in down}
    while waiting and time.monotonic() < give_up:
        for lb_id, lb in list(waiting.items()):
            try:
                r = http_get(f"http://{lb['vip_address']}:{LISTENER_PORT}/", timeout=1)
            except OSError:
                continue
            if r.status == 200 and r.body.decode(errors="replace") in names:
                times[lb_id] = time.monotonic() - t_kill
                del waiting[lb_id]
        time.sleep(0.05)
    worst = max(times.values()) if times else None
    report = (f"failover: node {victim.idx + 1} SIGKILLed, {len(down)} of {len(lbs)} VIPs went down, served "
              f"again after {', '.join(f'{t:.2f}' for t in sorted(times.values())) or '-'} s "
              f"(--controller-timeout {CONTROLLER_TIMEOUT}); never: {sorted(waiting)}")
    print(report)
    with contextlib.suppress(OSError):
        LOG_KEEP_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOG_KEEP_DIR / "multi-controller-failover.txt", "a") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + report + "\n")
    assert not waiting and worst <= bound, f"not within {bound:.0f} s: {report}"
    for lb in lbs:
        again = wait_active(dep.endpoint(), lb["id"])
        assert again["vip_address"] == lb["vip_address"], f"VIP changed: {lb['vip_address']} -> {again['vip_address']}"
    # The dead node comes back (same data dir, same node id): every VIP still serves, once.
    victim.restart()
    for lb in lbs:
        vip_serves(lb["vip_address"], names)
    delete_lbs(dep, lbs)


# ---------------------------------------------------------------------------------------------
# Bursts


@dataclass
class Op:
    thread: int
    seq: int
    kind: str  # create | update | delete
    node: int
    method: str
    path: str
    body: dict | None
    name: str | None = None  # the load balancer's name
    lb_id: str | None = None
    outcome: str = "pending"  # ack | rejected | unsent | unknown
    status: int | None = None
    doc: object = None
    error: str | None = None
    t_sent: float = 0.0

    def short(self) -> str:
        return (f"[t{self.thread}#{self.seq} node{self.node + 1} {self.kind} {self.name or self.lb_id} -> "
                f"{self.status if self.status is not None else self.error} ({self.outcome})]")


class Client(threading.Thread):
    """One client thread: creates, description updates and deletes of its own load balancers,
    each request to the next node in turn, until told to stop (or the bounds)."""

    def __init__(self, idx: int, endpoints: list[str], subnet: str, backends, stop: threading.Event, tag: str):
        super().__init__(name=f"mc-client-{idx}", daemon=True)
        self.idx = idx
        self.endpoints = endpoints
        self.subnet = subnet
        self.backends = backends
        self.stop_event = stop
        self.tag = tag
        self.rng = random.Random(idx)
        self.own: dict[str, str] = {}  # lb id -> name (acknowledged creates not yet deleted)
        self.ops: list[Op] = []
        self.creates = 0

    def choose(self, seq: int, node: int) -> Op:
        name = f"{self.tag}-t{self.idx}-{seq}"
        kinds = []
        if len(self.own) < BURST_MAX_LBS and self.creates < BURST_MAX_CREATES:
            kinds += ["create"] * 3
        if self.own:
            kinds += ["update"] * 4
            if self.creates < BURST_MAX_CREATES:  # the last ones stay, for the VIP checks
                kinds += ["delete"]
        if not kinds:
            kinds = ["update"] if self.own else ["none"]
        kind = self.rng.choice(kinds)
        if kind == "create":
            self.creates += 1
            return Op(self.idx, seq, kind, node, "POST", "/v2/lbaas/loadbalancers",
                      lb_body(name, self.subnet, self.backends), name=name)
        if kind == "none":
            return None
        lb_id = self.rng.choice(sorted(self.own))
        if kind == "update":
            return Op(self.idx, seq, kind, node, "PUT", f"/v2/lbaas/loadbalancers/{lb_id}",
                      {"loadbalancer": {"description": f"d-{name}"}}, name=self.own[lb_id], lb_id=lb_id)
        return Op(self.idx, seq, kind, node, "DELETE", f"/v2/lbaas/loadbalancers/{lb_id}?cascade=true", None,
                  name=self.own[lb_id], lb_id=lb_id)

    def run(self) -> None:
        deadline = time.monotonic() + BURST_MAX_SECONDS
        seq = 0
        while not self.stop_event.is_set() and seq < BURST_MAX_OPS and time.monotonic() < deadline:
            node = (self.idx + seq) % len(self.endpoints)
            op = self.choose(seq, node)
            seq += 1
            if op is None:
                time.sleep(0.05)
                continue
            op.t_sent = time.monotonic()
            self.ops.append(op)
            try:
                op.status, op.doc = call(self.endpoints[node], op.method, op.path, op.body)
            except Unsent as e:
                op.outcome, op.error = "unsent", str(e)
                if op.kind == "create":
                    self.creates -= 1
                continue
            except NoAnswer as e:
                op.outcome, op.error = "unknown", str(e)
                if op.kind == "delete":
                    self.own.pop(op.lb_id, None)  # maybe gone: leave it alone from now on
                continue
            if 200 <= op.status < 300:
                op.outcome = "ack"
                if op.kind == "create":
                    op.lb_id = op.doc["loadbalancer"]["id"]
                    self.own[op.lb_id] = op.name
                elif op.kind == "delete":
                    self.own.pop(op.lb_id, None)
            else:
                op.outcome = "rejected"
                if op.kind == "create":
                    self.creates -= 1
                time.sleep(0.02 if op.status == 409 else 0.1)  # busy LB / store away: let it settle


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)

    def add(self, rule: str, text: str) -> None:
        self.problems.append(f"[{rule}] {text}")


def list_all(endpoint: str, what: str) -> list[dict]:
    status, doc = call(endpoint, "GET", f"/v2/lbaas/{what}?limit=5000", timeout=30)
    assert status == 200, f"GET /v2/lbaas/{what} -> {status} {doc}"
    return doc[what]


def wait_settled(endpoint: str, timeout: float = SETTLE_TIMEOUT) -> list[dict]:
    """Waits until no load balancer, listener, pool or member is PENDING_*; returns the LBs."""
    pending: list[str] = []

    def settled():
        pending.clear()
        for what in ("loadbalancers", "listeners", "pools"):
            for obj in list_all(endpoint, what):
                if obj["provisioning_status"].startswith("PENDING_"):
                    pending.append(f"{what[:-1]} {obj['id']} ({obj.get('name')}) {obj['provisioning_status']}")
        return not pending

    poll(settled, timeout, lambda: f"nothing PENDING_* (still: {pending[:10]})", interval=0.5)
    return list_all(endpoint, "loadbalancers")


def judge_burst(dep: Deployment, clients: list[Client], backends, tag: str) -> tuple[Findings, dict]:
    f = Findings()
    endpoint = dep.endpoint()
    lbs = wait_settled(endpoint)
    by_name: dict[str, list[dict]] = {}
    for lb in lbs:
        by_name.setdefault(lb["name"], []).append(lb)
    ops = [o for c in clients for o in c.ops]
    for c in clients:
        history: dict[str, list[Op]] = {}
        for o in c.ops:
            if o.kind == "create":
                found = by_name.get(o.name, [])
                if o.outcome == "ack":
                    history[o.lb_id] = [o]
                    if len(found) > 1:
                        f.add("exactly once", f"{o.short()}: {len(found)} load balancers named {o.name}")
                elif o.outcome == "unknown":
                    if len(found) > 1:
                        f.add("exactly once", f"{o.short()} (unanswered): {len(found)} load balancers named {o.name}")
                elif found:
                    f.add("nothing half-written", f"{o.short()} was not acknowledged but {o.name} exists: {found}")
            elif o.lb_id in history:
                history[o.lb_id].append(o)
        for lb_id, hist in history.items():
            name = hist[0].name
            found = [x for x in by_name.get(name, []) if x["id"] == lb_id]
            others = [x for x in by_name.get(name, []) if x["id"] != lb_id]
            if others:
                f.add("exactly once", f"{name}: acknowledged as {lb_id}, also present as {[x['id'] for x in others]}")
            deletes = [o for o in hist if o.kind == "delete" and o.outcome in ("ack", "unknown")]
            if any(o.outcome == "ack" for o in deletes):
                if found:
                    f.add("acknowledged delete applied", f"{name} ({lb_id}) still there after {deletes[-1].short()}")
                continue
            if not found:
                if not deletes:
                    f.add("acknowledged create applied", f"{name} ({lb_id}) is missing ({hist[0].short()})")
                continue
            lb = found[0]
            # The description: the last acknowledged update's, or an unanswered one's after it.
            allowed = {hist[0].body["loadbalancer"]["description"]}
            for o in hist[1:]:
                if o.kind != "update":
                    continue
                if o.outcome == "ack":
                    allowed = {o.body["loadbalancer"]["description"]}
                elif o.outcome == "unknown":
                    allowed.add(o.body["loadbalancer"]["description"])
            if lb["description"] not in allowed:
                f.add("acknowledged update applied", f"{name} ({lb_id}) has description {lb['description']!r}, "
                      f"expected one of {sorted(allowed)}")
    for o in ops:
        if o.status is not None and o.status >= 500 and o.status != 503:
            f.add("no 500", f"{o.short()} {o.doc}")
        if o.status == 503 and not octavia_fault(o.doc):
            f.add("503 in Octavia's shape", f"{o.short()} {o.doc}")
    # Every node reads the same thing.
    ours = {lb["id"]: lb["provisioning_status"] for lb in lbs if lb["name"].startswith(tag)}
    for node in dep.live():
        seen = {lb["id"]: lb["provisioning_status"] for lb in list_all(node.endpoint, "loadbalancers")
                if lb["name"].startswith(tag)}
        if seen != ours:
            f.add("coherent reads", f"node {node.idx + 1} lists {seen}, node of {endpoint} lists {ours}")
    errors = [lb["id"] for lb in lbs if lb["provisioning_status"] == "ERROR" and lb["name"].startswith(tag)]
    for lb_id in errors:
        f.add("no ERROR", f"load balancer {lb_id} is in ERROR (every change was valid)")
    # Every ACTIVE load balancer serves.
    names = {b.name for b in backends}
    served = 0
    for lb in lbs:
        if not lb["name"].startswith(tag) or lb["provisioning_status"] != "ACTIVE":
            continue
        try:
            vip_serves(lb["vip_address"], names)
            served += 1
        except AssertionError as e:
            f.add("every ACTIVE VIP serves", f"{lb['name']} ({lb['id']}): {e}")
    acked = [o for o in ops if o.outcome == "ack"]
    info = {
        "requests": len(ops),
        "acknowledged": {k: sum(o.kind == k for o in acked) for k in ("create", "update", "delete")},
        "unknown": len([o for o in ops if o.outcome == "unknown"]),
        "unsent": len([o for o in ops if o.outcome == "unsent"]),
        "rejected": {s: sum(o.status == s for o in ops if o.outcome == "rejected")
                     for s in sorted({o.status for o in ops if o.outcome == "rejected"})},
        "lbs": len(ours),
        "vips_served": served,
    }
    return f, info


def write_log(label: str, clients: list[Client], problems: list[str]) -> Path | None:
    try:
        LOG_KEEP_DIR.mkdir(parents=True, exist_ok=True)
        path = LOG_KEEP_DIR / f"multi-controller-{label}-{int(time.time())}.json"
        path.write_text(json.dumps({
            "problems": problems,
            "threads": [[{k: v for k, v in vars(o).items() if k != "body"} for o in c.ops] for c in clients],
        }, indent=1, default=str))
        return path
    except OSError:
        return None


@contextlib.contextmanager
def burst(dep: Deployment, backends, tag: str):
    subnet = subnet_id(dep.endpoint())
    stop = threading.Event()
    endpoints = [n.endpoint for n in dep.nodes]
    clients = [Client(i, endpoints, subnet, backends, stop, tag) for i in range(BURST_THREADS)]
    for c in clients:
        c.start()
    try:
        yield clients
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=REQUEST_TIMEOUT + 10)
    alive = [c.name for c in clients if c.is_alive()]
    assert not alive, f"client threads still running: {alive}"


def check_burst(dep, clients, backends, tag, label):
    acked = [o for c in clients for o in c.ops if o.outcome == "ack"]
    assert any(o.kind == "create" for o in acked), (
        f"no create was acknowledged during the burst: it checked nothing "
        f"({[o.short() for c in clients for o in c.ops][:30]})"
    )
    findings, info = judge_burst(dep, clients, backends, tag)
    log = write_log(label, clients, findings.problems) if findings.problems else None
    print(f"{label}: {info}; log {log}")
    assert not findings.problems, (
        f"{label}: {len(findings.problems)} problem(s):\n  " + "\n  ".join(findings.problems[:40])
        + f"\nrequest log: {log}"
    )


def test_burst_while_controllers_are_sigkilled_one_by_one(dep, backends):
    tag = "mc-kill"
    # (node, seconds between its SIGKILL and its restart): one quick restart (its own controller
    # resumes), one after --controller-timeout (the others adopt first), one quick again.
    plan = [(0, 0.5), (1, CONTROLLER_TIMEOUT + 1.0), (2, 0.5)]
    timeline = []
    with burst(dep, backends, tag) as clients:
        t0 = time.monotonic()
        poll(lambda: any(o.outcome == "ack" for c in clients for o in c.ops), 20, "a first acknowledged write")
        for idx, gap in plan:
            time.sleep(1.5)
            node = dep.nodes[idx]
            node.kill()
            timeline.append(f"{time.monotonic() - t0:.2f}s kill node {idx + 1}")
            time.sleep(gap)
            node.restart()
            timeline.append(f"{time.monotonic() - t0:.2f}s node {idx + 1} answers again")
        time.sleep(2.0)
    print("timeline: " + "; ".join(timeline))
    check_burst(dep, clients, backends, tag, "controllers-sigkilled")


# ---------------------------------------------------------------------------------------------
# PostgreSQL goes away and comes back (a cluster of this test's own)


class Prober(threading.Thread):
    """Reads during the outage: GET / (version discovery) must answer 200; an API read answers
    200 or 503 in Octavia's shape, never anything else."""

    def __init__(self, endpoints: list[str], stop: threading.Event):
        super().__init__(name="mc-prober", daemon=True)
        self.endpoints = endpoints
        self.stop_event = stop
        self.seen: list[tuple[str, str, object, object]] = []  # (endpoint, path, status or error, doc)

    def run(self):
        deadline = time.monotonic() + BURST_MAX_SECONDS
        i = 0
        while not self.stop_event.is_set() and time.monotonic() < deadline and i < 5000:
            ep = self.endpoints[i % len(self.endpoints)]
            i += 1
            for path in ("/", "/v2/lbaas/loadbalancers", "/v2.0/networks"):
                try:
                    status, doc = call(ep, "GET", path, timeout=REQUEST_TIMEOUT)
                except (Unsent, NoAnswer) as e:
                    self.seen.append((ep, path, repr(e), None))
                    continue
                self.seen.append((ep, path, status, doc))
            time.sleep(0.05)

    def problems(self) -> list[str]:
        out = []
        for ep, path, status, doc in self.seen:
            where = ep + path
            if path == "/" and status != 200:
                out.append(f"[version discovery answers] GET {where} -> {status} {doc}")
            elif not isinstance(status, int):
                out.append(f"[an answer] GET {where} -> {status}")
            elif status == 503 and not (octavia_fault(doc) or (isinstance(doc, dict) and "NeutronError" in doc)):
                out.append(f"[503 in the API's shape] GET {where} -> {doc}")
            elif status not in (200, 503):
                out.append(f"[200 or 503] GET {where} -> {status} {doc}")
        return out


def test_postgresql_restarted_mid_burst(backends):
    with pg_support.own_cluster() as cluster, pg_support.fresh_database(cluster) as url, Deployment(url) as dep:
        seeds = create_lbs(dep, backends, ["mc-pg-seed-0", "mc-pg-seed-1"])
        tag = "mc-pg"
        stop_probe = threading.Event()
        prober = Prober([n.endpoint for n in dep.nodes], stop_probe)
        timeline = []
        try:
            with burst(dep, backends, tag) as clients:
                prober.start()
                t0 = time.monotonic()
                poll(lambda: any(o.outcome == "ack" for c in clients for o in c.ops), 20, "a first acknowledged write")
                time.sleep(1.5)
                cluster.restart()  # scripts/pg-cluster restart: a fast shutdown, then a start
                timeline.append(f"{time.monotonic() - t0:.2f}s restarted")
                time.sleep(2.0)
                cluster.stop()  # and a longer outage, so requests do meet it
                timeline.append(f"{time.monotonic() - t0:.2f}s stopped")
                time.sleep(3.0)
                cluster.start()
                timeline.append(f"{time.monotonic() - t0:.2f}s started")
                time.sleep(3.0)
        finally:
            stop_probe.set()
            if prober.is_alive():
                prober.join(timeout=REQUEST_TIMEOUT + 10)
        print("timeline: " + "; ".join(timeline))
        outage_503 = sum(1 for c in clients for o in c.ops if o.status == 503)
        print(f"during the outages: {outage_503} writes answered 503, probe answers "
              f"{sorted({str(s) for _, _, s, _ in prober.seen})}")
        problems = prober.problems()
        assert not problems, f"{len(problems)} problem(s) with reads during the outage:\n  " + "\n  ".join(problems[:30])
        # Writes succeed again through every node, and their work is carried out.
        subnet = subnet_id(dep.nodes[0].endpoint)
        after = []
        attempt = iter(range(1000))
        for node in dep.nodes:
            last = [None]

            def created(node=node):
                name = f"mc-pg-after-{node.idx + 1}-{next(attempt)}"  # a retry never reuses a name
                try:
                    status, doc = call(node.endpoint, "POST", "/v2/lbaas/loadbalancers",
                                       lb_body(name, subnet, backends))
                except (Unsent, NoAnswer) as e:
                    last[0] = repr(e)
                    return None
                last[0] = (status, doc)
                assert status in (201, 503), f"create after the outage through node {node.idx + 1} -> {status} {doc}"
                return doc["loadbalancer"] if status == 201 else None

            after.append(poll(created, WRITES_BACK_TIMEOUT, lambda: f"a create through node {node.idx + 1} to succeed "
                              f"(last: {last[0]})", interval=0.5))
        for lb in after:
            wait_active(dep.nodes[2].endpoint, lb["id"])
        check_burst(dep, clients, backends, tag, "postgresql-restarted")
        names = {b.name for b in backends}
        for lb in seeds + after:
            vip_serves(lb["vip_address"], names)
        for lb in after:
            status, doc = call(dep.nodes[0].endpoint, "GET", f"/v2/lbaas/loadbalancers?name={lb['name']}")
            assert status == 200 and len(doc["loadbalancers"]) == 1, f"{lb['name']}: {status} {doc}"


# ---------------------------------------------------------------------------------------------
# The schema: db status / db upgrade, and serve refusing what it does not know


def serve_must_refuse(store: str | None, data_dir: Path, what: str) -> str:
    """Runs `statera serve` and expects it to exit non-zero by itself; returns its output."""
    port = free_port()
    args = [str(statera_binary()), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir / "data"),
            "--host-subnet", host_subnet_for_port(port), *LAB_AUTH_ARGS, *(["--store", store] if store else [])]
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=SERVE_REFUSAL_TIMEOUT, cwd=data_dir)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"statera serve on {what} kept running for {SERVE_REFUSAL_TIMEOUT:.0f} s instead of "
                             f"refusing to start\n{e.stdout}\n{e.stderr}") from None
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"statera serve on {what} exited 0:\n{out[-3000:]}"
    return out


def status_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stdout.strip().splitlines()
    return lines[0] if lines else ""


def test_db_status_and_upgrade_and_serve_refuses_an_unknown_schema(pg_cluster, tmp_path):
    with pg_support.fresh_database(pg_cluster, upgrade=False) as url:
        st = pg_support.db_status(url)
        assert (st.returncode, status_line(st)) == (3, "schema: upgrade needed"), (
            f"db status on an empty database: exit {st.returncode}\n{st.stdout}\n{st.stderr}")
        out = serve_must_refuse(url, tmp_path, "an empty database")
        assert "statera db upgrade" in out, f"serve's refusal does not name `statera db upgrade`:\n{out[-3000:]}"

        pg_support.db_upgrade(url)
        st = pg_support.db_status(url)
        assert (st.returncode, status_line(st)) == (0, "schema: current"), (
            f"db status after db upgrade: exit {st.returncode}\n{st.stdout}\n{st.stderr}")
        again = pg_support.statera_db("upgrade", "--store", url)
        assert again.returncode == 0, f"a second db upgrade (nothing to do) -> {again.returncode}\n{again.stderr}"

        columns = pg_support.psql(url, "SELECT column_name FROM information_schema.columns "
                                       "WHERE table_name = '_sqlx_migrations' ORDER BY ordinal_position").stdout.split()
        assert {"version", "description", "success", "checksum", "execution_time"} <= set(columns), columns
        pg_support.psql(url, "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) "
                             "VALUES (99990101000000, 'from the future', true, '\\x00'::bytea, 0)")
        st = pg_support.db_status(url)
        assert (st.returncode, status_line(st)) == (4, "schema: unknown"), (
            f"db status with a migration from the future: exit {st.returncode}\n{st.stdout}\n{st.stderr}")
        serve_must_refuse(url, tmp_path, "a schema with an unknown migration")


def test_db_status_and_upgrade_on_sqlite(tmp_path):
    data = tmp_path / "data"
    st = pg_support.statera_db("status", "--data-dir", str(data))
    assert (st.returncode, status_line(st)) == (3, "schema: upgrade needed"), (
        f"db status on a fresh data dir: exit {st.returncode}\n{st.stdout}\n{st.stderr}")
    up = pg_support.statera_db("upgrade", "--data-dir", str(data))
    assert up.returncode == 0, f"db upgrade --data-dir -> {up.returncode}\n{up.stdout}\n{up.stderr}"
    st = pg_support.statera_db("status", "--data-dir", str(data))
    assert (st.returncode, status_line(st)) == (0, "schema: current"), (
        f"db status after db upgrade: exit {st.returncode}\n{st.stdout}\n{st.stderr}")
