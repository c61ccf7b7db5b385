import re

import numpy as np
import pytest
import torch

from reclm_dagster.encoders.identity import cpu_supports_bf16, name_from_folder
from reclm_dagster.encoders.transformer import (
    EncoderNotFound,
    TransformerEncoder,
    default_model_path,
)

SENTENCES = [
    "A comedy about two clumsy robots who get lost on a spaceship travelling to Mars.",
    "Rock",
    "",
    "A cooking show where chefs compete to bake the best chocolate cake, judged by famous pastry chefs "
    "over ten long episodes filled with drama, flour and sugar.",
    "jazz piano trio",
]


@pytest.fixture(scope="module")
def encoder():
    # Small batches so the test really exercises several length-sorted batches;
    # one thread because two threads crawl when other processes share the 2 cores.
    return TransformerEncoder(batch_size=2, precision="fp32", num_threads=1)


def test_shape_dtype_and_unit_norm(encoder):
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), encoder.dim) == (5, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vectors).all()


def test_empty_list_and_missing_values(encoder):
    assert encoder.encode([]).shape == (0, encoder.dim)
    vectors = encoder.encode([None, float("nan"), ""])
    # Missing values are encoded exactly like the empty string.
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    np.testing.assert_allclose(vectors[1], vectors[2], atol=1e-6)


def test_input_order_restored_after_length_sorting(encoder):
    together = encoder.encode(SENTENCES)
    alone = np.vstack([encoder.encode([s]) for s in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    # And sorting must not change anything compared with unsorted batching.
    unsorted = TransformerEncoder(batch_size=2, precision="fp32", num_threads=1, sort_by_length=False)
    np.testing.assert_allclose(unsorted.encode(SENTENCES), together, atol=1e-4)


def test_semantic_sanity(encoder):
    query, robots, cooking = encoder.encode(
        ["a funny space adventure with robots", SENTENCES[0], SENTENCES[3]]
    )
    assert query @ robots > query @ cooking + 0.1


def test_bf16_close_to_fp32(encoder):
    # bf16 autocast also runs (emulated, slower) on CPUs without native bf16,
    # so the numerical check runs everywhere; only 'auto' depends on the CPU.
    bf16 = TransformerEncoder(batch_size=2, precision="bf16", num_threads=1)
    assert bf16.precision == "bf16"
    a, b = encoder.encode(SENTENCES), bf16.encode(SENTENCES)
    cosines = (a * b).sum(axis=1)
    assert cosines.min() >= 0.999


def test_auto_precision_follows_cpu(encoder):
    auto = TransformerEncoder(precision="auto")
    assert auto.precision == ("bf16" if cpu_supports_bf16() else "fp32")
    assert encoder.precision == "fp32"
    with pytest.raises(ValueError):
        TransformerEncoder(precision="fp16")


def test_identity(encoder):
    assert encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert re.fullmatch(r"[0-9a-f]{64}", encoder.weights_hash)
    assert encoder.version == f"{encoder.name}@{encoder.weights_hash[:12]}"
    # Loading the same folder by explicit path gives the same identity.
    by_path = TransformerEncoder(str(default_model_path()))
    assert by_path.version == encoder.version


def test_name_from_folder_fallbacks(tmp_path):
    folder = tmp_path / "my-encoder"
    folder.mkdir()
    assert name_from_folder(folder) == "my-encoder"
    # A config naming a different (base) model is not trusted ...
    (folder / "config.json").write_text('{"_name_or_path": "org/base-model"}')
    assert name_from_folder(folder) == "my-encoder"
    # ... one naming this folder is.
    (folder / "config.json").write_text('{"_name_or_path": "acme/my-encoder"}')
    assert name_from_folder(folder) == "acme/my-encoder"


def test_num_threads_is_restored():
    before = torch.get_num_threads()
    enc = TransformerEncoder(num_threads=1)
    enc.encode(["hello"])
    assert enc.num_threads == 1
    assert torch.get_num_threads() == before


def test_tokenize_stats_counts_unknown_chinese_and_truncation(encoder):
    enc = TransformerEncoder(max_length=16)
    stats = enc.tokenize_stats(["这款手机电池续航能力强", "good battery life", "word " * 40])
    assert list(stats.columns) == ["token_ids", "n_tokens", "truncated", "n_unknown"]
    zh, en, long = stats.to_dict("records")
    # MiniLM's vocabulary is English: most ideographs become [UNK].
    assert zh["n_unknown"] >= zh["n_tokens"] / 2
    assert en["n_unknown"] == 0 and en["n_tokens"] == 3 and not en["truncated"]
    assert en["token_ids"][0] == enc.tokenizer.cls_token_id
    assert long["n_tokens"] == 40 and long["truncated"]
    assert len(long["token_ids"]) == 16
    assert enc.tokenize_stats([]).empty


@pytest.mark.parametrize("bogus", ["no-such-org/no-such-model-xyz", "not a valid id!!", "./missing/folder"])
def test_encoder_not_found(bogus):
    with pytest.raises(EncoderNotFound) as info:
        TransformerEncoder(bogus)
    assert bogus in str(info.value)


def test_folder_without_model_is_encoder_not_found(tmp_path):
    with pytest.raises(EncoderNotFound):
        TransformerEncoder(str(tmp_path))
