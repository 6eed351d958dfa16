"""The model a running service serves now, swapped without a restart (hot reload and rollback).

``ModelHolder`` owns the served model -- Predictor, conversation engine, lineage -- as one immutable
``ServedModel``. Request handlers read ``holder.current`` once and use that object for the whole request, so
each answer comes from exactly one model even while a swap happens; the swap itself is one reference
assignment.

A background thread polls the release record (``components/release.py``) every ``interval_s`` seconds. When
it names a model tag other than the one serving, the holder loads that model from the BentoML model store
next to the serving one (requests keep being answered by the old model meanwhile), smoke-checks it, and only
then swaps. A model that fails to load or fails the smoke check is never served: the old one keeps serving,
the failure is logged and shown in /metadata under ``reload``, and that release is not retried until the
record changes or POST /admin/reload asks. The conversation sessions (the engine's session store) carry
over to the new engine.

The engine is built by ``components.dialogue.engine.load_engine`` -- the one engine builder the chat CLI and
the pipeline use too. Every model folder is checked against its packaging checksums before it is loaded.
With ``scoring_process`` the served model also gets its /recommend scorer in a child process
(bento/scoring.py), started before the swap and closed a while after it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.release import Release, now_iso, read_release

if TYPE_CHECKING:  # heavy (torch): imported in the worker
    from bento.scoring import ScoringProcess
    from components.bundle import Predictor
    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import ConversationEngine
    from components.dialogue.stores import SessionStore

logger = logging.getLogger("sessionflow.service")

SMOKE_K = 5
RETIRE_AFTER_S = 30.0  # a swapped-out model's scoring process finishes what it has, then is closed


class SmokeCheckError(RuntimeError):
    """A freshly loaded model answered a smoke request wrongly: it is not served."""


@dataclass(frozen=True)
class ServedModel:
    """One loaded model with everything a request needs; never mutated after loading."""

    model_tag: str
    model_dir: Path
    predictor: Predictor
    engine: ConversationEngine
    labels: dict[str, str]
    metadata: dict[str, Any]
    loaded_at: str
    source: str  # "bento argument" | "release record" | "admin reload"
    release: Release | None = None
    load_seconds: float = 0.0
    scorer: ScoringProcess | None = None  # /recommend's model in a child process (bento/scoring.py)

    def close(self) -> None:
        """Stop this model's scoring process (after a swap; requests read the new model by then)."""
        if self.scorer is not None:
            self.scorer.close()

    @property
    def model_version(self) -> str:
        """The registered MLflow model version (what answers report), else the BentoML tag."""
        return self.labels.get("mlflow_model_version") or self.model_tag

    def describe(self) -> dict[str, Any]:
        """What /metadata says about this model: identity, metrics, and its lineage chain."""
        meta = self.predictor.meta
        chain = dict(self.metadata.get("lineage") or {})
        chain.setdefault("data", meta.get("lineage", {}).get("data", {"data_hash": meta.get("data_hash")}))
        chain.setdefault("code", meta.get("lineage", {}).get("code", {}))
        if self.release is not None:
            chain["release"] = {
                "bento_tag": self.release.bento_tag,
                "released_at": self.release.released_at,
                "reason": self.release.reason,
            }
        return {
            "model_version": self.model_version,
            "bentoml_model_tag": self.model_tag,
            "registered_model": self.labels.get("registered_model"),
            "mlflow_model_version": self.labels.get("mlflow_model_version"),
            "mlflow_run_id": self.labels.get("mlflow_run_id"),
            "data_hash": self.labels.get("data_hash") or meta.get("data_hash"),
            "model": meta.get("model"),
            "n_items": len(self.predictor.vocab),
            "metrics": meta.get("metrics", {}),
            "created_at": meta.get("created_at"),
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.load_seconds, 3),
            "loaded_from": self.source,
            "catalogue": {
                "index": self.engine.index_source,
                "item_noun": list(self.engine.index.spec.item_noun),
                "facets": {f.name: f.kind for f in self.engine.index.spec.facets},
            },
            "lineage": chain,
        }


@dataclass
class _Status:
    checks: int = 0
    reloads: int = 0
    failures: int = 0
    last_check_at: str | None = None
    last_reload: dict[str, Any] | None = None
    last_failure: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class ModelHolder:
    """The served model plus the watcher that swaps it when a new release appears."""

    def __init__(
        self,
        initial_tag: str,
        config: ConversationConfig,
        release_file: Path | None,
        interval_s: float = 5.0,
        scoring_process: bool = False,
    ) -> None:
        self.config = config
        self.scoring_process = scoring_process
        self.release_file = release_file
        self.interval_s = float(interval_s)
        self.started_at = now_iso()
        self._status = _Status()
        self._reload_lock = threading.Lock()  # one load at a time; readers never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._skip: tuple[str, str] | None = None  # (tag, released_at) of a release that failed
        release = self._read_release() if self.enabled else None
        current: ServedModel | None = None
        if release is not None and release.model_tag != initial_tag:
            # a promotion or rollback happened after this bento was built: serve what was released
            try:
                current = self._load(release.model_tag, "release record", None, release)
            except Exception as exc:  # noqa: BLE001 - fall back to the bento's own model
                self._failed(release, exc)
        if current is None:
            same = release if release is not None and release.model_tag == initial_tag else None
            current = load_served(initial_tag, config, None, "bento argument", same, scoring_process)
        self._current = current

    @property
    def enabled(self) -> bool:
        return self.release_file is not None and self.interval_s > 0

    @property
    def current(self) -> ServedModel:
        """The model serving now (read once per request)."""
        return self._current

    # -- watching ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Poll the release record in a daemon thread (no-op when disabled)."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="sessionflow-model-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                logger.exception("model reload check failed")

    def check(self, force: bool = False) -> dict[str, Any]:
        """Read the release record; load, smoke-check and swap to the model it names when that differs from
        the one serving. ``force`` retries a release that failed before. Returns what happened."""
        with self._reload_lock:
            self._status.checks += 1
            self._status.last_check_at = now_iso()
            try:
                release = self._read_release()
            except ValueError as exc:
                self._failed(None, exc)
                return {"changed": False, "serving": self._current.model_tag, "error": str(exc)}
            if release is None or release.model_tag == self._current.model_tag:
                return {"changed": False, "serving": self._current.model_tag}
            key = (release.model_tag, release.released_at)
            if self._skip == key and not force:
                return {"changed": False, "serving": self._current.model_tag, "skipped": release.model_tag}
            old = self._current
            try:
                new = self._load(
                    release.model_tag, "admin reload" if force else "release record", old, release
                )
            except Exception as exc:  # noqa: BLE001 - keep serving the old model, report why
                self._skip = key
                error = self._failed(release, exc)
                return {"changed": False, "serving": old.model_tag, "error": error}
            self._current = new  # the swap: one reference assignment
            self._skip = None
            _retire(old)
            event = {
                "from": old.model_tag,
                "to": new.model_tag,
                "from_version": old.model_version,
                "to_version": new.model_version,
                "at": new.loaded_at,
                "load_seconds": round(new.load_seconds, 3),
                "reason": release.reason,
            }
            self._status.reloads += 1
            self._status.last_reload = event
            self._remember(event | {"ok": True})
            logger.info(
                "now serving %s (version %s), was %s", new.model_tag, new.model_version, old.model_tag
            )
            return {"changed": True, "serving": new.model_tag, **event}

    def status(self) -> dict[str, Any]:
        s = self._status
        return {
            "enabled": self.enabled,
            "interval_s": self.interval_s,
            "release_file": self.release_file.name if self.release_file else None,  # never a full path
            "checks": s.checks,
            "reloads": s.reloads,
            "failures": s.failures,
            "last_check_at": s.last_check_at,
            "last_reload": s.last_reload,
            "last_failure": s.last_failure,
            "history": list(s.history),
        }

    def process(self) -> dict[str, Any]:
        """The serving process itself (the last link of the lineage chain)."""
        return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": self.started_at}

    # -- internals --------------------------------------------------------------------------------------
    def _read_release(self) -> Release | None:
        return read_release(self.release_file) if self.release_file is not None else None

    def _load(
        self, tag: str, source: str, previous: ServedModel | None, release: Release | None
    ) -> ServedModel:
        store = getattr(previous.engine, "store", None) if previous is not None else None
        served = load_served(tag, self.config, store, source, release, self.scoring_process)
        try:
            smoke_check(served)
        except BaseException:
            served.close()
            raise
        return served

    def _failed(self, release: Release | None, exc: BaseException) -> str:
        error = f"{type(exc).__name__}: {exc}"
        failure = {
            "model_tag": release.model_tag if release else None,
            "at": now_iso(),
            "error": error[:2000],
            "kept_serving": getattr(getattr(self, "_current", None), "model_tag", None),
        }
        self._status.failures += 1
        self._status.last_failure = failure
        self._remember(failure | {"ok": False})
        logger.error("model %s NOT loaded, keeping the current one: %s", failure["model_tag"], error)
        return error

    def _remember(self, event: dict[str, Any]) -> None:
        self._status.history = [*self._status.history[-9:], event]


def load_served(
    tag: str,
    config: ConversationConfig,
    store: SessionStore | None,
    source: str,
    release: Release | None = None,
    scoring_process: bool = False,
) -> ServedModel:
    """Load the BentoML model ``tag`` (exact) with its conversation engine, after checking every file
    against its packaging checksums (``BundleIntegrityError`` names the file); with ``scoring_process`` also
    start its /recommend scorer in a child process."""
    import bentoml

    from bento.runtime import verify_model_folder
    from components.dialogue.engine import load_engine

    t0 = time.perf_counter()
    model = bentoml.models.get(tag)
    model_dir = Path(model.path)
    n_checked = verify_model_folder(model_dir)
    engine = load_engine(model_dir, config, store)
    labels = dict(model.info.labels)
    scorer = None
    if scoring_process:
        from bento.scoring import ScoringProcess

        scorer = ScoringProcess(model_dir, labels.get("mlflow_model_version") or str(model.tag))
    logger.info("model %s: %d files match their checksums; loaded (%s)", model.tag, n_checked, source)
    return ServedModel(
        model_tag=str(model.tag),
        model_dir=model_dir,
        predictor=engine.predictor,
        engine=engine,
        labels=labels,
        metadata=dict(model.info.metadata or {}),
        loaded_at=now_iso(),
        source=source,
        release=release,
        load_seconds=time.perf_counter() - t0,
        scorer=scorer,
    )


def _retire(old: ServedModel) -> None:
    """Close a swapped-out model's scoring process once the calls it already took are answered."""
    if old.scorer is not None:
        timer = threading.Timer(RETIRE_AFTER_S, old.close)
        timer.daemon = True
        timer.start()


def smoke_check(served: ServedModel) -> None:
    """A new model must rank known items with finite scores, by the plain and the conversation path."""
    predictor, engine = served.predictor, served.engine
    n = len(predictor.vocab)
    if n == 0:
        raise SmokeCheckError(f"{served.model_tag}: the model's catalogue is empty")
    history = list(predictor.vocab.item_ids[: min(3, n)])
    k = min(SMOKE_K, n)
    [result] = predictor.recommend_batch([history], k=k, exclude_seen=False)
    if not result.items:
        raise SmokeCheckError(f"{served.model_tag}: no recommendation for a session of known items")
    bad = [r.score for r in result.items if not math.isfinite(r.score)]
    if bad:
        raise SmokeCheckError(f"{served.model_tag}: non-finite scores {bad[:3]}")
    known, unknown = engine.split_known(history)
    if unknown:
        raise SmokeCheckError(f"{served.model_tag}: the conversation catalogue lacks model items {unknown}")
    answer = engine.recommend(None, known, k)
    if not answer or not all(math.isfinite(i.score) for i in answer):
        raise SmokeCheckError(f"{served.model_tag}: the conversation engine gave no finite ranking")
