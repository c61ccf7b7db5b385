"""What the language model adds: the hybrid against itself without the transformer.

Two ablations run on the same split as the hybrid, each with the same fusion tuning
(text × lexical, then KG, then the cold-item boost, on validation) and the same re-ranker
decision, reported on test:

- ``hybrid@lexical``: the transformer replaced by the hashed bag-of-words encoder
  (``encoders/lexical_encoder.py``) — words as ids in the ``text`` signal, nothing semantic;
- ``hybrid-notext``: the ``text`` signal's weight held at 0;
- ``hybrid@finetuned`` (when ``finetune_steps`` > 0): the transformer fine-tuned on this split's
  train rows and allowed words only (``encoders/finetune.py``), with ``text@finetuned``, its
  text signal alone.

Everything else is the hybrid's own fit, shared rather than refitted: side-information EASE
(with the g validation chose for the hybrid), BM25, the KG signal and the popularity prior
do not depend on the encoder. So ``hybrid / hybrid@lexical`` is the encoder's own
contribution beyond words as ids, and ``hybrid / hybrid-notext`` that of the text signal.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np

from reclm_dagster.encoders.lexical_encoder import LexicalEncoder
from reclm_dagster.evaluation.protocol import evaluate, metric_rows
from reclm_dagster.evaluation.tuning import WEIGHT_GRID, attach_reranker, tune_fusion_weights
from reclm_dagster.training import with_text_from

LEXICAL = "hybrid@lexical"
NO_TEXT = "hybrid-notext"
FINETUNED = "hybrid@finetuned"
TEXT_FINETUNED = "text@finetuned"
ABLATIONS = (LEXICAL, NO_TEXT)  # always run; FINETUNED only with finetune_steps > 0


@dataclass
class AblationResult:
    rows: list[tuple] = field(default_factory=list)  # (model, slice, metric, value)
    params: dict[str, dict] = field(default_factory=dict)  # model -> chosen setting
    encoders: dict[str, str] = field(default_factory=dict)  # model -> encoder version it ran with


def ablation_models(model, tables, users: np.ndarray, items: np.ndarray, X_train=None,
                    finetuned=None) -> dict[str, tuple[object, dict, str]]:
    """``{name: (model, fusion grid, encoder version)}`` for each ablation of a fitted hybrid.

    ``finetuned``: an encoder fine-tuned on the split's train rows (adds ``hybrid@finetuned``).
    When the hybrid's EASE reads the text embeddings too (``dense_weight`` > 0), each ablation
    gets its own EASE: on its own encoder's vectors for ``hybrid@lexical`` and
    ``hybrid@finetuned``, without them for ``hybrid-notext`` (``X_train`` is then required).
    """
    swaps = {LEXICAL: LexicalEncoder(), **({FINETUNED: finetuned} if finetuned is not None else {})}
    swapped = {name: with_text_from(model, tables.with_encoder(enc), users, items) for name, enc in swaps.items()}
    no_text = copy.copy(model)
    no_text.reranker_ = None
    if model.config.dense_weight > 0:
        if X_train is None:
            raise ValueError("the hybrid's EASE reads text embeddings: pass X_train to refit the ablations' CF")
        for variant in swapped.values():
            variant.refit_cf(X_train, variant.item_vectors_)
        no_text.config = replace(no_text.config, dense_weight=0.0)
        no_text.refit_cf(X_train, None)
    return {
        **{name: (variant, WEIGHT_GRID, swaps[name].version) for name, variant in swapped.items()},
        NO_TEXT: (no_text, {**WEIGHT_GRID, "text": (0.0,)}, tables.encoder_version),
    }


def finetune_pairs(tables, train, description_mask, seed: int):
    """What ``hybrid@finetuned``'s encoder may learn from: the train rows and the words the mask allows."""
    from reclm_dagster.encoders.finetune import build_training_pairs

    return build_training_pairs(tables.items, tables.facts, tables.descriptions, train,
                                descriptions_allowed=description_mask, seed=seed)


def finetuned_encoder(pairs, protocol, dataset: str, base_model: str | None, **train):
    """Fine-tune on ``pairs`` and load the result; ``(encoder, params)`` for the report.

    ``train``: ``finetune``'s knobs (default: ``protocol.finetune_steps`` steps, the protocol's seed).
    """
    from reclm_dagster import settings
    from reclm_dagster.encoders.finetune import finetune_to_folder
    from reclm_dagster.encoders.transformer import TransformerEncoder

    folder, result, base_version = finetune_to_folder(
        pairs, settings.encoders_dir(), dataset or "dataset", {"rows": "train", "protocol": protocol.as_params()},
        base_model=base_model, **{"steps": protocol.finetune_steps, "seed": protocol.seed, **train})
    encoder = TransformerEncoder(str(folder))
    params = {"finetune_steps": result.steps, "finetune_seconds": round(result.seconds, 1), "finetune_folder": str(folder),
              "finetune_pairs": len(pairs), "base_encoder_version": base_version,
              **{f"finetune_{k}": v for k, v in result.heldout().items()}}
    return encoder, params


def run_ablations(model, tables, users, items, X_train, X_tune, X_test, history, popularity, cold, protocol,
                  progress: bool = False, finetuned=None) -> AblationResult:
    """Tune, decide the re-ranker and report each ablation like the hybrid (valid → test).

    ``X_tune``: the validation rows settings are judged on (``holdout.tuning_rows``).
    ``finetuned``: ``(encoder, params)`` from ``finetuned_encoder``, or None.
    """
    out = AblationResult()
    encoder, finetune_params = finetuned if finetuned is not None else (None, {})
    variants = ablation_models(model, tables, users, items, X_train, finetuned=encoder)
    for name, (variant, grid, encoder_version) in variants.items():
        weights, _ = tune_fusion_weights(variant, X_train, X_tune, popularity, grid=grid)
        variant.config = replace(variant.config, weights=weights)
        report = attach_reranker(variant, X_train, X_tune, popularity, seed=protocol.seed) if protocol.rerank else {}
        result = evaluate(variant.scorer("hybrid", history), train_X=X_train, test_X=X_test, exclude_X=history,
                          ks=protocol.ks, cold_items=cold, item_popularity=popularity, progress=progress)
        out.rows += metric_rows(name, result)
        out.params[name] = {**variant.config.as_params(), "encoder_version": encoder_version,
                            "reranker": "lightgbm-lambdarank" if variant.reranker_ is not None else "none",
                            **{f"reranker_{k}": v for k, v in report.items()}}
        out.encoders[name] = encoder_version
        if name == FINETUNED:  # its text signal alone: did fine-tuning help the words themselves?
            out.params[name].update(finetune_params)
            alone = evaluate(variant.scorer("text", history), train_X=X_train, test_X=X_test, exclude_X=history,
                             ks=protocol.ks, cold_items=cold, item_popularity=popularity, progress=progress)
            out.rows += metric_rows(TEXT_FINETUNED, alone)
            out.params[TEXT_FINETUNED] = {"encoder_version": encoder_version, **finetune_params}
            out.encoders[TEXT_FINETUNED] = encoder_version
    return out
