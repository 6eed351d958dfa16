"""The sessionflow BentoML service: the packaged model behind /recommend, /recommend_batch and /metadata.

Thin on purpose: ranking lives in ``components.bundle.Predictor``; packaging in ``flows/package.py``.

Which model: one exact BentoML model tag (``name:version``, never ``latest``), taken from the bento
argument ``model_tag`` (``bentoml build --arg model_tag=...``; flows.package stores it in the bento),
else from the environment variable ``SESSIONFLOW_MODEL_TAG`` (development: ``bentoml serve
bento.service:SessionRecommender``). Neither -> the import fails with a message saying what to do.

``/recommend`` takes one session and hands it to the batchable ``/recommend_batch`` through the service's
own client, so concurrent requests are scored together by BentoML's adaptive batching.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any

import aiohttp
import anyio
import bentoml
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from components.bundle import Predictor, RecommendResult
from components.config import ServeConfig

logger = logging.getLogger("sessionflow.service")

MODEL_TAG_ENV = "SESSIONFLOW_MODEL_TAG"
MAX_K = 1000
MAX_SESSION_ITEMS = 5000
_SERVE_DEFAULTS = ServeConfig()


class BentoArgs(BaseModel):
    """Bento arguments (``--arg key=value`` at build or serve time; kept inside a built bento)."""

    model_tag: str | None = None
    default_k: int = Field(_SERVE_DEFAULTS.default_k, ge=1, le=MAX_K)
    max_batch_size: int = Field(_SERVE_DEFAULTS.max_batch_size, ge=2)
    max_latency_ms: int = Field(_SERVE_DEFAULTS.max_latency_ms, ge=1)


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


ARGS = bentoml.use_arguments(BentoArgs)
MODEL_TAG = resolve_model_tag(ARGS.model_tag)

ItemId = StrictStr | StrictInt


class RecommendRequest(BaseModel):
    """One session: raw item ids, oldest first."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemId] = Field(
        max_length=MAX_SESSION_ITEMS, description="Raw item ids of the session, oldest first."
    )
    k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = Field(
        ARGS.default_k, description="How many items to recommend."
    )
    exclude: list[ItemId] = Field(
        default_factory=list, max_length=MAX_SESSION_ITEMS, description="Item ids never to recommend."
    )
    user_id: ItemId | None = Field(None, description="Optional user id (not used for ranking).")


class RecommendedItem(BaseModel):
    item_id: str
    title: str
    score: float


class RecommendResponse(BaseModel):
    items: list[RecommendedItem]
    model_version: str = Field(description="MLflow model version (the BentoML tag if unregistered).")
    unknown_items: list[str] = Field(description="Session ids the model does not know (not used).")
    k: int


def _response(result: RecommendResult, k: int, model_version: str) -> RecommendResponse:
    return RecommendResponse(
        items=[RecommendedItem(item_id=r.item_id, title=r.title, score=r.score) for r in result.items[:k]],
        model_version=model_version,
        unknown_items=result.unknown_items,
        k=k,
    )


metadata_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(name="sessionflow", traffic={"timeout": 30})
@bentoml.asgi_app(metadata_app, path="/")
class SessionRecommender:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self.model_tag = str(self.model_ref.tag)
        self.predictor = Predictor.load(self.model_ref.path)
        labels = dict(self.model_ref.info.labels)
        meta = self.predictor.meta
        self.model_version = labels.get("mlflow_model_version") or self.model_tag
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
        }

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
        k: int = ARGS.default_k,
        exclude: list[ItemId] | None = None,
        user_id: ItemId | None = None,
    ) -> RecommendResponse:
        """Top-k items for one session; items already in the session are not recommended back."""
        request = RecommendRequest(items=items, k=k, exclude=exclude or [], user_id=user_id)
        try:
            [response] = await self.to_async.recommend_batch(sessions=[request])
        except (aiohttp.ClientError, RuntimeError) as exc:
            # bentoml 1.4.3x recycles its self-client's aiohttp session every 100 calls and can cut calls
            # in flight (bentoml/BentoML#5540, #5544): score this one directly instead of failing it.
            if isinstance(exc, RuntimeError) and "closed" not in str(exc):
                raise
            logger.warning("batched call failed (%s: %s); scoring directly", type(exc).__name__, exc)
            [response] = await anyio.to_thread.run_sync(self._score, [request])
        return response

    @metadata_app.get("/metadata")
    def metadata(self) -> dict[str, Any]:
        """Lineage of the served model: data hash, MLflow run/version, bento tag, catalogue, metrics."""
        return {**self.lineage, "bento_tag": _bento_tag()}

    def _score(self, sessions: list[RecommendRequest]) -> list[RecommendResponse]:
        if not sessions:
            return []
        results = self.predictor.recommend_batch(
            [[str(i) for i in s.items] for s in sessions],
            k=max(s.k for s in sessions),
            exclude=[[str(i) for i in s.exclude] for s in sessions],
        )
        return [_response(r, s.k, self.model_version) for r, s in zip(results, sessions, strict=True)]


def _bento_tag() -> str | None:
    """``name:version`` of the bento being served, or None when serving from source."""
    ctx = bentoml.server_context
    if not ctx.bento_version or ctx.bento_version == "not available":
        return None
    return f"{ctx.bento_name}:{ctx.bento_version}"
