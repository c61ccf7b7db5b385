"""The whole graph and `reclm eval` on a slice of real data (ml-latest-small, first users),
so CI exercises the real-data code path in seconds; the full datasets are heavy runs."""

import json
import math

import pandas as pd
import pytest

from reclm_dagster.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.realdata]

N_USERS = 25


@pytest.fixture(scope="module")
def slice_env(shared_data_dir, tmp_path_factory):
    src = shared_data_dir / "ml-latest-small"
    if not src.is_dir():
        pytest.skip("ml-latest-small not in RECLM_DATA_DIR")
    data = tmp_path_factory.mktemp("data")
    out = data / "ml-slice"
    out.mkdir()
    ratings = pd.read_csv(src / "ratings.csv")
    ratings = ratings[ratings["userId"] <= N_USERS]
    movies = pd.read_csv(src / "movies.csv")
    movies = movies[movies["movieId"].isin(ratings["movieId"])]
    tags = pd.read_csv(src / "tags.csv")
    tags = tags[tags["movieId"].isin(movies["movieId"])]
    links = pd.read_csv(src / "links.csv", dtype=str)
    links = links[links["movieId"].astype(int).isin(movies["movieId"])]
    ratings.to_csv(out / "ratings.csv", index=False)
    movies.to_csv(out / "movies.csv", index=False)
    tags.to_csv(out / "tags.csv", index=False)
    links.to_csv(out / "links.csv", index=False)
    return data, tmp_path_factory.mktemp("home"), len(ratings), len(movies)


def test_run_and_eval_on_a_real_slice(slice_env, monkeypatch, capsys):
    data, home, n_ratings, n_movies = slice_env
    monkeypatch.setenv("RECLM_DATA_DIR", str(data))
    monkeypatch.setenv("RECLM_HOME", str(home))
    monkeypatch.setenv("RECLM_HETREC_MOVIELENS_DIR", "")  # the slice has no sibling metadata folder
    assert main(["run", "--dataset", "ml-slice"]) == 0
    summary = capsys.readouterr().out
    assert "interactions" in summary and f"{n_ratings:,}" in summary
    assert main(["eval", "--dataset", "ml-slice", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    models = report["models"]
    # every model was fitted, tuned and scored on held-out pairs of real users
    for name in ("hybrid", "itemknn", "rp3beta", "ease", "pop"):
        for metric in ("ndcg@10", "recall@20"):
            value = models[name][metric]  # null in the JSON stands for NaN
            assert value is not None and math.isfinite(value) and 0 <= value <= 1, (name, metric, value)
    assert models["hybrid"]["ndcg@10"] > 0 and models["ease"]["params"]["l2"] in (50.0, 100.0, 200.0, 500.0, 1000.0)
    assert report["split"]["n_test"] > 0 and report["split"]["n_valid"] > 0


def _filter_lines(src, dst, keep) -> int:
    """Copy a tab-separated HetRec file byte for byte (its encoding untouched), header plus
    the rows for which keep(fields) is true."""
    lines = src.read_bytes().splitlines(keepends=True)
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.strip() and keep(ln.rstrip(b"\r\n").split(b"\t"))]
    dst.write_bytes(b"".join(kept))
    return len(kept) - 1


def test_eval_on_a_lastfm_slice(shared_data_dir, tmp_path, monkeypatch, capsys):
    src = shared_data_dir / "hetrec2011-lastfm-2k"
    if not src.is_dir():
        pytest.skip("hetrec2011-lastfm-2k not in RECLM_DATA_DIR")
    out = tmp_path / "data" / "lastfm-slice"
    out.mkdir(parents=True)
    users = {str(u).encode() for u in range(2, 2 + 60)}  # Last.fm user ids start at 2
    artists: set[bytes] = set()

    def keep_play(f):
        if f[0] in users:
            artists.add(f[1])
            return True
        return False

    n_plays = _filter_lines(src / "user_artists.dat", out / "user_artists.dat", keep_play)
    _filter_lines(src / "artists.dat", out / "artists.dat", lambda f: f[0] in artists)
    _filter_lines(src / "user_taggedartists.dat", out / "user_taggedartists.dat", lambda f: f[0] in users and f[1] in artists)
    _filter_lines(src / "user_friends.dat", out / "user_friends.dat", lambda f: f[0] in users and f[1] in users)
    (out / "tags.dat").write_bytes((src / "tags.dat").read_bytes())

    monkeypatch.setenv("RECLM_DATA_DIR", str(out.parent))
    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    assert main(["eval", "--dataset", "lastfm-slice", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    split = report["split"]
    assert split["n_train"] + split["n_valid"] + split["n_test"] == n_plays
    assert split["n_descriptions_removed"] > 0  # users' tags on their held-out artists were dropped
    ndcg = {name: report["models"][name]["ndcg@10"] for name in ("hybrid", "cf", "text", "lexical", "pop", "itemknn", "rp3beta", "ease")}
    assert all(v is not None and math.isfinite(v) and 0 <= v <= 1 for v in ndcg.values()), ndcg  # null = NaN
