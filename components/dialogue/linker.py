"""Finding the catalogue's titles in what people type: entity linking by exact keys, typo repair with
rapidfuzz, and evidence rules against coincidental matches.

A title is linked when a span of the message equals one of its normalised keys ("Matrix, The (1999)" ->
"the matrix", "matrix"), after unknown words were repaired to the nearest title word ("incidious" ->
"insidious"). A span that is also an ordinary English word needs evidence: single-word titles that are common
words ("Saw", "Heat", "Paris", "It") are linked only after a cue ("loved Heat", "seen Saw"), in quotes, with a
year ("Heat (1995)") or, for rarer words, capitalised mid-sentence ("i believe inception and Mirrors"). A
match
followed by a sequel number that is not in the catalogue ("Toy Story 4") is reported unresolved, not linked
to the first film. Years written inside a title ("Blade Runner 2049", "Click (2006)") belong to the link.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from components.dialogue.text import Token, fold, informativeness, is_known_word, zipf

ARTICLES = ("the", "a", "an", "la", "le", "les", "l", "il", "el", "das", "die", "der", "los", "las")
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")
_TRAILING_ARTICLE = re.compile(r",\s*(" + "|".join(ARTICLES) + r")'?$", re.IGNORECASE)
_SEQUEL = re.compile(r"^(?:[2-9]|1[0-9]|ii|iii|iv|v|vi|part|chapter|returns|reloaded)$")
# words before a title that make a link likely ("loved Heat", "seen Saw", "like Alien")
CUES = frozenset(
    [
        "like",
        "likes",
        "liked",
        "love",
        "loved",
        "loves",
        "enjoy",
        "enjoyed",
        "enjoying",
        "seen",
        "saw",
        "watched",
        "watch",
        "watching",
        "hate",
        "hated",
        "dislike",
        "disliked",
        "called",
        "titled",
        "named",
        "than",
        "as",
        "unlike",
        "about",
        "adore",
        "adored",
        "favorite",
        "favourite",
        "fan",
        "similar",
        "vein",
        "reminiscent",
    ]
)
_SKIPPABLE = frozenset(
    {"the", "also", "really", "just", "movie", "film", "of", "to", "seeing", "is", "was"}
)  # "like the"
MAX_SPAN = 12
_INNER_PUNCT = frozenset({":", ",", "-", ".", "&", "!"})  # "Mystery Science Theater 3000: The Movie"


def title_keys(title: str) -> tuple[list[str], int | None]:
    """Normalised lookup keys of a catalogue title and the year it carries.

    ``"Matrix, The (1999)"`` -> ``["the matrix", "matrix"]``, 1999; a parenthesised alias
    (``"Seven (Se7en) (1995)"``) adds its own key; "&" also reads as "and". Memoised: an index build reads
    every title several times, and a running service rebuilds its index when items are added.
    """
    keys, year = _title_keys(title)
    return list(keys), year


@lru_cache(maxsize=1 << 17)
def _title_keys(title: str) -> tuple[tuple[str, ...], int | None]:
    year: int | None = None
    t = title.strip()
    m = _YEAR_SUFFIX.search(t)
    if m:
        year = int(m.group(1))
        t = t[: m.start()]
    aliases = re.findall(r"\(([^)]*)\)", t)
    t = re.sub(r"\([^)]*\)", " ", t).strip()
    keys: list[str] = []
    m2 = _TRAILING_ARTICLE.search(t)
    if m2:
        base = t[: m2.start()]
        keys += [fold(f"{m2.group(1)} {base}"), fold(base)]
    else:
        key = fold(t)
        keys.append(key)
        first, _, rest = key.partition(" ")
        if first in ARTICLES and rest:
            keys.append(rest)
    for alias in aliases:
        a = fold(alias)
        if a and not a.isdigit() and not a.startswith("a k a"):
            keys.append(a)
        elif a.startswith("a k a ") and len(a) > 6:
            keys.append(a[6:])
    keys += [k.replace(" and ", " ") for k in keys if " and " in k]
    return tuple(k for k in dict.fromkeys(keys) if k), year


def display_title(title: str, year: float | None = None) -> str:
    """Move a trailing article to the front and show the year when known: ``The Matrix (1999)``."""
    t = title.strip()
    m = _YEAR_SUFFIX.search(t)
    suffix = ""
    if m:
        suffix, t = f" ({m.group(1)})", t[: m.start()]
    elif year is not None and np.isfinite(year):
        suffix = f" ({int(year)})"
    alias = ""
    m_alias = re.search(r"\s*(\([^)]*\))\s*$", t)
    if m_alias:
        alias, t = " " + m_alias.group(1), t[: m_alias.start()]
    m_art = _TRAILING_ARTICLE.search(t)
    if m_art:
        art = m_art.group(0).lstrip(", ").strip()
        t = f"{art} {t[: m_art.start()]}" if not art.endswith("'") else f"{art}{t[: m_art.start()]}"
    return f"{t}{alias}{suffix}"


@dataclass(frozen=True)
class Link:
    """A title found in the message: dense item id, token span [first, last], evidence."""

    item: int
    first: int
    last: int
    evidence: float
    cue: str | None = None


@dataclass(frozen=True)
class Unresolved:
    """A title-like span that names nothing in the catalogue ("Toy Story 4")."""

    text: str
    first: int
    last: int


# nouns for kinds of items: a lower-case word right before one describes the kind ("heist movies",
# "heist movie from the 60s")
# "set in", "takes place in", "filmed in": what follows is where the item is set
SETTING_CUES = frozenset({"set", "place", "located", "filmed", "shot"})
_KIND_NOUNS = frozenset(
    {"movies", "films", "flicks", "shows", "ones", "books", "products", "items"}
    | {"movie", "film", "flick", "show", "book", "product", "item"}
)


# times typed in lower case are times, not the films named so ("last night", "tonight", "yesterday")
# words right after a capitalised title in a question about it ("when was Heat released?", "when did Heat
# come out?", "what is Heat about?", "is Heat any good?", "what year is Heat from?")
_ASKED_AFTER = frozenset({"released", "come", "came", "premiered", "about", "any", "worth", "from"})
# ... and right before it ("who is in Heat?", "who stars in Heat?")
_CAST_BEFORE = frozenset({"is", "was", "'s", "stars", "starred", "acted", "plays", "played", "else"})
_TIME_PHRASES = frozenset(
    {"last night", "tonight", "yesterday", "today", "tomorrow", "this weekend", "last weekend", "next week",
     "last week", "this week", "last year", "this year", "next year", "this morning", "the other day"}
)  # fmt: skip


@dataclass
class TitleLinker:
    """Exact keys after typo repair, with evidence rules (see the module docstring)."""

    keys: dict[str, list[int]]
    years: np.ndarray
    popularity: np.ndarray
    title_words: list[str] = field(default_factory=list)
    _word_set: frozenset[str] = field(init=False, repr=False)
    _max_len: int = field(init=False, repr=False)
    _squashed: dict[str, list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._word_set = frozenset(self.title_words)
        self._max_len = min(MAX_SPAN, max((k.count(" ") + 1 for k in self.keys), default=1))
        # keys of several words without their spaces: people write "spiderman", "castaway", "sorcerers
        # stone" for Spider-Man, Cast Away and Sorcerer's Stone (folded: "sorcerer s stone")
        self._squashed = {}
        for key, items in self.keys.items():
            squashed = key.replace(" ", "")
            if " " in key and len(squashed) >= 6 and squashed not in self.keys:
                self._squashed.setdefault(squashed, []).extend(items)

    @classmethod
    def build(
        cls, titles: Sequence[str], years: np.ndarray, popularity: np.ndarray, aliases: bool = True
    ) -> TitleLinker:
        """``aliases``: parenthesised parts are other names of the title ("Seven (Se7en)"), as in film
        catalogues; product titles use parentheses for specifications ("(PLA+)"), so they are not keys."""
        keys: dict[str, list[int]] = {}
        for idx, title in enumerate(titles):
            found = title_keys(title)[0]
            for key in found if aliases else found[:2]:
                keys.setdefault(key, []).append(idx)
        words = sorted({w for k in keys for w in k.split() if len(w) >= 4})
        return cls(keys, np.asarray(years, dtype=np.float64), np.asarray(popularity, dtype=np.float64), words)

    def _keys_starting(self, key: str) -> Iterator[str]:
        """The title keys that begin with the words ``key`` and go on ("star wars" -> "star wars episode
        iv a new hope", ...), in sorted order."""
        import bisect

        sorted_keys = self.__dict__.setdefault("_sorted_keys", sorted(self.keys))
        for k in sorted_keys[bisect.bisect_left(sorted_keys, key + " ") :]:
            if not k.startswith(key + " "):
                return
            yield k

    def prefix_items(self, key: str) -> list[int]:
        """The items whose titles begin with the words ``key`` ("harry potter"), most popular first."""
        found = {c for k in self._keys_starting(key) for c in self.keys[k]}
        return sorted(found, key=lambda c: (-float(self.popularity[c]), c))

    def prefix_count(self, key: str, limit: int = 2) -> int:
        """How many titles begin with the words ``key`` ("star wars" -> the Star Wars films), up to
        ``limit``."""
        count = 0
        for k in self._keys_starting(key):
            count += len(self.keys[k])
            if count >= limit:
                break
        return count

    def repair(self, word: str) -> str:
        """The nearest title word for an unknown word of 5+ letters ("incidious" -> "insidious")."""
        if len(word) < 5 or word in self._word_set or is_known_word(word) or not word.isalpha():
            return word
        from rapidfuzz import fuzz, process

        hit = process.extractOne(word, self.title_words, scorer=fuzz.ratio, score_cutoff=80)
        return str(hit[0]) if hit else word

    def lookup(self, text: str, year: int | None = None) -> int | None:
        """Dense id of a title typed as ``text`` ("the matrix", "Matrix (1999)"), or None."""
        m = re.search(r"\(?\b(1[89]\d\d|20\d\d)\)?\s*$", text.strip())
        if m and m.start() > 0 and year is None:
            year, text = int(m.group(1)), text.strip()[: m.start()]
        key = fold(text)
        cands = self.keys.get(key)
        if cands is None:
            first, _, rest = key.partition(" ")
            cands = self.keys.get(rest) if first in ARTICLES and rest else None
        if cands is None and key:
            words = [self.repair(w) for w in key.split()]
            cands = self.keys.get(" ".join(words))
        return self._pick(cands, year) if cands else None

    def fuzzy(self, text: str, cutoff: float = 85.0) -> int | None:
        """Closest title to ``text`` (rapidfuzz ratio >= cutoff), for titles given on purpose (an LLM's)."""
        from rapidfuzz import fuzz, process

        found = self.lookup(text)
        if found is not None:
            return found
        key = fold(re.sub(r"\(\d{4}\)", "", text))
        if len(key) < 4:
            return None
        hit = process.extractOne(key, list(self.keys), scorer=fuzz.ratio, score_cutoff=cutoff)
        return self._pick(self.keys[hit[0]], None) if hit else None

    def link(self, tokens: Sequence[Token], free: Sequence[bool]) -> tuple[list[Link], list[Unresolved]]:
        """Titles in the message's tokens (only where ``free[i]``), longest spans first, no overlaps."""
        words = [self.repair(t.text) if t.text[0].isalnum() else t.text for t in tokens]
        n = len(tokens)
        sentence_start = _sentence_starts(tokens)
        alpha = [t for t in tokens if t.text[0].isalpha()]
        caps = sum(t.capitalised for t in alpha)
        all_lower = caps == 0 or caps >= 0.7 * len(alpha) > 2  # capitals say nothing here
        found: list[Link] = []
        unresolved: list[Unresolved] = []
        taken = [not f for f in free]
        for length in range(min(self._max_len + 3, n), 0, -1):
            for i in range(0, n - length + 1):
                j = i + length - 1
                span = words[i : j + 1]
                if any(taken[i : j + 1]) or not (span[0][0].isalnum() and span[-1][0].isalnum()):
                    continue
                if not all(w[0].isalnum() or w in _INNER_PUNCT for w in span):
                    continue
                key = " ".join(w for w in span if w[0].isalnum())
                if not key.replace(" ", "").isalnum():  # "face/off", "spider-man": keys are folded
                    key = fold(key)
                if key.count(" ") + 1 > self._max_len:
                    continue
                cands = self.keys.get(key) or self._squashed_lookup(key, tokens[i : j + 1])
                if cands is None:
                    continue
                if j + 1 < n and _SEQUEL.match(words[j + 1]) and not taken[j + 1]:
                    unresolved.append(Unresolved(f"{key} {words[j + 1]}", i, j + 1))
                    for p in range(i, j + 2):
                        taken[p] = True
                    continue
                if not all_lower and _inside_longer_name(tokens, i, j, sentence_start):
                    continue  # "Once upon a time in Hollywood", "Keanu Reeves": part of a longer name
                year, year_tok = _year_after(words, j)
                cue = _cue_before(words, i, found)
                alnum = [p for p in range(i, j + 1) if words[p][0].isalnum()]
                evidence = self._evidence([words[p] for p in alnum], [tokens[p] for p in alnum], cue, year,
                                          tokens, i, j, sentence_start, all_lower)  # fmt: skip
                if evidence < 1.0:
                    continue
                item = self._pick(cands, year)
                last = j + year_tok
                found.append(Link(item, i, last, evidence, cue))
                for p in range(i, last + 1):
                    taken[p] = True
        found += self._fuzzy_runs(tokens, taken, sentence_start)
        found += self._fuzzy_lowercase(tokens, taken)
        found.sort(key=lambda lk: lk.first)
        return found, unresolved

    def _squashed_lookup(self, key: str, span: Sequence[Token]) -> list[int] | None:
        """Titles whose words, run together, are the span's ("spiderman"), as repaired or as typed."""
        found = self._squashed.get(key.replace(" ", ""))
        if found is None:
            typed = fold(" ".join(t.text for t in span if t.text[0].isalnum())).replace(" ", "")
            found = self._squashed.get(typed)
        return found

    def _fuzzy_runs(self, tokens: Sequence[Token], taken: list[bool], starts: set[int]) -> list[Link]:
        """Capitalised runs of 2-6 words that match a title up to typos ("Inglorious Basterds")."""
        from rapidfuzz import fuzz, process

        out = []
        i = 0
        while i < len(tokens):
            j = i
            while j < len(tokens) and not taken[j] and tokens[j].capitalised and tokens[j].text[0].isalpha():
                j += 1
            run = list(range(i, j))
            if run and run[0] in starts and len(run) > 2:
                run = run[1:]  # a sentence's first word is capitalised anyway
            if 2 <= len(run) <= 6:
                text = " ".join(tokens[p].text for p in run)
                hit = process.extractOne(text, self._by_words(len(run)), scorer=fuzz.ratio, score_cutoff=88)
                if hit is not None:
                    out.append(Link(self._pick(self.keys[hit[0]], None), run[0], run[-1], 1.0, None))
                    for p in run:
                        taken[p] = True
            i = max(j, i + 1)
        return out

    def _fuzzy_lowercase(self, tokens: Sequence[Token], taken: list[bool]) -> list[Link]:
        """Lower-case titles typed with a typo ("i lovd forest gump"): a span of 2-4 words around a rare
        title word (not an English word: "gump", "shawshank") that matches a title up to typos."""
        from rapidfuzz import fuzz, process

        out: list[Link] = []
        for p, t in enumerate(tokens):
            if taken[p] or t.capitalised or t.text not in self._word_set or zipf(t.text) >= 3.5:
                continue
            best = None
            alone = self._only_title_starting(t.text) if len(t.text) >= 6 and zipf(t.text) < 2.8 else None
            if alone is not None:  # "shawshank": the one title that begins with a rare word
                best = (100.0, [p], alone)
            for n in (2, 3, 4):
                for a in range(max(0, p - n + 1), p + 1):
                    span = list(range(a, a + n))
                    if span[-1] >= len(tokens) or any(taken[x] or not tokens[x].text.isalpha() for x in span):
                        continue
                    text = " ".join(tokens[x].text for x in span)
                    hit = process.extractOne(text, self._by_words(n), scorer=fuzz.ratio, score_cutoff=88)
                    if hit is not None and hit[1] >= 100:
                        continue  # typed right: the exact linker's evidence rules already said no
                    if hit is not None and (best is None or hit[1] > best[0] or len(span) > len(best[1])):
                        best = (hit[1], span, hit[0])
            if best is not None:
                _, span, key = best
                out.append(Link(self._pick(self.keys[key], None), span[0], span[-1], 1.0, None))
                for x in span:
                    taken[x] = True
        return out

    def _only_title_starting(self, word: str) -> str | None:
        """The key of the one title whose first word is ``word`` (and that is not the word alone)."""
        found = list(itertools.islice(self._keys_starting(word), 2))
        return found[0] if len(found) == 1 and word not in self.keys else None

    def _by_words(self, n: int) -> list[str]:
        cache = self.__dict__.setdefault("_by_words_cache", {})
        if n not in cache:
            cache[n] = [k for k in self.keys if k.count(" ") + 1 == n]
        return cache[n]

    def _evidence(
        self,
        span_words: list[str],
        span_tokens: Sequence[Token],
        cue: str | None,
        year: int | None,
        tokens: Sequence[Token],
        i: int,
        j: int,
        sentence_start: set[int],
        all_lower: bool,
    ) -> float:
        """>= 1 means link. Rare words, length, capitals, cues, quotes and years add evidence."""
        content = [w for w in span_words if w not in ARTICLES] or span_words
        rarity = max(informativeness(w) for w in content)
        score = rarity + 0.35 * (len(content) - 1)
        caps = [t.capitalised for t in span_tokens if t.text not in ARTICLES]
        if not all_lower and caps and all(caps) and not (len(content) == 1 and i in sentence_start):
            score += 0.3
        asked = any(caps) and (
            (j + 1 < len(tokens) and tokens[j + 1].text in _ASKED_AFTER)
            or (i > 1 and tokens[i - 1].text == "in" and tokens[i - 2].text in _CAST_BEFORE)
        )
        if cue is not None or asked:  # "loved Heat"; "when was Heat released?"
            score += 0.5
        if year is not None:
            score += 0.6
        quoted = i > 0 and tokens[i - 1].text == '"' and j + 1 < len(tokens) and tokens[j + 1].text == '"'
        if quoted:
            score += 0.6
        if i > 0 and tokens[i - 1].text in ("a", "an") and (len(content) == 1 or not any(caps)):
            score -= 0.3  # "an Oscar", "a Date", "a scary movie": a common noun phrase, not a title
        if i > 0 and tokens[i - 1].text in ("about", "on", "involving") and not any(caps) and not quoted:
            score -= 1.0  # "documentaries about true crime": a topic, not the film True Crime
        article = i > 0 and tokens[i - 1].text in ("a", "an")
        described = article or cue is None
        if described and j > i and tokens[j].text in _KIND_NOUNS and not any(caps) and not quoted:
            # "not a superhero movie", "scary movie but not about ghosts": a description, not Superhero Movie
            score -= 1.0
        if j + 1 < len(tokens) and tokens[j + 1].text in _KIND_NOUNS and not any(caps) and not quoted:
            score -= 0.3  # "any good heist movies?", "zombie films": a kind of item, not the film Heist
        if i > 1 and tokens[i - 1].text in ("in", "at") and tokens[i - 2].text in SETTING_CUES and not quoted:
            score -= 1.5  # "takes place in Tokyo", "set in Paris": a place, not the film Tokyo!
        if not any(caps) and " ".join(content) in _TIME_PHRASES:
            score -= 1.0  # "what did you watch last night?": a time, not Last Night (1998)
        return score / 0.75  # a rare single word (informativeness >= 0.75) links on its own

    def _pick(self, cands: list[int], year: int | None) -> int:
        if year is not None:
            for tolerance in (0, 1):
                same = [
                    c for c in cands if np.isfinite(self.years[c]) and abs(self.years[c] - year) <= tolerance
                ]
                if same:
                    cands = same
                    break
        return max(cands, key=lambda c: (float(self.popularity[c]), -c))


def _inside_longer_name(tokens: Sequence[Token], i: int, j: int, starts: set[int]) -> bool:
    """A capitalised span followed (or preceded, mid-sentence) by more capitalised words."""
    if not all(t.capitalised for t in tokens[i : j + 1] if t.text not in ARTICLES):
        return False
    after = j + 1 < len(tokens) and tokens[j + 1].capitalised and tokens[j + 1].text.isalpha()
    after = after and tokens[j + 1].text not in ("i", "and", "or")
    before = i > 0 and i not in starts and tokens[i - 1].capitalised and tokens[i - 1].text.isalpha()
    before = before and tokens[i - 1].text not in ("i", "the", "and", "or") and (i - 1) not in starts
    return bool(after or before)


def _year_after(words: list[str], j: int) -> tuple[int | None, int]:
    """A year right after a title ("heat 1995", "heat ( 1995 )"): (year, tokens it takes)."""
    k = j + 1
    if k < len(words) and words[k] == "(":
        k += 1
    if k < len(words) and re.fullmatch(r"1[89]\d\d|20\d\d", words[k]):
        taken = k - j
        if k + 1 < len(words) and words[k + 1] == ")":
            taken += 1
        return int(words[k]), taken
    return None, 0


def _cue_before(words: list[str], i: int, found: list[Link]) -> str | None:
    """A cue word in the two tokens before ``i``, or a title list continuing ("X and Y", "X, Y")."""
    for back in (1, 2, 3):
        k = i - back
        if k < 0:
            return None
        w = words[k]
        if w in CUES:
            return w
        if w in ("and", "or", ",", "&") and any(lk.last == k - 1 and lk.cue for lk in found):
            return next(lk.cue for lk in found if lk.last == k - 1)
        if w not in ARTICLES and w not in _SKIPPABLE:
            return None
    return None


def _sentence_starts(tokens: Sequence[Token]) -> set[int]:
    starts = {0}
    for n, t in enumerate(tokens[:-1]):
        if t.text in (".", "!", "?", ";", ":", '"'):
            starts.add(n + 1)
    return starts
