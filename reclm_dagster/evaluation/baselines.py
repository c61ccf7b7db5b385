"""Baseline CF models run beside reclm's models: a registry, validation tuning, test scoring.

Protocol. Every candidate setting of a baseline's grid is fitted on **train** and
scored on **validation** (full ranking, train items excluded). The best setting
by the tuning metric (first one on ties) is the model reported: it stays fitted
on train only, exactly as the hybrid is (no refit on train+valid), and is scored
on **test** with the train+valid history excluded. Without a validation split
(e.g. the 80/20 reference protocol) each baseline uses its documented defaults.

Memory. One fitted model is alive at a time (EASE holds a dense n_items²
array): test is scored as soon as a candidate leads on validation, so the
leader never has to be kept while the next candidate is fitted. Item-kNN's k grid and RP3beta's
β grid are the exception: their sparse n × k models are fitted together in one pass over the
co-occurrence product they share (``Baseline.fit_grid``), each the model its own fit would give. Above the dense cap
(``ease_max_items``, default measured from free memory) 'ease' is the sparse restricted EASE of
models/large_catalogue.py, reported with ``sparse: True`` in its params.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.evaluation.protocol import evaluate, metric_rows
from reclm_dagster.models import EASE, ItemKNN, Popularity, RP3beta
from reclm_dagster.models.ease import ease_order
from reclm_dagster.models.large_catalogue import SparseCFConfig, SparseItemCF, dense_ease_fits

log = logging.getLogger(__name__)

# Dense EASE's item cap: None = measured from free memory (models/large_catalogue.dense_ease_fits,
# RECLM_DENSE_MAX_ITEMS overrides); above it 'ease' is the sparse restricted EASE, never skipped.
EASE_MAX_ITEMS: int | None = None


@dataclass(frozen=True)
class Baseline:
    make: Callable[..., object]  # make(**params) -> unfitted model with fit(X) / score(rows, X)
    grid: dict[str, tuple]  # values tried on validation
    defaults: dict[str, object]  # used as-is without a validation split; grid values override
    # "grid": every setting; "line": one ordered parameter, walked from its default towards the
    # better neighbour while validation improves — the grid's choice whenever validation is
    # unimodal along it (EASE's λ: each fit is an n_items² inversion, 2-3 are spared).
    search: str = "grid"
    # refit(model, **params): a fitted candidate at another setting, re-using the work that does not
    # depend on it (the sparse EASE's pruned gram across λ); None: every candidate is fitted anew
    refit: Callable[..., object] | None = None
    # fit_grid(X, settings): every setting of a grid fitted in one pass over the work they share, the
    # same models as one fit each (None when this grid cannot share it); None: one fit per setting
    fit_grid: Callable[[sp.csr_matrix, list[dict]], list | None] | None = None


def _one_pass(cls, varying: str):
    """A ``fit_grid`` for a model whose ``cls.fit_grid(X, values, **fixed)`` shares work across ``varying``."""
    def fit_grid(X: sp.csr_matrix, settings: list[dict]) -> list | None:
        fixed = [{k: v for k, v in s.items() if k != varying} for s in settings]
        if any(f != fixed[0] for f in fixed):  # another knob varies too: one fit per setting
            return None
        cast = int if varying == "k_neighbors" else float
        return cls.fit_grid(X, [cast(s[varying]) for s in settings],
                            **{k: int(v) if k == "k_neighbors" else v for k, v in fixed[0].items()})
    return fit_grid


REGISTRY: dict[str, Baseline] = {
    "pop": Baseline(lambda: Popularity(), {}, {}),
    # cosine, no shrink; defaults as in benchmarks/reference_baselines.py
    "itemknn": Baseline(
        lambda k_neighbors: ItemKNN(k_neighbors=int(k_neighbors)),
        {"k_neighbors": (50, 100, 200, 400)},
        {"k_neighbors": 100},
        fit_grid=_one_pass(ItemKNN, "k_neighbors"),  # one co-occurrence product, ranked once, cut at each k
    ),
    "rp3beta": Baseline(
        lambda alpha, beta, k_neighbors: RP3beta(alpha=alpha, beta=beta, k_neighbors=int(k_neighbors)),
        {"beta": (0.0, 0.2, 0.35, 0.5)},
        {"alpha": 1.0, "beta": 0.5, "k_neighbors": 100},
        fit_grid=_one_pass(RP3beta, "beta"),  # one random-walk product for every β
    ),
    "ease": Baseline(lambda l2: EASE(l2=float(l2)), {"l2": (50.0, 100.0, 200.0, 500.0, 1000.0)}, {"l2": 200.0}, "line"),
    # 'ease' above the dense cap: each item's EASE solved on its 100 strongest co-consumed items,
    # never an n_items² array (0.98-1.00 of dense EASE's NDCG@10: benchmarks/large_catalogue.py)
    "ease_sparse": Baseline(lambda l2, keep_gram=False: SparseItemCF(SparseCFConfig(l2=float(l2)), keep_gram=keep_gram),
                            {"l2": (50.0, 100.0, 200.0, 500.0)}, {"l2": 200.0}, "line",
                            refit=lambda model, l2: model.with_l2(l2)),
}
BASELINES = tuple(n for n in REGISTRY if n != "ease_sparse")  # reported as 'ease'


def dense_ease_allowed(order: int, ease_max_items: int | None = EASE_MAX_ITEMS) -> bool:
    """A given cap decides; without one, whether EASE's dense order² arrays fit in free memory
    (``order``: items, or the rows when there are fewer: ``models.ease.ease_order``)."""
    return order <= ease_max_items if ease_max_items is not None else dense_ease_fits(order)


@dataclass
class BaselineResult:
    name: str
    params: dict[str, object]  # the setting reported on test
    metrics: dict | None  # evaluate() on test; None when skipped
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per candidate (empty: defaults)
    skipped: str | None = None  # why the model was not run


def candidates(name: str, grid: dict[str, tuple] | None = None) -> list[dict[str, object]]:
    """Every setting of ``grid`` (default: the registry's) laid over the defaults."""
    b = REGISTRY[name]
    grid = b.grid if grid is None else grid
    return [{**b.defaults, **dict(zip(grid, values))} for values in itertools.product(*grid.values())]


def fit_baseline(name: str, X_train: sp.spmatrix, params: dict[str, object] | None = None):
    """A registry model fitted on ``X_train`` with ``params`` (default: its defaults)."""
    b = REGISTRY[name]
    return b.make(**{**b.defaults, **(params or {})}).fit(sp.csr_matrix(X_train))


def _metric_k(metric: str) -> int:
    try:
        return int(metric.split("@")[1])
    except (IndexError, ValueError):
        raise ValueError(f"tuning metric must look like 'ndcg@10', got {metric!r}") from None


def line_order(values: tuple, start: int, value_of: Callable[[int], float]) -> list[int]:
    """Indices of an ordered grid visited by a line search from ``start``: a step to the better
    neighbour (left first: ties go to the earlier setting, as in the grid), then on in that
    direction while validation strictly improves. ``value_of(i)`` fits and scores setting i."""
    seen = {start: value_of(start)}
    best = start
    for step in (-1, 1):
        i = best + step
        if 0 <= i < len(values):
            seen[i] = value_of(i)
            if seen[i] > seen[best]:
                best = i
                while 0 <= (i := i + step) < len(values):
                    seen[i] = value_of(i)
                    if not seen[i] > seen[best]:
                        break
                    best = i
                break
    return list(seen)


def _search(name, X_train, X_valid, grid, metric, item_popularity, on_best=None):
    """Fit each candidate on train, score validation; call ``on_best(model, params)`` on each new leader.

    The registry's ``search`` says which candidates: all (``grid``), or a line search along a
    single ordered parameter (``line``, see ``line_order``) when ``grid`` is the registry's. A grid
    fitted in one pass (``fit_grid``) gives each setting's ``fit_s`` an equal share of its time."""
    k = _metric_k(metric)
    b = REGISTRY[name]
    grid = b.grid if grid is None else grid
    rows, best, best_value = [], None, -np.inf
    settings = candidates(name, grid)
    first = None  # with a ``refit``: the first fit, whose setting-free work the others re-use
    line = b.search == "line" and len(grid) == 1 and grid == b.grid  # one ordered parameter
    fitted, grid_s = None, 0.0  # with a ``fit_grid``: every candidate from one pass, its time shared
    if not line and b.fit_grid is not None and len(settings) > 1:
        start = time.perf_counter()
        fitted = b.fit_grid(sp.csr_matrix(X_train), settings)
        grid_s = (time.perf_counter() - start) / len(settings)

    def value_of(i: int) -> float:
        nonlocal best, best_value, first
        params = settings[i]
        start = time.perf_counter()
        if fitted is not None:
            model, fitted[i] = fitted[i], None  # dropped after scoring, like a fit of its own
        elif b.refit is None:
            model = fit_baseline(name, X_train, params)
        elif first is None:
            model = first = b.make(**{**b.defaults, **params}, keep_gram=True).fit(sp.csr_matrix(X_train))
        else:
            model = b.refit(first, **{**b.defaults, **params})
        fit_s = time.perf_counter() - start + grid_s
        res = evaluate(lambda r, m=model: m.score(r, X_train), X_train, X_valid, X_train, ks=(k,),
                       item_popularity=item_popularity)
        value = float(res[metric])
        rows.append({**params, metric: value, "fit_s": round(fit_s, 2), "_i": i})
        if value > best_value or (value == best_value and best is not None and i < settings.index(best)):
            best, best_value = params, value  # the earliest setting wins ties, whatever the visiting order
            if on_best is not None:
                on_best(model, params)
        del model  # an EASE candidate is an n_items² array: freed (refcount) before the next fit
        return value if np.isfinite(value) else -np.inf

    if line:
        [(param, values)] = grid.items()
        start = values.index(b.defaults[param]) if b.defaults.get(param) in values else len(values) // 2
        line_order(values, start, value_of)
    else:
        for i in range(len(settings)):
            value_of(i)
    table = pd.DataFrame(rows).sort_values("_i", kind="stable").drop(columns="_i").reset_index(drop=True)
    if best is None:  # every candidate scored NaN (no validation user): fall back to the first
        best = settings[0]
    table["chosen"] = [all(r[p] == v for p, v in best.items()) for r in table.to_dict("records")]
    return dict(best), table


def tune_on_validation(
    name: str,
    X_train: sp.spmatrix,
    X_valid: sp.spmatrix,
    grid: dict[str, tuple] | None = None,
    metric: str = "ndcg@10",
    item_popularity: np.ndarray | None = None,
) -> tuple[dict[str, object], pd.DataFrame]:
    """``(best_params, table)``: each candidate fitted on train, ranked on validation (train excluded).

    ``table`` has one row per candidate: its parameters, the validation
    ``metric``, the fit time and whether it was chosen. Test is never touched.
    """
    return _search(name, X_train, X_valid, grid, metric, item_popularity)


def _dense_or_sparse(name: str, X_train: sp.spmatrix, ease_max_items: int | None) -> tuple[str, bool]:
    """``(registry name to fit, sparse?)``: 'ease' above the dense cap is fitted as 'ease_sparse'."""
    if name == "ease" and not dense_ease_allowed(ease_order(*X_train.shape), ease_max_items):
        log.warning("ease: %d users × %d items is above the dense cap (%s): the sparse restricted EASE instead",
                    *X_train.shape, ease_max_items if ease_max_items is not None else "free memory")
        return "ease_sparse", True
    return name, False


def choose_on_validation(
    name: str,
    X_train: sp.spmatrix,
    X_valid: sp.spmatrix,
    item_popularity: np.ndarray | None = None,
    metric: str = "ndcg@10",
    ease_max_items: int | None = EASE_MAX_ITEMS,
) -> tuple[dict[str, object], pd.DataFrame]:
    """``(params, table)``: a baseline's setting chosen on validation alone (test never scored).

    What ``hybrid_selection`` stores for the EASE baseline (its λ is also the hybrid's), so an
    evaluation of the same split fits the chosen setting once instead of the grid again.
    """
    X_train, X_valid = sp.csr_matrix(X_train), sp.csr_matrix(X_valid)
    fit_name, sparse = _dense_or_sparse(name, X_train, ease_max_items)
    if item_popularity is None:
        item_popularity = np.asarray((X_train > 0).sum(axis=0)).ravel()
    if X_valid.nnz and REGISTRY[fit_name].grid:
        params, table = _search(fit_name, X_train, X_valid, REGISTRY[fit_name].grid, metric, item_popularity)
    else:
        params, table = dict(REGISTRY[fit_name].defaults), pd.DataFrame()
    return ({**params, "sparse": True} if sparse else params), table


def run_baseline(
    name: str,
    X_train: sp.spmatrix,
    X_valid: sp.spmatrix,
    X_test: sp.spmatrix,
    ks=(5, 10, 20),
    cold_items: np.ndarray | None = None,
    item_popularity: np.ndarray | None = None,
    grid: dict[str, tuple] | None = None,
    metric: str = "ndcg@10",
    ease_max_items: int | None = EASE_MAX_ITEMS,
    progress: bool = False,
    chosen: tuple[dict, pd.DataFrame] | None = None,
    X_tune: sp.spmatrix | None = None,
) -> BaselineResult:
    """Tune on validation (or use the defaults without one), then score test.

    Test ranks every item outside the user's train+valid history; the model is
    the one fitted on train. ``chosen``: ``(params, table)`` of ``choose_on_validation`` on this
    very split (the stored selection's): fitted once with those params, no grid. ``X_tune``: the
    validation rows the grid is judged on (``holdout.tuning_rows``; default all of ``X_valid``).
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown baseline {name!r}; known: {', '.join(REGISTRY)}")
    X_train, X_valid, X_test = (sp.csr_matrix(m) for m in (X_train, X_valid, X_test))
    reported = name
    name, sparse = _dense_or_sparse(name, X_train, ease_max_items)
    history = (X_train + X_valid).tocsr()
    if item_popularity is None:
        item_popularity = np.asarray((X_train > 0).sum(axis=0)).ravel()

    def score_test(model) -> dict:
        return evaluate(lambda r: model.score(r, history), X_train, X_test, history, ks=ks,
                        cold_items=cold_items, item_popularity=item_popularity, progress=progress)

    grid = REGISTRY[name].grid if grid is None else grid
    if chosen is not None and bool(chosen[0].get("sparse", False)) == sparse:
        params, table = {k: v for k, v in chosen[0].items() if k != "sparse"}, chosen[1]
        model = fit_baseline(name, X_train, params)
        metrics = score_test(model)
        del model
    elif X_valid.nnz and grid:
        leader: dict = {}
        params, table = _search(name, X_train, X_valid if X_tune is None else sp.csr_matrix(X_tune), grid, metric,
                                item_popularity, on_best=lambda model, p: leader.update(metrics=score_test(model)))
        metrics = leader.get("metrics")
        if metrics is None:  # no candidate led (all NaN): score the fallback
            metrics = score_test(fit_baseline(name, X_train, params))
    else:
        params, table = dict(REGISTRY[name].defaults), pd.DataFrame()
        model = fit_baseline(name, X_train, params)
        metrics = score_test(model)
        del model
    return BaselineResult(reported, {**params, "sparse": True} if sparse else params, metrics, table)


def run_baselines(names, X_train, X_valid, X_test, protocol, popularity, cold, ease_max_items, progress,
                  metric: str = "ndcg@10", chosen: dict[str, tuple[dict, pd.DataFrame]] | None = None, X_tune=None):
    """Metric rows, params, validation tables and skip reasons of each baseline.

    ``chosen``: ``{name: (params, table)}`` already chosen on this split's validation rows."""
    rows, params, tables, skipped = [], {}, {}, {}
    for name in names:
        res = run_baseline(name, X_train, X_valid, X_test, ks=protocol.ks, cold_items=cold,
                           item_popularity=popularity, metric=metric,
                           ease_max_items=ease_max_items, progress=progress, chosen=(chosen or {}).get(name),
                           X_tune=X_tune)
        params[name] = res.params
        if len(res.tuning):
            tables[name] = res.tuning
        if res.skipped:
            skipped[name] = res.skipped
        else:
            rows += metric_rows(name, res.metrics)
    return rows, params, tables, skipped


