"""A user simulator that does not speak the planner's language: it talks about a held-out target item with the
item's OWN words (its human-written tags and description), vague or wrong attributes, and typo'd titles.

Each simulated user wants one *target* item (e.g. the leave-one-out test item) but never names it:

- the opening describes the target with two or three words from its own text beyond its title and categories
  (MovieLens users' tags such as "mind-bending", "dark comedy"; product descriptions), or, when the item has
  none, one of its category values; a share of users name a WRONG category (``p_wrong``);
- time is vague ("something recent", "an older one", "from around 1995") and a share of users misremember
  it by five to ten years;
- a warm user points at an item of their history with the title typed carelessly (lower case, dropped article,
  one character swapped);
- after each list the user reacts: dislikes the least fitting shown item through ``engine.feedback``, and adds
  another of the target's own words, or corrects the era vaguely.

Nothing here reads the planner's vocabularies, so success rates measure understanding rather than agreement
with ourselves. Success = the target in the top k within ``max_turns`` turns. Everything is seeded.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.dialogue.linker import display_title
from components.dialogue.text import fold, informativeness

if TYPE_CHECKING:
    from components.dialogue.engine import ConversationEngine
    from components.dialogue.index import CatalogueIndex

OPENINGS = (
    "I'm in the mood for something {words}",
    "got anything {words}?",
    "looking for a {noun} that is {words}",
    "{words} please",
    "what would you suggest if I want {words}",
)
MORE = ("ideally also {word}", "and {word} would be great", "more {word} maybe", "something {word}")


@dataclass(frozen=True)
class SimCase:
    """One simulated user: what they did before (oldest first) and the item they are after."""

    user_id: str
    history: tuple[str, ...]
    target: str


@dataclass
class SimulationReport:
    """Share of users who found their target, and how fast."""

    success_at_k: float
    mean_turns_to_success: float
    n_users: int
    per_turn_success: list[float]  # cumulative share found by the end of turn 1, 2, ...
    k: int = 10
    max_turns: int = 5
    cold_start: bool = False
    skipped: int = 0  # cases whose target the catalogue does not know
    transcripts: list[list[str]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("transcripts")
        return out


def leave_one_out_cases(
    interactions: pd.DataFrame, n_users: int | None = None, seed: int = 0, min_history: int = 3
) -> list[SimCase]:
    """Per user: target = their last item (by time), history = the rest; ``n_users`` sampled with ``seed``."""
    df = interactions.sort_values(["user_id", "timestamp"], kind="stable")
    cases = []
    for user, items in df.groupby("user_id", sort=True)["item_id"]:
        seq = [str(i) for i in items]
        if len(seq) < min_history + 1 or seq[-1] in seq[:-1]:
            continue
        cases.append(SimCase(str(user), tuple(seq[:-1]), seq[-1]))
    if n_users is not None and n_users < len(cases):
        rng = np.random.default_rng(seed)
        pick = sorted(rng.choice(len(cases), size=n_users, replace=False).tolist())
        cases = [cases[i] for i in pick]
    return cases


def own_words(index: CatalogueIndex, idx: int, limit: int = 8) -> list[str]:
    """Descriptive words of an item's own text beyond its title and category values, rarest first."""
    title = set(fold(index.titles[idx]).split())
    facets = {w for vals in index.facet_values(idx).values() for v in vals for w in fold(v).split()}
    words = [w for w in fold(index.texts[idx]).split() if len(w) >= 4 and not w.isdigit()]
    words = [w for w in dict.fromkeys(words) if w not in title and w not in facets]
    return sorted(words, key=lambda w: -informativeness(w))[:limit]


def careless(title: str, rng: np.random.Generator) -> str:
    """A title as typed in a hurry: no year, lower case, leading article dropped, maybe one swapped letter."""
    t = fold(display_title(title).split(" (")[0])
    for art in ("the ", "a ", "an "):
        if t.startswith(art) and rng.random() < 0.5:
            t = t[len(art) :]
    if len(t) > 6 and rng.random() < 0.4:
        i = int(rng.integers(1, len(t) - 2))
        if t[i] != " " and t[i + 1] != " ":
            t = t[:i] + t[i + 1] + t[i] + t[i + 2 :]
    return t


class SimulatedUser:
    """Knows its target; describes it in the target's own words, vaguely and sometimes wrongly."""

    def __init__(
        self, case: SimCase, index: CatalogueIndex, cold_start: bool, seed: int, p_wrong: float = 0.2
    ) -> None:
        t = index.index(case.target)
        if t is None:
            raise ValueError(f"target {case.target!r} of user {case.user_id!r} is not in the catalogue")
        self.case, self.index, self.t, self.cold = case, index, t, cold_start
        self.rng = np.random.default_rng([seed, zlib.crc32(case.user_id.encode())])
        self.words = own_words(index, t)
        self.rng.shuffle(self.words)
        held = index.facet_values(t)
        self.values = [v for vals in held.values() for v in vals]
        others = [v for f in index.categories.values() for v in f.values if v not in self.values]
        self.wrong = (
            others[int(self.rng.integers(len(others)))] if others and self.rng.random() < p_wrong else None
        )
        year = index.years[t]
        self.year = int(year) if np.isfinite(year) else None
        if self.year is not None and self.rng.random() < 0.25:
            self.year += int(self.rng.choice([-10, -7, -5, 5, 7, 10]))  # misremembered
        self.used: set[str] = set()

    def opening(self) -> str:
        rng = self.rng
        words = self._take(2 + int(rng.random() < 0.3))
        if not words and self.values:
            words = [self.values[int(rng.integers(len(self.values)))].lower()]
        if self.wrong:
            words.append(self.wrong.lower())
        template = OPENINGS[int(rng.integers(len(OPENINGS)))]
        text = template.format(words=" and ".join(words) or "good", noun=self.index.noun)
        if self.year is not None and rng.random() < 0.6:
            text += ", " + self._era()
        ref = self._history_reference()
        if ref is not None and rng.random() < 0.5:
            text += f", I loved {careless(self.index.titles[ref], rng)}"
        return text

    def critique(self, shown: Sequence[str], engine: ConversationEngine, session_id: str) -> str:
        """The next message after seeing ``shown`` (may also send a dislike through the engine)."""
        idx = [i for i in (self.index.index(s) for s in shown) if i is not None]
        if idx:
            sims = self.index.embeddings[idx] @ self.index.embeddings[self.t]
            engine.feedback(session_id, self.index.item_ids[idx[int(np.argmin(sims))]], "dislike")
        word = self._take(1)
        if word:
            return MORE[int(self.rng.integers(len(MORE)))].format(word=word[0])
        if self.year is not None:
            years = np.array([self.index.years[i] for i in idx], dtype=np.float64)
            years = years[np.isfinite(years)]
            if years.size and years.mean() > self.year + 5:
                return "hmm, something older"
            if years.size and years.mean() < self.year - 5:
                return "those are too old for me"
        return "not quite, something else"

    def _take(self, n: int) -> list[str]:
        out = [w for w in self.words if w not in self.used][:n]
        self.used.update(out)
        return out

    def _era(self) -> str:
        assert self.year is not None
        r = self.rng.random()
        if r < 0.4:
            return f"from around {self.year}"
        if r < 0.7:
            return f"from the {self.year - self.year % 10}s"
        bounds = self.index.year_facet.bounds if self.index.year_facet else None
        recent = bounds is not None and self.year >= bounds[1] - 8
        return "something recent" if recent else "an older one is fine"

    def _history_reference(self) -> int | None:
        if self.cold or not self.case.history:
            return None
        recent = [
            i for i in (self.index.index(x) for x in reversed(self.case.history[-20:])) if i is not None
        ]
        if not recent:
            return None
        sims = self.index.embeddings[recent] @ self.index.embeddings[self.t]
        return recent[int(np.argmax(sims))]


def simulate(
    engine: ConversationEngine,
    cases: Sequence[SimCase],
    k: int = 10,
    max_turns: int = 5,
    cold_start: bool = False,
    seed: int = 0,
    keep_transcripts: bool = False,
) -> SimulationReport:
    """Run every case through ``engine``; cold-start users bring no history."""
    found_at: list[int | None] = []
    transcripts: list[list[str]] = []
    skipped = 0
    for case in cases:
        if engine.index.index(case.target) is None:
            skipped += 1
            continue
        user = SimulatedUser(case, engine.index, cold_start, seed)
        sid = f"sim-{seed}-{'cold' if cold_start else 'warm'}-{case.user_id}"
        engine.reset(sid)
        if not cold_start and case.history:
            engine.load_history(sid, list(case.history))
        message = user.opening()
        log: list[str] = []
        hit: int | None = None
        for turn in range(1, max_turns + 1):
            result = engine.chat(sid, message, k)
            shown = [item.item_id for item in result.items]
            log.append(f"user: {message} | shown: {', '.join(item.title for item in result.items[:3])}...")
            if case.target in shown:
                hit = turn
                break
            if turn < max_turns:
                message = user.critique(shown, engine, sid)
        engine.reset(sid)
        found_at.append(hit)
        if keep_transcripts:
            transcripts.append(log)
    n = len(found_at)
    per_turn = [
        sum(1 for h in found_at if h is not None and h <= t) / n if n else 0.0
        for t in range(1, max_turns + 1)
    ]
    turns = [h for h in found_at if h is not None]
    return SimulationReport(
        success_at_k=per_turn[-1] if per_turn else 0.0,
        mean_turns_to_success=float(np.mean(turns)) if turns else float("nan"),
        n_users=n,
        per_turn_success=per_turn,
        k=k,
        max_turns=max_turns,
        cold_start=cold_start,
        skipped=skipped,
        transcripts=transcripts,
    )
