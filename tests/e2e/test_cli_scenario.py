"""The whole life of a load balancer, driven by the ordinary `openstack loadbalancer ...` CLI
(python-openstackclient + python-octaviaclient) against a real `statera serve`.

The steps run in file order and share one server, two local backends and a `state` dict. A step
whose prerequisite step failed fails too (it never skips), so a broken feature shows up as the
first failure and every failure is reported. After every change the test waits for the load
balancer to be ACTIVE again, as every real client does (`--wait`, then a bounded API poll).
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import (
    assert_in_subnet,
    free_port,
    http_get,
    poll,
    start_backends,
    wait_gone,
    wait_http_ok,
    wait_lb_active,
)

LISTENER_PORT = 8080
UUID_LIKE = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def state(store_kind):
    # One scenario's state per store backend (the module runs once per backend).
    return {}


@pytest.fixture(scope="module")
def backends(store_kind):
    """conftest's backends, but fresh per store backend: test_08 and test_10 read what the
    backends received, which must not include the other backend's run."""
    with start_backends("backend-a", "backend-b") as bs:
        yield bs


def need(state, *keys):
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step failed, so {', '.join(missing)} is unknown", pytrace=False)
    return [state[k] for k in keys] if len(keys) > 1 else state[keys[0]]


def vip_url(state, path="/"):
    return f"http://{need(state, 'vip')}:{LISTENER_PORT}{path}"


def names_in(listing) -> list[str]:
    return [row.get("name") if isinstance(row, dict) else None for row in listing]


def api_get(server, path):
    r = server.api("GET", path)
    assert r.status == 200, f"GET {path} -> {r.status}: {r.body[:500]!r}"
    return r.json()


# ---------------------------------------------------------------------------------------------


def test_01_discovery_and_host_subnet(statera_server, cli, state):
    r = statera_server.api("GET", "/", headers={"X-Auth-Token": None})
    assert r.status == 200, f"GET / -> {r.status}"
    versions = r.json()["versions"]
    current = [v for v in versions if v.get("status") == "CURRENT"]
    assert current, f"no CURRENT version in {versions}"
    assert any(link.get("rel") == "self" for link in current[-1].get("links", [])), current

    # The API view of the subnet first, so the later steps do not depend on the network CLI.
    subnets = api_get(statera_server, "/v2.0/subnets?name=host-subnet")["subnets"]
    assert [s["name"] for s in subnets] == ["host-subnet"], subnets
    state["subnet_id"] = subnets[0]["id"]
    state["subnet_cidr"] = subnets[0]["cidr"]
    if statera_server.host_subnet:
        assert subnets[0]["cidr"] == statera_server.host_subnet

    # The network side of the CLI (openstacksdk's network proxy) resolves names the same way.
    subnet = cli.json("subnet", "show", "host-subnet")
    assert subnet["id"] == state["subnet_id"]
    assert subnet["cidr"] == state["subnet_cidr"]
    network = cli.json("network", "show", "host-net")
    assert network["id"] == subnet["network_id"]
    assert "host-subnet" in json.dumps(cli.json("subnet", "list"))


def test_02_create_lb_by_subnet_name(statera_server, cli, state):
    need(state, "subnet_id")
    created = cli.json(
        "loadbalancer", "create", "--name", "lb-cli", "--description", "e2e cli",
        "--vip-subnet-id", "host-subnet", "--wait",
    )
    lb_id = created["id"]
    assert UUID_LIKE.match(lb_id), lb_id
    assert created["name"] == "lb-cli"
    assert created["vip_subnet_id"] == state["subnet_id"]
    assert_in_subnet(created["vip_address"], state["subnet_cidr"])
    lb = wait_lb_active(statera_server, lb_id)
    state["lb_id"] = lb_id
    state["vip"] = lb["vip_address"]
    state["project_id"] = lb["project_id"]
    assert UUID_LIKE.match(lb["project_id"]), (
        f"project_id {lb['project_id']!r} is not UUID-like: the CLI then asks Keystone to resolve it"
    )

    by_name = cli.json("loadbalancer", "show", "lb-cli")
    by_id = cli.json("loadbalancer", "show", lb_id)
    for shown in (by_name, by_id):
        assert shown["id"] == lb_id
        assert shown["provisioning_status"] == "ACTIVE"
        assert shown["description"] == "e2e cli"
        assert shown["admin_state_up"] is True
        assert shown["vip_address"] == state["vip"]
        assert shown["vip_network_id"]


def test_03_create_lb_by_subnet_id_then_plain_delete(statera_server, cli, state):
    subnet_id, first_vip = need(state, "subnet_id", "vip")
    created = cli.json("loadbalancer", "create", "--name", "lb-cli-2", "--vip-subnet-id", subnet_id, "--wait")
    lb2 = wait_lb_active(statera_server, created["id"])
    assert lb2["vip_subnet_id"] == subnet_id
    assert lb2["vip_address"] != first_vip, "two load balancers got the same VIP"
    assert_in_subnet(lb2["vip_address"], state["subnet_cidr"])

    listing = cli.json("loadbalancer", "list")
    assert {"lb-cli", "lb-cli-2"} <= set(names_in(listing)), listing
    filtered = cli.json("loadbalancer", "list", "--name", "lb-cli-2")
    assert [row["id"] for row in filtered] == [created["id"]], filtered

    # No children: a plain delete (no --cascade) must work.
    cli.run("loadbalancer", "delete", "--wait", "lb-cli-2")
    wait_gone(statera_server, f"/v2/lbaas/loadbalancers/{created['id']}")
    assert "lb-cli-2" not in names_in(cli.json("loadbalancer", "list"))
    failed = cli.run("loadbalancer", "show", created["id"], expect_ok=False)
    assert "404" in failed.stderr or "Unable to locate" in failed.stderr, failed.describe()


def test_04_set_and_unset_lb(statera_server, cli, state):
    lb_id = need(state, "lb_id")
    cli.run("loadbalancer", "set", "--description", "set by name", "--wait", "lb-cli")
    wait_lb_active(statera_server, lb_id)
    assert cli.json("loadbalancer", "show", lb_id)["description"] == "set by name"
    cli.run("loadbalancer", "set", "--description", "set by id", "--wait", lb_id)
    wait_lb_active(statera_server, lb_id)
    assert cli.json("loadbalancer", "show", "lb-cli")["description"] == "set by id"
    cli.run("loadbalancer", "unset", "--description", "--wait", "lb-cli")
    lb = wait_lb_active(statera_server, lb_id)
    assert lb["description"] == "", f"description after unset: {lb['description']!r} (must be \"\", never null)"


def test_05_listener(statera_server, cli, state):
    lb_id = need(state, "lb_id")
    created = cli.json(
        "loadbalancer", "listener", "create", "--name", "l-cli", "--protocol", "HTTP",
        "--protocol-port", LISTENER_PORT, "--insert-headers", "X-Forwarded-For=true", "--wait", "lb-cli",
    )
    listener_id = created["id"]
    wait_lb_active(statera_server, lb_id)
    state["listener_id"] = listener_id

    for ref in ("l-cli", listener_id):
        shown = cli.json("loadbalancer", "listener", "show", ref)
        assert shown["id"] == listener_id
        assert shown["protocol"] == "HTTP"
        assert shown["protocol_port"] == LISTENER_PORT
        assert shown["provisioning_status"] == "ACTIVE"
        assert shown["connection_limit"] == -1
        assert (
            shown["timeout_client_data"], shown["timeout_member_connect"],
            shown["timeout_member_data"], shown["timeout_tcp_inspect"],
        ) == (50000, 5000, 50000, 0)
        assert lb_id in json.dumps(shown["loadbalancers"])
    raw = api_get(statera_server, f"/v2/lbaas/listeners/{listener_id}")["listener"]
    assert raw["loadbalancers"] == [{"id": lb_id}]
    assert raw["insert_headers"] == {"X-Forwarded-For": "true"}

    listing = cli.json("loadbalancer", "listener", "list", "--loadbalancer", "lb-cli")
    assert [row["id"] for row in listing] == [listener_id], listing

    cli.run("loadbalancer", "listener", "set", "--description", "listener by name",
            "--connection-limit", "5000", "--wait", "l-cli")
    wait_lb_active(statera_server, lb_id)
    cli.run("loadbalancer", "listener", "set", "--timeout-client-data", "60000", "--wait", listener_id)
    wait_lb_active(statera_server, lb_id)
    shown = cli.json("loadbalancer", "listener", "show", "l-cli")
    assert shown["description"] == "listener by name"
    assert shown["connection_limit"] == 5000
    assert shown["timeout_client_data"] == 60000

    # A listener without a pool answers, but has nobody to send the request to.
    r = poll(lambda: _try_get(vip_url(state)), 10, "the listener to accept connections")
    assert r.status == 503, f"listener without pool answered {r.status} {r.body[:200]!r}, expected 503"


def _try_get(url):
    try:
        return http_get(url, timeout=2)
    except OSError:
        return None


def test_06_pool_with_session_persistence(statera_server, cli, state):
    lb_id, listener_id = need(state, "lb_id", "listener_id")
    created = cli.json(
        "loadbalancer", "pool", "create", "--name", "p-cli", "--lb-algorithm", "ROUND_ROBIN",
        "--listener", "l-cli", "--protocol", "HTTP", "--session-persistence", "type=SOURCE_IP", "--wait",
    )
    pool_id = created["id"]
    wait_lb_active(statera_server, lb_id)
    state["pool_id"] = pool_id

    for ref in ("p-cli", pool_id):
        shown = cli.json("loadbalancer", "pool", "show", ref)
        assert shown["id"] == pool_id
        assert shown["lb_algorithm"] == "ROUND_ROBIN"
        assert shown["protocol"] == "HTTP"
        assert "SOURCE_IP" in json.dumps(shown["session_persistence"]), shown["session_persistence"]
        assert shown["provisioning_status"] == "ACTIVE"
    raw = api_get(statera_server, f"/v2/lbaas/pools/{pool_id}")["pool"]
    assert raw["session_persistence"]["type"] == "SOURCE_IP", raw["session_persistence"]
    assert raw["listeners"] == [{"id": listener_id}]
    assert raw["loadbalancers"] == [{"id": lb_id}]
    assert cli.json("loadbalancer", "listener", "show", "l-cli")["default_pool_id"] == pool_id

    assert [row["id"] for row in cli.json("loadbalancer", "pool", "list", "--loadbalancer", "lb-cli")] == [pool_id]
    cli.run("loadbalancer", "pool", "set", "--description", "pool by name", "--wait", "p-cli")
    wait_lb_active(statera_server, lb_id)
    cli.run("loadbalancer", "pool", "set", "--name", "p-cli", "--description", "pool by id", "--wait", pool_id)
    wait_lb_active(statera_server, lb_id)
    assert cli.json("loadbalancer", "pool", "show", "p-cli")["description"] == "pool by id"


def test_07_members(statera_server, cli, state, backends):
    lb_id, pool_id = need(state, "lb_id", "pool_id")
    member_ids = {}
    for b in backends:
        created = cli.json(
            "loadbalancer", "member", "create", "--name", f"m-{b.name}", "--address", b.host,
            "--protocol-port", b.port, "--wait", "p-cli",
        )
        member_ids[b.name] = created["id"]
        wait_lb_active(statera_server, lb_id)
    state["member_ids"] = member_ids

    listing = cli.json("loadbalancer", "member", "list", "p-cli")
    assert sorted(row["id"] for row in listing) == sorted(member_ids.values()), listing
    first, second = backends
    for ref in (f"m-{first.name}", member_ids[first.name]):
        shown = cli.json("loadbalancer", "member", "show", "p-cli", ref)
        assert shown["id"] == member_ids[first.name]
        assert shown["address"] == first.host
        assert shown["protocol_port"] == first.port
        assert shown["weight"] == 1
        assert shown["provisioning_status"] == "ACTIVE"
        assert shown["operating_status"] == "NO_MONITOR", "a member of a pool without health monitor"
    cli.run("loadbalancer", "member", "set", "--weight", "2", "--wait", "p-cli", f"m-{first.name}")
    wait_lb_active(statera_server, lb_id)
    cli.run("loadbalancer", "member", "set", "--name", f"m-{second.name}", "--wait", pool_id,
            member_ids[second.name])
    wait_lb_active(statera_server, lb_id)
    assert cli.json("loadbalancer", "member", "show", pool_id, member_ids[first.name])["weight"] == 2


def test_08_traffic_with_source_ip_persistence(state, backends):
    need(state, "member_ids")
    names = {b.name for b in backends}
    wait_http_ok(vip_url(state))
    answers = []
    for _ in range(10):
        r = http_get(vip_url(state))
        assert r.status == 200, f"GET {vip_url(state)} -> {r.status} {r.body[:200]!r}"
        answers.append(r.body.decode())
    assert set(answers) <= names, answers
    assert len(set(answers)) == 1, f"SOURCE_IP persistence should keep one client on one member: {answers}"

    # insert_headers X-Forwarded-For=true: the member sees the client's address.
    seen = [req for b in backends for req in b.requests if req["path"] == "/"]
    assert seen, "no backend received the proxied requests"
    xff = {next((v for k, v in req["headers"].items() if k.lower() == "x-forwarded-for"), None) for req in seen}
    assert xff == {"127.0.0.1"}, f"X-Forwarded-For seen by members: {xff}"


def test_09_round_robin_respects_weights(statera_server, cli, state, backends):
    lb_id = need(state, "lb_id")
    need(state, "member_ids")
    cli.run("loadbalancer", "pool", "unset", "--session-persistence", "--wait", "p-cli")
    wait_lb_active(statera_server, lb_id)
    raw = api_get(statera_server, f"/v2/lbaas/pools/{state['pool_id']}")["pool"]
    assert raw["session_persistence"] is None, raw["session_persistence"]

    wait_http_ok(vip_url(state))
    counts = {b.name: 0 for b in backends}
    for _ in range(12):
        r = http_get(vip_url(state))
        assert r.status == 200, f"{r.status} {r.body[:200]!r}"
        counts[r.body.decode()] += 1
    heavy, light = backends[0].name, backends[1].name  # weights 2 and 1 (test_07)
    assert counts[light] > 0, f"round robin never chose {light}: {counts}"
    assert counts[heavy] > counts[light], f"weight 2 vs 1 not respected: {counts}"


def test_10_health_monitor(statera_server, cli, state, backends):
    lb_id, pool_id, member_ids = need(state, "lb_id", "pool_id", "member_ids")
    created = cli.json(
        "loadbalancer", "healthmonitor", "create", "--name", "hm-cli", "--delay", "1", "--timeout", "1",
        "--max-retries", "1", "--type", "HTTP", "--url-path", "/healthz", "--wait", "p-cli",
    )
    hm_id = created["id"]
    wait_lb_active(statera_server, lb_id)
    state["hm_id"] = hm_id
    for ref in ("hm-cli", hm_id):
        shown = cli.json("loadbalancer", "healthmonitor", "show", ref)
        assert shown["id"] == hm_id
        assert (shown["type"], shown["http_method"], shown["url_path"], shown["expected_codes"]) == (
            "HTTP", "GET", "/healthz", "200",
        )
        assert (shown["delay"], shown["timeout"], shown["max_retries"], shown["max_retries_down"]) == (1, 1, 1, 3)
        assert pool_id in json.dumps(shown["pools"])
    assert cli.json("loadbalancer", "pool", "show", "p-cli")["healthmonitor_id"] == hm_id
    assert [row["id"] for row in cli.json("loadbalancer", "healthmonitor", "list")] == [hm_id]
    cli.run("loadbalancer", "healthmonitor", "set", "--delay", "2", "--wait", "hm-cli")
    wait_lb_active(statera_server, lb_id)
    cli.run("loadbalancer", "healthmonitor", "set", "--delay", "1", "--wait", hm_id)
    wait_lb_active(statera_server, lb_id)
    assert cli.json("loadbalancer", "healthmonitor", "show", hm_id)["delay"] == 1

    def members_online():
        members = api_get(statera_server, f"/v2/lbaas/pools/{pool_id}/members")["members"]
        statuses = {m["name"]: m["operating_status"] for m in members}
        state["last_member_statuses"] = statuses
        return all(s == "ONLINE" for s in statuses.values()) and statuses

    poll(members_online, 20, lambda: f"members ONLINE (last: {state.get('last_member_statuses')})", 0.5)

    # A member nobody listens on goes to ERROR and the pool to DEGRADED; traffic avoids it.
    dead_port = free_port()
    dead = cli.json("loadbalancer", "member", "create", "--name", "m-dead", "--address", "127.0.0.1",
                    "--protocol-port", dead_port, "--wait", "p-cli")
    wait_lb_active(statera_server, lb_id)

    def dead_detected():
        m = api_get(statera_server, f"/v2/lbaas/pools/{pool_id}/members/{dead['id']}")["member"]
        p = api_get(statera_server, f"/v2/lbaas/pools/{pool_id}")["pool"]
        state["last_dead"] = (m["operating_status"], p["operating_status"])
        return m["operating_status"] == "ERROR" and p["operating_status"] == "DEGRADED"

    poll(dead_detected, 20, lambda: f"dead member ERROR / pool DEGRADED (last: {state.get('last_dead')})", 0.5)
    for _ in range(6):
        r = http_get(vip_url(state))
        assert r.status == 200, f"a request was sent to the dead member? {r.status} {r.body[:200]!r}"
    cli.run("loadbalancer", "member", "delete", "--wait", "p-cli", "m-dead")
    wait_lb_active(statera_server, lb_id)
    wait_gone(statera_server, f"/v2/lbaas/pools/{pool_id}/members/{dead['id']}")
    poll(lambda: api_get(statera_server, f"/v2/lbaas/pools/{pool_id}")["pool"]["operating_status"] == "ONLINE",
         20, "the pool to be ONLINE again after removing the dead member", 0.5)

    # An HTTP monitor probes with an HTTP request for url_path (a TCP connect is not enough).
    for b in backends:
        assert "/healthz" in b.paths(), f"{b.name} never received GET /healthz: {b.paths()[-5:]}"


def test_11_l7_policy_and_rules(statera_server, cli, state):
    lb_id, listener_id = need(state, "lb_id", "listener_id")
    policy = cli.json("loadbalancer", "l7policy", "create", "--name", "pol-cli", "--action", "REJECT",
                      "--wait", "l-cli")
    policy_id = policy["id"]
    wait_lb_active(statera_server, lb_id)
    state["policy_id"] = policy_id
    rule = cli.json("loadbalancer", "l7rule", "create", "--type", "PATH", "--compare-type", "STARTS_WITH",
                    "--value", "/api", "--wait", "pol-cli")
    rule_id = rule["id"]
    wait_lb_active(statera_server, lb_id)
    state["rule_id"] = rule_id

    for ref in ("pol-cli", policy_id):
        shown = cli.json("loadbalancer", "l7policy", "show", ref)
        assert (shown["id"], shown["action"], shown["listener_id"], shown["position"]) == (
            policy_id, "REJECT", listener_id, 1,
        )
        assert rule_id in json.dumps(shown["rules"])
    assert [row["id"] for row in cli.json("loadbalancer", "l7policy", "list", "--listener", "l-cli")] == [policy_id]
    assert [row["id"] for row in cli.json("loadbalancer", "l7rule", "list", "pol-cli")] == [rule_id]
    shown_rule = cli.json("loadbalancer", "l7rule", "show", "pol-cli", rule_id)
    assert (shown_rule["type"], shown_rule["compare_type"], shown_rule["value"], shown_rule["invert"]) == (
        "PATH", "STARTS_WITH", "/api", False,
    )
    raw = api_get(statera_server, f"/v2/lbaas/l7policies/{policy_id}/rules/{rule_id}")
    assert "rule" in raw, f"the L7 rule envelope must be 'rule': {list(raw)}"

    assert http_get(vip_url(state, "/api/items")).status == 403, "REJECT policy on /api"
    assert http_get(vip_url(state, "/other")).status == 200

    cli.run("loadbalancer", "l7policy", "set", "--action", "REDIRECT_TO_URL", "--redirect-url",
            "http://redirect.example/", "--description", "policy by name", "--wait", "pol-cli")
    wait_lb_active(statera_server, lb_id)
    shown = cli.json("loadbalancer", "l7policy", "show", policy_id)
    assert (shown["action"], shown["redirect_url"], shown["redirect_http_code"]) == (
        "REDIRECT_TO_URL", "http://redirect.example/", 302,
    )
    r = http_get(vip_url(state, "/api/items"))
    assert r.status == 302, f"REDIRECT_TO_URL: {r.status} {r.body[:200]!r}"
    assert r.headers.get("location", "").startswith("http://redirect.example/"), r.headers

    # Rules of a policy are ANDed: a second rule on a header narrows the match.
    second = cli.json("loadbalancer", "l7rule", "create", "--type", "HEADER", "--key", "X-E2E",
                      "--compare-type", "EQUAL_TO", "--value", "on", "--wait", policy_id)
    wait_lb_active(statera_server, lb_id)
    assert http_get(vip_url(state, "/api/items")).status == 200, "only one of two rules matched"
    assert http_get(vip_url(state, "/api/items"), headers={"X-E2E": "on"}).status == 302
    cli.run("loadbalancer", "l7rule", "set", "--value", "yes", "--wait", "pol-cli", second["id"])
    wait_lb_active(statera_server, lb_id)
    assert http_get(vip_url(state, "/api/items"), headers={"X-E2E": "yes"}).status == 302
    cli.run("loadbalancer", "l7rule", "delete", "--wait", "pol-cli", second["id"])
    wait_lb_active(statera_server, lb_id)
    wait_gone(statera_server, f"/v2/lbaas/l7policies/{policy_id}/rules/{second['id']}")
    assert http_get(vip_url(state, "/api/items")).status == 302


def test_12_stats(statera_server, cli, state):
    lb_id, listener_id = need(state, "lb_id", "listener_id")
    keys = {"bytes_in", "bytes_out", "active_connections", "total_connections", "request_errors"}

    def counted():
        stats = api_get(statera_server, f"/v2/lbaas/loadbalancers/{lb_id}/stats")["stats"]
        state["last_stats"] = stats
        return stats["total_connections"] > 0 and stats["bytes_in"] > 0 and stats["bytes_out"] > 0

    poll(counted, 15, lambda: f"LB stats to count the traffic sent so far (last: {state.get('last_stats')})", 0.5)
    shown = cli.json("loadbalancer", "stats", "show", "lb-cli")
    assert set(shown) == keys, shown
    assert all(isinstance(v, int) for v in shown.values()), shown
    assert shown["total_connections"] > 0
    listener_stats = cli.json("loadbalancer", "listener", "stats", "show", "l-cli")
    assert set(listener_stats) == keys, listener_stats
    assert listener_stats["total_connections"] > 0, listener_stats


def test_13_status_tree(statera_server, cli, state):
    lb_id, listener_id, pool_id, member_ids, hm_id = need(
        state, "lb_id", "listener_id", "pool_id", "member_ids", "hm_id"
    )
    result = cli.run("loadbalancer", "status", "show", "lb-cli")
    tree = result.data
    assert isinstance(tree, dict), "status show printed no JSON:\n" + result.describe()
    lb = tree["loadbalancer"]
    assert (lb["id"], lb["provisioning_status"], lb["operating_status"]) == (lb_id, "ACTIVE", "ONLINE"), lb
    assert [listener["id"] for listener in lb["listeners"]] == [listener_id]
    listener = lb["listeners"][0]
    assert listener["operating_status"] == "ONLINE", listener
    assert [p["id"] for p in listener["pools"]] == [pool_id]
    pool = listener["pools"][0]
    assert pool["health_monitor"]["id"] == hm_id, pool
    assert sorted(m["id"] for m in pool["members"]) == sorted(member_ids.values())
    for m in pool["members"]:
        assert (m["provisioning_status"], m["operating_status"]) == ("ACTIVE", "ONLINE"), m
        assert {"address", "protocol_port", "name"} <= set(m), m


def test_14_quotas(statera_server, cli, state):
    project_id = need(state, "project_id")
    rows = {"load_balancer", "listener", "pool", "health_monitor", "member", "l7policy", "l7rule"}
    shown = cli.json("loadbalancer", "quota", "show", project_id)
    assert rows <= set(shown), shown
    assert all(isinstance(shown[k], int) for k in rows), shown
    defaults = cli.json("loadbalancer", "quota", "defaults", "show")
    assert rows <= set(defaults), defaults
    assert all(isinstance(defaults[k], int) for k in rows), defaults
    raw = api_get(statera_server, f"/v2/lbaas/quotas/{project_id}")["quota"]
    both = {"loadbalancer", "load_balancer", "healthmonitor", "health_monitor"}
    assert both <= set(raw), f"quota must carry both spellings: {raw}"
    cli.json("loadbalancer", "quota", "list")  # must parse; content depends on quota rows


def test_14b_quota_set_and_reset(statera_server, cli, state):
    # `quota set|unset|reset <project>` resolve the project through the identity service (with
    # auth none: GET /projects/<p>, then GET /projects?name=<p> on the same endpoint).
    project_id = need(state, "project_id")
    cli.run("loadbalancer", "quota", "set", "--loadbalancer", "7", "--member", "70", project_id)
    shown = cli.json("loadbalancer", "quota", "show", project_id)
    assert (shown["load_balancer"], shown["member"]) == (7, 70), shown
    cli.run("loadbalancer", "quota", "unset", "--member", project_id)
    assert cli.json("loadbalancer", "quota", "show", project_id)["member"] == -1
    cli.run("loadbalancer", "quota", "reset", project_id)
    assert cli.json("loadbalancer", "quota", "show", project_id)["load_balancer"] == -1


def test_15_delete_with_children_needs_cascade(statera_server, cli, state):
    lb_id = need(state, "lb_id")
    failed = cli.run("loadbalancer", "delete", "lb-cli", expect_ok=False)
    assert "400" in failed.stderr, "LB delete with children and no cascade must be a 400:\n" + failed.describe()
    assert wait_lb_active(statera_server, lb_id)["provisioning_status"] == "ACTIVE"


def test_16_cascade_delete(statera_server, cli, state):
    lb_id, listener_id, pool_id, hm_id, policy_id = need(
        state, "lb_id", "listener_id", "pool_id", "hm_id", "policy_id"
    )
    cli.run("loadbalancer", "delete", "--cascade", "--wait", "lb-cli")
    wait_gone(statera_server, f"/v2/lbaas/loadbalancers/{lb_id}")
    for path in (
        f"/v2/lbaas/listeners/{listener_id}",
        f"/v2/lbaas/pools/{pool_id}",
        f"/v2/lbaas/healthmonitors/{hm_id}",
        f"/v2/lbaas/l7policies/{policy_id}",
    ):
        wait_gone(statera_server, path)
    failed = cli.run("loadbalancer", "show", lb_id, expect_ok=False)
    assert "404" in failed.stderr or "Unable to locate" in failed.stderr, failed.describe()
    assert "lb-cli" not in names_in(cli.json("loadbalancer", "list"))
    poll(lambda: _try_get(vip_url(state)) is None, 10, "the VIP to stop accepting connections")
