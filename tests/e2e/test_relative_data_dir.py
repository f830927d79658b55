"""`statera serve` as the README starts it, with its data in the relative `./statera-data`
under a deep working directory: a haproxy load balancer must become ACTIVE and serve (issue #12,
item 11: HAProxy read the relative `stats socket ./statera-data/...` as an address and every
haproxy load balancer went to ERROR; made absolute, the socket paths must still fit).

Needs the haproxy executable: skipped with the reason on a developer's machine, a failure when
CI=true."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import (
    LAB_AUTH_ARGS,
    StateraServer,
    _env_without_openstack_settings,
    free_port,
    host_subnet_for_port,
    stop_server,
    statera_binary,
    wait_lb_active,
    wait_until_answers,
)

LISTENER_PORT = 18120


def require_haproxy() -> None:
    if shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists():
        return
    reason = "no haproxy executable on this machine"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def test_haproxy_serves_with_the_default_relative_data_dir():
    require_haproxy()
    root = Path(tempfile.mkdtemp(prefix="statera-e2e-rel-"))
    # Deep enough that the HAProxy sockets' absolute paths are longer than HAProxy (97 bytes)
    # and a Unix socket address (107) take.
    cwd = root / "a-working-directory-as-deep-as-many-checkouts-are"
    cwd.mkdir()
    port = free_port()
    log_path = cwd / "statera.log"
    log = open(log_path, "ab")
    # No --data-dir: the default, relative to the working directory.
    proc = subprocess.Popen(
        [str(statera_binary()), "serve", "--listen", f"127.0.0.1:{port}", "--host-subnet", host_subnet_for_port(port),
         *LAB_AUTH_ARGS],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**_env_without_openstack_settings(), "RUST_LOG": "info", "NO_COLOR": "1"},
    )
    server = StateraServer(
        endpoint=f"http://127.0.0.1:{port}", data_dir=cwd, host_subnet=None, process=proc, log_path=log_path
    )
    assert len(str(cwd / "statera-data/haproxy") + "/" + "0" * 36 + "/master.sock") > 107
    try:
        wait_until_answers(server, 20)
        assert (cwd / "statera-data").is_dir(), "the data dir is ./statera-data"
        r = server.api("GET", "/v2.0/subnets?name=host-subnet")
        subnet = r.json()["subnets"][0]["id"]
        r = server.api("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": subnet, "provider": "haproxy"}})
        assert r.status == 201, r.body
        lb = r.json()["loadbalancer"]
        wait_lb_active(server, lb["id"])
        r = server.api(
            "POST",
            "/v2/lbaas/listeners",
            {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": LISTENER_PORT}},
        )
        assert r.status == 201, r.body
        wait_lb_active(server, lb["id"])
        socket.create_connection((lb["vip_address"], LISTENER_PORT), timeout=5).close()
    finally:
        code = stop_server(server)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
    assert code == 0, f"statera exited with {code}"
