"""Catalogue churn between retrains: items added and retired while a model is serving.

The **overlay** is the catalogue's change set on top of the items table the model was trained on: rows of
added (or re-described) items in the canonical item schema (components/schema.py), and the ids of retired
items. One JSON file (``data/catalogue/overlay.json`` under ``sessionflow serve``; elsewhere
``$SESSIONFLOW_CATALOGUE_OVERLAY``), written only by ``OverlayStore``:

- **durable**: a change is acknowledged only once the new file is on disk -- written to a temporary file,
  fsynced, renamed over the old one (atomic) and the folder fsynced; a crash leaves the old or the new
  version, never half of one;
- **serialised**: read-modify-write under an exclusive ``flock`` on ``<file>.lock``, so two writers (two
  replicas sharing the data folder) never lose each other's changes; every change bumps ``revision``, which
  a running service compares to decide whether to re-apply the overlay;
- **validated**: each row is checked on its own (``validate_rows``) and refused with the field and the reason
  (``RejectedRow``); refused rows are appended to ``rejected.jsonl`` next to the overlay, kept with their
  reason, never silently dropped.

Retraining: ``overlay_table`` is the snapshot the export stage writes (``data/catalogue/<dataset>/
changes.parquet``, content-hashed into the data version as the feedback snapshot is) and ``merge_catalogue``
folds it into the ingested tables: added rows join (or replace) the items table, retired items and their
interactions leave it.

Pure: pandas and pydantic only (the service, the stage runner and the CLI share it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from components.facets import CatalogueSpec
from components.schema import ITEM_COLUMNS, coerce_items

OVERLAY_ENV = "SESSIONFLOW_CATALOGUE_OVERLAY"
OVERLAY_FORMAT = 1
REJECTED_FILE = "rejected.jsonl"
MAX_ROWS_PER_REQUEST = 1000  # POST /admin/items; the CLI sends bigger files in chunks of this size
MAX_RETIRE_PER_REQUEST = 10_000
MAX_OVERLAY_ITEMS = 50_000  # beyond this, retrain: every change re-indexes the added items
MAX_ID_CHARS = 200
MAX_TITLE_CHARS = 500
MAX_TEXT_CHARS = 20_000
MAX_CATEGORIES = 200
MAX_ATTRIBUTES = 100


class OverlayError(RuntimeError):
    """The overlay file cannot be read or written (corrupt, unreadable, read-only, disk full)."""


class OverlayFull(OverlayError):
    """The change would take the overlay over ``MAX_OVERLAY_ITEMS`` added items: retrain first."""


# ------------------------------------------------------------------------------------------- validation
ItemIdIn = StrictStr | StrictInt


class ItemRow(BaseModel):
    """One catalogue item as clients send it: the canonical item schema (components/schema.py).

    ``attributes`` holds what the catalogue spec maps from other columns (``attributes.brand``,
    ``attributes.price``: GET /catalogue lists each facet's column)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    item_id: ItemIdIn = Field(description="The item's id, unique in the catalogue.")
    title: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TITLE_CHARS)]
    text: Annotated[StrictStr, Field(max_length=MAX_TEXT_CHARS)] = Field(
        "", description="Free text (description, tags); the title when empty."
    )
    categories: Any = Field(
        default_factory=list, description="Category values (genres, tags); a string is split on '|'."
    )
    year: Any = Field(None, description="A year between 1000 and 2999 (an integer, or text holding one).")
    attributes: Any = Field(
        default_factory=dict, description="Other columns: a JSON object of strings, numbers or lists."
    )

    @field_validator("item_id")
    @classmethod
    def _id(cls, value: str | int) -> str:
        text = str(value).strip()
        if not text:
            raise ValueError("must not be empty")
        if len(text) > MAX_ID_CHARS:
            raise ValueError(f"is {len(text)} characters long, at most {MAX_ID_CHARS}")
        if any(ord(c) < 32 for c in text):
            raise ValueError("must not hold control characters")
        return text

    @field_validator("categories", mode="before")
    @classmethod
    def _categories(cls, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = value.split("|")
        if not isinstance(value, list):
            raise ValueError(f"must be a list of strings (or one string split on '|'), got {_kind(value)}")
        values = []
        for n, v in enumerate(value):
            if not isinstance(v, str):
                raise ValueError(f"value {n} must be a string, got {_kind(v)}")
            if len(v.strip()) > 200:
                raise ValueError(f"value {n} is {len(v.strip())} characters long, at most 200")
            values.append(v.strip())
        values = list(dict.fromkeys(v for v in values if v))
        if len(values) > MAX_CATEGORIES:
            raise ValueError(f"has {len(values)} values, at most {MAX_CATEGORIES}")
        return values

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, value: Any) -> int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"must be a year (a number), got {_kind(value)}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a year") from None
        if math.isnan(number):
            return None  # an empty cell of a table
        if not math.isfinite(number) or number != int(number) or not 1000 <= number <= 2999:
            raise ValueError(f"{value!r} is not a year between 1000 and 2999")
        return int(number)

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes(cls, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError("is not a valid JSON object") from None
        if not isinstance(value, dict):
            raise ValueError(f"must be an object of name -> value, got {_kind(value)}")
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"has {len(value)} entries, at most {MAX_ATTRIBUTES}")
        out: dict[str, Any] = {}
        for key, v in value.items():
            if not isinstance(key, str) or not key.strip() or len(key) > 100:
                raise ValueError(f"name {key!r} must be a non-empty string of at most 100 characters")
            if isinstance(v, float) and math.isnan(v):
                continue  # an empty cell
            ok = (
                v is None
                or isinstance(v, str | int | float | bool)
                or (isinstance(v, list) and all(isinstance(x, str | int | float | bool) for x in v))
            )
            if not ok:
                raise ValueError(
                    f"{key!r} must be a string, number, boolean or a list of them, got {_kind(v)}"
                )
            if isinstance(v, str) and len(v) > MAX_TEXT_CHARS:
                raise ValueError(f"{key!r} is {len(v)} characters long, at most {MAX_TEXT_CHARS}")
            if v is not None:
                out[key.strip()] = v
        return out

    def canonical(self) -> dict[str, Any]:
        """The row as the overlay stores it (text defaults to the title, as ingest does)."""
        return {
            "item_id": str(self.item_id),
            "title": self.title,
            "text": self.text or self.title,
            "categories": list(self.categories),
            "year": self.year,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True)
class RejectedRow:
    """A row that was refused: where it was (0-based position in the request or file), its id when it had
    one, the field at fault and why."""

    row: int
    item_id: str | None
    field: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "item_id": self.item_id, "field": self.field, "reason": self.reason}


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def validate_rows(
    rows: Sequence[Any], spec: CatalogueSpec | None = None
) -> tuple[list[dict[str, Any]], list[RejectedRow]]:
    """Check each row on its own: (canonical rows accepted, rows refused with field and reason). A row is
    refused for an unknown or malformed field, for a value a number facet of ``spec`` cannot read
    (``attributes.price: 'cheap' is not a number``), and for repeating an id of an earlier row."""
    accepted: list[dict[str, Any]] = []
    rejected: list[RejectedRow] = []
    first_row: dict[str, int] = {}
    numbers = [f.column for f in (spec.facets if spec else []) if f.kind == "number"]
    for n, raw in enumerate(rows):
        raw_id = raw.get("item_id") if isinstance(raw, Mapping) else None
        shown_id = str(raw_id)[:MAX_ID_CHARS] if isinstance(raw_id, str | int) else None
        if not isinstance(raw, Mapping):
            rejected.append(RejectedRow(n, None, "", f"must be a JSON object, got {type(raw).__name__}"))
            continue
        try:
            row = ItemRow.model_validate(dict(raw)).canonical()
        except ValidationError as exc:
            err = exc.errors()[0]
            where = str(err["loc"][0]) if err["loc"] else ""
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(ITEM_COLUMNS)
                reason = f"unknown field (the item schema has {allowed}; other columns go in attributes)"
            elif err["type"] == "missing":
                reason = "is required"
            rejected.append(RejectedRow(n, shown_id, where or "", f"{where}: {reason}" if where else reason))
            continue
        problem = _facet_problem(row, numbers)
        if problem is not None:
            rejected.append(RejectedRow(n, row["item_id"], *problem))
            continue
        if row["item_id"] in first_row:
            where = first_row[row["item_id"]]
            rejected.append(RejectedRow(n, row["item_id"], "item_id", f"item_id: repeats row {where}"))
            continue
        first_row[row["item_id"]] = n
        accepted.append(row)
    return accepted, rejected


def _facet_problem(row: dict[str, Any], number_columns: Sequence[str]) -> tuple[str, str] | None:
    for column in number_columns:
        if not column.startswith("attributes."):
            continue
        value = row["attributes"].get(column.removeprefix("attributes."))
        if value is None:
            continue
        if not isinstance(value, bool) and parse_number(value) is not None:
            continue
        return column, f"{column}: {value!r} is not a number"
    return None


def parse_number(value: object) -> float | None:
    """A number facet's reading of a value ("$1,299.00" -> 1299.0); None when it is not one."""
    try:
        number = float(str(value).replace("$", "").replace(",", ""))
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ------------------------------------------------------------------------------------------------ state
@dataclass
class OverlayState:
    """The overlay's content: added rows by id (insertion order), retired ids with when, a revision."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)
    revision: int = 0
    updated_at: str | None = None

    @property
    def empty(self) -> bool:
        return not self.items and not self.retired

    def rows_key(self) -> str:
        """sha256 of the added rows (what the served index depends on; retirements do not change it)."""
        text = json.dumps(list(self.items.values()), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": OVERLAY_FORMAT,
            "revision": self.revision,
            "updated_at": self.updated_at,
            "items": self.items,
            "retired": self.retired,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> OverlayState:
        if not isinstance(data, dict) or data.get("format") != OVERLAY_FORMAT:
            raise OverlayError(f"{where}: not a catalogue overlay of format {OVERLAY_FORMAT}")
        items, retired = data.get("items"), data.get("retired")
        if not isinstance(items, dict) or not isinstance(retired, dict):
            raise OverlayError(f"{where}: 'items' and 'retired' must be objects")
        return cls(dict(items), dict(retired), int(data.get("revision", 0)), data.get("updated_at"))


@dataclass(frozen=True)
class ChangeReport:
    """What one change did, row by row."""

    added: list[str] = field(default_factory=list)  # new to the catalogue
    updated: list[str] = field(default_factory=list)  # already served: their details are replaced
    restored: list[str] = field(default_factory=list)  # were retired: served again
    retired: list[str] = field(default_factory=list)
    already_retired: list[str] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    revision: int = 0

    @property
    def accepted(self) -> int:
        return len(self.added) + len(self.updated) + len(self.restored) + len(self.retired)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "restored": self.restored,
            "retired": self.retired,
            "already_retired": self.already_retired,
            "rejected": [r.to_dict() for r in self.rejected],
            "revision": self.revision,
        }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------------------------------------ store
class OverlayStore:
    """The overlay file: durable, serialised writes (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.rejected_path = self.path.with_name(REJECTED_FILE)

    def signature(self) -> tuple[int, int, int] | None:
        """(inode, mtime ns, size) of the file, None when absent: a cheap "did it change?" check."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> OverlayState:
        """The current overlay (empty when the file does not exist yet)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return OverlayState()
        except OSError as exc:
            raise OverlayError(f"{self.path}: cannot read the catalogue overlay ({exc})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OverlayError(f"{self.path}: the catalogue overlay is not valid JSON ({exc})") from exc
        return OverlayState.from_json(data, str(self.path))

    def add(
        self, rows: Sequence[dict[str, Any]], served: Mapping[str, bool] | None = None
    ) -> tuple[OverlayState, ChangeReport]:
        """Store validated canonical rows (``validate_rows``). ``served``: id -> whether the running
        catalogue already has it, to report "updated" rather than "added". Re-adding a retired id restores
        it."""
        served = served or {}
        report = ChangeReport()

        def change(state: OverlayState) -> None:
            if len(set(state.items) | {r["item_id"] for r in rows}) > MAX_OVERLAY_ITEMS:
                raise OverlayFull(
                    f"the overlay would hold more than {MAX_OVERLAY_ITEMS} added items: retrain to fold "
                    "them into the model (sessionflow pipeline), then add more"
                )
            for row in rows:
                item = row["item_id"]
                if state.retired.pop(item, None) is not None:
                    report.restored.append(item)
                elif item in state.items or served.get(item, False):
                    report.updated.append(item)
                else:
                    report.added.append(item)
                state.items.pop(item, None)  # a re-described item moves to the end (newest last)
                state.items[item] = {**row, "changed_at": now_iso()}

        state = self._update(change) if rows else self.read()
        return state, _with_revision(report, state.revision)

    def retire(
        self, item_ids: Sequence[str], served: Mapping[str, bool] | None = None
    ) -> tuple[OverlayState, ChangeReport]:
        """Retire ids the running catalogue has (``served``: id -> known) or the overlay added; unknown ids
        are refused, ids retired before are reported as such."""
        served = served or {}
        report = ChangeReport()

        def change(state: OverlayState) -> None:
            seen: set[str] = set()
            for n, item in enumerate(item_ids):
                if item in seen:
                    continue
                seen.add(item)
                if item in state.retired:
                    report.already_retired.append(item)
                elif served.get(item, False) or item in state.items:
                    state.items.pop(item, None)
                    state.retired[item] = now_iso()
                    report.retired.append(item)
                else:
                    report.rejected.append(
                        RejectedRow(n, item, "item_ids", f"unknown item id {item!r}: not in the catalogue")
                    )

        state = self._update(change)
        return state, _with_revision(report, state.revision)

    def keep_rejected(self, rejected: Sequence[RejectedRow], rows: Sequence[Any], source: str) -> None:
        """Append refused rows, with their reason, to ``rejected.jsonl`` (best effort: a full disk does
        not turn a refusal into a 503)."""
        if not rejected:
            return
        at = now_iso()
        lines = []
        for r in rejected:
            raw = rows[r.row] if 0 <= r.row < len(rows) else None
            shown = json.dumps(raw, default=str, ensure_ascii=False)[:4000] if raw is not None else None
            lines.append(json.dumps({"at": at, "source": source, **r.to_dict(), "input": shown}) + "\n")
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.rejected_path.open("a", encoding="utf-8") as fh:
                fh.write("".join(lines))
                fh.flush()
                os.fsync(fh.fileno())

    # -- internals -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OverlayError(f"{self.path}: cannot lock the catalogue overlay ({exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _update(self, change: Any) -> OverlayState:
        with self._locked():
            state = self.read()
            before = json.dumps(state.to_json(), sort_keys=True)
            change(state)
            if json.dumps(state.to_json(), sort_keys=True) == before:
                return state  # nothing changed: no new revision
            state.revision += 1
            state.updated_at = now_iso()
            self._write(state)
            return state

    def _write(self, state: OverlayState) -> None:
        """tmp file + fsync + rename + fsync of the folder: on disk before the caller answers."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = json.dumps(state.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise OverlayError(f"{self.path}: cannot write the catalogue overlay ({exc})") from exc


def _with_revision(report: ChangeReport, revision: int) -> ChangeReport:
    return ChangeReport(
        report.added, report.updated, report.restored, report.retired, report.already_retired,
        report.rejected, revision,
    )  # fmt: skip


def overlay_path_from_env(env: Mapping[str, str] = os.environ) -> Path | None:
    """``$SESSIONFLOW_CATALOGUE_OVERLAY`` (made absolute), else None."""
    value = env.get(OVERLAY_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def default_overlay_path(root: Path, env: Mapping[str, str] = os.environ) -> Path:
    """The overlay of the project at ``root``: the environment, else ``<root>/data/catalogue/overlay.json``
    (where ``sessionflow serve`` makes the service write)."""
    return overlay_path_from_env(env) or Path(root).resolve() / "data" / "catalogue" / "overlay.json"


# ------------------------------------------------------------------------------------- retraining side
SNAPSHOT_COLUMNS = (*ITEM_COLUMNS, "retired")


def overlay_table(state: OverlayState) -> pd.DataFrame:
    """The overlay as one table (the export stage's snapshot): added rows in the canonical item schema
    (attributes as a JSON object string) with ``retired`` False, then retired ids with ``retired`` True."""
    rows = [
        {
            "item_id": r["item_id"],
            "title": r["title"],
            "text": r.get("text") or r["title"],
            "categories": list(r.get("categories") or []),
            "year": r.get("year"),
            "attributes": json.dumps(r.get("attributes") or {}, sort_keys=True, ensure_ascii=False),
            "retired": False,
        }
        for r in state.items.values()
    ]
    rows += [
        {"item_id": i, "title": "", "text": "", "categories": [], "year": None, "attributes": "{}"}
        | {"retired": True}
        for i in state.retired
    ]
    table = pd.DataFrame(rows, columns=list(SNAPSHOT_COLUMNS))
    table["item_id"] = table["item_id"].astype("string")
    table["year"] = pd.to_numeric(table["year"], errors="coerce").astype("Int64")
    table["retired"] = table["retired"].astype(bool)
    return table


def overlay_hash(table: pd.DataFrame) -> str:
    """sha256 of a snapshot's content (row order kept)."""
    canon = table[list(SNAPSHOT_COLUMNS)].copy()
    canon["categories"] = canon["categories"].map(lambda c: "|".join(str(v) for v in c))
    text = canon.to_csv(index=False, lineterminator="\n", na_rep="")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CatalogueMerge:
    items: pd.DataFrame
    interactions: pd.DataFrame
    n_added: int  # rows new to the items table
    n_replaced: int  # rows that replaced an item of the table
    n_retired: int  # items dropped from the table
    n_interactions_dropped: int  # interactions with retired items


def merge_catalogue(items: pd.DataFrame, interactions: pd.DataFrame, table: pd.DataFrame) -> CatalogueMerge:
    """Fold a snapshot (``overlay_table``) into canonical tables; pure. Added rows join the items table or
    replace the row of the same id; retired items leave it, with their interactions (a retired item is no
    training target and no longer in the vocabulary)."""
    if table.empty:
        return CatalogueMerge(items, interactions, 0, 0, 0, 0)
    retired_mask = table["retired"].astype(bool).to_numpy()
    added = table[~retired_mask]
    retired = set(table.loc[retired_mask, "item_id"].astype(str))
    ids = items["item_id"].astype(str)
    replaced = ids.isin(set(added["item_id"].astype(str)))
    gone = ids.isin(retired)
    rows = coerce_items(added.drop(columns=["retired"]))
    merged = coerce_items(pd.concat([items[~(replaced | gone).to_numpy()], rows], ignore_index=True))
    drop = interactions["item_id"].astype(str).isin(retired).to_numpy()
    return CatalogueMerge(
        items=merged,
        interactions=interactions[~drop].reset_index(drop=True),
        n_added=int(len(rows) - replaced.sum()),
        n_replaced=int(replaced.sum()),
        n_retired=int(gone.sum()),
        n_interactions_dropped=int(drop.sum()),
    )
