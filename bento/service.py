"""The sessionflow BentoML service: /recommend, /recommend_batch, /chat, /feedback, /reset, /metadata, the
chat page at /.

Thin on purpose: ranking lives in ``components.bundle.Predictor``, the conversation (parsing, dialogue state,
fusion, reasons) in ``components.dialogue.ConversationEngine``, durable feedback in
``components.feedback_log.FeedbackLog``; request models in ``bento/schemas.py``; packaging in
``flows/package.py``. Production plumbing: ``bento/security.py`` (the ASGI guard in front of every route:
API key, body size, content type, CORS, concurrency, one-line 4xx logs), ``bento/batching.py`` (the
micro-batcher behind /recommend), ``bento/scoring.py`` (its model, in a process of its own),
``bento/runtime.py`` (model checksums, 503s, idempotent feedback).

Which model: one exact BentoML model tag (``name:version``, never ``latest``), taken from the bento
argument ``model_tag`` (``bentoml build --arg model_tag=...``; flows.package stores it in the bento),
else from the environment variable ``SESSIONFLOW_MODEL_TAG`` (development: ``bentoml serve
bento.service:SessionRecommender``). Neither -> the import fails with a message saying what to do.

``/recommend`` without ``session_id`` goes to an in-process micro-batcher (bento/batching.py): concurrent
requests are scored together in one call to the scoring process (no HTTP hop, no GIL shared with the event
loop), and overload is refused at once with 503 + Retry-After instead of queueing into timeouts. With a
``session_id`` it goes through the conversation engine, so that session's likes, dislikes and stated
constraints count immediately.

The model folder is checked against the sha256 checksums written at packaging before anything is loaded.
/feedback answers 503 (and /readyz turns not-ready) while the feedback store is deleted, replaced,
read-only or failing; an ``Idempotency-Key`` header makes a client's retry store the event once.

Feedback goes to ``$SESSIONFLOW_FEEDBACK_URL`` / ``$SESSIONFLOW_FEEDBACK_DB`` or a default next to the
project or the BentoML home (``bento.schemas.feedback_log_url``); /metadata reports the location in use.

Sessions live in this worker's memory (keep one worker) unless the ``conversation.redis_url`` argument
points at Redis.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import anyio
import bentoml
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import JSONResponse, Response

from bento import runtime
from bento.batching import MicroBatcher, Overloaded
from bento.schemas import (
    MODEL_TAG_ENV,
    BentoArgs,
    ChatRequest,
    ChatResponse,
    FeedbackRequest,
    FeedbackResponse,
    ItemId,
    RecommendBatchRequest,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    ResetRequest,
    ResetResponse,
    check_chat_form,
    check_feedback_value,
    feedback_log_url,
    invalid,
    resolve_model_tag,
)
from bento.scoring import ScoringProcess, ScoringUnavailable, Session
from bento.security import ServingGuard, quiet_client_error_tracebacks
from components.serving_settings import API_KEY_ENV, GuardSettings

logger = logging.getLogger("sessionflow.service")

STATIC_DIR = Path(__file__).resolve().parent / "static"


ARGS = bentoml.use_arguments(BentoArgs)
MODEL_TAG = resolve_model_tag(ARGS.model_tag)


metadata_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
metadata_app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@metadata_app.get("/", include_in_schema=False)
def chat_page() -> FileResponse:
    """The chat page (plain HTML + JS in bento/static)."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@bentoml.service(
    name="sessionflow",
    traffic={"timeout": 30},
    # One line per request through Python logging costs more than the rest of a /recommend answer; 4xx and
    # 5xx answers are logged one line each by bento/security.py. SESSIONFLOW_ACCESS_LOG=1 turns it on.
    logging={"access": {"enabled": runtime.access_log_enabled()}},
)
@bentoml.asgi_app(metadata_app, path="/")
class SessionRecommender:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from components.dialogue.engine import load_engine
        from components.feedback_log import FeedbackLog

        self.model_tag = str(self.model_ref.tag)
        model_dir = Path(self.model_ref.path)
        # --- production plumbing (bento/runtime.py, security.py, batching.py, scoring.py) ---
        quiet_client_error_tracebacks()
        runtime.tune_interpreter()
        n_checked = runtime.verify_model_folder(model_dir)  # BundleIntegrityError names the file
        guard = GuardSettings.from_env()
        logger.info(
            "model %s: %d files match their checksums; %s", self.model_tag, n_checked, guard.describe()
        )
        if guard.api_key is None:
            logger.warning(
                "%s is not set: /feedback and /reset are open to anyone who can reach this port", API_KEY_ENV
            )
        labels = dict(self.model_ref.info.labels)
        self.model_version = labels.get("mlflow_model_version") or self.model_tag
        self.scorer = ScoringProcess(model_dir, self.model_version)  # the model, in a process of its own
        self.batcher: MicroBatcher[Session, bytes] = MicroBatcher(
            self.scorer.score,
            max_batch_size=ARGS.max_batch_size,
            max_queue_delay_ms=ARGS.max_latency_ms,
            name="recommend",
        )
        self.replays = runtime.ReplayCache()
        self.readiness = runtime.ReadinessLog()
        # --- end of production plumbing ---
        self.engine = load_engine(model_dir, ARGS.conversation)  # the one engine builder
        self.predictor = self.engine.predictor
        self.feedback_url = feedback_log_url()
        self.feedback_log = FeedbackLog(self.feedback_url)
        where = runtime.feedback_location(self.feedback_url)  # no absolute path or credentials
        logger.info(
            "feedback log: %s; catalogue: %d %s (index %s)",
            where,
            len(self.engine.index),
            self.engine.index.nouns,
            self.engine.index_source,
        )
        meta = self.predictor.meta
        self.lineage: dict[str, Any] = {
            "bentoml_model_tag": self.model_tag,
            "registered_model": labels.get("registered_model"),
            "mlflow_model_version": labels.get("mlflow_model_version"),
            "mlflow_run_id": labels.get("mlflow_run_id"),
            "data_hash": labels.get("data_hash") or meta.get("data_hash"),
            "model": meta.get("model"),
            "n_items": len(self.predictor.vocab),
            "metrics": meta.get("metrics", {}),
            "created_at": meta.get("created_at"),
            "feedback_log": where,
            "catalogue": {
                "index": self.engine.index_source,
                "item_noun": list(self.engine.index.spec.item_noun),
                "facets": {f.name: f.kind for f in self.engine.index.spec.facets},
            },
            "session_store": "redis" if ARGS.conversation.redis_url else "memory",
        }
        runtime.freeze_startup_heap()  # last: nothing loaded above is scanned by the GC again

    async def __is_ready__(self) -> bool:
        """/readyz: not ready while the feedback store cannot take writes (it reopens when it is back).
        Async: a few stat() calls, cheaper inline than a thread hop per probe."""
        return self.readiness.update(*self.feedback_log.health())

    @bentoml.api(route="/recommend_batch", input_spec=RecommendBatchRequest)
    async def recommend_batch(self, sessions: list[RecommendRequest]) -> list[RecommendResponse]:
        """Recommend for many sessions at once (at most ``MAX_BATCH_SESSIONS``); each as in /recommend."""
        parts: list[bytes] = []
        try:
            for session in sessions:  # queued together: the batcher scores them in as few calls as it can
                parts.append(await self._answer(session) if session.session_id else b"")
            plain = [s for s in sessions if s.session_id is None]
            scored = iter(await asyncio.gather(*(self.batcher.submit(self._session(s)) for s in plain)))
        except (Overloaded, ScoringUnavailable) as exc:
            return self._refused(exc)  # type: ignore[return-value]
        body = b",".join(part or next(scored) for part in parts)
        return Response(b"[" + body + b"]", media_type="application/json")  # type: ignore[return-value]

    @bentoml.api(route="/recommend", input_spec=RecommendRequest)
    async def recommend(
        self,
        items: list[ItemId],
        k: int | None = None,
        exclude: list[ItemId] | None = None,
        user_id: ItemId | None = None,
        session_id: str | None = None,
    ) -> RecommendResponse:
        """Top-k items for one session; items already in the session are not recommended back. With a
        ``session_id``, that session's feedback and stated constraints shape the list."""
        request = RecommendRequest(
            items=items, k=k or ARGS.default_k, exclude=exclude or [], user_id=user_id, session_id=session_id
        )
        if session_id is not None:
            return await anyio.to_thread.run_sync(self._score_session, request)
        try:
            body = await self.batcher.submit(self._session(request))
        except (Overloaded, ScoringUnavailable) as exc:
            return self._refused(exc)  # type: ignore[return-value]
        return Response(body, media_type="application/json")  # type: ignore[return-value]  # as scored

    def _session(self, request: RecommendRequest) -> Session:
        return (
            [str(i) for i in request.items],
            request.k or ARGS.default_k,
            [str(i) for i in request.exclude],
        )

    async def _answer(self, request: RecommendRequest) -> bytes:
        answer = await anyio.to_thread.run_sync(self._score_session, request)
        return answer.model_dump_json().encode("utf-8")

    @staticmethod
    def _refused(exc: Exception) -> JSONResponse:
        """Overload or a restarting scorer: 503 + Retry-After at once, never a timeout."""
        retry = getattr(exc, "retry_after_s", 1)
        return runtime.unavailable(f"overloaded, retry shortly ({getattr(exc, 'reason', exc)})", retry)

    @bentoml.api(route="/chat", input_spec=ChatRequest)
    def chat(
        self,
        session_id: str | None = None,
        message: str | None = None,
        messages: list[Any] | None = None,
        k: int | None = None,
    ) -> ChatResponse:
        """One conversational turn: ``session_id`` + ``message`` (kept server-side) or ``messages``."""
        check_chat_form(session_id, message, messages)
        if messages is None and session_id is None:
            session_id = runtime.new_session_id()  # a new conversation: the server issues its id
        try:
            if messages is not None:
                result = self.engine.chat_stateless([m.model_dump() for m in messages], k)
            else:
                result = self.engine.chat(str(session_id), str(message), k)
        except ValueError as exc:
            raise invalid("ChatRequest", "messages" if messages else "message", str(exc)) from None
        return ChatResponse(**result.to_dict(), session_id=session_id)

    @bentoml.api(route="/feedback", input_spec=FeedbackRequest)
    def feedback(
        self,
        session_id: str,
        item_id: ItemId,
        event: str,
        ctx: bentoml.Context,
        value: float | None = None,
        user_id: ItemId | None = None,
    ) -> FeedbackResponse:
        """Log the event durably (on disk before the answer), then re-rank the session's list with it.
        With an ``Idempotency-Key`` header a retry stores nothing new and gets the first answer."""
        check_feedback_value(event, value)
        item = str(item_id)
        if self.engine.index.index(item) is None:
            raise invalid(
                "FeedbackRequest",
                "item_id",
                f"unknown item id {item!r}: the served model's catalogue of {len(self.engine.index)}"
                " items does not have it (use ids from /chat or /recommend answers)",
                item_id,
            )
        record = {"session_id": session_id, "item_id": item, "event": event, "value": value}
        if user_id is not None:
            record["user_id"] = str(user_id)
        key = ctx.request.headers.get(runtime.IDEMPOTENCY_HEADER)
        stored = self._store_feedback(record, key)  # committed (fsynced) before anything else happens
        if isinstance(stored, JSONResponse):  # 503 / 409: nothing was stored now
            ctx.response.status_code = stored.status_code  # BentoML applies the context's status code
            return stored  # type: ignore[return-value]
        if stored.replayed and key is not None and (cached := self.replays.get(key)) is not None:
            return FeedbackResponse(**cached)
        answer = self.engine.feedback(session_id, item, event, value)
        response = FeedbackResponse(
            id=stored.id,
            polarity=answer["polarity"],
            items=answer.get("items", []),
            state=answer["state"],
            replayed=stored.replayed,
        )
        if key is not None:
            self.replays.put(key, {**response.model_dump(), "replayed": True})
        return response

    @bentoml.api(route="/reset", input_spec=ResetRequest)
    def reset(self, session_id: str) -> ResetResponse:
        """Forget a session's conversation and feedback (the feedback log keeps its events)."""
        self.engine.reset(session_id)
        return ResetResponse(session_id=session_id)

    @metadata_app.get("/catalogue")
    def catalogue(self, items: bool = False) -> dict[str, Any]:
        """What this catalogue is and what can be asked of it: item nouns, facets and their values (the chat
        page words itself from this); with ``?items=true`` also every item id, title and year."""
        ix = self.engine.index
        out: dict[str, Any] = {
            "item_noun": list(ix.spec.item_noun),
            "n_items": len(ix),
            "facets": [
                {"name": f.name, "kind": f.kind, "values": ix.categories[f.name].values[:200]}
                if f.name in ix.categories
                else {"name": f.name, "kind": f.kind, "unit": f.unit, "bounds": ix.numbers[f.name].bounds}
                for f in ix.spec.facets
                if f.name in ix.categories or f.name in ix.numbers
            ],
            "planner": self.engine.planner.name,
        }
        if items:
            out |= {
                "item_ids": ix.item_ids,
                "titles": ix.titles,
                "years": [None if y != y else float(y) for y in ix.years.tolist()],
            }
        return out

    @metadata_app.get("/metadata")
    def metadata(self) -> dict[str, Any]:
        """Lineage of the served model: data hash, MLflow run/version, bento tag, catalogue, metrics; and
        how /recommend is being batched (requests, batches, largest batch, refused)."""
        stats = self.batcher.stats
        batching = {
            "requests": stats.requests,
            "batches": stats.batches,
            "largest_batch": stats.largest_batch,
            "shed": stats.shed,
            "scorer_restarts": self.scorer.restarts,
        }
        return {**self.lineage, "bento_tag": _bento_tag(), "batching": batching}

    def _store_feedback(self, record: dict[str, Any], key: str | None) -> Any:
        """``Appended`` once on disk; a 503 while the store is unavailable, a 409 for a reused key."""
        from components.feedback_log import Appended, IdempotencyConflict, check_idempotency_key
        from components.feedback_store import FeedbackStoreUnavailable

        if key is not None:
            try:
                check_idempotency_key(key)
            except ValueError as exc:
                raise invalid("FeedbackRequest", "Idempotency-Key", str(exc)) from None
        try:
            if key is None:
                return Appended(self.feedback_log.append(record))
            return self.feedback_log.append_once(record, key)
        except FeedbackStoreUnavailable as exc:
            self.readiness.update(False, str(exc))
            return runtime.unavailable("the feedback store is unavailable; nothing was stored, retry later")
        except IdempotencyConflict as exc:
            return runtime.conflict(str(exc))

    def _score_session(self, request: RecommendRequest) -> RecommendResponse:
        """A session-aware ranking: the request's items plus the session's live feedback and constraints."""
        known, unknown = self.engine.split_known([str(i) for i in request.items])
        k = request.k or ARGS.default_k
        items = self.engine.recommend(request.session_id, known, k, exclude=[str(i) for i in request.exclude])
        return RecommendResponse(
            items=[RecommendedItem(**i._asdict()) for i in items],
            model_version=self.model_version,
            unknown_items=unknown,
            k=k,
        )


SessionRecommender.add_asgi_middleware(ServingGuard)  # bento/security.py: in front of every route
runtime.cache_api_signatures(SessionRecommender)


def _bento_tag() -> str | None:
    """``name:version`` of the bento being served, or None when serving from source."""
    ctx = bentoml.server_context
    if not ctx.bento_version or ctx.bento_version == "not available":
        return None
    return f"{ctx.bento_name}:{ctx.bento_version}"


__all__ = [
    "MODEL_TAG",
    "MODEL_TAG_ENV",
    "BentoArgs",
    "SessionRecommender",
    "feedback_log_url",
    "resolve_model_tag",
]
