"""What the sessionflow service (bento/service.py) accepts: bento arguments, environment, requests, and
its answers and 400 errors.

Every request model forbids unknown fields, so a typo is a 400 naming the field, never silently ignored.
Errors found after parsing (both /chat forms given, an unknown item id) are raised as pydantic
``ValidationError``s with a ``loc``, so BentoML answers them exactly like parsing errors::

    400 {"error": "1 validation error for FeedbackRequest",
         "detail": [{"type": "invalid_request", "loc": ["item_id"], "msg": "unknown item id '99999': ..."}]}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from components.catalogue_overlay import MAX_RETIRE_PER_REQUEST, MAX_ROWS_PER_REQUEST
from components.config import ServeConfig
from components.dialogue.config import ConversationConfig
from components.feedback_log import (  # noqa: F401 - the env names are part of this module's interface
    FEEDBACK_DB_ENV,
    FEEDBACK_URL_ENV,
    default_feedback_url,
    feedback_url_from_env,
)
from components.schema import EVENTS

MAX_K = 1000
MAX_CHAT_K = 200
MAX_SESSION_ITEMS = 5000
MAX_MESSAGE_CHARS = 4000
MAX_MESSAGES = 200
MAX_BATCH_SESSIONS = 256
MODEL_TAG_ENV = "SESSIONFLOW_MODEL_TAG"
_SERVE_DEFAULTS = ServeConfig()

ItemId = StrictStr | StrictInt
SessionId = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"\S")]
Event = Literal[EVENTS]  # type: ignore[valid-type]  # view click cart purchase rating like dislike skip


class BentoArgs(BaseModel):
    """Bento arguments (``--arg key=value`` / ``--arg-file args.yaml`` at build or serve time; kept inside
    a built bento)."""

    model_tag: str | None = None
    default_k: int = Field(_SERVE_DEFAULTS.default_k, ge=1, le=MAX_K)
    max_batch_size: int = Field(_SERVE_DEFAULTS.max_batch_size, ge=2)
    max_latency_ms: int = Field(_SERVE_DEFAULTS.max_latency_ms, ge=1)
    conversation: ConversationConfig = Field(default_factory=ConversationConfig)
    reload_interval_s: float = Field(_SERVE_DEFAULTS.reload_interval_s, ge=0)  # 0: never hot-reload
    log_requests: bool = _SERVE_DEFAULTS.log_requests

    @field_validator("conversation", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value  # --arg conversation='{"w_dense": 0.5}'


def resolve_model_tag(arg_value: str | None, env: Mapping[str, str] = os.environ) -> str:
    """The exact model tag to serve: the bento argument, else $SESSIONFLOW_MODEL_TAG; never ``latest``."""
    tag = (arg_value or env.get(MODEL_TAG_ENV) or "").strip()
    if not tag:
        raise RuntimeError(
            "no model to serve: build the bento with `sessionflow package` (it passes --arg"
            f" model_tag=NAME:VERSION) or set {MODEL_TAG_ENV}=NAME:VERSION (see `bentoml models list`)"
        )
    name, _, version = tag.partition(":")
    if not name or not version or version == "latest":
        raise RuntimeError(f"model tag {tag!r} is not exact: give NAME:VERSION from `bentoml models list`")
    return tag


def feedback_log_url(env: Mapping[str, str] = os.environ, source_root: Path | None = None) -> str:
    """Where /feedback writes, first match: ``$SESSIONFLOW_FEEDBACK_URL`` (``sqlite:///...`` or
    ``postgresql://...``); ``$SESSIONFLOW_FEEDBACK_DB`` (a SQLite file; ``sessionflow serve`` should set it to
    ``<project>/data/feedback/feedback.db``); ``<project>/data/feedback/feedback.db`` when serving from the
    project's source tree (``source_root``: the folder above bento/); else
    ``$BENTOML_HOME/feedback/feedback.db`` -- never inside the immutable bento. The first three are
    ``components.feedback_log.default_feedback_url``, which the retraining flow's export stage reads."""
    root = source_root or Path(__file__).resolve().parents[1]
    if feedback_url_from_env(env) is not None or (root / "pyproject.toml").is_file():
        return default_feedback_url(root, env)  # the environment, or serving from the project's source tree
    from bentoml._internal.configuration.containers import BentoMLContainer

    return f"sqlite:///{Path(BentoMLContainer.bentoml_home.get()) / 'feedback' / 'feedback.db'}"


def catalogue_overlay_path(env: Mapping[str, str] = os.environ, source_root: Path | None = None) -> Path:
    """Where catalogue changes are stored, first match: ``$SESSIONFLOW_CATALOGUE_OVERLAY``;
    ``<project>/data/catalogue/overlay.json`` when serving from the project's source tree (``sessionflow
    serve`` sets the variable to that path of its --root); else ``$BENTOML_HOME/catalogue/overlay.json`` --
    never inside the immutable bento. The first two are what the retraining flow's export stage reads."""
    from components.catalogue_overlay import default_overlay_path, overlay_path_from_env

    root = source_root or Path(__file__).resolve().parents[1]
    if overlay_path_from_env(env) is not None or (root / "pyproject.toml").is_file():
        return default_overlay_path(root, env)
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get()) / "catalogue" / "overlay.json"


def session_db_path(feedback_url: str) -> Path:
    """Where the workers of one service share their conversation sessions when there is more than one:
    ``sessions.db`` beside a SQLite feedback log, else ``$BENTOML_HOME/sessionflow/sessions.db``."""
    from components.feedback_log import sqlite_path

    if not feedback_url.startswith(("postgresql:", "postgres:")):
        return sqlite_path(feedback_url).resolve().parent / "sessions.db"
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get()) / "sessionflow" / "sessions.db"


def invalid(model: str, field: str, message: str, value: Any = None) -> ValidationError:
    """A 400-worthy error about ``field`` of request ``model``, shaped like pydantic's own."""
    return invalid_rows(model, [((field,), message, value)])


def invalid_rows(model: str, errors: list[tuple[tuple[str | int, ...], str, Any]]) -> ValidationError:
    """A 400 listing several problems, each at its ``loc`` (``("items", 3, "year")``)."""
    details = [
        InitErrorDetails(type=PydanticCustomError("invalid_request", message), loc=loc, input=value)
        for loc, message, value in errors
    ]
    return ValidationError.from_exception_data(model, details)


class RecommendRequest(BaseModel):
    """One session: raw item ids, oldest first; with ``session_id``, that session's live feedback counts."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemId] = Field(
        max_length=MAX_SESSION_ITEMS, description="Raw item ids of the session, oldest first."
    )
    k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] | None = Field(
        None, description="How many items to recommend (default: the bento argument default_k)."
    )
    exclude: list[ItemId] = Field(
        default_factory=list, max_length=MAX_SESSION_ITEMS, description="Item ids never to recommend."
    )
    user_id: ItemId | None = Field(None, description="Optional user id (not used for ranking).")
    session_id: SessionId | None = Field(
        None,
        description="Conversation session (as in /chat and /feedback): its likes, dislikes and stated "
        "constraints shape the ranking. Without it the request is scored by the batched model path.",
    )


class RecommendBatchRequest(BaseModel):
    """Many sessions scored in one call (``/recommend_batch``)."""

    model_config = ConfigDict(extra="forbid")

    sessions: list[RecommendRequest] = Field(
        min_length=1, max_length=MAX_BATCH_SESSIONS, description="The sessions, each as in /recommend."
    )


class RecommendedItem(BaseModel):
    item_id: str
    title: str
    score: float
    reason: str | None = Field(None, description="Why this item (only for requests with a session_id).")


class RecommendResponse(BaseModel):
    items: list[RecommendedItem]
    model_version: str = Field(description="MLflow model version (the BentoML tag if unregistered).")
    unknown_items: list[str] = Field(description="Session ids the model does not know (not used).")
    k: int


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: StrictStr = Field(max_length=MAX_MESSAGE_CHARS)


class ChatRequest(BaseModel):
    """Either ``message`` with its ``session_id`` (the server keeps the dialogue; leave ``session_id`` out on
    the first turn and the server issues an unguessable one, returned in the answer) or ``messages`` (the
    whole conversation so far, replayed; nothing is kept)."""

    model_config = ConfigDict(extra="forbid")

    session_id: SessionId | None = Field(
        None,
        description="Stateful form: the conversation's id (omit on the first turn: the server issues one).",
    )
    message: StrictStr | None = Field(
        None, max_length=MAX_MESSAGE_CHARS, description="Stateful form: the user's new message."
    )
    messages: list[ChatMessage] | None = Field(
        None,
        min_length=1,
        max_length=MAX_MESSAGES,
        description="Stateless form: the conversation so far, oldest first; assistant turns count "
        "(titles they named were shown to the user; a question they asked makes a bare answer on-topic).",
    )
    k: Annotated[StrictInt, Field(ge=1, le=MAX_CHAT_K)] | None = Field(
        None, description="How many items to show (default: conversation.default_k)."
    )


def check_chat_form(session_id: str | None, message: str | None, messages: list | None) -> None:
    """Exactly one of the two /chat forms, or a 400 that says which fields to send."""
    stateful = session_id is not None or message is not None
    if stateful and messages is not None:
        raise invalid(
            "ChatRequest",
            "messages",
            "give either 'session_id' + 'message' (stateful) or 'messages' (stateless), not both",
        )
    if messages is None and message is None:
        raise invalid(
            "ChatRequest",
            "message",
            "'message' is required: send {'message': ...} (a new conversation; the answer carries its "
            "session_id), {'session_id': ..., 'message': ...} (the next turn) or "
            "{'messages': [{'role': 'user', 'content': ...}]} (stateless)",
        )


class ChatItemOut(BaseModel):
    item_id: str
    title: str
    score: float
    reason: str


class ChatResponse(BaseModel):
    reply: str
    items: list[ChatItemOut]
    state: dict[str, Any] = Field(description="The dialogue state after this turn (constraints, likes...).")
    understood: dict[str, Any] = Field(
        default_factory=dict,
        description="The typed query this turn became (intent, constraints, soft text, refs with stances, "
        "critique, unresolved titles, planner).",
    )
    reply_source: str = Field("template", description="'template', or 'llm' when the LLM wrote the reply.")
    session_id: str | None = Field(
        None,
        description="The session (stateful form only): send it with the next turn, /feedback and /reset.",
    )


class FeedbackRequest(BaseModel):
    """A reaction to one item of a session; written to the feedback log before anything else."""

    model_config = ConfigDict(extra="forbid")

    session_id: SessionId
    item_id: ItemId
    event: Event = Field(description=f"One of {list(EVENTS)}.")
    value: StrictFloat | StrictInt | None = Field(
        None, description="Rating value (required for 'rating', e.g. 1-5)."
    )
    user_id: ItemId | None = Field(None, description="Optional user id; stored pseudonymised only.")


def check_feedback_value(event: str, value: float | None) -> None:
    if value is not None and not math.isfinite(float(value)):
        raise invalid("FeedbackRequest", "value", f"'value' must be a finite number, got {value!r}", value)
    if event == "rating" and value is None:
        raise invalid("FeedbackRequest", "value", "a 'rating' event needs a numeric 'value' (e.g. 1-5)")


class FeedbackResponse(BaseModel):
    ok: bool = True
    id: int = Field(description="Row id of the event in the feedback log (it is on disk).")
    polarity: str = Field(description="How the event counts: positive, negative or neutral.")
    items: list[ChatItemOut] = Field(description="The session's list, re-ranked with this feedback.")
    state: dict[str, Any]
    replayed: bool = Field(
        False, description="True when an earlier request with the same Idempotency-Key had stored the event."
    )


class ItemsRequest(BaseModel):
    """Items to add to the served catalogue (POST /admin/items), each checked on its own."""

    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(
        min_length=1,
        max_length=MAX_ROWS_PER_REQUEST,
        description="Items in the canonical item schema: item_id, title, text, categories, year, "
        "attributes (GET /catalogue names the column of each facet). An id the catalogue has already is "
        "re-described; a retired one is served again.",
    )


class RetireRequest(BaseModel):
    """Item ids to stop serving (POST /admin/items/retire)."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[ItemId] = Field(min_length=1, max_length=MAX_RETIRE_PER_REQUEST)


class RejectedItem(BaseModel):
    row: int = Field(description="0-based position in the request.")
    item_id: str | None
    field: str = Field(description="The field at fault ('' when the row is not an object).")
    reason: str


class ItemsResponse(BaseModel):
    """What a catalogue change did; every accepted change is on disk and served before this answer."""

    added: list[str] = Field(description="Ids new to the catalogue, recommendable now.")
    updated: list[str] = Field(description="Ids the catalogue had: their details are replaced.")
    restored: list[str] = Field(description="Ids that were retired and are served again.")
    retired: list[str] = Field(description="Ids no longer recommended.")
    already_retired: list[str]
    rejected: list[RejectedItem] = Field(description="Refused rows, each with the field and the reason.")
    revision: int = Field(description="The catalogue overlay's revision after this change.")
    n_items: int = Field(description="Items that can be recommended now.")
    seconds: float = Field(description="Time from receiving the request to serving the change.")


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: SessionId


class ResetResponse(BaseModel):
    ok: bool = True
    session_id: str
