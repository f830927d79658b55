"""gRPC through a TERMINATED_HTTPS listener, per provider.

Certificates made here with openssl (the PKI of test_tls_termination.py); a gRPC member (grpcio,
generic handlers on raw bytes, no generated code) serving TLS with the member.internal
certificate; a load balancer whose TERMINATED_HTTPS listener offers h2 and whose pool speaks TLS
to the member with ALPN h2 only, the member verified against the CA. Through the VIP, with a
grpcio client verifying the listener's certificate: a unary call with the member's trailing
metadata delivered, a call the member aborts (grpc-status NOT_FOUND and its message, in a
trailers-only response), a server stream and a client stream, and 50 calls at once on one
channel (multiplexed on one connection).

The native data plane speaks HTTP/2 to clients but not yet to members, so on native the same
request is refused up front (501, HTTP/2 to members) and nothing is created; that case turns
into a failure to be noticed once native h2 to members lands.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from concurrent import futures
from pathlib import Path

import pytest

from conftest import start_statera
from test_tls_termination import make_pki

try:
    import grpc
except ImportError:  # skipped in the test (a failure under CI=true), not at collection
    grpc = None

SERVICE = "/statera.test.Echo/"


class GrpcMember:
    """A gRPC server on 127.0.0.1 over TLS (member.crt from the test CA)."""

    def __init__(self, work: Path):
        def say(request: bytes, context) -> bytes:
            context.set_trailing_metadata((("x-member-trailer", "kept"),))
            return request[::-1]

        def fail(request: bytes, context) -> bytes:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

        def count(request: bytes, context):
            for i in range(int(request)):
                yield str(i).encode()

        def total(requests, context) -> bytes:
            return str(sum(len(r) for r in requests)).encode()

        handler = grpc.method_handlers_generic_handler("statera.test.Echo", {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Total": grpc.stream_unary_rpc_method_handler(total),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((handler,))
        creds = grpc.ssl_server_credentials(
            [((work / "member.key").read_bytes(), (work / "member.crt").read_bytes())])
        self.port = self.server.add_secure_port("127.0.0.1:0", creds)

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(grace=None)


@pytest.mark.parametrize("provider", ["native", "haproxy"])
def test_grpc_through_a_terminated_https_listener(provider):
    if grpc is None:
        pytest.skip("grpcio is not installed (scripts/test installs it)")
    if provider == "haproxy" and shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/test installs it)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/test installs it)")
    work = Path(tempfile.mkdtemp(prefix="statera-grpc-"))
    try:
        make_pki(work)
        with start_statera() as server, GrpcMember(work) as member:
            def store(name: str, payload: bytes, content_type: str) -> str:
                body = {"name": name, "payload_content_type": content_type}
                if content_type == "text/plain":
                    body["payload"] = payload.decode()
                else:
                    body["payload"] = base64.b64encode(payload).decode()
                    body["payload_content_encoding"] = "base64"
                r = server.api("POST", "/key-manager/v1/secrets", body)
                assert r.status == 201, r.body
                return r.json()["secret_ref"]

            www = store("www", (work / "www.p12").read_bytes(), "application/octet-stream")
            ca = store("ca", (work / "ca.crt").read_bytes(), "text/plain")
            subnet = server.api("GET", "/v2.0/subnets?name=host-subnet").json()["subnets"][0]["id"]
            port = 8443
            r = server.api("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {
                "name": "grpc", "vip_subnet_id": subnet, "provider": provider,
                "listeners": [{"name": "h2", "protocol": "TERMINATED_HTTPS", "protocol_port": port,
                               "default_tls_container_ref": www,
                               "alpn_protocols": ["h2", "http/1.1"],
                               "default_pool": {"name": "grpc-members"}}],
                "pools": [{"name": "grpc-members", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                           "tls_enabled": True, "ca_tls_container_ref": ca,
                           "alpn_protocols": ["h2"],
                           "members": [{"address": "127.0.0.1", "protocol_port": member.port}]}],
            }})
            if provider == "native":
                # HTTP/1.1 to members only, for now: refused up front, nothing created.
                assert r.status == 501, r.body
                assert b"HTTP/2 to members" in r.body, r.body
                lbs = server.api("GET", "/v2/lbaas/loadbalancers?name=grpc").json()
                assert lbs["loadbalancers"] == [], lbs
                return
            assert r.status == 201, r.body
            lb = r.json()["loadbalancer"]
            deadline = time.monotonic() + 60
            while (shown := server.api("GET", f"/v2/lbaas/loadbalancers/{lb['id']}").json()[
                    "loadbalancer"])["provisioning_status"] != "ACTIVE":
                assert shown["provisioning_status"] != "ERROR", shown
                assert time.monotonic() < deadline, "load balancer not ACTIVE"
                time.sleep(0.2)

            creds = grpc.ssl_channel_credentials(root_certificates=(work / "ca.crt").read_bytes())
            options = [("grpc.ssl_target_name_override", "www.example.com"),
                       ("grpc.default_authority", "www.example.com")]
            with grpc.secure_channel(f"{lb['vip_address']}:{port}", creds, options=options) as channel:
                grpc.channel_ready_future(channel).result(timeout=15)
                say = channel.unary_unary(SERVICE + "Say")
                reply, call = say.with_call(b"hello", timeout=10)
                assert reply == b"olleh"
                assert ("x-member-trailer", "kept") in call.trailing_metadata()

                # The member's error, carried in trailers, reaches the client as it was.
                with pytest.raises(grpc.RpcError) as failed:
                    channel.unary_unary(SERVICE + "Fail")(b"", timeout=10)
                assert failed.value.code() == grpc.StatusCode.NOT_FOUND
                assert failed.value.details() == "no such thing"

                streamed = list(channel.unary_stream(SERVICE + "Count")(b"5", timeout=10))
                assert streamed == [b"0", b"1", b"2", b"3", b"4"]
                total = channel.stream_unary(SERVICE + "Total")(iter([b"ab", b"cde", b""]), timeout=10)
                assert total == b"5"

                # 50 calls at once on one channel.
                calls = [say.future(f"call-{i}".encode(), timeout=20) for i in range(50)]
                assert [c.result() for c in calls] == [f"call-{i}".encode()[::-1] for i in range(50)]
            r = server.api("DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true")
            assert r.status == 204, r.body
    finally:
        shutil.rmtree(work, ignore_errors=True)
