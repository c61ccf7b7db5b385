"""benchmarks/encoder_vs_sentence_transformers.py on a few texts: reclm's encoder and
sentence-transformers' encode of the same packaged MiniLM give the same vectors (cosine
>= 0.999; it drops if pooling, normalisation, truncation or tokenisation diverge). Speed is
measured by the benchmark itself, never asserted here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import encoder_vs_sentence_transformers as bench  # noqa: E402

TEXTS = [
    "rock", "indie pop", "  post-rock  ", "80s", "female vocalists", "hip-hop", "seen live",
    "Toy Story (1995) Adventure|Animation|Children|Comedy|Fantasy", "Heat (1995) Action|Crime|Thriller",
    "", "a" * 3, "électronique", "Ψ quantum", "rock " * 300,  # longer than max_length: truncated
    "A long-lost brother returns to the family farm after twenty years and nobody recognises him.",
    "电影讲述新一代青年人发奋图强、励志创业的故事。", "jazz", "chillout", "metal", "The Godfather (1972) Crime|Drama",
]


def test_reclm_fp32_matches_sentence_transformers_fp32():
    settings = bench.build_settings(batch_size=8, bf16=False)
    assert [label for label, _ in settings] == [bench.ST_LABEL, "reclm fp32"]
    out = bench.measure(TEXTS, settings, threads=(1,), repeats=1, chunk=10)
    assert out["n_texts"] == len(TEXTS)
    rows = {r["setting"]: r for r in out["rows"]}
    assert rows[bench.ST_LABEL]["cosine_to_st_fp32_min"] == pytest.approx(1.0, abs=1e-6)
    assert rows["reclm fp32"]["cosine_to_st_fp32_min"] >= 0.999
    assert rows["reclm fp32"]["texts_per_s"] > 0


def test_verdict_follows_the_cpu():
    rows = lambda ratio_fp32, ratio_bf16, cos: {"short": {"rows": [  # noqa: E731
        {"setting": "reclm fp32", "ratio_to_st_fp32": ratio_fp32, "cosine_to_st_fp32_min": 1.0},
        {"setting": "reclm bf16", "ratio_to_st_fp32": ratio_bf16, "cosine_to_st_fp32_min": cos},
    ]}}
    assert bench.target_verdict(rows(1.1, 0.5, 0.99), has_amx=False)["holds"]
    assert not bench.target_verdict(rows(0.9, 3.0, 0.9995), has_amx=False)["holds"]
    assert bench.target_verdict(rows(1.0, 2.6, 0.9995), has_amx=True)["holds"]
    assert not bench.target_verdict(rows(1.0, 2.6, 0.998), has_amx=True)["holds"]
    assert not bench.target_verdict(rows(1.0, 2.4, 0.9995), has_amx=True)["holds"]
