"""The API's shape against a real `statera serve` (issue 12, items 18-20): hyper's own answers
to requests it cannot parse carry the error body of the route they named; Octavia's provider
names `amphora` and `octavia` create load balancers that serve; the openstack CLI lists
providers and subnet pools."""

from __future__ import annotations

import json
import socket

from conftest import start_backends, wait_http_ok, wait_lb_active

LISTENER_PORT = 8047


def raw_exchange(server, request: bytes, timeout: float = 5.0) -> tuple[int, str, object]:
    """Send `request` as is on a new connection; the status, head and JSON body of the answer
    (read until the server closes, at most `timeout` s)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except OSError:
            pass  # the server may answer and close before it read everything
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            chunks.append(data)
    text = b"".join(chunks).decode("latin-1")
    head, _, body = text.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 "), f"no answer: {text!r}"
    assert "content-type: application/json" in head.lower(), head
    return int(head[9:12]), head, json.loads(body)


def test_hyper_answers_carry_the_error_body(statera_server):
    long = "a" * 70_000
    status, _, body = raw_exchange(
        statera_server, f"GET /v2/lbaas/loadbalancers?name={long} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status == 414 and body["faultcode"] == "Client" and body["debuginfo"] is None, body
    status, _, body = raw_exchange(statera_server, f"GET /v2.0/networks?name={long} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 414 and body["NeutronError"]["type"] == "HTTPRequestURITooLong", body
    many = "".join(f"X-H{i}: v\r\n" for i in range(120))
    status, _, body = raw_exchange(statera_server, f"GET /v2/lbaas/pools HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert status == 431 and body["faultstring"], body
    # Below hyper's bounds the router answers, in the same shapes.
    status, _, body = raw_exchange(
        statera_server,
        f"GET /v2/lbaas/loadbalancers?name={'a' * 9000} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status == 414 and body["faultcode"] == "Client", body
    status, _, body = raw_exchange(
        statera_server, b"GET /v2/lbaas/loadbalancers/%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert 400 <= status < 500 and body["faultcode"] == "Client", body


def test_octavia_provider_names_serve(statera_server):
    subnet_id = statera_server.api("GET", "/v2.0/subnets?name=host-subnet").json()["subnets"][0]["id"]
    with start_backends("backend-amphora") as (b,):
        for i, provider in enumerate(("amphora", "octavia")):
            r = statera_server.api(
                "POST",
                "/v2/lbaas/loadbalancers",
                {"loadbalancer": {"name": f"lb-{provider}", "vip_subnet_id": subnet_id, "provider": provider}},
            )
            assert r.status == 201, r.body
            lb = r.json()["loadbalancer"]
            assert lb["provider"] == provider
            vip = wait_lb_active(statera_server, lb["id"])["vip_address"]
            r = statera_server.api(
                "POST",
                "/v2/lbaas/listeners",
                {"listener": {"loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": LISTENER_PORT + i}},
            )
            assert r.status == 201, r.body
            wait_lb_active(statera_server, lb["id"])
            r = statera_server.api(
                "POST",
                "/v2/lbaas/pools",
                {"pool": {"listener_id": r.json()["listener"]["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}},
            )
            assert r.status == 201, r.body
            pool = r.json()["pool"]["id"]
            wait_lb_active(statera_server, lb["id"])
            r = statera_server.api(
                "POST", f"/v2/lbaas/pools/{pool}/members", {"member": {"address": b.host, "protocol_port": b.port}}
            )
            assert r.status == 201, r.body
            wait_lb_active(statera_server, lb["id"])
            assert wait_http_ok(f"http://{vip}:{LISTENER_PORT + i}/").body.decode() == b.name
            r = statera_server.api("DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true")
            assert r.status == 204, r.body


def test_cli_lists_providers_and_subnet_pools(cli):
    names = [p["name"] for p in cli.json("loadbalancer", "provider", "list")]
    assert {"native", "amphora", "octavia"} <= set(names), names
    caps = cli.json("loadbalancer", "provider", "capability", "list", "amphora")
    assert any(c["name"] == "loadbalancer_topology" for c in caps), caps
    assert {c["name"] for c in caps if c["type"] == "availability_zone"} == {
        "compute_zone",
        "management_network",
        "valid_vip_networks",
        "agents",
    }, caps
    assert cli.json("subnet", "pool", "list") == []
    assert cli.json("subnet", "pool", "list", "--name", "nothing") == []
