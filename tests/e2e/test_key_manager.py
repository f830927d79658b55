"""The key manager (Barbican's v1 API) with the real clients: `openstack secret …` and
`openstack acl …` (python-barbicanclient) against `statera serve` with its built-in Keystone,
which lists the service as `key-manager` in its catalog.

A text secret, a PKCS#12 bundle made by openssl (stored from the file and read back byte for
byte), a certificate container; another project's user sees nothing until the owner adds it to
the secret's read ACL; the payloads are sealed on disk; a restart keeps them readable, and a
start without the key-encryption key the secrets were sealed with is refused. A TERMINATED_HTTPS
listener's certificate reference is read with the caller's rights (another project's bundle is
Octavia's 400).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import (
    CLI_TIMEOUT,
    _env_without_openstack_settings,
    openstack_cli_path,
    start_statera,
    statera_binary,
)

BUILTIN: list[str] = []  # the default auth mode: the built-in Keystone


def run_cli(clouds: Path, cloud: str, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
    env = _env_without_openstack_settings()
    env.update(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD=cloud)
    proc = subprocess.run(
        [openstack_cli_path(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        env=env,
    )
    ok = proc.returncode == 0
    assert ok == expect_ok, (
        f"$ openstack {' '.join(args)}\nexit {proc.returncode}\n{proc.stdout!r}\n{proc.stderr!r}"
    )
    return proc


def openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/test installs it)")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def add_tenant(clouds: Path, workdir: Path) -> tuple[Path, str]:
    """A second project with a member user; its own clouds.yaml (cloud `tenant`) and user id."""
    admin = lambda *a: run_cli(clouds, "statera", *a).stdout.decode()  # noqa: E731
    admin("project", "create", "tenant-b")
    user_id = admin("user", "create", "--project", "tenant-b", "--password", "b-password", "bob",
                    "-f", "value", "-c", "id").strip()
    admin("role", "add", "--project", "tenant-b", "--user", "bob", "member")
    config = yaml.safe_load(clouds.read_text())
    cloud = dict(config["clouds"]["statera"])
    cloud["auth"] = dict(cloud["auth"], username="bob", password="b-password", project_name="tenant-b")
    path = workdir / "tenant.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"tenant": cloud}}))
    path.chmod(0o600)
    return path, user_id


def test_secrets_containers_and_acls_with_the_barbican_client():
    work = Path(tempfile.mkdtemp(prefix="statera-km-"))
    try:
        with start_statera(auth_args=BUILTIN) as server:
            clouds = server.data_dir / "data" / "clouds.yaml"

            def admin(*args: str, expect_ok: bool = True) -> str:
                return run_cli(clouds, "statera", *args, expect_ok=expect_ok).stdout.decode()

            catalog = admin("catalog", "list", "-f", "value", "-c", "Type")
            assert "key-manager" in catalog.split()

            # A text secret, one step.
            ref = admin("secret", "store", "--name", "db-password", "--payload", "s3cret-text",
                        "--payload-content-type", "text/plain", "-f", "value", "-c", "Secret href").strip()
            assert ref.startswith(f"{server.endpoint}/key-manager/v1/secrets/")
            assert admin("secret", "get", ref, "--payload", "-f", "value").strip() == "s3cret-text"
            listed = admin("secret", "list", "-f", "value", "-c", "Name").split()
            assert listed == ["db-password"]

            # A PKCS#12 bundle, as Octavia prefers certificates, from a file and back.
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "server.key", "-out", "server.crt", "-subj", "/CN=www.example.com",
                    "-days", "30", cwd=work)
            openssl("pkcs12", "-export", "-inkey", "server.key", "-in", "server.crt", "-passout", "pass:",
                    "-out", "server.p12", cwd=work)
            p12 = admin("secret", "store", "--name", "tls-bundle", "--file", str(work / "server.p12"),
                        "-f", "value", "-c", "Secret href").strip()
            admin("secret", "get", p12, "--file", str(work / "back.p12"),
                  "--payload_content_type", "application/octet-stream")
            assert (work / "back.p12").read_bytes() == (work / "server.p12").read_bytes()

            # A certificate container of PEM secrets.
            cert = admin("secret", "store", "--name", "crt", "--payload", (work / "server.crt").read_text(),
                         "--payload-content-type", "text/plain", "-f", "value", "-c", "Secret href").strip()
            key = admin("secret", "store", "--name", "key", "--payload", (work / "server.key").read_text(),
                        "--payload-content-type", "text/plain", "-f", "value", "-c", "Secret href").strip()
            container = admin("secret", "container", "create", "--name", "tls", "--type", "certificate",
                              "--secret", f"certificate={cert}", "--secret", f"private_key={key}",
                              "-f", "value", "-c", "Container href").strip()
            shown = yaml.safe_load(admin("secret", "container", "get", container, "-f", "yaml"))
            assert shown["Certificate"] == cert and shown["Private Key"] == key
            assert shown["Type"] == "certificate"

            # Another project's member: sees nothing, until the owner grants read on one secret.
            tenant, bob = add_tenant(clouds, work)
            out = run_cli(tenant, "tenant", "secret", "get", ref, "--payload", expect_ok=False)
            assert b"Not Found" in out.stderr and b"Secret not found." in out.stderr
            assert run_cli(tenant, "tenant", "secret", "list", "-f", "value").stdout.strip() == b""
            run_cli(tenant, "tenant", "secret", "container", "get", container, expect_ok=False)
            admin("acl", "user", "add", "--user", bob, ref)
            got = run_cli(tenant, "tenant", "secret", "get", ref, "--payload", "-f", "value").stdout
            assert got.decode().strip() == "s3cret-text"
            # Read, not delete.
            run_cli(tenant, "tenant", "secret", "delete", ref, expect_ok=False)
            admin("acl", "user", "remove", "--user", bob, ref)
            run_cli(tenant, "tenant", "secret", "get", ref, "--payload", expect_ok=False)

            # A TERMINATED_HTTPS listener names its certificate by reference, read with the
            # caller's rights: another project's bundle is Octavia's 400, one's own is served.
            lb = yaml.safe_load(admin("loadbalancer", "create", "--name", "tls-lb", "--vip-subnet-id",
                                      "host-subnet", "--wait", "-f", "yaml"))
            theirs = run_cli(tenant, "tenant", "secret", "store", "--name", "b-bundle", "--file",
                             str(work / "server.p12"), "-f", "value", "-c", "Secret href").stdout.decode().strip()
            out = run_cli(clouds, "statera", "loadbalancer", "listener", "create", "--protocol",
                          "TERMINATED_HTTPS", "--protocol-port", "443", "--default-tls-container-ref",
                          theirs, lb["id"], expect_ok=False)
            assert f"Could not retrieve certificate: ['{theirs}']".encode() in out.stderr, out.stderr
            mine = yaml.safe_load(run_cli(
                clouds, "statera", "loadbalancer", "listener", "create", "--protocol",
                "TERMINATED_HTTPS", "--protocol-port", "443", "--default-tls-container-ref",
                p12, lb["id"], "--wait", "-f", "yaml").stdout)
            assert mine["provisioning_status"] == "ACTIVE", mine

            # Sealed at rest: no payload in the database files.
            for f in (server.data_dir / "data").glob("statera.sqlite*"):
                data = f.read_bytes()
                assert b"s3cret-text" not in data, f"{f.name} holds a payload in clear"
                assert b"BEGIN PRIVATE KEY" not in data, f"{f.name} holds a private key in clear"

            admin("secret", "delete", ref)
            assert "db-password" not in admin("secret", "list", "-f", "value", "-c", "Name").split()
            remaining = p12

        # The same data directory again: the secrets open with the key file kept there.
        data_dir = Path(tempfile.mkdtemp(prefix="statera-km-data-"))
        try:
            with start_statera(data_dir=data_dir, auth_args=BUILTIN) as server:
                clouds = data_dir / "data" / "clouds.yaml"
                ref = run_cli(clouds, "statera", "secret", "store", "--name", "kept", "--payload", "kept-text",
                              "--payload-content-type", "text/plain", "-f", "value", "-c",
                              "Secret href").stdout.decode().strip()
                port, subnet = server.port, server.host_subnet
            with start_statera(data_dir=data_dir, port=port, auth_args=BUILTIN):
                got = run_cli(clouds, "statera", "secret", "get", ref, "--payload", "-f", "value").stdout
                assert got.decode().strip() == "kept-text"
            # Without its key file, the server refuses to start rather than make a new key.
            (data_dir / "data" / "key-manager.kek").rename(data_dir / "kek.saved")
            proc = subprocess.run(
                [str(statera_binary()), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                 str(data_dir / "data"), "--host-subnet", subnet],
                capture_output=True, text=True, timeout=60, env=_env_without_openstack_settings(),
            )
            assert proc.returncode != 0
            assert "key-encryption key" in proc.stderr and "is missing" in proc.stderr, proc.stderr
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        assert remaining
    finally:
        shutil.rmtree(work, ignore_errors=True)
