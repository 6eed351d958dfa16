"""Faults the service must survive or refuse loudly: the feedback database deleted, replaced or made
read-only while serving (503 + not ready, never a 200 that is not on disk; back when the store is back), a
truncated or bit-flipped model (refused at load and by `sessionflow serve` in one line, within seconds),
NaN weights (refused at packaging), and SIGTERM to `sessionflow serve` (every process stops, the port is
free)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from components.integrity import BundleIntegrityError
from tests.service import PROJECT_ROOT, free_port, isolated_bentoml_home, make_bundle, save_bentoml_model

EVENT = {"session_id": "fault-1", "item_id": "4", "event": "like"}
SESSIONFLOW = str(Path(sys.executable).with_name("sessionflow"))  # the console script of this environment


@contextlib.contextmanager
def backed_up(db: Path) -> Iterator[Path]:
    """A consistent copy of the shared test database; put back afterwards whatever the test did."""
    backup = db.with_name("backup-" + db.name)
    with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    try:
        yield backup
    finally:
        db.chmod(stat.S_IRUSR | stat.S_IWUSR) if db.exists() else None
        if not db.exists():
            shutil.copyfile(backup, db)


def stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])


def test_deleted_feedback_db_is_503_and_not_ready_until_restored(client, feedback_db):
    assert client.post("/feedback", json=EVENT).status_code == 200
    with backed_up(feedback_db) as backup:
        n_before = stored(backup)
        feedback_db.unlink()
        for _ in range(5):
            resp = client.post("/feedback", json=EVENT)
            assert resp.status_code == 503, resp.text
            assert resp.headers["retry-after"] and "nothing was stored" in resp.json()["error"]
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert client.post("/recommend", json={"items": ["1"], "k": 2}).status_code == 200  # reads still work
        shutil.copyfile(backup, feedback_db)  # the operator restores the store
        assert client.get("/readyz").status_code == 200
        ok = client.post("/feedback", json=EVENT)
        assert ok.status_code == 200
        assert stored(feedback_db) == n_before + 1  # no 503'd event was stored anywhere it would count


def test_read_only_feedback_db_is_503_until_writable(client, feedback_db):
    with backed_up(feedback_db):
        n_before = stored(feedback_db)
        feedback_db.chmod(stat.S_IRUSR)
        assert client.post("/feedback", json=EVENT).status_code == 503
        assert client.get("/readyz").status_code == 503
        feedback_db.chmod(stat.S_IRUSR | stat.S_IWUSR)
        assert client.get("/readyz").status_code == 200
        assert client.post("/feedback", json=EVENT).status_code == 200
        assert stored(feedback_db) == n_before + 1


def test_replaced_feedback_db_is_never_written_behind_the_operators_back(client, feedback_db, tmp_path):
    with backed_up(feedback_db):
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"not a database at all")
        os.replace(junk, feedback_db)
        assert client.post("/feedback", json=EVENT).status_code == 503
        assert client.get("/readyz").status_code == 503
        assert feedback_db.read_bytes() == b"not a database at all"
        feedback_db.unlink()


def test_corrupted_model_is_refused_by_the_service(service, tmp_path):
    """The service's first step verifies the model folder (the worker would fail with this one line)."""
    from bento import runtime

    bundle = make_bundle(tmp_path / "bundle")
    from flows.package import seal_bundle

    seal_bundle(bundle)
    runtime.verify_model_folder(bundle)
    weights = next((bundle / "model").glob("*.npz"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=rf"{weights.name}: sha256 .* does not match"):
        runtime.verify_model_folder(bundle)


def test_nan_weights_are_refused_at_packaging(tmp_path):
    from flows.package import seal_bundle

    bundle = make_bundle(tmp_path / "bundle")
    weights = next((bundle / "model").glob("*.npz"))
    with np.load(weights) as archive:
        arrays = {k: archive[k] for k in archive.files}
    key = next(k for k, v in arrays.items() if v.dtype.kind == "f")
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = np.nan
    np.savez(weights, **arrays)
    with pytest.raises(BundleIntegrityError, match=rf"{weights.name}\[{key}\]: 1 of \d+ values are NaN"):
        seal_bundle(bundle)


# -- `sessionflow serve` as a process --------------------------------------------------------------------
def _project(tmp_path: Path, bento_tag: str, model_tag: str) -> Path:
    """A project root whose last build record points at ``model_tag``."""
    root = tmp_path / "project"
    (root / "artifacts").mkdir(parents=True)
    record = {"bento_tag": bento_tag, "model_tag": model_tag, "labels": {}}
    (root / "artifacts" / "bento.json").write_text(json.dumps(record))
    return root


def _cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", "HF_HUB_OFFLINE": "1"}
    env.pop("SESSIONFLOW_API_KEY", None)
    return {**env, **extra}


@pytest.mark.parametrize("damage", ["truncate", "bitflip"])
def test_sessionflow_serve_refuses_a_bad_model_in_one_line(tmp_path, damage):
    home = tmp_path / "bentoml_home"
    with isolated_bentoml_home(home):
        tag = save_bentoml_model(make_bundle(tmp_path / "bundle"), {"model": "itemknn"})
        import bentoml

        weights = next((Path(bentoml.models.get(tag).path) / "model").glob("*.npz"))
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    else:
        flipped = bytearray(data)
        flipped[-20] ^= 0x01
        weights.write_bytes(bytes(flipped))
    root = _project(tmp_path, "sessionflow:doesnotmatter", tag)
    started = time.monotonic()
    proc = subprocess.run(
        [SESSIONFLOW, "serve", "--root", str(root), "--port", str(free_port())],
        cwd=PROJECT_ROOT,
        env=_cli_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode != 0 and elapsed < 60
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert weights.name in lines[0] and ("bytes, expected" in lines[0] or "sha256" in lines[0])
    assert "Traceback" not in proc.stderr + proc.stdout


def test_sessionflow_serve_refuses_bad_settings_in_one_line(tmp_path):
    home = tmp_path / "bentoml_home"
    with isolated_bentoml_home(home):
        tag = save_bentoml_model(make_bundle(tmp_path / "bundle"), {"model": "itemknn"})
    root = _project(tmp_path, "sessionflow:doesnotmatter", tag)
    proc = subprocess.run(
        [SESSIONFLOW, "serve", "--root", str(root)],
        cwd=PROJECT_ROOT,
        env=_cli_env(home, SESSIONFLOW_API_KEY="short"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: SESSIONFLOW_API_KEY is too short (5 characters): use at least 16 random ones"
    ]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_sigterm_to_sessionflow_serve_stops_everything(tmp_path):
    """`sessionflow serve` execs `bentoml serve` of a real built bento: SIGTERM to the pid we started stops
    the server and its workers and frees the port (a `bentoml build` and a start: ~1 minute, hence slow)."""
    from flows.package import build_bento

    home = tmp_path / "bentoml_home"
    project = tmp_path / "project"
    skip = shutil.ignore_patterns("__pycache__")
    for folder in ("bento", "components", "models"):
        shutil.copytree(PROJECT_ROOT / folder, project / folder, ignore=skip)
    with isolated_bentoml_home(home):
        from components.dialogue.packaging import write_index

        bundle = make_bundle(tmp_path / "bundle")
        write_index(bundle)
        tag = save_bentoml_model(bundle, {"model": "itemknn"})
        build_bento(tag, project)  # writes project/artifacts/bento.json
    port = free_port()
    env = _cli_env(home, SESSIONFLOW_FEEDBACK_DB=str(tmp_path / "fb.db"))
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [SESSIONFLOW, "serve", "--root", str(project), "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    tree: dict[int, psutil.Process] = {}
    try:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                tree.setdefault(p.pid, p)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("not ready:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        assert "bentoml" in " ".join(psutil.Process(proc.pid).cmdline()), (
            "sessionflow serve must exec the server"
        )
        for p in psutil.Process(proc.pid).children(recursive=True):
            tree.setdefault(p.pid, p)
        assert len(tree) >= 2
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        alive = [p for p in tree.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in tree.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"still running after SIGTERM: {[p.cmdline() for p in alive]}"
        assert _port_free(port)
    finally:
        for p in tree.values():
            with contextlib.suppress(psutil.Error):
                p.kill()
        log.close()
