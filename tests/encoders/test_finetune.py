"""The domain-adapted encoder: training pairs only from the rows a fit may see (a leakage canary),
a few real MiniLM steps that lower the in-batch loss and save a folder the encoder loader reads as
a new version, the whole-graph guard, and `reclm finetune` materializing the asset on the demo."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from reclm_dagster.encoders.finetune import batch_indices, build_training_pairs

CANARY = "zyxwcanary"


def _tiny_dataset():
    titles = {
        "i1": ("Orbit of Iron", "Space salvage crew and a warship AI."),
        "i2": ("Tin Can Odyssey", "A clumsy robot steals a spaceship: funny space adventure."),
        "i3": ("Kitchen Nights", "A cooking show about family recipes and street food."),
        "i4": ("Blue Smoke", "Late-night jazz trio recordings, saxophone and piano."),
        "i5": ("Bread and Salt", "Baking documentary: sourdough, ovens and bakers."),
        "i6": ("Midnight Keys", "Solo jazz piano for rainy evenings."),
        "secret": (f"Secret {CANARY} item", f"Only the held-out row touches {CANARY}."),
    }
    items = pd.DataFrame({"item_id": list(titles), "title": [t for t, _ in titles.values()],
                          "description": [d for _, d in titles.values()]})
    facts = pd.DataFrame(columns=["item_id", "relation", "entity_type", "entity"])
    interactions = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u2", "u3", "u3", "u4", "u4"],
        "item_id": ["i1", "i2", "secret", "i3", "i5", "i4", "i6", "i1", "i2"],
        "weight": 1.0, "timestamp": range(9),
    })
    descriptions = pd.DataFrame({
        "description_id": ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"],
        "user_id": ["u1", "u1", "u2", "u3", "u1", "u2", "u4", "u3"],
        "item_id": ["i2", None, "i5", "i6", "secret", "i3", "i1", "i4"],
        "kind": ["tag", "profile", "tag", "tag", "tag", "review", "tag", "review"],
        "text": ["robots", "I love space and robots", "sourdough", "jazz piano",
                 f"{CANARY} tag on a held-out pair", f"{CANARY} masked words", "space opera", "Boring, fell asleep."],
        "rating": [None, None, None, None, None, None, None, 1.0],
    })
    return items, facts, interactions, descriptions


def _texts(pairs: pd.DataFrame) -> str:
    return " ".join(pairs["anchor"]) + " " + " ".join(pairs["positive"])


def test_pairs_come_only_from_allowed_rows():
    items, facts, interactions, descriptions = _tiny_dataset()
    # one user's tag is enough here (min_tag_users=1): the tiny dataset has no agreement to count
    everything = build_training_pairs(items, facts, descriptions, interactions, min_tag_users=1)
    # the canary is reachable without the masks: its absence below means something
    assert {"d5", "d6"} <= set(everything["anchor_id"]) and "secret" in set(everything["positive_id"])

    held = (interactions["user_id"] == "u1") & (interactions["item_id"] == "secret")
    desc_ok = descriptions["description_id"] != "d6"  # the evaluation masks d6; d5 is left to the interaction mask
    pairs = build_training_pairs(items, facts, descriptions, interactions, min_tag_users=1,
                                 interactions_allowed=~held, descriptions_allowed=desc_ok)
    assert CANARY not in _texts(pairs)  # neither the held-out item, its words, nor the masked words
    assert "secret" not in set(pairs["anchor_id"]) | set(pairs["positive_id"])
    assert not {"d5", "d6", "d8"} & set(pairs["anchor_id"])  # d8: a 1-star pan is not a taste
    # a profile pairs with items its user consumed, and only those still allowed
    profile = pairs[pairs["anchor_id"] == "d2"]
    assert len(profile) and set(profile["positive_id"]) <= {"i1", "i2"}
    assert set(pairs["kind"]) == {"words", "co_consumed"}
    # co-consumed: two items that at least two users consumed together, counted on allowed rows only
    allowed = interactions[~held].groupby("user_id")["item_id"].agg(set)
    for a, b in zip(*pairs.query("kind == 'co_consumed'")[["anchor_id", "positive_id"]].to_numpy().T):
        assert sum({a, b} <= seen for seen in allowed) >= 2
    with pytest.raises(ValueError, match="one boolean per row"):
        build_training_pairs(items, facts, descriptions, interactions, interactions_allowed=[True])


def test_tags_need_agreement_by_default():
    items, facts, interactions, descriptions = _tiny_dataset()
    pairs = build_training_pairs(items, facts, descriptions, interactions)
    tags = set(descriptions.loc[descriptions["kind"] == "tag", "description_id"])
    assert not tags & set(pairs["anchor_id"])  # each tag here was given by one user only
    assert "d6" in set(pairs["anchor_id"])  # a review stands alone


def test_batches_are_seeded_and_never_repeat_a_text():
    anchors = ["rock", "Rock", "jazz", "pop", "rock ", "folk", "blues", "metal"]
    positives = [f"artist {i}" for i in range(8)]
    first = [b for b, _ in zip(batch_indices(anchors, positives, 4, seed=3), range(6))]
    again = [b for b, _ in zip(batch_indices(anchors, positives, 4, seed=3), range(6))]
    assert first == again
    for batch in first:
        keys = [anchors[i].casefold().strip() for i in batch] + [positives[i] for i in batch]
        assert len(keys) == len(set(keys)) and len(batch) >= 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Five steps on the tiny dataset's pairs with the real packaged MiniLM, saved to a folder."""
    from reclm_dagster.encoders.finetune import finetune, in_batch_metrics, save_finetuned
    from reclm_dagster.encoders.transformer import TransformerEncoder

    items, facts, interactions, descriptions = _tiny_dataset()
    pairs = build_training_pairs(items, facts, descriptions, interactions, min_tag_users=1)
    enc = TransformerEncoder(None, num_threads=1)
    base_version = enc.version
    a, p = pairs["anchor"].tolist(), pairs["positive"].tolist()
    before = in_batch_metrics(enc, a, p, batch_size=len(a), max_length=32)
    result = finetune(enc, pairs, steps=5, batch_size=8, lr=1e-4, max_length=32, heldout_pairs=0, seed=0)
    after = in_batch_metrics(enc, a, p, batch_size=len(a), max_length=32)
    root = tmp_path_factory.mktemp("encoders")
    folder = save_finetuned(enc, root, "tiny-finetuned", card="# all-MiniLM-L6-v2-tiny\n\n`'reclm/all-MiniLM-L6-v2-tiny'`\n")
    return SimpleNamespace(result=result, before=before, after=after, folder=folder, root=root, enc=enc,
                           base_version=base_version)


def test_a_few_steps_lower_the_loss(trained):
    assert trained.result.steps == 5 and all(np.isfinite(trained.result.losses))
    # eval mode, on the pairs it trained on: lower loss, and not by calling everything alike
    assert trained.after["loss"] < trained.before["loss"]
    assert trained.after["cos_gap"] > trained.before["cos_gap"]
    assert trained.result.precision in ("fp32", "bf16")


def test_the_folder_is_a_new_encoder_version_for_the_existing_loader(trained):
    from reclm_dagster.encoders.registry import load_encoder
    from reclm_dagster.encoders.finetune import save_finetuned

    # what `--encoder FOLDER` does, at the precision the model trained in (bf16 where the CPU has
    # native bf16: then fp32 and bf16 vectors differ by ~1e-3, which says nothing about the weights)
    loaded = load_encoder(str(trained.folder), 64, trained.enc.precision)
    assert loaded.version != trained.base_version and loaded.name == "reclm/all-MiniLM-L6-v2-tiny"
    assert re.fullmatch(r"tiny-finetuned-[0-9a-f]{12}", trained.folder.name)
    assert trained.folder.name.endswith(loaded.version.split("@")[1])  # the folder names its weights
    vecs = loaded.encode(["robots in space", "jazz piano"])
    assert vecs.shape == (2, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    # the same vectors as the trained model in memory: the saved weights are the trained ones
    assert np.allclose(vecs, trained.enc.encode(["robots in space", "jazz piano"]), atol=1e-5)
    assert save_finetuned(trained.enc, trained.root, "tiny-finetuned") == trained.folder  # same weights, same folder
    assert [p.name for p in trained.root.iterdir()] == [trained.folder.name]  # no staging left behind


def test_whole_graph_and_automated_runs_skip_the_training():
    from reclm_dagster.definitions import build_definitions
    from reclm_dagster.defs.encoder import requested_explicitly

    def ctx(selection, job="reclm_full", tags=None):
        return SimpleNamespace(run=SimpleNamespace(asset_selection=selection, job_name=job, tags=tags or {}))

    # the asset is in the whole job (AssetSelection.all()): the guard is what keeps `reclm run` fast
    job = build_definitions().resolve_job_def("reclm_full")
    assert "encoder_finetuned" in {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert not requested_explicitly(ctx(None))  # the whole job ...
    assert not requested_explicitly(ctx(frozenset()))  # ... as Dagster 1.13 records it for `reclm run`
    assert not requested_explicitly(ctx({"encoder_finetuned"}, tags={"reclm/trigger": "daily_refresh"}))
    assert requested_explicitly(ctx({"encoder_finetuned"}))  # `reclm finetune`, or "Materialize" in the UI
    assert requested_explicitly(ctx(None, job="__ASSET_JOB"))  # dg.materialize([encoder_finetuned])


def test_cli_finetune_materializes_the_asset_on_the_demo(tmp_path, monkeypatch, capsys):
    import mlflow

    from reclm_dagster import settings
    from reclm_dagster.cli import main
    from reclm_dagster.encoders.registry import load_encoder

    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))  # restored after the test
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["finetune", "--dataset", "demo", "--steps", "2", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    folder = re.search(r"folder\s+(\S+)", out).group(1)
    version = re.search(r"encoder version\s+(\S+)", out).group(1)
    assert folder.startswith(str(settings.reclm_home() / "encoders" / "demo-finetuned-"))
    assert load_encoder(folder, 64, "auto").version == version and version.startswith("reclm/all-MiniLM-L6-v2-demo@")
    assert f"--encoder {folder}" in out

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri())
    (run,) = mlflow.search_runs(experiment_names=["demo"], output_format="list")
    assert run.data.tags["model"] == "encoder_finetuned" and run.data.tags["encoder_version"] == version
    assert run.data.params["finetune_steps"] == "2" and run.data.params["encoder_version"] == version
    client = mlflow.MlflowClient()
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert "encoder/model.safetensors" in {a.path for a in client.list_artifacts(run.info.run_id, "encoder")}
    assert main(["finetune", "--dataset", "demo", "--steps", "0"]) == 2  # a usage mistake: one line, exit 2


def test_an_encoder_that_saw_the_test_rows_is_never_evaluated_as_it_is(trained, tmp_path):
    """`reclm finetune` trains on every row: an evaluation must measure its recipe on the train rows instead."""
    import json
    import shutil

    from reclm_dagster.defs.evaluation import finetune_inputs
    from reclm_dagster.encoders.finetune import TRAINED_ON, evaluation_conflict
    from reclm_dagster.encoders.lexical_encoder import LexicalEncoder
    from reclm_dagster.encoders.transformer import TransformerEncoder
    from reclm_dagster.evaluation.offline import EvaluationProtocol

    protocol = EvaluationProtocol()
    folder = tmp_path / "enc"
    shutil.copytree(trained.folder, folder)

    def mark(record):
        (folder / TRAINED_ON).write_text(json.dumps(record))

    assert evaluation_conflict(folder, "tiny", protocol.as_params()) is None  # no record: not fine-tuned by reclm
    mark({"dataset": "tiny", "rows": "all", "base_model": "", "params": {"steps": 5, "seed": 3, "lr": 1e-4}})
    assert "every row of tiny" in evaluation_conflict(folder, "tiny", protocol.as_params())
    assert evaluation_conflict(folder, "other-dataset", protocol.as_params()) is None
    enc = TransformerEncoder(str(folder), num_threads=1)
    base, recipe = finetune_inputs(enc, "tiny", protocol)
    assert base == "" and recipe["params"]["seed"] == 3  # hybrid@finetuned starts from the base, not these weights
    assert finetune_inputs(enc, "other-dataset", protocol) == (str(enc.folder), None)

    mark({"dataset": "tiny", "rows": "train", "protocol": protocol.as_params()})
    assert evaluation_conflict(folder, "tiny", protocol.as_params()) is None  # this split's train rows: fine
    other = EvaluationProtocol(seed=1).as_params()
    assert "another split" in evaluation_conflict(folder, "tiny", other)
    mark({"dataset": "tiny", "rows": "train", "protocol": {}})
    assert evaluation_conflict(folder, "tiny", protocol.as_params()) is not None  # no split recorded: refuse
    assert finetune_inputs(LexicalEncoder(), "tiny", protocol) == (None, None)
