"""Typed settings, one pydantic model per stage, loaded from params.yaml.

Every field has a default, so the pipeline runs on embedded defaults when params.yaml is absent.
Unknown keys are errors (a typo never silently falls back to a default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.dialogue.config import ConversationConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    dataset: str = Field("ml-100k", description="Built-in dataset name (see components/datasets.py).")
    dataset_spec: str | None = Field(None, description="Path to a YAML dataset spec; overrides `dataset`.")
    session_gap_minutes: float = Field(30.0, gt=0, description="Inactivity gap that starts a new session.")
    include_feedback: bool = Field(
        True,
        description="Merge the feedback snapshot (data/feedback/<dataset>/events.parquet, written by the "
        "feedback export stage from the service's log) into the ingested interactions. Negative reactions "
        "(dislike, skip, rating < 3) stay in the snapshot but never become training interactions; feedback "
        "users are pseudonymised, so their sessions form sequences of their own.",
    )
    include_catalogue_changes: bool = Field(
        True,
        description="Fold the catalogue changes made while serving (data/catalogue/<dataset>/"
        "changes.parquet, written by the catalogue export stage from the service's overlay) into the "
        "ingested tables: added "
        "items join the items table (or replace the row of their id), retired items leave it with their "
        "interactions.",
    )


class ValidateConfig(_Section):
    max_reject_fraction: float = Field(
        0.05, ge=0, le=1, description="Stop the pipeline when more than this share of rows is rejected."
    )
    max_duplicate_fraction: float = Field(
        0.05, ge=0, le=1, description="Largest allowed exact-duplicate share."
    )
    timestamp_min: str = Field("1990-01-01", description="Earliest plausible event time (UTC).")
    timestamp_max: str | None = Field(None, description="Latest plausible event time; default: now + 1 day.")
    rating_min: float = Field(0.5, description="Smallest allowed rating value.")
    rating_max: float = Field(5.0, description="Largest allowed rating value.")
    min_session_length: int = Field(1, ge=1, description="Sessions shorter than this are rejected.")
    max_session_length: int = Field(5000, ge=1, description="Sessions longer than this are rejected.")
    max_events_per_second: float = Field(
        5.0, gt=0, description="Sessions faster than this (events / second, >= 5 events) look like bots."
    )


class FeaturesConfig(_Section):
    split: Literal["leave-one-out", "temporal"] = Field(
        "leave-one-out", description="leave-one-out: last item test, second-to-last validation."
    )
    temporal_test_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Temporal split: latest share = test."
    )
    temporal_valid_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Temporal split: share before test."
    )
    sequence_key: Literal["auto", "user", "session"] = Field(
        "auto", description="Unit of a sequence; auto = user for rating logs, session for event logs."
    )
    min_sequence_length: int = Field(3, ge=2, description="Shorter sequences are left out of training/eval.")
    text_embeddings: bool = Field(True, description="Encode item text with the sentence encoder.")
    embed_batch_size: int = Field(128, ge=1)
    trending_half_life_days: float = Field(
        365.0, gt=0, description="Half-life of the time decay of the popularity prior shipped in bundles."
    )
    item_scope: Literal["train", "catalogue"] = Field(
        "train",
        description="train: the item vocabulary holds the items of the training sequences (cases whose "
        "target is not among them are counted and left out); catalogue: every catalogue item is in it, "
        "items training never shows after the training ones (their cases form the 'cold' slice).",
    )
    cold_item_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="Cold-item protocol: this share of the training items (a seeded uniform sample) is "
        "removed from the training sequences; they stay in the catalogue and in histories, so test cases "
        "with them as target measure cold-start. Needs item_scope: catalogue.",
    )
    cold_item_seed: int = Field(0, description="Seed of the cold-item sample.")

    @model_validator(mode="after")
    def _cold_needs_catalogue(self) -> FeaturesConfig:
        if self.cold_item_fraction > 0 and self.item_scope != "catalogue":
            raise ValueError("features.cold_item_fraction > 0 needs features.item_scope: catalogue")
        return self


class TrainConfig(_Section):
    models: list[str] = Field(
        default_factory=lambda: ["popularity", "itemknn", "ease", "sasrec", "bert4rec"],
        description="Candidates to train, names from models.REGISTRY.",
    )
    model_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-model config overrides, validated by each model's config class.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when present.")
    runner: Literal["serial", "threads", "dask"] = Field(
        "serial",
        description="How candidates run: serial (one after another: every core to each, clean latency "
        "numbers), threads (Prefect's thread pool, `workers` at once), dask (prefect-dask: a local cluster "
        "of `workers` processes, or the scheduler at `dask_address`).",
    )
    workers: int = Field(
        2, ge=1, description="Threads or Dask worker processes for the threads/dask runners."
    )
    dask_address: str | None = Field(
        None, description="A running Dask scheduler (tcp://host:8786) for runner=dask; none = local cluster."
    )


class SearchParam(_Section):
    """One hyperparameter's search range: float/int in [low, high] (optionally log-scaled) or choices."""

    kind: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> SearchParam:
        if self.kind == "categorical" and not self.choices:
            raise ValueError("a categorical search parameter needs choices")
        if self.kind != "categorical" and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError(f"a {self.kind} search parameter needs low <= high")
        return self


def _default_space() -> dict[str, SearchParam]:
    return {
        "lr": SearchParam(kind="float", low=5e-4, high=5e-3, log=True),
        "dropout": SearchParam(kind="float", low=0.1, high=0.5),
        "hidden_size": SearchParam(kind="categorical", choices=[32, 64, 128]),
        "num_layers": SearchParam(kind="int", low=1, high=3),
    }


class SearchConfig(_Section):
    """Hyperparameter search (flows/search.py): Optuna TPE over `space`; one MLflow run per trial."""

    model: str = Field("sasrec", description="The model whose config is searched.")
    n_trials: int = Field(8, ge=1, description="Trials in all.")
    parallel: int = Field(2, ge=1, description="Trials in flight at once (asked together, told together).")
    runner: Literal["serial", "threads", "dask"] = Field(
        "dask", description="Where trials run (as train.runner)."
    )
    workers: int = Field(2, ge=1, description="Threads or Dask worker processes.")
    dask_address: str | None = Field(None, description="A running Dask scheduler; none = local cluster.")
    seed: int = Field(0, description="Seed of the Optuna sampler.")
    metric: str = Field("ndcg@10", description="Validation metric maximised (never the test split).")
    space: dict[str, SearchParam] = Field(default_factory=_default_space, description="Parameter ranges.")
    fixed: dict[str, Any] = Field(
        default_factory=dict, description="Config values every trial gets (e.g. an epoch cap)."
    )


class EvaluateConfig(_Section):
    ks: list[int] = Field(default_factory=lambda: [5, 10, 20])
    exclude_seen: bool = Field(True, description="Remove items already in the history from the ranking.")
    short_history_max: int = Field(
        10, ge=1, description="Histories up to this length form the 'short' slice."
    )
    batch_size: int = Field(512, ge=1)
    primary_metric: str = Field(
        "ndcg@10", description="Metric that picks the challenger and gates promotion."
    )
    chat_corpus: str | None = Field(
        "inspired",
        description="Dialogue corpus (in the data mirror) the pipeline scores the challenger's conversation "
        "on (sessionflow evaluate-chat); null: skip.",
    )
    chat_split: Literal["dev", "test"] = Field("test", description="Split of the dialogue corpus reported.")
    chat_ks: list[int] = Field(default_factory=lambda: [1, 10, 50], description="K of the dialogue Recall@K.")


class PromoteConfig(_Section):
    registered_model: str = Field("sessionflow-recommender", description="MLflow registered model name.")
    min_improvement: float = Field(
        0.0, ge=0, description="Challenger must beat champion's primary metric by more than this (absolute)."
    )
    max_coverage_drop: float = Field(
        0.5, ge=0, le=1, description="Guardrail: coverage may fall at most this share."
    )
    max_latency_ms: float = Field(200.0, gt=0, description="Guardrail: p95 scoring latency per request.")


class ServeConfig(_Section):
    port: int = Field(3000, ge=1, le=65535)
    default_k: int = Field(10, ge=1, le=1000)
    max_batch_size: int = Field(64, ge=1, description="Most /recommend sessions scored in one model call.")
    max_latency_ms: int = Field(
        100,
        ge=1,
        description="/recommend load shedding: while the oldest queued request has waited longer than this, "
        "new ones get 503 + Retry-After at once (bento/batching.py); not a wait window.",
    )
    reload_interval_s: float = Field(
        5.0,
        ge=0,
        description="How often a running service checks the release record for a newly promoted model "
        "(hot reload, bento/model_holder.py); 0 turns hot reload off.",
    )
    log_requests: bool = Field(
        True, description="Log served requests (batched, off the request path) for `sessionflow monitor`."
    )


class MonitorConfig(_Section):
    """`sessionflow monitor`: the window it looks at and the thresholds that turn the report red.
    A threshold set to null is not checked."""

    window_hours: float = Field(24.0, gt=0, description="Served requests and feedback of the last N hours.")
    min_requests: int = Field(
        20, ge=1, description="Fewer requests than this in the window: status 'insufficient', nothing judged."
    )
    max_unknown_id_share: float | None = Field(
        0.2, ge=0, le=1, description="Share of requested item ids the serving model does not know."
    )
    min_coverage: float | None = Field(
        0.01, ge=0, le=1, description="Share of the catalogue shown at least once in the window."
    )
    max_gini: float | None = Field(
        0.95, ge=0, le=1, description="Gini of impressions over the catalogue (popularity concentration)."
    )
    max_dislike_rate: float | None = Field(0.2, ge=0, description="Dislikes per impression.")
    min_click_rate: float | None = Field(None, ge=0, description="Clicks per impression.")
    max_score_psi: float | None = Field(
        0.25, ge=0, description="PSI of live /recommend scores against the model's training-time scores."
    )
    max_popularity_psi: float | None = Field(
        0.25,
        ge=0,
        description="PSI of the popularity of shown items (vs training-time recommendations) and of "
        "requested items (vs training interactions).",
    )
    retrain_on_red: bool = Field(
        False, description="A red report starts the retraining deployment (or the pipeline in process)."
    )


class Settings(_Section):
    """All stage settings; ``conversation`` configures the chat/feedback layer of the service."""

    data: DataConfig = Field(default_factory=DataConfig)
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    promote: PromoteConfig = Field(default_factory=PromoteConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    conversation: ConversationConfig = Field(default_factory=ConversationConfig)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def load_settings(
    path: str | Path | None = "params.yaml", overrides: dict[str, Any] | None = None
) -> Settings:
    """Read params.yaml (missing file -> defaults), apply dotted ``overrides`` like {"data.dataset": "x"}."""
    raw: dict[str, Any] = {}
    if path is not None and Path(path).is_file():
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of stage sections, got {type(loaded).__name__}")
        raw = loaded
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid settings in {path or 'defaults'}:\n{exc}") from exc
