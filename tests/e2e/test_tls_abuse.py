"""Bad input against the native data plane's TERMINATED_HTTPS: the process stays up and other
clients are served.

Two load balancers on the native provider, A (attacked) and B (another tenant's, say), each with
a TERMINATED_HTTPS listener whose certificate is made here by openssl and stored through the key
manager's API. Against A, in turn: a malformed ClientHello and plain HTTP on the TLS port (both
closed), 1,500 connections that send the first bytes of a ClientHello and stop (they hold no
handshake place: A itself still serves), 10,000 of them (A is held at its own connection
ceiling, B is served, the statera process's memory growth is bounded), then connections that
send a whole ClientHello and stop, until A closes one: exactly 1,024 are answered (they hold A's
handshake places, a quarter of the process's), the rest are refused, a new client of A is refused,
B is served throughout, and A serves again once those handshakes time out after 10 s, the stalled
clients still connected. curl through both VIPs is the other client at every step; the statera
process must still be running at the end.
"""

from __future__ import annotations

import base64
import os
import resource
import selectors
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import start_statera
from test_behaviour_support import http_members
from test_key_manager import openssl

PARTIAL = 10_000
PARTIAL_UNDER_CEILING = 1_500
STALLED_PLACES = 4096 // 4  # one load balancer's quarter of the process's handshake places


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def client_hello() -> bytes:
    """The first flight of a real TLS client (Python's OpenSSL) for www.example.com."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="www.example.com")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def curl_ok(work: Path, vip: str, port: int) -> bool:
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(work / "www.crt"), "--resolve",
         f"www.example.com:{port}:{vip}", f"https://www.example.com:{port}/"],
        capture_output=True, text=True, timeout=20)
    return proc.returncode == 0


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the peer closes the connection (alert bytes before the close allowed)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def verdicts(socks: list[socket.socket], seconds: float) -> dict[str, int]:
    """For each socket (the client has sent a whole ClientHello): did the server answer (bytes
    of its first flight, left unread) or close it, within `seconds`?"""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    out = {"answered": 0, "closed": 0}
    deadline = time.monotonic() + seconds
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            sel.unregister(s)
            try:
                data = s.recv(1, socket.MSG_PEEK)
            except OSError:
                data = b""
            out["answered" if data else "closed"] += 1
    out["undecided"] = len(sel.get_map())
    sel.close()
    return out


def test_handshake_abuse_leaves_the_process_up_and_other_clients_served():
    for tool in ("openssl", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/test installs it)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = PARTIAL + 2 * STALLED_PLACES + 300
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {need} sockets this test opens")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    work = Path(tempfile.mkdtemp(prefix="statera-tls-abuse-"))
    held: list[socket.socket] = []
    try:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "www.key", "-out", "www.crt", "-subj", "/CN=www.example.com", "-days", "30",
                "-addext", "subjectAltName=DNS:www.example.com", cwd=work)
        openssl("pkcs12", "-export", "-inkey", "www.key", "-in", "www.crt", "-passout", "pass:",
                "-out", "www.p12", cwd=work)
        with start_statera() as server, http_members("a") as (member,):
            r = server.api("POST", "/key-manager/v1/secrets", {
                "name": "www", "payload": base64.b64encode((work / "www.p12").read_bytes()).decode(),
                "payload_content_type": "application/octet-stream",
                "payload_content_encoding": "base64"})
            assert r.status == 201, r.body
            ref = r.json()["secret_ref"]
            subnet = server.api("GET", "/v2.0/subnets?name=host-subnet").json()["subnets"][0]["id"]
            vips = {}
            for name in ("a", "b"):
                r = server.api("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {
                    "name": name, "vip_subnet_id": subnet, "provider": "native",
                    "listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 8443,
                                   "default_tls_container_ref": ref,
                                   "default_pool": {"name": f"{name}-pool"}}],
                    "pools": [{"name": f"{name}-pool", "protocol": "HTTP",
                               "lb_algorithm": "ROUND_ROBIN",
                               "members": [{"address": "127.0.0.1", "protocol_port": member.port}]}],
                }})
                assert r.status == 201, r.body
                lb = r.json()["loadbalancer"]
                deadline = time.monotonic() + 60
                while server.api("GET", f"/v2/lbaas/loadbalancers/{lb['id']}").json()[
                        "loadbalancer"]["provisioning_status"] != "ACTIVE":
                    assert time.monotonic() < deadline, "load balancer not ACTIVE"
                    time.sleep(0.2)
                vips[name] = lb["vip_address"]
            a, b, port = vips["a"], vips["b"], 8443
            assert curl_ok(work, a, port) and curl_ok(work, b, port)
            pid = server.process.pid

            # A malformed ClientHello (a handshake record of garbage), and plain HTTP: closed.
            for junk in (b"\x16\x03\x01\x00\x30" + os.urandom(48), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
                with socket.create_connection((a, port), timeout=5) as s:
                    s.sendall(junk)
                    assert closed_within(s, 12), junk[:8]
            assert curl_ok(work, a, port)

            hello = client_hello()

            def partial(n: int) -> None:
                """`n` connections to A that send the first bytes of a ClientHello and stop."""
                for _ in range(n):
                    s = socket.socket()
                    s.settimeout(5)
                    try:
                        s.connect((a, port))
                        s.send(hello[:20])
                    except OSError:
                        s.close()
                        continue
                    held.append(s)

            # More partial handshakes than A's handshake places (a quarter of 4,096), fewer than
            # its connection ceiling: they hold no place, A itself still serves.
            partial(PARTIAL_UNDER_CEILING)
            assert curl_ok(work, a, port), "partial ClientHellos took A's handshake places"
            for s in held:
                s.close()
            held.clear()

            # 10,000 handshakes begun and left: A is held at its own connection ceiling (the rest
            # are accepted and reset), B is served, memory stays bounded.
            before = rss_kib(pid)
            partial(PARTIAL)
            grown = rss_kib(pid) - before
            assert curl_ok(work, b, port), "B not served while A is flooded"
            print(f"{len(held)} connections with a partial ClientHello (A keeps those under its "
                  f"ceiling, resets the rest); statera's RSS +{grown / 1024:.1f} MiB")
            assert grown < 400 * 1024, f"RSS grew by {grown} KiB"
            for s in held:
                s.close()
            held.clear()
            deadline = time.monotonic() + 20
            while not curl_ok(work, a, port):
                assert time.monotonic() < deadline, "A does not serve again after the flood"
                time.sleep(0.5)

            # Whole ClientHellos, then silence: they take A's handshake places, so A refuses new
            # handshakes; B is served throughout; the places come back when those handshakes
            # time out (10 s), with the stalled clients still connected. Each stalled connection
            # is sent in batches and waited on until A has either answered it (its first flight:
            # it holds a place) or closed it (no place was free), so the step does not depend on
            # how fast this machine is.
            answered = refused = 0
            t0 = time.monotonic()
            while refused == 0:
                assert answered < 2 * STALLED_PLACES, f"{answered} stalled handshakes answered, none refused"
                batch = []
                for _ in range(100):
                    s = socket.socket()
                    held.append(s)
                    s.settimeout(5)
                    s.connect((a, port))
                    s.sendall(hello)
                    batch.append(s)
                got = verdicts(batch, 5)
                answered, refused = answered + got["answered"], refused + got["closed"]
                assert got["undecided"] == 0, f"A neither answered nor closed: {got}"
            elapsed = time.monotonic() - t0
            print(f"stalled handshakes: {answered} answered (holding places), {refused} refused, "
                  f"in {elapsed:.1f} s")
            assert answered == STALLED_PLACES, f"{answered} handshake places, not {STALLED_PLACES}"
            assert elapsed < 8, "too slow to fill A's places before the first ones time out"
            assert not curl_ok(work, a, port), "A served a new handshake with its places full"
            assert curl_ok(work, b, port), "B not served while A's handshake places are held"
            while not curl_ok(work, a, port):
                assert time.monotonic() < t0 + 25, "A does not serve again after the stall"
                time.sleep(0.5)
            for s in held:
                s.close()
            held.clear()
            assert server.process.poll() is None, "statera exited"
    finally:
        for s in held:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        shutil.rmtree(work, ignore_errors=True)
