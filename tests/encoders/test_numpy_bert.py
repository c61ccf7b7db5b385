"""The torch-free request encoder gives the torch encoder's vectors and tokens, under its identity."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from reclm_dagster.encoders.identity import default_model_path
from reclm_dagster.encoders.numpy_bert import NumpyBertEncoder, supports
from reclm_dagster.encoders.registry import load_request_encoder

TEXTS = [
    "a funny space adventure with robots",
    "这款手机电池续航能力强，拍照效果好",  # mostly [UNK] for MiniLM
    "",
    "Radiohead — OK Computer (1997); alternative rock, art rock!",
    "long " * 300,  # past max_length: truncated the same way
    None,
]


@pytest.fixture(scope="module")
def both():
    from reclm_dagster.encoders.transformer import TransformerEncoder

    return NumpyBertEncoder(), TransformerEncoder(precision="fp32")


def test_same_vectors_tokens_and_identity_as_the_torch_encoder(both):
    fast, ref = both
    assert fast.version == ref.version and fast.dim == ref.dim == 384
    a, b = fast.encode(TEXTS), ref.encode(TEXTS)
    assert a.dtype == np.float32 and a.shape == (len(TEXTS), 384)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    nonempty = np.linalg.norm(b, axis=1) > 0
    assert cos[nonempty].min() >= 0.99999, cos
    s_fast, s_ref = fast.tokenize_stats(TEXTS), ref.tokenize_stats(TEXTS)
    assert [list(x) for x in s_fast["token_ids"]] == [list(x) for x in s_ref["token_ids"]]
    for column in ("n_tokens", "truncated", "n_unknown"):
        assert s_fast[column].tolist() == s_ref[column].tolist(), column
    assert s_fast["truncated"].tolist()[4] and s_fast["n_unknown"].tolist()[1] > 5


def test_padding_does_not_change_a_vector(both):
    fast, _ = both
    alone = fast.encode([TEXTS[0]])
    batched = fast.encode([TEXTS[3], TEXTS[0], "x " * 50])[1]
    np.testing.assert_allclose(alone[0], batched, atol=1e-5)
    assert not np.allclose(alone[0], fast.encode([TEXTS[3]])[0], atol=1e-2)  # the comparison can fail


def test_a_prefixed_checkpoint_loads_and_other_models_do_not_qualify(tmp_path):
    from safetensors.numpy import load_file, save_file

    src = default_model_path()
    folder = tmp_path / "bert-head"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(src / name, folder / name)
    weights = load_file(str(src / "model.safetensors"))
    save_file({"bert." + k: v for k, v in weights.items()}, str(folder / "model.safetensors"))
    np.testing.assert_allclose(NumpyBertEncoder(str(folder)).encode([TEXTS[0]]),
                               NumpyBertEncoder().encode([TEXTS[0]]), atol=1e-6)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "roberta"}))
    assert supports(src) and not supports(folder)
    with pytest.raises(ValueError, match="not a plain BERT"):
        NumpyBertEncoder(str(folder))


def test_requests_get_the_torch_free_encoder_and_never_import_torch():
    assert isinstance(load_request_encoder(""), NumpyBertEncoder)
    assert type(load_request_encoder("lexical")).__name__ == "LexicalEncoder"
    code = ("import sys; from reclm_dagster.encoders.registry import load_request_encoder; "
            "e = load_request_encoder(''); e.encode(['a space adventure']); e.tokenize_stats(['x']); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
