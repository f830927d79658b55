"""PostgreSQL for the end-to-end tests: a throwaway cluster (scripts/pg-cluster), a fresh database
per server, `statera db upgrade` on it. This module holds no tests.

- `pg_cluster` (session fixture, registered by conftest): the cluster named by
  STATERA_TEST_POSTGRES (scripts/test starts one), else one started with scripts/pg-cluster in a
  temp dir and torn down at the end of the session. Missing prerequisites (no PostgreSQL server
  programs, no psql, neither root nor the postgres user) skip with the reason; conftest turns
  such skips into failures under CI=true.
- `own_cluster()`: a cluster of the caller's own, for a test that restarts PostgreSQL (never
  restart the shared one).
- `fresh_database(cluster)`: CREATE DATABASE with a unique name, yields its URL, drops it after
  (WITH (FORCE): a SIGKILLed server may leave a connection behind for a moment).
- `db_upgrade(url)` / `db_status(url)`: `statera db upgrade|status --store URL`.
- `store_url(kind, request)`: what a server of store kind "sqlite" or "postgres" is given as
  `--store` (None for SQLite), as a context manager.

Clients are Debian's `psql` (postgresql-client), so no Python driver is needed.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_CLUSTER = REPO_ROOT / "scripts" / "pg-cluster"
PSQL_TIMEOUT = 30.0
CLUSTER_TIMEOUT = 120.0  # scripts/pg-cluster start/stop/restart

_db_counter = itertools.count(1)


@dataclass
class PgCluster:
    url: str  # postgres://postgres@127.0.0.1:PORT/postgres (the maintenance database)
    dir: Path | None  # None for a cluster this session did not start (STATERA_TEST_POSTGRES)

    def restart(self) -> None:
        assert self.dir is not None, "refusing to restart a cluster this test did not start"
        pg_cluster_cmd("restart", str(self.dir))

    def stop(self) -> None:
        assert self.dir is not None, "refusing to stop a cluster this test did not start"
        pg_cluster_cmd("stop", str(self.dir))

    def start(self) -> None:
        assert self.dir is not None, "refusing to start a cluster this test did not start"
        pg_cluster_cmd("start", str(self.dir))


def psql_binary() -> str | None:
    found = shutil.which("psql")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
    return candidates[-1] if candidates else None


def missing_prerequisite() -> str | None:
    """Why this machine cannot start a cluster with scripts/pg-cluster, or None."""
    if psql_binary() is None:
        return "no psql (install Debian's postgresql package)"
    if not (glob.glob("/usr/lib/postgresql/*/bin/pg_ctl") or shutil.which("pg_ctl") or os.environ.get("PG_BINDIR")):
        return "no PostgreSQL server programs (initdb, pg_ctl): install Debian's postgresql package"
    if os.geteuid() != 0:
        import pwd

        if pwd.getpwuid(os.geteuid()).pw_name != "postgres":
            return "scripts/pg-cluster needs root or the postgres user to run a throwaway PostgreSQL cluster"
    return None


def pg_cluster_cmd(*args: str, timeout: float = CLUSTER_TIMEOUT) -> str:
    """Runs scripts/pg-cluster; returns its last line of output; fails the test on an error."""
    proc = subprocess.run(
        [str(PG_CLUSTER), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"scripts/pg-cluster {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def psql(url: str, sql: str, timeout: float = PSQL_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess:
    """One psql call: unaligned, tuples only, stops at the first error. Fails the test if `check`
    and psql failed."""
    exe = psql_binary()
    assert exe, "no psql"
    proc = subprocess.run(
        [exe, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"psql {sql!r} on {url} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.contextmanager
def start_cluster():
    """Starts a throwaway cluster in a temp dir (scripts/pg-cluster); stops and removes it after.
    Skips (with the reason) where this machine cannot."""
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    # mkdtemp's directory itself becomes the cluster dir: /tmp is traversable by postgres.
    d = Path(tempfile.mkdtemp(prefix="statera-e2e-pg-"))
    try:
        url = pg_cluster_cmd("start", str(d))
        yield PgCluster(url=url, dir=d)
    finally:
        with contextlib.suppress(Exception):
            pg_cluster_cmd("stop", str(d))
        shutil.rmtree(d, ignore_errors=True)


def session_cluster():
    """The generator behind conftest's session fixture `pg_cluster`."""
    external = os.environ.get("STATERA_TEST_POSTGRES")
    if external:
        if psql_binary() is None:
            pytest.skip("STATERA_TEST_POSTGRES is set but there is no psql (install Debian's postgresql package)")
        proc = psql(external, "SELECT 1", check=False)
        assert proc.returncode == 0, f"STATERA_TEST_POSTGRES={external} does not answer: {proc.stderr}"
        yield PgCluster(url=external, dir=None)
        return
    with start_cluster() as cluster:
        yield cluster


own_cluster = start_cluster  # for a test that restarts PostgreSQL: never the shared cluster


@contextlib.contextmanager
def fresh_database(cluster: PgCluster, upgrade: bool = True):
    """A new, empty database on `cluster` (with the schema applied by `statera db upgrade` unless
    upgrade=False); yields its URL; dropped after."""
    name = f"statera_e2e_{os.getpid()}_{next(_db_counter)}_{uuid.uuid4().hex[:8]}"
    psql(cluster.url, f'CREATE DATABASE "{name}"')
    url = with_database(cluster.url, name)
    try:
        if upgrade:
            db_upgrade(url)
        yield url
    finally:
        psql(cluster.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', check=False)


def statera_db(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    from conftest import statera_binary

    return subprocess.run(
        [str(statera_binary()), "db", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if not k.startswith(("OS_", "STATERA_STORE"))},
    )


def db_upgrade(url: str) -> subprocess.CompletedProcess:
    proc = statera_db("upgrade", "--store", url)
    assert proc.returncode == 0, (
        f"statera db upgrade --store {url} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def db_status(url: str) -> subprocess.CompletedProcess:
    return statera_db("status", "--store", url)


@contextlib.contextmanager
def store_url(kind: str, request):
    """What a server of store kind `kind` gets as --store: None for SQLite (its data dir), a
    fresh upgraded database on the session's cluster for PostgreSQL."""
    if kind == "sqlite":
        yield None
        return
    assert kind == "postgres", f"unknown store kind {kind!r}"
    cluster = request.getfixturevalue("pg_cluster")
    with fresh_database(cluster) as url:
        yield url
