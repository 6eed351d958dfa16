"""The /recommend model in a process of its own, so scoring never competes with the HTTP event loop for
the Python GIL.

Measured on the 2-core box: with the model scored in a thread of the HTTP worker, the Transformer's Python
code and the event loop took turns holding the GIL, so the worker used one core for both and answers
queued behind each other. In a child process the model gets the other core; the worker only parses
requests and copies JSON.

``ScoringProcess`` starts the child (``spawn``), which loads the bundle with ``Predictor.load`` -- the same
code and files as the service -- and answers batches over a pipe: the parent sends ``[(items, k,
exclude), ...]``, the child answers one JSON body per session, exactly the /recommend answer. A child that
dies is started again on the next call; the calls in flight fail with ``ScoringUnavailable`` (503).

Catalogue changes (items added or retired while serving) reach the child as a ``CatalogueDelta``
(``apply``): it serves its trained Predictor ``with_changes(delta)`` from then on, and a restarted child gets
the last delta again before its first batch.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.bundle import CatalogueDelta

logger = logging.getLogger("sessionflow.service")

Session = tuple[list[str], int, list[str]]  # raw item ids (oldest first), k, raw ids never to recommend
START_TIMEOUT_S = 300.0


class ScoringUnavailable(RuntimeError):
    """The scoring process is not running (starting, restarting or failed); retry shortly."""


class ScoringProcess:
    """A child process that scores batches of sessions with the model at ``model_dir``."""

    def __init__(self, model_dir: Path, model_version: str, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.model_dir = Path(model_dir)
        self.model_version = model_version
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self._delta: CatalogueDelta | None = None
        self.restarts = 0
        self._start()

    def score(self, sessions: Sequence[Session]) -> list[bytes]:
        """One /recommend JSON body per session, in order (thread-safe: calls take turns)."""
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._restart("the scoring process was not running")
            try:
                self._conn.send(list(sessions))
                status, payload = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._restart(f"the scoring process died ({type(exc).__name__})")
                raise ScoringUnavailable("the scoring process restarted; retry") from None
        if status != "ok":
            raise RuntimeError(f"scoring failed in the child process: {payload}")
        return payload

    def apply(self, delta: CatalogueDelta) -> None:
        """Serve ``delta`` (the catalogue changes since training) from the next batch on."""
        with self._lock:
            self._delta = delta
            if self._proc is None or not self._proc.is_alive():
                self._restart("the scoring process was not running")  # sends the delta when it starts
                return
            try:
                self._send_delta()
            except (EOFError, OSError):
                self._restart("the scoring process died (catalogue update)")

    def close(self) -> None:
        with self._lock:
            self._stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- internals -------------------------------------------------------------------------------------
    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=serve_child,
            args=(str(self.model_dir), self.model_version, child),
            name="sessionflow-scoring",
            daemon=True,
        )
        proc.start()
        child.close()
        deadline = time.monotonic() + self.start_timeout_s
        while not parent.poll(0.5):
            if not proc.is_alive() or time.monotonic() > deadline:
                proc.kill()
                raise ScoringUnavailable(f"the scoring process did not start (exit code {proc.exitcode})")
        status, payload = parent.recv()
        if status != "ready":
            proc.join(5)
            raise RuntimeError(f"the scoring process could not load the model: {payload}")
        self._proc, self._conn = proc, parent
        if self._delta is not None:
            self._send_delta()

    def _send_delta(self) -> None:
        self._conn.send(("catalogue", self._delta))
        status, payload = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the scoring process could not apply the catalogue changes: {payload}")

    def _restart(self, reason: str) -> None:
        logger.error("%s; starting it again", reason)
        self._stop()
        self.restarts += 1
        self._start()

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
            self._proc = None


def serve_child(model_dir: str, model_version: str, conn: Any) -> None:
    """The child's loop: load the model, say ready, then answer batches until the pipe closes."""
    try:
        import torch

        from components.bundle import Predictor

        torch.set_num_threads(1)
        trained = Predictor.load(model_dir)
    except Exception as exc:  # noqa: BLE001 - reported to the parent in one line
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    gc.collect()
    gc.freeze()  # the loaded model is never garbage: keep the collector off it
    conn.send(("ready", None))
    version = json.dumps(model_version)
    predictor = trained
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        try:
            if isinstance(message, tuple) and message[0] == "catalogue":
                predictor = trained.with_changes(message[1])  # always from the trained model
                conn.send(("ok", None))
            else:
                conn.send(("ok", score_to_json(predictor, message, version)))
        except Exception as exc:  # noqa: BLE001 - one failed batch must not end the process
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def score_to_json(predictor: Any, sessions: Sequence[Session], version_json: str) -> list[bytes]:
    """The /recommend answer (bento.schemas.RecommendResponse as JSON) for each session."""
    ks = [k for _, k, _ in sessions]
    results = predictor.recommend_batch(
        [items for items, _, _ in sessions], k=max(ks), exclude=[ex for _, _, ex in sessions]
    )
    out = []
    for result, k in zip(results, ks, strict=True):
        items = [
            {"item_id": r.item_id, "title": r.title, "score": r.score, "reason": None}
            for r in result.items[:k]
        ]
        body = (
            f'{{"items":{json.dumps(items, separators=(",", ":"))},"model_version":{version_json},'
            f'"unknown_items":{json.dumps(result.unknown_items, separators=(",", ":"))},"k":{k}}}'
        )
        out.append(body.encode("utf-8"))
    return out


__all__ = ["ScoringProcess", "ScoringUnavailable", "score_to_json", "serve_child"]
