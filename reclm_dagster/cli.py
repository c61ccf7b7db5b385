"""The `reclm` command: parses arguments, then calls the same code the Dagster assets run."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from reclm_dagster import settings
from reclm_dagster.serving import ReclmError


def _check_dataset(name: str) -> None:
    from reclm_dagster.datasets import available_datasets

    if name == settings.DEFAULT_DATASET:
        return
    data = settings.data_dir()
    if not (data / name).is_dir():
        names = available_datasets(data) if data.is_dir() else []
        listed = ", ".join(names) if names else "none"
        raise ReclmError(
            f"unknown dataset '{name}': no folder {data / name} (available: {listed}; set RECLM_DATA_DIR to the folder holding your datasets)"
        )


def cmd_run(args: argparse.Namespace) -> int:
    _check_dataset(args.dataset)
    from reclm_dagster.defs.resources import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from reclm_dagster.definitions import build_definitions

    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition("datasets", args.dataset):
        instance.add_dynamic_partitions("datasets", [args.dataset])
    job = build_definitions().resolve_job_def("reclm_full")
    start = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        partition_key=args.dataset,
        run_config={
            "resources": {"encoder": {"config": {"model": args.encoder or ""}}},
            "loggers": {"console": {"config": {"log_level": args.log_level}}},
        },
        raise_on_error=False,
        tags={"reclm/cli": "run"},
    )
    seconds = time.perf_counter() - start
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        for event in failures:
            err = event.step_failure_data.error
            cause = err.cause if err and err.cause else err
            print(f"reclm: step {event.step_key} failed: {cause.message.strip() if cause else 'see the Dagster UI'}", file=sys.stderr)
        print(f"reclm: run {result.run_id} failed; `reclm ui` shows its logs", file=sys.stderr)
        return 1
    print_summary(args.dataset, result.run_id, seconds)
    return 0


def print_summary(dataset: str, run_id: str, seconds: float) -> None:
    import duckdb

    from reclm_dagster.defs.evaluation import HEADLINE, evaluation_summary

    schema = settings.schema_name(dataset)
    con = duckdb.connect(str(settings.duckdb_path()), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = ? ORDER BY table_name", [schema]
        ).fetchall()
        print(f"\nreclm run on '{dataset}' finished in {seconds:.0f}s (Dagster run {run_id})")
        print("materialized (rows per table):")
        for name, _ in tables:
            n = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]
            print(f"  {name:<22} {n:>10,}")
        wide = evaluation_summary(con, dataset)
        if not wide.empty:
            cols = [c for c in HEADLINE if c in wide.columns]
            print("\nheld-out evaluation (test split, full ranking):")
            print(wide[cols].sort_values("ndcg@10", ascending=False).round(4).to_string())
        sample = con.execute(
            f'SELECT user_id, rank, title, explanation FROM "{schema}".recommendations WHERE user_id = (SELECT min(user_id) FROM "{schema}".recommendations) AND rank <= 5 ORDER BY rank'
        ).fetchall()
        if sample:
            print(f"\nrecommendations for user {sample[0][0]}:")
            for _, rank, title, why in sample:
                print(f"  {rank}. {title} — {why}")
    finally:
        con.close()
    print("\noutputs:")
    print(f"  DuckDB   {settings.duckdb_path()} (schema {schema})")
    print(f"  MLflow   {settings.mlflow_tracking_uri()} (experiment '{dataset}')")
    print(f"  Dagster  {settings.dagster_home()}")
    print("next: `reclm recommend --user ID` or `reclm recommend --query \"...\"`; `reclm ui` opens the Dagster and MLflow UIs")


def cmd_recommend(args: argparse.Namespace) -> int:
    from reclm_dagster import serving

    if args.query is None and args.user is None:
        raise ReclmError("say whom or what for: --user ID and/or --query \"free text\"")
    if args.query is not None:
        from reclm_dagster.defs.resources import load_encoder

        encoder = load_encoder(args.encoder or "", 64, "auto")
        rows = serving.recommend_for_query(args.dataset, args.query, args.k, encoder, user_id=args.user)
    else:
        rows = serving.recommend_for_user(args.dataset, args.user, args.k)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for r in rows:
            print(f"{r['rank']:>2}. {r['title']} [{r['item_id']}, {r['domain']}] score {r['score']:.3f}")
            print(f"    {r['explanation']}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Dagster UI (and MLflow's UI) on 127.0.0.1 over the stores in RECLM_HOME."""
    from reclm_dagster.defs.resources import ensure_dagster_home

    ensure_dagster_home()
    settings.mlflow_dir().mkdir(parents=True, exist_ok=True)
    root = settings.PACKAGE_DIR.parent
    bin_dir = os.path.dirname(sys.executable)
    procs = [
        subprocess.Popen(
            [os.path.join(bin_dir, "dagster"), "dev", "-w", str(root / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)],
            cwd=root, start_new_session=True,
        )
    ]
    print(f"Dagster UI: http://127.0.0.1:{args.port}")
    mlflow_cmd = [
        os.path.join(bin_dir, "mlflow"), "server", "--host", "127.0.0.1", "--port", str(args.mlflow_port),
        "--backend-store-uri", settings.mlflow_tracking_uri(),
        "--default-artifact-root", settings.mlflow_artifacts_dir().resolve().as_uri(), "--workers", "1",
    ]
    if args.no_mlflow:
        print("MLflow UI (start it yourself): " + " ".join(mlflow_cmd))
    else:
        procs.append(subprocess.Popen(mlflow_cmd, start_new_session=True))
        print(f"MLflow UI:  http://127.0.0.1:{args.mlflow_port}")
    print("Ctrl-C stops both.")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reclm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def dataset_arg(p):
        p.add_argument("--dataset", default=settings.DEFAULT_DATASET, help="dataset name: 'demo' (bundled) or a folder under RECLM_DATA_DIR")

    p = sub.add_parser("run", help="materialize the whole asset graph for one dataset")
    dataset_arg(p)
    p.add_argument("--encoder", default="", help="local model folder or cached Hugging Face id (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Dagster console log level")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("recommend", help="top items for a user (stored lists) or for a free-text request")
    dataset_arg(p)
    p.add_argument("--user", help="user id")
    p.add_argument("--query", help="free-text request, English or Chinese")
    p.add_argument("-k", type=int, default=settings.DEFAULT_K, help="list length")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--encoder", default="", help="the encoder the dataset was embedded with (default: packaged MiniLM)")
    p.set_defaults(fn=cmd_recommend)

    p = sub.add_parser("ui", help="start the Dagster UI and MLflow's UI on 127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.add_argument("--no-mlflow", action="store_true", help="only start Dagster; print the MLflow command")
    p.set_defaults(fn=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ReclmError as exc:
        print(f"reclm: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
