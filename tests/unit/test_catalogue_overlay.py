"""The catalogue overlay (components/catalogue_overlay.py): row validation, the durable store, the snapshot
and its merge into the ingested tables."""

from __future__ import annotations

import json
import os
import threading

import pandas as pd
import pytest

from components import catalogue_overlay as co
from components.catalogue_overlay import (
    OverlayError,
    OverlayFull,
    OverlayState,
    OverlayStore,
    merge_catalogue,
    overlay_hash,
    overlay_table,
    validate_rows,
)
from components.facets import CatalogueSpec, FacetSpec

SHOP = CatalogueSpec(
    facets=[
        FacetSpec(name="category", kind="category", column="categories"),
        FacetSpec(name="brand", kind="category", column="attributes.brand"),
        FacetSpec(name="price", kind="number", column="attributes.price", unit="$"),
    ]
)


def row(item_id: str, **extra) -> dict:
    return {"item_id": item_id, "title": f"Item {item_id}", **extra}


# -- validation --
def test_valid_rows_become_canonical():
    accepted, rejected = validate_rows(
        [
            {"item_id": 42, "title": "  Glue  ", "categories": "Tools| Glue |Tools", "year": "2020"},
            {
                "item_id": "g2",
                "title": "Gel",
                "text": "a gel",
                "year": 2021.0,
                "attributes": '{"brand": "X"}',
            },
            {"item_id": "g3", "title": "Tape", "year": float("nan"), "attributes": {"price": "$1,299.50"}},
        ],
        SHOP,
    )
    assert rejected == []
    assert accepted[0] == {
        "item_id": "42",
        "title": "Glue",
        "text": "Glue",  # the title when no text is given, as ingest does
        "categories": ["Tools", "Glue"],
        "year": 2020,
        "attributes": {},
    }
    assert accepted[1]["attributes"] == {"brand": "X"} and accepted[1]["year"] == 2021
    assert accepted[2]["year"] is None and accepted[2]["attributes"] == {"price": "$1,299.50"}


@pytest.mark.parametrize(
    ("bad", "field", "text"),
    [
        ({"title": "no id"}, "item_id", "item_id: is required"),
        ({"item_id": "  ", "title": "t"}, "item_id", "must not be empty"),
        ({"item_id": "a\nb", "title": "t"}, "item_id", "control characters"),
        ({"item_id": "x" * 201, "title": "t"}, "item_id", "at most 200"),
        ({"item_id": 1.5, "title": "t"}, "item_id", "valid string"),
        ({"item_id": "x"}, "title", "is required"),
        ({"item_id": "x", "title": "   "}, "title", "at least 1 character"),
        ({"item_id": "x", "title": "t", "year": "soon"}, "year", "'soon' is not a year"),
        ({"item_id": "x", "title": "t", "year": 99}, "year", "between 1000 and 2999"),
        ({"item_id": "x", "title": "t", "year": True}, "year", "must be a year"),
        ({"item_id": "x", "title": "t", "categories": {"a": 1}}, "categories", "list of strings"),
        ({"item_id": "x", "title": "t", "categories": ["ok", 3]}, "categories", "value 1 must be a string"),
        ({"item_id": "x", "title": "t", "attributes": [1]}, "attributes", "must be an object"),
        ({"item_id": "x", "title": "t", "attributes": "{nope"}, "attributes", "not a valid JSON object"),
        ({"item_id": "x", "title": "t", "attributes": {"a": {"b": 1}}}, "attributes", "'a' must be a string"),
        (
            {"item_id": "x", "title": "t", "attributes": {"price": "cheap"}},
            "attributes.price",
            "not a number",
        ),
        ({"item_id": "x", "title": "t", "genre": "Drama"}, "genre", "unknown field"),
    ],
)
def test_a_bad_row_is_refused_naming_its_field(bad, field, text):
    accepted, rejected = validate_rows([row("fine"), bad], SHOP)
    assert [r["item_id"] for r in accepted] == ["fine"]
    [refused] = rejected
    assert refused.row == 1 and refused.field == field and text in refused.reason, refused
    assert refused.reason.startswith(f"{field}: ")


def test_a_repeated_id_and_a_non_object_are_refused():
    accepted, rejected = validate_rows([row("a"), "text", row("a", title="again")])
    assert [r["item_id"] for r in accepted] == ["a"]
    assert [(r.row, r.item_id, r.field) for r in rejected] == [(1, None, ""), (2, "a", "item_id")]
    assert "repeats row 0" in rejected[1].reason and "JSON object" in rejected[0].reason


# -- the store --
def test_add_retire_restore_and_revisions(tmp_path):
    store = OverlayStore(tmp_path / "catalogue" / "overlay.json")
    assert store.read().empty and store.signature() is None
    state, report = store.add([row("n1"), row("7")], served={"7": True})
    assert (report.added, report.updated, state.revision) == (["n1"], ["7"], 1)
    state, report = store.retire(["7", "n1", "zz", "7"], served={"7": True})
    assert report.retired == ["7", "n1"] and [r.item_id for r in report.rejected] == ["zz"]
    assert report.rejected[0].row == 2 and state.items == {} and set(state.retired) == {"7", "n1"}
    state, report = store.retire(["7"])
    assert report.already_retired == ["7"] and state.revision == 2  # nothing changed: same revision
    state, report = store.add([row("7", title="Seven")], served={"7": True})
    assert report.restored == ["7"] and "7" not in state.retired and state.revision == 3
    on_disk = json.loads(store.path.read_text())
    assert on_disk["format"] == 1 and on_disk["revision"] == 3 and on_disk["items"]["7"]["title"] == "Seven"
    assert store.read().items["7"]["changed_at"]


def test_a_failed_write_leaves_the_previous_version(tmp_path, monkeypatch):
    store = OverlayStore(tmp_path / "overlay.json")
    store.add([row("a")])
    before = store.path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(co.os, "replace", crash)
    with pytest.raises(OverlayError, match="cannot write the catalogue overlay.*No space left"):
        store.add([row("b")])
    assert store.path.read_bytes() == before  # the acknowledged version is intact
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_every_write_is_fsynced_before_it_is_acknowledged(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(co.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    OverlayStore(tmp_path / "overlay.json").add([row("a")])
    assert len(synced) == 2  # the new file, then its folder (the rename)


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "overlay.json"

    def writer(n: int) -> None:
        store = OverlayStore(path)  # one store each, as two replicas would have
        for i in range(10):
            store.add([row(f"w{n}-{i}")])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = OverlayStore(path).read()
    assert len(state.items) == 40 and state.revision == 40


def test_an_unreadable_overlay_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "overlay.json"
    path.write_text("{not json")
    with pytest.raises(OverlayError, match="overlay.json: the catalogue overlay is not valid JSON"):
        OverlayStore(path).read()
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(OverlayError, match="not a catalogue overlay of format 1"):
        OverlayStore(path).read()


def test_the_overlay_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(co, "MAX_OVERLAY_ITEMS", 3)
    store = OverlayStore(tmp_path / "overlay.json")
    store.add([row("a"), row("b")])
    with pytest.raises(OverlayFull, match="more than 3 added items: retrain"):
        store.add([row("c"), row("d")])
    assert len(store.read().items) == 2


def test_refused_rows_are_kept_with_their_reason(tmp_path):
    store = OverlayStore(tmp_path / "overlay.json")
    rows = [row("a"), {"item_id": "b", "title": "t", "year": "x"}]
    _, rejected = validate_rows(rows)
    store.keep_rejected(rejected, rows, "test")
    [kept] = [json.loads(line) for line in store.rejected_path.read_text().splitlines()]
    assert kept["row"] == 1 and kept["field"] == "year" and kept["source"] == "test"
    assert json.loads(kept["input"])["year"] == "x"


def test_default_paths(tmp_path):
    assert co.default_overlay_path(tmp_path, {}) == tmp_path / "data" / "catalogue" / "overlay.json"
    env = {co.OVERLAY_ENV: str(tmp_path / "elsewhere.json")}
    assert co.default_overlay_path(tmp_path / "x", env) == tmp_path / "elsewhere.json"


# -- retraining: snapshot and merge --
def test_snapshot_and_merge_into_the_ingested_tables(tmp_path):
    store = OverlayStore(tmp_path / "overlay.json")
    store.add([row("new", categories=["Documentary"], year=2024, attributes={"brand": "B"}), row("2")])
    state, _ = store.retire(["3"], served={"3": True})
    table = overlay_table(state)
    assert table["item_id"].tolist() == ["new", "2", "3"] and table["retired"].tolist() == [
        False,
        False,
        True,
    ]
    assert overlay_hash(table) == overlay_hash(overlay_table(OverlayStore(store.path).read()))
    assert overlay_hash(table) != overlay_hash(overlay_table(OverlayState()))

    items = pd.DataFrame({"item_id": ["1", "2", "3"], "title": ["One", "Two", "Three"]})
    interactions = pd.DataFrame({"item_id": ["1", "3", "2", "3"], "user_id": ["u"] * 4})
    merged = merge_catalogue(items, interactions, table)
    assert merged.items["item_id"].tolist() == ["1", "new", "2"]
    assert merged.items.set_index("item_id").loc["2", "title"] == "Item 2"  # re-described
    assert merged.items.set_index("item_id").loc["new", "categories"] == ["Documentary"]
    assert json.loads(merged.items.set_index("item_id").loc["new", "attributes"]) == {"brand": "B"}
    assert merged.interactions["item_id"].tolist() == ["1", "2"]
    assert (merged.n_added, merged.n_replaced, merged.n_retired, merged.n_interactions_dropped) == (
        1,
        1,
        1,
        2,
    )
    same = merge_catalogue(items, interactions, overlay_table(OverlayState()))
    assert same.items is items and same.interactions is interactions
