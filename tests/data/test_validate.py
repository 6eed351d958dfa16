"""Data validation stage: GX suites quarantine exactly the planted bad rows, counts add up, the gate works.

GX runs four times (import + context startup dominate); all runs share one module-scoped fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components import expectations as ex
from components.config import ValidateConfig
from components.validate import DataValidationError, ValidationReport, validate_tables

NOT_NULL = "expect_column_values_to_not_be_null"
REGEX = "expect_column_values_to_match_regex"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"


def _ts(base: str, seconds: float) -> str:
    return (pd.Timestamp(base) + pd.Timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _row(user, session, item, ts, event, value=np.nan) -> dict:
    return {
        "user_id": user,
        "session_id": session,
        "item_id": item,
        "timestamp": ts,
        "event": event,
        "value": value,
    }


def clean_items() -> pd.DataFrame:
    return pd.DataFrame(
        {"item_id": [f"i{k}" for k in range(1, 11)], "title": [f"Item {k}" for k in range(1, 11)]}
    )


def clean_interactions() -> pd.DataFrame:
    """30 valid rows: 10 same-second ratings (MovieLens-like), 10 views a minute apart, 10 mixed events."""
    rows = [
        _row("u1", "u1-1", f"i{k}", "2024-01-01T10:00:00.000Z", "rating", float(1 + k % 5))
        for k in range(1, 11)
    ]
    rows += [_row("u2", "u2-1", f"i{k}", _ts("2024-01-02T09:00", 60 * k), "view") for k in range(1, 11)]
    mixed = ["click", "cart", "purchase", "like", "skip", "dislike", "view", "click", "cart", "purchase"]
    rows += [
        _row("u3", "u3-1", f"i{k}", _ts("2024-01-03T12:00", 30 * k), ev) for k, ev in enumerate(mixed, 1)
    ]
    return pd.DataFrame(rows)


def bad_tables() -> tuple[pd.DataFrame, pd.DataFrame, dict[int, str]]:
    """Clean rows (positions 0-29) + planted bad rows (30-60) and the rule each must be quarantined under."""
    good = clean_interactions()
    ok_ts = "2024-01-02T08:00:00.000Z"
    planted = [
        (_row(None, "u2-1", "i1", ok_ts, "view"), f"{NOT_NULL}:user_id"),
        # two faults: the first rule in suite order wins
        (_row(None, "u1-1", "i2", ok_ts, "rating", 9.0), f"{NOT_NULL}:user_id"),
        (_row("u2", "", "i1", ok_ts, "view"), f"{REGEX}:session_id"),
        (_row("u2", "u2-1", "i1", "not-a-date", "view"), f"{NOT_NULL}:timestamp"),
        (_row("u2", "u2-1", "i1", "1985-06-01T00:00:00.000Z", "view"), f"{BETWEEN}:timestamp"),
        (_row("u2", "u2-1", "i1", ok_ts, "teleport"), f"{IN_SET}:event"),
        (_row("u1", "u1-1", "i3", ok_ts, "rating", 9.0), f"{BETWEEN}:value"),
        (_row("u1", "u1-1", "i4", ok_ts, "rating"), f"{NOT_NULL}:value"),
        (_row("u2", "u2-1", "i999", ok_ts, "view"), ex.RULE_UNKNOWN_ITEM),
        # i11 exists in the items table but is rejected there (no title)
        (_row("u2", "u2-1", "i11", ok_ts, "view"), ex.RULE_UNKNOWN_ITEM),
        (good.iloc[10].to_dict(), ex.RULE_DUPLICATE),  # exact copy of u2's first view (row 10)
    ]
    # a bot: 20 clicks within 0.95 s
    planted += [
        (_row("u4", "bot-1", f"i{1 + k % 10}", _ts("2024-01-04T10:00", 0.05 * k), "click"), ex.RULE_BOT)
        for k in range(20)
    ]
    interactions = pd.concat([good, pd.DataFrame([r for r, _ in planted])], ignore_index=True)
    expected = {len(good) + i: rule for i, (_, rule) in enumerate(planted)}
    bad_items = pd.DataFrame(
        {
            "item_id": ["i11", "i1", "", "i12"],
            "title": [None, "Second i1", "No id", "Industrial & Scientific />"],
        }
    )
    items = pd.concat([clean_items(), bad_items], ignore_index=True)
    return interactions, items, expected


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ValidationReport | Path]:
    root = tmp_path_factory.mktemp("validate")
    cfg = ValidateConfig()
    bad_inter, bad_items, _ = bad_tables()
    out: dict[str, ValidationReport | Path] = {"root": root}
    out["clean"] = validate_tables(clean_interactions(), clean_items(), cfg, root / "gx", root / "q", "clean")
    # same process, same GX folder, second call
    out["bad"] = validate_tables(bad_inter, bad_items, cfg, root / "gx", root / "q", "bad")
    # fresh GX folder; lenient gate, and sessions longer than 15 rows rejected
    lenient = ValidateConfig(max_reject_fraction=0.9, max_duplicate_fraction=0.5, max_session_length=15)
    out["lenient"] = validate_tables(bad_inter, bad_items, lenient, root / "gx2", root / "q", "lenient")
    out["no_items"] = validate_tables(
        clean_interactions(), clean_items().iloc[:0], cfg, root / "gx", None, "none"
    )
    return out


def test_clean_tables_pass_untouched(runs):
    rep = runs["clean"]
    assert rep.passed
    assert rep.quarantine.empty
    assert rep.counts["interactions.n_rows_in"] == rep.counts["interactions.n_rows_clean"] == 30
    assert rep.counts["items.n_rows_in"] == rep.counts["items.n_rows_clean"] == 10
    assert rep.counts["n_duplicates"] == 0
    # same-second ratings (MovieLens style) are not a bot session
    assert rep.counts[f"interactions.{ex.RULE_BOT}"] == 0
    assert list(rep.interactions["item_id"]) == list(clean_interactions()["item_id"])  # order kept
    assert str(rep.interactions["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert rep.interactions["value"].dtype == np.float64
    assert Path(rep.data_docs).is_file() and rep.data_docs.endswith("index.html")
    rep.raise_if_failed()


def test_planted_rows_land_under_their_rule(runs):
    _, _, expected = bad_tables()
    q = runs["bad"].quarantine
    got = q[q["table"] == "interactions"].set_index("row")["rule"].to_dict()
    assert got == expected  # exactly the planted rows, nothing clean
    clean = runs["bad"].interactions
    assert len(clean) == 30
    assert list(clean["item_id"]) == list(clean_interactions()["item_id"])


def test_item_rules(runs):
    q = runs["bad"].quarantine
    got = q[q["table"] == "items"].set_index("row")["rule"].to_dict()
    assert got == {
        10: f"{NOT_NULL}:title",
        11: ex.RULE_DUPLICATE_ITEM,
        12: f"{REGEX}:item_id",
        13: ex.RULE_TITLE_MARKUP,
    }
    reasons = q[q["table"] == "items"].set_index("row")["reason"].to_dict()
    assert "holds HTML markup" in reasons[13]
    assert list(runs["bad"].items["item_id"]) == [f"i{k}" for k in range(1, 11)]
    assert runs["bad"].items.loc[0, "title"] == "Item 1"  # the first i1 is kept, the later one rejected


def test_counts_add_up_by_hand(runs):
    c = runs["bad"].counts
    i = "interactions."
    assert c[f"{i}n_rows_in"] == 61 and c[f"{i}n_rows_clean"] == 30 and c[f"{i}n_quarantined"] == 31
    assert c[f"{i}{NOT_NULL}:user_id"] == 2
    assert c[f"{i}{REGEX}:session_id"] == 1
    assert c[f"{i}{NOT_NULL}:timestamp"] == 1
    assert c[f"{i}{BETWEEN}:timestamp"] == 1
    assert c[f"{i}{IN_SET}:event"] == 1
    assert c[f"{i}{BETWEEN}:value"] == 1
    assert c[f"{i}{NOT_NULL}:value"] == 1
    assert c[f"{i}{ex.RULE_UNKNOWN_ITEM}"] == 2
    assert c[f"{i}{ex.RULE_DUPLICATE}"] == 1 and c["n_duplicates"] == 1
    assert c[f"{i}{ex.RULE_BOT}"] == 20
    assert c[f"{i}{ex.RULE_SESSION_LENGTH}"] == 0
    rule_total = sum(v for k, v in c.items() if k.startswith(i) and not k.startswith(f"{i}n_"))
    assert rule_total == 31
    assert c["items.n_rows_in"] == 14 and c["items.n_rows_clean"] == 10 and c["items.n_quarantined"] == 4


def test_reasons_are_readable(runs):
    q = runs["bad"].quarantine.set_index(["table", "row"])
    reason = q["reason"]
    assert "not-a-date" in reason[("interactions", 33)]
    assert reason[("interactions", 36)] == "rating 9.0 is outside [0.5, 5]"
    assert "i999" in reason[("interactions", 38)]
    assert reason[("interactions", 40)] == "exact duplicate of row 10"
    assert "21.1 events/s" in reason[("interactions", 41)]  # 20 events over 0.95 s
    assert reason[("items", 11)] == "item_id 'i1' is already defined in row 0"
    assert q.loc[("interactions", 33), "timestamp"] == "not-a-date"  # original value kept


def test_too_many_bad_rows_fail_the_gate(runs):
    rep = runs["bad"]
    assert not rep.passed
    with pytest.raises(DataValidationError) as err:
        rep.raise_if_failed()
    msg = str(err.value)
    assert "max_reject_fraction" in msg
    assert f"interactions.{ex.RULE_BOT}" in msg and f"interactions.{ex.RULE_UNKNOWN_ITEM}" in msg
    assert "items.duplicate_item_id" in msg
    assert rep.data_docs and rep.data_docs in msg


def test_lenient_config_passes_and_still_writes_quarantine(runs):
    rep = runs["lenient"]
    assert rep.passed
    # max_session_length=15: the 20-row bot session breaks the length rule first
    assert rep.counts[f"interactions.{ex.RULE_SESSION_LENGTH}"] == 20
    assert rep.counts[f"interactions.{ex.RULE_BOT}"] == 0
    assert "gx2" in rep.data_docs
    out = runs["root"] / "q" / "lenient"
    stored = pd.read_parquet(out / "quarantine.parquet")
    assert len(stored) == len(rep.quarantine) == 35  # one more than before: the markup title
    assert len(pd.read_csv(out / "quarantine.csv")) == 35
    meta = json.loads((out / "counts.json").read_text())
    assert meta["passed"] is True and meta["counts"] == rep.counts


def test_failed_run_writes_quarantine_files(runs):
    out = runs["root"] / "q" / "bad"
    stored = pd.read_parquet(out / "quarantine.parquet")
    assert list(stored.columns[:2]) == ["table", "row"] and list(stored.columns[-2:]) == ["rule", "reason"]
    assert stored["rule"].value_counts()[ex.RULE_BOT] == 20
    assert json.loads((out / "counts.json").read_text())["passed"] is False
    assert (runs["root"] / "q" / "clean" / "quarantine.csv").is_file()  # written even with nothing rejected


def test_empty_items_table_fails(runs):
    rep = runs["no_items"]
    assert not rep.passed
    assert "items table is empty" in rep.summary
    assert rep.counts[f"interactions.{ex.RULE_UNKNOWN_ITEM}"] == 30


def test_session_rates_by_hand():
    ts = pd.to_datetime(
        ["2024-01-01T00:00:00Z"] * 5  # 5 views in the same second: infinite rate
        + [f"2024-01-01T01:00:0{k}Z" for k in range(4)]  # 4 views: too few to judge
        + [f"2024-01-01T02:00:0{k}Z" for k in range(6)]  # 6 views over 5 s
        + ["2024-01-01T03:00:00Z"] * 7,  # 7 same-second ratings: never a bot
        utc=True,
    )
    sessions = ["a"] * 5 + ["b"] * 4 + ["c"] * 6 + ["d"] * 7
    events = ["view"] * 15 + ["rating"] * 7
    rows = pd.DataFrame(
        {"user_id": "u", "session_id": sessions, "item_id": "i", "timestamp": ts, "event": events}
    )
    frame = ex.interaction_session_frame(rows)
    first = frame.groupby("session_id")[["session_length", "session_bot_events"]].first()
    assert first["session_length"].to_dict() == {"a": 5, "b": 4, "c": 6, "d": 7}
    assert first["session_bot_events"].to_dict() == {"a": 5, "b": 4, "c": 6, "d": 0}
    rate = frame.groupby("session_id")["session_events_per_second"].first()
    assert np.isinf(rate["a"]) and np.isnan(rate["b"]) and np.isnan(rate["d"])
    assert rate["c"] == pytest.approx(6 / 5)
