"""Dialogue state of one session, and how a ``Query`` or a feedback event changes it.

The state holds raw item ids (strings) and constraint dicts, so it is JSON-able, survives a model swap and is
what the chat page shows as "what I know so far". Stores are in ``components.dialogue.stores``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from components.dialogue import grammar as g
from components.dialogue.index import CatalogueIndex
from components.dialogue.query import Constraint, Query, names_value, without_words
from components.dialogue.text import fold

MAX_SHOWN_MEMORY = 500
MAX_TEXTS = 6


@dataclass
class DialogueState:
    """Everything the conversation knows about one session."""

    session_id: str
    turn: int = 0
    constraints: list[dict[str, Any]] = field(default_factory=list)  # Constraint dumps, latest wins per key
    soft: list[str] = field(default_factory=list)  # free-text preferences, oldest first
    avoid: list[str] = field(default_factory=list)  # free text not wanted
    assistant: list[str] = field(default_factory=list)  # what the assistant said (stateless histories)
    said: list[str] = field(default_factory=list)  # the user's recent messages as typed
    suggested: list[str] = field(default_factory=list)  # items the assistant named (stateless histories)
    title_words: list[str] = field(default_factory=list)  # franchises, and titles the catalogue lacks
    liked: list[str] = field(default_factory=list)
    similar: list[str] = field(default_factory=list)  # what the user last asked for more like
    disliked: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    mentioned: list[str] = field(default_factory=list)
    mood: str | None = None  # "lighter" | "darker"
    focus: str | None = None  # the item asked about last
    shown: list[str] = field(default_factory=list)
    shown_before: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)  # the session's interactions (clicks, /recommend items)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DialogueState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def typed_constraints(self, since_turn: int | None = None) -> list[Constraint]:
        """The constraints; with ``since_turn``, only those said at or after that turn."""
        return [
            _typed(c)
            for c in self.constraints
            if since_turn is None or int(c.get("turn", self.turn)) >= since_turn
        ]

    @property
    def has_preferences(self) -> bool:
        """Whether anything was asked or done that a list can follow."""
        return bool(
            self.constraints or self.soft or self.avoid or self.liked or self.disliked or self.history
            or self.mood or self.mentioned or self.suggested or self.title_words or self.similar
        )  # fmt: skip

    def clear_conversation(self) -> None:
        """'start over': drop what was said, keep what was done (likes, dislikes, the session's items)."""
        fresh = DialogueState(
            self.session_id, turn=self.turn, liked=self.liked, disliked=self.disliked, history=self.history
        )
        self.__dict__.update(fresh.__dict__)


def _add(target: list[str], items: list[str], *remove_from: list[str]) -> None:
    for item in items:
        if item not in target:
            target.append(item)
        for other in remove_from:
            while item in other:
                other.remove(item)


def apply_query(state: DialogueState, q: Query, index: CatalogueIndex, said: str = "") -> None:
    """Fold one understood message (``said``: as typed) into the state (in place). Words of ``q.avoid``
    that earlier turns asked for are taken out of it, in ``q`` too (the reply tells what is avoided)."""
    state.turn += 1
    if q.intent in ("other_language", "not_understood", "off_topic"):
        return
    if q.intent == "reset":
        state.clear_conversation()
    if q.avoid and state.soft:  # what was asked for is no avoided word ("not one where the dog dies")
        q.avoid = without_words(q.avoid, {w for text in state.soft for w in fold(text).split()})
    avoided = [q.avoid] if q.avoid else []
    for c in q.constraints:
        if c.op == "is_not" and c.said and not names_value(c) and _asked(state, c):
            # "something scary" then "nothing with zombies either": zombies are not all of Horror, so
            # the word is avoided text, not an exclusion of what was asked (as within one message)
            avoided.append(fold(c.said))
            continue
        set_constraint(state, c, state.turn)
    by = {s: [r.item_id for r in q.refs if r.stance == s] for s in ("liked", "disliked", "seen", "rejected")}
    _add(state.liked, by["liked"], state.disliked, state.rejected)
    _add(state.disliked, by["disliked"], state.liked)
    _add(state.seen, by["seen"])
    _add(state.rejected, by["rejected"], state.liked)
    _add(state.mentioned, [r.item_id for r in q.refs if r.stance in ("mentioned", "asked_about")])
    asked = [r.item_id for r in q.refs if r.stance == "asked_about"]
    if asked:
        state.focus = asked[0]  # "the blue one, is it PLA?": the item the question begins with
    if q.soft:
        state.soft = [*state.soft, q.soft][-MAX_TEXTS:]
    said = g.without_unsupported(said, q.unsupported) if said else ""
    if said:
        state.said = [*state.said, said][-MAX_TEXTS:]
    if q.unresolved_titles or q.franchises:
        state.title_words = [*state.title_words, *q.unresolved_titles, *q.franchises][-MAX_TEXTS:]
    if avoided:
        state.avoid = [*state.avoid, ", ".join(avoided)][-MAX_TEXTS:]
    # a new "more like" request replaces the last one; "like Heat but less violent" asks for more like Heat
    # too (the planner keeps the item a critique is about in ``critique_of``)
    if q.critique == "more_like" or (q.critique is not None and q.critique_of):
        anchors = [r.item_id for r in q.refs if r.stance == "liked"] or [q.critique_of or ""]
        state.similar = [a for a in dict.fromkeys(anchors) if a][-MAX_TEXTS:]
    state.similar = [s for s in state.similar if s not in by["disliked"] and s not in by["rejected"]]
    if q.critique in ("lighter", "darker"):
        state.mood = q.critique
    elif q.critique in ("newer", "older", "cheaper", "pricier"):
        _relative(state, q.critique, index)


def set_constraint(state: DialogueState, c: Constraint, turn: int | None = None) -> None:
    """Add a constraint (said at ``turn``); it replaces any earlier one on the same facet value or range
    facet (an asked range and an exclusion of that facet said in different turns replace each other;
    several exclusions hold together)."""
    key = c.key()
    if c.op == "prefer" and any(d["op"] != "prefer" and _typed(d).key() == key for d in state.constraints):
        return  # a mention in passing never weakens what was asked
    turn = state.turn if turn is None else turn

    def replaced(d: dict[str, Any]) -> bool:
        if _typed(d).key() == key:
            return True
        if d["facet"] != c.facet or d.get("turn") == turn or c.op == "prefer":
            return False  # what one message says holds together ("not the 80s, but the 90s")
        if key[1] == "range":  # an asked range replaces earlier exclusions ("the 90s are fine now")
            return d["op"] == "not_between"
        return key[1] == "not_between" and _typed(d).key()[1] == "range"  # ... and the reverse

    state.constraints = [d for d in state.constraints if not replaced(d)]
    state.constraints.append({**c.model_dump(exclude_defaults=True), "turn": turn})


def _asked(state: DialogueState, c: Constraint) -> bool:
    """Whether the state asks for the category value that ``c`` rules out."""
    return any(
        d["op"] == "is" and d["facet"] == c.facet and d.get("value") == c.value for d in state.constraints
    )


def _typed(d: dict[str, Any]) -> Constraint:
    return Constraint.model_validate({k: v for k, v in d.items() if k != "turn"})


def _relative(state: DialogueState, critique: str, index: CatalogueIndex) -> None:
    """'more recent' / 'older' / 'cheaper' / 'pricier': move a bound past the mean of what was just shown."""
    if critique in ("newer", "older"):
        facet = index.year_facet
    else:
        facet = next((f for f in index.numbers.values() if f.spec.kind == "number"), None)
    if facet is None or facet.bounds is None:
        return
    shown = [i for i in (index.index(x) for x in state.shown) if i is not None]
    vals = facet.values[shown] if shown else np.array([])
    vals = vals[np.isfinite(vals)]
    known = facet.values[np.isfinite(facet.values)]
    up = critique in ("newer", "pricier")
    base = float(vals.mean()) if vals.size else float(np.quantile(known, 0.75 if up else 0.25))
    current = next(
        (_typed(d) for d in state.constraints
         if d["facet"] == facet.spec.name and d["op"] in ("at_least", "at_most", "between")), None,
    )  # fmt: skip
    low = current.low if current else None
    high = current.high if current else None
    step = 1.0 if facet.spec.kind == "year" else 0.0
    if up:
        low = max(low or -math.inf, math.floor(base) + step)
        low = min(low, facet.bounds[1])
        if high is not None and high < low:
            high = None
    else:
        high = min(high if high is not None else math.inf, math.ceil(base) - step)
        high = max(high, facet.bounds[0])
        if low is not None and low > high:
            low = None
    op = "between" if low is not None and high is not None else "at_least" if low is not None else "at_most"
    word = {"newer": "more recent", "older": "older", "cheaper": "cheaper", "pricier": "pricier"}[critique]
    set_constraint(state, Constraint(facet=facet.spec.name, op=op, low=low, high=high, said=word))


def record_shown(state: DialogueState, shown: list[str]) -> None:
    state.shown = list(shown)
    _add(state.shown_before, shown)
    if len(state.shown_before) > MAX_SHOWN_MEMORY:
        del state.shown_before[: len(state.shown_before) - MAX_SHOWN_MEMORY]


def record_feedback(state: DialogueState, item_id: str, polarity: str, strong: bool) -> None:
    """A reaction: negative -> disliked; positive -> the session's history (and liked when ``strong``)."""
    if polarity == "negative":
        for lst in (state.liked, state.history):
            while item_id in lst:
                lst.remove(item_id)
        _add(state.disliked, [item_id])
    else:
        _add(state.history, [item_id], state.disliked, state.rejected)
        if polarity == "positive" and strong:
            _add(state.liked, [item_id])


def range_label(c: Constraint, unit: str | None = None) -> str:
    """'the 1990s', '1995', 'between 1990 and 1995', '1990 or later', '$20 or less', '1995 or 2004'."""

    def num(x: float) -> str:
        text = f"{x:g}" if unit is None else f"{unit}{x:g}" if unit in "$€£" else f"{x:g} {unit}"
        return text

    if c.op == "any_of_ranges":
        return " or ".join(range_label(Constraint(facet=c.facet, op="between", low=a, high=b), unit)
                           for a, b in c.ranges)  # fmt: skip
    lo, hi = c.low, c.high
    if c.op in ("between", "not_between") and lo is not None and hi is not None:
        prefix = "not " if c.op == "not_between" else ""
        if lo == hi:
            return prefix + num(lo)
        if unit is None and lo % 10 == 0 and hi == lo + 9:
            return f"{prefix}the {int(lo)}s"
        return f"{prefix}between {num(lo)} and {num(hi)}"
    if c.op == "at_least" and lo is not None:
        return f"{num(lo)} or later" if unit is None else f"{num(lo)} or more"
    if c.op == "at_most" and hi is not None:
        return f"{num(hi)} or earlier" if unit is None else f"{num(hi)} or less"
    return c.said
