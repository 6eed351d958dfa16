"""Pseudonymisation keys: HMAC-SHA256 of raw user ids, with rotation.

A keyring is an ordered list of keys: the first is *current* (new pseudonyms), the rest are *retired*
(kept so that a deletion request can still find rows pseudonymised before a rotation). Sources:

- a key file (SQLite feedback logs: ``<db file>.key``, mode 0600, created with one random key on first use):
  one hex key per line, current first. Files written before rotation existed hold one line and stay valid.
- the environment: ``$SESSIONFLOW_FEEDBACK_KEY`` (current) and ``$SESSIONFLOW_FEEDBACK_RETIRED_KEYS``
  (comma-separated retired keys), which take precedence over the file.

``rotate_key_file`` puts a new random key first; ``drop_retired=True`` also destroys the retired keys, after
which rows pseudonymised with them can no longer be linked to anyone (nor found by a deletion request).
A running service notices a rotated file by its modification time and pseudonymises with the new key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path

KEY_ENV = "SESSIONFLOW_FEEDBACK_KEY"
RETIRED_KEYS_ENV = "SESSIONFLOW_FEEDBACK_RETIRED_KEYS"
PSEUDONYM_PREFIX = "u_"


def pseudonym(key: bytes, raw_id: str) -> str:
    """Stable keyed pseudonym of a raw id: ``u_`` + the first 32 hex digits of HMAC-SHA256(key, id)."""
    digest = hmac.new(key, str(raw_id).encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


class Keyring:
    """Current + retired keys, from the environment or a key file (re-read when the file changes)."""

    def __init__(self, keys: list[bytes], path: Path | None = None) -> None:
        if not keys or not keys[0]:
            raise ValueError("a keyring needs at least one non-empty key")
        self._keys = keys
        self.path = path
        self._mtime = _mtime(path) if path else None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Keyring | None:
        current = env.get(KEY_ENV, "").strip()
        if not current:
            return None
        retired = [k.strip() for k in env.get(RETIRED_KEYS_ENV, "").split(",") if k.strip()]
        return cls([current.encode(), *(k.encode() for k in retired)])

    @classmethod
    def from_file(cls, path: Path, create: bool = True) -> Keyring:
        """The keyring in ``path``; created with one random key (mode 0600) when missing and ``create``."""
        if create and not path.exists():
            _create_key_file(path)
        return cls(_read_key_file(path), path)

    @property
    def current(self) -> bytes:
        self._refresh()
        return self._keys[0]

    @property
    def all(self) -> list[bytes]:
        self._refresh()
        return list(self._keys)

    def pseudonymise(self, raw_id: str) -> str:
        return pseudonym(self.current, raw_id)

    def pseudonyms(self, raw_id: str) -> set[str]:
        """The pseudonyms ``raw_id`` has under every key of the ring (current and retired)."""
        return {pseudonym(k, raw_id) for k in self.all}

    def _refresh(self) -> None:
        if self.path is None:
            return
        mtime = _mtime(self.path)
        if mtime == self._mtime:
            return
        with self._lock:
            if mtime != self._mtime:
                self._keys = _read_key_file(self.path)
                self._mtime = mtime


def key_file_for(db_path: Path) -> Path:
    """Where the key file of a SQLite log lives: ``<db file>.key``."""
    return db_path.with_name(db_path.name + ".key")


def rotate_key_file(path: Path, drop_retired: bool = False) -> dict[str, int]:
    """Put a new random key first in ``path`` (created if missing); returns counts of kept/dropped keys."""
    old = _read_key_file(path) if path.exists() else []
    new = secrets.token_hex(32).encode()
    kept = [] if drop_retired else old
    _write_key_file(path, [new, *kept])
    return {"keys": 1 + len(kept), "retired": len(kept), "dropped": len(old) - len(kept)}


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _read_key_file(path: Path) -> list[bytes]:
    keys = [line.strip().encode() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise RuntimeError(f"{path} is empty: restore the feedback key or set {KEY_ENV}")
    return keys


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created concurrently by another process
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _write_key_file(path: Path, keys: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(k.decode() + "\n" for k in keys))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
