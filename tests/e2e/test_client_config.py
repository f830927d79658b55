"""The three documented ways of pointing the clients at Statera without Keystone (see README):
CLI flags (used by the scenarios), OS_* environment variables, and a clouds.yaml entry, for both
the load-balancer and the network service."""

from __future__ import annotations

import os
import subprocess

import openstack.config
from conftest import CLI_TIMEOUT, openstack_cli_path

COMMANDS = [
    ["loadbalancer", "list", "-f", "json"],
    ["subnet", "show", "host-subnet", "-f", "json"],
    ["loadbalancer", "quota", "defaults", "show", "-f", "json"],
]


def _run(args, env):
    proc = subprocess.run(
        [openstack_cli_path(), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=CLI_TIMEOUT, env=env,
    )
    assert proc.returncode == 0, f"$ openstack {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("OS_")}


def test_environment_variables(statera_server):
    env = {**_clean_env(), "OS_AUTH_TYPE": "none", "OS_ENDPOINT": statera_server.endpoint}
    for args in COMMANDS:
        _run(args, env)


def test_clouds_yaml(statera_server, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n"
        "  statera:\n"
        "    auth_type: none\n"
        "    auth:\n"
        f"      endpoint: {statera_server.endpoint}\n"
    )
    env = {**_clean_env(), "OS_CLIENT_CONFIG_FILE": str(clouds)}
    for args in COMMANDS:
        _run(["--os-cloud", "statera", *args], env)

    # openstack.connect(cloud="statera") with OS_CLIENT_CONFIG_FILE set is the same thing.
    region = openstack.config.OpenStackConfig(config_files=[str(clouds)], load_envvars=False).get_one(cloud="statera")
    conn = openstack.connection.Connection(config=region)
    try:
        assert conn.network.find_subnet("host-subnet", ignore_missing=False).name == "host-subnet"
        list(conn.load_balancer.load_balancers())
        conn.load_balancer.get_quota_default()
    finally:
        conn.close()
