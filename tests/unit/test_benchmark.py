"""`sessionflow benchmark`'s runner on a tiny project: data stages, candidates, the repeat check."""

from __future__ import annotations

import json

from components.config import load_settings
from components.feedback_log import FEEDBACK_DB_ENV
from sessionflow.benchmark import benchmark
from tests.unit.test_feedback_merge import _project


def test_benchmark_runs_the_data_stages_and_reports_repeatable_metrics(tmp_path, monkeypatch) -> None:
    _project(tmp_path)
    monkeypatch.setenv(FEEDBACK_DB_ENV, str(tmp_path / "live" / "feedback.db"))
    settings = load_settings(
        None,
        {
            "data.dataset_spec": str(tmp_path / "spec.yaml"),
            "features.text_embeddings": False,
            "train.models": ["popularity", "itemknn"],
        },
    )
    out = benchmark(settings, tmp_path, repeat=2)
    assert out["dataset"] == "tiny" and len(out["data_hash"]) == 64
    assert set(out["models"]) == {"popularity", "itemknn"}
    for result in out["models"].values():
        assert result["repeat_identical"] is True
        assert 0.0 <= result["ndcg@10"] <= 1.0 and result["n_test_cases"] >= 1
    json.dumps(out)  # the CLI writes it as JSON
