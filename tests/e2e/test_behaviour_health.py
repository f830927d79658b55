"""The shared behaviour suite (issue 6), second part: health monitors, failover under load and
reloads under load, run once per provider ("native" and "haproxy"). See test_behaviour.py for
the first part and test_behaviour_support.py for the helpers.

Timing: the HTTP monitor here has delay 1 s, timeout 1 s, max_retries (rise) 2 and
max_retries_down (fall) 2, so a killed member is down after at most delay × fall + timeout
= 3 s. The native engine reports every transition at once; the haproxy provider reads HAProxy's
`show stat` every 2 s (HaproxyOptions::poll_interval), so its API status may lag that much more.
"""

from __future__ import annotations

import http.client
import select
import socket
import time

import pytest
from conftest import poll
from test_behaviour_support import (  # noqa: F401  (provider is a fixture)
    Load,
    http_lb,
    http_members,
    members_of,
    provider,
    wait_member_status,
    wait_traffic_only,
)

# Each behaviour runs with the data planes in `statera serve` and in a `statera agent`.
E2E_DATA_PLANES = ("embedded", "agent")

DELAY, TIMEOUT, RISE, FALL = 1, 1, 2, 2
HM = {"type": "HTTP", "delay": DELAY, "timeout": TIMEOUT, "max_retries": RISE, "max_retries_down": FALL,
      "url_path": "/health", "expected_codes": "200"}
# Issue 4's bound is delay × fall + timeout + 1 s from the kill to ERROR in the API (and likewise
# with rise to ONLINE). The native data plane reports transitions at once, so it is held to exactly
# that; the haproxy provider reads HAProxy's stats every 2 s and gets that on top, plus scheduling.
SLACK = {"native": 1.0, "haproxy": 3.0}
STATUS_POLL = {"native": 0.0, "haproxy": 2.0}  # how late each provider's status reaches the API


def down_bound(provider: str) -> float:
    return DELAY * FALL + TIMEOUT + SLACK[provider] + STATUS_POLL[provider]


# How long after a kill the data plane itself routes around the member: the monitor's own
# detection time plus scheduling, whatever the API shows (STATUS_POLL is only the API's lag).
TRAFFIC_DOWN = DELAY * FALL + TIMEOUT + 1.0


def up_bound(provider: str) -> float:
    return DELAY * RISE + TIMEOUT + SLACK[provider] + STATUS_POLL[provider]


def tree_member(tree: dict, name: str) -> dict:
    for listener in tree["listeners"]:
        for pool in listener["pools"]:
            for m in pool["members"]:
                if m["name"] == name:
                    return {**m, "pool_operating_status": pool["operating_status"]}
    raise AssertionError(f"member {name} not in the status tree: {tree}")


def test_health_monitor_marks_a_killed_member_error_then_online(statera_server, provider):
    with http_members("a", "b") as (a, b):
        with http_lb(statera_server, provider, [a.member_body(), b.member_body()],
                     pool_extra={"healthmonitor": HM}) as lb:
            port = lb.listeners["l"]["protocol_port"]
            wait_member_status(lb, "a", "ONLINE", up_bound(provider))
            wait_member_status(lb, "b", "ONLINE", up_bound(provider))
            assert set(members_of(lb.vip, port, 4)) == {"a", "b"}
            # Members start ONLINE before their first probe (HAProxy's behaviour, native's too);
            # the probes themselves reach the members within a delay or so.
            poll(lambda: any(r["path"] == "/health" for r in b.requests), DELAY + SLACK[provider], "b to be probed on /health")

            b.kill()
            try:
                took = wait_member_status(lb, "b", "ERROR", down_bound(provider))
                print(f"{provider}: b ERROR in the API {took:.1f} s after the kill")
                assert member_status_now(lb, "a") == "ONLINE"
                tree = lb.status_tree()
                assert tree_member(tree, "b")["operating_status"] == "ERROR", tree
                assert tree_member(tree, "a")["operating_status"] == "ONLINE", tree
                assert tree_member(tree, "b")["pool_operating_status"] == "DEGRADED", tree
                assert tree["operating_status"] == "DEGRADED", tree
                # Traffic avoids it: every request answered, all by a.
                assert members_of(lb.vip, port, 8) == ["a"] * 8
            finally:
                b.start()
            took = wait_member_status(lb, "b", "ONLINE", up_bound(provider))
            print(f"{provider}: b ONLINE in the API {took:.1f} s after the restart")
            tree = lb.status_tree()
            assert tree_member(tree, "b")["operating_status"] == "ONLINE", tree
            assert tree["operating_status"] == "ONLINE", tree
            # b serves again (native ramps a returning member in over 10 s, so wait for it).
            poll(lambda: "b" in members_of(lb.vip, port, 4), 15, "b to serve again after its restart")


def member_status_now(lb, name):
    return lb.get_member(name)["operating_status"]


@pytest.mark.parametrize("client,monitor", [("fresh", "monitor"), ("keepalive", "no-monitor")])
def test_failover_under_load_has_no_client_visible_error(statera_server, provider, client, monitor):
    """Two members, a client doing requests continuously for 10 s (a fresh connection per
    request, or one keep-alive connection); one member is killed and later restarted: the client
    sees no error. With a monitor the dead member is taken out once it is seen down; without one
    both providers still hide it: native tries a failed connect again on another member (and
    ejects the member passively after 5 failures), HAProxy retries the connect and redispatches
    (`retries 3`, `option redispatch`).

    Difference on purpose (documented in statera-dataplane's lib.rs, "passive health, beyond
    Octavia"): native ejects a member after 5 failures in a row in real traffic for 30 s, and
    reports it down meanwhile, even when an active monitor sees it healthy again; so after the
    restart native brings b back only when the ejection ends, HAProxy as soon as the monitor
    has seen it rise."""
    pool_extra = {"healthmonitor": HM} if monitor == "monitor" else {}
    with http_members("a", "b") as (a, b):
        with http_lb(statera_server, provider, [a.member_body(), b.member_body()], pool_extra=pool_extra) as lb:
            port = lb.listeners["l"]["protocol_port"]
            # HAProxy's `http-reuse safe` leaves a request lost on an idle member connection
            # that the member closed just then to the client to resend, as browsers do
            # (the first request of a connection never takes that risk); native resends
            # such a request itself, so its client never has to.
            with Load(lb.vip, port, duration=30, keepalive=client == "keepalive",
                      resend_on_reused_close=provider == "haproxy") as load:
                time.sleep(2)
                t_kill = time.monotonic()
                b.kill()
                # b stays dead well past the time a monitor takes it out, so the window checked
                # below (from then until the restart) holds requests whatever the provider.
                time.sleep(TRAFFIC_DOWN + 2.5)
                b.start()
                t_back = time.monotonic()
                time.sleep(4)
                load.stop()
            summary = (f"{provider}/{client}/{monitor}: {load.ok} ok, by member {load.by_member}, "
                       f"{load.resent} resent by the client, {len(load.errors)} errors: {load.errors[:5]}")
            print(summary)
            assert load.ok > 50, summary
            assert load.errors == [], summary
            # Once the monitor (if any) saw b down and before its restart: a serves, b gets
            # nothing with a monitor (without one, each provider retries b's refused connects
            # on a, which the client never sees).
            window = [w for t, w in load.timeline if t_kill + TRAFFIC_DOWN <= t < t_back]
            assert "a" in window, summary
            if monitor == "no-monitor":
                return
            assert "b" not in window, summary
            if provider == "haproxy":
                wait_member_status(lb, "b", "ONLINE", up_bound(provider))
            else:
                # Ejected by passive health at the kill: still reported down after the restart
                # although its probes pass; back when the 30 s ejection ends.
                assert lb.get_member("b")["operating_status"] == "ERROR"
                wait_member_status(lb, "b", "ONLINE", max(1.0, t_kill + 30 + up_bound(provider) - time.monotonic()))
            poll(lambda: "b" in members_of(lb.vip, port, 4), 15, "b to serve again after its restart")




@pytest.mark.parametrize(
    "provider", ["native", "haproxy"],
    indirect=True,
)
def test_idle_keepalive_connection_survives_a_configuration_change(statera_server, provider):
    """A client holding an idle keep-alive connection across a configuration change (another
    member's weight) can send its next request on it."""
    with http_members("a", "b") as (a, b):
        with http_lb(statera_server, provider, [a.member_body(), b.member_body()]) as lb:
            port = lb.listeners["l"]["protocol_port"]
            conn = http.client.HTTPConnection(lb.vip, port, timeout=5)
            try:
                conn.request("GET", "/first")
                first = conn.getresponse()
                first.read()
                assert first.status == 200 and not first.will_close
                lb.change("PUT", lb.member_path("b"), {"member": {"weight": 2}})
                # Give a draining worker time to act on the connection, then check it is open.
                readable, _, _ = select.select([conn.sock], [], [], 1.0)
                if readable:
                    assert conn.sock.recv(1, socket.MSG_PEEK) != b"", "the proxy closed the idle connection"
                conn.request("GET", "/second")
                second = conn.getresponse()
                second.read()
                assert second.status == 200
            finally:
                conn.close()


def _counters(stats: dict) -> tuple[int, int, int]:
    return stats["total_connections"], stats["bytes_in"], stats["bytes_out"]


# The issue asks 100 changes (for haproxy at least); native applies are cheap enough for the same.
RELOAD_CHANGES = 100
RELOAD_BUDGET_S = 90.0


def test_reloads_under_load_fail_no_request_and_counters_only_grow(statera_server, provider):
    """With clients running continuously (fresh connections, and one keep-alive connection),
    100 configuration changes (a member's weight toggled between 1 and 2, every 10th change
    adding or removing a third member), each waiting ACTIVE: zero failed requests, and the
    load balancer's /stats counters (total_connections, bytes_in, bytes_out) never decrease
    between samples. For native this proves hitless applies; for haproxy seamless reloads."""
    with http_members("a", "b", "c") as (a, b, c):
        with http_lb(statera_server, provider, [a.member_body(), b.member_body()]) as lb:
            port = lb.listeners["l"]["protocol_port"]
            pool_id = lb.pools["p"]["id"]
            b_path = lb.member_path("b")
            c_id = None
            samples = [_counters(lb.stats())]
            t0 = time.monotonic()
            with Load(lb.vip, port, duration=RELOAD_BUDGET_S + 10) as fresh, \
                    Load(lb.vip, port, duration=RELOAD_BUDGET_S + 10, keepalive=True) as kept:
                time.sleep(0.5)
                for i in range(RELOAD_CHANGES):
                    assert time.monotonic() - t0 < RELOAD_BUDGET_S, f"only {i} changes in {RELOAD_BUDGET_S} s"
                    if i % 10 == 9:
                        if c_id is None:
                            r = lb.change("POST", f"/v2/lbaas/pools/{pool_id}/members",
                                          {"member": c.member_body()})
                            c_id = r["member"]["id"]
                        else:
                            lb.change("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{c_id}")
                            c_id = None
                    else:
                        lb.change("PUT", b_path, {"member": {"weight": 2 if i % 2 == 0 else 1}})
                    samples.append(_counters(lb.stats()))
                elapsed = time.monotonic() - t0
                time.sleep(0.5)
                fresh.stop()
                kept.stop()
            # Let the last counters reach the API (haproxy polls every 2 s).
            time.sleep(STATUS_POLL[provider] + 0.5)
            samples.append(_counters(lb.stats()))
            summary = (f"{provider}: {RELOAD_CHANGES} changes in {elapsed:.1f} s; fresh: {fresh.ok} ok "
                       f"{fresh.by_member} errors {fresh.errors[:5]}; keep-alive: {kept.ok} ok "
                       f"{kept.by_member} errors {kept.errors[:5]}; counters {samples[0]} -> {samples[-1]}")
            print(summary)
            assert fresh.errors == [], summary
            # Both keep their kept-alive clients: the haproxy provider renders
            # `option idle-close-on-response`, so a reload's old worker answers the next
            # request of an idle connection instead of closing it under the client.
            assert kept.errors == [], summary
            assert fresh.ok > 100 and kept.ok > 100, summary
            assert {"a", "b", "c"} <= set(fresh.by_member) | set(kept.by_member), summary
            decreases = [(i, p, q) for i, (p, q) in enumerate(zip(samples, samples[1:]))
                         if any(y < x for x, y in zip(p, q))]
            assert decreases == [], f"counters went back: {decreases[:5]}; {summary}"
            # They grew (how exactly they count is test_stats_* below).
            assert samples[-1][0] > samples[0][0] and samples[-1][2] > samples[0][2], summary


# The controller collects counters every STATS_INTERVAL (5 s, statera-controller) and the
# haproxy provider reads HAProxy's every 2 s: what the API shows may be that much behind.
STATS_SETTLE_S = 5 + 2 + 3


def _settled_total(lb, expected_at_least: int) -> int:
    """total_connections once it reached `expected_at_least` and stopped moving (bounded)."""
    deadline = time.monotonic() + STATS_SETTLE_S
    last = lb.stats()["total_connections"]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = lb.stats()["total_connections"]
        if now >= expected_at_least and now == last:
            break
        last = now
    return lb.stats()["total_connections"]


def test_stats_count_the_connections_served(statera_server, provider):
    """total_connections counts each connection once: 50 requests on fresh connections, then a
    change, five times over (no traffic during the changes) → exactly 250 more."""
    with http_members("a", "b") as (a, b):
        with http_lb(statera_server, provider, [a.member_body(), b.member_body()]) as lb:
            port = lb.listeners["l"]["protocol_port"]
            for i in range(5):
                members_of(lb.vip, port, 50)
                lb.change("PUT", lb.member_path("b"), {"member": {"weight": 2 if i % 2 == 0 else 1}})
            assert _settled_total(lb, 250) == 250


HAPROXY_STATS_BUG = (
    "haproxy: with reloads under load total_connections is off in both directions (observed "
    "-44 %, -30 % and +13 % over 10 reloads): the loss is the documented 'counters of a worker "
    "between its last poll and its exit are not counted' (a worker living less than the 2 s poll "
    "interval loses everything it served); the excess is not documented. Timing-dependent, hence "
    "not strict"
)


@pytest.mark.parametrize(
    "provider",
    ["native", pytest.param("haproxy", marks=pytest.mark.xfail(strict=False, reason=HAPROXY_STATS_BUG))],
    indirect=True,
)
def test_stats_count_the_connections_served_while_changes_apply(statera_server, provider):
    """The same with the traffic running during 10 changes: total_connections grows by the
    number of connections made, within 10 %."""
    with http_members("a", "b") as (a, b):
        with http_lb(statera_server, provider, [a.member_body(), b.member_body()]) as lb:
            port = lb.listeners["l"]["protocol_port"]
            before = _settled_total(lb, 0)
            with Load(lb.vip, port, duration=30) as load:
                for i in range(10):
                    lb.change("PUT", lb.member_path("b"), {"member": {"weight": 2 if i % 2 == 0 else 1}})
                load.stop()
            assert load.errors == []
            grown = _settled_total(lb, before + load.ok) - before
            print(f"{provider}: {load.ok} connections made, total_connections grew by {grown}")
            assert 0.9 * load.ok <= grown <= 1.1 * load.ok + 10, (load.ok, grown)
