"""settings.schema_name: one DuckDB schema per exact dataset name, readable, stable for known names."""

from __future__ import annotations

import itertools
import re

import pytest

from reclm_dagster.settings import schema_name


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        ("demo", "ds_demo"),
        ("ml-latest-small", "ds_ml_latest_small"),  # stores written before keep their schema
        ("hetrec2011-lastfm-2k", "ds_hetrec2011_lastfm_2k"),
        ("douban-moviedata-small", "ds_douban_moviedata_small"),
        ("tiny", "ds_tiny"),
    ],
)
def test_plain_names_keep_their_schema(name, schema):
    assert schema_name(name) == schema


def test_names_differing_in_punctuation_or_case_get_different_schemas():
    names = ["coll-a", "coll_a", "Coll-A", "COLL_A", "coll.a", "coll a", "coll--a", "coll-a-", "coll__a", "collA", "colla"]
    schemas = [schema_name(n) for n in names]
    assert len(set(schemas)) == len(names), dict(zip(names, schemas))
    assert all(s.startswith("ds_coll") for s in schemas)  # still readable


def test_injective_over_every_short_name():
    # Every name of up to 4 characters over letters of both cases, a digit, and the usual separators.
    alphabet = "aA1-_. é"
    names = ["".join(t) for n in range(1, 5) for t in itertools.product(alphabet, repeat=n)]
    schemas = {}
    for name in names:
        schema = schema_name(name)
        assert re.fullmatch(r"ds_[a-z0-9_]+", schema), (name, schema)  # a plain SQL identifier
        assert schemas.setdefault(schema, name) == name, f"{name!r} and {schemas[schema]!r} share {schema}"
    assert len(schemas) == len(names)


def test_empty_name_is_refused():
    with pytest.raises(ValueError, match="empty"):
        schema_name("")
