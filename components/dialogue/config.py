"""Settings of the conversational recommender: fusion weights, filters, diversity, sessions, LLM phrasing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConversationConfig(BaseModel):
    """Every knob of the conversation layer, each documented. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    # fusion weights (each signal is scaled to [0, 1] over the catalogue before weighting)
    w_model: float = Field(
        1.0,
        ge=0,
        description="Weight of the session model's score over the session's items and liked references.",
    )
    w_prior: float = Field(
        0.3,
        ge=0,
        description="Weight of the model's empty-history score (a popularity-like prior) at cold start.",
    )
    w_text: float = Field(
        0.6,
        ge=0,
        description="Weight of cosine(query text embedding, item embedding) for the words asked for.",
    )
    w_ref: float = Field(
        0.8, ge=0, description="Weight of embedding similarity to liked and positively referenced items."
    )
    w_neg: float = Field(
        0.8,
        ge=0,
        description="Weight subtracted for embedding similarity to disliked / negatively referenced items.",
    )
    w_neg_model: float = Field(
        0.5,
        ge=0,
        description="Weight subtracted for the model's score of the negative references as a history.",
    )
    w_category: float = Field(
        1.5,
        ge=0,
        description="Boost times the share of the requested categories an item has (strong by default).",
    )
    w_tone: float = Field(
        0.5, ge=0, description="Weight of the 'lighter' / 'darker' critique on the item's categories."
    )
    shown_penalty: float = Field(
        0.15, ge=0, description="Subtracted for items shown in an earlier turn, so critiques bring new items."
    )
    category_mode: Literal["boost", "filter"] = Field(
        "boost",
        description="boost: requested categories raise the score; filter: items must have all of them "
        "(relaxed to any one when fewer than k items pass).",
    )
    exclude_session_items: bool = Field(True, description="Never recommend items already in the session.")
    mmr_lambda: float = Field(
        0.8, ge=0, le=1, description="MMR trade-off: 1 = pure relevance, 0 = pure diversity."
    )
    mmr_pool: int = Field(50, ge=1, description="Candidates (at least 5k) re-ranked by MMR for the top k.")
    max_query_turns: int = Field(3, ge=1, description="How many recent turns of free text form the query.")
    reason_min_similarity: float = Field(
        0.5, ge=-1, le=1, description="Cosine above which a reason may say 'similar to <item>'."
    )
    default_k: int = Field(10, ge=1, le=200, description="List length when the caller gives none.")
    refresh_on_feedback: bool = Field(True, description="feedback() returns the re-ranked list right away.")
    # sessions
    session_ttl_seconds: float = Field(
        3600.0, gt=0, description="Idle time after which a session is forgotten."
    )
    max_sessions: int = Field(
        100_000, ge=1, description="In-memory store: oldest sessions evicted beyond this."
    )
    redis_url: str | None = Field(None, description="redis://host:port/db: keep sessions in Redis instead.")
    embedding_cache_dir: str | None = Field(
        None, description="Folder caching item text embeddings (components.text_encoder.embed_items)."
    )
    # optional LLM phrasing of the reply
    llm_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API (e.g. http://localhost:8000/v1); off when unset.",
    )
    llm_model: str = Field("default", description="Model name sent to the LLM endpoint.")
    llm_timeout_s: float = Field(
        2.0, gt=0, le=30, description="LLM call timeout; on any error the rule reply is used."
    )
    llm_api_key_env: str = Field(
        "SESSIONFLOW_LLM_API_KEY",
        description="Environment variable holding the LLM API key (never in config).",
    )
