"""Feedback -> new data version: merge_feedback (pure), the export stage's snapshot, ingest's merge."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.config import load_settings
from components.feedback_log import (
    FEEDBACK_DB_ENV,
    FEEDBACK_URL_ENV,
    KEY_ENV,
    FeedbackLog,
    default_feedback_url,
    negative_feedback,
    read_feedback,
)
from components.ingest import FEEDBACK_SESSION_PREFIX, CanonicalData, feedback_hash, merge_feedback
from components.schema import INTERACTION_COLUMNS, coerce_interactions, coerce_items
from sessionflow import stages

T0 = pd.Timestamp("2024-01-01T00:00:00Z")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in (FEEDBACK_URL_ENV, FEEDBACK_DB_ENV, KEY_ENV):
        monkeypatch.delenv(var, raising=False)


def _data() -> CanonicalData:
    inter = coerce_interactions(
        pd.DataFrame(
            {
                "user_id": ["a", "a", "b"],
                "session_id": ["a-0", "a-0", "b-0"],
                "item_id": ["1", "2", "3"],
                "timestamp": [T0, T0 + pd.Timedelta(minutes=1), T0],
                "event": ["click"] * 3,
                "value": [float("nan")] * 3,
            }
        )
    )
    items = coerce_items(pd.DataFrame({"item_id": ["1", "2", "3"], "title": ["One", "Two", "Three"]}))
    return CanonicalData(inter, items, "raw-hash", source_has_sessions=False)


def _feedback(rows: list[tuple[str, str, str, float | None]]) -> pd.DataFrame:
    """rows: (session_id, item_id, event, value); one pseudonymous user per session."""
    return coerce_interactions(
        pd.DataFrame(
            {
                "user_id": [f"u_{s}" for s, *_ in rows],
                "session_id": [s for s, *_ in rows],
                "item_id": [i for _, i, *_ in rows],
                "timestamp": [T0 + pd.Timedelta(hours=1, minutes=n) for n in range(len(rows))],
                "event": [e for _, _, e, _ in rows],
                "value": [v for *_, v in rows],
            }
        )
    )


MIXED = [
    ("s1", "1", "click", None),
    ("s1", "2", "like", None),
    ("s1", "3", "dislike", None),
    ("s1", "1", "skip", None),
    ("s2", "2", "rating", 2.0),
    ("s2", "3", "rating", 3.0),
    ("s2", "1", "rating", 5.0),
    ("s2", "zzz", "purchase", None),  # unknown item: kept, validation quarantines it (unknown_item)
]


def test_negative_feedback_mask() -> None:
    fb = _feedback(MIXED)
    assert negative_feedback(fb).tolist() == [False, False, True, True, True, False, False, False]


def test_merge_appends_positive_feedback_only_and_changes_the_hash() -> None:
    data, fb = _data(), _feedback(MIXED)
    before = data.interactions.copy()
    merged = merge_feedback(data, fb)

    assert list(merged.interactions.columns) == list(before.columns)
    assert set(before.columns) == set(INTERACTION_COLUMNS)
    assert merged.interactions.dtypes.equals(before.dtypes)
    pd.testing.assert_frame_equal(merged.interactions.iloc[:3], before)  # source rows first, untouched
    added = merged.interactions.iloc[3:]
    assert added["item_id"].tolist() == ["1", "2", "3", "1", "zzz"]
    assert added["event"].tolist() == ["click", "like", "rating", "rating", "purchase"]
    assert added["value"].tolist()[2:4] == [3.0, 5.0]
    assert (added["session_id"].str.startswith(FEEDBACK_SESSION_PREFIX)).all()
    assert added["user_id"].tolist() == ["u_s1", "u_s1", "u_s2", "u_s2", "u_s2"]
    assert merged.items is data.items and merged.source_has_sessions is False
    assert merged.data_hash != data.data_hash and len(merged.data_hash) == 64
    pd.testing.assert_frame_equal(data.interactions, before)  # pure: the input is not modified
    assert data.data_hash == "raw-hash"


def test_hash_is_a_function_of_raw_hash_and_feedback_content() -> None:
    data = _data()
    version = merge_feedback(data, _feedback(MIXED)).data_hash
    assert merge_feedback(data, _feedback(MIXED)).data_hash == version  # deterministic
    other = MIXED[:-1] + [("s2", "zzz", "purchase", 1.0)]
    assert merge_feedback(data, _feedback(other)).data_hash != version
    moved = CanonicalData(data.interactions, data.items, "other-raw-hash", False)
    assert merge_feedback(moved, _feedback(MIXED)).data_hash != version
    # negatives count for the data version even though they never become training rows
    only_negative = merge_feedback(data, _feedback([("s9", "1", "dislike", None)]))
    assert len(only_negative.interactions) == len(data.interactions)
    assert only_negative.data_hash != data.data_hash
    # no feedback: the same data version as before feedback existed
    assert merge_feedback(data, _feedback([])) is data
    # the hash does not depend on dtypes a parquet round trip may change
    assert feedback_hash(_feedback(MIXED).astype({"item_id": object})) == feedback_hash(_feedback(MIXED))


def test_default_feedback_url_resolution_is_shared_with_the_service(tmp_path) -> None:
    from bento.schemas import feedback_log_url

    root = tmp_path / "project"
    assert default_feedback_url(root, {}) == f"sqlite:///{root.resolve()}/data/feedback/feedback.db"
    env = {FEEDBACK_DB_ENV: str(tmp_path / "x.db")}
    assert default_feedback_url(root, env) == f"sqlite:///{tmp_path / 'x.db'}"
    env[FEEDBACK_URL_ENV] = "postgresql://u:p@host/db"
    assert default_feedback_url(root, env) == "postgresql://u:p@host/db"
    (root).mkdir()
    (root / "pyproject.toml").write_text("")
    for e in ({}, {FEEDBACK_DB_ENV: str(tmp_path / "x.db")}, env):
        assert feedback_log_url(e, source_root=root) == default_feedback_url(root, e)


def test_read_feedback_never_creates_a_log_or_a_key(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/fb/feedback.db"
    assert read_feedback(url).empty and not (tmp_path / "fb").exists()
    with FeedbackLog(url) as log:
        log.append({"session_id": "s", "item_id": "1", "event": "click"})
    key = (tmp_path / "fb" / "feedback.db.key").read_text()
    assert len(read_feedback(url)) == 1
    assert (tmp_path / "fb" / "feedback.db.key").read_text() == key
    with FeedbackLog(url, read_only=True) as ro, pytest.raises(RuntimeError, match="read-only"):
        ro.append({"session_id": "s", "item_id": "1", "event": "click"})


def _project(root: Path) -> None:
    """A tiny interactions-csv project (3 users x 4 clicks over 6 items)."""
    rows = [
        (f"u{u}", f"i{(u + t) % 6}", 1_600_000_000 + u * 10_000 + t * 60) for u in range(3) for t in range(4)
    ]
    pd.DataFrame(rows, columns=["visitor", "sku", "ts"]).to_csv(root / "log.csv", index=False)
    pd.DataFrame({"sku": [f"i{i}" for i in range(6)], "name": [f"Item {i}" for i in range(6)]}).to_csv(
        root / "items.csv", index=False
    )
    spec = {
        "name": "tiny",
        "format": "interactions-csv",
        "path": "log.csv",
        "timestamp_unit": "s",
        "columns": {"user_id": "visitor", "item_id": "sku", "timestamp": "ts"},
        "items": {"path": "items.csv", "columns": {"item_id": "sku", "title": "name"}},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))


def test_export_then_ingest_merges_the_snapshot(tmp_path, monkeypatch) -> None:
    _project(tmp_path)
    monkeypatch.setenv(FEEDBACK_DB_ENV, str(tmp_path / "live" / "feedback.db"))
    settings = load_settings(None, {"data.dataset_spec": str(tmp_path / "spec.yaml")})
    snapshot = tmp_path / "data" / "feedback" / "tiny" / "events.parquet"

    empty = stages.run_feedback_export(settings, tmp_path)  # no log yet: an empty snapshot all the same
    assert empty.n_events == 0 and snapshot.is_file() and pd.read_parquet(snapshot).empty
    assert not (tmp_path / "live").exists()
    plain = stages.run_ingest(settings, tmp_path)
    assert plain.n_feedback_events == 0 and plain.n_interactions == 12

    with FeedbackLog(f"sqlite:///{tmp_path}/live/feedback.db") as log:
        log.append_many(
            [
                {"session_id": "chat-1", "item_id": "i1", "event": "click", "timestamp": 1_600_100_000},
                {"session_id": "chat-1", "item_id": "i2", "event": "like", "timestamp": 1_600_100_060},
                {"session_id": "chat-1", "item_id": "i3", "event": "dislike", "timestamp": 1_600_100_120},
            ]
        )
    out = stages.run_feedback_export(settings, tmp_path)
    assert out.n_events == 3 and out.n_negative == 1 and out.rewritten is True
    assert pd.read_parquet(snapshot)["event"].tolist() == ["click", "like", "dislike"]  # negatives kept
    mtime = snapshot.stat().st_mtime_ns
    again = stages.run_feedback_export(settings, tmp_path)
    assert again.rewritten is False and snapshot.stat().st_mtime_ns == mtime  # caches keyed on it stay
    assert again.feedback_hash == out.feedback_hash

    merged = stages.run_ingest(settings, tmp_path)
    assert merged.data_hash != plain.data_hash
    assert merged.n_interactions == 14 and merged.n_feedback_interactions == 2
    assert merged.n_feedback_events == 3 and merged.n_feedback_negative_dropped == 1
    assert merged.sequence_key_auto == "session"
    interim = pd.read_parquet(tmp_path / "data" / "interim" / "tiny" / "interactions.parquet")
    assert interim["session_id"].tolist()[-2:] == ["feedback:chat-1"] * 2
    assert (
        json.loads((tmp_path / "data" / "interim" / "tiny" / "ingest.json").read_text())
        == merged.model_dump()
    )
    assert merged.raw_data_hash == plain.data_hash and merged.feedback_hash == out.feedback_hash

    off = load_settings(
        None, {"data.dataset_spec": str(tmp_path / "spec.yaml"), "data.include_feedback": False}
    )
    assert stages.run_ingest(off, tmp_path).data_hash == plain.data_hash


def test_auto_sequence_key_is_pinned_to_the_source_data(tmp_path) -> None:
    """A rating log stays one sequence per user when feedback clicks arrive."""
    paths = stages.Paths(tmp_path, "ml")
    paths.interim.mkdir(parents=True)
    settings = load_settings(None, {})
    assert stages._pinned_features(settings, paths).sequence_key == "auto"  # no ingest.json: as configured
    (paths.interim / "ingest.json").write_text(json.dumps({"sequence_key_auto": "user"}))
    assert stages._pinned_features(settings, paths).sequence_key == "user"
    explicit = load_settings(None, {"features.sequence_key": "session"})
    assert stages._pinned_features(explicit, paths).sequence_key == "session"


def test_cli_feedback_export_and_stats(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    for var in ("PREFECT_HOME", "BENTOML_HOME", "PREFECT_LOGGING_LEVEL", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(var, os.environ.get(var, str(tmp_path / var.lower())))  # restored afterwards
    for var in ("PREFECT_SERVER_ANALYTICS_ENABLED", "BENTOML_DO_NOT_TRACK", "DO_NOT_TRACK"):
        monkeypatch.setenv(var, os.environ.get(var, "false"))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    _project(tmp_path)
    with FeedbackLog(f"sqlite:///{tmp_path}/data/feedback/feedback.db") as log:  # the project's default log
        log.append({"session_id": "c", "item_id": "i1", "event": "skip"})
    spec = ["--dataset-spec", str(tmp_path / "spec.yaml"), "--root", str(tmp_path)]

    exported = CliRunner().invoke(app, ["feedback", "export", *spec])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["n_negative"] == 1
    stats = CliRunner().invoke(app, ["feedback", "stats", *spec])
    assert stats.exit_code == 0, stats.output
    body = json.loads(stats.output)
    assert body["log"]["n_events"] == body["snapshot"]["n_events"] == 1
    assert body["log"]["by_event"] == {"skip": 1}
