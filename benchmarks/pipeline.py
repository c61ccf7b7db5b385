"""Per-step time and memory of a whole `reclm run` (issue 13.1).

    python benchmarks/pipeline.py --dataset hetrec2011-lastfm-2k            # a run in a fresh home
    python benchmarks/pipeline.py --dataset demo --home H --no-run          # the last run already in H

Every asset stamps its materializations with ``step_seconds`` and ``step_peak_rss_mb`` (the
process's peak so far, so the step where it jumps is the one that allocated; defs/common.py
``profiled``); the evaluation adds its own stages (``stage_*``). This prints one row per asset
of the run, then the evaluation's stages, and writes benchmarks/results/pipeline_<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def step_table(home: Path, dataset: str) -> list[dict]:
    """One row per asset materialized by the latest run in ``home`` for ``dataset``."""
    import dagster as dg

    from reclm_dagster import settings

    os.environ["RECLM_HOME"] = str(home)
    with dg.DagsterInstance.from_config(str(settings.dagster_home())) as instance:
        runs = [r for r in instance.get_runs(limit=20) if r.tags.get("dagster/partition") == dataset]
        if not runs:
            raise SystemExit(f"no run of {dataset!r} in {home}")
        rows, stages = [], []
        for entry in instance.all_logs(runs[0].run_id):
            event = entry.dagster_event
            if event is None or event.event_type_value != "ASSET_MATERIALIZATION":
                continue
            mat = event.event_specific_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            if "step_seconds" in meta:
                rows.append({"step": event.step_key, "asset": mat.asset_key.to_user_string(),
                             "seconds": meta["step_seconds"], "peak_rss_mb": meta["step_peak_rss_mb"],
                             "rss_before_mb": meta.get("step_rss_before_mb"), "rows": meta.get("dagster/row_count")})
            if mat.asset_key.to_user_string() == "evaluation":
                stages = [{"stage": k.removeprefix("stage_").removesuffix("_seconds"), "seconds": v}
                          for k, v in meta.items() if k.startswith("stage_") and k.endswith("_seconds")]
    return rows, stages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--home", type=Path, help="RECLM_HOME to run in (default: a fresh temporary one)")
    ap.add_argument("--no-run", action="store_true", help="only read the latest run already in --home")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    tmp = None
    home = args.home
    if home is None:
        tmp = tempfile.TemporaryDirectory(prefix="reclm-pipeline-")
        home = Path(tmp.name)
    wall = None
    if not args.no_run:
        start = time.perf_counter()
        env = {**os.environ, "RECLM_HOME": str(home)}
        subprocess.run([sys.executable, "-m", "reclm_dagster.cli", "run", "--dataset", args.dataset], env=env, check=True)
        wall = round(time.perf_counter() - start, 1)
    rows, stages = step_table(home, args.dataset)
    print(f"{'asset':24} {'seconds':>8} {'peak RSS MiB':>13} {'rows':>10}")
    seen = set()
    for r in rows:
        shown = r["asset"] if r["step"] not in seen else f"  {r['asset']}"
        seen.add(r["step"])
        print(f"{shown:24} {r['seconds']:8.1f} {r['peak_rss_mb']:13.0f} {r['rows'] if r['rows'] is not None else '':>10}")
    if stages:
        print("evaluation stages: " + ", ".join(f"{s['stage']} {s['seconds']:.0f}s" for s in stages))
    if wall is not None:
        print(f"whole `reclm run`: {wall}s")
    out = args.json or RESULTS / f"pipeline_{args.dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"dataset": args.dataset, "wall_seconds": wall, "steps": rows, "evaluation_stages": stages}, indent=1) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
