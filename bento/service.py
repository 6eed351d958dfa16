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

Sessions live in the worker's memory when one worker serves (the default); with more
(``SESSIONFLOW_WORKERS``) they live in a SQLite file the workers share (``sessions.db`` beside the feedback
log), or wherever the ``conversation.session_db`` / ``conversation.redis_url`` arguments point.

Hot reload (``bento/model_holder.py``): the served model -- predictor, conversation engine (built by
``components.dialogue.engine.load_engine``), /recommend scorer, lineage -- lives in a ``ModelHolder`` that
follows the release record written by packaging/promotion and swaps models without a restart; handlers take
``self.holder.current`` once per request. POST /admin/reload checks the record now. Served requests go to
an append-only request log (``components/request_log.py``), batched off the request path, for
``sessionflow monitor``.

Catalogue churn: POST /admin/items adds (or re-describes) items and POST /admin/items/retire retires them,
behind the API key; GET /admin/items lists the changes. Each change is validated row by row (refused rows
come back with the field and the reason), written durably to the catalogue overlay
(components/catalogue_overlay.py) and served before the answer: added items are recommendable at once from
their text embeddings and facets, retired ones are never returned again, across hot reloads and restarts,
until they are added again. The next retrain folds the overlay into its items data.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
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
from bento.model_holder import ModelHolder, ServedModel
from bento.schemas import (
    MODEL_TAG_ENV,
    BentoArgs,
    ChatRequest,
    ChatResponse,
    FeedbackRequest,
    FeedbackResponse,
    ItemId,
    ItemsRequest,
    ItemsResponse,
    RecommendBatchRequest,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    ResetRequest,
    ResetResponse,
    RetireRequest,
    catalogue_overlay_path,
    check_chat_form,
    check_feedback_value,
    feedback_log_url,
    invalid,
    invalid_rows,
    resolve_model_tag,
    session_db_path,
)
from bento.scoring import ScoringUnavailable, Session
from bento.security import front_door, quiet_client_error_tracebacks
from components.dialogue.config import ConversationConfig
from components.serving_settings import (
    API_KEY_ENV,
    REQUEST_TIMEOUT_S,
    SERVICE_NAME,
    GuardSettings,
    service_threads,
    service_workers,
    tracing_config,
)

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
    name=SERVICE_NAME,
    traffic={"timeout": REQUEST_TIMEOUT_S},  # enforced by the guard (bento/security.py), not by BentoML
    workers=service_workers(),  # SESSIONFLOW_WORKERS; sessions are shared between workers (see __init__)
    threads=service_threads(),  # SESSIONFLOW_THREADS: concurrent /chat, /feedback, /reset calls per worker
    tracing=tracing_config(),  # no OpenTelemetry span per request unless the deployment configures tracing
    # One line per request through Python logging costs more than the rest of a /recommend answer; 4xx and
    # 5xx answers are logged one line each by bento/security.py. SESSIONFLOW_ACCESS_LOG=1 turns it on.
    logging={"access": {"enabled": runtime.access_log_enabled()}},
)
@bentoml.asgi_app(metadata_app, path="/")
class SessionRecommender:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from components.feedback_log import FeedbackLog

        # --- production plumbing (bento/runtime.py, security.py, batching.py, scoring.py) ---
        quiet_client_error_tracebacks()
        runtime.tune_interpreter()
        guard = GuardSettings.from_env()
        logger.info("guard: %s", guard.describe())
        if guard.api_key is None:
            logger.warning(
                "%s is not set: /feedback and /reset are open to anyone who can reach this port", API_KEY_ENV
            )
        # --- hot reload (bento/model_holder.py): the holder owns the model, engine and scorer, and swaps
        # them; every model is checked against its checksums first (BundleIntegrityError names the file).
        # It also owns the catalogue overlay: items added or retired while serving
        from components.catalogue_overlay import OverlayStore

        self.feedback_url = feedback_log_url()
        conversation = shared_sessions(ARGS.conversation, worker_count(), self.feedback_url)
        self.holder = ModelHolder(
            MODEL_TAG,
            conversation,
            release_file(MODEL_TAG),
            ARGS.reload_interval_s,
            scoring_process=True,
            overlay=OverlayStore(catalogue_overlay_path()),
        )
        self.holder.start()
        self.batcher: MicroBatcher[Session, bytes] = MicroBatcher(
            self._score_plain,
            max_batch_size=ARGS.max_batch_size,
            max_queue_delay_ms=ARGS.max_latency_ms,
            name="recommend",
        )
        self.replays = runtime.ReplayCache()
        self.readiness = runtime.ReadinessLog()
        # --- end of production plumbing ---
        self.feedback_log = FeedbackLog(self.feedback_url)
        self.request_log = open_request_log(self.feedback_url, self.feedback_log, ARGS.log_requests)
        where = runtime.feedback_location(self.feedback_url)  # no absolute path or credentials
        served = self.holder.current
        logger.info(
            "feedback log: %s; serving %s; catalogue: %d %s (index %s)",
            where,
            served.model_tag,
            len(served.engine.index),
            served.engine.index.nouns,
            served.engine.index_source,
        )
        self.lineage: dict[str, Any] = {
            "feedback_log": where,
            "session_store": "redis"
            if conversation.redis_url
            else f"sqlite:{Path(conversation.session_db).name}"
            if conversation.session_db
            else "memory",
        }
        runtime.freeze_startup_heap()  # last: nothing loaded above is scanned by the GC again

    # the model serving now; a handler that needs several of these reads ``self.holder.current`` once
    predictor = property(lambda self: self.holder.current.predictor)
    engine = property(lambda self: self.holder.current.engine)
    model_version = property(lambda self: self.holder.current.model_version)

    def _score_plain(self, sessions: list[Session]) -> list[bytes]:
        """The micro-batcher's scorer: the serving model's scoring process (one model per batch)."""
        served = self.holder.current
        if served.scorer is None:
            raise ScoringUnavailable("the serving model has no scoring process")
        return served.scorer.score(sessions)

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
        t0 = time.perf_counter()
        try:
            body = await self.batcher.submit(self._session(request))
        except (Overloaded, ScoringUnavailable) as exc:
            return self._refused(exc)  # type: ignore[return-value]
        if self.request_log is not None:
            self._log_plain(request, body, t0)
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
        ctx: bentoml.Context,
        value: float | None = None,
        user_id: ItemId | None = None,
    ) -> FeedbackResponse:
        """Log the event durably (on disk before the answer), then re-rank the session's list with it.
        With an ``Idempotency-Key`` header a retry stores nothing new and gets the first answer."""
        check_feedback_value(event, value)
        item = str(item_id)
        engine = self.engine
        if engine.index.index(item) is None:
            raise invalid(
                "FeedbackRequest",
                "item_id",
                f"unknown item id {item!r}: the served model's catalogue of {len(engine.index)}"
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
        answer = engine.feedback(session_id, item, event, value)
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
        engine = self.engine
        ix = engine.index
        out: dict[str, Any] = {
            "item_noun": list(ix.spec.item_noun),
            "n_items": engine.n_active,
            "facets": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "column": f.column,
                    "values": ix.categories[f.name].values[:200],
                }
                if f.name in ix.categories
                else {
                    "name": f.name,
                    "kind": f.kind,
                    "column": f.column,
                    "unit": f.unit,
                    "bounds": ix.numbers[f.name].bounds,
                }
                for f in ix.spec.facets
                if f.name in ix.categories or f.name in ix.numbers
            ],  # fmt: skip
            "planner": engine.planner.name,
        }
        if items:  # the items that can be recommended: retired ones left out
            keep = [i for i in range(len(ix)) if engine.retired is None or not engine.retired[i]]
            out |= {
                "item_ids": [ix.item_ids[i] for i in keep],
                "titles": [ix.titles[i] for i in keep],
                "years": [None if y != y else float(y) for y in ix.years[keep].tolist()],
            }
        return out

    @metadata_app.get("/metadata")
    def metadata(self) -> dict[str, Any]:
        """The model serving now and its whole lineage chain (data -> code/DVC -> MLflow run -> registered
        version -> bento -> this process), hot-reload status, request-log counters, and how /recommend is
        being batched (requests, batches, largest batch, refused)."""
        served = self.holder.current
        info = served.describe()
        info["lineage"]["serving"] = {**self.holder.process(), "bento_tag": _bento_tag()}
        stats = self.batcher.stats
        batching = {
            "requests": stats.requests,
            "batches": stats.batches,
            "largest_batch": stats.largest_batch,
            "shed": stats.shed,
            "scorer_restarts": served.scorer.restarts if served.scorer is not None else None,
        }
        return {
            **info,
            **self.lineage,
            "bento_tag": _bento_tag(),
            "batching": batching,
            "reload": self.holder.status(),
            "request_log": self._request_log_stats(),
        }

    def _request_log_stats(self) -> dict[str, Any] | None:
        if self.request_log is None:
            return None
        stats = self.request_log.stats()
        return stats | {"path": Path(stats["path"]).name}  # the file name, never an absolute path

    @bentoml.api(route="/admin/reload")
    def admin_reload(self) -> dict[str, Any]:
        """Admin: check the release record now and switch models if it names another one (same checks as
        the automatic reload; a failing model is not served); then re-read the catalogue overlay if its
        file changed (e.g. a backup copied back). Needs the API key when one is set."""
        outcome = self.holder.check(force=True)
        return outcome | {"catalogue_reapplied": self.holder.check_catalogue()}

    @bentoml.api(route="/admin/items", input_spec=ItemsRequest)
    def admin_items(self, items: list[Any], ctx: bentoml.Context) -> ItemsResponse:
        """Admin: add items to the served catalogue (or re-describe ones it has, or restore retired ones).
        Each row is checked on its own; valid rows are stored durably and recommendable before the answer,
        refused ones come back with the field and the reason (400 when no row is valid)."""
        from bento.model_holder import CatalogueNotServed
        from components.catalogue_overlay import OverlayError, OverlayFull

        t0 = time.perf_counter()
        try:
            report, n_items = self.holder.add_items(items)
        except OverlayFull as exc:
            return self._status(ctx, runtime.conflict(str(exc)))
        except CatalogueNotServed as exc:
            return self._status(ctx, self._not_served(exc))
        except OverlayError as exc:
            return self._status(ctx, self._store_down(exc))
        if report.rejected and not report.accepted:
            raise invalid_rows(
                "ItemsRequest",
                [
                    (("items", r.row, *([r.field] if r.field else [])), r.reason, None)
                    for r in report.rejected
                ],
            )
        return ItemsResponse(**report.to_dict(), n_items=n_items, seconds=round(time.perf_counter() - t0, 4))

    @bentoml.api(route="/admin/items/retire", input_spec=RetireRequest)
    def admin_retire(self, item_ids: list[ItemId], ctx: bentoml.Context) -> ItemsResponse:
        """Admin: retire items: stored durably and never returned by /recommend or /chat from this answer on
        (across reloads and restarts, until added again). Unknown ids are refused (400 when all are)."""
        from bento.model_holder import CatalogueNotServed
        from components.catalogue_overlay import OverlayError

        t0 = time.perf_counter()
        try:
            report, n_items = self.holder.retire_items([str(i) for i in item_ids])
        except CatalogueNotServed as exc:
            return self._status(ctx, self._not_served(exc))
        except OverlayError as exc:
            return self._status(ctx, self._store_down(exc))
        if report.rejected and not report.retired and not report.already_retired:
            raise invalid_rows(
                "RetireRequest", [(("item_ids", r.row), r.reason, r.item_id) for r in report.rejected]
            )
        return ItemsResponse(**report.to_dict(), n_items=n_items, seconds=round(time.perf_counter() - t0, 4))

    @metadata_app.get("/admin/items")
    def admin_list_items(self, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        """Admin: the catalogue changes stored (added rows from ``offset``, at most ``limit`` of them; every
        retired id; the revision) and what is served."""
        from components.catalogue_overlay import OverlayError, OverlayState

        if offset < 0 or not 1 <= limit <= 10_000:
            return JSONResponse(
                {"error": "offset must be >= 0 and limit between 1 and 10000"}, status_code=400
            )  # type: ignore[return-value]
        served = self.holder.current
        try:
            state = self.holder.overlay.read() if self.holder.overlay is not None else OverlayState()
        except OverlayError as exc:
            return self._store_down(exc)  # type: ignore[return-value]
        rows = list(state.items.values())
        return {
            "revision": state.revision,
            "updated_at": state.updated_at,
            "n_added": len(rows),
            "offset": offset,
            "items": rows[offset : offset + limit],
            "retired": state.retired,
            "served": served.catalogue.describe() if served.catalogue is not None else None,
            "n_items": served.engine.n_active,
        }

    @staticmethod
    def _status(ctx: bentoml.Context, response: JSONResponse) -> Any:
        ctx.response.status_code = response.status_code  # BentoML applies the context's status code
        return response

    @staticmethod
    def _not_served(exc: Exception) -> JSONResponse:
        report = getattr(exc, "report", None)
        revision = report.revision if report is not None else "?"
        return runtime.unavailable(
            f"the change is stored (catalogue revision {revision}) but not served yet ({exc}); the service "
            "retries it on its next check"
        )

    def _store_down(self, exc: Exception) -> JSONResponse:
        logger.error("catalogue store: %s", exc)
        folder = str(self.holder.overlay.path.parent) + "/" if self.holder.overlay is not None else "\0"
        reason = str(exc).replace(folder, "")  # the file name, never an absolute path
        return runtime.unavailable(f"the catalogue store is unavailable; nothing was changed ({reason})")

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

    def _log_plain(self, request: RecommendRequest, body: bytes, t0: float) -> None:
        """Log a batched /recommend answer (its JSON as the scoring process wrote it)."""
        try:
            answer = RecommendResponse.model_validate_json(body)
        except ValueError:
            return
        self._log_request(
            "recommend", self.holder.current, t0, answer.items, answer.k, request, answer.unknown_items
        )

    def _log_request(
        self,
        endpoint: str,
        served: ServedModel,
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


def worker_count() -> int:
    """HTTP workers of this service as BentoML runs it (the decorator's ``workers``, or a deployment's
    BentoML configuration)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    try:
        workers = BentoMLContainer.config.services[SERVICE_NAME].workers.get()
    except (KeyError, AttributeError):
        return service_workers()
    if workers == "cpu_count":
        return os.cpu_count() or 1
    return int(workers or 1)


def shared_sessions(config: ConversationConfig, workers: int, feedback_url: str) -> ConversationConfig:
    """``config`` with a session store every worker sees when more than one serves (a session's next turn
    may reach another worker): a SQLite file beside the feedback log, unless Redis or a file is configured."""
    if workers <= 1 or config.redis_url or config.session_db:
        return config
    return config.model_copy(update={"session_db": str(session_db_path(feedback_url))})


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


class _GuardedService(type(SessionRecommender)):  # type: ignore[misc]
    """The service with bento/security.py's guard as the outermost layer of the ASGI app each worker builds
    (``to_asgi``). ``add_asgi_middleware`` would put it behind BentoML's own middlewares, where a refusal
    costs six times as much and BentoML's never-cancelled per-request timer could not be taken out.
    tests/service/test_guard.py checks the app a worker gets."""

    __slots__ = ()

    def to_asgi(self, is_main: bool = True) -> Any:
        return front_door(super().to_asgi(is_main))


SessionRecommender.__class__ = _GuardedService
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
