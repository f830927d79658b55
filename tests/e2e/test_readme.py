"""The README's Quick start, run as written by an unprivileged user.

The first shell block under "## Quick start" is taken from README.md and run with bash, with
only what must differ on a shared test machine substituted: the API's address, the two web
servers' ports and their directories, and the path of the clouds.yaml the server wrote (the
default auth mode, builtin, bootstraps it). Statera runs without privileges (as `nobody` when the
tests run as root), so a Quick start that needs root (a listener on port 80, say) fails here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

from conftest import REPO_ROOT, free_port, openstack_cli_path, start_statera

NOBODY = 65534


def quick_start_block() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Quick start", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README.md: no ```sh block under '## Quick start'"
    return match.group(1)


def test_quick_start_runs_as_written_without_privileges():
    script = quick_start_block()
    for needle in ("./statera-data/clouds.yaml", " 8081 ", " 8082 ", "/tmp/w1", "/tmp/w2", "--protocol-port"):
        assert needle in script, f"the Quick start changed shape ({needle!r} is gone): update this test"
    work = Path(tempfile.mkdtemp(prefix="statera-readme-"))
    wrapper = None
    if os.geteuid() == 0:
        # Drop every privilege the server could use to bind a port below 1024.
        os.chown(work, NOBODY, NOBODY)
        os.chmod(work, 0o755)
        wrapper = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all"]
    data = work / "server"
    data.mkdir()
    if wrapper:
        os.chown(data, NOBODY, NOBODY)
    web1, web2 = free_port(), free_port()
    try:
        run_quick_start(script, work, data, wrapper, web1, web2)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


def run_quick_start(script: str, work: Path, data: Path, wrapper: list[str] | None, web1: int, web2: int) -> None:
    # The default auth mode (builtin): the server bootstraps itself and writes clouds.yaml.
    with start_statera(data_dir=data, wrapper=wrapper, auth_args=[]) as server:
        clouds = data / "data" / "clouds.yaml"
        assert clouds.is_file(), "statera serve did not write clouds.yaml on a fresh store"
        script = (
            script.replace("./statera-data/clouds.yaml", str(clouds))
            .replace("127.0.0.1:9876", server.endpoint.removeprefix("http://"))
            .replace(" 8081 ", f" {web1} ")
            .replace(" 8082 ", f" {web2} ")
            .replace("/tmp/w1", str(work / "w1"))
            .replace("/tmp/w2", str(work / "w2"))
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["PATH"] = f"{Path(openstack_cli_path()).parent}:{env.get('PATH', '')}"
        # Output goes to files, not pipes: the web servers the block starts in the background
        # inherit them and outlive the block.
        out_path, err_path = work / "stdout", work / "stderr"
        with open(out_path, "w") as out_file, open(err_path, "w") as err_file:
            proc = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                env=env,
                cwd=work,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=180)
            finally:
                # The web servers share the block's process group.
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        out, err = out_path.read_text(), err_path.read_text()
        assert proc.returncode == 0, f"the Quick start failed (exit {proc.returncode})\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        lines = out.splitlines()
        assert "web1" in lines and "web2" in lines, f"both web servers should have answered:\n{out}\n{err}"
