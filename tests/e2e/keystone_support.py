"""A real Keystone (from PyPI, in .venv-keystone) for the external-Keystone tests.

`keystone` (session fixture) starts one Keystone for the test session: a temporary directory
with keystone.conf (SQLite, Fernet key repositories), `keystone-manage db_sync`, `fernet_setup`,
`credential_setup` and `bootstrap` (admin password, public URL on a free loopback port, region
RegionOne), then serves it with keystone_wsgi.py. It then creates what the tests use, through
Keystone's own API: the `load-balancer_*` roles, a `service` project with Statera's service user
(`service` and `admin` roles), two demo projects and users with member and reader roles. Users
and projects exist only in that Keystone. Teardown stops it and removes the directory.

If .venv-keystone is missing, the tests are skipped with the reason (and fail under CI=true,
see conftest.py); `scripts/test` installs it from tests/e2e/requirements-keystone.txt.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO_ROOT, free_port, http_request

KEYSTONE_VENV = REPO_ROOT / ".venv-keystone"
KEYSTONE_START_TIMEOUT = 60.0  # seconds until GET /v3 answers (importing Keystone takes ~5 s)
ADMIN_PASSWORD = "e2e-admin-secret"
SERVICE_USER = "statera"
SERVICE_PASSWORD = "e2e-service-secret"
REGION = "RegionOne"
LB_ROLES = [
    "load-balancer_observer",
    "load-balancer_global_observer",
    "load-balancer_member",
    "load-balancer_quota_admin",
    "load-balancer_admin",
]


@dataclass
class KsUser:
    name: str
    password: str
    project: str
    user_id: str = ""
    project_id: str = ""


@dataclass
class KeystoneServer:
    host: str
    port: int
    dir: Path
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    users: dict[str, KsUser] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)  # name -> id
    admin_token: str = ""

    @property
    def url(self) -> str:
        """The identity v3 endpoint."""
        return f"http://{self.host}:{self.port}/v3"

    # -- process ------------------------------------------------------------------------------

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                str(KEYSTONE_VENV / "bin" / "python"),
                str(Path(__file__).with_name("keystone_wsgi.py")),
                self.host,
                str(self.port),
                str(self.dir / "keystone.conf"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            env=_clean_env(),
        )
        log.close()
        deadline = time.monotonic() + KEYSTONE_START_TIMEOUT
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"keystone exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                r = http_request(self.url, timeout=2)
                if r.status == 200:
                    return
                last = f"{r.status}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"keystone did not answer within {KEYSTONE_START_TIMEOUT:.0f} s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- API ----------------------------------------------------------------------------------

    def token(self, user: str, password: str, project: str | None = None) -> str:
        """A token for `user` (scoped to `project` when given), issued by this Keystone."""
        auth = {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}},
            }
        }
        if project:
            auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        r = http_request(self.url + "/auth/tokens?nocatalog", "POST", {"auth": auth})
        assert r.status == 201, f"token for {user}: {r.status} {r.body[:300]!r}"
        return r.headers["x-subject-token"]

    def user_token(self, name: str) -> str:
        u = self.users[name]
        return self.token(u.name, u.password, u.project)

    def admin(self, method: str, path: str, body=None, expect=(200, 201, 204)):
        if not self.admin_token:
            self.admin_token = self.token("admin", ADMIN_PASSWORD, "admin")
        r = http_request(self.url + path, method, body, headers={"X-Auth-Token": self.admin_token})
        assert r.status in expect, f"{method} {path}: {r.status} {r.body[:500]!r}"
        return r.json() if r.body else None

    def role_id(self, name: str) -> str:
        found = self.admin("GET", f"/roles?name={name}")["roles"]
        if found:
            return found[0]["id"]
        return self.admin("POST", "/roles", {"role": {"name": name}})["role"]["id"]

    def project_id(self, name: str) -> str:
        found = self.admin("GET", f"/projects?name={name}")["projects"]
        if found:
            return found[0]["id"]
        return self.admin("POST", "/projects", {"project": {"name": name, "domain_id": "default"}})["project"]["id"]

    def add_user(self, name: str, password: str, project: str, roles: list[str]) -> KsUser:
        pid = self.project_id(project)
        uid = self.admin(
            "POST", "/users", {"user": {"name": name, "password": password, "domain_id": "default", "default_project_id": pid}}
        )["user"]["id"]
        for role in roles:
            self.admin("PUT", f"/projects/{pid}/users/{uid}/roles/{self.role_id(role)}")
        user = KsUser(name, password, project, uid, pid)
        self.users[name] = user
        self.projects[project] = pid
        return user

    def register_statera(self, endpoint: str) -> None:
        """Make the catalog's load-balancer and network services point at `endpoint` (the
        endpoints of an earlier Statera are replaced)."""
        services = {s["type"]: s["id"] for s in self.admin("GET", "/services")["services"]}
        for stype, name in (("load-balancer", "octavia"), ("network", "neutron")):
            sid = services.get(stype) or self.admin("POST", "/services", {"service": {"type": stype, "name": name}})["service"]["id"]
            for ep in self.admin("GET", f"/endpoints?service_id={sid}")["endpoints"]:
                self.admin("DELETE", f"/endpoints/{ep['id']}")
            for interface in ("public", "internal", "admin"):
                self.admin(
                    "POST",
                    "/endpoints",
                    {"endpoint": {"service_id": sid, "interface": interface, "url": endpoint, "region_id": REGION}},
                )

    def clouds_yaml(self, path: Path) -> Path:
        """A clouds.yaml with one cloud per user (auth_type password, auth_url this Keystone)."""
        lines = ["clouds:"]
        for u in self.users.values():
            lines += [
                f"  {u.name}:",
                "    auth_type: password",
                "    auth:",
                f"      auth_url: {self.url}",
                f"      username: {u.name}",
                f"      password: {u.password}",
                f"      project_name: {u.project}",
                "      user_domain_name: Default",
                "      project_domain_name: Default",
                f"    region_name: {REGION}",
                "    interface: public",
                "    identity_api_version: 3",
            ]
        path.write_text("\n".join(lines) + "\n")
        return path

    def statera_config(self, path: Path, cache_seconds: int = 300) -> Path:
        """A Statera settings file for `--auth keystone` against this Keystone."""
        path.write_text(
            "[auth]\n"
            'mode = "keystone"\n'
            "[auth.keystone]\n"
            f'auth_url = "{self.url}"\n'
            f'username = "{SERVICE_USER}"\n'
            f'password = "{SERVICE_PASSWORD}"\n'
            'project_name = "service"\n'
            'user_domain_name = "Default"\n'
            'project_domain_name = "Default"\n'
            f"cache_seconds = {cache_seconds}\n"
            "timeout_ms = 3000\n"
        )
        return path


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OS_")}


def _manage(dir: Path, *args: str) -> None:
    cmd = [str(KEYSTONE_VENV / "bin" / "keystone-manage"), "--config-file", str(dir / "keystone.conf"), *args]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=dir, env=_clean_env())
    assert proc.returncode == 0, f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"


def keystone_missing() -> str | None:
    python = KEYSTONE_VENV / "bin" / "python"
    if not python.exists() or not (KEYSTONE_VENV / "bin" / "keystone-manage").exists():
        return "Keystone is not installed in .venv-keystone (scripts/test installs it from tests/e2e/requirements-keystone.txt)"
    proc = subprocess.run([str(python), "-c", "import keystone.server.wsgi"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return f".venv-keystone cannot import Keystone: {proc.stderr.strip()[-300:]}"
    return None


@contextlib.contextmanager
def start_keystone():
    reason = keystone_missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    dir = Path(tempfile.mkdtemp(prefix=f"statera-e2e-keystone-{port}-"))
    ks = KeystoneServer(host="127.0.0.1", port=port, dir=dir, log_path=dir / "keystone.log")
    try:
        (dir / "keystone.conf").write_text(
            "[DEFAULT]\n"
            "debug = false\n"
            "[database]\n"
            f"connection = sqlite:///{dir / 'keystone.db'}\n"
            "[token]\n"
            "provider = fernet\n"
            "expiration = 3600\n"
            "[fernet_tokens]\n"
            f"key_repository = {dir / 'fernet-keys'}\n"
            "[credential]\n"
            f"key_repository = {dir / 'credential-keys'}\n"
            "[cache]\n"
            "enabled = false\n"
            "[identity]\n"
            "password_hash_rounds = 4\n"
        )
        (dir / "fernet-keys").mkdir()
        (dir / "credential-keys").mkdir()
        user, group = _user_and_group()
        _manage(dir, "db_sync")
        _manage(dir, "fernet_setup", "--keystone-user", user, "--keystone-group", group)
        _manage(dir, "credential_setup", "--keystone-user", user, "--keystone-group", group)
        _manage(
            dir,
            "bootstrap",
            "--bootstrap-password", ADMIN_PASSWORD,
            "--bootstrap-public-url", ks.url,
            "--bootstrap-region-id", REGION,
        )
        ks.start()
        for role in ["member", "reader", "service", *LB_ROLES]:
            ks.role_id(role)
        ks.add_user(SERVICE_USER, SERVICE_PASSWORD, "service", ["service", "admin"])
        ks.add_user("alice", "alice-secret", "demo-a", ["member"])
        ks.add_user("rita", "rita-secret", "demo-a", ["reader"])
        ks.add_user("bob", "bob-secret", "demo-b", ["member"])
        ks.add_user("olga", "olga-secret", "demo-b", ["load-balancer_observer"])
        yield ks
    finally:
        ks.stop()
        with contextlib.suppress(OSError):
            keep = REPO_ROOT / "target" / "e2e-logs"
            keep.mkdir(parents=True, exist_ok=True)
            if ks.log_path and ks.log_path.exists():
                shutil.copy(ks.log_path, keep / f"keystone-{port}.log")
        shutil.rmtree(dir, ignore_errors=True)


def _user_and_group() -> tuple[str, str]:
    import grp
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


@pytest.fixture(scope="session")
def keystone():
    with start_keystone() as ks:
        yield ks
