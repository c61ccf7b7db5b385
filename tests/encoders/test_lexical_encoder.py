"""The hashed bag-of-words encoder: a real, stateless baseline with reclm's own tokens."""

import numpy as np

from reclm_dagster.encoders.registry import load_encoder
from reclm_dagster.encoders.lexical_encoder import LexicalEncoder


def test_vectors_are_unit_and_reflect_shared_words_in_both_languages():
    enc = LexicalEncoder(dim=256)
    v = enc.encode(["space robots adventure", "robots in space", "a quiet family drama",
                    "这款手机电池续航能力强", "手机电池很耐用", ""])
    assert v.shape == (6, 256) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v[:5], axis=1), 1.0, rtol=1e-5)
    assert not v[5].any()  # no words, no direction
    sims = v @ v.T
    assert sims[0, 1] > 0.5 and sims[0, 2] < 0.1  # shared words vs none
    assert sims[3, 4] > sims[3, 0]  # jieba tokens shared between the two Chinese sentences


def test_stateless_versioned_and_selectable_by_name():
    a, b = LexicalEncoder(dim=256), LexicalEncoder(dim=256)
    np.testing.assert_array_equal(a.encode(["x y z"]), b.encode(["x y z"]))  # no corpus state
    assert a.version == b.version != LexicalEncoder(dim=512).version
    assert load_encoder("lexical", 64, "auto").name == LexicalEncoder.name
    stats = a.tokenize_stats(["space robots", ""])
    assert list(stats["n_tokens"]) == [2, 0] and not stats["truncated"].any()
