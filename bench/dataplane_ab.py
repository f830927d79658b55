#!/usr/bin/env python3
"""A/B of two Statera builds' native data plane, interleaved in one run.

    python3 bench/dataplane_ab.py OLD_BINARY NEW_BINARY [--row small] [--rounds 8] [--duration 5]

A change worth a few percent cannot be seen by comparing two separate runs of bench/dataplane on
a noisy 2-core machine (HAProxy's own figure moves by 20 % between runs). This runs both builds
side by side instead: one nginx (two ports), two `statera serve` (each its own data dir and host
subnet, 127.191.0.0/24 and 127.192.0.0/24), the same native load balancer on each, then wrk
against A and B alternately (A B, B A, A B, ...), and prints per round and as medians the req/s
(or MiB/s) and the proxy's CPU time per request (or per MiB), with B/A per round.

Reuses bench/dataplane.py's pieces (nginx, the Nagle member, server, load balancer, wrk run);
same needs (nginx, wrk, haproxy for the server's provider list), every process stopped and the
temporary dir removed at the end.
"""

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataplane as dp  # noqa: E402

SUBNETS = {"A": "127.191.0.0/24", "B": "127.192.0.0/24"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="the reference build (a statera binary)")
    p.add_argument("b", help="the build under test")
    p.add_argument("--row", default="small", help="one of " + ", ".join(r[0] for r in dp.ROWS))
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=64, help="wrk connections")
    args = p.parse_args()
    rows = [r for r in dp.ROWS if r[0] == args.row]
    if not rows:
        sys.exit(f"unknown row {args.row}")
    row = rows[0]
    per_request = row[5] == "rps"
    unit = "req/s" if per_request else "MiB/s"

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="sdpab-")
    procs, servers, nginx, nagle = [], [], None, None
    try:
        nginx = dp.Nginx(workdir)
        nagle = dp.NagleMember()
        targets = {}
        for name, binary in (("A", args.a), ("B", args.b)):
            dp.HOST_SUBNET = SUBNETS[name]
            wd = os.path.join(workdir, name)
            os.makedirs(wd)
            shutil.copy2(binary, os.path.join(wd, "statera"))
            srv = dp.Server(os.path.join(wd, "statera"), wd)
            servers.append(srv)
            _, vip = dp.create_lb(srv, "native", nginx.ports, nagle.port)
            pid = srv.proc.pid
            targets[name] = dp.Target(name, vip, dp.HTTP_PORT, dp.TCP_PORT, lambda pid=pid: [pid])
        for t in targets.values():
            dp.run_wrk(args, t, row, 2, workdir, procs)  # warm-up, not recorded

        def rate(r):
            return r["rps"] if per_request else r["mibps"]

        def cpu(r):
            # µs per request, or ms per MiB.
            return (r["cpu_s"] / r["requests"] * 1e6) if per_request else (r["cpu_s"] / r["mib"] * 1e3)

        results = {"A": [], "B": []}
        for i in range(args.rounds):
            for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
                results[name].append(dp.run_wrk(args, targets[name], row, args.duration, workdir, procs))
            a, b = results["A"][-1], results["B"][-1]
            print(f"round {i + 1}: A {rate(a):,.0f} {unit}, {cpu(a):.2f} CPU | "
                  f"B {rate(b):,.0f} {unit}, {cpu(b):.2f} CPU | B/A {rate(b) / rate(a):.3f}", flush=True)
        cpu_unit = "µs CPU per request" if per_request else "ms CPU per MiB"
        med = {n: (statistics.median(rate(r) for r in rs), statistics.median(cpu(r) for r in rs))
               for n, rs in results.items()}
        for n in ("A", "B"):
            print(f"{n}: median {med[n][0]:,.0f} {unit}, {med[n][1]:.2f} {cpu_unit}")
        ratios = [rate(b) / rate(a) for a, b in zip(results["A"], results["B"])]
        print(f"B/A: throughput {med['B'][0] / med['A'][0]:.3f} (per round "
              f"{', '.join(f'{x:.2f}' for x in ratios)}), CPU {med['B'][1] / med['A'][1]:.3f}")
        errors = sum(r["errors"] for rs in results.values() for r in rs)
        if errors:
            print(f"wrk errors over all runs: {errors}")
    finally:
        for proc in procs:
            dp.stop_pid(proc, 5)
        for srv in servers:
            srv.stop()
        if nginx:
            nginx.stop()
        if nagle:
            nagle.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
