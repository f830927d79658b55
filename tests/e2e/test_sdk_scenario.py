"""The whole life of a load balancer through openstacksdk (`conn.load_balancer.*`,
`conn.network.*`) against a real `statera serve`, connected the way an SDK user without Keystone
does: `openstack.connect(auth_type='none', auth={'endpoint': URL})`.

Steps run in file order and share one server, two backends and a `state` dict; a step whose
prerequisite failed fails too (no skips). After every change the test waits with
`wait_for_load_balancer`, as SDK users do.
"""

from __future__ import annotations

import openstack
import pytest
from conftest import assert_in_subnet, http_get, poll, wait_gone, wait_http_ok
from openstack import exceptions as sdk_exc

LISTENER_PORT = 8080
WAIT = 30  # seconds for wait_for_load_balancer / wait_for_delete
INTERVAL = 0.5


@pytest.fixture(scope="module")
def conn(statera_server):
    # load_envvars/load_yaml_config off: the developer's own OS_* and clouds.yaml stay out.
    c = openstack.connect(
        auth_type="none",
        auth={"endpoint": statera_server.endpoint},
        load_envvars=False,
        load_yaml_config=False,
    )
    yield c
    c.close()


@pytest.fixture(scope="module")
def state(store_kind):
    # One scenario's state per store backend (the module runs once per backend).
    return {}


def need(state, *keys):
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step failed, so {', '.join(missing)} is unknown", pytrace=False)
    return [state[k] for k in keys] if len(keys) > 1 else state[keys[0]]


def wait_active(conn, lb_id):
    lb = conn.load_balancer.wait_for_load_balancer(lb_id, status="ACTIVE", failures=["ERROR"],
                                                   interval=INTERVAL, wait=WAIT)
    assert lb.provisioning_status == "ACTIVE"
    return lb


def vip_url(state, path="/"):
    return f"http://{need(state, 'vip')}:{LISTENER_PORT}{path}"


# ---------------------------------------------------------------------------------------------


def test_01_network_lookups(conn, statera_server, state):
    subnet = conn.network.find_subnet("host-subnet", ignore_missing=False)
    assert subnet.name == "host-subnet"
    if statera_server.host_subnet:
        assert subnet.cidr == statera_server.host_subnet
    assert conn.network.get_subnet(subnet.id).id == subnet.id
    assert conn.network.find_subnet(subnet.id).id == subnet.id
    network = conn.network.find_network("host-net", ignore_missing=False)
    assert network.id == subnet.network_id
    assert [s.id for s in conn.network.subnets(name="host-subnet")] == [subnet.id]
    assert conn.network.find_subnet("no-such-subnet") is None
    state["subnet"] = subnet


def test_02_load_balancer(conn, state):
    subnet = need(state, "subnet")
    lb = conn.load_balancer.create_load_balancer(name="lb-sdk", description="e2e sdk", vip_subnet_id=subnet.id)
    assert lb.provisioning_status in ("PENDING_CREATE", "ACTIVE"), lb.provisioning_status
    assert lb.name == "lb-sdk" and lb.vip_subnet_id == subnet.id
    lb = wait_active(conn, lb.id)
    assert_in_subnet(lb.vip_address, subnet.cidr)
    state.update(lb_id=lb.id, vip=lb.vip_address, project_id=lb.project_id)

    assert conn.load_balancer.find_load_balancer("lb-sdk").id == lb.id
    assert conn.load_balancer.find_load_balancer(lb.id).id == lb.id
    assert conn.load_balancer.find_load_balancer("no-such-lb") is None
    assert [x.id for x in conn.load_balancer.load_balancers(name="lb-sdk")] == [lb.id]
    assert lb.id in [x.id for x in conn.load_balancer.load_balancers()]

    updated = conn.load_balancer.update_load_balancer(lb.id, description="updated by sdk")
    assert updated.description == "updated by sdk"
    wait_active(conn, lb.id)
    assert conn.load_balancer.get_load_balancer(lb.id).description == "updated by sdk"


def test_03_listener(conn, state):
    lb_id = need(state, "lb_id")
    listener = conn.load_balancer.create_listener(
        name="l-sdk", protocol="HTTP", protocol_port=LISTENER_PORT, loadbalancer_id=lb_id,
        insert_headers={"X-Forwarded-For": "true"},
    )
    wait_active(conn, lb_id)
    state["listener_id"] = listener.id
    found = conn.load_balancer.find_listener("l-sdk")
    assert found.id == listener.id
    assert found.load_balancers == [{"id": lb_id}]
    assert found.connection_limit == -1
    assert found.insert_headers == {"X-Forwarded-For": "true"}
    assert [x.id for x in conn.load_balancer.listeners(loadbalancer_id=lb_id)] == [listener.id]
    conn.load_balancer.update_listener(listener.id, connection_limit=5000, description="sdk listener")
    wait_active(conn, lb_id)
    got = conn.load_balancer.get_listener(listener.id)
    assert (got.connection_limit, got.description, got.provisioning_status) == (5000, "sdk listener", "ACTIVE")


def test_03b_listener_filter_named_like_the_sdk_attribute(conn, state):
    # The SDK maps listeners(load_balancer_id=...) to ?load_balancer_id= (Octavia accepts model
    # attribute names as filters; loadbalancer_id above is the API name).
    lb_id, listener_id = need(state, "lb_id", "listener_id")
    assert [x.id for x in conn.load_balancer.listeners(load_balancer_id=lb_id)] == [listener_id]


def test_04_pool_with_cookie_persistence(conn, state):
    lb_id, listener_id = need(state, "lb_id", "listener_id")
    pool = conn.load_balancer.create_pool(
        name="p-sdk", protocol="HTTP", lb_algorithm="ROUND_ROBIN", listener_id=listener_id,
        session_persistence={"type": "HTTP_COOKIE"},
    )
    wait_active(conn, lb_id)
    state["pool_id"] = pool.id
    found = conn.load_balancer.find_pool("p-sdk")
    assert found.id == pool.id
    assert found.session_persistence["type"] == "HTTP_COOKIE", found.session_persistence
    assert found.listeners == [{"id": listener_id}]
    assert conn.load_balancer.get_listener(listener_id).default_pool_id == pool.id
    assert [x.id for x in conn.load_balancer.pools(loadbalancer_id=lb_id)] == [pool.id]
    conn.load_balancer.update_pool(pool.id, description="sdk pool")
    wait_active(conn, lb_id)
    assert conn.load_balancer.get_pool(pool.id).description == "sdk pool"


def test_05_members(conn, state, backends):
    lb_id, pool_id = need(state, "lb_id", "pool_id")
    ids = {}
    for b in backends:
        m = conn.load_balancer.create_member(pool_id, name=f"m-{b.name}", address=b.host, protocol_port=b.port)
        assert m.operating_status in ("NO_MONITOR", "OFFLINE"), m.operating_status
        wait_active(conn, lb_id)
        ids[b.name] = m.id
    state["member_ids"] = ids
    assert sorted(m.id for m in conn.load_balancer.members(pool_id)) == sorted(ids.values())
    first = backends[0]
    found = conn.load_balancer.find_member(f"m-{first.name}", pool_id)
    assert (found.id, found.address, found.protocol_port, found.weight) == (
        ids[first.name], first.host, first.port, 1,
    )
    assert conn.load_balancer.find_member(ids[first.name], pool_id).id == ids[first.name]
    conn.load_balancer.update_member(ids[first.name], pool_id, weight=3)
    wait_active(conn, lb_id)
    assert conn.load_balancer.get_member(ids[first.name], pool_id).weight == 3


def test_06_traffic_with_cookie_persistence(state, backends):
    need(state, "member_ids")
    names = {b.name for b in backends}
    first = wait_http_ok(vip_url(state))
    cookie = first.headers.get("set-cookie")
    assert cookie, f"HTTP_COOKIE persistence: no Set-Cookie in the first answer {first.headers}"
    cookie_pair = cookie.split(";", 1)[0]
    sticky = {http_get(vip_url(state), headers={"Cookie": cookie_pair}).body.decode() for _ in range(8)}
    assert sticky == {first.body.decode()}, f"requests carrying {cookie_pair!r} went to {sticky}"
    without = {http_get(vip_url(state)).body.decode() for _ in range(8)}
    assert without == names, f"without the cookie round robin should reach both members: {without}"


def test_07_health_monitor(conn, statera_server, state, backends):
    lb_id, pool_id, ids = need(state, "lb_id", "pool_id", "member_ids")
    hm = conn.load_balancer.create_health_monitor(
        name="hm-sdk", pool_id=pool_id, type="HTTP", delay=1, timeout=1, max_retries=1, url_path="/healthz",
    )
    wait_active(conn, lb_id)
    state["hm_id"] = hm.id
    found = conn.load_balancer.find_health_monitor("hm-sdk")
    assert (found.id, found.http_method, found.url_path, found.expected_codes, found.max_retries_down) == (
        hm.id, "GET", "/healthz", "200", 3,
    )
    assert found.pools == [{"id": pool_id}]
    assert conn.load_balancer.get_pool(pool_id).health_monitor_id == hm.id
    conn.load_balancer.update_health_monitor(hm.id, max_retries_down=2)
    wait_active(conn, lb_id)
    assert conn.load_balancer.get_health_monitor(hm.id).max_retries_down == 2

    def online():
        statuses = {m.name: m.operating_status for m in conn.load_balancer.members(pool_id)}
        state["last_statuses"] = statuses
        return all(s == "ONLINE" for s in statuses.values())

    poll(online, 20, lambda: f"members ONLINE (last: {state.get('last_statuses')})", INTERVAL)
    # Members start up (as HAProxy's servers do); the first probe of each comes within one delay.
    for b in backends:
        poll(lambda: "/healthz" in b.paths(), 5, lambda: f"{b.name} got a health check", INTERVAL)


def test_08_l7_policy_and_rules(conn, state):
    lb_id, listener_id = need(state, "lb_id", "listener_id")
    policy = conn.load_balancer.create_l7_policy(
        name="pol-sdk", listener_id=listener_id, action="REDIRECT_TO_URL", redirect_url="http://redirect.example/",
    )
    wait_active(conn, lb_id)
    state["policy_id"] = policy.id
    rule = conn.load_balancer.create_l7_rule(policy.id, type="PATH", compare_type="STARTS_WITH", rule_value="/api")
    wait_active(conn, lb_id)
    found = conn.load_balancer.find_l7_policy("pol-sdk")
    assert (found.id, found.action, found.position, found.rules) == (
        policy.id, "REDIRECT_TO_URL", 1, [{"id": rule.id}],
    )
    got = conn.load_balancer.get_l7_rule(rule.id, policy.id)
    assert (got.type, got.compare_type, got.rule_value, got.invert) == ("PATH", "STARTS_WITH", "/api", False)

    r = http_get(vip_url(state, "/api/x"))
    assert r.status == 302 and r.headers.get("location", "").startswith("http://redirect.example/"), (
        r.status, r.headers,
    )
    assert http_get(vip_url(state, "/v1/x")).status == 200

    conn.load_balancer.update_l7_rule(rule.id, policy.id, rule_value="/v1")
    wait_active(conn, lb_id)
    assert http_get(vip_url(state, "/v1/x")).status == 302
    assert http_get(vip_url(state, "/api/x")).status == 200

    conn.load_balancer.update_l7_policy(policy.id, action="REJECT")
    wait_active(conn, lb_id)
    assert conn.load_balancer.get_l7_policy(policy.id).action == "REJECT"
    assert http_get(vip_url(state, "/v1/x")).status == 403

    # Listing last, so a listing problem does not hide the traffic checks above.
    assert [x.id for x in conn.load_balancer.l7_policies(listener_id=listener_id)] == [policy.id]
    assert [x.id for x in conn.load_balancer.l7_rules(policy.id)] == [rule.id]


def test_09_stats(conn, state):
    lb_id, listener_id = need(state, "lb_id", "listener_id")

    def counted():
        s = conn.load_balancer.get_load_balancer_statistics(lb_id)
        state["last_stats"] = s.to_dict()
        return s.total_connections and s.total_connections > 0 and s.bytes_in > 0 and s.bytes_out > 0

    poll(counted, 15, lambda: f"LB stats to count the traffic (last: {state.get('last_stats')})", INTERVAL)
    ls = conn.load_balancer.get_listener_statistics(listener_id)
    assert ls.total_connections > 0 and ls.bytes_out > 0, ls.to_dict()
    assert isinstance(ls.active_connections, int) and isinstance(ls.request_errors, int)


def test_10_status_tree(conn, state):
    lb_id, listener_id, pool_id, ids, hm_id = need(state, "lb_id", "listener_id", "pool_id", "member_ids", "hm_id")
    # openstacksdk has no method for the status tree; SDK users call the proxy directly.
    resp = conn.load_balancer.get(f"/lbaas/loadbalancers/{lb_id}/status")
    assert resp.status_code == 200, resp.text
    lb = resp.json()["statuses"]["loadbalancer"]
    assert (lb["id"], lb["provisioning_status"], lb["operating_status"]) == (lb_id, "ACTIVE", "ONLINE"), lb
    (listener,) = lb["listeners"]
    assert listener["id"] == listener_id
    (pool,) = listener["pools"]
    assert pool["id"] == pool_id and pool["health_monitor"]["id"] == hm_id, pool
    assert sorted(m["id"] for m in pool["members"]) == sorted(ids.values())


def test_11_quotas(conn, state):
    project_id = need(state, "project_id")
    q = conn.load_balancer.get_quota(project_id)
    for attr in ("load_balancers", "listeners", "pools", "health_monitors", "members"):
        assert isinstance(getattr(q, attr), int), f"quota {attr}: {getattr(q, attr)!r} ({q.to_dict()})"
    d = conn.load_balancer.get_quota_default()
    for attr in ("load_balancers", "listeners", "pools", "health_monitors", "members"):
        assert isinstance(getattr(d, attr), int), f"default quota {attr}: {getattr(d, attr)!r}"
    list(conn.load_balancer.quotas())  # must parse


def test_12_delete_needs_cascade_then_cascade(conn, statera_server, state):
    lb_id, listener_id, pool_id, hm_id, policy_id = need(
        state, "lb_id", "listener_id", "pool_id", "hm_id", "policy_id"
    )
    with pytest.raises(sdk_exc.HttpException) as err:
        conn.load_balancer.delete_load_balancer(lb_id)
    assert err.value.status_code == 400, f"delete with children, no cascade: {err.value}"
    wait_active(conn, lb_id)

    lb = conn.load_balancer.get_load_balancer(lb_id)
    conn.load_balancer.delete_load_balancer(lb, cascade=True)
    conn.load_balancer.wait_for_delete(lb, interval=INTERVAL, wait=WAIT)
    assert conn.load_balancer.find_load_balancer("lb-sdk") is None
    with pytest.raises(sdk_exc.NotFoundException):
        conn.load_balancer.get_load_balancer(lb_id)
    for path in (
        f"/v2/lbaas/listeners/{listener_id}",
        f"/v2/lbaas/pools/{pool_id}",
        f"/v2/lbaas/healthmonitors/{hm_id}",
        f"/v2/lbaas/l7policies/{policy_id}",
    ):
        wait_gone(statera_server, path)
