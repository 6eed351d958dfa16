"""Typed results of the stage runners (sessionflow/stages.py): what the CLI prints, dvc.yaml's stages write
and the Prefect flow passes between tasks -- instead of string-keyed dicts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedbackExport(_Result):
    """The feedback snapshot written for the retraining loop."""

    dataset: str
    source: str = Field(description="The log it was read from (credentials removed).")
    snapshot: str = Field(description="data/feedback/<dataset>/events.parquet")
    feedback_hash: str
    rewritten: bool = Field(description="False when the content was unchanged (file left untouched).")
    n_events: int = 0
    n_negative: int = 0
    n_positive_or_neutral: int = 0
    by_event: dict[str, int] = Field(default_factory=dict)
    n_users: int = 0
    n_sessions: int = 0
    n_items: int = 0
    first: str | None = None
    last: str | None = None
    forget_requests: int = Field(0, description="Deletion requests applied to the log so far (no ids).")


class CatalogueExport(_Result):
    """The snapshot of the catalogue changes made while serving, written for the retraining loop."""

    dataset: str
    source: str = Field(description="The overlay it was read from (file name).")
    snapshot: str = Field(description="data/catalogue/<dataset>/changes.parquet")
    catalogue_hash: str
    rewritten: bool = Field(description="False when the content was unchanged (file left untouched).")
    revision: int = Field(0, description="The overlay's revision.")
    n_added: int = Field(0, description="Added (or re-described) items.")
    n_retired: int = 0


class IngestResult(_Result):
    """Canonical tables written to data/interim/<dataset> (also saved as ingest.json there)."""

    dataset: str
    format: str
    data_hash: str = Field(
        description="sha256(raw data hash, feedback snapshot hash, catalogue changes hash); = raw without "
        "feedback and catalogue changes"
    )
    raw_data_hash: str
    feedback_hash: str | None = Field(None, description="Content hash of the merged snapshot, if any.")
    n_interactions: int
    n_items: int
    n_users: int
    n_sessions: int
    n_source_interactions: int
    n_feedback_events: int
    n_feedback_interactions: int
    n_feedback_negative_dropped: int
    sequence_key_auto: str | None
    catalogue_hash: str | None = Field(
        None, description="Content hash of the merged catalogue changes, if any."
    )
    n_catalogue_added: int = Field(0, description="Items the catalogue changes added to the items table.")
    n_catalogue_replaced: int = Field(0, description="Items whose row the catalogue changes replaced.")
    n_catalogue_retired: int = Field(0, description="Retired items dropped from the items table.")
    n_retired_interactions_dropped: int = Field(0, description="Interactions with retired items, dropped.")
    fingerprint: str | None = Field(
        None, description="sha256 of ingest's settings, inputs and code: an unchanged one skips the stage"
    )


class ValidationResult(_Result):
    """The Great Expectations gate: counts per rule, Data Docs, the quarantine folder."""

    passed: bool
    counts: dict[str, Any]
    data_docs: str | None
    summary: str
    quarantine: str


class FeatureResult(_Result):
    """Splits, vocabulary and optional text embeddings in data/processed/<dataset>/features."""

    sequence_key: str
    stats: dict[str, Any]


class DataLineage(_Result):
    data_hash: str
    raw_data_hash: str
    feedback_hash: str | None = None
    n_feedback_events: int = 0
    catalogue_hash: str | None = None


class CodeRevision(_Result):
    """The DVC revision the data came from: the git commit of the project folder and dvc.lock's hashes."""

    git_commit: str | None = None
    git_dirty: bool | None = None
    dvc_lock_sha256: str | None = None
    dvc_outs: dict[str, str] = Field(default_factory=dict, description="DVC md5 of the data outputs used.")


class Lineage(_Result):
    """Where a model's data came from; MLflow, the bundle, the BentoML model and /metadata carry it."""

    data: DataLineage
    code: CodeRevision
