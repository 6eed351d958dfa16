"""``sessionflow evaluate-chat``: Recall@K of a conversational recommender on real dialogues (INSPIRED).

Scores a model bundle in process (``load_engine``: the engine the service builds) or a running service's
``/chat``, with the protocol of ``components.dialogue.evaluation``; writes a JSON report (metrics, mapping
rate, per-case ranks, machine) and returns it. The pipeline logs the same numbers to MLflow.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.dialogue.config import ConversationConfig


def evaluate_chat(
    bundle_dir: Path | None = None,
    url: str | None = None,
    corpus: str = "inspired",
    split: str = "test",
    dialogues_file: Path | None = None,
    ks: Sequence[int] = (1, 10, 50),
    config: ConversationConfig | None = None,
    mirror: str | None = None,
    output: Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``bundle_dir`` (in process) or ``url`` (a running service) on a dialogue corpus."""
    from components.bundle import Predictor
    from components.dialogue.evaluation import (
        TitleMatcher,
        build_cases,
        corpus_path,
        engine_answerer,
        evaluate_cases,
        read_inspired,
        url_answerer,
    )

    if (bundle_dir is None) == (url is None):
        raise ValueError("give either a bundle folder or --url (a running service)")
    path = dialogues_file or corpus_path(corpus, split, mirror or os.environ.get("SESSIONFLOW_DATA_MIRROR"))
    if bundle_dir is not None:
        from components.dialogue.engine import load_engine

        cfg = (config or ConversationConfig()).model_copy(update={"redis_url": None, "session_db": None})
        engine = load_engine(Path(bundle_dir), cfg)
        ix = engine.index
        matcher = TitleMatcher(ix.item_ids, ix.titles, ix.years)
        answer = engine_answerer(engine)
        source = str(bundle_dir)
    else:
        import httpx

        assert url is not None
        meta = httpx.get(url.rstrip("/") + "/catalogue", params={"items": "true"}, timeout=60).json()
        matcher = TitleMatcher(meta["item_ids"], meta["titles"], meta["years"])
        answer = url_answerer(url)
        source = url
    build = build_cases(read_inspired(path), matcher)
    report = evaluate_cases(answer, build, ks)
    out: dict[str, Any] = {
        "source": source,
        "dialogues": str(path),
        "metrics": report.metrics(f"chat/{corpus}_{split}"),
        "recall": {str(k): v for k, v in report.recall.items()},
        "n_targets": report.n_targets,
        "n_cases": report.n_cases,
        "n_titles": report.n_titles,
        "mapping_rate": round(report.mapping_rate, 4),
        "errors": report.errors,
        "seconds": round(report.seconds, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "per_case": report.per_case,
    }
    if bundle_dir is not None:
        out["model"] = Predictor.load(Path(bundle_dir)).meta.get("model")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(out, indent=2, default=str))
    return out
