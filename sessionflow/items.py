"""Catalogue changes from the command line: read an items file and send it to a running service.

The running service is the one place a change is validated (against its catalogue's schema and facets),
stored durably (the overlay, components/catalogue_overlay.py) and served; ``sessionflow items add`` reads a
file, sends it to POST /admin/items in chunks of at most ``MAX_ROWS_PER_REQUEST`` rows (and under the
service's body limit), and adds up the answers. Row numbers in the report count the file's items from 0.

Files: CSV / TSV (every cell read as text; ``categories`` split on ``|``; columns ``attributes.<key>`` become
the item's attributes), JSON (a list of objects, or ``{"items": [...]}``), JSON Lines, Parquet.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from components.catalogue_overlay import MAX_RETIRE_PER_REQUEST, MAX_ROWS_PER_REQUEST
from components.serving_settings import API_KEY_ENV

MAX_CHUNK_BYTES = 900_000  # under the service's default 1 MiB body limit


class ItemsFileError(ValueError):
    """The file cannot be read as items (format, encoding, shape)."""


class ServiceError(RuntimeError):
    """The service refused the request as a whole or could not be reached."""


def read_items_file(path: Path) -> list[dict[str, Any]]:
    """The rows of an items file as JSON-ready dicts (see the module docstring for the formats)."""
    if not path.is_file():
        raise ItemsFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            sep = "\t" if suffix == ".tsv" else ","
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
            return [_table_row(r) for r in table.to_dict("records")]
        if suffix == ".parquet":
            return [_table_row(r) for r in pd.read_parquet(path).to_dict("records")]
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ItemsFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, OSError) as exc:
        raise ItemsFileError(f"{path}: cannot be read as {suffix.lstrip('.') or 'a table'} ({exc})") from None
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ItemsFileError(f"{path}, line {n}: not JSON ({exc.msg})") from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ItemsFileError(f"{path}, line {exc.lineno}: not JSON ({exc.msg})") from None
        data = data.get("items") if isinstance(data, dict) else data
        if not isinstance(data, list):
            raise ItemsFileError(f'{path}: expected a list of items or {{"items": [...]}}')
        return data
    raise ItemsFileError(f"{path}: unknown format {suffix!r}; use .csv, .tsv, .json, .jsonl or .parquet")


def _table_row(record: dict[str, Any]) -> dict[str, Any]:
    """A table row as an item: empty cells left out, ``attributes.<key>`` columns gathered."""
    out: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in record.items():
        value = _plain(value)
        if value is None or value == "":
            continue
        if str(key).startswith("attributes."):
            attributes[str(key)[len("attributes.") :]] = value
        else:
            out[str(key)] = value
    if attributes:
        base = out.get("attributes")
        if isinstance(base, str) and base.strip().startswith("{"):
            try:
                base = json.loads(base)
            except json.JSONDecodeError:
                base = None
        out["attributes"] = {**(base if isinstance(base, dict) else {}), **attributes}
    return out


def _plain(value: Any) -> Any:
    """numpy/pandas values as JSON values (NaN -> None, arrays -> lists)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def chunks(rows: Sequence[Any], max_rows: int) -> Iterator[tuple[int, list[Any]]]:
    """(offset, rows) pieces of at most ``max_rows`` rows and about ``MAX_CHUNK_BYTES`` of JSON."""
    start = 0
    while start < len(rows):
        size, end = 0, start
        while end < len(rows) and end - start < max_rows:
            size += len(json.dumps(rows[end], default=str)) + 1
            if size > MAX_CHUNK_BYTES and end > start:
                break
            end += 1
        yield start, list(rows[start:end])
        start = end


@dataclass
class Totals:
    """The answers of all chunks added up (what ``sessionflow items`` prints)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    already_retired: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    revision: int | None = None
    n_items: int | None = None
    seconds: float = 0.0

    def take(self, answer: dict[str, Any], offset: int) -> None:
        for key in ("added", "updated", "restored", "retired", "already_retired"):
            getattr(self, key).extend(answer.get(key, []))
        self.rejected += [{**r, "row": r["row"] + offset} for r in answer.get("rejected", [])]
        self.revision = answer.get("revision", self.revision)
        self.n_items = answer.get("n_items", self.n_items)
        self.seconds += float(answer.get("seconds", 0.0))

    def summary(self, limit: int = 20) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("added", "updated", "restored", "retired", "already_retired"):
            ids = getattr(self, key)
            if ids:
                out[key] = len(ids)
                out[f"{key}_ids"] = ids[:limit] + (
                    [f"... {len(ids) - limit} more"] if len(ids) > limit else []
                )
        out["rejected"] = len(self.rejected)
        if self.rejected:
            out["rejected_rows"] = self.rejected[:limit]
        out |= {"revision": self.revision, "n_items": self.n_items, "service_seconds": round(self.seconds, 3)}
        return out


def send_items(
    url: str, rows: Sequence[Any], timeout_s: float = 300.0, max_rows: int = MAX_ROWS_PER_REQUEST
) -> Totals:
    """POST the rows to ``url``/admin/items in chunks; rows a chunk refuses are reported, not fatal."""
    totals = Totals()
    for offset, part in chunks(rows, max_rows):
        answer = _post(url, "/admin/items", {"items": part}, timeout_s)
        if answer.get("status") == 400:  # every row of this chunk refused: the detail names them
            totals.rejected += [_detail_row(d, part, offset) for d in answer["detail"]]
            continue
        totals.take(answer, offset)
    return totals


def retire_items(url: str, item_ids: Sequence[str], timeout_s: float = 300.0) -> Totals:
    totals = Totals()
    for offset, part in chunks(list(item_ids), MAX_RETIRE_PER_REQUEST):
        answer = _post(url, "/admin/items/retire", {"item_ids": part}, timeout_s)
        if answer.get("status") == 400:
            totals.rejected += [_detail_row(d, part, offset) for d in answer["detail"]]
            continue
        totals.take(answer, offset)
    return totals


def list_items(url: str, timeout_s: float = 30.0) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/admin/items", headers=_headers(), timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceError(f"cannot reach the service at {url} ({type(exc).__name__}: {exc})") from None
    return _answer(response, url)


def _detail_row(detail: dict[str, Any], part: Sequence[Any], offset: int) -> dict[str, Any]:
    loc = list(detail.get("loc") or [])
    row = int(loc[1]) if len(loc) > 1 and isinstance(loc[1], int) else -1
    raw = part[row] if 0 <= row < len(part) else None
    item_id = raw.get("item_id") if isinstance(raw, dict) else raw if isinstance(raw, str) else None
    field_ = str(loc[2]) if len(loc) > 2 else ""
    return {
        "row": row + offset if row >= 0 else -1,
        "item_id": None if item_id is None else str(item_id),
        "field": field_,
        "reason": detail.get("msg", ""),
    }


def _headers() -> dict[str, str]:
    key = os.environ.get(API_KEY_ENV, "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _post(url: str, route: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.post(f"{url.rstrip('/')}{route}", json=body, headers=_headers(), timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceError(f"cannot reach the service at {url} ({type(exc).__name__}: {exc})") from None
    if response.status_code == 400 and "detail" in response.text:
        detail = response.json().get("detail")
        rows = isinstance(detail, list) and all(
            isinstance(d, dict) and len(d.get("loc") or []) > 1 and d["loc"][0] in ("items", "item_ids")
            for d in detail
        )
        if rows:  # every row of the chunk was refused: reported row by row, not fatal
            return {"status": 400, "detail": detail}
    return _answer(response, url)


def _answer(response: Any, url: str) -> dict[str, Any]:
    if response.status_code == 401:
        raise ServiceError(f"the service at {url} needs its API key: set {API_KEY_ENV}")
    if response.status_code != 200:
        try:
            reason = response.json().get("error") or response.json()
        except ValueError:
            reason = response.text[:500]
        raise ServiceError(f"the service at {url} answered {response.status_code}: {reason}")
    return response.json()


__all__ = [
    "ItemsFileError",
    "ServiceError",
    "Totals",
    "chunks",
    "list_items",
    "read_items_file",
    "retire_items",
    "send_items",
]
