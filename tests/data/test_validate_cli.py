"""Real MovieLens data with planted bad rows: `sessionflow validate` quarantines them or stops clearly."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app

ML100K = Path(
    os.environ.get("SESSIONFLOW_DATA_MIRROR", Path(__file__).resolve().parents[3] / "shared" / "datasets")
)
ML100K = ML100K / "ml-100k"
pytestmark = pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason="ml-100k mirror not found")


def _planted_copy(root: Path, n_bad: int) -> Path:
    """First 2,000 ML-100K ratings as a CSV spec, with ``n_bad`` rows of planted junk appended."""
    ratings = pd.read_csv(ML100K / "u.data", sep="\t", names=["user", "item", "rating", "ts"]).head(2000)
    items = pd.read_csv(
        ML100K / "u.item", sep="|", header=None, encoding="latin-1", usecols=[0, 1], names=["item", "title"]
    )
    bad = []
    kinds = [
        {"user": "", "item": 1, "rating": 4, "ts": 880000000},  # missing user
        {"user": 1, "item": 1, "rating": 9, "ts": 880000000},  # rating out of range
        {"user": 1, "item": 999999, "rating": 3, "ts": 880000000},  # item not in catalogue
        {"user": 2, "item": 2, "rating": 3, "ts": 4102444800 * 10},  # timestamp far in the future
    ]
    for k in range(n_bad):
        bad.append(kinds[k % len(kinds)])
    log = pd.concat([ratings, pd.DataFrame(bad)], ignore_index=True)
    log.to_csv(root / "ratings.csv", index=False)
    items.to_csv(root / "items.csv", index=False)
    spec = {
        "name": "ml-planted",
        "format": "interactions-csv",
        "path": "ratings.csv",
        "timestamp_unit": "s",
        "default_event": "rating",
        "columns": {"user_id": "user", "item_id": "item", "timestamp": "ts", "value": "rating"},
        "items": {"path": "items.csv", "columns": {"item_id": "item", "title": "title"}},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    return root / "spec.yaml"


def test_few_bad_rows_are_quarantined_with_reasons(tmp_path):
    spec = _planted_copy(tmp_path, n_bad=8)
    result = CliRunner().invoke(app, ["validate", "--dataset-spec", str(spec), "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    quarantine = pd.read_csv(tmp_path / "data" / "quarantine" / "ml-planted" / "quarantine.csv")
    assert len(quarantine) == 8
    assert quarantine["reason"].notna().all()
    rules = " ".join(quarantine["rule"])
    assert "user_id" in rules and "unknown_item" in rules and "value" in rules and "timestamp" in rules
    clean = pd.read_parquet(tmp_path / "data" / "processed" / "ml-planted" / "clean" / "interactions.parquet")
    assert len(clean) == 2000


def test_too_many_bad_rows_stop_with_a_readable_report(tmp_path):
    spec = _planted_copy(tmp_path, n_bad=400)  # 400 / 2400 rejected > 5 % threshold
    result = CliRunner().invoke(app, ["validate", "--dataset-spec", str(spec), "--root", str(tmp_path)])
    assert result.exit_code == 1
    message = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "error:" in message and "index.html" in message
    assert "unknown_item" in message
    assert not (tmp_path / "data" / "processed" / "ml-planted" / "clean" / "interactions.parquet").exists()
    assert (tmp_path / "data" / "quarantine" / "ml-planted" / "quarantine.csv").is_file()
