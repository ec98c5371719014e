#!/usr/bin/env python3
"""Login cost per request of one or more dev-server binaries, interleaved: server CPU time (user +
system, from /proc/<pid>/stat) and client-side latency of sequential `POST /auth/login` calls on
one keep-alive connection.

CPU time per login is far less sensitive to a noisy shared machine than throughput under load,
so this is the tool for comparing builds (profiles, opt-levels) of the same code. Each round
starts every binary on a fresh data dir, signs one user up, logs in 3 times untimed, waits for the
embedded store's once-a-second durable commit, then times N logins. Every answer must be 200.

Usage:
    python3 infra/bench/login_cpu.py [--rounds 3] [--logins 60] [--port 3000] NAME=BINARY ...
e.g.
    python3 infra/bench/login_cpu.py s=/tmp/dev-server-s o3=target/release/dev-server
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

PASSWORD = "correct horse battery staple"


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(port: int) -> http.client.HTTPConnection:
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/.well-known/jwks.json")
            c.getresponse().read()
            return c
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the dev server did not answer on port {port}")


def post(c: http.client.HTTPConnection, path: str, body: str) -> int:
    c.request("POST", path, body, {"content-type": "application/json"})
    r = c.getresponse()
    r.read()
    return r.status


def one_round(binary: str, port: int, logins: int) -> tuple[float, float]:
    data_dir = tempfile.mkdtemp(prefix="tollgate-login-cpu-")
    server = subprocess.Popen([binary, "--data-dir", data_dir, "--addr", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = connect(port)
        body = json.dumps({"email": "login-cpu@example.com", "password": PASSWORD})
        assert post(c, "/auth/signup", body) == 201
        for _ in range(3):
            assert post(c, "/auth/login", body) == 200
        time.sleep(1.2)
        before = cpu_seconds(server.pid)
        latencies = []
        for _ in range(logins):
            start = time.perf_counter()
            status = post(c, "/auth/login", body)
            latencies.append(time.perf_counter() - start)
            assert status == 200, status
        cpu = (cpu_seconds(server.pid) - before) / logins
        return cpu * 1000, statistics.median(latencies) * 1000
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=60)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("builds", nargs="+", help="NAME=PATH of a dev-server binary")
    args = parser.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in builds}
    for r in range(args.rounds):
        for name, binary in builds:
            cpu, p50 = one_round(binary, args.port, args.logins)
            results[name].append((cpu, p50))
            print(f"round {r + 1} {name}: CPU {cpu:.2f} ms/login, latency p50 {p50:.2f} ms", flush=True)
    print(f"\n| build | CPU ms per login (median of {args.rounds}) | latency p50 ms (median) |")
    print("|---|---:|---:|")
    for name, _ in builds:
        cpus = [c for c, _ in results[name]]
        p50s = [p for _, p in results[name]]
        print(f"| {name} | {statistics.median(cpus):.2f} | {statistics.median(p50s):.2f} |")


if __name__ == "__main__":
    main()
