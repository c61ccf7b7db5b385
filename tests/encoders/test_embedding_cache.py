"""The shared embedding cache: encode each text once per encoder version, return input order."""

import duckdb
import numpy as np
import pytest

from reclm_dagster.encoders import cache


class FakeEncoder:
    """Deterministic vectors from the text; counts what it was asked to encode."""

    def __init__(self, version: str = "fake@1", dim: int = 4):
        self.version, self.dim = version, dim
        self.calls: list[list[str]] = []

    def encode(self, texts, progress=False, desc=""):
        self.calls.append(list(texts))
        # A function of the text and version only, so a cached vector equals a fresh one.
        rows = [[len(t), sum(map(ord, t)) % 97, len(self.version), 1.0] for t in texts]
        return np.array(rows, dtype=np.float32).reshape(len(texts), 4)[:, : self.dim]

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "cache.duckdb"))
    yield c
    c.close()


def test_second_call_encodes_nothing_and_returns_the_same_vectors(con):
    enc = FakeEncoder()
    texts = ["rock", "jazz", "rock", "", "ambient drone"]
    stats: dict = {}
    first = cache.cached_encode(con, enc, texts, stats=stats)
    assert sorted(enc.encoded) == ["", "ambient drone", "jazz", "rock"]  # each distinct text once
    assert stats == {"hits": 0, "misses": 4}
    second = cache.cached_encode(con, enc, texts, stats=stats)
    assert len(enc.calls) == 1, "second call must not reach the encoder"
    assert stats == {"hits": 4, "misses": 0}
    np.testing.assert_array_equal(first, second)
    assert con.execute(f"SELECT count(*) FROM {cache.TABLE}").fetchall()[0][0] == 4


def test_order_preserved_and_only_misses_encoded(con):
    enc = FakeEncoder()
    cache.cached_encode(con, enc, ["b", "a"])
    texts = ["zz", "a", "new one", "b", "a"]
    out = cache.cached_encode(con, enc, texts)
    assert sorted(enc.calls[-1]) == ["new one", "zz"]
    fresh = FakeEncoder().encode(texts)
    np.testing.assert_array_equal(out, fresh)  # row i is text i's vector


def test_other_encoder_version_misses(con):
    old, new = FakeEncoder("fake@1"), FakeEncoder("fake@2")
    cache.cached_encode(con, old, ["x", "y"])
    stats: dict = {}
    cache.cached_encode(con, new, ["x", "y"], stats=stats)
    assert stats == {"hits": 0, "misses": 2} and sorted(new.encoded) == ["x", "y"]
    # both versions now sit side by side; different widths share the table
    wide = FakeEncoder("fake@wide", dim=3)
    assert cache.cached_encode(con, wide, ["x"]).shape == (1, 3)
    assert con.execute(f"SELECT count(DISTINCT encoder_version) FROM {cache.TABLE}").fetchall()[0][0] == 3


def test_store_tolerates_texts_cached_meanwhile(con):
    enc = FakeEncoder()
    found = cache.lookup(con, enc.version, enc.dim, ["p", "q"])
    assert found.misses == 2
    cache.store(con, enc.version, ["p"], enc.encode(["p"]))  # another run got there first
    inserted = cache.store(con, enc.version, found.missing_texts, enc.encode(found.missing_texts))
    assert inserted == 1
    assert cache.lookup(con, enc.version, enc.dim, ["p", "q"]).hits == 2


def test_empty_input(con):
    enc = FakeEncoder()
    assert cache.cached_encode(con, enc, []).shape == (0, 4) and not enc.calls
