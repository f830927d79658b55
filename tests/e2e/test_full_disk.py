"""Fault: the disk under the data directory fills up during a burst of writes (issue #12, item 6).

A real `statera serve` keeps its data on an 8 MiB tmpfs. A filler file takes all but a little of
it, then four threads create objects until the database refuses. Checked:

- every answer is 201 or 503; every 503 is in the route's error shape (Octavia's faultcode/
  faultstring/debuginfo, Neutron's NeutronError) and says the disk is full;
- what the API lists is exactly what was acknowledged (memory is what the database holds);
- after a SIGKILL and a restart with the disk still full, every acknowledged object is there;
- once the filler is removed the same server takes writes again, and after a restart every
  acknowledged object is there, and nothing else.

Needs root (it mounts a tmpfs): skipped with the reason on a developer's machine, a failure when
CI=true. The tmpfs is unmounted and every file removed whatever happens."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import free_port, start_statera

TMPFS_SIZE = "8m"
LEFT_FREE = 192 * 1024  # bytes the filler leaves for the burst
BURST_THREADS = 4  # threads 0-2 create Octavia flavor profiles, thread 3 Neutron networks
BURST_MAX_OPS = 2000  # per thread; the disk is full long before
BURST_MAX_SECONDS = 30.0  # per thread
REFUSALS_TO_STOP = 10  # a thread stops after this many 503s in a row
AFTER_SPACE_RETURNS = 20  # creates that must all succeed once the filler is gone


def require_root() -> None:
    if os.geteuid() == 0:
        return
    reason = "mounting a tmpfs as the data directory needs root"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


class Tmpfs:
    """A tmpfs of TMPFS_SIZE mounted on `path`; unmounted by `close`."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if r.returncode != 0:
            reason = f"mount -t tmpfs failed: {r.stderr.strip()}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)


def fill(directory: Path, leave: int) -> Path:
    """A file that takes every byte of the file system but `leave`."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12):
            block = b"\0" * chunk
            for _ in range((16 << 20) // chunk):  # bounded: more than the tmpfs holds
                try:
                    f.write(block)
                except OSError:
                    break
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


def profile_body(name: str) -> dict:
    return {"flavorprofile": {"name": name, "provider_name": "native", "flavor_data": "{}"}}


def network_body(name: str) -> dict:
    return {"network": {"name": name, "description": "d" * 255}}


def create(server, thread: int, name: str):
    if thread == BURST_THREADS - 1:
        return server.api("POST", "/v2.0/networks", network_body(name), timeout=10)
    return server.api("POST", "/v2/lbaas/flavorprofiles", profile_body(name), timeout=10)


def check_refusal(thread: int, r) -> None:
    """A refused write: 503 in the route's shape, saying the disk is full."""
    assert r.status == 503, f"thread {thread}: expected 201 or 503, got {r.status} {r.body[:300]!r}"
    doc = r.json()
    if thread == BURST_THREADS - 1:
        err = doc["NeutronError"]
        assert err["type"] == "HTTPServiceUnavailable", doc
        assert "disk" in err["message"], doc
    else:
        assert set(doc) == {"faultcode", "faultstring", "debuginfo"}, doc
        assert doc["faultcode"] == "Server" and doc["debuginfo"] is None, doc
        assert "disk" in doc["faultstring"] and "Nothing was changed" in doc["faultstring"], doc


def present(server, prefix: str) -> set[str]:
    """Names starting with `prefix` the API lists, flavor profiles and networks."""
    names: set[str] = set()
    for path, key in (("/v2/lbaas/flavorprofiles?limit=1000", "flavorprofiles"), ("/v2.0/networks?limit=1000", "networks")):
        r = server.api("GET", path)
        assert r.status == 200, r.body[:300]
        items = r.json()[key]
        assert len(items) < 1000, "more objects than one page: raise the limit"
        names |= {i["name"] for i in items if i["name"].startswith(prefix)}
    return names


def burst(server, prefix: str) -> tuple[set[str], int]:
    """BURST_THREADS threads create until the disk refuses; (acknowledged names, refusals)."""
    acked: set[str] = set()
    refusals = [0] * BURST_THREADS
    errors: list[str] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        in_a_row = 0
        deadline = time.monotonic() + BURST_MAX_SECONDS
        try:
            for i in range(BURST_MAX_OPS):
                if in_a_row >= REFUSALS_TO_STOP or time.monotonic() > deadline:
                    return
                name = f"{prefix}t{thread}-{i}-" + "n" * 200
                r = create(server, thread, name)
                if r.status == 201:
                    in_a_row = 0
                    with lock:
                        acked.add(name)
                    continue
                check_refusal(thread, r)
                in_a_row += 1
                refusals[thread] += 1
        except Exception as e:  # reported by the main thread
            errors.append(f"thread {thread}: {e!r}")

    threads = [threading.Thread(target=run, args=(t,)) for t in range(BURST_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BURST_MAX_SECONDS + 30)
    assert not errors, "\n".join(errors)
    return acked, sum(refusals)


def test_a_full_disk_loses_no_acknowledged_write_and_writes_resume_when_space_returns():
    require_root()
    root = Path(tempfile.mkdtemp(prefix="statera-e2e-full-"))
    tmpfs = None
    try:
        tmpfs = Tmpfs(root / "data")
        port = free_port()
        prefix = f"full-{uuid.uuid4().hex[:8]}-"
        with start_statera(data_dir=root, port=port) as server:
            # Warm up: the store works.
            warm = {f"{prefix}warm-{i}" for i in range(5)}
            for name in warm:
                assert create(server, 0, name).status == 201
            filler = fill(tmpfs.path, LEFT_FREE)
            acked, refusals = burst(server, prefix)
            acked |= warm
            print(f"burst: {len(acked)} acknowledged, {refusals} refused")
            assert refusals >= REFUSALS_TO_STOP, f"the burst never met the full disk ({len(acked)} acknowledged)"
            assert present(server, prefix) == acked, "the API lists exactly the acknowledged writes"
            # A crash with the disk still full.
            server.process.kill()
            server.process.wait(timeout=10)

        with start_statera(data_dir=root, port=port) as server:
            assert present(server, prefix) == acked, "after a SIGKILL every acknowledged write is there"
            # Space returns: the same server takes writes again.
            filler.unlink()
            for i in range(AFTER_SPACE_RETURNS):
                name = f"{prefix}after-{i}"
                r = create(server, i % BURST_THREADS, name)
                assert r.status == 201, f"write {i} after space returned: {r.status} {r.body[:300]!r}"
                acked.add(name)
            assert present(server, prefix) == acked

        with start_statera(data_dir=root, port=port) as server:
            assert present(server, prefix) == acked, "after a restart every acknowledged write is there"
    finally:
        if tmpfs is not None:
            tmpfs.close()
        shutil.rmtree(root, ignore_errors=True)
