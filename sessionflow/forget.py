"""Deletion requests (``sessionflow forget USER_OR_SESSION``): remove a person's events everywhere the
platform keeps them, and record that it happened without recording who.

``forget(root, raw_id)`` treats ``raw_id`` as a user id and as a session id at once (a caller rarely knows
which the service saw) and removes:

1. the feedback log's rows: the user's pseudonym under the current *and* retired keys, the pseudonym of a
   session logged without a user, and rows of that session id;
2. the request log's rows (same match);
3. the rows in every feedback snapshot ``data/feedback/<dataset>/events.parquet`` (rewritten atomically);
4. derived training data that holds them: ``data/interim/<dataset>``, ``data/processed/<dataset>`` and
   ``data/quarantine/<dataset>`` are deleted when any of their tables has a matching row, so the next
   retrain rebuilds them from raw data + the cleaned snapshot (models trained earlier keep what they learnt
   until that retrain replaces them);
5. DVC cache objects (``.dvc/cache``) of Parquet tables holding matching rows (older snapshot versions);
6. optionally the running service's in-memory dialogue state (POST /reset).

The record appended to ``data/feedback/forget-log.jsonl`` holds the time and the counts -- never the id or
anything derived from it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.feedback_log import FeedbackLog, default_feedback_url
from components.ingest import FEEDBACK_SESSION_PREFIX
from components.release import now_iso
from components.request_log import delete_subject as delete_requests
from sessionflow.serving import request_log_location

FORGET_LOG = Path("data") / "feedback" / "forget-log.jsonl"
_PARQUET_MAGIC = b"PAR1"


class ForgetRecord(BaseModel):
    """What one deletion request removed (counts only)."""

    model_config = ConfigDict(extra="forbid")

    at: str = Field(default_factory=now_iso)
    feedback_rows: int = 0
    request_rows: int = 0
    snapshot_rows: dict[str, int] = Field(default_factory=dict, description="dataset -> rows removed")
    derived_removed: list[str] = Field(default_factory=list, description="folders deleted (rebuilt later)")
    dvc_cache_objects_removed: int = 0
    service_reset: str | None = None
    keys_searched: int = 0


def forget(
    root: Path,
    raw_id: str,
    feedback_url: str | None = None,
    service_url: str | None = None,
) -> ForgetRecord:
    """Remove every event of the user or session ``raw_id``; returns (and appends to the forget log) the
    record of what went."""
    raw_id = str(raw_id).strip()
    if not raw_id:
        raise ValueError("forget needs a non-empty user or session id")
    root = Path(root).resolve()
    url = feedback_url or default_feedback_url(root)
    with FeedbackLog(url) as log:
        users = log.subject_pseudonyms(raw_id)
        n_feedback = log.delete_subject(raw_id)
        n_keys = len(log.keys.all) if log.keys is not None else 0
    sessions = {raw_id, FEEDBACK_SESSION_PREFIX + raw_id}
    requests = request_log_location(url)
    record = ForgetRecord(
        feedback_rows=n_feedback,
        request_rows=delete_requests(requests, users, raw_id),
        snapshot_rows=_clean_snapshots(root, users, sessions),
        derived_removed=_remove_derived(root, users, sessions),
        dvc_cache_objects_removed=_purge_dvc_cache(root, users, sessions),
        service_reset=_reset_service(service_url, raw_id) if service_url else None,
        keys_searched=n_keys,
    )
    path = root / FORGET_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(record.model_dump_json() + "\n")
    return record


def forget_requests(root: Path) -> int:
    """How many deletion requests the forget log records."""
    path = Path(root) / FORGET_LOG
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def matches(df: pd.DataFrame, users: Iterable[str], sessions: Iterable[str]) -> pd.Series:
    """Rows of a table with ``user_id`` in ``users`` or ``session_id`` in ``sessions`` (missing columns never
    match)."""
    mask = pd.Series(False, index=df.index)
    if "user_id" in df.columns:
        mask |= df["user_id"].astype("string").isin(list(users)).fillna(False)
    if "session_id" in df.columns:
        mask |= df["session_id"].astype("string").isin(list(sessions)).fillna(False)
    return mask.astype(bool)


def _clean_snapshots(root: Path, users: set[str], sessions: set[str]) -> dict[str, int]:
    removed: dict[str, int] = {}
    for snapshot in sorted((root / "data" / "feedback").glob("*/events.parquet")):
        df = pd.read_parquet(snapshot)
        mask = matches(df, users, sessions)
        if mask.any():
            tmp = snapshot.with_name(snapshot.name + ".tmp")
            df[~mask.to_numpy()].to_parquet(tmp, index=False)
            tmp.replace(snapshot)
            removed[snapshot.parent.name] = int(mask.sum())
    return removed


def _remove_derived(root: Path, users: set[str], sessions: set[str]) -> list[str]:
    """Delete the derived folders of every dataset whose derived tables hold the subject."""
    data = root / "data"
    datasets = {p.name for base in ("interim", "quarantine") for p in (data / base).glob("*") if p.is_dir()}
    datasets |= {p.name for p in (data / "processed").glob("*") if p.is_dir()}
    removed = []
    for ds in sorted(datasets):
        folders = [data / "interim" / ds, data / "processed" / ds, data / "quarantine" / ds]
        tables = [t for f in folders if f.is_dir() for t in f.rglob("*.parquet")]
        if any(_table_matches(t, users, sessions) for t in tables):
            for folder in folders:
                if folder.is_dir():
                    shutil.rmtree(folder)
                    removed.append(str(folder.relative_to(root)))
    return removed


def _table_matches(path: Path, users: set[str], sessions: set[str]) -> bool:
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
        columns = [c for c in ("user_id", "session_id") if c in names]
        if not columns:
            return False
        return bool(matches(pd.read_parquet(path, columns=columns), users, sessions).any())
    except Exception:  # noqa: BLE001 - not a readable table of ours: it cannot hold feedback rows
        return False


def _purge_dvc_cache(root: Path, users: set[str], sessions: set[str]) -> int:
    cache = root / ".dvc" / "cache"
    if not cache.is_dir():
        return 0
    removed = 0
    for obj in cache.rglob("*"):
        if not obj.is_file() or obj.suffix == ".dir":
            continue
        with obj.open("rb") as fh:
            if fh.read(4) != _PARQUET_MAGIC:
                continue
        if _table_matches(obj, users, sessions):
            obj.unlink()  # DVC's cache files are read-only, their folder is not
            removed += 1
    return removed


def _reset_service(url: str, raw_id: str) -> str:
    import httpx

    try:
        response = httpx.post(f"{url.rstrip('/')}/reset", json={"session_id": raw_id}, timeout=10)
    except httpx.HTTPError as exc:
        return f"not reached ({type(exc).__name__}); its in-memory session state expires with its TTL"
    return "reset" if response.status_code == 200 else f"HTTP {response.status_code}"


__all__ = ["FORGET_LOG", "ForgetRecord", "forget", "forget_requests", "matches"]
