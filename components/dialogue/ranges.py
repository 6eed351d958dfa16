"""Years and numbers in a message -> range constraints, with comparatives, alternatives and negation.

"90s", "the late eighties", "1995", "between 1990 and 1995", "from the 80s to the 90s", "after 2000",
"since 2010", "before 1990", "2005 or later", "under $20", "less than 30 dollars", "over $100". Alternatives
joined by "or"/"and" ("1995 or 2004", "80s and 90s") become ONE constraint with several ranges (never an
empty range); comparatives intersect ("after 1990 but before 2000"). A negation right before flips the
meaning: "nothing before 1990" = at least 1990, "not from the 90s" = not between 1990 and 1999.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.dialogue.query import Constraint

NUMBER_WORDS = {
    "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70,
    "eighties": 80, "nineties": 90, "noughties": 0, "aughts": 0,
}  # fmt: skip
_Q = r"(?:(?:early|mid|late)[\s-]*)?"
_DEC = _Q + (
    r"(?:the\s+)?(?:(?:[1-9]0|00|1[89]\d0|20\d0)s|twenties|thirties|forties|fifties|sixties|seventies|eighties"
    r"|nineties|noughties|aughts|(?:19|20)(?:twenties|thirties|forties|fifties|sixties|seventies|eighties"
    r"|nineties))"
)
_YR = r"(?:1[89]\d\d|20\d\d)"
_X = rf"(?:{_DEC}|{_YR})"
_NEG = r"(?:\b(?:nothing|not|no|never|none|anything but|except)\s+(?:\w+\s+)?)"
YEAR_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("between", re.compile(rf"\bbetween\s+(?:the\s+)?({_X})\s+(?:and|to|-)\s+(?:the\s+)?({_X})\b")),
    ("between", re.compile(
        rf"\bfrom\s+(?:the\s+)?({_X})\s*(?:to|until|till|through|thru|-|–)\s*(?:the\s+)?({_X})\b")),
    ("between", re.compile(rf"\b({_YR})\s*(?:-|–|to)\s*({_YR})\b")),
    ("min", re.compile(  # "2017-present", "from 2010 to now"
        rf"\b(?:from\s+|since\s+)?(?:the\s+)?({_X})\s*(?:-|–|to|until|till|through|thru)\s*(?:the\s+)?"
        r"(?:present|now|today|date)\b")),
    ("after", re.compile(
        rf"\b(after|since|post|newer than|later than|younger than)[\s-]+(?:the\s+)?({_X})\b")),
    ("before", re.compile(
        rf"\b(before|pre|older than|earlier than|until|till|up to|prior to)[\s-]+(?:the\s+)?({_X})\b")),
    ("min", re.compile(
        rf"\b(?:from\s+|in\s+)?(?:the\s+)?({_X})\s*(?:(?:on|onwards?|or later|or newer|and later|and newer|"
        r"and up|or after)\b|\+)")),
    ("max", re.compile(
        rf"\b(?:from\s+|in\s+)?(?:the\s+)?({_X})\s+"
        r"(?:or earlier|or older|or before|and earlier|and older)\b")),
    ("point", re.compile(rf"\b({_DEC}|{_YR})\b")),
]  # fmt: skip
_NUM = r"(\d+(?:[.,]\d+)?)"
_UNIT_WORDS = r"(?:dollars?|bucks|usd|euros?|eur|pounds?|gbp)"
_MONEY = rf"(?:[$€£]\s*{_NUM}|{_NUM}\s*(?:{_UNIT_WORDS}|[$€£]))"
NUMBER_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("between", re.compile(rf"\bbetween\s+{_MONEY}\s+(?:and|to|-)\s+{_MONEY}")),
    ("between", re.compile(rf"{_MONEY}\s*(?:-|–|to)\s*{_MONEY}")),
    ("max", re.compile(
        rf"\b(?:under|below|less than|cheaper than|at most|max(?:imum)?|up to|no more than|within|"
        rf"lower than|not more than)\s+{_MONEY}")),
    ("min", re.compile(
        rf"\b(?:over|above|more than|at least|min(?:imum)?|no less than|higher than|upwards of)\s+{_MONEY}")),
]  # fmt: skip


@dataclass(frozen=True)
class Found:
    constraint: Constraint | None  # None: understood, but the catalogue has no such facet
    start: int
    end: int
    kind: str  # "year" | "number"


def decade_or_year(text: str, max_year: int) -> tuple[int, int]:
    """Years covered by '1995', '90s', 'the 1980s', 'late 90s', 'nineties', 'nineteen-nineties'."""
    t = text.strip()
    if re.fullmatch(_YR, t):
        return int(t), int(t)
    qual = re.match(r"(early|mid|late)", t)
    t = re.sub(r"^(?:early|mid|late)[\s-]*", "", t)
    t = re.sub(r"^the\s+", "", t)
    century = None
    m = re.match(r"^(19|20)(\D.*)$", t)
    if m:
        century, t = int(m.group(1)) * 100, m.group(2)
    d = NUMBER_WORDS[t] if t in NUMBER_WORDS else int(t.rstrip("s"))
    if d < 100:
        if century is not None:
            d += century
        else:
            d = 2000 + d if 2000 + d <= max_year else 1900 + d
    a, b = {"early": (0, 3), "mid": (4, 6), "late": (7, 9)}[qual.group(1)] if qual else (0, 9)
    return d + a, d + b


def find_ranges(
    s: str, used: bytearray, year_facet: str | None, number_facets: dict[str, str | None], max_year: int
) -> list[Found]:
    """Year and number constraints in the normalised message ``s``; claims their characters in ``used``.

    ``number_facets`` maps number facet names to their unit ("$"); money amounts go to the facet whose unit is
    a currency sign (or the only number facet)."""
    out: list[Found] = []
    out += _last_years(s, used, year_facet, max_year)
    out += _years(s, used, year_facet, max_year)
    out += _numbers(s, used, number_facets)
    return out


_OR_NEXT = re.compile(r"\s*,?\s*(?:or|nor)\s+(?:from\s+)?(?:the\s+)?")


_LAST_YEARS = re.compile(
    r"\b(?:in |from |over |within )?(?:the )?(?:last|past) "
    r"(\d{1,2}|two|three|four|five|six|seven|eight|nine|ten|few|couple of) years\b"
    r"|\b(?:out |from |released )?(this) year\b"  # "came out this year": the catalogue's newest year
)
_COUNT_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "few": 3, "couple of": 2,
}  # fmt: skip


def _last_years(s: str, used: bytearray, facet: str | None, max_year: int) -> list[Found]:
    """ "from the last two years": the catalogue's newest years (its data ends at ``max_year``, so "the last
    two years" of a 2018 catalogue are 2017 and 2018); negated, everything before them."""
    out = []
    for m in _LAST_YEARS.finditer(s):
        if not _free(used, m.start(), m.end()):
            continue
        count = m.group(1) or "one"
        n = int(count) if count.isdigit() else _COUNT_WORDS[count]
        first = max_year - max(n, 1) + 1
        neg = _negated(s, m.start())
        _take(used, m.start() if neg is None else neg, m.end())
        said = s[m.start() : m.end()].strip()
        if neg is None:
            c = Constraint(facet=facet, op="at_least", low=first, said=said) if facet else None
        else:
            c = (
                Constraint(facet=facet, op="at_most", high=first - 1, said="nothing " + said)
                if facet
                else None
            )
        out.append(Found(c, m.start(), m.end(), "year"))
    return out


def _years(s: str, used: bytearray, facet: str | None, max_year: int) -> list[Found]:
    lo: float | None = None
    hi: float | None = None
    points: list[tuple[int, int]] = []
    spans: list[tuple[int, int]] = []
    negated_ranges: list[tuple[int, int, int, int]] = []
    for kind, pattern in YEAR_PATTERNS:
        for m in pattern.finditer(s):
            if not _free(used, m.start(), m.end()):
                continue
            neg = _negated(s, m.start())
            if neg is None and negated_ranges and _OR_NEXT.fullmatch(s[negated_ranges[-1][3] : m.start()]):
                neg = m.start()  # "nothing from the 80s or 90s": the negation holds across "or"
            if kind == "between":
                a1, b1 = decade_or_year(m.group(1), max_year)
                a2, b2 = decade_or_year(m.group(2), max_year)
                a, b = min(a1, a2), max(b1, b2)
            elif kind == "after":
                a0, b0 = decade_or_year(m.group(2), max_year)
                a, b = (a0 if m.group(1) == "since" else b0 + 1), None
            elif kind == "before":
                a0, b0 = decade_or_year(m.group(2), max_year)
                a, b = None, (b0 if m.group(1) in ("until", "till", "up to") else a0 - 1)
            elif kind == "min":
                a, b = decade_or_year(m.group(1), max_year)[0], None
            elif kind == "max":
                a, b = None, decade_or_year(m.group(1), max_year)[1]
            else:
                a, b = decade_or_year(m.group(1), max_year)
            _take(used, m.start(), m.end())
            if neg is not None:
                _take(used, neg, m.start())
                negated_ranges.append(
                    (a if a is not None else -1, b if b is not None else -1, m.start(), m.end())
                )
            elif kind == "point":
                points.append((a, b))  # type: ignore[arg-type]
                spans.append((m.start(), m.end()))
            else:
                lo = a if lo is None else (max(lo, a) if a is not None else lo)
                hi = b if hi is None else (min(hi, b) if b is not None else hi)
                spans.append((m.start(), m.end()))
    found: list[Found] = []
    said = " / ".join(s[a:b] for a, b in spans)
    if points and lo is None and hi is None:
        if len(points) == 1:
            found.append(_year(facet, "between", points[0][0], points[0][1], said, spans))
        else:
            ranges = tuple(sorted((float(a), float(b)) for a, b in dict.fromkeys(points)))
            c = Constraint(facet=facet, op="any_of_ranges", ranges=ranges, said=said) if facet else None
            found.append(Found(c, spans[0][0], spans[-1][1], "year"))
    elif lo is not None or hi is not None:
        for a, b in points:  # "after 1990, the 90s" -> intersect with the hull of the points
            lo = a if lo is None else max(lo, a)
            hi = b if hi is None else min(hi, b)
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo  # contradictory bounds: keep the span they name rather than nothing
        op = "between" if lo is not None and hi is not None else "at_least" if lo is not None else "at_most"
        found.append(_year(facet, op, lo, hi, said, spans))
    for a, b, start, end in negated_ranges:
        text = s[start:end]
        if a >= 0 and b >= 0:
            c = (
                Constraint(facet=facet, op="not_between", low=a, high=b, said="not " + text)
                if facet
                else None
            )
        elif a >= 0:  # "nothing after 2000" -> at most 2000 - 1... a is the first excluded year
            c = Constraint(facet=facet, op="at_most", high=a - 1, said="nothing " + text) if facet else None
        else:  # "nothing before 1990" -> at least 1990
            c = Constraint(facet=facet, op="at_least", low=b + 1, said="nothing " + text) if facet else None
        found.append(Found(c, start, end, "year"))
    return found


def _year(facet: str | None, op: str, lo: float | None, hi: float | None, said: str, spans) -> Found:  # noqa: ANN001
    c = Constraint(facet=facet, op=op, low=lo, high=hi, said=said) if facet else None  # type: ignore[arg-type]
    return Found(c, spans[0][0], spans[-1][1], "year")


def _numbers(s: str, used: bytearray, facets: dict[str, str | None]) -> list[Found]:
    out = []
    money = [n for n, unit in facets.items() if unit and unit in "$€£"] or (
        list(facets) if len(facets) == 1 else []
    )
    facet = money[0] if money else None
    for kind, pattern in NUMBER_PATTERNS:
        for m in pattern.finditer(s):
            if not _free(used, m.start(), m.end()):
                continue
            nums = [float(g.replace(",", ".")) for g in m.groups() if g]
            _take(used, m.start(), m.end())
            said = s[m.start() : m.end()].strip()
            if facet is None:
                out.append(Found(None, m.start(), m.end(), "number"))
                continue
            if kind == "between":
                c = Constraint(facet=facet, op="between", low=min(nums), high=max(nums), said=said)
            elif kind == "max":
                c = Constraint(facet=facet, op="at_most", high=nums[0], said=said)
            else:
                c = Constraint(facet=facet, op="at_least", low=nums[0], said=said)
            out.append(Found(c, m.start(), m.end(), "number"))
    return out


def _negated(s: str, start: int) -> int | None:
    """Start of a negation cue just before ``start`` ("nothing before 1990", "not from the 90s")."""
    m = re.search(_NEG + r"(?:from\s+|in\s+|made\s+|released\s+)?$", s[max(0, start - 40) : start])
    return max(0, start - 40) + m.start() if m else None


def _free(used: bytearray, a: int, b: int) -> bool:
    return not any(used[a:b])


def _take(used: bytearray, a: int, b: int) -> None:
    used[a:b] = b"\x01" * (b - a)
