"""Integrity of a packaged model folder: sha256 of every file, and finite weights.

Packaging (flows/package.py) calls ``seal`` on the folder it is about to store: weights holding NaN or
infinity are refused, then ``checksums.json`` records the sha256 and size of every file. Whatever loads the
folder (the service, ``sessionflow serve`` before it starts the server) calls ``verify`` first: a missing,
truncated, bit-flipped or extra file fails with one line naming the file and the problem.

Pure: hashlib, json, numpy and torch only.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

CHECKSUMS_FILE = "checksums.json"
# Written into a model folder by the BentoML model store itself, after packaging: not checked.
STORE_FILES = ("model.yaml",)
_CHUNK = 1 << 20
_FLOAT_KINDS = ("f", "c")


class BundleIntegrityError(ValueError):
    """A model folder is not what was packaged (or was never fit to package); the message is one line."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.name != CHECKSUMS_FILE and "__pycache__" not in p.parts
    )


def seal(directory: str | Path) -> Path:
    """Refuse non-finite weights, then write ``checksums.json`` (sha256 + size per file); returns its path."""
    directory = Path(directory)
    check_finite(directory)
    entries = {
        p.relative_to(directory).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in _files(directory)
    }
    if not entries:
        raise BundleIntegrityError(f"{directory}: no files to seal")
    path = directory / CHECKSUMS_FILE
    path.write_text(json.dumps({"algorithm": "sha256", "files": entries}, indent=2, sort_keys=True))
    return path


def verify(directory: str | Path, ignore: tuple[str, ...] = ()) -> int:
    """Check every file of ``directory`` against its ``checksums.json``; returns the number of files checked.

    Raises ``BundleIntegrityError`` (one line: the file and the problem) when the record is missing or
    unreadable, a file is missing, has another size or another sha256, or a file is not in the record
    (except the relative paths in ``ignore``: e.g. ``model.yaml``, which the BentoML store writes itself).
    """
    directory = Path(directory)
    record_path = directory / CHECKSUMS_FILE
    if not record_path.is_file():
        raise BundleIntegrityError(
            f"{record_path}: missing; this model was packaged without checksums -- package it again "
            "(`sessionflow package`)"
        )
    try:
        record = json.loads(record_path.read_text())
        expected: dict[str, dict[str, Any]] = record["files"]
        if record.get("algorithm") != "sha256" or not isinstance(expected, dict) or not expected:
            raise ValueError("no sha256 entries")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise BundleIntegrityError(f"{record_path}: unreadable checksum record ({exc})") from None
    for rel, entry in sorted(expected.items()):
        path = directory / rel
        if not path.is_file():
            raise BundleIntegrityError(f"{path}: missing (listed in {CHECKSUMS_FILE})")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise BundleIntegrityError(
                f"{path}: {size} bytes, expected {entry.get('bytes')} (truncated or replaced)"
            )
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise BundleIntegrityError(
                f"{path}: sha256 {digest[:16]}... does not match the packaged "
                f"{str(entry.get('sha256'))[:16]}... "
                "(file corrupted or replaced)"
            )
    extra = [p.relative_to(directory).as_posix() for p in _files(directory)]
    unexpected = sorted(set(extra) - set(expected) - set(ignore))
    if unexpected:
        raise BundleIntegrityError(
            f"{directory / unexpected[0]}: not in {CHECKSUMS_FILE} (file added after packaging)"
        )
    return len(expected)


# Folders of catalogue data, not weights: NaN there means "unknown" (an item without a year or a price).
NOT_WEIGHTS = ("conversation",)


def check_finite(directory: str | Path) -> int:
    """Refuse NaN or infinite values in the folder's numeric arrays (``.npy``, ``.npz``, torch ``.pt``),
    the catalogue index (``NOT_WEIGHTS``) aside; returns the number of arrays checked."""
    directory = Path(directory)
    checked = 0
    for path in _files(directory):
        if path.relative_to(directory).parts[0] in NOT_WEIGHTS:
            continue
        suffix = path.suffix.lower()
        try:
            if suffix == ".npy":
                checked += _check_array(path, "", np.load(path, allow_pickle=False))
            elif suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    for name in archive.files:
                        checked += _check_array(path, name, archive[name])
            elif suffix in (".pt", ".pth"):
                checked += _check_torch(path)
        except BundleIntegrityError:
            raise
        except (
            ValueError,
            OSError,
            EOFError,
            zipfile.BadZipFile,
            RuntimeError,
            pickle.UnpicklingError,
        ) as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise BundleIntegrityError(
                f"{path}: cannot be read as {suffix[1:]} ({type(exc).__name__}: {first})"
            ) from None
    return checked


def _check_array(path: Path, name: str, array: np.ndarray) -> int:
    if array.dtype.kind in _FLOAT_KINDS:
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            where = f"{path}[{name}]" if name else str(path)
            raise BundleIntegrityError(
                f"{where}: {bad} of {array.size} values are NaN or infinite; refusing to package this model"
            )
    return 1


def _check_torch(path: Path) -> int:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    tensors = state.items() if isinstance(state, dict) else [("", state)]
    checked = 0
    for name, value in tensors:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int(value.numel() - torch.isfinite(value).sum().item())
            if bad:
                raise BundleIntegrityError(
                    f"{path}[{name}]: {bad} of {value.numel()} values are NaN or infinite; "
                    "refusing to package this model"
                )
            checked += 1
    return checked


__all__ = [
    "CHECKSUMS_FILE",
    "STORE_FILES",
    "BundleIntegrityError",
    "check_finite",
    "seal",
    "sha256_file",
    "verify",
]
