"""A member "host" for the one-arm test, run inside its own network namespace:

    ip netns exec NS python3 onearm_backend.py NAME ADDRESS LOGFILE

Serves HTTP on ADDRESS:80 and HTTP-after-a-PROXY-header on ADDRESS:8081. Every request answers
`NAME\n` (GET /slow?s=N waits N seconds first) and appends one JSON line to LOGFILE: the port,
the TCP peer, the X-Forwarded-For header and the PROXY header line, if any. Standard library only
(it runs with the system python3, outside the tests' virtualenv)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.parse

NAME, ADDRESS, LOGFILE = sys.argv[1], sys.argv[2], sys.argv[3]
LOCK = threading.Lock()
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def log(entry: dict) -> None:
    with LOCK, open(LOGFILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


def read_until(conn: socket.socket, buf: bytes, marker: bytes) -> tuple[bytes, bytes]:
    while marker not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = buf.partition(marker)
    return head, rest


def proxy_header(conn: socket.socket, buf: bytes) -> tuple[str, bytes]:
    while len(buf) < 16:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    if buf.startswith(b"PROXY "):
        line, rest = read_until(conn, buf, b"\r\n")
        return line.decode(), rest
    if buf.startswith(PROXY_V2_SIGNATURE):
        length = int.from_bytes(buf[14:16], "big")
        while len(buf) < 16 + length:
            buf += conn.recv(4096)
        body = buf[16 : 16 + length]
        family = buf[13] >> 4
        if family == 1:  # IPv4: src(4) dst(4) sport(2) dport(2)
            src = socket.inet_ntoa(body[0:4])
            return f"PROXYv2 {src} {int.from_bytes(body[8:10], 'big')}", buf[16 + length :]
        return "PROXYv2", buf[16 + length :]
    return "", buf


def serve(conn: socket.socket, peer, port: int, with_proxy: bool) -> None:
    try:
        buf = b""
        proxy = ""
        if with_proxy:
            proxy, buf = proxy_header(conn, buf)
        while True:
            head, buf = read_until(conn, buf, b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            while len(buf) < length:
                buf += conn.recv(4096)
            buf = buf[length:]
            url = urllib.parse.urlsplit(target)
            log(
                {
                    "name": NAME,
                    "port": port,
                    "peer": peer[0],
                    "path": url.path,
                    "xff": headers.get("x-forwarded-for"),
                    "proxy": proxy,
                }
            )
            if url.path == "/slow":
                seconds = float(urllib.parse.parse_qs(url.query).get("s", ["2"])[0])
                time.sleep(seconds)
            body = (NAME + "\n").encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            if headers.get("connection", "").lower() == "close":
                return
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


def listen(port: int, with_proxy: bool) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ADDRESS, port))
    srv.listen(128)
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=serve, args=(conn, peer, port, with_proxy), daemon=True).start()


threading.Thread(target=listen, args=(8081, True), daemon=True).start()
listen(80, False)
