"""The monitoring stage: read a window of served requests and feedback, compute the numbers
(components/monitoring.py) against the serving model's reference profile, render the report
(sessionflow/monitor_report.py). MLflow logging and the retrain trigger are the flow's (flows/monitoring.py).

Which model: ``model_tag`` when given, else the release record's (what services serve now), else the tag most
requests in the window were answered by. Its bundle comes from the BentoML model store; its reference profile
is the bundle's ``reference.json`` (written at training), else computed now from the featurized test split.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from components.config import Settings
from components.monitoring import REFERENCE_FILE, MonitorNumbers, compute_report
from components.release import now_iso


class MonitorResult(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    numbers: MonitorNumbers
    report_dir: str
    html: str
    reference_source: str
    request_log: str
    feedback_log: str


def run_monitor(
    settings: Settings,
    root: Path,
    window_hours: float | None = None,
    now: datetime | None = None,
    model_tag: str | None = None,
    out_dir: Path | None = None,
) -> MonitorResult:
    """Numbers and HTML report for the last ``window_hours`` (default: params.yaml monitor.window_hours)."""
    from components.feedback_log import default_feedback_url, read_feedback, redact_url
    from components.request_log import read_requests
    from sessionflow.monitor_report import render_report
    from sessionflow.serving import current_release, request_log_location

    root = Path(root).resolve()
    cfg = settings.monitor
    end = pd.Timestamp(now or datetime.now(UTC))
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    start = end - timedelta(hours=window_hours or cfg.window_hours)
    feedback_url = default_feedback_url(root)
    requests_path = request_log_location(feedback_url)
    requests = read_requests(requests_path, start.to_pydatetime(), end.to_pydatetime())
    feedback = read_feedback(feedback_url)
    if len(feedback):
        feedback = feedback[(feedback["timestamp"] >= start) & (feedback["timestamp"] < end)]
    release = current_release()
    tag = model_tag or (release.model_tag if release else None) or _most_common(requests)
    item_ids, reference, source = _model_reference(settings, root, tag)
    numbers = compute_report(requests, feedback, item_ids, reference, cfg, start, end, tag)
    stamp = end.strftime("%Y%m%dT%H%M%SZ")
    folder = Path(out_dir) if out_dir else root / "artifacts" / "monitoring" / stamp
    html = render_report(numbers, cfg, folder, subtitle=f"reference: {source}; generated {now_iso()}")
    (folder / "numbers.json").write_text(numbers.model_dump_json(indent=2))
    return MonitorResult(
        numbers=numbers,
        report_dir=str(folder),
        html=str(html),
        reference_source=source,
        request_log=str(requests_path),
        feedback_log=redact_url(feedback_url),
    )


def _most_common(requests: pd.DataFrame) -> str | None:
    tags = requests["model_tag"].dropna() if len(requests) else pd.Series(dtype=object)
    return str(tags.value_counts().index[0]) if len(tags) else None


def _model_reference(
    settings: Settings, root: Path, tag: str | None
) -> tuple[list[str], dict[str, Any] | None, str]:
    """The model's vocabulary and reference profile, and where the profile came from."""
    if tag is None:
        return [], None, "none (no model served in the window and no release record)"
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        path = Path(bentoml.models.get(tag).path)
    except NotFound:
        return [], None, f"none (model {tag} is not in the BentoML store)"
    ids = [str(i) for i in json.loads((path / "vocab.json").read_text())["item_ids"]]
    if (path / REFERENCE_FILE).is_file():
        return (
            ids,
            json.loads((path / REFERENCE_FILE).read_text()),
            f"{tag} ({REFERENCE_FILE}, training time)",
        )
    try:
        return (
            ids,
            _reference_from_features(settings, root, path),
            f"{tag} (computed on the current test split)",
        )
    except (FileNotFoundError, ValueError) as exc:
        return ids, None, f"none ({tag} has no {REFERENCE_FILE} and the features are unusable: {exc})"


def _reference_from_features(settings: Settings, root: Path, bundle: Path) -> dict[str, Any]:
    from components.bundle import Predictor
    from components.features import remap_eval_data
    from components.monitoring import reference_profile
    from sessionflow import stages

    fs, _, _ = stages.load_stage_features(settings, root)
    predictor = Predictor.load(bundle)
    data, popularity = remap_eval_data(fs, predictor.vocab)
    primary = settings.evaluate.primary_metric
    k = int(primary.split("@")[1]) if "@" in primary else 10
    return reference_profile(predictor.model, data, popularity, k=k)
