"""Bounded load on `reclm serve` (issue 13.6): concurrent clients on loopback, a fixed number of
requests, p50/p99 latency and throughput per endpoint, beside one `reclm recommend --query` run
as a process (what a request cost before the index was kept in memory).

    python benchmarks/serve_load.py --home H --dataset demo [--requests 400] [--clients 4]

H must hold a finished `reclm run` of the dataset. JSON to benchmarks/results/serve_load_<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
QUERIES = ["a funny space adventure with robots", "sad piano music for a rainy night", "这款手机电池续航能力强，拍照效果好",
           "a detective story in the 1940s", "upbeat electronic music", "documentary about the ocean", "romantic comedy in Paris"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _users(home: Path, dataset: str) -> list[str]:
    import duckdb

    from reclm_dagster import settings

    os.environ["RECLM_HOME"] = str(home)
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        return [r[0] for r in con.execute(f'SELECT DISTINCT user_id FROM "{settings.schema_name(dataset)}".recommendations').fetchall()]


def _timed_get(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        r.read()
        status = r.status
    return time.perf_counter() - start, status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    env = {**os.environ, "RECLM_HOME": str(args.home)}
    reclm = [sys.executable, "-m", "reclm_dagster.cli"]
    start = time.perf_counter()
    subprocess.run([*reclm, "recommend", "--dataset", args.dataset, "--query", QUERIES[0], "--json"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    cli_query_s = time.perf_counter() - start
    port = _free_port()
    server = subprocess.Popen([*reclm, "serve", "--dataset", args.dataset, "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            try:
                _timed_get(f"{base}/health")
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 300:
                    raise SystemExit("reclm serve did not start")
                time.sleep(0.2)
        startup_s = time.perf_counter() - started
        rng = random.Random(args.seed)
        users = _users(args.home, args.dataset)
        urls = [(f"{base}/recommend?user={urllib.parse.quote(rng.choice(users))}&k=10", "recommend") if i % 2 == 0 else
                (f"{base}/query?" + urllib.parse.urlencode({"q": rng.choice(QUERIES), "k": 10}), "query")
                for i in range(args.requests)]
        begin = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda u: (_timed_get(u[0]), u[1]), urls))
        wall = time.perf_counter() - begin
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = {"dataset": args.dataset, "requests": args.requests, "clients": args.clients, "startup_s": round(startup_s, 1),
           "cli_query_process_s": round(cli_query_s, 2), "throughput_rps": round(args.requests / wall, 1),
           "errors": sum(status != 200 for (_, status), _ in results)}
    for endpoint in ("recommend", "query"):
        lat = np.array([t for (t, _), e in results if e == endpoint]) * 1000
        out[endpoint] = {"n": len(lat), "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1)}
    out["cli_over_served_query_p50"] = round(cli_query_s * 1000 / out["query"]["p50_ms"], 1)
    print(json.dumps(out, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"serve_load_{args.dataset}.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0 if out["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
