"""What one pipeline run did, typed (printed by `sessionflow pipeline`; artifacts/last_pipeline.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from components.config import Settings
from components.release import Release
from flows.promotion import PromotionDecision
from flows.tracking import CandidateResult
from sessionflow.results import (
    CatalogueExport,
    FeatureResult,
    FeedbackExport,
    IngestResult,
    Lineage,
    ValidationResult,
)


class CandidateSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    primary: float | None
    hr_at_10: float | None
    train_seconds: float
    epochs: int
    run_id: str


class PromotionSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    promoted: bool
    reason: str
    champion_version: str | None
    challenger_version: str | None


class PipelineSummary(BaseModel):
    """What one pipeline run did (printed by `sessionflow pipeline`; artifacts/last_pipeline.json)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    data_hash: str
    primary_metric: str
    lineage: Lineage
    feedback: FeedbackExport
    ingest: IngestResult
    validation: dict[str, Any]
    features: FeatureResult
    parent_run_id: str
    candidates: dict[str, CandidateSummary]
    failed_candidates: dict[str, str]
    promotion: PromotionSummary
    simulation: dict[str, float] | None
    release: Release | None
    pipeline_seconds: float
    catalogue: CatalogueExport | None = None

    @property
    def bento_tag(self) -> str | None:
        return self.release.bento_tag if self.release else None

    @classmethod
    def of(
        cls,
        settings: Settings,
        lineage: Lineage,
        feedback: FeedbackExport,
        ingest: IngestResult,
        validation: ValidationResult,
        features: FeatureResult,
        parent_run_id: str,
        candidates: list[tuple[CandidateResult, str]],
        failed: dict[str, str],
        decision: PromotionDecision,
        simulation: dict[str, float] | None,
        release: Release | None,
        seconds: float,
        catalogue: CatalogueExport | None = None,
    ) -> PipelineSummary:
        primary = settings.evaluate.primary_metric
        return cls(
            dataset=ingest.dataset,
            data_hash=ingest.data_hash,
            primary_metric=primary,
            lineage=lineage,
            feedback=feedback,
            ingest=ingest,
            validation=validation.counts,
            features=features,
            parent_run_id=parent_run_id,
            candidates={
                r.model_name: CandidateSummary(
                    primary=r.metrics.get(primary),
                    hr_at_10=r.metrics.get("hr@10"),
                    train_seconds=round(r.train_seconds, 2),
                    epochs=r.epochs,
                    run_id=run_id,
                )
                for r, run_id in candidates
            },
            failed_candidates=failed,
            promotion=PromotionSummary(
                promoted=decision.promoted,
                reason=decision.reason,
                champion_version=decision.champion_version_after,
                challenger_version=decision.challenger_version,
            ),
            simulation=simulation,
            release=release,
            pipeline_seconds=round(seconds, 1),
            catalogue=catalogue,
        )

    def write(self, root: Path) -> Path:
        path = root / "artifacts" / "last_pipeline.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))
        return path
