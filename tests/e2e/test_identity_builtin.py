"""The built-in Keystone (auth mode `builtin`, the default) with the real clients.

`statera serve` on a fresh data directory bootstraps itself and writes clouds.yaml; the real
`openstack` CLI and openstacksdk use that file as it is (`auth_type: password`): `token issue`,
load balancer create/list/show/delete. Tokens survive a restart and a key rotation until their
key is dropped (`statera token-keys rotate`), and `statera bootstrap` is idempotent.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import openstack.config
import openstack.connection
import yaml

from conftest import (
    CLI_TIMEOUT,
    _env_without_openstack_settings,
    free_port,
    http_request,
    openstack_cli_path,
    start_statera,
    statera_binary,
)

BUILTIN: list[str] = []  # no --auth: the default mode


def clouds_yaml(server) -> Path:
    return server.data_dir / "data" / "clouds.yaml"


def admin_password(path: Path) -> str:
    return yaml.safe_load(path.read_text())["clouds"]["statera"]["auth"]["password"]


def cli(path: Path, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
    env = _env_without_openstack_settings()
    env.update(OS_CLIENT_CONFIG_FILE=str(path), OS_CLOUD="statera")
    proc = subprocess.run(
        [openstack_cli_path(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=env,
    )
    assert (proc.returncode == 0) == expect_ok, (
        f"$ openstack {' '.join(args)}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def password_token(endpoint: str, password: str) -> tuple[int, str | None]:
    r = http_request(
        endpoint + "/v3/auth/tokens",
        "POST",
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": password}},
                },
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
            }
        },
    )
    return r.status, r.headers.get("x-subject-token")


def lb_list_status(endpoint: str, token: str) -> int:
    return http_request(endpoint + "/v2/lbaas/loadbalancers", headers={"X-Auth-Token": token}).status


def statera_cmd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = _env_without_openstack_settings()
    full_env.update(env or {})
    proc = subprocess.run(
        [str(statera_binary()), *args], capture_output=True, text=True, timeout=60, env=full_env
    )
    assert proc.returncode == 0, f"$ statera {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_cli_and_the_sdk_work_with_the_generated_clouds_yaml():
    with start_statera(auth_args=BUILTIN) as server:
        path = clouds_yaml(server)
        assert path.is_file(), "no clouds.yaml after the first start"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        keys = server.data_dir / "data" / "token-keys"
        assert stat.S_IMODE(keys.stat().st_mode) == 0o700
        assert sorted(p.name for p in keys.iterdir()) == ["0", "1"]
        log = server.log_path.read_text()
        assert f"OS_CLIENT_CONFIG_FILE={path} OS_CLOUD=statera" in log
        assert admin_password(path) not in log, "the admin password must never be logged"

        # Without a token: Keystone's 401 and where to get one.
        r = server.api("GET", "/v2/lbaas/loadbalancers", headers={"X-Auth-Token": None})
        assert r.status == 401
        assert r.json()["error"]["code"] == 401
        assert r.headers["www-authenticate"] == f'Keystone uri="{server.endpoint}/v3"'
        # noauth's any-token is gone.
        assert server.api("GET", "/v2/lbaas/loadbalancers").status == 401

        token = cli(path, "token", "issue", "-f", "yaml").stdout
        issued = yaml.safe_load(token)
        assert issued["project_id"] and issued["user_id"] and issued["id"]
        assert lb_list_status(server.endpoint, issued["id"]) == 200

        created = yaml.safe_load(
            cli(path, "loadbalancer", "create", "--name", "lb-cli", "--vip-subnet-id", "host-subnet",
                "--wait", "-f", "yaml").stdout
        )
        assert created["project_id"] == issued["project_id"]
        listed = cli(path, "loadbalancer", "list", "-f", "value", "-c", "name").stdout.split()
        assert listed == ["lb-cli"]
        shown = yaml.safe_load(cli(path, "loadbalancer", "show", "lb-cli", "-f", "yaml").stdout)
        assert shown["provisioning_status"] == "ACTIVE"

        # openstacksdk from the same file (what openstack.connect(cloud="statera") does with
        # OS_CLIENT_CONFIG_FILE set).
        config = openstack.config.OpenStackConfig(config_files=[str(path)])
        conn = openstack.connection.Connection(config=config.get_one(cloud="statera"))
        try:
            names = sorted(lb.name for lb in conn.load_balancer.load_balancers())
            assert names == ["lb-cli"]
            subnet = conn.network.find_subnet("host-subnet")
            lb = conn.load_balancer.create_load_balancer(name="lb-sdk", vip_subnet_id=subnet.id)
            lb = conn.load_balancer.wait_for_load_balancer(lb.id, wait=30)
            assert lb.provisioning_status == "ACTIVE"
            assert lb.project_id == issued["project_id"]
            conn.load_balancer.delete_load_balancer(lb.id)
        finally:
            conn.close()
        cli(path, "loadbalancer", "delete", "--wait", "lb-cli")
        assert "lb-cli" not in cli(path, "loadbalancer", "list", "-f", "value", "-c", "name").stdout.split()


def test_tokens_survive_a_restart_and_a_rotation_until_their_key_is_dropped():
    work = Path(tempfile.mkdtemp(prefix="statera-e2e-identity-"))
    port = free_port()
    try:
        with start_statera(data_dir=work, port=port, auth_args=BUILTIN) as server:
            password = admin_password(clouds_yaml(server))
            status, token = password_token(server.endpoint, password)
            assert status == 201 and token
            assert lb_list_status(server.endpoint, token) == 200
        with start_statera(data_dir=work, port=port, auth_args=BUILTIN) as server:
            assert lb_list_status(server.endpoint, token) == 200, "a restart logged the token out"
            # The running server follows rotations of its key repository.
            statera_cmd("token-keys", "rotate", "--data-dir", str(work / "data"))
            keys = sorted(p.name for p in (work / "data" / "token-keys").iterdir())
            assert keys == ["0", "1", "2"]
            time.sleep(1.2)
            assert lb_list_status(server.endpoint, token) == 200, "key 1 is a secondary key now"
            _, newer = password_token(server.endpoint, password)
            statera_cmd("token-keys", "rotate", "--data-dir", str(work / "data"))
            deadline = time.monotonic() + 5
            while lb_list_status(server.endpoint, token) != 401:
                assert time.monotonic() < deadline, "a token of a dropped key stayed valid"
                time.sleep(0.2)
            assert lb_list_status(server.endpoint, newer) == 200, "key 2 still validates"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_statera_bootstrap_is_idempotent_and_sets_the_password_only_when_given():
    work = Path(tempfile.mkdtemp(prefix="statera-e2e-bootstrap-"))
    port = free_port()
    data = work / "data"
    endpoint = f"http://127.0.0.1:{port}"
    try:
        out = statera_cmd("bootstrap", "--data-dir", str(data), "--admin-password", "first-pw",
                          "--public-url", endpoint).stdout
        assert "created" in out and "first-pw" not in out
        path = data / "clouds.yaml"
        assert admin_password(path) == "first-pw"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        before = path.read_text()
        out = statera_cmd("bootstrap", "--data-dir", str(data), "--public-url", endpoint).stdout
        assert "password unchanged" in out
        assert path.read_text() == before
        with start_statera(data_dir=work, port=port, auth_args=BUILTIN) as server:
            assert password_token(server.endpoint, "first-pw")[0] == 201
            assert path.read_text() == before, "serve re-bootstrapped a bootstrapped store"
            cli(path, "token", "issue", "-f", "value", "-c", "id")
        statera_cmd("bootstrap", "--data-dir", str(data), "--public-url", endpoint,
                    env={"STATERA_ADMIN_PASSWORD": "second-pw"})
        assert admin_password(path) == "second-pw"
        with start_statera(data_dir=work, port=port, auth_args=BUILTIN) as server:
            assert password_token(server.endpoint, "second-pw")[0] == 201
            assert password_token(server.endpoint, "first-pw")[0] == 401
            roles = sorted(
                r["name"]
                for r in http_request(
                    server.endpoint + "/v3/auth/tokens",
                    headers={
                        "X-Auth-Token": password_token(server.endpoint, "second-pw")[1],
                        "X-Subject-Token": password_token(server.endpoint, "second-pw")[1],
                    },
                ).json()["token"]["roles"]
            )
            assert roles == ["admin", "member", "reader"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
