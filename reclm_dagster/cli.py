"""The `reclm` command: parses arguments, then calls the same code the Dagster assets run."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from reclm_dagster import cli_args, recovery, settings
from reclm_dagster.cli_finetune import add_finetune_parser
from reclm_dagster.cli_synth import add_synth_parser
from reclm_dagster.encoders.registry import dataset_encoder_spec  # noqa: F401 - also cli.dataset_encoder_spec
from reclm_dagster.server import add_serve_parser
from reclm_dagster.cli_kg import KGExportError, add_kg_parser
from reclm_dagster.cli_queries import format_query_table, query_retrieval_report
from reclm_dagster.datasets.schema import DatasetError
from reclm_dagster.cli_run import _check_dataset, _execute, _materialized, check_evaluation_config  # noqa: F401 (tests patch cli._execute)
from reclm_dagster.serving import ReclmError

USER_ERRORS = (ReclmError, KGExportError, DatasetError)


def cmd_run(args: argparse.Namespace) -> int:
    result, seconds = _execute(args.dataset, args.encoder, args.log_level)
    print_summary(args.dataset, result.run_id, seconds)
    return 0


def _embedded_with(dataset: str, encoder_name: str | None) -> bool:
    """True when the stored embeddings of ``dataset`` were made by this encoder version (None: its own)."""
    if not _materialized(dataset, "text_embeddings"):
        return False
    import duckdb

    from reclm_dagster.datasets import LOADER_VERSION
    from reclm_dagster.encoders.registry import load_request_encoder
    from reclm_dagster.training import stored_loader_version

    schema = settings.schema_name(dataset)
    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        stored = con.execute(f'SELECT any_value(encoder_version) FROM "{schema}".text_embeddings').fetchone()[0]
        # raw tables stored by an older loader are rebuilt (e.g. users' tags kept as facts before v2)
        current = stored_loader_version(con, schema) == LOADER_VERSION
    return current and stored == load_request_encoder(dataset_encoder_spec(dataset, encoder_name)).version


def cmd_eval(args: argparse.Namespace) -> int:
    """Held-out evaluation of the hybrid, its signals and the baselines on one dataset."""
    overrides = {
        "valid_fraction": args.valid_fraction,
        "test_fraction": args.test_fraction,
        "seed": args.seed,
        "method": "temporal" if args.temporal else None,
        "finetune_steps": args.finetune_steps,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    check_evaluation_config()
    valid, test = overrides.get("valid_fraction", 0.1), overrides.get("test_fraction", 0.1)  # 0.1: the defaults
    if test == 0 or valid + test >= 1:
        raise ReclmError("need --test-fraction above 0 and --valid-fraction + --test-fraction below 1 (some must be left to train on)")
    # Re-use stored tokens and embeddings when this dataset was embedded with the same encoder.
    if not _embedded_with(args.dataset, args.encoder):
        _execute(args.dataset, args.encoder, args.log_level, asset_names=[
            "items", "interactions", "descriptions", "catalogue_facts", "user_links", "quarantine",
            "text_tokens", "text_embeddings"])
    import duckdb

    from reclm_dagster import store
    from reclm_dagster.datasets.schema import DatasetError
    from reclm_dagster.evaluation.offline import EvaluationProtocol, require_evaluable_users

    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        interactions = store.read_df(con, settings.schema_name(args.dataset), "interactions")
    try:  # nobody to hold out (e.g. 974 users with 1,000 ratings): say so before any run starts
        require_evaluable_users(interactions, EvaluationProtocol.from_config({"evaluation": {
            **settings.load_config().get("evaluation", {}), **overrides}}))
    except DatasetError as e:
        if not args.queries:
            raise
        print(f"reclm: {str(e).split('; free-text')[0]}; evaluating free-text requests only", file=sys.stderr)
        q = query_retrieval_report(args.dataset, args.encoder)
        print(json.dumps({"dataset": args.dataset, "query_retrieval": q}, indent=2, ensure_ascii=False) if args.json
              else format_query_table(q))
        return 0
    _execute(args.dataset, args.encoder, args.log_level, asset_names=["evaluation"], ops_config={"evaluation": {"config": overrides}})

    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:
        report = json.loads(store.read_df(con, settings.schema_name(args.dataset), "evaluation_report")["json"].iloc[0])
    if args.queries:
        report["query_retrieval"] = query_retrieval_report(args.dataset, args.encoder)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        from reclm_dagster.evaluation.report import format_report

        print(format_report(report))
        if args.queries:
            print("\n" + format_query_table(report["query_retrieval"]))
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
        from reclm_dagster.encoders.registry import load_request_encoder

        encoder = load_request_encoder(dataset_encoder_spec(args.dataset, args.encoder))
        rows = serving.recommend_for_query(args.dataset, args.query, args.k, encoder, user_id=args.user)
    else:
        rows = serving.recommend_for_user(args.dataset, args.user, args.k)
    if args.json:
        print(json.dumps(cli_args.bound_rows(rows), ensure_ascii=False, indent=2))
    else:
        for r in rows:
            print(f"{r['rank']:>2}. {r['title']} [{r['item_id']}, {r['domain']}] score {r['score']:.3f}")
            print(f"    {r['explanation']}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from reclm_dagster.experiments import COMPARE_METRICS, list_runs

    if not settings.mlflow_dir().exists():
        raise ReclmError(f"no MLflow store under {settings.mlflow_dir()}: run `reclm run` first")
    runs = list_runs(args.dataset)
    if runs.empty:
        raise ReclmError(f"no finished evaluation runs{' for dataset ' + repr(args.dataset) if args.dataset else ''} in {settings.mlflow_tracking_uri()}")
    if args.json:
        out = runs.assign(started=runs["started"].astype(str))
        print(json.dumps(out.to_dict(orient="records"), indent=2, default=str))
        return 0
    cols = ["dataset", "model", "encoder_version", "protocol", "test_fraction", "started", *COMPARE_METRICS]
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 48):
        print(runs[cols].round(4).to_string(index=False))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from reclm_dagster.datasets.download import REGISTRY, DownloadError, download_dataset, known_datasets

    if not args.name:
        for name in known_datasets():
            verified = "sha256 pinned" if REGISTRY[name].sha256 else "unverified (needs --allow-unverified)"
            print(f"{name:<30} {verified}")
        return 0
    data = settings.data_dir() if args.data_dir is None else args.data_dir
    try:
        path = download_dataset(args.name, data, base_url=args.base_url, progress=not args.quiet,
                                overwrite=args.overwrite, allow_unverified=args.allow_unverified)
    except DownloadError as exc:
        raise ReclmError(str(exc)) from None
    print(path)
    return 0


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_ui(args: argparse.Namespace) -> int:
    """Dagster UI (and MLflow's UI) on 127.0.0.1 over the stores in RECLM_HOME."""
    import dagster as dg

    from reclm_dagster.defs.resources import ensure_dagster_home

    ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:  # runs a killed process left unfinished show as failed
        recovery.recover_orphaned_runs(instance)
    settings.mlflow_dir().mkdir(parents=True, exist_ok=True)
    with recovery.ui_lock():  # runs launched from the UI are ours while it is up
        return _serve_ui(args)


def _serve_ui(args: argparse.Namespace) -> int:
    # Stop on SIGINT and SIGTERM even when started in the background by a script (which
    # starts us with SIGINT ignored); handled signals also reach the servers as default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    root = settings.PACKAGE_DIR.parent
    bin_dir = os.path.dirname(sys.executable)
    procs = [  # (process, the signal that stops it cleanly)
        (subprocess.Popen(
            [os.path.join(bin_dir, "dagster"), "dev", "-w", str(root / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)],
            cwd=root, start_new_session=True,
        ), signal.SIGINT)  # `dagster dev` stops cleanly on SIGINT, hangs half-way on SIGTERM
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
        procs.append((subprocess.Popen(mlflow_cmd, start_new_session=True), signal.SIGTERM))
        print(f"MLflow UI:  http://127.0.0.1:{args.mlflow_port}")
    print("Ctrl-C stops both.")
    try:
        while all(p.poll() is None for p, _ in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for p, stop in procs:
            if p.poll() is None:
                os.killpg(p.pid, stop)
        for p, _ in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            try:  # workers the servers spawned in their session (MLflow's job consumers) go too
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = cli_args.OneLineParser(prog="reclm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def dataset_arg(p):
        p.add_argument("--dataset", type=cli_args.dataset_arg, default=settings.DEFAULT_DATASET,
                       help="dataset name: 'demo' (bundled) or a folder under RECLM_DATA_DIR")

    p = sub.add_parser("run", help="materialize the whole asset graph for one dataset")
    dataset_arg(p)
    p.add_argument("--encoder", type=cli_args.encoder_arg, default=None, help=cli_args.ENCODER_HELP)
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Dagster console log level")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("eval", help="held-out evaluation: the hybrid, each signal and the baselines on one split")
    dataset_arg(p)
    p.add_argument("--valid-fraction", type=cli_args.fraction_arg, default=None, help="per-user share held out for tuning (default 0.1)")
    p.add_argument("--test-fraction", type=cli_args.fraction_arg, default=None, help="per-user share held out for testing (default 0.1)")
    p.add_argument("--seed", type=int, default=None, help="split seed (default 0)")
    p.add_argument("--temporal", action="store_true", help="hold out each user's latest interactions instead of a random share")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--encoder", type=cli_args.encoder_arg, default=None, help=cli_args.ENCODER_HELP)
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--queries", action="store_true",
                   help="also evaluate free-text requests: held-out descriptions as queries, BM25 vs encoder vs both")
    p.add_argument("--finetune-steps", type=cli_args.int_in(0, 100_000), default=None,
                   help="also report hybrid@finetuned: the encoder fine-tuned for N steps on this split's train rows (0: off)")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("recommend", help="top items for a user (stored lists) or for a free-text request")
    dataset_arg(p)
    p.add_argument("--user", help="user id")
    p.add_argument("--query", type=cli_args.query_arg, help=f"free-text request, English or Chinese (up to {cli_args.MAX_QUERY_CHARS:,} characters)")
    p.add_argument("-k", type=cli_args.k_arg, default=settings.DEFAULT_K, help=f"list length (1 to {cli_args.MAX_K})")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--encoder", type=cli_args.encoder_arg, default=None, help=cli_args.ENCODER_HELP)
    p.set_defaults(fn=cmd_recommend)

    p = sub.add_parser("download", help="fetch a public dataset from its official home, verify its sha256, unpack it into RECLM_DATA_DIR")
    p.add_argument("name", nargs="?", help="dataset name (omit to list the known ones)")
    p.add_argument("--data-dir", default=None, help="where to unpack (default: RECLM_DATA_DIR)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder of that name")
    p.add_argument("--allow-unverified", action="store_true", help="accept an archive whose sha256 reclm has not pinned")
    p.add_argument("--base-url", default=None, help="mirror host that replaces the official one (the path is kept)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_download)

    p = sub.add_parser("compare", help="MLflow evaluation runs side by side (model, encoder version vs metrics), best first")
    p.add_argument("--dataset", type=cli_args.dataset_arg, default=None, help="only this dataset's experiment")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("ui", help="start the Dagster UI and MLflow's UI on 127.0.0.1")
    p.add_argument("--port", type=cli_args.port_arg, default=3000)
    p.add_argument("--mlflow-port", type=cli_args.port_arg, default=5000)
    p.add_argument("--no-mlflow", action="store_true", help="only start Dagster; print the MLflow command")
    p.set_defaults(fn=cmd_ui)
    add_kg_parser(sub)
    add_finetune_parser(sub)
    add_synth_parser(sub)
    add_serve_parser(sub)
    cli_args.add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success, 2 for a user's mistake (one line), 1 for anything unexpected."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else cli_args.EXIT_USER
    try:
        with recovery.command_lock(args.command):  # run/eval/finetune: one at a time per RECLM_HOME
            return args.fn(args)
    except (Exception, KeyboardInterrupt) as exc:
        return cli_args.report_error(exc, USER_ERRORS, args.debug)


if __name__ == "__main__":
    sys.exit(main())
