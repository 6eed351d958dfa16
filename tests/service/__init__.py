"""Service and packaging tests: a tiny real model bundle, a throw-away BentoML home, a served service."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[2]
N_ITEMS = 20
GENRES = ("Comedy", "Sci-Fi", "Horror", "Drama")  # item i has GENRES[i % 4] and year 1980 + i
TRAIN_SESSIONS = [
    ["1", "2", "3", "4"],
    ["2", "3", "5"],
    ["1", "3", "6", "7"],
    ["8", "9", "10"],
    ["1", "2", "3"],
]
DATA_HASH = "test-data-hash-0123"
METRICS = {"ndcg@10": 0.42, "recall@10": 0.5}


def title(item_id: str) -> str:
    return f"Movie {item_id}"


def make_bundle(directory: Path) -> Path:
    """A real item-kNN bundle over items "1".."20" (titles "Movie <id>"), trained on a few sessions."""
    from components.bundle import save_bundle
    from components.vocab import ItemVocab
    from models import TrainData, build_model

    ids = [str(i) for i in range(1, N_ITEMS + 1)]
    vocab = ItemVocab.fit(ids)
    model = build_model("itemknn", len(vocab))
    sequences = [np.array([vocab.index(i) for i in s], dtype=np.int64) for s in TRAIN_SESSIONS]
    model.fit(TrainData(sequences=sequences, n_items=len(vocab)))
    items = pd.DataFrame(
        {
            "item_id": ids,
            "title": [title(i) for i in ids],
            "categories": [[GENRES[int(i) % 4]] for i in ids],
            "year": [1980 + int(i) for i in ids],
        }
    )
    meta = {"data_hash": DATA_HASH, "metrics": METRICS, "created_at": "2026-01-01T00:00:00+00:00"}
    return save_bundle(directory, model, vocab, items, meta)


def save_bentoml_model(bundle: Path, labels: dict[str, str]) -> str:
    """Seal ``bundle`` (checksums, as packaging does) and copy it into the BentoML model store; returns the
    exact tag."""
    import bentoml

    from flows.package import seal_bundle

    seal_bundle(bundle)
    with bentoml.models.create("sessionflow-recommender", labels=labels) as model:
        shutil.copytree(bundle, model.path, dirs_exist_ok=True)
    return str(model.tag)


@contextlib.contextmanager
def isolated_bentoml_home(home: Path) -> Iterator[Path]:
    """Point BentoML (this process and subprocesses) at ``home``; restore everything afterwards.

    BentoML caches its home and stores on first use, so setting BENTOML_HOME alone is not enough when
    another test already touched them: the cached providers are overridden too.
    """
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    dirs = {name: home / name for name in ("bentos", "models", "envs", "tmp")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    overrides = {
        BentoMLContainer.bentoml_home: str(home),
        BentoMLContainer.bento_store_dir: str(dirs["bentos"]),
        BentoMLContainer.model_store_dir: str(dirs["models"]),
        BentoMLContainer.env_store_dir: str(dirs["envs"]),
        BentoMLContainer.tmp_bento_store_dir: str(dirs["tmp"]),
        BentoMLContainer.bento_store: BentoStore(str(dirs["bentos"])),
        BentoMLContainer.tmp_bento_store: BentoStore(str(dirs["tmp"])),
        BentoMLContainer.model_store: ModelStore(str(dirs["models"])),
    }
    saved_env = {k: os.environ.get(k) for k in ("BENTOML_HOME", "BENTOML_DO_NOT_TRACK")}
    os.environ["BENTOML_HOME"] = str(home)
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    try:
        with contextlib.ExitStack() as stack:
            for provider, value in overrides.items():
                stack.enter_context(provider.patch(value))
            yield home
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables; restore them afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedService:
    """A real ``bentoml serve bento.service:SessionRecommender`` process (from source) on a free localhost
    port, with its own BentoML home and feedback database.

    BentoML's process manager starts each service worker in a session of its own, so signalling the CLI's
    process group is not enough: ``kill`` signals every process of the tree (remembered once ready, since
    orphaned workers are re-parented) and their process groups.
    """

    def __init__(
        self,
        model_tag: str,
        bentoml_home: Path,
        feedback_db: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.feedback_db = feedback_db
        self.log_path = log_path
        env = {
            **os.environ,
            "BENTOML_HOME": str(bentoml_home),
            "BENTOML_DO_NOT_TRACK": "true",
            "HF_HUB_OFFLINE": "1",
            "SESSIONFLOW_MODEL_TAG": model_tag,
            "SESSIONFLOW_FEEDBACK_DB": str(feedback_db),
            "SESSIONFLOW_CATALOGUE_OVERLAY": str(feedback_db.parent / "catalogue" / "overlay.json"),
            # these tests check answers, not load shedding (tests/service/test_guard.py does): a busy CI
            # machine that starves the worker for 30 ms must not turn their requests into 503s
            "SESSIONFLOW_MAX_LOOP_LAG_MS": "1000",
            **(extra_env or {}),
        }
        env.pop("SESSIONFLOW_FEEDBACK_URL", None)
        cmd = [sys.executable, "-m", "bentoml", "serve", "bento.service:SessionRecommender"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._tree: dict[int, object] = {}  # pid -> psutil.Process

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            self._remember_tree()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    self._remember_tree()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"service not ready after {timeout_s} s:\n{self.log_tail()}")

    def _remember_tree(self) -> None:
        import psutil

        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                self._tree.setdefault(p.pid, p)

    def alive(self) -> list[int]:
        """Pids of the tree still running (zombies count as dead)."""
        import psutil

        out = []
        for pid, p in self._tree.items():
            with contextlib.suppress(psutil.Error):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
        return out

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process of the tree (workers first), then their process groups."""
        import psutil

        self._remember_tree()
        procs = sorted(self._tree.values(), key=lambda p: p.pid == self.proc.pid)
        groups = set()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                if p.is_running():
                    groups.add(os.getpgid(p.pid))
                    p.send_signal(sig)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        deadline = time.monotonic() + 20
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)

    def log_tail(self, n: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)  # graceful: the arbiter stops its workers
        if self.alive():
            self.kill(signal.SIGKILL)
        self._log.close()


def packaged_model(home: Path, folder: Path) -> str:
    """The tiny item-kNN bundle with its conversation index written as packaging writes it (so the service
    starts without encoding), saved in the BentoML store at ``home``; returns the model tag."""
    from components.dialogue.packaging import write_index

    with isolated_bentoml_home(home):
        bundle = make_bundle(folder / "bundle")
        write_index(bundle)
        return save_bentoml_model(bundle, {"model": "itemknn"})


@contextlib.contextmanager
def served(
    model_tag: str,
    bentoml_home: Path,
    feedback_db: Path,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[ServedService]:
    service = ServedService(model_tag, bentoml_home, feedback_db, log_path, extra_env)
    try:
        service.wait_ready()
        yield service
    finally:
        service.close()
