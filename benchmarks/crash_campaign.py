"""Kill -9 campaign (issue 14.3): `reclm run` killed at chosen or random points, then run again.

After every kill: the DuckDB file opens, the lists stored are either absent (no run ever
finished) or exactly the reference lists (never half-written). After the campaign an
uninterrupted run stores lists equal to the reference, and no Dagster run stays STARTED nor
any MLflow run RUNNING once the next command has started.

A kill point is either
- ``write:<table>``: SIGKILL just before the COMMIT of the DuckDB transaction writing <table>
  (every table of that transaction written, none committed);
- ``encode:<k>``: inside the k-th call of the transformer encoder;
- ``mlflow:<k>``: at the k-th ``mlflow.log_metrics`` (evaluation logging, runs left RUNNING);
- ``at:<seconds>``: after that many seconds of the run, wherever it is (random points).

    python benchmarks/crash_campaign.py                          # CI's chain on the demo
    python benchmarks/crash_campaign.py --random 12 --seed 0     # + 12 random kills, JSON to results/

The reference lists are those of an uninterrupted run in a separate home (``--reference``
reuses one). The child side (``--child POINT``) patches reclm in its own process and is only
started by this script.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHAIN = ("write:items", "encode:2", None, "write:recommendations", "mlflow:1")  # None: uninterrupted
RESULTS = Path(__file__).parent / "results"


# ---------------------------------------------------------------- child: the killed process

def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _KillBeforeCommit:
    """A DuckDB connection whose COMMIT kills the process instead (everything written, nothing committed)."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, *args, **kwargs):
        if sql.strip().upper() == "COMMIT":
            _die()
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def _nth_call(owner, name: str, k: int) -> None:
    original = getattr(owner, name)  # AttributeError: the campaign's target moved, fix the campaign
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] >= k:
            _die()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def install(point: str) -> None:
    kind, _, arg = point.partition(":")
    if kind == "write":
        from reclm_dagster import store

        original = store.replace_tables

        def replace_tables(con, schema, tables):
            return original(_KillBeforeCommit(con) if arg in tables else con, schema, tables)

        store.replace_tables = replace_tables
        for module in list(sys.modules.values()):  # modules that imported the function by name
            if getattr(module, "replace_tables", None) is original and module is not store:
                module.replace_tables = replace_tables
    elif kind == "encode":
        from reclm_dagster.encoders.transformer import TransformerEncoder

        _nth_call(TransformerEncoder, "encode", int(arg))
    elif kind == "mlflow":
        import mlflow

        _nth_call(mlflow, "log_metrics", int(arg))
    elif kind != "at":
        raise SystemExit(f"unknown kill point {point!r}")


def child(point: str, dataset: str) -> int:
    install(point)
    from reclm_dagster.cli import main

    return main(["run", "--dataset", dataset])


# ---------------------------------------------------------------- parent: run, kill, check

def run_reclm(home: Path, dataset: str, point: str | None, timeout: float = 900) -> dict:
    """One `reclm run` in ``home``, killed at ``point`` (None: let it finish)."""
    env = {**os.environ, "RECLM_HOME": str(home)}
    cmd = [sys.executable, __file__, "--child", point or "at:0", "--dataset", dataset]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if point and point.startswith("at:"):
        try:
            proc.wait(timeout=float(point[3:]))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=timeout)
    return {"point": point, "returncode": proc.returncode, "killed": proc.returncode == -signal.SIGKILL,
            "seconds": round(time.perf_counter() - start, 1), "output_tail": out.strip().splitlines()[-3:]}


def stored_lists(home: Path, dataset: str):
    """The lists stored in ``home`` (None when there are none); opening the file is itself a check."""
    import duckdb

    from reclm_dagster import settings

    os.environ["RECLM_HOME"] = str(home)
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'recommendations'",
                            [settings.schema_name(dataset)]).fetchall()[0][0]
        if not found:
            return None
        df = con.execute(f'SELECT user_id, item_id, rank, score FROM "{settings.schema_name(dataset)}".recommendations').df()
    return df.sort_values(["user_id", "rank"]).reset_index(drop=True)


def same_lists(a, b) -> bool:
    import numpy as np

    if a is None or b is None or len(a) != len(b):
        return False
    return (a[["user_id", "item_id", "rank"]].equals(b[["user_id", "item_id", "rank"]])
            and bool(np.allclose(a["score"], b["score"], rtol=1e-5, atol=1e-6)))


def _instance(home: Path):
    import dagster as dg

    from reclm_dagster import settings

    os.environ["RECLM_HOME"] = str(home)
    return dg.DagsterInstance.from_config(str(settings.dagster_home()))


def step_running_when_killed(home: Path) -> str | None:
    """The step the last killed run had started and not finished (from its Dagster event log)."""
    import dagster as dg

    with _instance(home) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return None
        started, ended = [], set()
        for entry in instance.all_logs(runs[0].run_id):
            event = entry.dagster_event
            if event is None or not event.step_key:
                continue
            if event.event_type_value == "STEP_START":
                started.append(event.step_key)
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                ended.add(event.step_key)
        open_steps = [s for s in started if s not in ended]
        return open_steps[-1] if open_steps else ("(between steps)" if started else "(before the first step)")


def unfinished_runs(home: Path) -> dict[str, int]:
    """Dagster runs STARTED and MLflow runs RUNNING after the recovery every command starts with."""
    import dagster as dg
    import mlflow

    from reclm_dagster import recovery, settings

    with _instance(home) as instance:
        recovery.recover_orphaned_runs(instance)
        started = len(instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])))
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri())  # no global MLflow state changed
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = len(client.search_runs(experiments, "attributes.status = 'RUNNING'")) if experiments else 0
    return {"dagster_started": started, "mlflow_running": running}


def campaign(home: Path, reference, points, dataset: str = "demo") -> list[dict]:
    """Run ``points`` in order in one home; check the store after each (see the module doc)."""
    records = []
    for point in points:
        record = run_reclm(home, dataset, point)
        lists = stored_lists(home, dataset)
        record["lists"] = "none" if lists is None else ("reference" if same_lists(lists, reference) else "DIFFERENT")
        if record["killed"]:
            record["killed_in"] = step_running_when_killed(home)
        records.append(record)
        print(json.dumps({k: v for k, v in record.items() if k != "output_tail"}), flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--random", type=int, default=0, help="random kills (uniform over an uninterrupted run's time) after the chain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", type=Path, help="a RECLM_HOME that already holds an uninterrupted run's lists")
    ap.add_argument("--json", type=Path, default=RESULTS / "crash_campaign.json")
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.dataset)
    with tempfile.TemporaryDirectory(prefix="reclm-crash-") as tmp:
        ref_home = args.reference or Path(tmp) / "reference"
        ref_seconds = None
        if args.reference is None:
            ref_seconds = run_reclm(ref_home, args.dataset, None)["seconds"]
        reference = stored_lists(ref_home, args.dataset)
        assert reference is not None, f"no lists in the reference home {ref_home}"
        rng = random.Random(args.seed)
        span = ref_seconds or 40.0
        points = [*CHAIN, *(f"at:{rng.uniform(2, span):.1f}" for _ in range(args.random)), None]
        records = campaign(Path(tmp) / "home", reference, points, args.dataset)
        leftovers = unfinished_runs(Path(tmp) / "home")
    summary = {
        "dataset": args.dataset, "seed": args.seed, "kills": sum(r["killed"] for r in records),
        "lists_half_written": sum(r["lists"] == "DIFFERENT" for r in records),
        "runs_failed_unkilled": sum(not r["killed"] and r["returncode"] != 0 for r in records),
        "final_lists_equal_reference": records[-1]["lists"] == "reference", **leftovers,
        "killed_in": sorted({r.get("killed_in") for r in records if r["killed"]}), "records": records,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "records"}))
    ok = summary["final_lists_equal_reference"] and not summary["lists_half_written"] and not any(leftovers.values()) \
        and not summary["runs_failed_unkilled"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
