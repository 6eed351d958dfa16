"""Settings of the conversational recommender: planner, fusion weights, filters, diversity, sessions, LLM.

The fusion weights' defaults (w_prior ... w_facet, shown_penalty) were fitted on the INSPIRED *dev*
dialogues over ml-latest-small (benchmarks/tune_conversation.py, Optuna TPE, 200 trials; picked by 5-fold
cross-validation on dev; never on the test split): results/tune_recency.json, docs/results-conversation.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConversationConfig(BaseModel):
    """Every knob of the conversation layer, each documented. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    # fusion weights (each signal is scaled to [0, 1] over the allowed items before weighting)
    w_prior: float = Field(0.972, ge=0, description="Popularity prior (the model's empty-history score).")
    w_recency: float = Field(0.095, ge=0, description="Newer items first (year facet), where new is better.")
    w_model: float = Field(0.79, ge=0, description="Session model over the session's items + liked items.")
    mentions_in_history: bool = Field(
        True,
        description="The items a conversation is about (named or seen by the user, or suggested by the "
        "assistant, and not turned down) join the session model's history next to the liked ones: what "
        "people talk about says what they are into (see docs/results-conversation.md).",
    )
    w_cf: float = Field(0.007, ge=0, description="Collaborative neighbours of each liked item (best of).")
    w_content: float = Field(0.291, ge=0, description="Embedding similarity to liked/mentioned items.")
    w_mention: float = Field(
        0.21, ge=0, description="Items merely mentioned (by the user, or named by the assistant): similarity."
    )
    w_dense: float = Field(0.741, ge=0, description="Sentence-embedding match of the free-text preferences.")
    dense_text: Literal["soft", "said"] = Field(
        "said", description="Encode the understood free words (soft) or the user's recent messages as typed."
    )
    w_lexical: float = Field(0.564, ge=0, description="BM25 match of the free-text preferences.")
    w_assistant: float = Field(0.407, ge=0, description="What the assistant said (stateless histories).")
    w_title: float = Field(
        0.3, ge=0, description="Title words of titles the catalogue lacks ('Toy Story 4' -> the others)."
    )
    w_similar: float = Field(  # set by hand on the panel; INSPIRED dev hardly moves with it (0, 1, 2)
        2.0,
        ge=0,
        description="Items close to the ones the user asked for more like ('films like Heat', 'more like "
        "that'): the nearest items by text and collaborative similarity, by rank.",
    )
    similar_pool: int = Field(100, ge=1, description="How many nearest items the 'more like' signal ranks.")
    similar_popularity: float = Field(  # set by hand on requests typed by people, not fitted
        0.5,
        ge=0,
        description="Weight of popularity within the 'more like' ranking (0: text and facets alone).",
    )
    w_facet: float = Field(0.413, ge=0, description="Share of the asked facet values an item has.")
    w_mood: float = Field(0.5, ge=0, description="'lighter' / 'darker' preferences (vocabulary moods).")
    w_dislike: float = Field(1.0, ge=0, description="Demotion of items close to disliked ones.")
    dislike_similarity: float = Field(
        0.5, ge=0, lt=1, description="Cosine above which an item counts as close to a disliked one."
    )
    w_echo: float = Field(
        0.5,
        ge=0,
        description="Demotion of titles the free words merely echo ('a date night' -> Date Night) "
        "when titles are names (the title linker did not find them meant).",
    )
    w_avoid: float = Field(
        0.8, ge=0, description="Demotion of items matching avoided words ('not about WWII')."
    )
    avoid_dense_top: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of the catalogue whose text is closest in meaning to an avoided phrase that "
        "counts as matching it, words or not ('no superhero films' demotes Iron Man); 0: words only.",
    )
    avoid_dense_floor: float = Field(
        0.4,
        ge=-1,
        le=1,
        description="...and the least cosine it must reach: below it the encoder does not know the phrase "
        "well enough ('tom cruise' on film titles tops out at 0.34 with unrelated films).",
    )
    shown_penalty: float = Field(
        0.793,
        ge=0,
        description="Subtracted for items shown in an earlier turn, so critiques bring new items.",
    )
    category_filter: bool = Field(
        True, description="Asked category values filter (any of them); relaxed when nothing passes."
    )
    hard_turns: int = Field(
        3, ge=1, description="Asked category values filter for this many user turns, then only boost."
    )
    max_refs: int = Field(10, ge=1, description="Most recent liked/mentioned items used as references.")
    text_turns: int = Field(3, ge=1, description="How many recent turns of free text form the query.")
    exclude_session_items: bool = Field(True, description="Never recommend items already in the session.")
    mmr_lambda: float = Field(0.85, ge=0, le=1, description="MMR trade-off: 1 = relevance only.")
    mmr_pool: int = Field(50, ge=1, description="Candidates (at least 5k) re-ranked by MMR for the top k.")
    weak_match_cosine: float = Field(
        0.42,
        ge=0,
        le=1,
        description="A request said only in free words whose best sentence-embedding match over the "
        "catalogue stays below this cosine is answered with 'nothing matches closely; here are the nearest' "
        "(0: never). Set for all-MiniLM-L6-v2 on item texts: requests a catalogue meets reach 0.44-0.71, "
        "ones it cannot ('running shoes' on lab supplies) 0.28-0.41 (docs/results-conversation.md). In a "
        "shop (titles describe items) a free-text request is a search: popularity lifts only the items it "
        "finds (a word of theirs in the text, or an embedding at least this close).",
    )
    reason_min_similarity: float = Field(
        0.5, ge=-1, le=1, description="Cosine above which a reason may say 'similar to <item>'."
    )
    default_k: int = Field(10, ge=1, le=200, description="List length when the caller gives none.")
    refresh_on_feedback: bool = Field(True, description="feedback() returns the re-ranked list right away.")
    prepare_reply: bool = Field(
        True,
        description="Parse and encode each reply in a background thread once no request is being served, so "
        "the next turn (usually seconds later) encodes only the user's words. A request that comes before "
        "takes the reply back and encodes it with its own words in one pass, as when off.",
    )
    # sessions
    session_ttl_seconds: float = Field(
        3600.0, gt=0, description="Idle time after which a session is forgotten."
    )
    max_sessions: int = Field(
        100_000, ge=1, description="In-memory store: oldest sessions evicted beyond this."
    )
    redis_url: str | None = Field(None, description="redis://host:port/db: keep sessions in Redis instead.")
    session_db: str | None = Field(
        None,
        description="SQLite file keeping the sessions, shared by the service's worker processes on one host "
        "(the service picks one next to its feedback log when it runs more than one worker).",
    )
    embedding_cache_dir: str | None = Field(
        None, description="Folder caching item text embeddings when an index is built on the fly."
    )
    # language model (any OpenAI-compatible chat endpoint: vLLM, Ollama, llama.cpp server, a hosted API)
    planner: Literal["builtin", "llm"] = Field(
        "builtin",
        description="llm: the endpoint below plans each turn (JSON schema), builtin on any failure.",
    )
    llm_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8080/v1); off when unset.",
    )
    llm_model: str = Field("default", description="Model name sent to the endpoint.")
    llm_timeout_s: float = Field(8.0, gt=0, le=120, description="Per call; on timeout or error: fallback.")
    llm_json_mode: Literal["json_schema", "json_object_schema"] = Field(
        "json_schema",
        description="json_schema: OpenAI's response_format; json_object_schema: llama.cpp server's "
        "{'type': 'json_object', 'schema': ...}.",
    )
    llm_reply: bool = Field(
        False, description="Let the LLM write the reply from the shown items' facts (checked; else template)."
    )
    llm_api_key_env: str = Field(
        "SESSIONFLOW_LLM_API_KEY",
        description="Environment variable holding the LLM API key (never in config).",
    )
