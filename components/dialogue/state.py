"""Dialogue state of one session, how a parsed turn or a feedback event changes it, and where it is kept.

The state holds raw item ids (strings), so it is JSON-able and survives a model swap. Stores keep the
serialised form (a JSON dict), never the live object, so a caller mutating a state after ``put`` cannot
change what is stored.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from components.dialogue.catalogue import Catalogue
from components.dialogue.parser import ParsedTurn

MAX_SHOWN_MEMORY = 500


@dataclass
class DialogueState:
    """Everything the conversation knows about one session."""

    session_id: str
    turn: int = 0
    liked: list[str] = field(default_factory=list)
    disliked: list[str] = field(default_factory=list)
    rejected_items: list[str] = field(default_factory=list)
    accepted_categories: list[str] = field(default_factory=list)
    rejected_categories: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    tone: int = 0
    positive_refs: list[str] = field(default_factory=list)
    negative_refs: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    shown_before: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DialogueState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def clear_conversation(self) -> None:
        """'start over': drop what was said (constraints, references, shown lists), keep what was done
        (liked/disliked items and the session's interactions)."""
        fresh = DialogueState(
            self.session_id, turn=self.turn, liked=self.liked, disliked=self.disliked, history=self.history
        )
        self.__dict__.update(fresh.__dict__)

    @property
    def has_constraints(self) -> bool:
        return bool(
            self.accepted_categories
            or self.rejected_categories
            or self.year_min is not None
            or self.year_max is not None
            or self.tone
            or self.positive_refs
            or self.negative_refs
            or self.texts
            or self.liked
            or self.history
        )


def year_label(year_min: int | None, year_max: int | None) -> str | None:
    """'the 1990s', 'the early 1990s', '1995', 'between 1990 and 1995', '1996 or later', '1979 or earlier'."""
    if year_min is None and year_max is None:
        return None
    if year_min is not None and year_max is not None:
        if year_min == year_max:
            return str(year_min)
        if year_min % 10 == 0 and year_max == year_min + 9:
            return f"the {year_min}s"
        if year_min // 10 == year_max // 10:
            part = {(0, 3): "early", (4, 6): "mid", (7, 9): "late"}.get((year_min % 10, year_max % 10))
            if part:
                return f"the {part} {year_min - year_min % 10}s"
        return f"between {year_min} and {year_max}"
    if year_min is not None:
        return f"{year_min} or later"
    return f"{year_max} or earlier"


def _add(target: list[str], items: list[str], remove_from: tuple[list[str], ...] = ()) -> None:
    for item in items:
        if item not in target:
            target.append(item)
        for other in remove_from:
            if item in other:
                other.remove(item)


def apply_turn(state: DialogueState, parsed: ParsedTurn, catalogue: Catalogue) -> None:
    """Fold one parsed message into the state (in place)."""
    if parsed.reset:
        state.clear_conversation()
    if parsed.replace_categories and parsed.categories:
        state.accepted_categories = []
    _add(state.accepted_categories, parsed.categories, (state.rejected_categories,))
    _add(state.rejected_categories, parsed.rejected_categories, (state.accepted_categories,))
    if parsed.year_set:
        state.year_min, state.year_max = parsed.year_min, parsed.year_max
    if parsed.year_critique:
        _year_critique(state, parsed.year_critique, catalogue)
    if parsed.tone:
        state.tone = parsed.tone
    ids = catalogue.item_ids
    _add(state.positive_refs, [ids[i] for i in parsed.positive_refs], (state.negative_refs,))
    _add(state.negative_refs, [ids[i] for i in parsed.negative_refs], (state.positive_refs,))
    _add(state.rejected_items, [ids[i] for i in parsed.rejected_items], (state.positive_refs,))
    if parsed.text:
        state.texts.append(parsed.text)
    state.turn += 1


def _year_critique(state: DialogueState, direction: str, catalogue: Catalogue) -> None:
    """'more recent' / 'older': move the year bound past the mean year of what was just shown."""
    bounds = catalogue.year_bounds
    if bounds is None:
        return
    shown = [catalogue.index(i) for i in state.shown]
    years = np.array([catalogue.years[i] for i in shown if i is not None], dtype=np.float64)
    years = years[np.isfinite(years)]
    known = catalogue.years[np.isfinite(catalogue.years)]
    if direction == "newer":
        base = float(years.mean()) if years.size else float(np.quantile(known, 0.75)) - 1
        new_min = min(math.floor(base) + 1, bounds[1])
        state.year_min = new_min if state.year_min is None else max(state.year_min, new_min)
        if state.year_max is not None and state.year_max < state.year_min:
            state.year_max = None
    else:
        base = float(years.mean()) if years.size else float(np.quantile(known, 0.25)) + 1
        new_max = max(math.ceil(base) - 1, bounds[0])
        state.year_max = new_max if state.year_max is None else min(state.year_max, new_max)
        if state.year_min is not None and state.year_min > state.year_max:
            state.year_min = None


def record_shown(state: DialogueState, shown: list[str]) -> None:
    state.shown = list(shown)
    _add(state.shown_before, shown)
    if len(state.shown_before) > MAX_SHOWN_MEMORY:
        del state.shown_before[: len(state.shown_before) - MAX_SHOWN_MEMORY]


# --- stores -------------------------------------------------------------------------------------------------
class SessionStore(Protocol):
    """Where dialogue states live between requests; states expire ``ttl_seconds`` after their last write."""

    def get(self, session_id: str) -> DialogueState | None: ...

    def put(self, state: DialogueState) -> None: ...

    def delete(self, session_id: str) -> None: ...


class InMemorySessionStore:
    """Thread-safe in-process store with TTL expiry and a size cap (least recently written evicted first)."""

    def __init__(
        self,
        ttl_seconds: float = 3600.0,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self.ttl_seconds = ttl_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> DialogueState | None:
        with self._lock:
            entry = self._data.get(session_id)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._data[session_id]
                return None
            return DialogueState.from_dict(json.loads(json.dumps(entry[1])))

    def put(self, state: DialogueState) -> None:
        now = self._clock()
        with self._lock:
            self._data[state.session_id] = (now + self.ttl_seconds, json.loads(json.dumps(state.to_dict())))
            self._data.move_to_end(state.session_id)
            while self._data and (
                len(self._data) > self.max_sessions or next(iter(self._data.values()))[0] <= now
            ):
                self._data.popitem(last=False)

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._data.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class RedisSessionStore:
    """States as JSON strings under ``prefix + session_id`` with a Redis TTL (SETEX)."""

    def __init__(self, url: str, ttl_seconds: float = 3600.0, prefix: str = "sessionflow:dialogue:") -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis-py is optional
            raise RuntimeError(
                f"a redis URL ({url}) is configured but redis-py is missing: pip install redis"
            ) from exc
        self.ttl_seconds = max(1, int(math.ceil(ttl_seconds)))
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def get(self, session_id: str) -> DialogueState | None:
        raw = self._client.get(self.prefix + session_id)
        return None if raw is None else DialogueState.from_dict(json.loads(raw))

    def put(self, state: DialogueState) -> None:
        self._client.setex(self.prefix + state.session_id, self.ttl_seconds, json.dumps(state.to_dict()))

    def delete(self, session_id: str) -> None:
        self._client.delete(self.prefix + session_id)


def make_session_store(
    redis_url: str | None = None, ttl_seconds: float = 3600.0, max_sessions: int = 100_000
) -> SessionStore:
    """Redis when a URL is given, else the in-process store."""
    if redis_url:
        return RedisSessionStore(redis_url, ttl_seconds)
    return InMemorySessionStore(ttl_seconds, max_sessions)
