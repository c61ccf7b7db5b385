import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from reclm_dagster import settings, store
from reclm_dagster.kg.build import build_knowledge_graph, co_consumption_triples


@pytest.fixture
def stored_graph(tmp_path, monkeypatch, items, facts, user_links):
    import duckdb

    monkeypatch.setenv("RECLM_HOME", str(tmp_path / "home"))
    settings.reclm_home().mkdir(parents=True)
    train = pd.DataFrame([("u1", "V1", 1.0), ("u1", "V2", 1.0), ("u2", "V1", 1.0), ("u2", "V2", 1.0)],
                         columns=["user_id", "item_id", "weight"])
    kg = build_knowledge_graph(items, facts, user_links, co_consumption_triples(train))
    con = duckdb.connect(str(settings.duckdb_path()))
    entities = kg.entities.assign(aliases=kg.entities["aliases"].astype(str))
    store.replace_tables(con, settings.schema_name("tiny"),
                         {"kg_entities": entities, "kg_triples": kg.triples, "kg_relations": kg.relations()})
    con.close()
    return kg


def _run(argv):
    import argparse

    from reclm_dagster.cli_kg import add_kg_parser

    parser = argparse.ArgumentParser(prog="reclm")
    add_kg_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.fn(args)


def test_graphml_export_loads_back_with_networkx(stored_graph, tmp_path, capsys):
    nx = pytest.importorskip("networkx")
    out = tmp_path / "g.graphml"
    assert _run(["kg", "export", "--dataset", "tiny", "--format", "graphml", "--output", str(out)]) == 0
    g = nx.read_graphml(out)
    assert g.number_of_nodes() == len(stored_graph.entities)
    assert g.number_of_edges() == len(stored_graph.triples)
    assert g.nodes["genre:science fiction"]["name"] == "Science-Fiction"
    assert g.nodes["item:V1"]["type"] == "item"
    rels = {d["relation"] for _, _, d in g.edges(data=True)}
    assert {"directed_by", "friend_of", "co_consumed_with"} <= rels
    assert f"{len(stored_graph.triples)} edges" in capsys.readouterr().out
    # Plain XML parse agrees.
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ET.parse(out).getroot()
    assert len(root.findall(".//g:edge", ns)) == len(stored_graph.triples)


def test_graphml_without_networkx_has_the_same_counts(stored_graph, tmp_path):
    from reclm_dagster.cli_kg import write_graphml

    out = tmp_path / "plain.graphml"
    nodes, edges = write_graphml(stored_graph.entities, stored_graph.triples, out)
    root = ET.parse(out).getroot()
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    assert len(root.findall(".//g:node", ns)) == nodes == len(stored_graph.entities)
    assert len(root.findall(".//g:edge", ns)) == edges == len(stored_graph.triples)
    nx = pytest.importorskip("networkx")
    assert nx.read_graphml(out).number_of_edges() == edges


def test_csv_export_default_location(stored_graph):
    assert _run(["kg", "export", "--dataset", "tiny", "--format", "csv"]) == 0
    folder = settings.reclm_home() / "exports" / "tiny_kg"
    assert len(pd.read_csv(folder / "triples.csv")) == len(stored_graph.triples)
    assert len(pd.read_csv(folder / "entities.csv")) == len(stored_graph.entities)
    assert (folder / "relations.csv").is_file()


def test_missing_graph_is_a_one_line_error(stored_graph):
    from reclm_dagster.serving import ReclmError

    with pytest.raises(ReclmError, match="reclm run --dataset nope"):
        _run(["kg", "export", "--dataset", "nope"])


# ---------------------------------------------------------------- exports never overwrite or delete what is not theirs

def _export(fmt, out, *extra):
    return _run(["kg", "export", "--dataset", "tiny", "--format", fmt, "--output", str(out), *extra])


def _staging_left(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith((".reclm-kg-", ".kg-"))]


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_csv_export_never_deletes_a_users_folder(stored_graph, tmp_path, force):
    from reclm_dagster.serving import ReclmError

    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "precious.txt").write_text("keep me")
    (mine / "sub" / "more.txt").write_text("me too")
    with pytest.raises(ReclmError, match="already exists.*not a reclm export"):
        _export("csv", mine, *force)
    assert (mine / "precious.txt").read_text() == "keep me" and (mine / "sub" / "more.txt").is_file()
    assert sorted(p.name for p in mine.iterdir()) == ["precious.txt", "sub"]
    assert not _staging_left(tmp_path)


def test_output_dot_leaves_the_working_directory_alone(stored_graph, tmp_path, monkeypatch):
    from reclm_dagster.serving import ReclmError

    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("x")
    monkeypatch.chdir(work)
    for fmt in ("csv", "graphml"):
        with pytest.raises(ReclmError, match="already exists"):
            _export(fmt, ".", "--force")
    assert [p.name for p in work.iterdir()] == ["notes.txt"]


def test_force_replaces_only_an_earlier_csv_export(stored_graph, tmp_path):
    from reclm_dagster.serving import ReclmError

    out = tmp_path / "kg"
    assert _export("csv", out) == 0
    assert (out / ".reclm-export").is_file() and (out / "triples.csv").is_file()
    with pytest.raises(ReclmError, match="pass --force"):
        _export("csv", out)
    (out / "triples.csv").write_text("stale")
    assert _export("csv", out, "--force") == 0
    assert len(pd.read_csv(out / "triples.csv")) == len(stored_graph.triples)
    (out / "my-analysis.ipynb").write_text("{}")  # the user's file in the export folder: not replaced
    with pytest.raises(ReclmError, match="did not write.*my-analysis.ipynb"):
        _export("csv", out, "--force")
    assert (out / "my-analysis.ipynb").is_file()
    assert not _staging_left(tmp_path)


def test_force_replaces_only_an_earlier_graphml_export(stored_graph, tmp_path):
    from reclm_dagster.serving import ReclmError

    theirs = tmp_path / "theirs.graphml"
    theirs.write_text("<?xml version='1.0'?>\n<graphml><graph/></graphml>\n")
    with pytest.raises(ReclmError, match="not a GraphML file written by reclm"):
        _export("graphml", theirs, "--force")
    assert theirs.read_text().startswith("<?xml version='1.0'?>\n<graphml>")
    ours = tmp_path / "ours.graphml"
    assert _export("graphml", ours) == 0
    with pytest.raises(ReclmError, match="pass --force"):
        _export("graphml", ours)
    assert _export("graphml", ours, "--force") == 0
    link = tmp_path / "link.graphml"
    link.symlink_to(ours)
    with pytest.raises(ReclmError, match="symbolic link"):
        _export("graphml", link, "--force")
    assert not _staging_left(tmp_path)


def test_default_location_is_replaced_by_a_new_export(stored_graph):
    for _ in range(2):  # RECLM_HOME/exports is reclm's own: a re-export needs no --force
        assert _run(["kg", "export", "--dataset", "tiny", "--format", "csv"]) == 0


def test_unwritable_output_is_one_line_exit_2(stored_graph, tmp_path, capsys):
    from reclm_dagster.cli import main

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for fmt in ("csv", "graphml"):
        assert main(["kg", "export", "--dataset", "tiny", "--format", fmt, "--output", str(a_file / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert "cannot write the export" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert a_file.read_text() == "x"
