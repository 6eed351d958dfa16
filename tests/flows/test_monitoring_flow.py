"""The monitoring stage and its MLflow record, without a Prefect server: a served model with its training-time
reference, a window of logged requests and feedback -> numbers, the HTML report, an MLflow run and the tag on
the registered version. (The scheduled flow and its retrain trigger: tests/flows/test_deploy.py, -m slow.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.config import load_settings
from components.feedback_log import FEEDBACK_DB_ENV, FEEDBACK_URL_ENV, FeedbackLog
from components.request_log import RequestLog
from tests.flows import make_bundle, use_tracking


@pytest.fixture()
def tracking(tmp_path, monkeypatch):
    yield from use_tracking(tmp_path / "mlruns", monkeypatch)


def test_report_numbers_reach_mlflow_and_the_model_version(tmp_path, monkeypatch, tracking):
    from mlflow import MlflowClient

    from components.monitoring import REFERENCE_FILE, reference_profile
    from components.release import Release, write_release
    from flows.monitoring import log_monitoring
    from models import load_model
    from models.base import EvalData
    from sessionflow.monitor import run_monitor
    from sessionflow.serving import current_release_path
    from tests.service import isolated_bentoml_home, save_bentoml_model

    monkeypatch.setenv(FEEDBACK_DB_ENV, str(tmp_path / "data" / "feedback" / "feedback.db"))
    monkeypatch.delenv(FEEDBACK_URL_ENV, raising=False)
    bundle = make_bundle(tmp_path / "bundle")
    model = load_model(bundle / "model")
    data = EvalData([np.array([0, 1]), np.array([3]), np.array([5, 6])], np.array([2, 4, 7]))
    reference = reference_profile(model, data, np.arange(12, dtype=float), k=3)
    (bundle / REFERENCE_FILE).write_text(json.dumps(reference))
    client = MlflowClient()
    client.create_registered_model("monitored")  # a registered version to tag (its artifacts are not read)
    version = client.create_model_version("monitored", source=bundle.as_uri()).version

    with isolated_bentoml_home(tmp_path / "bentoml"):
        labels = {"registered_model": "monitored", "mlflow_model_version": str(version)}
        tag = save_bentoml_model(bundle, labels)
        write_release(current_release_path(), Release(model_tag=tag))
        log = RequestLog(tmp_path / "data" / "feedback" / "requests.db", start=False)
        for n in range(6):
            items = ["i0", "i1"] + (["nope"] if n == 0 else [])
            log.record("recommend", items=items, unknown=["nope"] if n == 0 else [], shown=["i2", "i3", "i4"],
                       scores=[0.9, 0.5, 0.1], model_tag=tag, session_id=f"s{n % 2}")  # fmt: skip
        log.close()
        with FeedbackLog(f"sqlite:///{tmp_path}/data/feedback/feedback.db") as fb:
            fb.append_many(
                [{"session_id": "s0", "item_id": "i2", "event": e} for e in ("click", "like", "dislike")]
            )
        overrides = {"monitor.min_requests": 5, "monitor.min_coverage": 0.5}
        overrides |= {"monitor.max_score_psi": None, "monitor.max_popularity_psi": None}  # synthetic traffic
        settings = load_settings(None, overrides)
        result = run_monitor(settings, tmp_path, window_hours=1)
        run_id = log_monitoring(result, tmp_path)

    m = result.numbers.metrics
    assert result.numbers.model_tag == tag and "reference.json" in result.reference_source
    assert m["requests"] == 6 and m["sessions"] == 2 and m["unknown_id_share"] == pytest.approx(1 / 13)
    assert m["impressions"] == 18 and m["coverage"] == pytest.approx(3 / 12)
    assert m["click_rate"] == m["like_rate"] == m["dislike_rate"] == pytest.approx(1 / 18)
    assert m["score_psi"] is not None and m["shown_popularity_psi"] is not None
    assert result.numbers.status == "red" and [c.metric for c in result.numbers.broken] == ["coverage"]
    assert Path(result.html).is_file() and (Path(result.report_dir) / "numbers.json").is_file()

    run = client.get_run(run_id)
    assert run.data.tags["monitor.status"] == "red" and run.data.tags["monitor.broken"] == "coverage"
    assert run.data.metrics["monitor/requests"] == 6
    assert {a.path for a in client.list_artifacts(run_id, "report")} >= {
        "report/report.html",
        "report/scores.png",
    }
    tags = client.get_model_version("monitored", str(version)).tags
    assert tags["monitoring.status"] == "red" and tags["monitoring.run_id"] == run_id
