"""TERMINATED_HTTPS on both providers, the whole certificate flow with the real clients.

Certificates made here with openssl (a CA, a server certificate, an SNI wildcard one, a client
certificate); `openstack secret store` of each PKCS#12 bundle and of the CA; `openstack
loadbalancer listener create --protocol TERMINATED_HTTPS` with a default and an SNI reference,
client authentication, TLS versions, ALPN, HSTS and the X-SSL headers; then curl and openssl
s_client through the VIP: the certificate chosen by SNI, HTTP/2 by ALPN (and HTTP/1.1 without
it), what the member sees, the default
certificate rotated under load (new handshakes get the new one, no request fails), client
authentication OPTIONAL then MANDATORY, a client certificate revoked in the CRL refused, an
SSL_CONN_HAS_CERT L7 rule, a certificate deleted from the key manager takes only its listener out
(ERROR) at the next change. A pool re-encrypting to a TLS member that requires the load balancer's
client certificate (the member verified against the CA). On haproxy also: the keys on disk
readable by their owner only (native keeps them in memory).
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import start_statera
from test_behaviour_support import http_members
from test_key_manager import BUILTIN, openssl, run_cli

CURL_TIMEOUT = 20


def make_pki(work: Path) -> None:
    """ca.crt/ca.key; www (CN and SAN www.example.com), wild (*.sni.example), client, member
    (member.internal) and revoked certificates signed by it; www.p12, wild.p12 and client.p12
    without a password; ca.crl revoking `revoked`."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=Statera Test CA",
            "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work)
    server, client = "extendedKeyUsage=serverAuth\n", "extendedKeyUsage=clientAuth\n"
    for name, cn, ext in [
        ("www", "www.example.com", "subjectAltName=DNS:www.example.com\n" + server),
        ("www2", "www.example.com", "subjectAltName=DNS:www.example.com\n" + server),
        ("wild", "*.sni.example", "subjectAltName=DNS:*.sni.example\n" + server),
        ("client", "tenant-client", client),
        # A member's server certificate, and a client certificate revoked in the CA's CRL.
        ("member", "member.internal", "subjectAltName=DNS:member.internal\n" + server),
        ("revoked", "revoked-client", client),
    ]:
        (work / f"{name}.ext").write_text(ext)
        openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                cwd=work)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "30", "-extfile", f"{name}.ext", cwd=work)
    for name in ("www", "www2", "wild", "client"):
        openssl("pkcs12", "-export", "-inkey", f"{name}.key", "-in", f"{name}.crt", "-certfile", "ca.crt",
                "-passout", "pass:", "-out", f"{name}.p12", cwd=work)
    (work / "index.txt").write_text("")
    (work / "crlnumber").write_text("01\n")
    (work / "ca.cnf").write_text("[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\n"
                                 "default_md=sha256\ndefault_crl_days=30\n")
    openssl("ca", "-config", "ca.cnf", "-revoke", "revoked.crt", "-keyfile", "ca.key", "-cert", "ca.crt", cwd=work)
    openssl("ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "ca.key", "-cert", "ca.crt", "-out", "ca.crl",
            cwd=work)


class TlsMember:
    """An HTTPS member on 127.0.0.1 (certificate member.internal from the test CA) that requires
    a client certificate from the same CA and answers JSON: the client certificate's CN and the
    TLS version it was reached with."""

    def __init__(self, work: Path):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(work / "member.crt", work / "member.key")
        ctx.load_verify_locations(work / "ca.crt")
        ctx.verify_mode = ssl.CERT_REQUIRED

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                peer = self.connection.getpeercert() or {}
                cn = [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
                body = json.dumps({"client_cn": cn, "version": self.connection.version()}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = super().get_request()
                return ctx.wrap_socket(sock, server_side=True), addr

            def handle_error(self, request, client_address):
                pass  # failed handshakes are part of the test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def curl(work: Path, vip: str, port: int, *args: str, host: str = "www.example.com",
         check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["curl", "-sS", "--max-time", "10", "--cacert", str(work / "ca.crt"),
           "--resolve", f"{host}:{port}:{vip}", *args, f"https://{host}:{port}/"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CURL_TIMEOUT)
    if check:
        assert proc.returncode == 0, f"$ {' '.join(cmd)}\nexit {proc.returncode}\n{proc.stderr}"
    return proc


def served_subject(vip: str, port: int, servername: str | None) -> str:
    """The subject of the certificate the listener shows for `servername` (no SNI: None)."""
    args = ["openssl", "s_client", "-connect", f"{vip}:{port}"]
    args += ["-servername", servername] if servername else ["-noservername"]
    proc = subprocess.run(args, input="", capture_output=True, text=True, timeout=CURL_TIMEOUT)
    for line in proc.stdout.splitlines():
        if line.startswith("subject="):
            return line
    raise AssertionError(f"no certificate from {vip}:{port} ({servername}): {proc.stdout}\n{proc.stderr}")


class HttpsLoad:
    """A client thread doing HTTPS GETs through the VIP, a fresh connection (and handshake) per
    request, verified against the test CA, for at most `duration` s: counts answers and errors
    and records the serial number of each certificate it was shown, in order."""

    def __init__(self, work: Path, vip: str, port: int, duration: float = 60.0):
        self.ctx = ssl.create_default_context(cafile=str(work / "ca.crt"))
        self.vip, self.port, self.duration = vip, port, duration
        self.ok, self.errors, self.serials = 0, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + self.duration
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                with socket.create_connection((self.vip, self.port), timeout=10) as raw, \
                        self.ctx.wrap_socket(raw, server_hostname="www.example.com") as tls:
                    serial = tls.getpeercert()["serialNumber"]
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
                    answer = b""
                    while chunk := tls.recv(65536):
                        answer += chunk
                if not answer.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(answer[:80])
                self.ok += 1
                if not self.serials or self.serials[-1] != serial:
                    self.serials.append(serial)
            except Exception as e:  # noqa: BLE001 (every failure counts)
                self.errors.append(repr(e))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


def wait_active(admin, kind: str, ident: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = yaml.safe_load(admin("loadbalancer", *kind.split(), "show", ident, "-f", "yaml"))
        if shown["provisioning_status"] in ("ACTIVE", "ERROR") or time.monotonic() > deadline:
            return shown
        time.sleep(0.3)


@pytest.mark.parametrize("provider", ["native", "haproxy"])
def test_terminated_https_with_the_real_clients(provider):
    if provider == "haproxy" and shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/test installs it)")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (scripts/test installs it)")
    work = Path(tempfile.mkdtemp(prefix="statera-tls-"))
    try:
        make_pki(work)
        with start_statera(auth_args=BUILTIN) as server, http_members("a") as (member,), \
                TlsMember(work) as tls_member:
            clouds = server.data_dir / "data" / "clouds.yaml"

            def admin(*args: str, expect_ok: bool = True) -> str:
                return run_cli(clouds, "statera", *args, expect_ok=expect_ok).stdout.decode()

            def store(name: str, *how: str) -> str:
                return admin("secret", "store", "--name", name, *how, "-f", "value", "-c", "Secret href").strip()

            www = store("www", "--file", str(work / "www.p12"))
            wild = store("wild", "--file", str(work / "wild.p12"))
            ca = store("client-ca", "--payload", (work / "ca.crt").read_text(),
                       "--payload-content-type", "text/plain")
            crl = store("client-crl", "--payload", (work / "ca.crl").read_text(),
                        "--payload-content-type", "text/plain")
            lb_client = store("lb-client", "--file", str(work / "client.p12"))

            lb = yaml.safe_load(admin("loadbalancer", "create", "--name", "tls", "--provider", provider,
                                      "--vip-subnet-id", "host-subnet", "--wait", "-f", "yaml"))
            vip = lb["vip_address"]
            port = 8443
            listener = yaml.safe_load(admin(
                "loadbalancer", "listener", "create", "--name", "https", "--protocol", "TERMINATED_HTTPS",
                "--protocol-port", str(port), "--default-tls-container-ref", www,
                "--sni-container-refs", wild, "--client-ca-tls-container-ref", ca,
                "--client-crl-container-ref", crl,
                "--client-authentication", "OPTIONAL", "--tls-version", "TLSv1.2", "--tls-version", "TLSv1.3",
                "--alpn-protocol", "h2", "--alpn-protocol", "http/1.1",
                "--hsts-max-age", "31536000", "--hsts-include-subdomains",
                "--insert-headers", "X-Forwarded-Proto=true,X-SSL-Client-Verify=true,"
                                    "X-SSL-Client-Has-Cert=true,X-SSL-Client-CN=true",
                lb["id"], "--wait", "-f", "yaml"))
            pool = yaml.safe_load(admin("loadbalancer", "pool", "create", "--name", "p", "--protocol", "HTTP",
                                        "--lb-algorithm", "ROUND_ROBIN", "--listener", listener["id"],
                                        "--wait", "-f", "yaml"))
            admin("loadbalancer", "member", "create", "--address", "127.0.0.1", "--protocol-port",
                  str(member.port), pool["id"], "--wait")
            assert wait_active(admin, "listener", listener["id"])["provisioning_status"] == "ACTIVE"

            # HTTPS through the VIP, verified against the test CA; HSTS on the response.
            got = curl(work, vip, port, "-D", str(work / "head.txt"))
            seen = json.loads(got.stdout)
            head = (work / "head.txt").read_text().lower()
            assert "strict-transport-security: max-age=31536000; includesubdomains" in head, head
            # What the member sees: the scheme, no client certificate.
            h = {k.lower(): v for k, v in seen["headers"].items()}
            assert h["x-forwarded-proto"] == "https", h
            assert h["x-ssl-client-has-cert"] == "0", h

            # The certificate follows SNI (wildcards too); no or unknown SNI gets the default.
            assert "CN = www.example.com" in served_subject(vip, port, "www.example.com")
            assert "CN = *.sni.example" in served_subject(vip, port, "api.sni.example")
            assert "CN = www.example.com" in served_subject(vip, port, "other.example")
            assert "CN = www.example.com" in served_subject(vip, port, None)
            got = curl(work, vip, port, host="api.sni.example")
            assert json.loads(got.stdout)["member"] == "a"

            # HTTP/2 by ALPN; the member still sees what an HTTP/1.1 client's request shows.
            got = curl(work, vip, port, "--http2", "-w", "\n%{http_version}")
            body, version = got.stdout.rsplit("\n", 1)
            assert version == "2", got.stdout
            seen = json.loads(body)
            assert seen["member"] == "a", seen
            h = {k.lower(): v for k, v in seen["headers"].items()}
            assert h.get("x-forwarded-proto") == "https" and h.get("x-ssl-client-has-cert") == "0", h
            # Without h2 offered, HTTP/1.1.
            got = curl(work, vip, port, "--http1.1", "-o", "/dev/null", "-w", "%{http_version}")
            assert got.stdout.strip() == "1.1", got.stdout

            # Rotation under load: the default certificate replaced while a client makes a new
            # connection per request; new handshakes get the new one, no request fails.
            www2 = store("www2", "--file", str(work / "www2.p12"))
            with HttpsLoad(work, vip, port) as load:
                time.sleep(2)
                admin("loadbalancer", "listener", "set", "--default-tls-container-ref", www2,
                      listener["id"], "--wait")
                time.sleep(2)
            assert load.errors == [], f"{load.ok} ok, errors: {load.errors[:5]}"
            assert load.ok > 20 and len(load.serials) == 2, (load.ok, load.serials)
            assert "CN = www.example.com" in served_subject(vip, port, "www.example.com")

            # A client certificate, verified, as the member sees it.
            got = curl(work, vip, port, "--cert", str(work / "client.crt"), "--key", str(work / "client.key"))
            h = {k.lower(): v for k, v in json.loads(got.stdout)["headers"].items()}
            assert h["x-ssl-client-has-cert"] == "1" and h["x-ssl-client-verify"] == "0", h
            assert "tenant-client" in h["x-ssl-client-cn"], h
            # A client cannot forge the headers the member trusts.
            got = curl(work, vip, port, "-H", "X-SSL-Client-Verify: 0", "-H", "X-SSL-Client-CN: admin")
            h = {k.lower(): v for k, v in json.loads(got.stdout)["headers"].items()}
            assert h["x-ssl-client-has-cert"] == "0" and "admin" not in h.get("x-ssl-client-cn", ""), h

            # A revoked client certificate (in the CRL) is refused at the handshake.
            revoked = curl(work, vip, port, "--cert", str(work / "revoked.crt"), "--key",
                           str(work / "revoked.key"), check=False)
            assert revoked.returncode != 0, revoked.stdout

            # An L7 rule on the client certificate: without one, REJECT (403).
            policy = yaml.safe_load(admin("loadbalancer", "l7policy", "create", "--action", "REJECT",
                                          listener["id"], "--wait", "-f", "yaml"))
            admin("loadbalancer", "l7rule", "create", "--type", "SSL_CONN_HAS_CERT", "--compare-type",
                  "EQUAL_TO", "--value", "True", "--invert", policy["id"], "--wait")
            assert curl(work, vip, port, "-o", "/dev/null", "-w", "%{http_code}").stdout == "403"
            got = curl(work, vip, port, "--cert", str(work / "client.crt"), "--key", str(work / "client.key"))
            assert json.loads(got.stdout)["member"] == "a"
            admin("loadbalancer", "l7policy", "delete", policy["id"])

            # Re-encryption: a plain HTTP listener whose pool speaks TLS to a member that
            # requires a client certificate; the member is verified against the CA.
            plain = yaml.safe_load(admin("loadbalancer", "listener", "create", "--protocol", "HTTP",
                                         "--protocol-port", "8080", lb["id"], "--wait", "-f", "yaml"))
            tls_pool_args = [
                "loadbalancer", "pool", "create", "--protocol", "HTTP", "--lb-algorithm", "ROUND_ROBIN",
                "--listener", plain["id"], "--enable-tls", "--tls-container-ref", lb_client,
                "--ca-tls-container-ref", ca, "--tls-version", "TLSv1.2", "--tls-version", "TLSv1.3",
                "--wait", "-f", "yaml"]
            tls_pool = yaml.safe_load(admin(*tls_pool_args))
            admin("loadbalancer", "member", "create", "--address", "127.0.0.1", "--protocol-port",
                  str(tls_member.port), tls_pool["id"], "--wait")

            def plain_listener_serves() -> None:
                got = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://{vip}:8080/"],
                                     capture_output=True, text=True, timeout=CURL_TIMEOUT)
                assert got.returncode == 0, got.stderr
                seen = json.loads(got.stdout)
                assert seen["client_cn"] == ["tenant-client"], seen
                assert seen["version"] in ("TLSv1.2", "TLSv1.3"), seen

            plain_listener_serves()

            # MANDATORY: a client without a certificate is refused at the handshake.
            admin("loadbalancer", "listener", "set", "--client-authentication", "MANDATORY",
                  listener["id"], "--wait")
            refused = curl(work, vip, port, check=False)
            assert refused.returncode != 0, refused.stdout
            curl(work, vip, port, "--cert", str(work / "client.crt"), "--key", str(work / "client.key"))

            # A certificate deleted from the key manager: the next change (of another listener)
            # serves the load balancer without the listener that named it (ERROR), never the
            # whole load balancer down.
            admin("secret", "delete", wild)
            admin("loadbalancer", "listener", "set", "--name", "plain-renamed", plain["id"], "--wait")
            assert yaml.safe_load(admin("loadbalancer", "show", lb["id"], "-f", "yaml"))[
                "provisioning_status"] == "ACTIVE"
            deadline = time.monotonic() + 30
            while yaml.safe_load(admin("loadbalancer", "listener", "show", listener["id"], "-f", "yaml"))[
                    "operating_status"] != "ERROR":
                assert time.monotonic() < deadline, "the listener with a deleted certificate is not ERROR"
                time.sleep(0.5)
            plain_listener_serves()
            # The listener left out no longer answers TLS.
            assert curl(work, vip, port, check=False).returncode != 0

            if provider == "haproxy":
                # Keys on disk: readable by their owner only.
                tls_root = server.data_dir / "data" / "haproxy" / lb["id"] / "tls"
                pems = list(tls_root.rglob("*.pem"))
                assert pems, f"no certificate files under {tls_root}"
                for f in pems:
                    assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
                assert len(list(tls_root.iterdir())) == 1, "an older certificate directory was left"

            admin("loadbalancer", "delete", "--cascade", lb["id"], "--wait")
            if provider == "haproxy":
                assert not tls_root.exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)
