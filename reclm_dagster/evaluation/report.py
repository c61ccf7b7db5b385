"""An evaluation result as JSON (one entry per model) and as a plain-text table."""

from __future__ import annotations

import math

import pandas as pd

from reclm_dagster.evaluation.offline import TUNING_METRIC, EvaluationProtocol, EvaluationResult
from reclm_dagster.evaluation.protocol import RANKING_METRICS
from reclm_dagster.models.signals import WORD_SIGNALS

BEYOND_ACCURACY = ("coverage", "novelty", "popularity_bias")
# (header, slice, metric) of format_table's columns
TABLE_COLUMNS = (
    ("NDCG@10", "all", "ndcg@10"),
    ("Recall@10", "all", "recall@10"),
    ("Recall@20", "all", "recall@20"),
    ("Precision@10", "all", "precision@10"),
    ("MAP@10", "all", "map@10"),
    ("MRR@10", "all", "mrr@10"),
    ("Coverage@10", "all", "coverage@10"),
    ("ILD@10", "all", "ild@10"),
    ("cold NDCG@10", "cold", "ndcg@10"),
    ("cold Recall@20", "cold", "recall@20"),
)


# Cold-user protocol columns (per revealed n) and the models shown there.
COLD_USER_METRICS = (("NDCG@10", "ndcg@10"), ("Recall@20", "recall@20"))
from reclm_dagster.evaluation.cold_users import COLD_USER_PREFIX, ONBOARDING_PREFIX  # noqa: E402
# What the hybrid is divided by for cold users: Pop at every n, EASE where it ran (n >= 1;
# at n = 0 it has no history to go on and its list is catalogue order).
COLD_USER_BASELINES = ("pop", "ease")
# Onboarding (users who said what they like): the hybrid against Pop and its own text-only signals.
ONBOARDING_BASELINES = ("pop", *WORD_SIGNALS)  # the registry's signals that read words alone


def _records(frame: pd.DataFrame) -> list[dict]:
    """A table as JSON-safe rows: numbers through ``_num``, text kept."""
    return [{k: v if isinstance(v, str) else _num(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _num(value) -> float | None:
    """A JSON-safe float: NaN (no user to average over) becomes null."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _plain(value):
    """numpy scalars and tuples inside params as JSON-native values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _metric_names(ks, families) -> list[str]:
    return [f"{m}@{k}" for k in sorted(ks) for m in families]


def eval_json(dataset: str, protocol: EvaluationProtocol, result: EvaluationResult) -> dict:
    """``{"dataset", "protocol", "models": {name: {metrics…, "cold": {…}, "params"}}, "split"}``."""
    wide, cold = result.wide("all"), result.wide("cold")
    ranking = _metric_names(protocol.ks, RANKING_METRICS)
    overall = ranking + _metric_names(protocol.ks, BEYOND_ACCURACY) + [c for c in wide.columns if str(c).startswith("ild@")]
    models = {}
    for name in wide.index:
        entry = {m: _num(wide.at[name, m]) if m in wide.columns else None for m in overall}
        has_cold = name in cold.index
        entry["cold"] = {m: _num(cold.at[name, m]) if has_cold and m in cold.columns else None for m in ranking}
        entry["params"] = _plain(result.params.get(name, {}))
        models[str(name)] = entry
    cold_users = cold_user_entries(result, ranking)

    proto = {
        "name": protocol.name(),
        "method": protocol.method,
        "valid_fraction": protocol.valid_fraction,
        "test_fraction": protocol.test_fraction,
        "seed": protocol.seed,
        "ks": list(protocol.ks),
        "cold_item_max_train": protocol.cold_item_max_train,
        "ranking": "full ranking over all items; the user's train (+valid) items excluded",
        "tuning": f"hyper-parameters by {TUNING_METRIC} on validation (defaults without one); "
                  "models fitted on train only, reported on test",
        "tuning_max_cells": protocol.tuning_max_cells,
        "test_max_cells": protocol.test_max_cells,
    }
    for role, (scored, of) in result.scored_users.items():
        if scored < of:  # above the budget: a seeded sample of the validation / test users
            proto[f"{role}_users"] = {"scored": scored, "of": of, "sample": "seeded, users × items above the budget"}
    if result.skipped:
        proto["skipped"] = dict(result.skipped)

    def first(frame, col):
        return int(frame[col].dropna().iloc[0]) if col in frame.columns and frame[col].notna().any() else 0

    split = {
        **result.counts.as_dict(),
        "n_descriptions_removed": int(result.n_descriptions_removed),
        "n_test_users": first(wide, "n_users"),
        "n_cold_test_users": first(cold, "n_users"),
        "n_cold_items": first(cold, "n_items"),
    }
    report = {"dataset": dataset, "protocol": proto, "models": models, "split": split}
    if len(result.stages):  # where the evaluation spent its time and memory (profiling.LapClock)
        report["stages"] = _records(result.stages)
    if len(result.cold_user_tuning):  # (half-life, p) on validation: cold users' NDCG, and the main users' for each c's p
        report["short_history_tuning"] = _records(result.cold_user_tuning)
    if headline_ratios(report):
        report["ratios"] = headline_ratios(report)
    if cold_users:
        report["cold_users"] = cold_users
        report["cold_user_ratios"] = cold_user_ratios(cold_users)
    onboarding = cold_user_entries(result, ranking, prefix=ONBOARDING_PREFIX)
    if onboarding:
        report["onboarding"] = onboarding
        report["onboarding_ratios"] = cold_user_ratios(onboarding, ONBOARDING_BASELINES)
    return report


def cold_user_entries(result: EvaluationResult, metrics: list[str], prefix: str = COLD_USER_PREFIX) -> dict[str, dict[str, dict]]:
    """``{model: {n: {metric: value, "n_users": …}}}`` of the cold-user (or onboarding) slices; only the ``n`` a model ran at."""
    cold_users: dict[str, dict[str, dict]] = {}
    for slice_ in sorted(s for s in result.metrics["slice"].unique() if str(s).startswith(prefix)):
        frame = result.wide(slice_)
        n = slice_[len(prefix):]
        for name in frame.index:
            entry = {m: _num(frame.at[name, m]) for m in metrics if m in frame.columns}
            entry["n_users"] = int(frame.at[name, "n_users"]) if "n_users" in frame.columns else 0
            cold_users.setdefault(str(name), {})[n] = entry
    return cold_users


def cold_user_ratios(cold_users: dict, baselines: tuple[str, ...] = COLD_USER_BASELINES) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{"hybrid/pop": {n: {metric: ratio}}, "hybrid/ease": …}`` for the COLD_USER_METRICS, at each ``n``
    where both models ran (so never EASE at n = 0); None where the baseline scored 0 or a value is missing."""
    hybrid = cold_users.get("hybrid", {})
    ratios: dict[str, dict[str, dict[str, float | None]]] = {}
    for base in baselines:
        for n, entry in cold_users.get(base, {}).items():
            if n not in hybrid:
                continue
            ratios.setdefault(f"hybrid/{base}", {})[n] = {
                metric: hybrid[n][metric] / entry[metric]
                if hybrid[n].get(metric) is not None and entry.get(metric) else None
                for _, metric in COLD_USER_METRICS
            }
    return ratios


def format_table(result: EvaluationResult) -> str:
    """Models as rows, best NDCG@10 first; '-' where a metric was not computed."""
    frames = {"all": result.wide("all"), "cold": result.wide("cold")}

    def value(name, slice_, metric):
        f = frames[slice_]
        return float(f.at[name, metric]) if name in f.index and metric in f.columns else float("nan")

    return _render(list(frames["all"].index), value)


def format_report(report: dict) -> str:
    """The same table from an ``eval_json`` report, headed by dataset, protocol and split."""
    models = report["models"]

    def value(name, slice_, metric):
        entry = models[name] if slice_ == "all" else models[name].get("cold", {})
        v = entry.get(metric)
        return float("nan") if v is None else float(v)

    proto, split = report["protocol"], report["split"]
    head = [
        f"dataset {report['dataset']}: {proto['name']}",
        f"{split.get('n_test_users', 0)} test users ({split.get('n_cold_test_users', 0)} with cold test items), "
        f"{split.get('n_train', 0)} train / {split.get('n_valid', 0)} valid / {split.get('n_test', 0)} test interactions; "
        f"{split.get('n_descriptions_removed', 0)} descriptions of held-out pairs removed",
    ]
    if proto.get("skipped"):
        head.append("skipped: " + "; ".join(f"{k} ({v})" for k, v in proto["skipped"].items()))
    lines = head + ["", _render(list(models), value)]
    ratios = headline_ratios(report)
    if ratios:
        lines += ["", "NDCG@10 " + ", ".join(f"{k}: {v:.3f}" for k, v in ratios.items())]
    if report.get("cold_users"):
        lines += ["", format_cold_users(report["cold_users"])]
    if report.get("onboarding"):
        lines += ["", format_cold_users(report["onboarding"], ONBOARDING_BASELINES, ONBOARDING_TITLE)]
    return "\n".join(lines)


# The hybrid against its fair comparators: EASE (the best baseline) and its own ablations
# (evaluation/ablation.py: the transformer swapped for words as ids, or the text signal off).
HEADLINE_RATIOS = ("ease", "hybrid@lexical", "hybrid-notext", "hybrid@finetuned")


def headline_ratios(report: dict, metric: str = "ndcg@10") -> dict[str, float]:
    """``{"hybrid/ease": …, "hybrid/hybrid@lexical": …, …}`` of ``metric`` where both were measured."""
    models = report.get("models", {})
    h = models.get("hybrid", {}).get(metric)
    out = {}
    for other in HEADLINE_RATIOS:
        v = models.get(other, {}).get(metric)
        if h is not None and v:
            out[f"hybrid/{other}"] = float(h) / float(v)
    return out


COLD_USERS_TITLE = ("cold users ({n_users} users left out of training; n = interactions revealed, plus their own words; "
                    "no EASE at n=0: with no history its list is catalogue order)")
ONBOARDING_TITLE = ("onboarding ({n_users} of the same users also say what they like: their words about 3 consumed items, "
                    "item ids hidden; n = interactions revealed; text = encoder alone, lexical = BM25 alone)")


def format_cold_users(cold_users: dict, baselines: tuple[str, ...] = COLD_USER_BASELINES, title: str = COLD_USERS_TITLE) -> str:
    """Cold-user protocol: one row per model, NDCG@10 / Recall@20 per revealed n, then hybrid/Pop and hybrid/EASE."""
    names = [m for m in ("hybrid", *baselines) if m in cold_users] + sorted(set(cold_users) - {"hybrid", *baselines})
    ratios = cold_user_ratios(cold_users, baselines)
    reveal = sorted({n for m in cold_users.values() for n in m}, key=int)
    header = ["model"] + [f"n={n} {h}" for n in reveal for h, _ in COLD_USER_METRICS]
    body = []
    for name in names + list(ratios):
        entries, fmt = (ratios[name], "{:.2f}x") if name in ratios else (cold_users[name], "{:.4f}")
        cells = [entries.get(n, {}).get(metric) for n in reveal for _, metric in COLD_USER_METRICS]
        body.append([name] + ["-" if v is None else fmt.format(v) for v in cells])
    users = next(iter(cold_users.values()))
    n_users = max((entry.get("n_users", 0) for entry in users.values()), default=0)
    widths = [max(len(r[j]) for r in [header] + body) for j in range(len(header))]
    lines = [title.format(n_users=n_users)]
    lines += ["  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
              for r in [header] + body]
    lines.insert(2, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _render(names: list, value) -> str:
    key = [value(n, "all", "ndcg@10") for n in names]
    order = sorted(range(len(names)), key=lambda i: (-key[i] if not math.isnan(key[i]) else math.inf, i))
    header = ["model"] + [h for h, _, _ in TABLE_COLUMNS]
    body = []
    for i in order:
        cells = [value(names[i], s, m) for _, s, m in TABLE_COLUMNS]
        body.append([str(names[i])] + ["-" if math.isnan(c) else f"{c:.4f}" for c in cells])
    widths = [max(len(r[j]) for r in [header] + body) for j in range(len(header))]
    lines = ["  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
             for r in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
