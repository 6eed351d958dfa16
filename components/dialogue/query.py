"""The typed query: the one contract between understanding (any planner) and ranking.

A planner turns a user message (and what the conversation showed so far) into a ``Query``: hard constraints
on facets, soft free-text preferences, references to items with the user's stance on each, a critique
relative to what was shown, and the intent. Tests assert on it, the service returns it as ``understood``
and the chat page renders it as "what I know so far".
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from components.dialogue.text import fold

Intent = Literal[
    "recommend",  # asks for items (or states preferences)
    "refine",  # changes the current list: a critique, a constraint on what was shown
    "ask_about",  # asks about an item ("what is Inception about?")
    "chit_chat",  # greetings, thanks, small talk
    "off_topic",  # about something the catalogue cannot help with
    "reset",  # start over
    "not_understood",  # no known words
    "other_language",  # a language the engine does not read
]
Stance = Literal["liked", "disliked", "seen", "mentioned", "asked_about", "rejected"]
Op = Literal["is", "is_not", "prefer", "at_least", "at_most", "between", "not_between", "any_of_ranges"]
# what a user asks for: filters while fresh, then only boosts (as ``prefer``, which also holds a taste said in
# passing); exclusions ("is_not", "not_between") always filter
ASKED_OPS = ("is", "between", "at_least", "at_most", "any_of_ranges")
Critique = Literal["newer", "older", "cheaper", "pricier", "lighter", "darker", "more_like", "less_like"]


class Constraint(BaseModel):
    """A condition on one facet. Category facets use ``value``; year/number facets ``low``/``high``
    (``any_of_ranges`` uses ``ranges``: "from 1995 or 2004")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    facet: str
    op: Op
    value: str | None = None
    low: float | None = None
    high: float | None = None
    ranges: tuple[tuple[float, float], ...] = ()
    said: str = Field("", description="The words it came from, for replies ('before 1990').")

    def key(self) -> tuple[str, str, str | None]:
        """Constraints with the same key replace each other in the dialogue state."""
        if self.op in ("is", "is_not") or (self.op == "prefer" and self.value is not None):
            return (self.facet, "value", self.value)
        if self.op == "not_between":  # several exclusions hold together ("nothing from the 80s or 90s")
            return (self.facet, "not_between", f"{self.low}:{self.high}")
        return (self.facet, "range", None)


def names_value(c: Constraint) -> bool:
    """Whether a constraint was said with its value's own name ("horror films" for Horror; not "gory")."""
    said, value = fold(c.said), fold(c.value or "")
    return bool(value and said) and (value in said or said.rstrip("s") in value)


def avoided_phrases(texts: Iterable[str]) -> list[str]:
    """The avoided phrases of some turns, each once: a turn's avoided text (``Query.avoid``) separates its
    phrases with commas (a negated franchise, then the negated free words: "marvel, superhero")."""
    return list(dict.fromkeys(p.strip() for text in texts for p in text.split(",") if p.strip()))


def without_words(avoid: str, words: Collection[str]) -> str:
    """``avoid`` (commas between phrases) without ``words`` (folded): "a movie about a dog" then "not one
    where the dog dies" avoids 'dies', not the dogs asked for. Phrases left empty are dropped."""
    kept = (" ".join(w for w in p.split() if fold(w) not in words) for p in avoided_phrases([avoid]))
    return ", ".join(p for p in kept if p)


def said_words(constraints: Iterable[Constraint]) -> set[str]:
    """The folded words the constraints came from ("not a romcom" -> not Romance): a word left out that a
    constraint already stands for is neither reported unknown nor named twice in the reply."""
    return {w for c in constraints if c.said for w in fold(c.said).split()}


class ItemRef(BaseModel):
    """An item the user referred to, with their stance on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    item_id: str
    title: str
    stance: Stance


class Query(BaseModel):
    """Everything one user turn asked for."""

    model_config = ConfigDict(extra="forbid")
    intent: Intent = "recommend"
    constraints: list[Constraint] = Field(default_factory=list)
    soft: str = Field("", description="Free-text preferences: mood, topic, people, words to match.")
    avoid: str = Field(
        "", description="Free text the user does not want ('not about WWII'); commas separate phrases."
    )
    refs: list[ItemRef] = Field(default_factory=list)
    critique: Critique | None = None
    critique_of: str | None = Field(None, description="Item id a relative critique is about.")
    unresolved_titles: list[str] = Field(default_factory=list)
    franchises: list[str] = Field(
        default_factory=list,
        description="Names searched whole in the titles and texts: words that begin several titles ('the Toy "
        "Story movies'), or where an item is set ('set in Paris').",
    )
    count: int | None = Field(
        None, ge=1, le=20, description="How many items the user asked for ('give me 3 thrillers'), if said."
    )
    language: str = "en"
    unsupported: list[str] = Field(
        default_factory=list,
        description="What the message asked that this catalogue cannot answer ('prices' for '$20' without a "
        "price facet).",
    )
    planner: str = Field("builtin", description="Which planner produced this query (and any fallback).")

    @property
    def empty(self) -> bool:
        return not (self.constraints or self.soft or self.avoid or self.refs or self.critique)
