"""Scoring a conversational recommender on real human dialogues (INSPIRED and corpora shaped like it).

Protocol (the one docs/results-conversation.md reports): for each recommender utterance whose annotated titles
name an item not named earlier in the dialogue, the dialogue *before* that utterance (seeker turns as
``user``,
recommender turns as ``assistant``) goes to the recommender, which answers with a ranked list; Recall@K is the
share of such target items found in the top K. Each target counts once.

Titles are mapped to the catalogue by ``TitleMatcher``: the annotated "Title (Year)" and the catalogue's
titles
are normalised the same way (accents and case folded, punctuation to spaces, "&" -> "and", a trailing or
leading article dropped), then matched on (normalised title, year); when no catalogue title has that year, a
title with the year one off is accepted (release-date conventions differ by a year); annotations without a
year
match only a title that is unique in the catalogue. Targets that do not map are counted (``mapping_rate``) and
left out of the recall.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.dialogue.text import fold

ARTICLES = ("the", "a", "an")
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")
_TRAILING_ARTICLE = re.compile(r",\s*(the|a|an|les|la|le|il|el|das|die|der)$", re.IGNORECASE)


@dataclass(frozen=True)
class Utterance:
    """One utterance: who said it, the text, and the titles annotated in it ("Title (Year)")."""

    role: str  # "user" (seeker) | "assistant" (recommender)
    text: str
    titles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dialogue:
    dialogue_id: str
    utterances: tuple[Utterance, ...]


@dataclass(frozen=True)
class ChatCase:
    """The history before one recommender utterance and the catalogue items it recommends first."""

    dialogue_id: str
    position: int  # index of the recommender utterance in the dialogue
    history: tuple[dict[str, str], ...]
    targets: tuple[str, ...]  # raw item ids
    target_titles: tuple[str, ...]


@dataclass
class CaseBuild:
    cases: list[ChatCase]
    n_titles: int  # new titles named by recommender utterances (mapped or not)
    n_mapped: int
    unmapped: list[str] = field(default_factory=list)

    @property
    def mapping_rate(self) -> float:
        return self.n_mapped / self.n_titles if self.n_titles else 0.0


def read_inspired(path: str | Path) -> list[Dialogue]:
    """Dialogues from an INSPIRED tsv (``dialog_id, utt_id, speaker, text, movies`` columns).

    ``QUOTATION_MARK`` in the text stands for a double quote; ``movies`` is ``;``-separated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dialogue file {path} does not exist")
    rows: dict[str, list[tuple[int, Utterance]]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        need = {"dialog_id", "utt_id", "speaker", "text", "movies"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not an INSPIRED file, columns {sorted(missing)} are missing")
        for line, row in enumerate(reader, start=2):
            speaker = (row["speaker"] or "").strip().upper()
            if speaker not in ("SEEKER", "RECOMMENDER"):
                raise ValueError(f"{path}:{line}: speaker must be SEEKER or RECOMMENDER, got {speaker!r}")
            text = (row["text"] or "").replace("QUOTATION_MARK", '"').strip()
            titles = tuple(t.strip() for t in (row["movies"] or "").split(";") if t.strip())
            role = "user" if speaker == "SEEKER" else "assistant"
            try:
                utt_id = int(row["utt_id"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: utt_id must be an integer, got {row['utt_id']!r}") from None
            rows.setdefault(row["dialog_id"], []).append((utt_id, Utterance(role, text, titles)))
    return [
        Dialogue(did, tuple(u for _, u in sorted(utts, key=lambda x: x[0]))) for did, utts in rows.items()
    ]


def title_key(title: str) -> tuple[str, int | None]:
    """(normalised title, year) of "Matrix, The (1999)" or "The Matrix (1999)" -> ("matrix", 1999)."""
    t = title.strip()
    year = None
    m = _YEAR_SUFFIX.search(t)
    if m:
        year, t = int(m.group(1)), t[: m.start()]
    m = _TRAILING_ARTICLE.search(t)
    if m:
        t = t[: m.start()]
    t = re.sub(r"\s*\([^)]*\)\s*$", "", t) or t  # an alias in parentheses: "Seven (Se7en)"
    key = fold(t.replace("&", " and "))
    first, _, rest = key.partition(" ")
    if first in ARTICLES and rest:
        key = rest
    return key, year


class TitleMatcher:
    """Maps annotated "Title (Year)" strings to catalogue item ids (see the module docstring)."""

    def __init__(self, item_ids: Sequence[str], titles: Sequence[str], years: Sequence[float | None]):
        self._by_key: dict[str, list[tuple[str, int | None]]] = {}
        for item, title, year in zip(item_ids, titles, years, strict=True):
            key, title_year = title_key(str(title))
            y = title_year if title_year is not None else _int_or_none(year)
            self._by_key.setdefault(key, []).append((str(item), y))

    def match(self, annotated: str) -> str | None:
        key, year = title_key(annotated)
        cands = self._by_key.get(key, [])
        if not cands:
            return None
        if year is None:
            return cands[0][0] if len(cands) == 1 else None
        for tolerance in (0, 1):
            hits = [i for i, y in cands if y is not None and abs(y - year) <= tolerance]
            if hits:
                return hits[0]
        return None


def build_cases(dialogues: Iterable[Dialogue], matcher: TitleMatcher) -> CaseBuild:
    """One case per recommender utterance that names a title not named before in its dialogue."""
    out = CaseBuild([], 0, 0)
    for d in dialogues:
        named: set[tuple[str, int | None]] = set()
        for pos, utt in enumerate(d.utterances):
            new = [t for t in dict.fromkeys(utt.titles) if title_key(t) not in named]
            if utt.role == "assistant" and new:
                ids, titles = [], []
                for t in new:
                    out.n_titles += 1
                    item = matcher.match(t)
                    if item is None:
                        out.unmapped.append(t)
                    elif item not in ids:
                        out.n_mapped += 1
                        ids.append(item)
                        titles.append(t)
                if ids and pos > 0:
                    history = tuple({"role": u.role, "content": u.text} for u in d.utterances[:pos])
                    out.cases.append(ChatCase(d.dialogue_id, pos, history, tuple(ids), tuple(titles)))
            named.update(title_key(t) for t in utt.titles)
    return out


@dataclass
class ChatEvalReport:
    recall: dict[int, float]
    n_targets: int
    n_cases: int
    n_titles: int
    mapping_rate: float
    errors: int
    seconds: float
    per_case: list[dict] = field(default_factory=list)

    def metrics(self, prefix: str = "chat") -> dict[str, float]:
        out = {f"{prefix}/recall_at_{k}": v for k, v in self.recall.items()}
        out |= {
            f"{prefix}/n_targets": float(self.n_targets),
            f"{prefix}/n_cases": float(self.n_cases),
            f"{prefix}/mapping_rate": self.mapping_rate,
            f"{prefix}/errors": float(self.errors),
            f"{prefix}/seconds": self.seconds,
        }
        return out


def evaluate_cases(
    answer: Callable[[Sequence[dict[str, str]], int], list[str]],
    build: CaseBuild,
    ks: Sequence[int] = (1, 10, 50),
) -> ChatEvalReport:
    """Recall@K of the target items in ``answer(history, max(ks))`` (a ranked list of raw item ids).

    An answer that raises counts as a miss for its targets and is counted in ``errors``.
    """
    depth = max(ks)
    hits = {k: 0 for k in ks}
    n_targets, errors = 0, 0
    per_case: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for case in build.cases:
        try:
            ranked = list(answer(list(case.history), depth))[:depth]
        except Exception as exc:  # noqa: BLE001 - one failing case must not end the evaluation
            errors += 1
            ranked = []
            per_case.append({"dialogue_id": case.dialogue_id, "error": f"{type(exc).__name__}: {exc}"})
        position = {item: n for n, item in enumerate(ranked)}
        for target, title in zip(case.targets, case.target_titles, strict=True):
            n_targets += 1
            rank = position.get(target)
            for k in ks:
                hits[k] += int(rank is not None and rank < k)
            per_case.append(
                {"dialogue_id": case.dialogue_id, "position": case.position, "target": title, "rank": rank}
            )
    recall = {k: hits[k] / n_targets if n_targets else 0.0 for k in ks}
    return ChatEvalReport(
        recall=recall,
        n_targets=n_targets,
        n_cases=len(build.cases),
        n_titles=build.n_titles,
        mapping_rate=build.mapping_rate,
        errors=errors,
        seconds=time.perf_counter() - t0,
        per_case=per_case,
    )


def _int_or_none(value: object) -> int | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if f != f else int(f)


# -- dialogue corpora and the two ways to answer (an engine in process, a running service) ----------------
DIALOGUE_CORPORA: dict[str, dict[str, tuple[str, str]]] = {
    "inspired": {
        "dev": ("inspired/dev.tsv", "15a955be002222ba9e95f886802e06a91fb5e457f8a25deae3e7908d58faa947"),
        "test": ("inspired/test.tsv", "a10f63ff26045158460730d4829ffba74bee86fb744d9f48c1c1c511ef609993"),
    }
}


def corpus_path(name: str, split: str, mirror: str | Path | None) -> Path:
    """The file of a known dialogue corpus in the data mirror, checked against its sha256."""
    from components.datasets import MIRROR_ENV, sha256_file

    if name not in DIALOGUE_CORPORA or split not in DIALOGUE_CORPORA[name]:
        known = {n: sorted(s) for n, s in DIALOGUE_CORPORA.items()}
        raise ValueError(f"unknown dialogue corpus {name!r}/{split!r}; known: {known} (or pass a file)")
    if not mirror:
        raise FileNotFoundError(f"dialogue corpus {name!r} comes from the data mirror: set {MIRROR_ENV}")
    relative, digest = DIALOGUE_CORPORA[name][split]
    path = Path(mirror) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the mirror ({MIRROR_ENV}) has no {name} {split} split")
    got = sha256_file(path)
    if got != digest:
        raise ValueError(f"{path} has sha256 {got}, expected {digest}: not the published {name} {split} file")
    return path


def engine_answerer(engine: object) -> Callable[[Sequence[dict[str, str]], int], list[str]]:
    """Answers from a ConversationEngine in process (``chat_stateless``)."""

    def answer(history: Sequence[dict[str, str]], k: int) -> list[str]:
        return [i.item_id for i in engine.chat_stateless(list(history), k).items]  # type: ignore[attr-defined]

    return answer


def url_answerer(url: str, timeout: float = 30.0) -> Callable[[Sequence[dict[str, str]], int], list[str]]:
    """Answers from a running service: ``POST {url}/chat {"messages": history, "k": k}``."""
    import httpx

    client = httpx.Client(timeout=timeout)
    base = url.rstrip("/")

    def answer(history: Sequence[dict[str, str]], k: int) -> list[str]:
        messages = [{"role": h["role"], "content": h["content"][:4000]} for h in history][-200:]
        resp = client.post(f"{base}/chat", json={"messages": messages, "k": min(k, 200)})
        resp.raise_for_status()
        return [str(i["item_id"]) for i in resp.json()["items"]]

    return answer
