"""`reclm serve`: the CLI's answers over HTTP, on 127.0.0.1 only (issue 13.6).

    reclm serve --dataset demo [--port 8000] [--encoder SPEC]
    GET /recommend?user=u0001&k=10          -> the JSON of `reclm recommend --user u0001 --json`
    GET /query?q=space%20robots&k=10[&user=] -> the JSON of `reclm recommend --query ... --json`
    GET /health                              -> what is loaded, and from when

The stored lists and the request index (serving.StoredLists, serving.QueryIndex: item vectors,
BM25 postings, the graph's item→entity links) are built once, not per request, and rebuilt when
the store changes; while a run holds the store, answers come from what was loaded. A user's
mistake is HTTP 400/404 with ``{"error": one line}``, the CLI's message.
"""

from __future__ import annotations

import argparse
import threading
import time

from reclm_dagster import cli_args, settings
from reclm_dagster.serving import QueryIndex, ReclmError, StoredLists
from reclm_dagster.text.normalize import segment

HOST = "127.0.0.1"  # never another interface: reclm has no authentication
RELOAD_CHECK_SECONDS = 5.0


class Answers:
    """The loaded lists and index of one dataset, swapped whole when the store file changes."""

    def __init__(self, dataset: str, encoder):
        self.dataset, self.encoder = dataset, encoder
        self._lock = threading.Lock()
        self._checked = 0.0
        self._load()

    def _stamp(self) -> float:
        path = settings.duckdb_path()
        return path.stat().st_mtime if path.exists() else 0.0

    def _load(self) -> None:
        stamp = self._stamp()
        lists, index = StoredLists.load(self.dataset), QueryIndex.load(self.dataset, self.encoder)
        lists.by_user, index.linker  # noqa: B018 - built now, not by the first requests
        segment("预热 warm-up")  # jieba loads its dictionary on first use: 1.3 s of the first Chinese request
        self.lists, self.index, self.stamp, self.loaded_at = lists, index, stamp, time.time()

    def fresh(self) -> "Answers":
        """Reload when the store changed since loading (at most every RELOAD_CHECK_SECONDS); a store
        another process holds, or one mid-run, keeps the loaded answers."""
        now = time.monotonic()
        if now - self._checked >= RELOAD_CHECK_SECONDS and self._lock.acquire(blocking=False):
            try:
                self._checked = now
                if self._stamp() != self.stamp:
                    self._load()
            except Exception:  # noqa: BLE001 - locked by a run, half-way: answer from what is loaded
                pass
            finally:
                self._lock.release()
        return self


def _checked_k(k: str) -> int:
    try:
        return cli_args.k_arg(k)
    except argparse.ArgumentTypeError as exc:
        raise ReclmError(f"k {exc}") from None


def create_app(dataset: str, encoder):
    """The FastAPI app answering for ``dataset`` with ``encoder`` (the dataset's own by default)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    answers = Answers(dataset, encoder)
    app = FastAPI(title="reclm", description=__doc__.splitlines()[0])

    def reply(fn):
        try:
            return cli_args.bound_rows(fn())
        except ReclmError as exc:
            status = 404 if str(exc).startswith("unknown user") else 400
            return JSONResponse({"error": " ".join(str(exc).split())}, status_code=status)

    @app.get("/recommend")
    def recommend(user: str, k: str = "10"):
        return reply(lambda: answers.fresh().lists.answer(user, _checked_k(k)))

    @app.get("/query")
    def query(q: str, k: str = "10", user: str | None = None):
        def run():
            try:
                text = cli_args.query_arg(q)
            except argparse.ArgumentTypeError as exc:
                raise ReclmError(str(exc)) from None
            return answers.fresh().index.answer(text, _checked_k(k), user)
        return reply(run)

    @app.get("/health")
    def health():
        a = answers.fresh()
        return {"dataset": dataset, "users_with_lists": a.lists.n_users, "items": len(a.index.tables.items),
                "encoder": a.index.tables.encoder_version, "loaded_at": a.loaded_at}

    return app


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from reclm_dagster.encoders.registry import dataset_encoder_spec, load_request_encoder

    encoder = load_request_encoder(dataset_encoder_spec(args.dataset, args.encoder))
    app = create_app(args.dataset, encoder)
    print(f"reclm serve: '{args.dataset}' on http://{HOST}:{args.port} (/recommend?user=, /query?q=, /health); Ctrl-C stops")
    uvicorn.run(app, host=HOST, port=args.port, log_level="warning")
    return 0


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="answer /recommend?user= and /query?q= over HTTP on 127.0.0.1 (the CLI's JSON)")
    p.add_argument("--dataset", type=cli_args.dataset_arg, default=settings.DEFAULT_DATASET, help="dataset name (default demo)")
    p.add_argument("--port", type=cli_args.port_arg, default=8000, help="port on 127.0.0.1 (default 8000)")
    p.add_argument("--encoder", type=cli_args.encoder_arg, help=cli_args.ENCODER_HELP)
    p.set_defaults(fn=cmd_serve)
    return p
