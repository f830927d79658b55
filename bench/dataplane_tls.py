#!/usr/bin/env python3
"""TLS benchmark of the data plane (issue 16): TERMINATED_HTTPS served by the native engine
(rustls with ring) against HAProxy (OpenSSL), the same load balancer objects, in the same run.

Python 3 standard library plus the `openssl`, `wrk`, `h2load`, `nginx` and `haproxy` executables. Run it
through `bench/dataplane-tls`, which builds the binary first, or directly:
`python3 bench/dataplane_tls.py --binary target/release/statera`.

What it does, every step bounded in time, all traffic on 127.0.0.0/8:

* makes two self-signed server certificates with openssl (ECDSA P-256 and RSA-2048, CN and SAN
  bench.test), each as a PKCS#12 bundle without a password;
* starts nginx (the backends of bench/dataplane.py: /small is 100 bytes, /1m 1 MiB) and one
  `statera serve` (noauth); stores both bundles through the key manager's API
  (`POST /key-manager/v1/secrets`);
* creates, fully populated, one load balancer per provider with two TERMINATED_HTTPS listeners,
  8443 (the ECDSA certificate) and 8444 (the RSA one), Octavia's default TLS settings, and an
  HTTP pool of the two nginx ports; checks both answer over TLS;
* rows, each run against native then haproxy, interleaved, for several rounds; medians over
  the rounds, ratio = native / haproxy:
  - `small`: 100-byte responses over TLS keep-alive (wrk, req/s);
  - `1m`: 1 MiB responses over TLS keep-alive (wrk, MiB/s);
  - `resumed`: a new TLS connection per request (wrk with `Connection: close`; wrk keeps its
    session across its reconnects, OpenSSL's SSL_clear, so these handshakes resume; req/s);
  - `full-ecdsa` and `full-rsa`: full handshakes, one HTTP request each (`openssl s_time -new`,
    P processes at once; handshakes/s), on the ECDSA and the RSA listener;
  - `h2`: 100-byte responses over HTTP/2 (h2load from nghttp2-client: C/16 connections, at
    least one, each with up to C streams in flight in all; req/s);
  and for every run the proxy's CPU time (utime + stime from /proc, all threads; for HAProxy
  its load balancer's processes) per request or handshake;
* layouts (`--layouts`): `unpinned-C` (no CPU pinning, wrk with C connections, s_time with
  P = 4 processes when C >= 16 else 1) and `pinned-C` (the proxy's processes on CPU 0, nginx and
  the load generators on CPU 1).

Every process started is stopped by its pid (HAProxy by statera); temporary dirs are removed.
The results are printed as a markdown table (and written to --output if given).
"""

import argparse
import base64
import datetime
import os
import re
import shutil
import signal
import ssl
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataplane as dp  # noqa: E402  (the backends, the server, /proc readings)

ECDSA_PORT = 8443
RSA_PORT = 8444
TARGETS = ("native", "haproxy")

# key, label, listener port, kind ("wrk" or "stime"), path, extra wrk args, metric
ROWS = [
    ("small", "small responses (100 B) over TLS keep-alive", ECDSA_PORT, "wrk", "/small", [],
     "rps"),
    ("1m", "1 MiB responses over TLS keep-alive", ECDSA_PORT, "wrk", "/1m", [], "mibps"),
    ("resumed", "new TLS connection per request, resumed (wrk, `Connection: close`)", ECDSA_PORT,
     "wrk", "/small", ["-H", "Connection: close"], "rps"),
    ("full-ecdsa", "full handshakes, ECDSA P-256 (openssl s_time -new)", ECDSA_PORT, "stime",
     "/small", [], "rps"),
    ("full-rsa", "full handshakes, RSA-2048 (openssl s_time -new)", RSA_PORT, "stime", "/small",
     [], "rps"),
    ("h2", "small responses (100 B) over HTTP/2 (h2load, C/16 connections × 16 streams)",
     ECDSA_PORT, "h2load", "/small", [], "rps"),
]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_certs(work):
    """ec.p12 and rsa.p12 (no password), for bench.test."""
    for name, key in (("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                      ("rsa", ["-newkey", "rsa:2048"])):
        subprocess.run(["openssl", "req", "-x509", *key, "-nodes", "-keyout", f"{name}.key",
                        "-out", f"{name}.crt", "-subj", "/CN=bench.test", "-days", "30",
                        "-addext", "subjectAltName=DNS:bench.test"],
                       cwd=work, check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "pkcs12", "-export", "-inkey", f"{name}.key", "-in",
                        f"{name}.crt", "-out", f"{name}.p12", "-passout", "pass:"],
                       cwd=work, check=True, capture_output=True, timeout=60)


def store_secret(srv, name, path):
    with open(path, "rb") as f:
        payload = base64.b64encode(f.read()).decode()
    status, body = srv.api.request("POST", "/key-manager/v1/secrets", {
        "name": name, "payload": payload, "payload_content_type": "application/octet-stream",
        "payload_content_encoding": "base64"})
    dp.expect(status, body, (201,), f"store {name}")
    return body["secret_ref"]


def create_lb(srv, provider, ports, ec_ref, rsa_ref):
    members = [{"address": "127.0.0.1", "protocol_port": p} for p in ports]
    name = f"tls-{provider}"
    status, body = srv.api.request("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {
        "name": name, "vip_subnet_id": srv.subnet_id, "provider": provider,
        "listeners": [
            {"name": f"{name}-ec", "protocol": "TERMINATED_HTTPS", "protocol_port": ECDSA_PORT,
             "default_tls_container_ref": ec_ref, "alpn_protocols": ["h2", "http/1.1"],
             "default_pool": {"name": f"{name}-pool"}},
            {"name": f"{name}-rsa", "protocol": "TERMINATED_HTTPS", "protocol_port": RSA_PORT,
             "default_tls_container_ref": rsa_ref, "default_pool": {"name": f"{name}-pool"}},
        ],
        "pools": [{"name": f"{name}-pool", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": members}],
    }})
    dp.expect(status, body, (201,), f"create ({provider})")
    lb = body["loadbalancer"]
    end = time.monotonic() + 60
    while True:
        status, got = srv.api.request("GET", f"/v2/lbaas/loadbalancers/{lb['id']}")
        ps = got["loadbalancer"]["provisioning_status"]
        if ps == "ACTIVE":
            break
        if ps == "ERROR" or time.monotonic() > end:
            raise RuntimeError(f"{provider} load balancer: {ps}: {srv.tail_log()}")
        time.sleep(0.05)
    vip = lb["vip_address"]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for port in (ECDSA_PORT, RSA_PORT):
        end = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((vip, port), timeout=2) as raw, \
                        ctx.wrap_socket(raw, server_hostname="bench.test") as s:
                    s.sendall(b"GET /1m HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                if data.startswith(b"HTTP/1.1 200") and \
                        len(data.split(b"\r\n\r\n", 1)[1]) == 1024 * 1024:
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"{provider}: {vip}:{port} does not serve /1m over TLS")
            time.sleep(0.1)
    return lb["id"], vip


def pin(pids, cpu):
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True,
                       capture_output=True, timeout=10)


# The CPUs this script may use (and its children inherited): what unpinning restores.
ALLOWED = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


def unpin(pids):
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", ALLOWED, str(pid)],
                       check=False, capture_output=True, timeout=10)


def wait_bounded(proc, seconds, procs):
    """Waits for `proc` at most `seconds`, then stops it; either way it leaves `procs`."""
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pass
    finally:
        procs.remove(proc)
        if proc.poll() is None:
            dp.stop_pid(proc, 5)


def run_row(row, vip, pids, duration, conns, pinned, workdir, procs):
    key, _, port, kind, path, extra, _ = row
    prefix = ["taskset", "-c", "1"] if pinned else []
    c0 = sum(dp.cpu_ticks(p) for p in pids)
    if kind == "wrk":
        cmd = prefix + ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--timeout", "10s",
                        *extra, f"https://{vip}:{port}{path}"]
        out_path = os.path.join(workdir, "wrk.out")
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            procs.append(proc)
            wait_bounded(proc, duration + 30, procs)
        with open(out_path) as f:
            text = f.read()
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed: {' '.join(cmd)}\n{text}")
        r = dp.parse_wrk(text)
        count = r["requests"]
    elif kind == "h2load":
        clients = max(1, conns // 16)
        streams = max(1, conns // clients)
        cmd = prefix + ["h2load", "-t", str(min(2, clients)), "-c", str(clients), "-m",
                        str(streams), "-D", str(duration), f"https://{vip}:{port}{path}"]
        out_path = os.path.join(workdir, "h2load.out")
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            procs.append(proc)
            wait_bounded(proc, duration + 30, procs)
        with open(out_path) as f:
            text = f.read()
        m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
        done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored", text)
        if proc.returncode != 0 or not m or not done:
            raise RuntimeError(f"h2load failed: {' '.join(cmd)}\n{text}")
        count = int(done.group(2))
        r = {"rps": float(m.group(1)), "mibps": 0.0,
             "errors": int(done.group(3)) + int(done.group(4))}
        if "h2" not in text.split("Application protocol:", 1)[-1][:20]:
            raise RuntimeError(f"h2load did not negotiate h2:\n{text}")
    else:
        parallel = 4 if conns >= 16 else 1
        running = []
        for i in range(parallel):
            out = open(os.path.join(workdir, f"stime{i}.out"), "wb")
            proc = subprocess.Popen(
                prefix + ["openssl", "s_time", "-connect", f"{vip}:{port}", "-new", "-time",
                          str(duration), "-www", path],
                stdout=out, stderr=subprocess.STDOUT)
            procs.append(proc)
            running.append((proc, out))
        count = 0
        for i, (proc, out) in enumerate(running):
            try:
                wait_bounded(proc, duration + 30, procs)
            finally:
                out.close()
            with open(os.path.join(workdir, f"stime{i}.out")) as f:
                text = f.read()
            m = re.search(r"(\d+) connections in ([\d.]+) real seconds", text)
            if not m:
                raise RuntimeError(f"cannot read s_time output:\n{text}")
            count += int(m.group(1))
        r = {"rps": count / duration, "mibps": 0.0, "errors": 0}
    c1 = sum(dp.cpu_ticks(p) for p in pids)
    cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK")
    r["cpu_us_per"] = cpu / count * 1e6 if count else None
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--layouts", default="unpinned-64,unpinned-4,pinned-64")
    p.add_argument("--rows", default=",".join(r[0] for r in ROWS))
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--output")
    args = p.parse_args()
    for tool in ("openssl", "wrk", "h2load", "nginx", "haproxy", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    rows = [r for r in ROWS if r[0] in args.rows.split(",")]
    layouts = []
    for spec in args.layouts.split(","):
        kind, conns = spec.rsplit("-", 1)
        if kind not in ("unpinned", "pinned"):
            sys.exit(f"unknown layout {spec}")
        layouts.append((kind, int(conns)))
    dp.raise_nofile(dp.WANT_NOFILE)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    m = dp.machine()
    info = {"machine": f"{m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "revision": dp.revision(), "load_start": dp.loadavg(),
            "openssl": dp.first_line(["openssl", "version"]),
            "haproxy": dp.first_line(["haproxy", "-v"])}
    work = tempfile.mkdtemp(prefix="stls-", dir=args.tmpdir)
    procs = []
    nginx = srv = None
    results = {}
    pinned_pids = []
    try:
        shutil.copy2(args.binary, os.path.join(work, "statera"))
        make_certs(work)
        log("starting nginx and statera serve")
        nginx = dp.Nginx(work)
        srv = dp.Server(os.path.join(work, "statera"), work)
        ec_ref = store_secret(srv, "bench-ec", os.path.join(work, "ec.p12"))
        rsa_ref = store_secret(srv, "bench-rsa", os.path.join(work, "rsa.p12"))
        lbs = {t: create_lb(srv, t, nginx.ports, ec_ref, rsa_ref) for t in TARGETS}
        pids = {"native": lambda: [srv.proc.pid],
                "haproxy": lambda: srv.haproxy_pids(lbs["haproxy"][0])}
        if not pids["haproxy"]():
            raise RuntimeError("no HAProxy process for the haproxy load balancer")
        for layout in layouts:
            kind, conns = layout
            pinned = kind == "pinned"
            proxies = pids["native"]() + pids["haproxy"]()
            if pinned:
                pinned_pids = proxies + [nginx.proc.pid]
                pin(proxies, 0)
                pin([nginx.proc.pid], 1)
            log(f"layout {kind}, {conns} connections: warm-up")
            for row in rows:
                for t in TARGETS:
                    run_row(row, lbs[t][1], pids[t](), 1, conns, pinned, work, procs)
            for rnd in range(args.rounds):
                log(f"layout {kind}-{conns}, round {rnd + 1}/{args.rounds}")
                for row in rows:
                    for t in TARGETS:
                        r = run_row(row, lbs[t][1], pids[t](), args.duration, conns, pinned,
                                    work, procs)
                        results.setdefault((layout, row[0], t), []).append(r)
                        m = row[6]
                        log(f"  {row[0]:10s} {t:7s} {r[m]:10.1f} "
                            f"{'req/s' if m == 'rps' else 'MiB/s'}"
                            f"  cpu {r['cpu_us_per'] or 0:.0f} us/op"
                            + (f"  errors {r['errors']}" if r.get("errors") else ""))
            if pinned:
                unpin(pinned_pids)
                pinned_pids = []
        speed = dp.first_line(["sh", "-c", "openssl speed -seconds 2 ecdsap256 rsa2048 2>/dev/null"
                               " | grep -E '^ *(rsa 2048|256 bits ecdsa)' | tr -s ' ' | paste -sd';'"])
        info["openssl_speed"] = speed
    finally:
        unpin(pinned_pids)
        for proc in list(procs):
            dp.stop_pid(proc, 5)
        if srv is not None:
            srv.stop()
        if nginx is not None:
            nginx.stop()
        shutil.rmtree(work, ignore_errors=True)
    info["load_end"] = dp.loadavg()

    lines = [f"Run {info['date']}, revision {info['revision']}, {info['machine']}; "
             f"{info['haproxy']}; {info['openssl']}; load {info['load_start']} → "
             f"{info['load_end']}; {args.rounds} rounds of {args.duration} s per row and target, "
             "interleaved; medians.", "",
             f"`openssl speed` on this machine (sign/s, verify/s): {info.get('openssl_speed')}", "",
             "| layout | row | native | HAProxy | native / HAProxy | CPU µs per op, native | "
             "CPU µs per op, HAProxy | errors (n / h) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for layout in layouts:
        for row in rows:
            m = row[6]
            got = {t: results.get((layout, row[0], t), []) for t in TARGETS}
            if not all(got.values()):
                continue
            med = {t: statistics.median(x[m] for x in got[t]) for t in TARGETS}
            cpu = {t: statistics.median(x["cpu_us_per"] for x in got[t] if x["cpu_us_per"])
                   for t in TARGETS}
            errs = {t: sum(x.get("errors", 0) for x in got[t]) for t in TARGETS}
            unit = "req/s" if m == "rps" else "MiB/s"
            if row[3] == "stime":
                unit = "handshakes/s"
            ratio = med["native"] / med["haproxy"] if med["haproxy"] else float("nan")
            lines.append(
                f"| {layout[0]}, {layout[1]} conns | {row[1]} | {med['native']:.0f} {unit} | "
                f"{med['haproxy']:.0f} {unit} | **{ratio:.2f}×** | {cpu['native']:.0f} | "
                f"{cpu['haproxy']:.0f} | {errs['native']} / {errs['haproxy']} |")
    text = "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
