"""Helpers of the tests that drive the netns network driver (root): commands, names, namespaces."""

from __future__ import annotations

import os
import subprocess

import pytest


def require_root() -> None:
    """The netns driver needs root: skipped with the reason on a developer's machine, a failure
    under CI=true (CI runs as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the netns network driver needs root, and CI runs as root")
        pytest.skip("the netns network driver needs root")


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    """Runs `cmd`; with `check`, a non-zero exit fails the test with its output."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def short(uuid: str) -> str:
    """The first 11 hex digits of an id, as the driver names bridges, taps and trunks."""
    return uuid.replace("-", "")[:11]


def namespaces(prefix: str) -> set[str]:
    """The named network namespaces starting with `prefix`."""
    if not os.path.isdir("/run/netns"):
        return set()
    return {n for n in os.listdir("/run/netns") if n.startswith(prefix)}
