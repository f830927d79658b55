"""What bench/agents.py and bench/agents_netns.py share: a free port, the API in noauth, a
bounded wait, stopping the processes started, and the markdown report."""

import http.client
import json
import signal
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, method: str, path: str, body=None, timeout: float = 30):
    """One request to the API on 127.0.0.1:`port` (noauth): (status, JSON body or None)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"X-Auth-Token": "bench", "Content-Type": "application/json"}
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, (json.loads(raw) if raw else None)


def wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each still running (the last started first), SIGKILL after 60 s."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(head: str, rows: list[tuple[str, str]], output: str | None) -> None:
    """Prints the results as a markdown table under `head` (and writes it to `output`)."""
    text = f"{head}\n\n| measure | result |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(text)
    if output:
        with open(output, "w") as f:
            f.write(text)
