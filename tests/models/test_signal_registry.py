"""The signal registry (models/signals.py) is what fusion, the re-ranker, serving and reports read."""

import ast
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclm_dagster import serving, settings, store
from reclm_dagster.models import hybrid, reranker, signals
from reclm_dagster.models.hybrid import HybridConfig, HybridRecommender, UserText

PACKAGE = Path(__file__).resolve().parents[2] / "reclm_dagster"


def _fitted():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((20, 9)) > 0.6).astype(np.float32))
    text = UserText(np.zeros((20, 4), np.float32), [["w"] if u % 2 else [] for u in range(20)])
    side = sp.csr_matrix((rng.random((9, 5)) > 0.5).astype(np.float32))
    model = HybridRecommender(HybridConfig(cf_model="itemknn")).fit(
        X, rng.normal(size=(9, 4)).astype(np.float32), [["w"]] * 9, text, side=side,
        side_names=np.array([f"genre={i}" for i in range(5)]))
    return model, X


def test_every_registry_signal_scores_a_user_batch():
    model, X = _fitted()
    rows = np.arange(5)
    out = model.score_signals(rows, X, signals=tuple(signals.SIGNALS))
    assert list(out) == list(signals.SIGNALS)  # registry order
    assert all(S.shape == (5, X.shape[1]) for S in out.values())
    assert np.array_equal(out["kg"], model.kg_scores(rows, X))
    assert list(model.score_signals(rows, X)) == list(signals.FUSED_SIGNALS) == ["cf", "text", "lexical", "kg"]
    assert set(signals.signal_params(model)) == set(signals.FUSED_SIGNALS)


def test_fusion_and_reranker_read_the_registry():
    assert list(HybridConfig().weights) == list(signals.FUSED_SIGNALS)
    assert hybrid.SIGNALS == signals.FUSED_SIGNALS and hybrid.COLD_BOOST_SIGNALS == ("lexical", "kg")
    assert reranker.RANK_SIGNALS == ("cf", "text", "lexical")
    assert reranker.FEATURES[:6] == ("cf_z", "cf_logrank", "text_z", "text_logrank", "lexical_z", "lexical_logrank")
    assert signals.QUERY_SIGNALS == ("text", "lexical") and signals.WORD_SIGNALS == ("text", "lexical")


def test_no_hand_written_signal_lists_left():
    """A tuple literal of two or more signal names outside the registry is a list someone must keep in step."""
    names = set(signals.SIGNALS)
    offenders = []
    for name in ("models/hybrid.py", "models/reranker.py", "serving.py", "evaluation/report.py", "models/query.py"):
        for node in ast.walk(ast.parse((PACKAGE / name).read_text())):
            if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) >= 2:
                values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if sum(v in names for v in values) >= 2:
                    offenders.append(f"{name}:{node.lineno} {values}")
    assert offenders == []


def test_json_answer_shows_every_stored_signal_score_including_kg(tmp_path, monkeypatch, capsys):
    """`reclm recommend --user --json` shows the KG score stored with the list (it used to drop it)."""
    from reclm_dagster.cli import main

    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    settings.reclm_home().mkdir(parents=True)
    recs = pd.DataFrame({
        "user_id": ["u1", "u1"], "rank": [1, 2], "item_id": ["a", "b"], "title": ["A", "B"], "domain": ["video"] * 2,
        "score": [2.0, 1.0], "score_cf": [0.5, 0.4], "score_text": [0.3, 0.2], "score_lexical": [1.5, 0.0],
        "score_kg": [0.25, np.nan], "facts": ["{}"] * 2, "explanation": ["why"] * 2,
    })
    with duckdb.connect(str(settings.duckdb_path())) as con:
        store.replace_tables(con, settings.schema_name("tiny"), {"recommendations": recs})
    assert main(["recommend", "--dataset", "tiny", "--user", "u1", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer[0]["scores"] == {"cf": 0.5, "text": 0.3, "lexical": 1.5, "kg": 0.25}
    assert answer[1]["scores"] == {"cf": 0.4, "text": 0.2, "lexical": 0.0}  # a missing score is left out
    assert serving.SCORES[:4] == signals.FUSED_SIGNALS
