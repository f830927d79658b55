"""Crash recovery: SIGKILL in the middle of a burst of writes, restart on the same data dir, and
check that nothing acknowledged was lost and nothing half-written is left (ARCHITECTURE.md,
"Invariants" and "Restart"; README: "Killing it (even SIGKILL) loses nothing that was
acknowledged").

How the burst is judged: every write thread owns its own load balancers and changes them one
request at a time, so within a thread the order of changes is exact. A request that got a 2xx
answer is *acknowledged* and must survive; one that got an error answer changed nothing; the one
request per thread that was in flight at the kill has an *unknown* outcome (either result is
correct). When a check fails, the full request log is written to target/e2e-logs/crash-*.json.

Every test runs once per store backend (`store_kind`, STATERA_E2E_STORES): on PostgreSQL the
restarted server is given the same data dir AND the same database as the killed one.

Plain HTTP (urllib) against the API, like the server lifecycle tests.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

import pg_support
from api_call import NoAnswer, call
from conftest import LOG_KEEP_DIR, free_port, http_get, poll, start_statera, wait_lb_active

SETTLE_TIMEOUT = 20.0  # after the restart, every LB must leave PENDING_* within this
VIP_TIMEOUT = 10.0  # an ACTIVE LB's VIP must answer from a backend within this
REQUEST_TIMEOUT = 5.0  # one API request during the burst
BURST_THREADS = int(os.environ.get("STATERA_CRASH_THREADS", "4"))
BURST_MAX_OPS = 3000  # per thread; the kill normally comes long before
BURST_MAX_SECONDS = 15.0  # per thread, a hard bound if the kill never came
SEED_LBS = BURST_THREADS  # created (and ACTIVE) before the burst, one per thread (threads own them)
FIRST_PORT = 8080  # listener ports: 8080 for the seed listener, then 8081, 8082, ...

# The kill moments: (name, earliest, latest) seconds after the burst's first acknowledged write
# (counting from the first answer, not from the start, keeps "early" meaningful on a slow machine).
KILL_WINDOWS = [("early", 0.0, 0.1), ("middle", 0.3, 0.8), ("late", 1.2, 2.0)]
FIRST_ACK_TIMEOUT = 10.0


# ---------------------------------------------------------------------------------------------
# The API over urllib: api_call.py (call, NoAnswer)


def subnet_id(endpoint: str) -> str:
    status, doc = call(endpoint, "GET", "/v2.0/subnets?name=host-subnet")
    assert status == 200 and doc["subnets"], f"GET host-subnet -> {status} {doc}"
    return doc["subnets"][0]["id"]


def full_lb_body(name: str, subnet: str, port: int, backends) -> dict:
    """A fully populated load balancer: one HTTP listener on `port` whose default pool has a
    member per backend."""
    return {
        "loadbalancer": {
            "name": name,
            "description": f"{name} created",
            "vip_subnet_id": subnet,
            "listeners": [
                {"name": f"{name}-l{port}", "protocol": "HTTP", "protocol_port": port, "default_pool": {"name": f"{name}-p"}}
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
# The burst


@dataclass
class Op:
    thread: int
    seq: int
    kind: str
    method: str
    path: str
    body: dict | None
    target: str | None = None  # the object changed or deleted, or the parent of a create
    t_sent: float = 0.0
    t_done: float | None = None
    outcome: str = "unknown"  # "ack" (2xx), "rejected" (other answer), "unknown" (no answer)
    status: int | None = None
    response: object = None
    error: str | None = None
    expect: dict = field(default_factory=dict)  # what an acknowledged change promises

    def short(self) -> str:
        return (
            f"[t{self.thread}#{self.seq} {self.kind} {self.method} {self.path} -> "
            f"{self.status if self.status is not None else self.error} ({self.outcome})]"
        )


@dataclass
class OwnedLb:
    """What a write thread knows of one of its load balancers (from acknowledged answers)."""

    id: str
    seed: bool
    listeners: dict = field(default_factory=dict)  # listener id -> {"port", "pool", "created_bare"}
    pools: dict = field(default_factory=dict)  # pool id -> {"members": {member id: backend name}}
    name_counter: int = 0


class Writer(threading.Thread):
    """One write thread: random changes to its own load balancers until the server stops
    answering (or the bounds are hit)."""

    def __init__(self, idx: int, endpoint: str, subnet: str, backends, seed_lb: OwnedLb, ports, rng_seed: int, go,
                 first_ack):
        super().__init__(name=f"crash-writer-{idx}", daemon=True)
        self.idx = idx
        self.endpoint = endpoint
        self.subnet = subnet
        self.backends = {b.name: b for b in backends}
        self.lbs: dict[str, OwnedLb] = {seed_lb.id: seed_lb}
        self.ports = ports  # shared iterator of unique listener ports (guarded by ports_lock)
        self.rng = random.Random(rng_seed)
        self.go = go
        self.first_ack = first_ack
        self.ops: list[Op] = []
        self.stopped_by: str | None = None

    # -- choosing a change -------------------------------------------------------------------

    def next_port(self) -> int:
        with PORTS_LOCK:
            return next(self.ports)

    def choose(self) -> Op | None:
        rng = self.rng
        lbs = list(self.lbs.values())
        lb = rng.choice(lbs) if lbs else None
        n = len(self.ops)
        tag = f"t{self.idx}-{n}"
        choices = ["create_lb"] * 2
        if lb:
            choices += ["update_lb"] * 3 + ["create_listener"] * 2 + ["update_listener"] * 3
            choices += ["update_member"] * 3 + ["delete_member"] * 2 + ["create_member"] * 3
            choices += ["create_pool"] * 2 + ["delete_listener"] * 1 + ["delete_lb"] * 1
        kind = rng.choice(choices)
        if kind == "create_lb":
            if len(self.lbs) >= 4:
                kind = "update_lb"
            else:
                port = self.next_port()
                name = f"crash-{tag}"
                members = list(self.backends.values())
                return Op(self.idx, n, kind, "POST", "/v2/lbaas/loadbalancers", full_lb_body(name, self.subnet, port, members),
                          expect={"name": name, "port": port})
        if kind == "update_lb":
            name = f"lb-{tag}"
            body = {"loadbalancer": {"name": name, "description": f"desc-{tag}"}}
            return Op(self.idx, n, kind, "PUT", f"/v2/lbaas/loadbalancers/{lb.id}", body, target=lb.id,
                      expect={"name": name, "description": f"desc-{tag}"})
        if kind == "create_listener":
            port = self.next_port()
            body = {"listener": {"name": f"l-{tag}", "protocol": "HTTP", "protocol_port": port, "loadbalancer_id": lb.id}}
            return Op(self.idx, n, kind, "POST", "/v2/lbaas/listeners", body, target=lb.id,
                      expect={"name": f"l-{tag}", "protocol_port": port})
        if kind == "update_listener" and lb.listeners:
            lid = rng.choice(sorted(lb.listeners))
            body = {"listener": {"name": f"lu-{tag}", "description": f"ld-{tag}", "connection_limit": 1000 + n}}
            return Op(self.idx, n, kind, "PUT", f"/v2/lbaas/listeners/{lid}", body, target=lid,
                      expect={"name": f"lu-{tag}", "description": f"ld-{tag}", "connection_limit": 1000 + n})
        if kind == "create_pool":
            bare = [lid for lid, l in sorted(lb.listeners.items()) if l["pool"] is None]
            if bare:
                lid = rng.choice(bare)
                body = {"pool": {"name": f"p-{tag}", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "listener_id": lid}}
                return Op(self.idx, n, kind, "POST", "/v2/lbaas/pools", body, target=lid, expect={"name": f"p-{tag}", "listener": lid})
        pools = sorted(lb.pools.items())
        if kind == "create_member" and pools:
            pid, p = rng.choice(pools)
            free = [b for name, b in sorted(self.backends.items()) if name not in p["members"].values()]
            if free:
                b = rng.choice(free)
                body = {"member": {"name": f"m-{tag}", "address": b.host, "protocol_port": b.port, "weight": rng.randint(1, 5)}}
                return Op(self.idx, n, kind, "POST", f"/v2/lbaas/pools/{pid}/members", body, target=pid,
                          expect={"name": f"m-{tag}", "backend": b.name, "weight": body["member"]["weight"]})
        if kind == "update_member" and pools:
            pid, p = rng.choice(pools)
            if p["members"]:
                mid = rng.choice(sorted(p["members"]))
                w = rng.randint(1, 9)
                body = {"member": {"name": f"mu-{tag}", "weight": w}}
                return Op(self.idx, n, kind, "PUT", f"/v2/lbaas/pools/{pid}/members/{mid}", body, target=mid,
                          expect={"name": f"mu-{tag}", "weight": w, "pool": pid})
        if kind == "delete_member" and pools:
            # Keep at least one member per pool, so the VIP check has something to reach.
            pid, p = rng.choice(pools)
            if len(p["members"]) > 1:
                mid = rng.choice(sorted(p["members"]))
                return Op(self.idx, n, kind, "DELETE", f"/v2/lbaas/pools/{pid}/members/{mid}", None, target=mid, expect={"pool": pid})
        if kind == "delete_listener":
            bare = [lid for lid, l in sorted(lb.listeners.items()) if l["created_bare"] and l["pool"] is None]
            if bare:
                lid = rng.choice(bare)
                return Op(self.idx, n, kind, "DELETE", f"/v2/lbaas/listeners/{lid}", None, target=lid)
        if kind == "delete_lb" and not lb.seed:
            return Op(self.idx, n, kind, "DELETE", f"/v2/lbaas/loadbalancers/{lb.id}?cascade=true", None, target=lb.id)
        return None

    # -- learning from an acknowledged answer ------------------------------------------------

    def learn(self, op: Op) -> None:
        doc = op.response or {}
        if op.kind == "create_lb":
            lb = doc["loadbalancer"]
            owned = OwnedLb(lb["id"], seed=False)
            learn_full_create(owned, lb, self.backends)
            self.lbs[owned.id] = owned
        elif op.kind == "create_listener":
            l = doc["listener"]
            self.lbs[op.target].listeners[l["id"]] = {"port": l["protocol_port"], "pool": None, "created_bare": True}
        elif op.kind == "create_pool":
            p = doc["pool"]
            for lb in self.lbs.values():
                if op.target in lb.listeners:
                    lb.listeners[op.target]["pool"] = p["id"]
                    lb.pools[p["id"]] = {"members": {}}
        elif op.kind == "create_member":
            m = doc["member"]
            for lb in self.lbs.values():
                if op.target in lb.pools:
                    lb.pools[op.target]["members"][m["id"]] = op.expect["backend"]
        elif op.kind == "delete_member":
            for lb in self.lbs.values():
                for p in lb.pools.values():
                    p["members"].pop(op.target, None)
        elif op.kind == "delete_listener":
            for lb in self.lbs.values():
                lb.listeners.pop(op.target, None)
        elif op.kind == "delete_lb":
            self.lbs.pop(op.target, None)

    def run(self) -> None:
        self.go.wait(timeout=30)
        deadline = time.monotonic() + BURST_MAX_SECONDS
        while len(self.ops) < BURST_MAX_OPS and time.monotonic() < deadline:
            op = self.choose()
            if op is None:
                continue
            op.t_sent = time.monotonic()
            self.ops.append(op)
            try:
                op.status, op.response = call(self.endpoint, op.method, op.path, op.body)
            except NoAnswer as e:
                op.error = str(e)
                op.t_done = time.monotonic()
                self.stopped_by = f"no answer to {op.short()}"
                return
            op.t_done = time.monotonic()
            if 200 <= op.status < 300:
                op.outcome = "ack"
                self.learn(op)
                self.first_ack.set()
            else:
                op.outcome = "rejected"
                if op.status == 409:
                    time.sleep(0.002)  # the LB is busy: let the controller settle it
        self.stopped_by = "bound reached"


PORTS_LOCK = threading.Lock()


def learn_full_create(owned: OwnedLb, lb: dict, backends: dict) -> None:
    by_addr = {(b.host, b.port): name for name, b in backends.items()}
    pools = {p["id"]: p for p in lb.get("pools", [])}
    for p in pools.values():
        owned.pools[p["id"]] = {
            "members": {m["id"]: by_addr.get((m["address"], m["protocol_port"]), "?") for m in p.get("members", [])}
        }
    for l in lb.get("listeners", []):
        owned.listeners[l["id"]] = {"port": l["protocol_port"], "pool": l.get("default_pool_id"), "created_bare": False}


# ---------------------------------------------------------------------------------------------
# What must be true after the restart


@dataclass
class Expected:
    """Per object id: what the acknowledged history says."""

    kind: str  # loadbalancer | listener | pool | member
    id: str
    path: str
    present: str = "yes"  # "yes", "no" (acknowledged delete), "maybe" (unknown-outcome delete)
    fields: dict = field(default_factory=dict)  # field -> set of acceptable values
    because: list = field(default_factory=list)  # ops that shaped this expectation
    children: set = field(default_factory=set)  # ids removed with it by a cascade delete
    url: str | None = None  # a listener's http://VIP:port/ (ports are unique in a run)


def expectations(seed_docs: list[dict], ops_by_thread: list[list[Op]]) -> dict[str, Expected]:
    """Fold the seed load balancers and every thread's requests, in each thread's order, into
    what must be true after the restart."""
    exp: dict[str, Expected] = {}

    def put(kind, oid, path, op, fields=None, parent=None):
        e = Expected(kind, oid, path, because=[op.short()])
        for k, v in (fields or {}).items():
            e.fields[k] = {v}
        exp[oid] = e
        if parent and parent in exp:
            exp[parent].children.add(oid)

    def absent(oid, how, op):
        e = exp.get(oid)
        if e is None:
            return
        if how == "no" or e.present == "yes":
            e.present = how
        e.because.append(op.short())
        for c in list(e.children):
            absent(c, how, op)

    def created_lb(lb, op):
        put("loadbalancer", lb["id"], f"/v2/lbaas/loadbalancers/{lb['id']}", op,
            {"name": lb["name"], "vip_address": lb["vip_address"]})
        for l in lb.get("listeners", []):
            put("listener", l["id"], f"/v2/lbaas/listeners/{l['id']}", op, {"protocol_port": l["protocol_port"]}, lb["id"])
            exp[l["id"]].url = f"http://{lb['vip_address']}:{l['protocol_port']}/"
        for p in lb.get("pools", []):
            put("pool", p["id"], f"/v2/lbaas/pools/{p['id']}", op, {"name": p["name"]}, lb["id"])
            for m in p.get("members", []):
                put("member", m["id"], f"/v2/lbaas/pools/{p['id']}/members/{m['id']}", op,
                    {"address": m["address"], "protocol_port": m["protocol_port"]}, p["id"])
                exp[lb["id"]].children.add(m["id"])

    for lb in seed_docs:
        created_lb(lb, Op(-1, 0, "seed", "POST", "/v2/lbaas/loadbalancers", None, outcome="ack", status=201))

    for ops in ops_by_thread:
        for op in ops:
            if op.outcome == "rejected":
                continue
            acked = op.outcome == "ack"
            doc = op.response if acked else None
            if op.kind == "create_lb" and acked:
                created_lb(doc["loadbalancer"], op)
            elif op.kind == "create_listener" and acked:
                l = doc["listener"]
                put("listener", l["id"], f"/v2/lbaas/listeners/{l['id']}", op,
                    {"name": op.expect["name"], "protocol_port": op.expect["protocol_port"]}, op.target)
                if op.target in exp:
                    vip = next(iter(exp[op.target].fields["vip_address"]))
                    exp[l["id"]].url = f"http://{vip}:{l['protocol_port']}/"
            elif op.kind == "create_pool" and acked:
                p = doc["pool"]
                put("pool", p["id"], f"/v2/lbaas/pools/{p['id']}", op, {"name": op.expect["name"]})
                lb_id = p["loadbalancers"][0]["id"]
                if lb_id in exp:
                    exp[lb_id].children.add(p["id"])
                if op.target in exp:
                    exp[op.target].fields["default_pool_id"] = {p["id"]}
                    exp[op.target].because.append(op.short())
            elif op.kind == "create_member" and acked:
                m = doc["member"]
                put("member", m["id"], f"/v2/lbaas/pools/{op.target}/members/{m['id']}", op,
                    {"name": op.expect["name"], "weight": op.expect["weight"],
                     "address": op.body["member"]["address"], "protocol_port": op.body["member"]["protocol_port"]},
                    op.target)
                for e in list(exp.values()):
                    if e.kind == "loadbalancer" and op.target in e.children:
                        e.children.add(m["id"])
            elif op.kind.startswith("update_"):
                e = exp.get(op.target)
                if e is None:
                    continue
                e.because.append(op.short())
                for k, v in op.expect.items():
                    if k == "pool":
                        continue
                    # Acknowledged: the new value replaces the old. Unknown outcome: either the
                    # old or the new one (a field whose old value is not known stays unchecked).
                    if acked:
                        e.fields[k] = {v}
                    elif k in e.fields:
                        e.fields[k] = e.fields[k] | {v}
            elif op.kind.startswith("delete_"):
                absent(op.target, "no" if acked else "maybe", op)
    return exp


# ---------------------------------------------------------------------------------------------
# Checks against the restarted server


class Findings:
    def __init__(self):
        self.problems: list[str] = []

    def add(self, rule: str, text: str):
        self.problems.append(f"[{rule}] {text}")


def get(endpoint, path, findings: Findings, rule="no 500"):
    status, doc = call(endpoint, "GET", path, timeout=10)
    if status >= 500:
        findings.add(rule, f"GET {path} -> {status} {doc}")
    return status, doc


def list_all(endpoint, what: str) -> list[dict]:
    status, doc = call(endpoint, "GET", f"/v2/lbaas/{what}", timeout=10)
    assert status == 200, f"GET /v2/lbaas/{what} -> {status} {doc}"
    return doc[what]


PENDING = ("PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE")


def wait_settled(endpoint: str) -> dict:
    """Poll until no LB, listener, pool or member is PENDING_*; fail naming the stuck ones."""
    last: dict = {}

    def check():
        stuck = []
        objs = {}
        for what in ("loadbalancers", "listeners", "pools", "members"):
            if what == "members":
                items = []
                for p in objs["pools"]:
                    status, doc = call(endpoint, "GET", f"/v2/lbaas/pools/{p['id']}/members", timeout=10)
                    if status == 200:
                        items += [dict(m, pool_id=p["id"]) for m in doc["members"]]
            else:
                items = list_all(endpoint, what)
            objs[what] = items
            stuck += [f"{what[:-1]} {o['id']} ({o.get('name')}) {o['provisioning_status']}" for o in items if o["provisioning_status"] in PENDING]
        last["stuck"] = stuck
        last.setdefault("first", list(stuck))
        last["objs"] = objs
        return objs if not stuck else None

    objs = poll(check, SETTLE_TIMEOUT, lambda: "every object to leave PENDING_* after the restart "
                f"(the controller resumes pending work); still pending: {last.get('stuck')}", interval=0.3)
    objs["pending_at_first_look"] = last["first"]
    return objs


def check_after_restart(server, exp: dict[str, Expected], backends) -> tuple[Findings, dict]:
    ep = server.endpoint
    f = Findings()
    objs = wait_settled(ep)

    # Acknowledged deletes finish (the controller resumes them), acknowledged creates are there.
    def gone_or_present():
        pending = []
        for e in exp.values():
            if e.present == "no":
                status, _ = call(ep, "GET", e.path, timeout=10)
                if status != 404:
                    pending.append(e.id)
        return not pending or None

    try:
        poll(gone_or_present, SETTLE_TIMEOUT, "acknowledged deletes to finish")
    except AssertionError:
        pass  # reported object by object below

    for e in exp.values():
        status, doc = get(ep, e.path, f)
        history = " ".join(e.because[:1] + (["..."] if len(e.because) > 7 else []) + e.because[1:][-6:])
        if e.present == "yes":
            if status != 200:
                f.add("acknowledged create survives",
                      f"{e.kind} {e.id}: GET {e.path} -> {status} {doc}; history: {history}")
                continue
            obj = doc[e.kind]
            for k, accepted in e.fields.items():
                actual = backend_of(obj, backends) if k == "backend" else obj.get(k)
                if actual not in accepted:
                    f.add("acknowledged update survives",
                          f"{e.kind} {e.id}: {k} is {actual!r}, expected one of {sorted(map(str, accepted))}; history: {history}")
        elif e.present == "no":
            if status != 404:
                f.add("acknowledged delete takes effect",
                      f"{e.kind} {e.id}: GET {e.path} -> {status} "
                      f"{(doc or {}).get(e.kind, {}).get('provisioning_status', doc)}; history: {history}")
            if e.kind == "listener" and e.url:
                # Nothing else ever uses this VIP:port in the run, so it must not answer.
                try:
                    r = http_get(e.url, timeout=2)
                    f.add("acknowledged delete takes effect",
                          f"deleted listener {e.id} still answers on {e.url}: {r.status} {r.body[:100]!r}; history: {history}")
                except OSError:
                    pass
        else:
            if status not in (200, 404):
                f.add("unknown-outcome delete", f"{e.kind} {e.id}: GET {e.path} -> {status} {doc}")

    # Nothing half-written: every reference resolves, every status tree renders.
    lbs = {o["id"]: o for o in objs["loadbalancers"]}
    listeners = {o["id"]: o for o in objs["listeners"]}
    pools = {o["id"]: o for o in objs["pools"]}
    members_by_pool: dict[str, list] = {}
    for m in objs["members"]:
        members_by_pool.setdefault(m["pool_id"], []).append(m)
    for what, table in (("listeners", listeners), ("pools", pools)):
        for oid in table:
            status, doc = get(ep, f"/v2/lbaas/{what}/{oid}", f)
            if status != 200:
                f.add("references resolve", f"{what[:-1]} {oid} is listed but GET -> {status} {doc}")
    for l in listeners.values():
        for ref in l.get("loadbalancers", []):
            if ref["id"] not in lbs:
                f.add("no orphans", f"listener {l['id']} belongs to missing load balancer {ref['id']}")
        if l.get("default_pool_id") and l["default_pool_id"] not in pools:
            f.add("no orphans", f"listener {l['id']} has missing default pool {l['default_pool_id']}")
    for p in pools.values():
        for ref in p.get("loadbalancers", []):
            if ref["id"] not in lbs:
                f.add("no orphans", f"pool {p['id']} belongs to missing load balancer {ref['id']}")
        for ref in p.get("listeners", []):
            if ref["id"] not in listeners:
                f.add("no orphans", f"pool {p['id']} names missing listener {ref['id']}")
        for ref in p.get("members", []):
            status, _ = get(ep, f"/v2/lbaas/pools/{p['id']}/members/{ref['id']}", f)
            if status != 200:
                f.add("references resolve", f"pool {p['id']} lists member {ref['id']} but GET -> {status}")
    for lb in lbs.values():
        for kind, table in (("listeners", listeners), ("pools", pools)):
            for ref in lb.get(kind, []):
                if ref["id"] not in table:
                    f.add("references resolve", f"load balancer {lb['id']} lists {kind[:-1]} {ref['id']} which is missing")
        status, doc = get(ep, f"/v2/lbaas/loadbalancers/{lb['id']}/status", f, rule="status tree renders")
        if status != 200:
            f.add("status tree renders", f"GET /v2/lbaas/loadbalancers/{lb['id']}/status -> {status} {doc}")
        else:
            tree = doc["statuses"]["loadbalancer"]
            tree_listeners = {x["id"] for x in tree.get("listeners", [])}
            if tree_listeners != {x["id"] for x in lb.get("listeners", [])}:
                f.add("status tree renders", f"LB {lb['id']}: status tree listeners {tree_listeners} != {lb.get('listeners')}")
        status, doc = get(ep, f"/v2/lbaas/loadbalancers/{lb['id']}/stats", f)
        if status != 200:
            f.add("no 500", f"GET /v2/lbaas/loadbalancers/{lb['id']}/stats -> {status} {doc}")
    for what in ("healthmonitors", "l7policies", "amphorae"):
        path = "/v2/octavia/amphorae" if what == "amphorae" else f"/v2/lbaas/{what}"
        status, doc = get(ep, path, f)
        if status != 200:
            f.add("no 500", f"GET {path} -> {status} {doc}")

    # The data plane serves again: every ACTIVE LB with a listener whose pool has members.
    names = {b.name for b in backends}
    vip_results = {}
    for lb in lbs.values():
        if lb["provisioning_status"] != "ACTIVE" or not lb["admin_state_up"]:
            continue
        for ref in lb.get("listeners", []):
            l = listeners.get(ref["id"])
            if not l or l["provisioning_status"] != "ACTIVE" or not l["admin_state_up"] or not l.get("default_pool_id"):
                continue
            pool = pools.get(l["default_pool_id"])
            ms = [m for m in members_by_pool.get(l["default_pool_id"], [])
                  if m["provisioning_status"] == "ACTIVE" and m["admin_state_up"] and m["weight"] > 0]
            if not pool or pool["provisioning_status"] != "ACTIVE" or not pool["admin_state_up"] or not ms:
                continue
            url = f"http://{lb['vip_address']}:{l['protocol_port']}/"
            attempts = [0]
            last = [None]

            def answers(url=url):
                attempts[0] += 1
                try:
                    r = http_get(url, timeout=2)
                except OSError as e:
                    last[0] = repr(e)
                    return None
                last[0] = f"{r.status} {r.body[:100]!r}"
                return r if r.status == 200 and r.body.decode(errors="replace") in names else None

            try:
                poll(answers, VIP_TIMEOUT, "", interval=0.2)
                vip_results[url] = attempts[0]
            except AssertionError:
                f.add("data plane serves again",
                      f"LB {lb['id']} ({lb['name']}) is ACTIVE with listener {l['id']} -> pool {pool['id']} "
                      f"({len(ms)} active members) but {url} did not answer 200 from a backend within "
                      f"{VIP_TIMEOUT:.0f} s (last: {last[0]})")
    return f, {"lbs": lbs, "vip_results": vip_results, "pending_at_first_look": objs["pending_at_first_look"],
               "errors": [lb["id"] for lb in lbs.values() if lb["provisioning_status"] == "ERROR"]}


def backend_of(member: dict, backends) -> str | None:
    for b in backends:
        if (member.get("address"), member.get("protocol_port")) == (b.host, b.port):
            return b.name
    return None


# ---------------------------------------------------------------------------------------------
# The scenario


def create_seed_lbs(server, subnet, backends, ports, count) -> tuple[list[OwnedLb], list[dict]]:
    seeds = []
    created = []
    for i in range(count):
        port = next(ports)
        status, doc = call(server.endpoint, "POST", "/v2/lbaas/loadbalancers",
                           full_lb_body(f"crash-seed-{i}", subnet, port, backends))
        assert status == 201, f"seed create -> {status} {doc}"
        created.append(doc["loadbalancer"])
    for lb in created:
        wait_lb_active(server, lb["id"])
        owned = OwnedLb(lb["id"], seed=True)
        learn_full_create(owned, lb, {b.name: b for b in backends})
        seeds.append(owned)
    return seeds, created


def pending_on_disk(data_dir: Path, store: str | None = None) -> str:
    """Diagnostics only (best effort, never fails the test): how much unfinished work the killed
    server left in its store, read from a copy of the SQLite files (or from its PostgreSQL
    database), so the log shows whether the restart had pending work to resume."""
    import sqlite3

    if store:
        try:
            proc = pg_support.psql(store, "SELECT count(*) FROM pending_work", check=False)
            if proc.returncode != 0:
                return f"unknown ({proc.stderr.strip()})"
            return f"{proc.stdout.strip()} pending-work rows"
        except Exception as e:  # noqa: BLE001 - diagnostics only
            return f"unknown ({e!r})"

    tmp = Path(tempfile.mkdtemp(prefix="statera-e2e-crash-peek-"))
    try:
        for f in (data_dir / "data").glob("statera.sqlite*"):
            shutil.copy(f, tmp / f.name)
        db = sqlite3.connect(tmp / "statera.sqlite")
        try:
            work = db.execute("SELECT count(*) FROM pending_work").fetchone()[0]
            lbs = db.execute(
                "SELECT count(*) FROM loadbalancers WHERE json_extract(doc, '$.provisioning_status') LIKE 'PENDING%'"
            ).fetchone()[0]
        finally:
            db.close()
        return f"{work} pending-work rows, {lbs} load balancers PENDING_*"
    except Exception as e:  # noqa: BLE001 - diagnostics only
        return f"unknown ({e!r})"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_log(label: str, seed: int, kill_at: float | None, writers, exp, findings) -> Path | None:
    try:
        LOG_KEEP_DIR.mkdir(parents=True, exist_ok=True)
        path = LOG_KEEP_DIR / f"crash-{label}-{os.getpid()}-{int(time.time())}.json"
        path.write_text(json.dumps({
            "seed": seed,
            "kill_at": kill_at,
            "threads": [{"stopped_by": w.stopped_by, "ops": [asdict(o) for o in w.ops]} for w in writers],
            "expected": {k: {**asdict(v), "fields": {f: sorted(map(str, s)) for f, s in v.fields.items()},
                             "children": sorted(v.children)} for k, v in exp.items()},
            "findings": findings,
        }, indent=1, default=str))
        return path
    except OSError:
        return None


@pytest.mark.parametrize("window", KILL_WINDOWS, ids=[w[0] for w in KILL_WINDOWS])
def test_sigkill_during_write_burst(window, backends, store_kind, request):
    label, earliest, latest = window
    seed = int(os.environ.get("STATERA_CRASH_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    kill_after = round(rng.uniform(earliest, latest), 3)
    print(f"crash test '{label}': seed {seed} (STATERA_CRASH_SEED={seed} repeats the choices), "
          f"kill {kill_after} s after the first acknowledged write")
    data_dir = Path(tempfile.mkdtemp(prefix=f"statera-e2e-crash-{label}-"))
    port = free_port()
    ports = iter(range(FIRST_PORT, FIRST_PORT + 10_000))
    try:
        with pg_support.store_url(store_kind, request) as store:
            burst_kill_restart(label, seed, kill_after, data_dir, port, ports, store, backends)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def burst_kill_restart(label, seed, kill_after, data_dir, port, ports, store, backends):
    """The burst on a server at (data_dir, port, store), the SIGKILL, the restart on the same
    three, and the checks."""
    with start_statera(data_dir=data_dir, port=port, store=store) as first:
        subnet = subnet_id(first.endpoint)
        seeds, seed_docs = create_seed_lbs(first, subnet, backends, ports, SEED_LBS)
        go, first_ack = threading.Event(), threading.Event()
        writers = [
            Writer(i, first.endpoint, subnet, backends, seeds[i], ports, seed * 100 + i, go, first_ack)
            for i in range(BURST_THREADS)
        ]
        for w in writers:
            w.start()
        t0 = time.monotonic()
        go.set()
        first_ack.wait(timeout=FIRST_ACK_TIMEOUT)
        time.sleep(kill_after)
        first.process.send_signal(signal.SIGKILL)  # this server's pid only
        killed_at = time.monotonic() - t0
        first.process.wait(timeout=10)
        for w in writers:
            w.join(timeout=REQUEST_TIMEOUT + 5)
        alive = [w.name for w in writers if w.is_alive()]
        assert not alive, f"write threads still running after the kill: {alive}"

    ops = [o for w in writers for o in w.ops]
    acked = [o for o in ops if o.outcome == "ack"]
    unknown = [o for o in ops if o.outcome == "unknown"]
    server_errors = [o.short() + f" {o.response}" for o in ops if o.status is not None and o.status >= 500]
    by_kind = {}
    for o in acked:
        by_kind[o.kind] = by_kind.get(o.kind, 0) + 1
    print(f"burst: {len(ops)} requests, {len(acked)} acknowledged {by_kind}, {len(unknown)} unanswered, "
          f"{sum(o.outcome == 'rejected' for o in ops)} rejected; killed at {killed_at:.3f} s")
    assert acked, (f"no write was acknowledged before the kill at {killed_at:.3f} s: the test checked "
                   f"nothing (requests: {[o.short() for o in ops]})")
    for w in writers:
        # Only the last request of a thread may be unanswered (the one in flight at the kill).
        assert all(o.outcome != "unknown" for o in w.ops[:-1]), f"{w.name}: unanswered request before its last"

    exp = expectations(seed_docs, [w.ops for w in writers])
    print(f"left on disk by the killed server: {pending_on_disk(data_dir, store)}")

    with start_statera(data_dir=data_dir, port=port, store=store) as second:
        findings, info = check_after_restart(second, exp, backends)
        problems = findings.problems + [f"[no 500] during the burst: {e}" for e in server_errors]
        # The whole request log (~1 MB) is kept only when something is wrong.
        log = write_log(label, seed, killed_at, writers, exp, problems) if problems or info["errors"] else None
        print(f"after restart: {len(info['pending_at_first_look'])} objects still PENDING_* at the first look, "
              f"{len(info['lbs'])} load balancers, {len(info['errors'])} in ERROR, "
              f"{len(info['vip_results'])} VIPs answered (attempts: {sorted(set(info['vip_results'].values()))}); "
              f"log {log}")
        assert not problems, (
            f"crash recovery ({label}, seed {seed}, killed {killed_at:.3f} s into the burst) found "
            f"{len(problems)} problem(s):\n  " + "\n  ".join(problems[:40])
            + f"\nrequest log: {log}\nunanswered at the kill: {[o.short() for o in unknown]}"
        )
        assert not info["errors"], (
            f"load balancers in ERROR after the restart (every change in the burst was valid, so "
            f"nothing should have been refused): {info['errors']}; request log: {log}"
        )


def test_sigkill_right_after_fully_populated_create(backends, store_kind, request):
    """The 201 of a fully populated create is an acknowledgement: killed at once (before the
    controller had any chance to apply it, most likely), the restarted server must finish the
    work and serve the VIP."""
    data_dir = Path(tempfile.mkdtemp(prefix="statera-e2e-crash-create-"))
    port = free_port()
    try:
        with pg_support.store_url(store_kind, request) as store:
            kill_after_create_and_restart(data_dir, port, store, backends)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def kill_after_create_and_restart(data_dir, port, store, backends):
    """The create, the SIGKILL, the restart on the same (data_dir, port, store), the checks."""
    with start_statera(data_dir=data_dir, port=port, store=store) as first:
        subnet = subnet_id(first.endpoint)
        status, doc = call(first.endpoint, "POST", "/v2/lbaas/loadbalancers",
                           full_lb_body("crash-create", subnet, FIRST_PORT, backends))
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        assert status == 201, f"fully populated create -> {status} {doc}"
        lb = doc["loadbalancer"]
        assert lb["provisioning_status"] == "PENDING_CREATE", lb["provisioning_status"]
        listener_ids = [l["id"] for l in lb["listeners"]]
        pool_ids = [p["id"] for p in lb["pools"]]
        member_ids = [m["id"] for p in lb["pools"] for m in p["members"]]
        assert len(listener_ids) == 1 and len(pool_ids) == 1 and len(member_ids) == len(backends), lb

    with start_statera(data_dir=data_dir, port=port, store=store) as second:
        again = wait_lb_active(second, lb["id"], timeout=SETTLE_TIMEOUT)
        assert again["vip_address"] == lb["vip_address"]
        assert {x["id"] for x in again["listeners"]} == set(listener_ids)
        assert {x["id"] for x in again["pools"]} == set(pool_ids)
        for mid in member_ids:
            status, m = call(second.endpoint, "GET", f"/v2/lbaas/pools/{pool_ids[0]}/members/{mid}")
            assert status == 200 and m["member"]["provisioning_status"] == "ACTIVE", f"member {mid}: {status} {m}"
        status, tree = call(second.endpoint, "GET", f"/v2/lbaas/loadbalancers/{lb['id']}/status")
        assert status == 200, f"status tree -> {status} {tree}"
        url = f"http://{lb['vip_address']}:{FIRST_PORT}/"
        seen = set()
        last = [None]

        def both_backends():
            try:
                r = http_get(url, timeout=2)
            except OSError as e:
                last[0] = repr(e)
                return None
            last[0] = f"{r.status} {r.body[:100]!r}"
            if r.status == 200:
                seen.add(r.body.decode())
            return seen >= {b.name for b in backends}

        poll(both_backends, VIP_TIMEOUT, lambda: f"{url} to answer from every backend (seen {seen}, last {last[0]})")
