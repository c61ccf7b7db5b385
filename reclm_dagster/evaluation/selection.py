"""Model selection: the hybrid's whole setting and its re-ranker, chosen on the validation split only.

``select_on_split`` is the one place the choice is made: side weight g and fusion weights
(``tuning.fit_tuned_hybrid``), the short-history popularity prior and its half-life (cold
users drawn from the train rows, half-life judged by the main validation users), then the
LightGBM re-ranker (kept only on a paired win over validation users it never trained on).
The split's test pairs reach none of it.

The ``hybrid_selection`` asset runs it on the configured protocol's split of the whole
dataset and stores the result (``selection_tables``); the production lists read it back
(``training.chosen_hybrid_config``, ``training.stored_reranker``), and so does the offline
evaluation (``read_selection``) — but only when the stored ``fingerprint`` says it was chosen on
exactly the evaluation's split, tables, encoder and base setting. Anything else (another seed
or method, new rows, another encoder) and the evaluation re-selects on its own train and
validation rows: a choice made on another split may have seen this split's test pairs.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import pandas as pd

from reclm_dagster import store
from reclm_dagster.evaluation.baselines import BASELINES, EASE_MAX_ITEMS, choose_on_validation
from reclm_dagster.evaluation.cold_users import cold_user_evaluation
from reclm_dagster.evaluation.holdout import EvaluationProtocol, SplitData, prepare_split
from reclm_dagster.evaluation.tuning import HALF_LIFE_GRID, TUNING_METRIC, attach_reranker, fit_tuned_hybrid, validation_ndcg
from reclm_dagster.models.hybrid import HybridConfig
from reclm_dagster.models.reranker import LearnedReranker
from reclm_dagster.training import CHOSEN_TABLE, RERANKER_TABLE, DatasetTables, fit_hybrid


FUSION_WEIGHTS_TABLE = "fusion_weights"
FUSION_TUNING_TABLE = "fusion_tuning"
SELECTION_TABLES = (CHOSEN_TABLE, RERANKER_TABLE, FUSION_WEIGHTS_TABLE, FUSION_TUNING_TABLE)
# The protocol knobs the choice depends on (ks and the cold-item threshold only change reports).
SELECTION_KNOBS = ("method", "valid_fraction", "test_fraction", "seed", "tune_weights", "cold_users",
                   "cold_user_fraction", "rerank", "tuning_max_cells")


@dataclass
class HybridSelection:
    config: HybridConfig  # the whole chosen setting: g, λ, fusion weights, short-history prior
    reranker: LearnedReranker | None = None  # kept only if it won on held-out validation users
    reranker_text: str | None = None  # the same, as stored (LightGBM model text; read back by ``read_selection``)
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)  # fusion grid: weights + validation NDCG@10
    cold_user_tuning: pd.DataFrame = field(default_factory=pd.DataFrame)  # (half-life, p) -> validation NDCG@10
    reranker_report: dict = field(default_factory=dict)  # the keep-or-drop decision's numbers
    tuned: bool = False  # False: the configured weights (no validation rows, or tune_weights off)
    fingerprint: str = ""  # split + tables + encoder + base setting it was chosen on
    protocol: dict = field(default_factory=dict)  # SELECTION_KNOBS as chosen under
    encoder_version: str = ""
    # Baselines whose setting the choice needed, chosen on the same validation rows:
    # {name: (params, validation table)} (EASE: its λ is the hybrid's); the evaluation fits them once.
    baselines: dict[str, tuple[dict, pd.DataFrame]] = field(default_factory=dict)

    @property
    def chosen_by(self) -> str:
        return "validation" if self.tuned else "config"


def _hash_frame(df: pd.DataFrame) -> str:
    if not len(df):
        return "empty"
    hashed = pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(map(str, df.columns)).encode()).hexdigest()


def selection_fingerprint(data: SplitData, protocol: EvaluationProtocol, base: HybridConfig) -> str:
    """What a choice depends on: the split, the words it may read, the catalogue, the encoder, the knobs."""
    t = data.tables
    parts = [
        json.dumps({k: getattr(protocol, k) for k in SELECTION_KNOBS}, sort_keys=True),
        json.dumps(asdict(base), sort_keys=True),
        t.encoder_version,
        _hash_frame(data.split[["user_id", "item_id", "split"]]),
        _hash_frame(t.descriptions[data.mask]),
        _hash_frame(t.items[["item_id"]]),
        _hash_frame(t.facts),
        data.cold_tables.encoder_version,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def select_on_split(data: SplitData, protocol: EvaluationProtocol, config: HybridConfig, ease_params: dict,
                    cold_users: bool = True, progress: bool = False, laps: Callable[[str], None] = lambda _: None,
                    report_cold_users: bool = True):
    """``(model, selection, cold-user metric rows)``: the hybrid fitted on train with the setting
    validation prefers. The cold-user rows are test-cold-user metrics of the same call (reported by
    the evaluation; the choice was made before they were scored; ``report_cold_users=False``: none)."""
    if config.cf_model == "ease" and "l2" in ease_params:  # the hybrid's EASE reuses the λ validation chose for EASE
        config = replace(config, ease_l2=float(ease_params["l2"]))
    tuned = protocol.tune_weights and data.X_valid.nnz > 0
    model, config, tuning = fit_tuned_hybrid(data.tables, data.train, data.mask, config, data.X_tune, data.popularity,
                                             tune=tuned, progress=progress)
    laps("hybrid fit and tuning")
    cold_rows, cold_tuning = [], pd.DataFrame()
    if protocol.cold_users and cold_users:
        # Cold users are left out of a second fit; it also tunes the short-history popularity weight.
        # Its users come from the main split's train rows and it may not see the main split's held-out
        # words, so the popularity prior it tunes (and the hybrid reported on test uses) never saw test data.
        # Its p is judged for each fade half-life on the cold users; the main validation users, whose
        # long histories decide how much of p is left, then pick the half-life (tests never seen).
        half_life_scores: dict[float, float] = {}

        def choose_half_life(p_for: dict[float, float]) -> float:
            options = list(p_for.items())
            scores = validation_ndcg(model, data.X_train, data.X_tune, data.popularity, [
                replace(config, short_history_popularity=p, short_history_half_life=c) for c, p in options])
            half_life_scores.update({c: s for (c, _), s in zip(options, scores)})
            return options[int(np.argmax(scores))][0]

        cold_result = cold_user_evaluation(data.cold_tables, config, config.ease_l2, protocol.cold_user_protocol(data.X_train.shape[1]),
                                           interactions=data.train, description_mask=data.mask, progress=progress,
                                           half_lives=HALF_LIFE_GRID if tuned else None,
                                           choose_half_life=choose_half_life if tuned else None,
                                           score_test_users=report_cold_users)
        cold_rows, cold_tuning = list(cold_result.metrics.itertuples(index=False, name=None)), cold_result.tuning
        if half_life_scores:
            cold_tuning = cold_tuning.assign(main_valid_ndcg_at_10=cold_tuning["short_history_half_life"].map(
                half_life_scores).where(cold_tuning.groupby("short_history_half_life")["ndcg@10"].transform("max")
                                        == cold_tuning["ndcg@10"]))
        config = replace(config, short_history_popularity=cold_result.short_history_popularity,
                         short_history_half_life=cold_result.short_history_half_life)
        model.config = config
        gc.collect()
        laps("cold users")
    reranker_report = {}
    if tuned and protocol.rerank:
        reranker_report = attach_reranker(model, data.X_train, data.X_tune, data.popularity, seed=protocol.seed)
        laps("re-ranker")
    selection = HybridSelection(config=config, reranker=model.reranker_, tuning=tuning, cold_user_tuning=cold_tuning,
                                reranker_report=reranker_report, tuned=tuned,
                                protocol={k: getattr(protocol, k) for k in SELECTION_KNOBS},
                                encoder_version=data.tables.encoder_version)
    return model, selection, cold_rows


def select_hybrid(tables: DatasetTables, protocol: EvaluationProtocol, config: HybridConfig, dataset: str = "",
                  encoder_recipe: dict | None = None, ease_max_items: int = EASE_MAX_ITEMS,
                  progress: bool = False) -> HybridSelection:
    """The production choice (the ``hybrid_selection`` asset): ``select_on_split`` on the protocol's split of
    ``tables``, exactly as ``offline_evaluation`` would choose — EASE's λ from the EASE baseline's validation grid."""
    data = prepare_split(tables, protocol, dataset, encoder_recipe)
    baselines = {}
    if config.cf_model == "ease" and "ease" in BASELINES:  # validation only: test is never scored here
        baselines["ease"] = choose_on_validation("ease", data.X_train, data.X_tune, data.popularity, TUNING_METRIC,
                                                 ease_max_items)
    model, selection, _ = select_on_split(data, protocol, config, baselines.get("ease", ({}, None))[0],
                                          progress=progress, report_cold_users=False)
    del model
    gc.collect()
    selection.fingerprint = selection_fingerprint(data, protocol, config)
    selection.baselines = baselines
    return selection



def apply_selection(data: SplitData, protocol: EvaluationProtocol, selection: HybridSelection, cold_users: bool = True,
                    progress: bool = False, laps: Callable[[str], None] = lambda _: None):
    """``(model, cold-user metric rows)``: the hybrid refitted on train with a stored selection's setting
    (the fit reads no weight, prior or ranker: it equals the one ``select_on_split`` kept)."""
    config = selection.config
    model, _ = fit_hybrid(data.tables, data.train, description_mask=data.mask, config=config)
    model.reranker_ = selection.reranker or (LearnedReranker.from_model_string(selection.reranker_text, data.popularity)
                                             if selection.reranker_text else None)
    laps("hybrid fit (stored selection)")
    cold_rows = []
    if protocol.cold_users and cold_users:
        # The chosen prior only: the same fit and test scoring as when it was chosen.
        cold_result = cold_user_evaluation(data.cold_tables, config, config.ease_l2, protocol.cold_user_protocol(data.X_train.shape[1]),
                                           interactions=data.train, description_mask=data.mask, progress=progress,
                                           popularity_grid=(config.short_history_popularity,))
        cold_rows = list(cold_result.metrics.itertuples(index=False, name=None))
        gc.collect()
        laps("cold users")
    return model, cold_rows


def selection_tables(selection: HybridSelection) -> dict[str, pd.DataFrame]:
    """The stored selection: the lists (``training.chosen_hybrid_config``) and the evaluation read it."""
    config, chosen_by = selection.config, selection.chosen_by
    cold_tuning = selection.cold_user_tuning
    return {
        # The whole chosen setting (side weight g, λ, popularity for short histories…) and what it was chosen on.
        CHOSEN_TABLE: pd.DataFrame({
            "json": [json.dumps(asdict(config))], "chosen_by": [chosen_by], "fingerprint": [selection.fingerprint],
            "protocol": [json.dumps(selection.protocol, sort_keys=True)], "encoder_version": [selection.encoder_version],
            "reranker_report": [json.dumps(selection.reranker_report)],
            "cold_user_tuning": [cold_tuning.to_json(orient="records") if len(cold_tuning) else "[]"],
            # fit seconds left out: the stored choice is a function of the split alone
            "baselines": [json.dumps({name: {"params": params,
                                             "tuning": table.drop(columns="fit_s", errors="ignore").to_dict(orient="records")}
                                      for name, (params, table) in selection.baselines.items()})],
        }),
        # The learned re-ranker, only when validation preferred it to the plain fusion.
        RERANKER_TABLE: pd.DataFrame({"model": [text] if (text := stored_reranker_text(selection)) else []}, dtype=object),
        FUSION_WEIGHTS_TABLE: pd.DataFrame({"signal": list(config.weights), "weight": list(config.weights.values()),
                                            "chosen_by": chosen_by}),
        FUSION_TUNING_TABLE: selection.tuning if len(selection.tuning.columns)
        else pd.DataFrame(columns=[*config.weights, "ndcg@10"], dtype=float),
    }


def stored_reranker_text(selection: HybridSelection) -> str | None:
    return selection.reranker.to_model_string() if selection.reranker is not None else selection.reranker_text


def read_selection(con, schema: str) -> HybridSelection | None:
    """The stored selection (None: never selected, or stored by a reclm before ``hybrid_selection``)."""
    return selection_from_tables({t: store.read_df(con, schema, t) for t in SELECTION_TABLES if store.table_exists(con, schema, t)})


def selection_from_tables(tables: dict[str, pd.DataFrame]) -> HybridSelection | None:
    """The selection from its stored tables (``selection_tables``; as the IO manager loads them)."""
    if CHOSEN_TABLE not in tables or not len(tables[CHOSEN_TABLE]):
        return None
    row = tables[CHOSEN_TABLE].iloc[0]
    if "fingerprint" not in row.index:
        return None
    known = {f.name for f in fields(HybridConfig)}
    config = replace(HybridConfig(), **{k: v for k, v in json.loads(row["json"]).items() if k in known})
    ranker = tables.get(RERANKER_TABLE, pd.DataFrame())
    tuning = tables.get(FUSION_TUNING_TABLE, pd.DataFrame())
    return HybridSelection(
        config=config,
        reranker_text=str(ranker["model"].iloc[0]) if len(ranker) else None,
        tuning=tuning, cold_user_tuning=pd.DataFrame(json.loads(row["cold_user_tuning"])),
        reranker_report=json.loads(row["reranker_report"]), tuned=row["chosen_by"] == "validation",
        fingerprint=str(row["fingerprint"]), protocol=json.loads(row["protocol"]), encoder_version=str(row["encoder_version"]),
        baselines={name: (b["params"], pd.DataFrame(b["tuning"]))
                   for name, b in json.loads(row.get("baselines", None) or "{}").items()},
    )
