"""Fixtures for Statera's end-to-end tests: a real `statera serve`, the real `openstack` CLI,
tiny HTTP backends, and bounded polling.

Environment knobs (all optional):
  STATERA_BIN       the statera binary (default: target/release/statera in the repo)
  STATERA_ENDPOINT  use an already running server (e.g. http://127.0.0.1:9876) instead of
                    starting one per test module; see tests/e2e/README.md
  STATERA_CLI       the openstack CLI (default: .venv/bin/openstack, else `openstack` in PATH)
  STATERA_E2E_STORES  the store backends the parametrized suites run on, comma-separated
                    (default: sqlite,postgres); test ids carry [sqlite] / [postgres]
  STATERA_TEST_POSTGRES  a PostgreSQL cluster to make the tests' databases on
                    (postgres://postgres@127.0.0.1:PORT/postgres; scripts/test starts one);
                    without it a throwaway cluster is started for the session (pg_support.py)
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import http.client
import http.server
import ipaddress
import itertools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pg_support

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_KEEP_DIR = REPO_ROOT / "target" / "e2e-logs"

SERVER_START_TIMEOUT = 20.0  # seconds until GET / must answer
SERVER_STOP_TIMEOUT = 10.0  # seconds a SIGTERM gets before SIGKILL
CLI_TIMEOUT = 90.0  # one `openstack` invocation (--wait polls forever on a stuck LB)
ACTIVE_TIMEOUT = 30.0  # an LB must be ACTIVE again this long after a change
POLL_INTERVAL = 0.2


# statera serve's own environment settings: a test passes what it means as flags, so a
# developer's STATERA_STORE (say) never reaches a server the test did not mean to point there.
_STATERA_SERVE_ENV = ("STATERA_STORE", "STATERA_ROLE", "STATERA_NODE_ID", "STATERA_CONTROLLER_TIMEOUT")


def _env_without_openstack_settings() -> dict[str, str]:
    """The caller's environment minus OS_* variables, so a developer's own cloud settings never
    leak into a test (nor statera serve's STATERA_STORE, _ROLE, _NODE_ID, _CONTROLLER_TIMEOUT)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OS_") and k not in _STATERA_SERVE_ENV}


# ---------------------------------------------------------------------------------------------
# Ports and subnets


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_subnet_for_port(port: int) -> str:
    """A /24 inside 127/8 that is distinct for every API port, so servers running side by side
    (in this session or in parallel sessions) allocate VIPs from disjoint ranges.
    127.150.0.0 .. 127.249.255.0: clear of 127.0.0.0/16 (127.0.0.1 and friends) and of
    127.100.0.0/16 (the default host subnet a developer's own `statera serve` uses)."""
    second = 150 + (port // 256) % 100
    third = port % 256
    return f"127.{second}.{third}.0/24"


# ---------------------------------------------------------------------------------------------
# Plain HTTP against the API (for polling and for checks that bypass the clients)


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body.decode() or "null")


def http_request(
    url: str,
    method: str = "GET",
    body=None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResult:
    """One HTTP request; never raises for HTTP error statuses, never follows redirects."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
    try:
        path = parsed.path or "/"
        if parsed.query:
            path += "?" + parsed.query
        hdrs = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return HttpResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# The server


@dataclass
class StateraServer:
    endpoint: str  # e.g. http://127.0.0.1:40123 (no trailing slash)
    data_dir: Path | None
    host_subnet: str | None  # CIDR given with --host-subnet (None for an external server)
    process: subprocess.Popen | None
    log_path: Path | None
    name: str = "statera"
    store: str | None = None  # the --store URL (None: SQLite in the data dir)
    role: str | None = None  # the --role given (None: the default, api and controller)
    node_id: str | None = None  # the --node-id given

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.endpoint).port

    def api(self, method: str, path: str, body=None, headers: dict[str, str | None] | None = None, **kw) -> HttpResult:
        """A request to the API with a token (noauth accepts any); a header given as None is
        not sent."""
        return http_request(self.endpoint + path, method, body, headers={"X-Auth-Token": "e2e", **(headers or {})}, **kw)

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


_RUNNING: list[StateraServer] = []

# The lab configuration most tests run under: noauth, and a request without X-Roles is an admin
# of the default project (tests that exercise identity pass their own `auth_args`).
LAB_AUTH_ARGS = ["--auth", "noauth", "--noauth-default-roles", "admin,member,reader"]


def statera_binary() -> Path:
    path = Path(os.environ.get("STATERA_BIN", REPO_ROOT / "target" / "release" / "statera"))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"statera binary not found at {path}: build it with "
            "`cargo build --release -p statera` (or set STATERA_BIN)",
            pytrace=False,
        )
    return path


def wait_until_answers(server: StateraServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise AssertionError(
                f"statera exited with code {server.process.returncode} before answering GET /\n"
                f"--- log tail ---\n{server.log_tail()}"
            )
        try:
            r = http_request(server.endpoint + "/", timeout=2)
            if r.status == 200:
                return
            last_error = f"GET / answered {r.status}"
        except OSError as e:
            last_error = repr(e)
        time.sleep(POLL_INTERVAL)
    raise AssertionError(
        f"statera did not answer GET / within {timeout:.0f} s (last: {last_error})\n"
        f"--- log tail ---\n{server.log_tail()}"
    )


CONTROLLER_START_GRACE = 2.0  # a node without an API listener must survive this long at start


def wait_still_running(server: StateraServer, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"statera exited with code {server.process.returncode} within {seconds:.0f} s of its start\n"
                f"--- log tail ---\n{server.log_tail()}"
            )
        time.sleep(POLL_INTERVAL)


def stop_server(server: StateraServer, timeout: float = SERVER_STOP_TIMEOUT) -> int | None:
    """SIGTERM, wait, SIGKILL if needed. Returns the exit code, or None if it had to be killed."""
    proc = server.process
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


_name_counter = itertools.count(1)


_KEK_DIR: Path | None = None


def shared_kek_file(store: str) -> Path:
    """The key-encryption key file of every node on the shared store `store` (nodes sharing a
    store need the same key; the first node records its id and others refuse a different one).
    One per store URL, in a directory removed when the session ends."""
    global _KEK_DIR
    if _KEK_DIR is None:
        _KEK_DIR = Path(tempfile.mkdtemp(prefix="statera-keks-"))
        atexit.register(shutil.rmtree, _KEK_DIR, True)
    path = _KEK_DIR / hashlib.sha256(store.encode()).hexdigest()[:16]
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode())
        path.chmod(0o600)
    return path


@contextlib.contextmanager
def start_statera(
    data_dir: Path | None = None,
    port: int | None = None,
    extra_args: list[str] | None = None,
    wrapper: list[str] | None = None,
    nofile: int | None = None,
    auth_args: list[str] | None = None,
    store: str | None = None,
    role: str | None = None,
    node_id: str | None = None,
    host_subnet: str | None = None,
):
    """Start `statera serve` on a free port (or `port`) with its own data dir and a host subnet
    derived from the port; yield a StateraServer; on exit stop it (SIGTERM, then SIGKILL after
    SERVER_STOP_TIMEOUT) and remove the data dir unless it was passed in. The server's log is
    copied to target/e2e-logs/. Fails the test if the server had to be killed.
    Passing the same data_dir and port again restarts "the same" server. `nofile` sets the
    child's RLIMIT_NOFILE (soft and hard) before it starts.
    `wrapper` is a command that execs the server (e.g. setpriv to drop privileges): it must
    exec, not fork, so that signals reach statera itself. `auth_args` replace LAB_AUTH_ARGS.
    `store` is the --store URL (PostgreSQL; None: SQLite in the data dir), `role` the --role
    ("api", "controller", "api,controller"), `node_id` the --node-id; `host_subnet` replaces the
    per-port subnet (all nodes sharing one database must be given the same one). A node without
    the "api" role has no API listener: it counts as started when it is still running after
    CONTROLLER_START_GRACE seconds."""
    binary = statera_binary()
    port = port or free_port()
    subnet = host_subnet or host_subnet_for_port(port)
    own_dir = data_dir is None
    if own_dir:
        data_dir = Path(tempfile.mkdtemp(prefix=f"statera-e2e-{port}-"))
    name = f"statera-{os.getpid()}-{next(_name_counter)}-{port}"
    log_path = data_dir / f"{name}.log"
    args = [
        *(wrapper or []),
        str(binary),
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir / "data"),
        "--host-subnet",
        subnet,
        *(LAB_AUTH_ARGS if auth_args is None else auth_args),
        *(["--store", store, "--kek-file", str(shared_kek_file(store))] if store else []),
        *(["--role", role] if role else []),
        *(["--node-id", node_id] if node_id else []),
        *(extra_args or []),
    ]
    env = _env_without_openstack_settings()
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    env.setdefault("NO_COLOR", "1")
    log_file = open(log_path, "ab")
    log_file.write(("$ " + " ".join(args) + "\n").encode())
    log_file.flush()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
        env=env,
        preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None,
    )
    server = StateraServer(
        endpoint=f"http://127.0.0.1:{port}",
        data_dir=data_dir,
        host_subnet=subnet,
        process=proc,
        log_path=log_path,
        name=name,
        store=store,
        role=role,
        node_id=node_id,
    )
    _RUNNING.append(server)
    killed = False
    try:
        if role is None or "api" in role.split(","):
            wait_until_answers(server, SERVER_START_TIMEOUT)
        else:
            wait_still_running(server, CONTROLLER_START_GRACE)
        yield server
    finally:
        code = stop_server(server)
        killed = code is None
        log_file.close()
        _RUNNING.remove(server)
        with contextlib.suppress(OSError):
            LOG_KEEP_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copy(log_path, LOG_KEEP_DIR / f"{name}.log")
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    if killed:
        raise AssertionError(
            f"{name} did not exit within {SERVER_STOP_TIMEOUT:.0f} s of SIGTERM and was killed "
            f"(log: target/e2e-logs/{name}.log)"
        )


# ---------------------------------------------------------------------------------------------
# Store backends: the suites that take `store_kind` (through `statera_server`, or directly) run
# once per backend listed in STATERA_E2E_STORES; a module may narrow that list with a module-level
# `E2E_STORES = ("sqlite",)`.

STORE_KINDS = ("sqlite", "postgres")


def e2e_stores() -> list[str]:
    raw = os.environ.get("STATERA_E2E_STORES", ",".join(STORE_KINDS))
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in STORE_KINDS]
    if unknown or not kinds:
        raise pytest.UsageError(f"STATERA_E2E_STORES={raw!r}: give one or more of {', '.join(STORE_KINDS)}")
    return kinds


def pytest_generate_tests(metafunc):
    if "store_kind" not in metafunc.fixturenames:
        return
    if os.environ.get("STATERA_ENDPOINT") and "statera_server" in metafunc.fixturenames:
        return  # an external server: its store is whatever it was started with
    allowed = getattr(metafunc.module, "E2E_STORES", STORE_KINDS)
    kinds = [k for k in e2e_stores() if k in allowed]
    if not kinds:
        kinds = [allowed[0]]
    planes = getattr(metafunc.module, "E2E_DATA_PLANES", None)
    if planes and "data_plane" in metafunc.fixturenames:
        # Agents work with one controller on SQLite (serve refuses --agent-listen with a shared
        # store): the agent data plane runs on the sqlite store only.
        combos = [(k, p) for p in planes for k in kinds if p == "embedded" or k == "sqlite"]
        metafunc.parametrize(("store_kind", "data_plane"), combos, indirect=True, scope="module",
                             ids=[f"{k}-{p}" for k, p in combos])
        return
    metafunc.parametrize("store_kind", kinds, indirect=True, scope="module", ids=kinds)


@pytest.fixture(scope="module")
def store_kind(request) -> str:
    """The store backend of this module's servers: "sqlite" or "postgres" (a parameter, see
    pytest_generate_tests); "sqlite" where a test is not parametrized."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's PostgreSQL cluster (pg_support.py): STATERA_TEST_POSTGRES, or a throwaway
    one started now and torn down at the end. Requested only by tests on the postgres store."""
    yield from pg_support.session_cluster()


# ---------------------------------------------------------------------------------------------
# Data planes: a module that sets `E2E_DATA_PLANES = ("embedded", "agent")` runs once with the
# data planes in `statera serve` (the default) and once with them in a `statera agent` process
# the server drives over gRPC (`--agent-listen`).

DATA_PLANES = ("embedded", "agent")


class Agent:
    """A `statera agent` process (enrolled with `token` and `ca_file` when given, and given
    `extra_args`; started through `wrapper`, a command that execs it, e.g. `ip netns exec NS`);
    its log is copied to target/e2e-logs/ when stopped."""

    def __init__(self, name: str, controller: str, data_dir: Path, token: str | None = None,
                 ca_file: Path | None = None, extra_args: list[str] | None = None,
                 wrapper: list[str] | None = None):
        self.name, self.data_dir = name, data_dir
        self.log = data_dir.parent / f"{data_dir.name}-{time.monotonic_ns()}.log"
        args = [*(wrapper or []), str(statera_binary()), "agent", "--controller", controller,
                "--data-dir", str(data_dir), "--name", name]
        if token:
            args += ["--enroll-token", token, "--ca-file", str(ca_file)]
        args += extra_args or []
        env = {**_env_without_openstack_settings(), "RUST_LOG": "info", "NO_COLOR": "1"}
        self.log_file = open(self.log, "ab")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, env=env)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_session(self, timeout: float = 30) -> None:
        poll(lambda: "agent: session with the controller" in self.text(), timeout,
             f"{self.name}'s session with the controller")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log_file.close()
        with contextlib.suppress(OSError):
            LOG_KEEP_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log, LOG_KEEP_DIR / f"agent-{self.name}-{self.log.name}")
        return self.process.returncode


def agent_token(serve_data: Path) -> str:
    """A one-time enrolment token from the controller whose data directory is `serve_data`."""
    out = subprocess.run([str(statera_binary()), "agents", "token", "--data-dir", str(serve_data)],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


@contextlib.contextmanager
def with_agent(server: StateraServer, controller: str, name: str = "agent-1",
               extra_args: list[str] | None = None):
    """An agent enrolled with `server` (started with --agent-listen `controller`), in the
    server's directory, given `extra_args`, connected before this yields."""
    serve_data = server.data_dir / "data"
    agent = Agent(name, controller, server.data_dir / name, agent_token(serve_data),
                  serve_data / "agent-pki" / "ca.pem", extra_args)
    try:
        agent.wait_session()
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="module")
def data_plane(request) -> str:
    """Where this module's server runs its data planes: "embedded" or "agent"."""
    return getattr(request, "param", "embedded")


@pytest.fixture(scope="module")
def statera_server(store_kind, data_plane, request):
    """One server per test module and store backend (or the external one named by
    STATERA_ENDPOINT). On PostgreSQL the server gets a fresh database of its own. With the
    "agent" data plane, the server drives a `statera agent` of its own."""
    external = os.environ.get("STATERA_ENDPOINT")
    if external:
        server = StateraServer(
            endpoint=external.rstrip("/"), data_dir=None, host_subnet=None, process=None, log_path=None
        )
        wait_until_answers(server, SERVER_START_TIMEOUT)
        yield server
        return
    if data_plane == "agent":
        controller = f"127.0.0.1:{free_port()}"
        with (
            pg_support.store_url(store_kind, request) as store,
            start_statera(store=store, extra_args=["--agent-listen", controller]) as server,
            with_agent(server, controller),
        ):
            yield server
        return
    with pg_support.store_url(store_kind, request) as store, start_statera(store=store) as server:
        yield server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of every running server's log to a failing test's report.

    A missing prerequisite is a skip on a developer's machine and a failure under CI: there
    (CI=true) `scripts/test` installs every prerequisite and runs as root, so a test that skips
    (other than an expected failure) hides a broken setup."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every prerequisite must be present: {reason}"
    if report.failed:
        for server in list(_RUNNING):
            report.sections.append((f"{server.name} log (tail)", server.log_tail()))


# ---------------------------------------------------------------------------------------------
# The openstack CLI


def openstack_cli_path() -> str:
    explicit = os.environ.get("STATERA_CLI")
    if explicit:
        return explicit
    venv_cli = REPO_ROOT / ".venv" / "bin" / "openstack"
    if venv_cli.exists():
        return str(venv_cli)
    found = shutil.which("openstack")
    if not found:
        pytest.fail("openstack CLI not found: run scripts/test once to create .venv", pytrace=False)
    return found


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    data: object = None  # parsed JSON when the command printed JSON

    def describe(self) -> str:
        return (
            f"$ openstack {' '.join(self.args)}\n"
            f"exit code {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


@dataclass
class OpenStackCli:
    """Runs the real `openstack` CLI against one endpoint with auth type `none`:
    `openstack --os-auth-type none --os-endpoint URL ...`. With auth type none keystoneauth
    uses URL for every service, so the network lookups (subnet names and ids) come to the same
    server as the load-balancer calls."""

    endpoint: str
    executable: str = field(default_factory=openstack_cli_path)
    history: list[CliResult] = field(default_factory=list)
    # With `clouds_yaml` set, the CLI authenticates as that file's cloud `statera` (the built-in
    # Keystone's admin, say) instead of auth type none.
    clouds_yaml: Path | None = None

    def base_args(self) -> list[str]:
        if self.clouds_yaml is not None:
            return ["--os-cloud", "statera"]
        return ["--os-auth-type", "none", "--os-endpoint", self.endpoint]

    def run(self, *args: str, expect_ok: bool = True, timeout: float = CLI_TIMEOUT) -> CliResult:
        args = [str(a) for a in args]
        cmd = [self.executable, *self.base_args(), *args]
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={
                    **_env_without_openstack_settings(),
                    **({"OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml)} if self.clouds_yaml else {}),
                },
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"`openstack {' '.join(args)}` did not finish within {timeout:.0f} s "
                f"(with --wait this means a resource stayed in PENDING_*)\n"
                f"--- stdout ---\n{e.stdout}\n--- stderr ---\n{e.stderr}"
            ) from None
        result = CliResult(args, proc.returncode, proc.stdout, proc.stderr)
        if proc.stdout.strip().startswith(("{", "[")):
            try:
                result.data = json.loads(proc.stdout)
            except json.JSONDecodeError:
                pass
        self.history.append(result)
        if expect_ok and proc.returncode != 0:
            raise AssertionError("openstack CLI failed:\n" + result.describe())
        if not expect_ok and proc.returncode == 0:
            raise AssertionError("openstack CLI succeeded but a failure was expected:\n" + result.describe())
        return result

    def json(self, *args: str, timeout: float = CLI_TIMEOUT):
        """Run a command that prints something with `-f json` and return the parsed JSON."""
        result = self.run(*args, "-f", "json", timeout=timeout)
        if result.data is None:
            raise AssertionError("expected JSON output:\n" + result.describe())
        return result.data


@pytest.fixture(scope="module")
def cli(statera_server) -> OpenStackCli:
    return OpenStackCli(statera_server.endpoint)


# ---------------------------------------------------------------------------------------------
# Backends


class Headers(dict):
    """Request headers as a backend received them, looked up case-insensitively (HTTP header
    names are; hyper sends them in lower case, Python's clients capitalised). Keys are stored in
    lower case; the last value wins for a repeated header."""

    def __init__(self, items=()):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


@dataclass
class Backend:
    name: str
    host: str
    port: int
    requests: list[dict] = field(default_factory=list, repr=False)  # {"method","path","headers": Headers}
    server: http.server.ThreadingHTTPServer | None = field(default=None, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    def paths(self) -> list[str]:
        return [r["path"] for r in list(self.requests)]


def _make_handler(backend: Backend):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def _answer(self, with_body: bool):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            backend.requests.append(
                {"method": self.command, "path": self.path, "headers": Headers(self.headers.items())}
            )
            body = backend.name.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend", backend.name)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self):
            self._answer(True)

        def do_POST(self):
            self._answer(True)

        def do_HEAD(self):
            self._answer(False)

        def do_OPTIONS(self):
            self._answer(True)

    return Handler


@contextlib.contextmanager
def start_backends(*names: str, host: str = "127.0.0.1"):
    """Start one small HTTP server per name on free ports of `host`; each answers every GET
    with its own name as the body (and header X-Backend) and records what it received."""
    backends: list[Backend] = []
    try:
        for name in names:
            b = Backend(name=name, host=host, port=0)
            srv = http.server.ThreadingHTTPServer((host, 0), _make_handler(b))
            srv.daemon_threads = True
            b.server = srv
            b.port = srv.server_address[1]
            b.thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            b.thread.start()
            backends.append(b)
        yield backends
    finally:
        for b in backends:
            b.server.shutdown()
            b.server.server_close()
            b.thread.join(timeout=5)


@pytest.fixture(scope="module")
def backends():
    with start_backends("backend-a", "backend-b") as bs:
        yield bs


# ---------------------------------------------------------------------------------------------
# Polling and traffic helpers


def poll(fn, timeout: float, what, interval: float = POLL_INTERVAL):
    """Call fn() until it returns a truthy value; return it. After `timeout` seconds fail with
    `what` (a string, or a callable returning one, evaluated at that moment)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {text}")
        time.sleep(interval)


def wait_lb_active(server: StateraServer, lb_id: str, timeout: float = ACTIVE_TIMEOUT) -> dict:
    """Poll GET /v2/lbaas/loadbalancers/{id} until provisioning_status is ACTIVE (fails at once
    on ERROR), as every Octavia client does after each change."""
    seen: list[str] = []

    def check():
        r = server.api("GET", f"/v2/lbaas/loadbalancers/{lb_id}")
        assert r.status == 200, f"GET loadbalancer {lb_id} -> {r.status} {r.body[:500]!r}"
        lb = r.json()["loadbalancer"]
        status = lb["provisioning_status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        assert status != "ERROR", f"load balancer {lb_id} went to ERROR (statuses seen: {seen})"
        return lb if status == "ACTIVE" else None

    return poll(check, timeout, lambda: f"load balancer {lb_id} to be ACTIVE (statuses seen: {seen})")


def wait_gone(server: StateraServer, path: str, timeout: float = ACTIVE_TIMEOUT) -> None:
    """Poll GET path until it answers 404."""
    statuses: list[int] = []

    def check():
        r = server.api("GET", path)
        statuses.append(r.status)
        return r.status == 404

    poll(check, timeout, lambda: f"GET {path} to answer 404 (last statuses: {statuses[-5:]})")


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> HttpResult:
    return http_request(url, "GET", headers={"Accept": "*/*", **(headers or {})}, timeout=timeout)


def wait_http_ok(url: str, timeout: float = 10.0) -> HttpResult:
    """Poll a VIP URL until it answers 200. ACTIVE means the data plane acknowledged the config,
    so the first request should already work: if it needed retries, a warning says so (shown in
    pytest's summary) without failing the test; after `timeout` seconds it fails."""
    last: list[str] = []
    attempts = [0]

    def check():
        attempts[0] += 1
        try:
            r = http_get(url, timeout=2)
        except OSError as e:
            last[:] = [repr(e)]
            return None
        last[:] = [f"{r.status} {r.body[:200]!r}"]
        return r if r.status == 200 else None

    result = poll(check, timeout, lambda: f"{url} to answer 200 (last: {last})")
    if attempts[0] > 1:
        warnings.warn(f"{url} answered 200 only after {attempts[0]} attempts although the LB was ACTIVE")
    return result


def assert_in_subnet(address: str, cidr: str) -> None:
    assert ipaddress.ip_address(address) in ipaddress.ip_network(cidr), f"{address} is not in {cidr}"

