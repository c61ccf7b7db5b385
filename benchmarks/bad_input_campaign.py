"""Bad-input campaign (issue 14): every kind of hostile file and argument reclm meets, each tried
through the path a user takes, and its outcome counted.

Outcomes, one per case:
- ``clear error``: refused with one line naming the file (or the argument), exit 2 for the CLI;
- ``quarantined``: loaded, every bad row a quarantine row naming file, line and field (the inbox:
  the file rejected with its bad lines named), every valid row kept unchanged;
- ``accepted``: loaded as it is, every row unchanged;
- ``silently changed``: a row stored with another value than the file's, or dropped without a word;
- ``lost``: a valid row not stored (a whole file refused for one bad value counts here);
- ``crash``: a traceback, an error that names no file, or an exit code that hides the mistake.

Each case says which rows of its file are valid (must be stored exactly), which are bad (must
be quarantined) and which may go either way; the verdict is computed, never written down.

    python benchmarks/bad_input_campaign.py                 # every case, JSON to results/
    python benchmarks/bad_input_campaign.py --scale 20000   # each file padded with 20,000 valid rows

The CLI cases need a RECLM_HOME holding a finished demo run (``--home``; without it they are
skipped here, and CI runs them on its shared demo run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bad_input_cases import CLI_CASES, FILE_CASES, INBOX_CASES, KEYS, Case  # noqa: E402

OUTCOMES = ("clear error", "quarantined", "accepted", "silently changed", "lost", "crash")
RESULTS = Path(__file__).parent / "results"


@dataclass
class Verdict:
    case: str
    entry: str  # folder | inbox | cli
    outcome: str
    detail: str = ""
    rows_lost: int = 0
    rows: int = 0  # data rows the case's file holds (scale included)
    extra: dict = field(default_factory=dict)


def _one_line_naming(message: str, name: str) -> bool:
    return "\n" not in message.strip() and "Traceback" not in message and name in message


def _rows(frame: pd.DataFrame, table: str) -> Counter:
    cols = KEYS[table]
    out = Counter()
    for row in frame[list(cols)].itertuples(index=False):
        out[tuple(None if (not isinstance(v, str) and pd.isna(v)) else (float(v) if isinstance(v, float) else v) for v in row)] += 1
    return out


def judge_loaded(case: Case, kept: Counter, good: Counter, quarantine_rows: pd.DataFrame) -> tuple[str, str, int]:
    """Compare the rows stored with those the case says must be (outcome, detail, valid rows lost)."""
    lost = good - kept
    if lost:
        return "lost", f"valid rows not stored: {list(lost)[:3]}", sum(lost.values())
    extra = kept - good
    extra = Counter({r: n for r, n in extra.items() if r not in case.maybe})
    if extra:
        return "silently changed", f"stored rows the file does not hold as such: {list(extra)[:3]}", 0
    named = quarantine_rows[(quarantine_rows["line"] > 0) & (quarantine_rows["field"].astype(str) != "")]
    if len(named) < len(quarantine_rows):
        return "crash", "quarantine rows without line or field", 0
    maybe_kept = sum(1 for r in case.maybe if kept[r])
    expected_q = len(case.bad) + len(case.maybe) - maybe_kept
    if len(quarantine_rows) < expected_q:
        return "silently changed", f"{expected_q - len(quarantine_rows)} bad rows dropped without a quarantine row", 0
    if len(quarantine_rows) > expected_q:
        return "lost", f"{len(quarantine_rows) - expected_q} more rows quarantined than the file's bad ones", 0
    return ("quarantined" if len(quarantine_rows) else "accepted"), "", 0


def run_file_case(case: Case, scale: int) -> Verdict:
    from reclm_dagster.datasets import DatasetError, folder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "catalogue"
        case.write(root, scale)
        verdict = Verdict(case.name, "folder", "", rows=case.data_rows(scale))
        try:
            ds = folder.load(root)
        except DatasetError as exc:
            return _refused(case, verdict, str(exc))
        except Exception as exc:  # noqa: BLE001 - the campaign counts what escapes
            verdict.outcome, verdict.detail = "crash", f"{type(exc).__name__}: {exc}"[:300]
            return verdict
    frame = {"items": ds.items, "interactions": ds.interactions, "descriptions": ds.descriptions}[case.table]
    q = ds.quarantine[ds.quarantine["source_file"].astype(str) == case.file_name]
    other = ds.quarantine[ds.quarantine["source_file"].astype(str) != case.file_name]
    if len(other) and not case.others_may_quarantine:
        verdict.outcome, verdict.detail = "silently changed", f"rows of the untouched files quarantined: {other.head(2).to_dict('records')}"
        return verdict
    verdict.outcome, verdict.detail, verdict.rows_lost = judge_loaded(
        case, _rows(frame, case.table), Counter(case.good_rows(scale)), q)
    return verdict


def _refused(case: Case, verdict: Verdict, message: str) -> Verdict:
    if not _one_line_naming(message, case.file_name):
        verdict.outcome, verdict.detail = "crash", f"error does not name {case.file_name} in one line: {message[:200]}"
    elif case.refusal_ok:
        verdict.outcome, verdict.detail = "clear error", message[:200]
    else:
        verdict.outcome, verdict.detail = "lost", f"whole file refused for its bad rows: {message[:200]}"
        verdict.rows_lost = len(case.good_rows())
    return verdict


@contextlib.contextmanager
def _reclm_home(path):
    """RECLM_HOME set to ``path`` for the block, then put back."""
    import os

    old = os.environ.get("RECLM_HOME")
    os.environ["RECLM_HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RECLM_HOME", None)
        else:
            os.environ["RECLM_HOME"] = old


def run_inbox_case(case: Case, scale: int) -> Verdict:
    """The same kind of file dropped into the inbox of a stored dataset (all or nothing per file)."""
    import duckdb

    from reclm_dagster import inbox, settings, store
    from reclm_dagster.datasets import folder

    verdict = Verdict(case.name, "inbox", "", rows=case.data_rows(scale))
    with tempfile.TemporaryDirectory() as tmp, _reclm_home(tmp):
        try:
            base = folder.load(case.base_folder(Path(tmp) / "base"))
            schema = settings.schema_name("campaign")
            with duckdb.connect(str(settings.duckdb_path())) as con:
                store.replace_tables(con, schema, {"items": base.items, "interactions": base.interactions,
                                                   "descriptions": base.descriptions})
                before = store.read_df(con, schema, case.table)
                path = case.write_inbox_file(Path(tmp) / "inbox" / "campaign", scale)
                result = inbox.ingest_or_reject(con, "campaign", path)
                after = store.read_df(con, schema, case.table)
        except Exception as exc:  # noqa: BLE001
            verdict.outcome, verdict.detail = "crash", f"{type(exc).__name__}: {exc}"[:300]
            return verdict
    if result.accepted:  # the stored table: what it held, plus the file's valid rows (merged with equal ones)
        good = Counter(set(_rows(before, case.table)) | set(case.good_rows(scale)))
        verdict.outcome, verdict.detail, verdict.rows_lost = judge_loaded(
            case, _rows(after, case.table), good, pd.DataFrame({"line": [], "field": []}))
        if case.bad and verdict.outcome != "lost":
            verdict.outcome, verdict.detail = "silently changed", f"file with {len(case.bad)} bad rows accepted"
        return verdict
    if _rows(after, case.table) != _rows(before, case.table):
        verdict.outcome, verdict.detail = "silently changed", "a rejected file changed the stored table"
        return verdict
    text = result.reason_text()
    if "please report" in text:
        verdict.outcome, verdict.detail = "crash", text[:200]
    elif case.refusal_ok or any(p.line > 0 for p in result.problems):
        named = all(p.line > 0 and p.field for p in result.problems) and not case.refusal_ok
        verdict.outcome = "quarantined" if named else "clear error"
        verdict.detail = text[:200]
    else:
        verdict.outcome, verdict.detail = "lost", f"rejected without a line: {text[:200]}"
    return verdict


def run_cli_case(args: list[str], home: Path, expect: str) -> Verdict:
    """``expect``: 'error' (exit 2, one line on stderr, no traceback) or 'ok' (exit 0, bounded output)."""
    from reclm_dagster.cli import main

    verdict = Verdict(" ".join(a if len(a) < 40 else a[:20] + f"…({len(a)} chars)" for a in args), "cli", "")
    out, err = io.StringIO(), io.StringIO()
    try:
        with _reclm_home(home), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 2
    except Exception:  # noqa: BLE001
        verdict.outcome, verdict.detail = "crash", traceback.format_exc(limit=1)[-300:]
        return verdict
    stderr = err.getvalue().strip()
    verdict.extra = {"exit": code, "stdout_bytes": len(out.getvalue())}
    if "Traceback" in stderr or "Traceback" in out.getvalue():
        verdict.outcome, verdict.detail = "crash", stderr[-200:]
    elif expect == "error":
        last = stderr.splitlines()[-1] if stderr else ""
        ok = code == 2 and last.startswith(("reclm", "usage")) or (code == 2 and "error:" in last)
        verdict.outcome = "clear error" if ok else "crash"
        verdict.detail = f"exit {code}: {last[:200]}"
    else:
        bounded = len(out.getvalue()) < 2_000_000
        verdict.outcome = "accepted" if code == 0 and bounded else "crash"
        verdict.detail = f"exit {code}, {len(out.getvalue())} bytes"
    return verdict


def run_campaign(scale: int = 0, home: Path | None = None, only: str | None = None) -> list[Verdict]:
    verdicts = []
    for case in FILE_CASES:
        if only is None or only in case.name:
            verdicts.append(run_file_case(case, scale))
    for case in INBOX_CASES:
        if only is None or only in case.name:
            verdicts.append(run_inbox_case(case, scale))
    if home is not None:
        for args, expect in CLI_CASES(home):
            verdicts.append(run_cli_case(args, home, expect))
    return verdicts


def summarise(verdicts: list[Verdict]) -> dict:
    counts = Counter(v.outcome for v in verdicts)
    return {"cases": len(verdicts), **{k: counts.get(k, 0) for k in OUTCOMES},
            "by_entry": {e: dict(Counter(v.outcome for v in verdicts if v.entry == e)) for e in ("folder", "inbox", "cli")},
            "valid_rows_lost": sum(v.rows_lost for v in verdicts), "rows_tried": sum(v.rows for v in verdicts)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=0, help="valid rows added to every case's file")
    ap.add_argument("--home", type=Path, help="a RECLM_HOME with a finished demo run, for the CLI cases")
    ap.add_argument("--only", help="cases whose name contains this")
    ap.add_argument("--json", type=Path, default=RESULTS / "bad_input_campaign.json")
    args = ap.parse_args(argv)
    verdicts = run_campaign(args.scale, args.home, args.only)
    for v in verdicts:
        print(f"{v.entry:7} {v.outcome:17} {v.case[:60]:60} {v.detail[:110]}")
    summary = summarise(verdicts)
    print(json.dumps(summary))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**summary, "scale": args.scale, "verdicts": [v.__dict__ for v in verdicts]}, indent=1) + "\n")
    bad = summary["silently changed"] + summary["lost"] + summary["crash"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
