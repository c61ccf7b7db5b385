"""One protocol split of a dataset and what every fit on it may see.

``EvaluationProtocol`` (how to split), the description masks that keep a user's words about
their held-out pairs (and, temporally, everything after their cut) out of every fit, and
``prepare_split``: the split, the mask and the matrices that model selection
(``evaluation/selection.py``) and the offline evaluation (``evaluation/offline.py``) share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster.evaluation.ablation import finetune_pairs, finetuned_encoder
from reclm_dagster.evaluation.cold_users import ColdUserProtocol
from reclm_dagster.evaluation.split import SplitCounts, split_interactions, time_key
from reclm_dagster.models.matrix import InteractionMatrix
from reclm_dagster.training import DatasetTables

METHODS = ("random", "temporal")
# What a fine-tuned encoder's recipe may set when the evaluation retrains it (encoders/finetune.finetune).
RECIPE_KNOBS = ("steps", "batch_size", "lr", "warmup_fraction", "temperature", "max_grad_norm", "weight_decay",
                "max_length", "seed")
# Choosing a setting scores every validation user against every item and keeps one float32
# (users × items) array per signal. Above this many cells the choice is made on a seeded sample
# of the validation users (and of the cold users): 2**27 cells = 512 MB per signal. Last.fm
# (1.9k × 17.6k) and MovieLens' small sets are far below it; a 100k-item catalogue samples ~1.3k.
TUNING_MAX_CELLS = 2**27
# The sample never shrinks below this many users (a grid judged on a few dozen is noise).
TUNING_MIN_USERS = 500
# Test scoring streams users in batches (no users × items array is kept), but its time grows with
# both: above this many cells a seeded sample of the test users is scored. 2**30: every user of
# Last.fm (1.9k × 17.6k = 33M cells) and ml-latest-small; ~18k of MovieLens-25M's 162k; ~10.7k at 100k items.
TEST_MAX_CELLS = 2**30


# The user samples as MLflow params: "all" below the budget, "<scored> of <users>" above it.
# Numbers from different samples are not comparable, so the regression gate matches on them too.
SAMPLE_PARAMS = ("tuning_users", "test_users")


def user_sample_params(scored_users: dict[str, tuple[int, int]]) -> dict[str, str]:
    """``{"tuning_users", "test_users"}`` from ``EvaluationResult.scored_users`` ({role: (scored, of)})."""
    out = {}
    for role in ("tuning", "test"):
        scored, of = scored_users.get(role, (0, 0))
        out[f"{role}_users"] = "all" if scored >= of else f"{scored} of {of}"
    return out


@dataclass
class EvaluationProtocol:
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    method: str = "random"  # 'random' (seeded per-user shuffle) or 'temporal' (latest held out)
    ks: tuple[int, ...] = (5, 10, 20)
    cold_item_max_train: int = 2
    tune_weights: bool = True
    cold_users: bool = True  # also run the cold-user protocol (evaluation/cold_users.py)
    cold_user_fraction: float = 0.1
    rerank: bool = True  # train the learned re-ranker on validation (kept only if it wins there)
    mmr_lambda: float | None = 0.7  # also report KG-aware MMR diversity re-ranking (None: skip)
    ablations: bool = True  # also report hybrid@lexical and hybrid-notext (evaluation/ablation.py)
    finetune_steps: int = 0  # > 0: also hybrid@finetuned, the encoder fine-tuned on this split's train rows
    tuning_max_cells: int = TUNING_MAX_CELLS  # validation users × items scored per signal when choosing (sampled above)
    test_max_cells: int = TEST_MAX_CELLS  # test users × items scored per model (a seeded user sample above)

    @classmethod
    def from_config(cls, cfg: dict) -> "EvaluationProtocol":
        e = cfg.get("evaluation", {})
        return cls(
            valid_fraction=float(e.get("valid_fraction", 0.1)),
            test_fraction=float(e.get("test_fraction", 0.1)),
            seed=int(e.get("seed", 0)),
            method=str(e.get("method", "random")),
            ks=tuple(int(k) for k in e.get("ks", (5, 10, 20))),
            cold_item_max_train=int(e.get("cold_item_max_train", 2)),
            tune_weights=bool(e.get("tune_weights", True)),
            cold_users=bool(e.get("cold_users", True)),
            cold_user_fraction=float(e.get("cold_user_fraction", 0.1)),
            rerank=bool(e.get("rerank", True)),
            mmr_lambda=None if e.get("mmr_lambda", 0.7) is None else float(e.get("mmr_lambda", 0.7)),
            ablations=bool(e.get("ablations", True)),
            finetune_steps=int(e.get("finetune_steps", 0)),
            tuning_max_cells=int(e.get("tuning_max_cells", TUNING_MAX_CELLS)),
            test_max_cells=int(e.get("test_max_cells", TEST_MAX_CELLS)),
        )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"evaluation method must be one of {METHODS}, got {self.method!r}")
        for knob in ("tuning_max_cells", "test_max_cells"):
            if getattr(self, knob) < 1:
                raise ValueError(f"evaluation {knob} must be a positive cell count, got {getattr(self, knob)!r}")

    def tuning_users(self, n_items: int) -> int:
        """How many validation users (and cold users per role) a choice may score against ``n_items`` items."""
        return max(TUNING_MIN_USERS, self.tuning_max_cells // max(int(n_items), 1))

    def cold_user_protocol(self, n_items: int | None = None) -> ColdUserProtocol:
        return ColdUserProtocol(user_fraction=self.cold_user_fraction, seed=self.seed,
                                max_users=None if n_items is None else self.tuning_users(n_items))

    def name(self) -> str:
        train = 1 - self.valid_fraction - self.test_fraction
        return f"{self.method}-per-user {train:.0%}/{self.valid_fraction:.0%}/{self.test_fraction:.0%} seed {self.seed}, full ranking"

    def as_params(self) -> dict[str, object]:
        return {
            "protocol": self.method,
            "valid_fraction": self.valid_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "ks": ",".join(map(str, self.ks)),
            "cold_item_max_train": self.cold_item_max_train,
        }


def held_out_description_mask(descriptions: pd.DataFrame, held_out: pd.DataFrame) -> np.ndarray:
    """True for descriptions that may be used: not a user's words about one of their held-out pairs."""
    if not len(descriptions):
        return np.zeros(0, dtype=bool)
    key = descriptions["user_id"].astype(str) + "\x1f" + descriptions["item_id"].fillna("").astype(str)
    held = set(held_out["user_id"].astype(str) + "\x1f" + held_out["item_id"].astype(str))
    return ~key.isin(held).to_numpy()


def before_cut_mask(descriptions: pd.DataFrame, split: pd.DataFrame) -> np.ndarray:
    """Temporal protocol: True for words their author wrote before their own cut.

    A user's cut is the earliest timestamp of their held-out (valid or test) interactions:
    what they wrote at or after it — about any item, or none — is future to every model,
    exactly like their later interactions. Undated words of a user with a cut cannot be
    placed before it and are dropped too. Users with nothing held out keep everything.
    """
    if not len(descriptions):
        return np.zeros(0, dtype=bool)
    held = split[split["split"] != "train"]
    cut = pd.Series(time_key(held["timestamp"]), index=held["user_id"].astype(str).to_numpy()).groupby(level=0).min()
    user_cut = descriptions["user_id"].astype(str).map(cut).to_numpy(np.float64)
    written = descriptions["timestamp"] if "timestamp" in descriptions else pd.Series(np.nan, index=descriptions.index)
    when = time_key(written.astype("float64") if pd.api.types.is_numeric_dtype(written) else written)
    has_cut = ~np.isnan(user_cut)
    return ~has_cut | (~np.isnan(when) & (when < user_cut))


def split_for(interactions: pd.DataFrame, protocol: EvaluationProtocol) -> tuple[pd.DataFrame, SplitCounts]:
    """The protocol's split; a temporal split needs a timestamp on every interaction."""
    if protocol.method == "temporal":
        ts = interactions["timestamp"] if "timestamp" in interactions else None
        if ts is None or ts.isna().any():
            missing = len(interactions) if ts is None else int(ts.isna().sum())
            raise ValueError(
                f"temporal evaluation needs a timestamp on every interaction ({missing} of "
                f"{len(interactions)} have none); use method='random'"
            )
    return split_interactions(
        interactions,
        valid_fraction=protocol.valid_fraction,
        test_fraction=protocol.test_fraction,
        seed=protocol.seed,
        method=protocol.method,
    )


def require_evaluable_users(interactions: pd.DataFrame, protocol: EvaluationProtocol) -> None:
    """``DatasetError`` in one line when the protocol's split would hold out nothing to test on."""
    _require_evaluable_users(interactions, split_for(interactions, protocol)[1], protocol)


def _require_evaluable_users(interactions: pd.DataFrame, counts: SplitCounts, protocol: EvaluationProtocol) -> None:
    """One clear line when the split holds out nothing to test on (header-only or all-unknown
    interactions; douban-moviedata-small, whose 974 users have 1,000 ratings): otherwise every
    metric is NaN, is stored as NULL, and a later check fails on it with a TypeError."""
    if counts.n_test > 0:
        return
    from reclm_dagster.datasets.schema import DatasetError
    from reclm_dagster.evaluation.split import holdout_sizes

    # split_interactions' rule: users with < 3 interactions are never split, and a hold-out of
    # round(n * fraction) is 0 for small n; the fewest interactions that give a test item:
    sizes = np.arange(3, 10_001)
    gives_test = holdout_sizes(sizes, protocol.valid_fraction, protocol.test_fraction, 3)[1] > 0
    need = f"≥ {sizes[gives_test][0]}" if gives_test.any() else "more than 10,000"
    per_user = interactions["user_id"].value_counts()
    raise DatasetError(
        f"no user can be evaluated: a per-user test hold-out at test fraction {protocol.test_fraction:g} needs {need} "
        f"interactions per user (≥ 3 for any hold-out); of {len(per_user)} users none has that many "
        f"({int((per_user >= 3).sum())} have ≥ 3, the most is {int(per_user.max()) if len(per_user) else 0}); "
        "free-text requests can still be evaluated from the descriptions: `reclm eval --queries`"
    )


def sampled_rows(X: sp.spmatrix, max_users: int, seed: int, salt: int) -> sp.csr_matrix:
    """``X`` with the rows of at most ``max_users`` of its non-empty users, a seeded sample (the
    other rows emptied, so users keep their row numbers); ``X`` itself when it has no more."""
    X = sp.csr_matrix(X)
    users = np.flatnonzero(np.diff(X.indptr) > 0)
    if len(users) <= max_users:
        return X
    keep = np.zeros(X.shape[0], bool)
    keep[np.random.default_rng([seed, salt]).choice(users, size=max_users, replace=False)] = True
    row_of = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    kept = keep[row_of]
    return sp.csr_matrix((X.data[kept], (row_of[kept], X.indices[kept])), shape=X.shape)


def tuning_rows(X_valid: sp.spmatrix, protocol: EvaluationProtocol) -> sp.csr_matrix:
    """The validation rows choices are judged on: every validation user, or — when they × the items
    exceed ``protocol.tuning_max_cells`` — a seeded sample of them. Every validation user's pairs
    still leave their test ranking; only the settings' scores are computed on fewer users."""
    return sampled_rows(X_valid, protocol.tuning_users(X_valid.shape[1]), protocol.seed, 0x7A11)


def reported_rows(X_test: sp.spmatrix, protocol: EvaluationProtocol) -> sp.csr_matrix:
    """The test rows reported on: every test user, or — when they × the items exceed
    ``protocol.test_max_cells`` — a seeded sample of them (a mean over sampled users is unbiased;
    the report gives how many were scored)."""
    return sampled_rows(X_test, max(TUNING_MIN_USERS, protocol.test_max_cells // max(X_test.shape[1], 1)),
                        protocol.seed, 0x7E57)


@dataclass
class SplitData:
    """One protocol split of a dataset, as every fit on it sees it (``prepare_split``)."""

    tables: DatasetTables  # the text signals' tables (re-encoded when a fine-tuned encoder's recipe is retrained)
    cold_tables: DatasetTables  # what the cold-user fit reads (the base encoder in that case)
    split: pd.DataFrame
    counts: SplitCounts
    train: pd.DataFrame
    mask: np.ndarray  # descriptions a fit may read
    matrix: InteractionMatrix
    X_train: sp.csr_matrix
    X_valid: sp.csr_matrix
    X_test: sp.csr_matrix
    X_tune: sp.csr_matrix  # X_valid of the users choices are made on (all, or a seeded sample: ``tuning_rows``)
    X_report: sp.csr_matrix  # X_test of the users reported on (all, or a seeded sample: ``reported_rows``)
    popularity: np.ndarray  # train interactions per item
    cold: np.ndarray  # the cold-item slice: popularity <= protocol.cold_item_max_train
    recipe_params: dict = field(default_factory=dict)


def prepare_split(tables: DatasetTables, protocol: EvaluationProtocol, dataset: str = "", encoder_recipe: dict | None = None,
                  laps=lambda _: None) -> SplitData:
    """The protocol's split, the descriptions it masks and the matrices; with ``encoder_recipe`` (see
    ``offline_evaluation``) the text tables re-encoded by the recipe retrained on this split's train rows."""
    split, counts = split_for(tables.interactions, protocol)
    _require_evaluable_users(tables.interactions, counts, protocol)
    train = split[split["split"] == "train"]
    valid = split[split["split"] == "valid"]
    test = split[split["split"] == "test"]
    mask = held_out_description_mask(tables.descriptions, pd.concat([valid, test]))
    if protocol.method == "temporal":
        mask &= before_cut_mask(tables.descriptions, split)
    matrix = InteractionMatrix(train, users=tables.all_users(), items=tables.items["item_id"].astype(str).to_numpy())
    laps("split")
    recipe_params, cold_tables = {}, tables
    if encoder_recipe is not None:
        # The cold-user fit holds out rows of the main train split, which the retrained encoder has
        # seen: it reads the base model instead (no fine-tuning at all, so nothing of theirs).
        from reclm_dagster.encoders.transformer import TransformerEncoder

        cold_tables = tables.with_encoder(TransformerEncoder(encoder_recipe.get("base_model") or None))
        train_knobs = {k: v for k, v in (encoder_recipe.get("params") or {}).items() if k in RECIPE_KNOBS}
        encoder, recipe_params = finetuned_encoder(
            finetune_pairs(tables, train, mask, int(train_knobs.get("seed", protocol.seed))), protocol, dataset,
            encoder_recipe.get("base_model") or None, **train_knobs)
        tables = tables.with_encoder(encoder)
        laps("encoder recipe retrained")
    popularity = np.asarray((matrix.X > 0).sum(axis=0)).ravel()
    X_valid, X_test = matrix.align(valid)[0], matrix.align(test)[0]
    return SplitData(tables=tables, cold_tables=cold_tables, split=split, counts=counts, train=train, mask=mask,
                     matrix=matrix, X_train=matrix.X, X_valid=X_valid, X_test=X_test,
                     X_tune=tuning_rows(X_valid, protocol), X_report=reported_rows(X_test, protocol),
                     popularity=popularity, cold=popularity <= protocol.cold_item_max_train, recipe_params=recipe_params)


