"""Constraint extraction: one user message -> a ``ParsedTurn`` (rule-based, deterministic, no LLM).

Extractors run in a fixed order and each claims the characters it understood, so later ones never
re-read them: reset, references to the shown list ("the second one"), titles ("like The Matrix"),
years ("90s", "between 1990 and 1995"), critiques ("more recent", "lighter"), categories with their
negation scope ("no horror or war"), and what is left is the free text for the semantic match.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from components.dialogue import lexicon as lx
from components.dialogue.catalogue import Catalogue, fold

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*(?:[-/][a-z0-9]+)*|[,.;:!?()]")
_HARD_STOPS = frozenset({".", ";", "!", "?", "but"})
_LIST_JOINERS = frozenset({"and", "or", ",", "&", "nor"})
_Q = r"(?:(?:early|mid|late)[\s-]*)?"
_DEC = (
    _Q
    + r"(?:the\s+)?(?:(?:\d0|1[89]\d0|20\d0)s|twenties|thirties|forties|fifties|sixties|seventies|eighties|"
    r"nineties)"
)
_YR = r"(?:1[89]\d\d|20\d\d)"
_X = rf"(?:{_DEC}|{_YR})"
_BETWEEN = re.compile(rf"\bbetween\s+(?:the\s+)?({_X})\s+(?:and|to|-)\s+(?:the\s+)?({_X})\b")
_FROM_TO = re.compile(
    rf"\bfrom\s+(?:the\s+)?({_X})\s*(?:to|until|till|through|thru|-|–)\s*(?:the\s+)?({_X})\b"
)
_DASH = re.compile(rf"\b({_YR})\s*(?:-|–|to)\s*({_YR})\b")
_MIN1 = re.compile(rf"\b(after|since|post|newer than|later than|younger than)[\s-]+(?:the\s+)?({_X})\b")
_MIN2 = re.compile(
    rf"\b(?:from\s+|in\s+)?(?:the\s+)?({_X})\s*"
    r"(?:(?:on|onwards?|or later|or newer|and later|and newer|and up|or after)\b|\+)"
)
_MAX1 = re.compile(
    rf"\b(before|pre|older than|earlier than|until|till|up to|prior to)[\s-]+(?:the\s+)?({_X})\b"
)
_MAX2 = re.compile(
    rf"\b(?:from\s+|in\s+)?(?:the\s+)?({_X})\s+(?:or earlier|or older|or before|and earlier|and older)\b"
)
_DECADE = re.compile(rf"\b({_DEC})\b")
_YEAR = re.compile(rf"\b({_YR})\b")
_ORD_W = "|".join(sorted((re.escape(w) for w in lx.ORDINALS), key=len, reverse=True))
_ORD_N = r"(?:one|film|movie|item|pick|title|suggestion|result|option)"
_ORDINAL = re.compile(
    rf"(?:\b(?:the|that)\s+({_ORD_W})(?:\s+{_ORD_N})?\b|\b({_ORD_W})\s+{_ORD_N}\b|(?:\bnumber\s*|#)(\d{{1,2}})\b)"
)
_TRIGGER = re.compile(
    r"\b(" + "|".join(sorted((re.escape(t) for t in lx.REFERENCE_TRIGGERS), key=len, reverse=True)) + r")\s+"
)


@dataclass
class ParsedTurn:
    """What one message asked for; item references are dense ids of the catalogue."""

    reset: bool = False
    categories: list[str] = field(default_factory=list)
    rejected_categories: list[str] = field(default_factory=list)
    replace_categories: bool = False
    year_min: int | None = None
    year_max: int | None = None
    year_set: bool = False
    year_critique: str | None = None  # "newer" | "older"
    tone: int = 0  # +1 lighter, -1 darker
    positive_refs: list[int] = field(default_factory=list)
    negative_refs: list[int] = field(default_factory=list)
    rejected_items: list[int] = field(default_factory=list)
    unresolved_titles: list[str] = field(default_factory=list)
    text: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Tok:
    text: str
    start: int
    end: int


def normalise(message: str) -> str:
    """Lower-case with apostrophes unified; same length as the input so spans stay aligned."""
    s = message.replace("’", "'").replace("‘", "'").lower()
    s = re.sub(r"'(\d)", r" \1", s)  # '90s -> 90s
    return re.sub(r"(\d)'s\b", r"\1s ", s)  # 90's -> 90s


class MessageParser:
    """Parses messages against one catalogue (its categories, titles and years)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.reserved = lx.reserved_words()
        self.canonical: dict[str, str] = {}  # canonical synonym entry -> catalogue category name
        phrases: dict[str, set[str]] = {}
        for name in catalogue.category_names:
            canon = lx.canonical_for(name)
            own = fold(name)
            said = {own}
            if canon is None:
                said.add(lx.plural(own))
            else:
                self.canonical[canon] = name
                said.update(lx.CATEGORY_SYNONYMS[canon][1])
            for p in said:
                phrases.setdefault(_key(p), set()).add(name)
        for p, canons in lx.MULTI_CATEGORY.items():
            names = {self.canonical[c] for c in canons if c in self.canonical}
            if names:
                phrases.setdefault(_key(p), set()).update(names)
        self._phrases = {k: sorted(v) for k, v in phrases.items() if k}
        pats = sorted(
            {lx.phrase_pattern(p) for p in _all_phrases(catalogue.category_names)}, key=len, reverse=True
        )
        self._category_re = re.compile(r"\b(?:" + "|".join(pats) + r")\b") if pats else None
        bounds = catalogue.year_bounds
        self._max_year = bounds[1] if bounds else 2100

    def tone_weights(self, tone: int) -> dict[str, float]:
        """Catalogue category -> weight for a tone (+1 lighter, -1 darker)."""
        table = lx.LIGHT_TONE if tone > 0 else lx.DARK_TONE if tone < 0 else {}
        return {self.canonical[c]: w for c, w in table.items() if c in self.canonical}

    def parse(self, message: str, shown: Sequence[int] = ()) -> ParsedTurn:
        s = normalise(message)
        toks = [_Tok(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(s)]
        used = bytearray(len(s))
        out = ParsedTurn()
        for m in lx.RESET.finditer(s):
            out.reset = True
            _take(used, m.start(), m.end())
        if shown:
            self._ordinals(s, toks, used, list(shown), out)
        self._references(s, toks, used, out, message if len(message) == len(s) else s)
        self._years(s, used, out)
        self._critiques(s, used, out)
        negated = _negation_mask(toks, used)
        starts = [t.start for t in toks]
        if self._category_re is not None:
            for m in self._category_re.finditer(s):
                if not _free(used, m.start(), m.end()):
                    continue
                names = self._phrases.get(_key(m.group()), [])
                ti = bisect.bisect_left(starts, m.start())
                target = out.rejected_categories if ti < len(toks) and negated[ti] else out.categories
                target.extend(n for n in names if n not in target)
        out.categories = [c for c in out.categories if c not in out.rejected_categories]
        words = [
            t.text
            for i, t in enumerate(toks)
            if _free(used, t.start, t.end)
            and not negated[i]
            and t.text[0].isalpha()
            and t.text not in lx.STOPWORDS
            and t.text not in lx.NEGATION_CUES
        ]
        out.text = " ".join(words)
        return out

    # -- extractors -------------------------------------------------------------------------------------
    def _ordinals(self, s: str, toks: list[_Tok], used: bytearray, shown: list[int], out: ParsedTurn) -> None:
        for m in _ORDINAL.finditer(s):
            if not _free(used, m.start(), m.end()):
                continue
            word = m.group(1) or m.group(2)
            n = lx.ORDINALS[word] if word else int(m.group(3))
            pos = len(shown) - 1 if n == -1 else n - 1
            if not 0 <= pos < len(shown):
                continue
            _take(used, m.start(), m.end())
            item = shown[pos]
            context = set(_clause_words(toks, m.start(), m.end()))
            negative = bool(context & lx.ORDINAL_REJECT_CUES)
            if context & lx.ORDINAL_DISLIKE_CUES or (negative and "like" in context):
                out.negative_refs.append(item)
                out.rejected_items.append(item)
            elif negative:
                out.rejected_items.append(item)
            else:
                out.positive_refs.append(item)

    def _references(self, s: str, toks: list[_Tok], used: bytearray, out: ParsedTurn, original: str) -> None:
        starts = [t.start for t in toks]
        for m in _TRIGGER.finditer(s):
            if not _free(used, m.start(), m.end()):
                continue
            trigger = m.group(1)
            polarity = lx.REFERENCE_TRIGGERS[trigger]
            ti = bisect.bisect_left(starts, m.start())
            cue = None
            for j in range(ti - 1, max(-1, ti - 4), -1):
                if toks[j].text in lx.CLAUSE_BOUNDARIES:
                    break
                if toks[j].text in lx.NEGATION_CUES and _free(used, toks[j].start, toks[j].end):
                    cue = j
                    break
            if polarity > 0 and cue is not None:
                polarity = -1
            else:
                cue = None
            first = bisect.bisect_left(starts, m.end())
            found_any = False
            while first < len(toks):
                hit = self._match_title(toks, used, first)
                if hit is None:
                    break
                idx, last = hit
                found_any = True
                _take(used, m.start(), m.end())
                _take(used, toks[first].start, toks[last].end)
                (out.positive_refs if polarity > 0 else out.negative_refs).append(idx)
                if last + 2 < len(toks) and toks[last + 1].text in _LIST_JOINERS:
                    first = last + 2
                    continue
                break
            if found_any and cue is not None:
                _take(used, toks[cue].start, toks[cue].end)
            looks_like_title = first < len(toks) and original[toks[first].start].isupper()
            if not found_any and (trigger in lx.STRONG_TRIGGERS or looks_like_title):
                phrase = _phrase(toks, used, first)
                words = [t.text for t in phrase]
                soft = next((i for i, w in enumerate(words) if w in lx.SOFT_BOUNDARIES), len(words))
                if words[:soft] and not all(w in self.reserved for w in words[:soft]):
                    out.unresolved_titles.append(" ".join(words[:soft]))

    def _match_title(self, toks: list[_Tok], used: bytearray, first: int) -> tuple[int, int] | None:
        """(dense id, index of the last token) of a title starting at token ``first``, or None."""
        phrase = _phrase(toks, used, first)
        if not phrase or phrase[0].text in lx.REFERENCE_FILLERS:
            return None
        index = self.catalogue.titles_index
        for n in range(len(phrase), 0, -1):
            words = [t.text for t in phrase[:n]]
            if not words[-1][0].isalnum() or all(w in self.reserved or w.isdigit() for w in words):
                continue
            idx = index.exact(" ".join(words))
            if idx is not None:
                return idx, first + n - 1
        words = [t.text for t in phrase]
        soft = next((i for i, w in enumerate(words) if w in lx.SOFT_BOUNDARIES), len(words))
        best: tuple[int, float, int] | None = None
        for n in dict.fromkeys((soft, len(words))):
            cand = words[:n]
            if not cand or all(w in self.reserved for w in cand):
                continue
            hit = index.fuzzy(" ".join(cand))
            if hit is not None and (best is None or hit[1] > best[1]):
                best = (hit[0], hit[1], first + n - 1)
        return (best[0], best[2]) if best else None

    def _years(self, s: str, used: bytearray, out: ParsedTurn) -> None:
        lo: int | None = None
        hi: int | None = None

        def narrow(a: int | None, b: int | None) -> None:
            nonlocal lo, hi
            if a is not None:
                lo = a if lo is None else max(lo, a)
            if b is not None:
                hi = b if hi is None else min(hi, b)

        for pattern in (_BETWEEN, _FROM_TO, _DASH):
            for m in pattern.finditer(s):
                if _free(used, m.start(), m.end()):
                    first, second = self._span(m.group(1)), self._span(m.group(2))
                    narrow(min(first[0], second[0]), max(first[1], second[1]))
                    _take(used, m.start(), m.end())
        for m in _MIN1.finditer(s):
            if _free(used, m.start(), m.end()):
                a, b = self._span(m.group(2))
                narrow(a if m.group(1) == "since" else b + 1, None)
                _take(used, m.start(), m.end())
        for m in _MAX1.finditer(s):
            if _free(used, m.start(), m.end()):
                a, b = self._span(m.group(2))
                narrow(None, b if m.group(1) in ("until", "till", "up to") else a - 1)
                _take(used, m.start(), m.end())
        for pattern, side in ((_MIN2, 0), (_MAX2, 1)):
            for m in pattern.finditer(s):
                if _free(used, m.start(), m.end()):
                    a, b = self._span(m.group(1))
                    if side == 0:
                        narrow(a, None)
                    else:
                        narrow(None, b)
                    _take(used, m.start(), m.end())
        for pattern in (_DECADE, _YEAR):
            for m in pattern.finditer(s):
                if _free(used, m.start(), m.end()):
                    narrow(*self._span(m.group(1)))
                    _take(used, m.start(), m.end())
        if lo is not None or hi is not None:
            out.year_set, out.year_min, out.year_max = True, lo, hi

    def _span(self, text: str) -> tuple[int, int]:
        """Years covered by '1995', '90s', 'the 1980s', 'late 90s', 'nineties'."""
        t = text.strip()
        if re.fullmatch(_YR, t):
            return int(t), int(t)
        qual = re.match(r"(early|mid|late)", t)
        t = re.sub(r"^(?:early|mid|late)[\s-]*", "", t)
        t = re.sub(r"^the\s+", "", t)
        d = lx.NUMBER_WORDS[t] if t in lx.NUMBER_WORDS else int(t.rstrip("s"))
        if d < 100:
            d = 2000 + d if 2000 + d <= self._max_year else 1900 + d
        offsets = {"early": (0, 3), "mid": (4, 6), "late": (7, 9)}
        a, b = offsets[qual.group(1)] if qual else (0, 9)
        return d + a, d + b

    def _critiques(self, s: str, used: bytearray, out: ParsedTurn) -> None:
        for pattern, attr, value in (
            (lx.NEWER, "year_critique", "newer"),
            (lx.OLDER, "year_critique", "older"),
            (lx.LIGHTER, "tone", 1),
            (lx.DARKER, "tone", -1),
        ):
            for m in pattern.finditer(s):
                if _free(used, m.start(), m.end()):
                    setattr(out, attr, value)
                    _take(used, m.start(), m.end())
        if lx.INSTEAD.search(s):
            out.replace_categories = True


def _key(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]", "", fold(phrase))


def _all_phrases(names: Sequence[str]) -> set[str]:
    phrases: set[str] = set()
    for name in names:
        canon = lx.canonical_for(name)
        phrases.add(name)
        if canon is None:
            phrases.add(lx.plural(fold(name)))
        else:
            phrases.update(lx.CATEGORY_SYNONYMS[canon][1])
    canons = {lx.canonical_for(n) for n in names}
    phrases.update(p for p, cs in lx.MULTI_CATEGORY.items() if any(c in canons for c in cs))
    return {p for p in phrases if fold(p)}


def _free(used: bytearray, a: int, b: int) -> bool:
    return not any(used[a:b])


def _take(used: bytearray, a: int, b: int) -> None:
    used[a:b] = b"\x01" * (b - a)


def _phrase(toks: list[_Tok], used: bytearray, first: int, limit: int = 10) -> list[_Tok]:
    """Tokens from ``first`` up to a hard stop or an already-understood token (at most ``limit`` words)."""
    out: list[_Tok] = []
    for t in toks[first:]:
        if t.text in _HARD_STOPS or not _free(used, t.start, t.end) or len(out) >= limit:
            break
        out.append(t)
    return out


def _clause_words(toks: list[_Tok], start: int, end: int, back: int = 6, ahead: int = 4) -> list[str]:
    """Words around a span, within its clause (stops at punctuation and 'but')."""
    before = [t for t in toks if t.end <= start][-back:]
    after = [t for t in toks if t.start >= end][:ahead]
    words: list[str] = []
    for t in reversed(before):
        if t.text in lx.CLAUSE_BOUNDARIES and t.text not in ("and", "so", "just", "only", "also", "then"):
            break
        words.append(t.text)
    for t in after:
        if t.text in lx.CLAUSE_BOUNDARIES and t.text not in ("and", "so", "just", "only", "also", "then"):
            break
        words.append(t.text)
    return words


def _negation_mask(toks: list[_Tok], used: bytearray) -> list[bool]:
    """True for tokens inside the scope of a negation cue (up to the clause boundary)."""
    mask = [False] * len(toks)
    for i, t in enumerate(toks):
        if not _free(used, t.start, t.end):
            continue
        cue = t.text in lx.NEGATION_CUES or (i > 0 and (toks[i - 1].text, t.text) in lx.NEGATION_BIGRAMS)
        if not cue:
            continue
        for j in range(i + 1, min(len(toks), i + 1 + lx.NEGATION_WINDOW)):
            if toks[j].text in lx.CLAUSE_BOUNDARIES:
                break
            mask[j] = True
    return mask
