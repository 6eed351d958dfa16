"""Catalogue changes -> the next retrain's data: the export stage's snapshot of the overlay, ingest folding it
into the items table (added rows in, retired items and their interactions out) and a new data version."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components.catalogue_overlay import OVERLAY_ENV, OverlayStore
from components.config import load_settings
from sessionflow import stages
from tests.unit.test_feedback_merge import _project


@pytest.fixture
def project(tmp_path, monkeypatch):
    _project(tmp_path)  # items i0..i5, 3 users x 4 clicks
    monkeypatch.delenv(OVERLAY_ENV, raising=False)
    monkeypatch.setenv("SESSIONFLOW_FEEDBACK_DB", str(tmp_path / "live" / "feedback.db"))
    return tmp_path


def test_export_then_ingest_folds_the_changes_in(project):
    settings = load_settings(None, {"data.dataset_spec": str(project / "spec.yaml")})
    snapshot = project / "data" / "catalogue" / "tiny" / "changes.parquet"
    empty = stages.run_catalogue_export(settings, project)  # no overlay yet: an empty snapshot all the same
    assert empty.n_added == 0 and snapshot.is_file() and pd.read_parquet(snapshot).empty
    assert not (project / "data" / "catalogue" / "overlay.json").exists()
    plain = stages.run_ingest(settings, project)
    assert plain.catalogue_hash is None and plain.n_items == 6 and plain.n_interactions == 12

    store = OverlayStore(project / "data" / "catalogue" / "overlay.json")  # where `sessionflow serve` writes
    store.add(
        [
            {
                "item_id": "i9",
                "title": "Brand new",
                "text": "Brand new",
                "categories": ["New"],
                "year": 2025,
                "attributes": {"brand": "Acme"},
            },
            {
                "item_id": "i1",
                "title": "Item 1, renamed",
                "text": "Item 1, renamed",
                "categories": [],
                "year": None,
                "attributes": {},
            },
        ]  # fmt: skip
    )
    store.retire(["i0"], served={"i0": True})
    out = stages.run_catalogue_export(settings, project)
    assert (out.n_added, out.n_retired, out.revision, out.rewritten) == (2, 1, 2, True)
    mtime = snapshot.stat().st_mtime_ns
    again = stages.run_catalogue_export(settings, project)
    assert again.rewritten is False and snapshot.stat().st_mtime_ns == mtime  # caches keyed on it stay
    assert not stages.ingest_is_current(settings, project)  # the snapshot is an input of ingest

    merged = stages.run_ingest(settings, project)
    assert merged.data_hash != plain.data_hash and merged.catalogue_hash == out.catalogue_hash
    assert (merged.n_catalogue_added, merged.n_catalogue_replaced, merged.n_catalogue_retired) == (1, 1, 1)
    interim = project / "data" / "interim" / "tiny"
    items = pd.read_parquet(interim / "items.parquet").set_index("item_id")
    interactions = pd.read_parquet(interim / "interactions.parquet")
    assert "i0" not in items.index and "i0" not in set(interactions["item_id"])
    assert merged.n_retired_interactions_dropped == plain.n_interactions - merged.n_interactions > 0
    assert items.loc["i1", "title"] == "Item 1, renamed" and items.loc["i9", "year"] == 2025
    assert json.loads(items.loc["i9", "attributes"]) == {"brand": "Acme"}
    assert list(items.loc["i9", "categories"]) == ["New"]
    assert (
        merged.data_hash == stages.run_ingest(settings, project).data_hash
    )  # the same data, the same version

    # the retrain's lineage records the changes; without them the data version is the raw one again
    assert stages.lineage(settings, project, merged).data.catalogue_hash == out.catalogue_hash
    off = load_settings(
        None, {"data.dataset_spec": str(project / "spec.yaml"), "data.include_catalogue_changes": False}
    )
    assert stages.run_ingest(off, project).data_hash == plain.data_hash


def test_validation_and_features_take_the_added_item(project):
    settings = load_settings(
        None,
        {
            "data.dataset_spec": str(project / "spec.yaml"),
            "features.item_scope": "catalogue",
            "features.text_embeddings": False,
        },
    )
    OverlayStore(project / "data" / "catalogue" / "overlay.json").add(
        [
            {
                "item_id": "i9",
                "title": "Brand new",
                "text": "",
                "categories": [],
                "year": None,
                "attributes": {},
            }
        ]
    )
    stages.run_catalogue_export(settings, project)
    stages.run_ingest(settings, project)
    stages.run_validate(settings, project)
    stages.run_featurize(settings, project)
    vocab = json.loads((project / "data" / "processed" / "tiny" / "features" / "vocab.json").read_text())
    assert "i9" in vocab["item_ids"]  # item_scope: catalogue -- a cold item until it gets interactions
