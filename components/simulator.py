"""User simulator for the conversation layer, built from held-out data.

Each simulated user wants one *target* item (e.g. the leave-one-out test item) but never names it. They
open with a need drawn from the target's attributes (one or two of its categories, its decade, sometimes
"like <a title from their history>"), look at the answer, and if the target is not in the top k they
critique what they were shown, as a person who knows what they want would:

- reject a category the target lacks that dominates the shown list ("no horror");
- add or correct the era ("from the 90s", "more recent", "older");
- point at a shown item that resembles the target ("another one like the third");
- dislike the least fitting shown item (``engine.feedback(..., "dislike")``) and add a category not yet said.

Success means the target appears in the top k within ``max_turns`` turns. Everything is seeded.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.dialogue import lexicon as lx
from components.dialogue.catalogue import Catalogue

if TYPE_CHECKING:
    from components.dialogue.engine import ConversationEngine

ORDINAL_WORDS = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
)
SPOKEN = {
    "Comedy": ("funny", "comedy"), "Horror": ("scary", "horror"), "Sci-Fi": ("sci-fi", "science fiction"),
    "Children's": ("family", "kids"), "Romance": ("romantic", "romance"),
    "Animation": ("animated", "animation"),
    "Thriller": ("thriller", "suspenseful"), "Crime": ("crime", "gangster"), "Western": ("western",),
    "War": ("war",), "Musical": ("musical",), "Documentary": ("documentary",), "Mystery": ("mystery",),
    "Adventure": ("adventure",), "Fantasy": ("fantasy",), "Film-Noir": ("film noir",), "Drama": ("drama",),
    "Action": ("action",),
}  # fmt: skip


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


def _said(category: str, rng: np.random.Generator) -> str:
    canon = lx.canonical_for(category)
    options = SPOKEN.get(canon or "", (category.lower(),))
    return str(options[int(rng.integers(len(options)))])


def _decade_phrase(year: int, rng: np.random.Generator) -> str:
    decade = year - year % 10
    short = f"{decade % 100:02d}s" if decade < 2000 else f"{decade}s"
    return f"from the {short}" if rng.random() < 0.6 else f"from the {decade}s"


def typed_title(title: str) -> str:
    """How a person types a catalogue title: 'Matrix, The (1999)' -> 'The Matrix'."""
    t = title.strip()
    if t.endswith(")") and "(" in t:
        t = t[: t.rfind("(")].strip()
    for art in ("The", "A", "An"):
        if t.endswith(f", {art}"):
            t = f"{art} {t[: -len(art) - 2]}"
    return t


class SimulatedUser:
    """Knows its target's attributes; talks and reacts like a person after that item."""

    def __init__(self, case: SimCase, catalogue: Catalogue, cold_start: bool, seed: int) -> None:
        self.case = case
        self.cat = catalogue
        self.cold = cold_start
        self.rng = np.random.default_rng([seed, zlib.crc32(case.user_id.encode())])
        t = catalogue.index(case.target)
        if t is None:
            raise ValueError(f"target {case.target!r} of user {case.user_id!r} is not in the catalogue")
        self.t = t
        self.target_cats = list(catalogue.categories[t])
        year = catalogue.years[t]
        self.year = int(year) if np.isfinite(year) else None
        self.said: set[str] = set()
        self.rejected: set[str] = set()
        self.year_said = False
        self.pointed: set[str] = set()

    def opening(self) -> str:
        rng = self.rng
        cats = list(self.target_cats)
        rng.shuffle(cats)
        chosen = cats[: 1 + int(rng.random() < 0.5)] if cats else []
        self.said.update(chosen)
        words = " ".join(_said(c, rng) for c in chosen)
        parts = [f"I want a {words} movie" if words else "I want a movie"]
        if self.year is not None and rng.random() < 0.7:
            parts.append(_decade_phrase(self.year, rng))
            self.year_said = True
        ref = self._history_reference()
        if ref is not None and rng.random() < 0.5:
            parts.append(f"like {typed_title(self.cat.titles[ref])}")
        return " ".join(parts)

    def _history_reference(self) -> int | None:
        if self.cold or not self.case.history:
            return None
        target = set(self.target_cats)
        recent = [i for i in (self.cat.index(x) for x in reversed(self.case.history[-20:])) if i is not None]
        for i in recent:
            if target & set(self.cat.categories[i]):
                return i
        return recent[0] if recent else None

    def critique(self, shown: Sequence[str], engine: ConversationEngine, session_id: str) -> str:
        """The next message after seeing ``shown`` (may also send a dislike through the engine)."""
        idx = [i for i in (self.cat.index(s) for s in shown) if i is not None]
        parts: list[str] = []
        counts = Counter(c for i in idx for c in self.cat.categories[i])
        wrong = [
            (n, c) for c, n in counts.items()
            if c not in self.target_cats and c not in self.rejected and n >= max(2, math.ceil(0.3 * len(idx)))
        ]  # fmt: skip
        if wrong:
            _, c = max(wrong, key=lambda nc: (nc[0], nc[1]))
            self.rejected.add(c)
            parts.append(f"no {_said(c, self.rng)}")
        if self.year is not None:
            years = np.array([self.cat.years[i] for i in idx], dtype=np.float64)
            years = years[np.isfinite(years)]
            if not self.year_said:
                parts.append(_decade_phrase(self.year, self.rng))
                self.year_said = True
            elif years.size and years.mean() > self.year + 4:
                parts.append("older")
            elif years.size and years.mean() < self.year - 4:
                parts.append("more recent")
        target = set(self.target_cats)
        best, best_sim = None, 0.0
        for pos, i in enumerate(idx):
            cats = set(self.cat.categories[i])
            jac = len(cats & target) / max(1, len(cats | target))
            near = (
                self.year is None
                or not np.isfinite(self.cat.years[i])
                or abs(self.cat.years[i] - self.year) <= 5
            )
            if near and jac > best_sim and shown[pos] not in self.pointed:
                best, best_sim = pos, jac
        if best is not None and best_sim >= 0.5 and len(parts) < 2:
            self.pointed.add(shown[best])
            parts.append(f"another one like the {ORDINAL_WORDS[best]}" if best < 10 else "more like those")
        if not parts:
            worst = min(
                range(len(idx)), key=lambda p: len(set(self.cat.categories[idx[p]]) & target), default=None
            )
            if worst is not None:
                engine.feedback(session_id, shown[worst], "dislike")
            unsaid = [c for c in self.target_cats if c not in self.said]
            if unsaid:
                c = unsaid[int(self.rng.integers(len(unsaid)))]
                self.said.add(c)
                parts.append(f"more {_said(c, self.rng)}")
            else:
                parts.append("something else")
        return ", ".join(parts)


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
        if engine.catalogue.index(case.target) is None:
            skipped += 1
            continue
        user = SimulatedUser(case, engine.catalogue, cold_start, seed)
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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m components.simulator --data /path/to/ml-100k``: train a quick model on the leave-one-out
    training part, then simulate warm and cold-start users and print both reports as JSON."""
    import argparse
    import json
    import time

    from components.bundle import Predictor
    from components.datasets import DatasetSpec
    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import ConversationEngine
    from components.dialogue.state import InMemorySessionStore
    from components.ingest import ingest
    from components.vocab import ItemVocab
    from models import build_model
    from models.base import TrainData

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--data", required=True, help="dataset folder (or file) for --format")
    ap.add_argument("--format", default="movielens-100k")
    ap.add_argument("--model", default="ease", help="model name from models.REGISTRY")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-turns", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedding-cache", default=None, help="folder caching item text embeddings")
    args = ap.parse_args(argv)

    data = ingest(DatasetSpec(name="sim", format=args.format, path=args.data))
    inter = data.interactions.dropna(subset=["item_id", "timestamp"])
    all_cases = leave_one_out_cases(inter, None, args.seed)
    cases = leave_one_out_cases(inter, args.users, args.seed)
    vocab = ItemVocab.fit(inter["item_id"].astype(str))
    held_out = {c.user_id for c in all_cases}
    seqs = []
    for user, items in inter.groupby("user_id", sort=True)["item_id"]:
        seq = [str(i) for i in items]
        seq = seq[:-1] if str(user) in held_out else seq
        seqs.append(np.asarray(vocab.encode(seq)[0], dtype=np.int64))
    model = build_model(args.model, len(vocab))
    start = time.perf_counter()
    model.fit(TrainData(seqs, len(vocab)))
    fit_s = time.perf_counter() - start
    titles = dict(zip(data.items["item_id"].astype(str), data.items["title"].astype(str), strict=True))
    predictor = Predictor(model, vocab, titles, {"model": args.model})
    cfg = ConversationConfig(embedding_cache_dir=args.embedding_cache)
    engine = ConversationEngine(predictor, data.items, cfg, InMemorySessionStore(cfg.session_ttl_seconds))
    out: dict[str, Any] = {"model": args.model, "fit_seconds": round(fit_s, 2), "n_items": len(vocab)}
    # reference point: the model alone, from the history, without any conversation
    hits = [
        c.target in {r.item_id for r in predictor.recommend(list(c.history), k=args.k).items} for c in cases
    ]
    out[f"model_only_hit@{args.k}"] = float(np.mean(hits)) if hits else float("nan")
    for cold in (False, True):
        start = time.perf_counter()
        report = simulate(engine, cases, args.k, args.max_turns, cold_start=cold, seed=args.seed)
        out["cold" if cold else "warm"] = {
            **report.to_dict(),
            "seconds": round(time.perf_counter() - start, 1),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
