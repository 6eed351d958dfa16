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

Catalogue changes (items added or retired while serving; components/catalogue_overlay.py): the holder owns
the overlay store. ``add_items`` / ``retire_items`` (POST /admin/items, /admin/items/retire) validate, write
the change durably, then serve it before answering: the trained model and index are extended by
``components.dialogue.catalogue.extend_catalogue`` and swapped in like a reload (the scoring process gets the
same changes). Every model loaded later -- a hot reload, a rollback, a restart -- is served with the overlay
applied before its smoke check, so retired items stay masked until they are added again. The watcher also
re-reads the overlay when its file changes (another replica sharing the data folder wrote it).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.catalogue_overlay import ChangeReport, OverlayError, OverlayState, OverlayStore
from components.release import Release, now_iso, read_release

if TYPE_CHECKING:  # heavy (torch): imported in the worker
    from bento.scoring import ScoringProcess
    from components.bundle import Predictor
    from components.dialogue.catalogue import ServedCatalogue
    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import ConversationEngine
    from components.dialogue.index import CatalogueIndex
    from components.dialogue.stores import SessionStore

logger = logging.getLogger("sessionflow.service")

SMOKE_K = 5
RETIRE_AFTER_S = 30.0  # a swapped-out model's scoring process finishes what it has, then is closed


class SmokeCheckError(RuntimeError):
    """A freshly loaded model answered a smoke request wrongly: it is not served."""


class CatalogueNotServed(RuntimeError):
    """A catalogue change was stored durably but could not be served yet (the watcher retries it)."""

    def __init__(self, report: ChangeReport, error: str) -> None:
        super().__init__(error)
        self.report = report


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
    trained: tuple[Predictor, CatalogueIndex] | None = None  # as packaged, before catalogue changes
    catalogue: ServedCatalogue | None = None  # the catalogue changes served now (None: none)

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
                "n_items": self.engine.n_active,
                "changes": self.catalogue.describe() if self.catalogue is not None else None,
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
    catalogue_updates: int = 0
    catalogue_failure: dict[str, Any] | None = None


class ModelHolder:
    """The served model plus the watcher that swaps it when a new release appears."""

    def __init__(
        self,
        initial_tag: str,
        config: ConversationConfig,
        release_file: Path | None,
        interval_s: float = 5.0,
        scoring_process: bool = False,
        overlay: OverlayStore | None = None,
    ) -> None:
        self.config = config
        self.overlay = overlay
        self._overlay_seen: tuple[int, int, int] | None = None  # the overlay file as last applied
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
            current = self._served_with_overlay(current)
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
        """Poll the release record and the catalogue overlay in a daemon thread (no-op when disabled)."""
        watch_overlay = self.overlay is not None and self.interval_s > 0
        if not (self.enabled or watch_overlay) or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="sessionflow-model-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.enabled:
                    self.check()
                if self.overlay is not None:
                    self.check_catalogue()
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

    # -- catalogue changes -------------------------------------------------------------------------------
    def add_items(self, rows: Sequence[Any]) -> tuple[ChangeReport, int]:
        """Validate ``rows`` against the served catalogue's schema, store the valid ones durably, serve
        them; refused rows are reported (and kept in the overlay's rejected.jsonl). Returns the report
        and how many items can be recommended now. Raises ``OverlayError`` when nothing could be stored."""
        from components.catalogue_overlay import validate_rows

        store = self._store()
        with self._reload_lock:
            served = self._current
            index = served.trained[1] if served.trained is not None else served.engine.index
            accepted, rejected = validate_rows(rows, index.spec)
            store.keep_rejected(rejected, rows, "POST /admin/items")
            known = {r["item_id"]: served.engine.index.index(r["item_id"]) is not None for r in accepted}
            state, report = store.add(accepted, known)
            report = replace(report, rejected=rejected)
            if accepted:
                self._serve_or_raise(state, store, report)
            return report, self._current.engine.n_active

    def retire_items(self, item_ids: Sequence[str]) -> tuple[ChangeReport, int]:
        """Retire ids of the served catalogue durably, then stop serving them (before the answer)."""
        store = self._store()
        with self._reload_lock:
            served = self._current
            known = {i: served.engine.index.index(i) is not None for i in item_ids}
            state, report = store.retire(item_ids, known)
            store.keep_rejected(report.rejected, list(item_ids), "POST /admin/items/retire")
            if report.retired:
                self._serve_or_raise(state, store, report)
            return report, self._current.engine.n_active

    def check_catalogue(self, force: bool = False) -> bool:
        """Serve the overlay as it is on disk when its file changed since it was last applied (another
        writer); True when something was re-applied."""
        if self.overlay is None:
            return False
        with self._reload_lock:
            seen = self.overlay.signature()
            if seen == self._overlay_seen and not force:
                return False
            try:
                state = self.overlay.read()
                current = self._current.catalogue
                if current is not None and current.delta.revision == state.revision and not force:
                    self._overlay_seen = seen
                    return False
                if current is None and state.empty:
                    self._overlay_seen = seen
                    return False
                self._serve_catalogue(state, self.overlay, seen)
            except Exception as exc:  # noqa: BLE001 - keep serving what is served, report why
                self._catalogue_failed(exc)
                return False
            return True

    def _serve_or_raise(self, state: OverlayState, store: OverlayStore, report: ChangeReport) -> None:
        try:
            self._serve_catalogue(state, store)
        except Exception as exc:  # noqa: BLE001 - stored but not served: say so, the watcher retries
            self._catalogue_failed(exc)
            raise CatalogueNotServed(report, f"{type(exc).__name__}: {exc}") from exc

    def _store(self) -> OverlayStore:
        if self.overlay is None:
            raise OverlayError("this service has no catalogue overlay configured")
        return self.overlay

    def _serve_catalogue(
        self, state: OverlayState, store: OverlayStore, seen: tuple[int, int, int] | None = None
    ) -> None:
        """Swap in the served model extended with ``state`` (caller holds the reload lock)."""
        self._current = with_catalogue(self._current, state)
        self._overlay_seen = seen or store.signature()
        self._status.catalogue_updates += 1
        logger.info("catalogue revision %d served: %s", state.revision, self._current.catalogue.describe())  # type: ignore[union-attr]

    def _served_with_overlay(self, served: ServedModel) -> ServedModel:
        """A freshly loaded model with the overlay applied (retired items stay masked across reloads)."""
        if self.overlay is None:
            return served
        seen = self.overlay.signature()
        state = self.overlay.read()
        self._overlay_seen = seen
        return served if state.empty else with_catalogue(served, state)

    def _catalogue_failed(self, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self._status.catalogue_failure = {"at": now_iso(), "error": error[:2000]}
        logger.error("catalogue overlay NOT applied, serving the previous catalogue: %s", error)

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
            "catalogue_updates": s.catalogue_updates,
            "catalogue_failure": s.catalogue_failure,
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
            served = self._served_with_overlay(served)
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
        trained=(engine.predictor, engine.index),
    )


def with_catalogue(served: ServedModel, state: OverlayState) -> ServedModel:
    """``served`` (its trained model and packaged index) serving the overlay ``state``; its scoring process
    switches too. What the catalogue serving now already computed is reused."""
    from components.dialogue.catalogue import base_catalogue, extend_catalogue

    predictor, index = served.trained or (served.predictor, served.engine.index)
    previous = served.catalogue or base_catalogue(predictor, index)
    catalogue = extend_catalogue(predictor, index, served.model_dir, state, previous)
    engine = served.engine.with_catalogue(catalogue.predictor, catalogue.index, catalogue.retired)
    if served.scorer is not None:
        served.scorer.apply(catalogue.delta)
    return replace(served, predictor=catalogue.predictor, engine=engine, catalogue=catalogue)


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
