"""Adapters produce canonical tables; sessions by inactivity gap; dataset pull verifies hashes."""

from pathlib import Path

import pandas as pd
import pytest

from components.datasets import DatasetSpec, DataUnavailableError, builtin_spec, load_spec, pull
from components.ingest import assign_sessions, ingest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def test_sessions_split_on_inactivity_gap():
    t = pd.to_datetime(
        ["2020-01-01 10:00", "2020-01-01 10:10", "2020-01-01 11:00", "2020-01-01 10:05"], utc=True
    )
    df = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "timestamp": t})
    out = assign_sessions(df, gap_minutes=30)
    assert out["session_id"].tolist() == ["a-0", "a-0", "a-1", "b-0"]


def test_interactions_csv_spec_with_items(tmp_path):
    (tmp_path / "log.csv").write_text(
        "visitor,sku,ts,kind\nu1,p1,1600000000,click\nu1,p2,1600000060,cart\nu2,p1,bad,click\n"
    )
    (tmp_path / "products.csv").write_text("sku,name,cats\np1,Red shoe,shoes|red\np2,Blue hat,hats\n")
    (tmp_path / "spec.yaml").write_text(
        "name: shop\nformat: interactions-csv\npath: log.csv\ntimestamp_unit: s\n"
        "columns: {user_id: visitor, item_id: sku, timestamp: ts, event: kind}\n"
        "items: {path: products.csv, columns: {item_id: sku, title: name, categories: cats}}\n"
    )
    data = ingest(load_spec(tmp_path / "spec.yaml"))
    inter = data.interactions
    assert len(inter) == 3  # the unparseable timestamp is kept (validation quarantines it)
    assert inter["timestamp"].isna().sum() == 1
    assert inter["event"].tolist()[:2] == ["click", "cart"]
    assert data.items.set_index("item_id").loc["p1", "categories"] == ["shoes", "red"]
    assert len(data.data_hash) == 64


def test_spec_errors_are_readable(tmp_path):
    (tmp_path / "log.csv").write_text("a,b\n1,2\n")
    (tmp_path / "spec.yaml").write_text("name: x\nformat: interactions-csv\npath: log.csv\n")
    with pytest.raises(ValueError, match="not in the file"):
        ingest(load_spec(tmp_path / "spec.yaml"))
    (tmp_path / "bad.yaml").write_text("name: x\nformat: nope\npath: log.csv\n")
    with pytest.raises(ValueError, match="invalid dataset spec"):
        load_spec(tmp_path / "bad.yaml")
    spec = DatasetSpec(name="x", format="sequence-lines", path="${SF_UNSET_VAR_FOR_TEST}/a.txt")
    with pytest.raises(ValueError, match="unset environment variable SF_UNSET_VAR_FOR_TEST"):
        spec.resolve(spec.path)


def test_a_relative_mirror_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    """SESSIONFLOW_DATA_MIRROR=../shared/datasets (as the README has it) was read from the spec's folder."""
    (tmp_path / "specs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SF_MIRROR_FOR_TEST", "mirror")
    spec = DatasetSpec(name="x", format="sequence-lines", path="${SF_MIRROR_FOR_TEST}/a.txt")
    spec.base_dir = str(tmp_path / "specs")
    assert spec.resolve(spec.path) == tmp_path / "mirror" / "a.txt"
    assert spec.resolve("data/$SF_MIRROR_FOR_TEST.txt") == tmp_path / "specs" / "data" / "mirror.txt"


def test_sequence_lines(tmp_path):
    (tmp_path / "seq.txt").write_text("1 10 11 12\n2 11 13\n")
    data = ingest(DatasetSpec(name="s", format="sequence-lines", path=str(tmp_path / "seq.txt")))
    inter = data.interactions
    assert inter[inter.user_id == "1"]["item_id"].tolist() == ["10", "11", "12"]
    assert inter[inter.user_id == "1"]["timestamp"].is_monotonic_increasing
    assert set(data.items["item_id"]) == {"10", "11", "12", "13"}


@pytest.mark.skipif(not (SHARED / "ml-100k" / "u.data").is_file(), reason="shared datasets not present")
def test_pull_from_mirror_verifies_and_ml100k_ingests(tmp_path):
    raw = tmp_path / "raw"
    folder = pull("ml-100k", raw, mirror=str(SHARED))
    assert (folder / "u.data").is_file()
    assert pull("ml-100k", raw, mirror=str(SHARED)) == folder  # second pull verifies the copy
    data = ingest(builtin_spec("ml-100k", raw))
    assert len(data.interactions) == 100_000 and len(data.items) == 1682
    toy = data.items.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story (1995)" and "Comedy" in toy["categories"] and toy["year"] == 1995
    (folder / "u.data").write_text("tampered")
    with pytest.raises(DataUnavailableError, match="sha256"):
        pull("ml-100k", raw, mirror=str(SHARED))


def test_pull_says_what_is_missing(tmp_path):
    with pytest.raises(DataUnavailableError, match="lacks"):
        pull("amazon-beauty", tmp_path / "raw", mirror=str(tmp_path))
    with pytest.raises(ValueError, match="unknown dataset"):
        pull("nope", tmp_path / "raw", mirror=str(tmp_path))


def _atomic(folder: Path) -> None:
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    (folder / "Toy.train.inter").write_text(header + "0\t0\t1\n0\t0 1\t2\n1\t3\t1\n")
    (folder / "Toy.valid.inter").write_text(header + "0\t0 1 2\t3\n1\t3 1\t0\n")
    (folder / "Toy.test.inter").write_text(header + "0\t0 1 2 3\t2\n1\t3 1 0\t2\n")
    (folder / "Toy.item2index").write_text("A1\t0\nB2\t1\nC3\t2\nD4\t3\n")
    (folder / "Toy.user2index").write_text("alice\t0\nbob\t1\n")
    (folder / "Toy.text").write_text(
        "item_id:token\ttext:token_seq\n"
        "A1\tGorilla Glue, 8 oz. Industrial & Scientific Tapes. Gorilla. \n"
        "B2\tDAP 10.1oz Caulk. Caulk Latex. DAP. \n"
        "C3\tNo full stop here\n"
    )


def test_recbole_atomic_reads_full_sequences_and_item_text(tmp_path):
    _atomic(tmp_path)
    data = ingest(DatasetSpec(name="toy", format="recbole-atomic", path=str(tmp_path)))
    inter = data.interactions
    assert inter[inter.user_id == "alice"]["item_id"].tolist() == ["A1", "B2", "C3", "D4", "C3"]
    assert inter[inter.user_id == "bob"]["item_id"].tolist() == ["D4", "B2", "A1", "C3"]
    assert inter.groupby("user_id")["timestamp"].apply(lambda t: t.is_monotonic_increasing).all()
    items = data.items.set_index("item_id")
    assert items.loc["A1", "title"] == "Gorilla Glue, 8 oz"
    assert items.loc["A1", "text"] == "Gorilla Glue, 8 oz. Industrial & Scientific Tapes. Gorilla."
    assert items.loc["B2", "title"] == "DAP 10.1oz Caulk"
    assert items.loc["C3", "title"] == "No full stop here"
    assert items.loc["D4", "text"] == ""  # in the log, not in the text file: kept with an empty text


def test_recbole_atomic_errors_are_readable(tmp_path):
    with pytest.raises(ValueError, match="exactly one <name>.test.inter"):
        ingest(DatasetSpec(name="toy", format="recbole-atomic", path=str(tmp_path)))
    _atomic(tmp_path)
    (tmp_path / "Toy.valid.inter").unlink()
    with pytest.raises(FileNotFoundError, match="Toy.valid.inter is missing"):
        ingest(DatasetSpec(name="toy", format="recbole-atomic", path=str(tmp_path)))


@pytest.mark.skipif(not (SHARED / "amazon-scientific").is_dir(), reason="shared datasets not present")
def test_amazon_scientific_pulls_and_ingests(tmp_path):
    path = pull("amazon-scientific", tmp_path / "raw", mirror=str(SHARED))
    data = ingest(builtin_spec("amazon-scientific", tmp_path / "raw"))
    assert path.is_dir()
    assert data.interactions["user_id"].nunique() == 2928
    assert len(data.interactions) == 19712
    assert len(data.items) == 1585 and (data.items["text"].str.len() > 0).all()


def test_item_attributes_from_a_shop_file_feed_catalogue_facets(tmp_path):
    """attributes.<key> columns (brand, price) reach the items table as JSON, where facets read them."""
    import json

    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import ConversationEngine
    from tests.unit.dialogue_fixtures import tiny_index

    (tmp_path / "log.csv").write_text("visitor,sku,ts\nu1,p1,1600000000\nu1,p2,1600000060\n")
    (tmp_path / "products.csv").write_text(
        "sku,name,maker,usd\np1,Wood glue,Titebond,7.5\np2,Epoxy glue,Gorilla,12\np3,Super glue,Gorilla,\n"
    )
    (tmp_path / "spec.yaml").write_text(
        "name: shop\nformat: interactions-csv\npath: log.csv\ntimestamp_unit: s\n"
        "columns: {user_id: visitor, item_id: sku, timestamp: ts}\n"
        "items: {path: products.csv, columns: {item_id: sku, title: name, "
        "attributes.brand: maker, attributes.price: usd}}\n"
    )
    items = ingest(load_spec(tmp_path / "spec.yaml")).items.set_index("item_id")
    attrs = {i: json.loads(a) for i, a in items["attributes"].items()}
    assert attrs == {
        "p1": {"brand": "Titebond", "price": "7.5"},  # as written; the price facet parses it
        "p2": {"brand": "Gorilla", "price": "12"},
        "p3": {"brand": "Gorilla", "price": None},
    }
    facets = [
        {"name": "brand", "kind": "category", "column": "attributes.brand", "proper_names": True},
        {"name": "price", "kind": "number", "column": "attributes.price", "unit": "$"},
    ]
    index, predictor = tiny_index(
        list(items["title"]), attributes=[attrs[i] for i in items.index], facets=facets
    )
    engine = ConversationEngine(predictor, index, ConversationConfig(), None)
    answer = engine.chat("s", "glue under $10, not Gorilla", k=3)
    assert [i.title for i in answer.items] == ["Wood glue"], answer.reply

    (tmp_path / "bad.yaml").write_text(
        (tmp_path / "spec.yaml").read_text().replace("attributes.price: usd", "attributes.price: cost")
    )
    with pytest.raises(ValueError, match=r"products.csv: items file has no column\(s\) \['cost'\]"):
        ingest(load_spec(tmp_path / "bad.yaml"))
