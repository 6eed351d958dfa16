"""The sessionflow BentoML service: /recommend, /recommend_batch, /chat, /feedback, /reset, /metadata, the
chat page at /.

Thin on purpose: ranking lives in ``components.bundle.Predictor``, the conversation (parsing, dialogue state,
fusion, reasons) in ``components.dialogue.ConversationEngine``, durable feedback in
``components.feedback_log.FeedbackLog``; request models in ``bento/schemas.py``; packaging in
``flows/package.py``.

Which model: one exact BentoML model tag (``name:version``, never ``latest``), taken from the bento
argument ``model_tag`` (``bentoml build --arg model_tag=...``; flows.package stores it in the bento),
else from the environment variable ``SESSIONFLOW_MODEL_TAG`` (development: ``bentoml serve
bento.service:SessionRecommender``). Neither -> the import fails with a message saying what to do.

``/recommend`` without ``session_id`` hands the session to the batchable ``/recommend_batch`` through the
service's own client, so concurrent requests are scored together by BentoML's adaptive batching; with a
``session_id`` it goes through the conversation engine, so that session's likes, dislikes and stated
constraints count immediately.

Feedback goes to ``$SESSIONFLOW_FEEDBACK_URL`` / ``$SESSIONFLOW_FEEDBACK_DB`` or a default next to the
project or the BentoML home (``bento.schemas.feedback_log_url``); /metadata reports the location in use.

Sessions live in this worker's memory (keep one worker) unless the ``conversation.redis_url`` argument
points at Redis.

Hot reload (``bento/model_holder.py``): the served model -- predictor, engine, lineage -- lives in a
``ModelHolder`` that follows the release record written by packaging/promotion and swaps models without a
restart; handlers take ``self.holder.current`` once per request. POST /admin/reload checks the record now.
Served requests go to an append-only request log (``components/request_log.py``), batched off the request
path, for ``sessionflow monitor``.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import bentoml
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from bento.model_holder import (  # noqa: F401 - ITEM_EMBEDDINGS*: part of this module's interface
    ITEM_EMBEDDINGS,
    ITEM_EMBEDDINGS_META,
    ModelHolder,
    build_engine,
)
from bento.schemas import (
    MODEL_TAG_ENV,
    BentoArgs,
    ChatRequest,
    ChatResponse,
    FeedbackRequest,
    FeedbackResponse,
    ItemId,
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

if TYPE_CHECKING:  # heavy (torch, via the models): imported in the worker, not by `bentoml serve`
    from components.bundle import RecommendResult

logger = logging.getLogger("sessionflow.service")

STATIC_DIR = Path(__file__).resolve().parent / "static"


ARGS = bentoml.use_arguments(BentoArgs)
MODEL_TAG = resolve_model_tag(ARGS.model_tag)


def _response(result: RecommendResult, k: int, model_version: str) -> RecommendResponse:
    return RecommendResponse(
        items=[RecommendedItem(item_id=r.item_id, title=r.title, score=r.score) for r in result.items[:k]],
        model_version=model_version,
        unknown_items=result.unknown_items,
        k=k,
    )


metadata_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
metadata_app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@metadata_app.get("/", include_in_schema=False)
def chat_page() -> FileResponse:
    """The chat page (plain HTML + JS in bento/static)."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@bentoml.service(name="sessionflow", traffic={"timeout": 30})
@bentoml.asgi_app(metadata_app, path="/")
class SessionRecommender:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from components.feedback_log import FeedbackLog

        # -- hot reload (bento/model_holder.py): the holder owns predictor + engine and swaps them -------
        self.holder = ModelHolder(
            MODEL_TAG, ARGS.conversation, release_file(MODEL_TAG), ARGS.reload_interval_s
        )
        self.holder.start()
        # ----------------------------------------------------------------------------------------------
        self.feedback_url = feedback_log_url()
        self.feedback_log = FeedbackLog(self.feedback_url)
        self.request_log = open_request_log(self.feedback_url, self.feedback_log, ARGS.log_requests)
        where = re.sub(r"//[^@/]*@", "//", self.feedback_url)  # no credentials in logs or /metadata
        logger.info("feedback log: %s; serving %s", where, self.holder.current.model_tag)
        self.lineage: dict[str, Any] = {
            "feedback_log": where,
            "session_store": "redis" if ARGS.conversation.redis_url else "memory",
        }

    # the model serving now; a handler that needs several of these reads ``self.holder.current`` once
    predictor = property(lambda self: self.holder.current.predictor)
    engine = property(lambda self: self.holder.current.engine)
    model_version = property(lambda self: self.holder.current.model_version)

    @bentoml.api(
        route="/recommend_batch",
        batchable=True,
        max_batch_size=ARGS.max_batch_size,
        max_latency_ms=ARGS.max_latency_ms,
    )
    def recommend_batch(self, sessions: list[RecommendRequest]) -> list[RecommendResponse]:
        """Recommend for many sessions at once; concurrent /recommend calls are batched into here."""
        return self._score(sessions)

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
            [response] = await self.to_async.recommend_batch(sessions=[request])
        except (aiohttp.ClientError, RuntimeError) as exc:
            # bentoml 1.4.3x recycles its self-client's aiohttp session every 100 calls and can cut calls
            # in flight (bentoml/BentoML#5540, #5544): score this one directly instead of failing it.
            if isinstance(exc, RuntimeError) and "closed" not in str(exc):
                raise
            logger.warning("batched call failed (%s: %s); scoring directly", type(exc).__name__, exc)
            # not logged again: the cut call was scored (and logged) by /recommend_batch all the same
            [response] = await anyio.to_thread.run_sync(self._score, [request], False)
        return response

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
        served, t0 = self.holder.current, time.perf_counter()
        try:
            if messages is not None:
                result = served.engine.chat_stateless([m.model_dump() for m in messages], k)
            else:
                result = served.engine.chat(str(session_id), str(message), k)
        except ValueError as exc:
            raise invalid("ChatRequest", "messages" if messages else "message", str(exc)) from None
        self._log_request("chat", served, t0, result.items, k, session_id=session_id)
        return ChatResponse(**result.to_dict(), session_id=session_id)

    @bentoml.api(route="/feedback", input_spec=FeedbackRequest)
    def feedback(
        self,
        session_id: str,
        item_id: ItemId,
        event: str,
        value: float | None = None,
        user_id: ItemId | None = None,
    ) -> FeedbackResponse:
        """Log the event durably (on disk before the answer), then re-rank the session's list with it."""
        check_feedback_value(event, value)
        item = str(item_id)
        if self.engine.catalogue.index(item) is None:
            raise invalid(
                "FeedbackRequest",
                "item_id",
                f"unknown item id {item!r}: the served model's catalogue of {len(self.engine.catalogue)}"
                " items does not have it (use ids from /chat or /recommend answers)",
                item_id,
            )
        record = {"session_id": session_id, "item_id": item, "event": event, "value": value}
        if user_id is not None:
            record["user_id"] = str(user_id)
        log_id = self.feedback_log.append(record)  # committed (fsynced) before anything else happens
        answer = self.engine.feedback(session_id, item, event, value)
        return FeedbackResponse(
            id=log_id, polarity=answer["polarity"], items=answer.get("items", []), state=answer["state"]
        )

    @bentoml.api(route="/reset", input_spec=ResetRequest)
    def reset(self, session_id: str) -> ResetResponse:
        """Forget a session's conversation and feedback (the feedback log keeps its events)."""
        self.engine.reset(session_id)
        return ResetResponse(session_id=session_id)

    @metadata_app.get("/metadata")
    def metadata(self) -> dict[str, Any]:
        """The model serving now and its whole lineage chain (data -> code/DVC -> MLflow run -> registered
        version -> bento -> this process), hot-reload status, request-log counters."""
        served = self.holder.current
        info = served.describe()
        info["lineage"]["serving"] = {**self.holder.process(), "bento_tag": _bento_tag()}
        return {
            **info,
            **self.lineage,
            "bento_tag": _bento_tag(),
            "reload": self.holder.status(),
            "request_log": self.request_log.stats() if self.request_log else None,
        }

    @bentoml.api(route="/admin/reload")
    def admin_reload(self) -> dict[str, Any]:
        """Admin: check the release record now and switch models if it names another one (same checks as
        the automatic reload; a failing model is not served). Protect /admin/* with the API key."""
        return self.holder.check(force=True)

    def _score(self, sessions: list[RecommendRequest], log: bool = True) -> list[RecommendResponse]:
        out: dict[int, RecommendResponse] = {
            n: self._score_session(s) for n, s in enumerate(sessions) if s.session_id is not None
        }
        plain = [(n, s) for n, s in enumerate(sessions) if s.session_id is None]
        if plain:
            served, t0 = self.holder.current, time.perf_counter()  # one model for the whole batch
            ks = [s.k or ARGS.default_k for _, s in plain]
            results = served.predictor.recommend_batch(
                [[str(i) for i in s.items] for _, s in plain],
                k=max(ks),
                exclude=[[str(i) for i in s.exclude] for _, s in plain],
            )
            for (n, s), r, k in zip(plain, results, ks, strict=True):
                out[n] = _response(r, k, served.model_version)
                if log:
                    self._log_request("recommend", served, t0, out[n].items, k, s, r.unknown_items)
        return [out[n] for n in range(len(sessions))]

    def _score_session(self, request: RecommendRequest) -> RecommendResponse:
        """A session-aware ranking: the request's items plus the session's live feedback and constraints."""
        served, t0 = self.holder.current, time.perf_counter()
        known, unknown = served.engine.split_known([str(i) for i in request.items])
        k = request.k or ARGS.default_k
        items = served.engine.recommend(
            request.session_id, known, k, exclude=[str(i) for i in request.exclude]
        )
        response = RecommendResponse(
            items=[RecommendedItem(**i._asdict()) for i in items],
            model_version=served.model_version,
            unknown_items=unknown,
            k=k,
        )
        self._log_request("recommend_session", served, t0, items, k, request, unknown)
        return response

    def _log_request(
        self,
        endpoint: str,
        served: Any,
        t0: float,
        shown: list[Any],
        k: int | None,
        request: RecommendRequest | None = None,
        unknown: list[str] | None = None,
        session_id: str | None = None,
    ) -> None:
        """Queue one served request for the monitoring log (no I/O here; see components/request_log.py)."""
        if self.request_log is None:
            return
        self.request_log.record(
            endpoint,
            items=request.items if request is not None else [],
            unknown=unknown or [],
            shown=[i.item_id for i in shown],
            scores=[i.score for i in shown],
            k=k,
            model_tag=served.model_tag,
            model_version=served.model_version,
            session_id=request.session_id if request is not None else session_id,
            user_id=request.user_id if request is not None else None,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
        )


def release_file(model_tag: str) -> Path | None:
    """The release record this service follows (components/release.py); None when reloading is off."""
    if ARGS.reload_interval_s <= 0:
        return None
    from bentoml._internal.configuration.containers import BentoMLContainer

    from components.release import release_path

    return release_path(BentoMLContainer.bentoml_home.get(), model_tag.partition(":")[0])


def open_request_log(feedback_url: str, feedback_log: Any, enabled: bool) -> Any:
    """The batched request log (next to a SQLite feedback log, or ``$SESSIONFLOW_REQUEST_LOG_DB``)."""
    if not enabled:
        return None
    from bentoml._internal.configuration.containers import BentoMLContainer

    from components.request_log import RequestLog, request_log_path

    path = request_log_path(feedback_url) or (
        Path(BentoMLContainer.bentoml_home.get()) / "sessionflow" / "requests.db"
    )
    return RequestLog(path, pseudonymise=feedback_log.pseudonymise)


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
    "build_engine",
    "feedback_log_url",
    "resolve_model_tag",
]
