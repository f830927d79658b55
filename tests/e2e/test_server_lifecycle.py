"""`statera serve` as a process: version discovery the clients need before anything else,
graceful shutdown on SIGTERM, and a restart on the same data dir that serves the same VIPs again
(the "Restart" flow of the design), on each store backend (on PostgreSQL the restart is given the
same database). Uses the plain HTTP API, like curl would."""

from __future__ import annotations

import tempfile
import shutil
from pathlib import Path

import pg_support
from conftest import http_get, poll, start_statera, stop_server, wait_http_ok, wait_lb_active

LISTENER_PORT = 8080


def _create(server, path, envelope, body):
    r = server.api("POST", path, {envelope: body})
    assert r.status == 201, f"POST {path} {body} -> {r.status}: {r.body[:500]!r}"
    return r.json()[envelope]


def test_discovery_documents():
    with start_statera() as server:
        # No token at all: keystonemiddleware lets / through, so the clients send none.
        r = http_get(server.endpoint + "/")
        assert r.status == 200, r
        versions = r.json()["versions"]
        assert versions[-1]["status"] == "CURRENT", versions
        self_links = [link["href"] for link in versions[-1]["links"] if link["rel"] == "self"]
        assert self_links and self_links[0].rstrip("/").endswith("/v2"), versions[-1]
        # keystoneauth crashes on Octavia's bare "v2" string when an endpoint override ends in
        # /v2 or /v2.0, so both must answer with a JSON object.
        for prefix in ("/v2", "/v2.0"):
            r = server.api("GET", prefix)
            assert r.status == 200, f"GET {prefix} -> {r.status}"
            assert isinstance(r.json(), dict), f"GET {prefix} -> {r.body[:200]!r}"
        # A name where an id belongs is a 404, never a 500 (the SDK tries this first).
        for prefix in ("/v2", "/v2.0"):
            r = server.api("GET", f"{prefix}/lbaas/loadbalancers/some-name")
            assert r.status == 404, f"GET {prefix}/lbaas/loadbalancers/some-name -> {r.status}"
            r = server.api("GET", f"{prefix}/subnets/host-subnet")
            assert r.status == 404, f"GET {prefix}/subnets/host-subnet -> {r.status}"
        # Every response carries a request id.
        assert server.api("GET", "/v2/lbaas/loadbalancers").headers.get("x-openstack-request-id", "").startswith(
            "req-"
        )


def test_sigterm_and_restart_keep_serving(backends, store_kind, request):
    data_dir = Path(tempfile.mkdtemp(prefix="statera-e2e-restart-"))
    try:
        with pg_support.store_url(store_kind, request) as store:
            sigterm_and_restart(data_dir, store, backends)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def sigterm_and_restart(data_dir: Path, store: str | None, backends) -> None:
    with start_statera(data_dir=data_dir, store=store) as first:
        port = first.port
        subnet_id = first.api("GET", "/v2.0/subnets?name=host-subnet").json()["subnets"][0]["id"]
        lb = _create(first, "/v2/lbaas/loadbalancers", "loadbalancer", {"name": "lb-restart", "vip_subnet_id": subnet_id})
        vip = wait_lb_active(first, lb["id"])["vip_address"]
        listener = _create(first, "/v2/lbaas/listeners", "listener", {
            "name": "l", "protocol": "HTTP", "protocol_port": LISTENER_PORT, "loadbalancer_id": lb["id"],
        })
        wait_lb_active(first, lb["id"])
        pool = _create(first, "/v2/lbaas/pools", "pool", {
            "name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "listener_id": listener["id"],
        })
        wait_lb_active(first, lb["id"])
        b = backends[0]
        _create(first, f"/v2/lbaas/pools/{pool['id']}/members", "member", {"address": b.host, "protocol_port": b.port})
        wait_lb_active(first, lb["id"])
        url = f"http://{vip}:{LISTENER_PORT}/"
        assert wait_http_ok(url).body.decode() == b.name

        code = stop_server(first)
        assert code == 0, f"statera exited with {code} on SIGTERM (None = had to be killed)"

        def refused():
            try:
                http_get(url, timeout=1)
                return False
            except OSError:
                return True

        poll(refused, 5, "the VIP to stop serving once the server is gone")

    with start_statera(data_dir=data_dir, port=port, store=store) as second:
        again = wait_lb_active(second, lb["id"])
        assert again["vip_address"] == vip
        assert wait_http_ok(url).body.decode() == b.name
        r = second.api("DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=True")
        assert r.status == 204, f"cascade delete -> {r.status} {r.body[:300]!r}"
