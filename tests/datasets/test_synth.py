"""`reclm synth` (issue 13.4): a deterministic catalogue with the shape recommenders care about,
readable by the folder loader without one quarantined row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reclm_dagster.datasets import folder
from reclm_dagster.datasets.synth import SynthSpec, write

SPEC = SynthSpec(items=1500, users=2500, interactions=40_000, seed=3)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "s"
    counts = write(SPEC, path)
    return path, counts, folder.load(path)


def test_exact_counts_and_a_clean_load(catalogue):
    _, counts, ds = catalogue
    assert counts["interactions"] == SPEC.interactions == len(ds.interactions)
    assert len(ds.items) == SPEC.items and len(ds.facts) == 2 * SPEC.items
    assert ds.quarantine.empty
    assert not ds.interactions.duplicated(["user_id", "item_id"]).any()
    assert set(ds.descriptions["kind"]) == {"tag", "review"} and ds.descriptions["item_id"].isin(ds.items["item_id"]).all()


def test_same_spec_same_data_other_seed_other_data(catalogue, tmp_path):
    path, _, _ = catalogue
    write(SPEC, tmp_path / "again")
    write(SynthSpec(**{**SPEC.__dict__, "seed": 4}), tmp_path / "other")
    for table in ("items", "interactions", "descriptions", "facts"):
        a = pd.read_parquet(path / f"{table}.parquet")
        assert a.equals(pd.read_parquet(tmp_path / "again" / f"{table}.parquet")), table
    assert not pd.read_parquet(path / "interactions.parquet").equals(pd.read_parquet(tmp_path / "other" / "interactions.parquet"))


def test_popularity_is_long_tailed_and_users_keep_to_their_genre(catalogue):
    _, _, ds = catalogue
    counts = ds.interactions["item_id"].value_counts()
    top_decile = counts.iloc[: len(ds.items) // 10].sum() / counts.sum()
    assert top_decile > 0.35  # a uniform catalogue would give 0.10
    per_user = ds.interactions["user_id"].value_counts()
    assert per_user.max() > 10 * per_user.median()  # a few heavy users
    genre = ds.facts[ds.facts["relation"] == "has_genre"].set_index("item_id")["entity"]
    g = ds.interactions.assign(genre=ds.interactions["item_id"].map(genre))
    top_share = g.groupby("user_id")["genre"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    heavy = per_user[per_user >= 20].index
    assert top_share[heavy].median() > 0.5  # CF has a signal to find, beyond popularity
    # tags agree with the item's genre most of the time: text carries the same signal
    tags = ds.descriptions[ds.descriptions["kind"] == "tag"]
    agree = (tags["text"] == tags["item_id"].map(genre)).mean()
    assert 0.6 < agree < 0.8


def test_the_cli_writes_under_the_data_dir_and_replaces_only_its_own(tmp_path, monkeypatch, capsys):
    from reclm_dagster.cli import main

    monkeypatch.setenv("RECLM_DATA_DIR", str(tmp_path))
    args = ["synth", "--items", "50", "--users", "40", "--interactions", "300", "--name", "tiny"]
    assert main(args) == 0 and (tmp_path / "tiny" / "interactions.parquet").is_file()
    assert "reclm run --dataset tiny" in capsys.readouterr().out
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.csv").write_text("x")
    assert main([*args[:-1], "mine", "--force"]) == 2 and (tmp_path / "mine" / "keep.csv").exists()
    assert main(["synth", "--items", "2", "--users", "2", "--interactions", "5"]) == 2  # cannot fit 2 x 2
    assert not list(tmp_path.glob(".*partial"))
