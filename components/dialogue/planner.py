"""Planners turn a user message into a typed ``Query``. ``BuiltinPlanner`` is fast, offline and uses no LLM:
title linking (components.dialogue.linker), years and numbers (ranges), facet phrases from the catalogue's
vocabulary and learnt synonyms (index), negation scope, stances from cue words and VADER sentiment, critiques,
references to the shown list, and intent. ``components.dialogue.llm.LLMPlanner`` produces the same Query from
an OpenAI-compatible endpoint and falls back to this one.

Extractors run in a fixed order and each claims the tokens it understood, so later ones never re-read them:
language -> reset -> shown-list references -> titles -> years/numbers -> facet phrases -> critiques ->
free words (soft text, or avoided text inside a negation).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import numpy as np

from components.dialogue import grammar as g
from components.dialogue.index import (
    EXCLUDES,
    POPULARITY,
    PREFERS,
    RATING,
    RATING_SHRINK,
    RATINGS,
    CatalogueIndex,
    plural,
)
from components.dialogue.language import detect_language
from components.dialogue.linker import SETTING_CUES, Link
from components.dialogue.query import ASKED_OPS, Constraint, Intent, ItemRef, Query, Stance, names_value
from components.dialogue.ranges import find_ranges
from components.dialogue.text import Token, fold, informativeness, is_known_word, normalise, tokenize, zipf


@dataclass
class PlanContext:
    """What the conversation showed before this message (dense ids)."""

    shown: list[int] = field(default_factory=list)  # the last list shown, in order
    suggested: list[int] = field(default_factory=list)  # items the assistant named in its last turn
    assistant_asked: bool = False  # the last assistant turn was a question
    question: str = ""  # ... and that question ("Do you want something romantic again?")


class Planner(Protocol):
    name: str

    def plan(self, message: str, context: PlanContext) -> Query: ...


@lru_cache(maxsize=1)
def _sentiment():  # noqa: ANN202 - vaderSentiment has no stubs
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


# politeness says nothing of a stance ("I've seen all of those, more please" is not liking them)
_POLITE = re.compile(r"\b(?:please|pls|plz)\b")


def sentiment(text: str) -> float:
    """VADER compound score in [-1, 1], politeness words left out."""
    return float(_sentiment().polarity_scores(_POLITE.sub(" ", text))["compound"])


_TIME_WORDS = frozenset(  # "the last two years", "the last year": a time, not shown items
    {"years", "decades", "months", "weeks", "days", "hours", "minutes", "times", "seasons", "episodes",
     "centuries", "nights", "year", "decade", "month", "week", "day", "night", "century"}
)  # fmt: skip
# units of a number facet that holds how long an item takes (running time, reading time)
_TIME_UNITS = frozenset({"min", "mins", "minute", "minutes", "h", "hr", "hrs", "hour", "hours"})
_LIST_JOINS = frozenset({"and", "or", "nor", ",", "&", "/"})  # between two avoided phrases
_FAVOURITE = re.compile(r"\b(?:favou?rites?|faves?)\b")
_NEGATED = re.compile(r"\b(?:not|never|no)\b|n't\b")
POPULAR_SHARE = 0.1  # "popular": the most popular tenth of the catalogue; "lesser known": the rest
WELL_RATED_SHARE = 0.2  # "highly rated": the best-rated fifth of the items rated often enough


class BuiltinPlanner:
    """Rules over the catalogue index; deterministic; a turn costs about a millisecond."""

    name = "builtin"

    def __init__(self, index: CatalogueIndex) -> None:
        self.index = index
        self._max_phrase = max((p.count(" ") + 1 for p in index.phrases), default=1)
        year = index.year_facet
        self._year_facet = year.spec.name if year else None
        bounds = year.bounds if year else None
        self._max_year = int(bounds[1]) if bounds else 2100
        self._number_facets = {n: f.spec.unit for n, f in index.numbers.items() if f.spec.kind == "number"}
        self._rating_facet = any(w in f.name for f in index.spec.facets for w in ("rating", "review"))
        self._people_facet = any(
            w in f.name for f in index.spec.facets for w in ("director", "actor", "cast", "people")
        )
        self._duration_facets = [n for n, u in self._number_facets.items() if fold(u or "") in _TIME_UNITS]
        self._nouns = {fold(w) for w in index.spec.item_noun} | {"movie", "movies", "film", "films", "item"}
        self._names = {f.name for f in index.spec.facets if f.proper_names}
        self._audience = audience_constraints(index)
        self._facet_names = {w for f in index.spec.facets for w in (fold(f.name), plural(fold(f.name)))}
        self._surnames = surnames(index)

    # ------------------------------------------------------------------------------------------------
    def plan(self, message: str, context: PlanContext | None = None) -> Query:
        context = context or PlanContext()
        message = g.child_ages_as_kids(g.chat_slang(message))
        toks = tokenize(message)
        s = normalise(message)
        q = Query(planner=self.name)
        words = [t.text for t in toks if t.text[0].isalnum()]
        free = [True] * len(toks)
        used = bytearray(len(s))
        links, unresolved = self.index.linker.link(toks, free)
        linked_share = sum(lk.last - lk.first + 1 for lk in links) / max(1, len(words))
        lang = detect_language(message, words)
        if lang not in ("en", "zxx") and linked_share < 0.5:
            q.language, q.intent = lang, "other_language"
            return q
        if g.RESET.search(s):
            q.intent = "reset"
            for m in g.RESET.finditer(s):
                _claim(toks, free, used, m.start(), m.end())
        negated = _negation_mask(toks)
        self._shown_refs(s, toks, free, used, negated, context, q)
        self._other_values(s, toks, free, used, context, q)
        links, unresolved = self.index.linker.link(toks, free)
        people = [lk for lk in links if self._names_a_person(lk, toks)]
        links = sorted(
            (lk for lk in links if not self._names_a_value(lk, toks) and lk not in people),
            key=lambda lk: lk.first,
        )
        for lk in people:  # searched in the texts and titles as a name, as "Tarantino" is
            q.unresolved_titles.append(message[toks[lk.first].start : toks[lk.first].end])
        # the titles' own words and facet values ("Raging Bull", "a horror film") say nothing about liking
        quiet = {p for lk in links for p in range(lk.first, lk.last + 1)}
        quiet |= {i for i, t in enumerate(toks) if self.index.phrases.get(fold(t.text))}
        previous: tuple[int, Stance] | None = None  # (last token, stance) of the title before
        for lk in links:
            for p in range(lk.first, lk.last + 1):
                free[p] = False
                used[toks[p].start : toks[p].end] = b"\x01" * (toks[p].end - toks[p].start)
            stance = self._stance(toks, lk.first, lk.last, negated, lk.cue, quiet)
            if previous and _coordinated(toks, previous[0], lk.first) and not _says_own(toks, lk.last):
                stance = previous[1]  # "not into Saw and The Purge": one stance for both
            compared = stance == "liked" and g.asks_about_shown(s, toks[lk.first].start)
            if compared:
                stance = "mentioned"  # "Is the movie a tearjerker like Philadelphia?": a comparison asked
            plural = _series_after(toks, lk.last)
            seen_all = not negated[lk.first] and _seen_series(toks, lk.first, lk.last)
            similar = (
                not compared
                and stance in ("liked", "mentioned", "seen")
                and _asks_similar(toks, lk.first, lk.last)
            )
            if seen_all:
                stance = "seen"
            elif similar and stance == "mentioned":
                stance = "liked"  # "something similar to what I watched yesterday: Gone Girl"
            previous = (lk.last, stance)
            q.refs.append(self._ref(lk.item, stance))
            if similar and not seen_all:
                if q.critique is None:
                    q.critique = "more_like"
                if q.critique == "more_like" and q.critique_of is None:
                    q.critique_of = self.index.item_ids[lk.item]
            if plural and (negated[lk.first] or seen_all):
                key = fold(self.index.titles[lk.item].split(" (")[0])
                q.constraints.append(Constraint(facet="title", op="is_not", value=" ".join(
                    t.text for t in toks[lk.first : lk.last + 1]), said=f"not the {key} ones"))  # fmt: skip
        for un in unresolved:
            q.unresolved_titles.append(un.text)
            for p in range(un.first, un.last + 1):
                free[p] = False
        places = self._places(toks, free, negated, q)
        self._franchises(toks, free, negated, q)
        for found in find_ranges(s, used, self._year_facet, self._number_facets, self._max_year):
            _claim(toks, free, used, found.start, found.end)
            c = found.constraint
            if c is None and found.kind == "number" and "prices" not in q.unsupported:
                q.unsupported.append("prices")  # "under $20" on a catalogue without prices
            if c is not None and c.op in ASKED_OPS and g.describes_not_wishes(s, found.start, found.end):
                c = c.model_copy(update={"op": "prefer"})  # a taste, not a filter
            if c is not None:
                q.constraints.append(c)
        self._reception(s, toks, free, used, negated, q)
        self._unanswerable(s, toks, free, used, q)
        # "surprise me", "never heard of it", "big on": no search or avoided words
        for m in [*g.LEFT_TO_US.finditer(s), *g.NOT_HEARD.finditer(s), *g.FONDNESS.finditer(s)]:
            _claim(toks, free, used, m.start(), m.end())
        for m in g.COUNT_ASK.finditer(s):  # "give me 3 thrillers", "a couple of comedies": how many
            if not any(used[m.start() : m.end()]):
                n = (m.group("n") or m.group("some")).split()[0]
                q.count = min(20, int(n) if n.isdigit() else g.SMALL_NUMBERS.get(n) or g.COUNTS[n])
                _claim(toks, free, used, m.start(), m.end())
        self._toned_down(s, toks, free, used, q)
        narrower = self._facets(s, toks, free, negated, q)
        self._critiques(s, toks, free, used, q)
        qualities, more_of = self._comparatives(toks, free, context)
        avoiding = [n or s for n, s in zip(negated, _seen_all_mask(toks), strict=True)]
        self._free_text(toks, free, avoiding, q)
        q.soft = " ".join(dict.fromkeys([*q.soft.split(), *narrower, *places, *qualities]))
        _settle_conflicts(q)
        _both(s, q)
        if g.SOMETHING_DIFFERENT.search(s):  # "I usually watch comedies but ... something different"
            q.constraints = [
                c.model_copy(update={"op": "is_not"}) if c.op == "prefer" and c.value is not None else c
                for c in q.constraints
            ]
        self._unresolved_after_cues(message, toks, free, avoiding, q)
        if context.question and g.AFFIRMATIVE.match(s):
            _agree(q, self.plan(context.question))
        elif context.question and g.NEGATIVE_ANSWER.match(s):
            _decline(q, self.plan(context.question))
        q.intent = self._intent(q, toks, words, s, context, links)
        if more_of and q.intent in ("recommend", "off_topic", "chit_chat"):
            q.intent = "refine"
        return q

    # -- extractors -----------------------------------------------------------------------------------
    def _names_a_person(self, lk: Link, toks: list[Token]) -> bool:
        """A lone name that the catalogue's texts hold as a person's surname ("Alfred Hitchcock" in the tags
        of his films) is that person, not the film named after them: "old thrillers, Hitchcock especially"
        linked *Hitchcock* (2012). With its year or in quotes it stays the title."""
        if lk.first != lk.last or not toks[lk.first].capitalised:
            return False
        quoted = lk.first > 0 and toks[lk.first - 1].text in ('"', "'", "“")
        dated = lk.last + 2 < len(toks) and toks[lk.last + 1].text == "(" and toks[lk.last + 2].text.isdigit()
        return not quoted and not dated and fold(toks[lk.first].text) in self._surnames

    def _names_a_value(self, lk: Link, toks: list[Token]) -> bool:
        """A lone lowercase word that is a facet value's own name ("she likes romance") is the value, not
        the film *Romance*: written with a capital, in quotes or with its year it stays a title."""
        if lk.first != lk.last or toks[lk.first].capitalised:
            return False
        quoted = lk.first > 0 and toks[lk.first - 1].text in ('"', "'", "“")
        rows = self.index.phrases.get(fold(toks[lk.first].text), [])
        return not quoted and any(w >= 1.0 for _, _, w in rows)

    def _ref(self, idx: int, stance: Stance) -> ItemRef:
        return ItemRef(item_id=self.index.item_ids[idx], title=self.index.label(idx), stance=stance)

    def _stance(
        self, toks: list[Token], first: int, last: int, negated: list[bool], cue: str | None,
        quiet: Collection[int] = (),
    ) -> Stance:  # fmt: skip
        before = [t.text for t in toks[max(0, first - 4) : first]]
        clause = _clause_text(toks, first, last)
        if negated[first]:
            if cue in ("like", "unlike") or "like" in before or "unlike" in before:
                return "disliked"  # "nothing like Alien"
            if set(before) & {"seen", "watched", "saw", "heard"}:
                return "mentioned"  # "I have not seen Airplane": new to them, not turned down
            return "rejected"  # "not Gorilla", "no Star Wars"
        if cue in g.DISLIKE_CUES:
            return "disliked"
        if _asks_about(toks, first, last, clause):
            return "asked_about"
        if _FAVOURITE.search(clause) and not _NEGATED.search(clause):
            return "liked"  # "Amelie is my favourite", "my all-time fave"
        score = sentiment(_clause_text(toks, first, last, skip=quiet))  # without words that say nothing
        if cue in g.SEEN_CUES:
            return "liked" if score >= 0.3 else "disliked" if score <= -0.3 else "seen"
        if cue in g.LIKE_CUES or cue in g.SIMILAR_CUES or cue in ("fan", "favorite", "favourite"):
            return "liked"
        if score >= 0.3:
            return "liked"
        if score <= -0.3:
            return "disliked"
        return "mentioned"

    def _shown_refs(
        self, s: str, toks: list[Token], free: list[bool], used: bytearray, negated: list[bool],
        ctx: PlanContext, q: Query,
    ) -> None:  # fmt: skip
        """'the second one', 'number 3', 'those', 'it' (after a stance cue) -> refs to shown items."""
        shown = ctx.shown or ctx.suggested
        if not shown:
            return
        n = len(toks)
        for i, t in enumerate(toks):
            if not free[i]:
                continue
            pos, span = None, 0
            count = g.COUNTS.get(toks[i + 1].text) if i + 1 < n else None
            unit = toks[i + 2].text if i + 2 < n else ""  # "the last two years" is a time, not two items
            if (
                t.text in ("first", "last")
                and count
                and count > 1
                and free[i + 1]
                and unit not in _TIME_WORDS
            ):
                # "the first two", "the last 3": several shown items at once
                span = 3 if i + 2 < n and toks[i + 2].text in g.ORDINAL_NOUNS | {"ones"} else 2
                several = list(shown[:count]) if t.text != "last" else list(shown[-count:])
                self._shown_ref(toks, i, i + span - 1, several, negated, free, q)
                continue
            if count or (i + 1 < n and toks[i + 1].text in _TIME_WORDS):
                continue  # "the top 5 comedies", "the last two years", "the last year": no shown item
            if t.text in g.ORDINALS and (i + 1 < n and toks[i + 1].text in g.ORDINAL_NOUNS or
                                         i > 0 and toks[i - 1].text in ("the", "that")):  # fmt: skip
                pos, span = g.ORDINALS[t.text], 2 if i + 1 < n and toks[i + 1].text in g.ORDINAL_NOUNS else 1
            elif t.text in ("number", "#") and i + 1 < n and toks[i + 1].text.isdigit():
                pos, span = int(toks[i + 1].text), 2
            if pos is not None:
                idx = pos - 1 if pos > 0 else len(shown) - 1
                if 0 <= idx < len(shown):
                    self._shown_ref(toks, i, i + span - 1, [shown[idx]], negated, free, q)
                continue
        # "the blue one", "the Gorilla one": the one shown item whose text has the word ("the black ones"
        # is a word to search for, not a choice among the items shown)
        for i in range(1, len(toks) - 1):
            w = toks[i].text
            if not (toks[i - 1].text == "the" and toks[i + 1].text == "one" and free[i]):
                continue
            if not w.isalnum() or w in g.STOPWORDS or w in g.ORDINALS or w in g.COUNTS:
                continue
            word = re.compile(rf"\b{re.escape(w)}\b")
            having = [x for x in shown if word.search(fold(self.index.texts[x]))]
            if len(having) == 1:
                self._shown_ref(toks, i - 1, i + 1, having, negated, free, q)
        clause_words = {t.text for t in toks}
        cue = clause_words & (g.SEEN_CUES | g.LIKE_CUES | g.DISLIKE_CUES)
        for i, t in enumerate(toks if cue else ()):
            if not free[i]:
                continue
            if t.text in g.THIS_LIST and len(shown) > 0 and t.text != "ones":
                self._shown_ref(toks, i, i, list(shown), negated, free, q)
            elif t.text in ("it", "that") and ctx.suggested and len(ctx.suggested) == 1:
                self._shown_ref(toks, i, i, list(ctx.suggested), negated, free, q)
        # "Who stars in it?", "Were the songs good?" right after one item was suggested: a question about it
        if len(ctx.suggested) == 1 and not q.refs and g.asks_about_it(s):
            q.refs.append(self._ref(ctx.suggested[0], "asked_about"))

    def _shown_ref(
        self, toks: list[Token], first: int, last: int, items: list[int], negated: list[bool],
        free: list[bool], q: Query,
    ) -> None:  # fmt: skip
        text = _clause_text(toks, first, last)
        clause = set(text.split())
        score = sentiment(text)
        if _asks_about(toks, first, last, text):
            stance: Stance = "asked_about"  # "tell me more about the second one"
        elif clause & {"another", "more", "similar"} and clause & {"like", "similar", "as"}:
            stance = "liked"
            q.critique, q.critique_of = "more_like", self.index.item_ids[items[0]]
        elif (
            clause & g.SEEN_CUES
            and not negated[first]
            and not (clause & {"haven't", "havent", "not", "never"})
        ):
            stance = "liked" if score >= 0.3 else "seen"
        elif clause & {"remove", "drop", "hide", "without", "exclude", "nope", "nah"} or negated[first]:
            stance = "disliked" if clause & g.DISLIKE_CUES or "like" in clause else "rejected"
        elif clause & g.DISLIKE_CUES or score <= -0.3:
            stance = "disliked"
        elif clause & g.LIKE_CUES or score >= 0.3:
            stance = "liked"
        else:
            stance = "mentioned"
        known = {(r.item_id, r.stance) for r in q.refs}
        for idx in items:
            if (self.index.item_ids[idx], stance) not in known:  # "all of those": one ref per item
                q.refs.append(self._ref(idx, stance))
        for p in range(first, last + 1):
            free[p] = False

    def _places(self, toks: list[Token], free: list[bool], negated: list[bool], q: Query) -> list[str]:
        """'set in Paris', 'takes place in New York', 'a thriller set in space': where the item is set. The
        place's words search the item texts and titles as one phrase (as a franchise's do: *Midnight in
        Paris*), or are avoided text inside a negation; never a title of their own (the film *Tokyo!*). The
        place is the longest run of up to three words that some item text holds, else its first word.
        Returns the words of the places asked for: they are search words too."""
        n = len(toks)
        place_words: list[str] = []
        for i in range(2, n):
            if not (toks[i - 1].text in ("in", "at") and toks[i - 2].text in SETTING_CUES):
                continue
            if toks[i - 2].text == "place" and not (i > 2 and toks[i - 3].text.startswith(("tak", "took"))):
                continue  # "in place of": no setting
            first = i + 1 if toks[i].text == "the" and i + 1 < n else i
            words: list[int] = []
            for p in range(first, min(n, first + 3)):
                if not (free[p] and toks[p].text.isalpha()) or toks[p].text in g.CLAUSE_BOUNDARIES:
                    break
                words.append(p)
            while words and toks[words[-1]].text in g.STOPWORDS:
                words.pop()  # "set in space please"
            while len(words) > 1 and not self._held(" ".join(toks[p].text for p in words)):
                words.pop()
            cues = [i - 3] if i > 2 and toks[i - 3].text.startswith(("tak", "took")) else []
            for p in (*cues, i - 2, i - 1):
                free[p] = False  # "set in" is no search word, whatever follows
            if not words:
                continue  # "set in the 1920s" is a time (the ranges take it)
            key = " ".join(toks[p].text for p in words)
            if negated[words[0]]:
                q.avoid = ", ".join(filter(None, [q.avoid, key]))
            else:
                q.franchises.append(key)
                place_words.extend(key.split())  # ... and search words of their own
            for p in range(first, words[-1] + 1):
                free[p] = False
        return place_words

    def _held(self, phrase: str) -> bool:
        """Whether some item's text or title holds every content word of ``phrase`` ("new york": york)."""
        phrase = " ".join([w for w in phrase.split() if w not in g.STOPWORDS] or [phrase])
        return self.index.lexical.mentions_all(phrase) or self.index.title_lexical.mentions_all(phrase)

    def _franchises(self, toks: list[Token], free: list[bool], negated: list[bool], q: Query) -> None:
        """'not the Star Wars ones', 'the Toy Story movies': words that begin several titles. Negated: a title
        constraint; otherwise their words search the titles (``franchises``)."""
        n = len(toks)
        i = 0
        while i < n:
            found = None
            for length in range(min(4, n - i), 0, -1):
                span = list(range(i, i + length))
                if not all(free[p] and toks[p].text.isalnum() for p in span):
                    continue
                after = toks[i + length].text if i + length < n else ""
                written = all(toks[p].capitalised for p in span) and i > 0
                if not (written or after in ("ones", "movies", "films", "series", "franchise", "saga")):
                    continue
                if written and (i + length < n and toks[i + length].capitalised or toks[i - 1].capitalised):
                    continue  # part of a longer name ("Knives Out")
                if length == 1 and informativeness(toks[i].text) < 0.6:
                    continue  # "out" begins many titles and means nothing alone
                key = " ".join(toks[p].text for p in span)
                if all(t in g.STOPWORDS for t in key.split()):
                    continue  # "in the movies" names no franchise
                if any(abs(w) >= 1.0 for _, _, w in self.index.phrases.get(fold(key), [])):
                    continue  # a facet value ("not Gorilla" is the brand): the facet extractor takes it
                if self.index.linker.prefix_count(key) >= 2:
                    found = (span, key)
                    break
            if found is None:
                i += 1
                continue
            span, key = found
            seen_all = not negated[span[0]] and _seen_series(toks, span[0], span[-1])
            similar = _SIMILAR_AFTER.search(" ".join(t.text for t in toks))
            if not negated[span[0]] and not seen_all and similar:
                # "I loved the Harry Potter series, what's similar?": more like its best-known films, and
                # not the series itself
                anchors = self.index.linker.prefix_items(key)[:3]
                q.refs += [self._ref(a, "liked") for a in anchors]
                q.constraints.append(Constraint(facet="title", op="is_not", value=key, said=f"not {key}"))
                if anchors and q.critique is None:
                    q.critique, q.critique_of = "more_like", self.index.item_ids[anchors[0]]
            elif negated[span[0]] or seen_all:
                q.constraints.append(Constraint(facet="title", op="is_not", value=key, said=f"not {key}"))
                # ... and its meaning is avoided too: "tired of Marvel" means Thor and Iron Man, whose
                # titles do not say Marvel (the dense avoid demotes the items closest to the word)
                if negated[span[0]]:  # (seen them all is no dislike of what they are like)
                    q.avoid = ", ".join(filter(None, [q.avoid, key]))
            else:
                q.franchises.append(key)
            for p in span:
                free[p] = False
            i = span[-1] + 1

    def _facets(
        self, s: str, toks: list[Token], free: list[bool], negated: list[bool], q: Query
    ) -> list[str]:
        """Facet phrases (hard evidence only) on free tokens, inside or outside a negation; a value named in a
        description of a viewing, as leave or in a question about the shown items is a taste (``prefer``:
        it boosts, never filters). Returns the words of asked phrases that are not their value's own name
        ("heist" for Crime, "zombie" for Horror): they also search the item texts, so heist films come
        first among the crimes."""
        narrower: list[str] = []
        sub: list[tuple[str, int]] = [
            (w, i) for i, t in enumerate(toks) if free[i] for w in fold(t.text).split()
        ]
        alpha = [t for t in toks if t.text[0].isalpha()]
        capitals_mean_names = sum(t.capitalised for t in alpha) < 0.7 * len(alpha)
        j = 0
        while j < len(sub):
            hit = None
            for length in range(min(self._max_phrase, len(sub) - j), 0, -1):
                span = sub[j : j + length]
                if any(span[k + 1][1] - span[k][1] > 1 for k in range(len(span) - 1)):
                    continue  # not contiguous in the message
                rows = self.index.phrases.get(" ".join(w for w, _ in span))
                if rows and any(abs(w) >= 1.0 for _, _, w in rows):
                    hit = (length, rows)
                    break
            if hit is None:
                j += 1
                continue
            length, rows = hit
            first, last = sub[j][1], sub[j + length - 1][1]
            if (
                capitals_mean_names
                and not any(facet in self._names for facet, _, _ in rows)  # brands are names themselves
                and self._in_a_name(toks, first, last)
            ):
                j += length  # "Star Wars", "Avengers Infinity War": a name, not the War genre
                continue
            op = "is_not" if negated[first] else "is"
            if g.describes_not_wishes(s, toks[first].start, toks[last].end):
                op = "prefer" if op == "is" else "none"  # "I haven't seen a horror film": no exclusion
                if (
                    op == "prefer"
                    and sentiment(_clause_text(toks, first, last, skip=range(first, last + 1))) <= -0.3
                ):
                    op = "none"  # "the last glue I bought was from Gorilla and it was bad": no boost either
            words = [w for w, _ in sub[j : j + length]]
            written = all(toks[p].has_upper for p in range(first, last + 1))
            applied = False
            for facet, value, weight in rows:
                if facet in self._names and not written and all(zipf(w) >= 3.5 for w in words):
                    continue  # "small parts" is not the brand Small Parts unless written so
                if 0.0 <= weight < 1.0:
                    continue  # a synonym learnt from the texts: soft evidence only
                asked = _row_op(weight, op)
                if asked is not None:
                    c = Constraint(facet=facet, op=asked, value=value, said=" ".join(words))
                    if c not in q.constraints:
                        q.constraints.append(c)
                applied = True
            if not applied:
                j += 1
                continue
            names = {n for _, v, _ in rows for n in (fold(v), plural(fold(v)))}
            positive = any(w >= 1.0 for _, _, w in rows)
            if op in ("is", "prefer") and positive and " ".join(words) not in names:
                narrower.extend(w for w in words if w not in g.STOPWORDS)
            for p in range(first, last + 1):
                free[p] = False
            j += length
        return narrower

    def _in_a_name(self, toks: list[Token], first: int, last: int) -> bool:
        """Whether capitalised facet words stand inside a longer capitalised name (a title, a person)."""
        if not all(toks[p].capitalised for p in range(first, last + 1)):
            return False
        return any(
            0 <= p < len(toks) and toks[p].capitalised and toks[p].text.isalpha() and toks[p].text != "i"
            and not self.index.phrases.get(fold(toks[p].text))
            for p in (first - 1, last + 1)
        )  # fmt: skip

    def _reception(
        self, s: str, toks: list[Token], free: list[bool], used: bytearray, negated: list[bool], q: Query
    ) -> None:
        """'highly rated', 'popular', 'lesser known', 'a hidden gem': constraints on the audience facets the
        index derives from the interaction log (a popularity percentile, a mean rating). A negated wish turns
        over ("nothing popular" is less known); said of a viewing it is a taste ("I watched a popular one"),
        and so it is in a shop, where the words name the product and popularity orders what they find ("a
        popular multimeter": no multimeter is among the shop's most popular tenth). Ratings where the log
        has none are said to be unsupported."""
        for a, b, wishes in g.reception(s, used):
            _claim(toks, free, used, a, b)
            turned = any(negated[i] for i, t in enumerate(toks) if a <= t.start < b) and not re.match(
                r"(?:not|nothing|less|none|no)\b", s[a:b]
            )  # "nothing popular" turns over; "not so popular" says it itself
            for wish in wishes:
                if turned and wish == g.WELL_RATED:
                    continue  # "not highly rated" asks for nothing we would show
                if turned:
                    wish = g.LITTLE_KNOWN if wish == g.POPULAR else g.POPULAR
                c = self._audience.get(wish)
                if c is None:
                    if "ratings" not in q.unsupported:
                        q.unsupported.append("ratings")
                    continue
                c = c.model_copy(update={"said": s[a:b]})
                if g.describes_not_wishes(s, a, b) or self.index.spec.titles_describe_items:
                    c = c.model_copy(update={"op": "prefer"})
                q.constraints.append(c)

    def _unanswerable(self, s: str, toks: list[Token], free: list[bool], used: bytearray, q: Query) -> None:
        """'something short', 'under 90 minutes', 'in English' where no facet holds lengths or languages and
        titles do not describe the items: said to be unsupported, and the words search nothing ("short"
        found The Big Short). In a shop such words describe products ("long gloves") and stay."""
        if self.index.spec.titles_describe_items or self._duration_facets:
            return
        for m in g.PEOPLE_WISH.finditer(s) if not self._people_facet else ():  # "what else did he make?"
            if not any(used[m.start() : m.end()]):
                _claim(toks, free, used, m.start(), m.end())
                if "people" not in q.unsupported:
                    q.unsupported.append("people")
        for m in g.OTHER_KINDS.finditer(s):  # "a Netflix series" on films: said, and searches nothing
            kind = m.group(0).split()[-1]
            if any(used[m.start() : m.end()]) or kind in self._nouns or plural(kind) in self._nouns:
                continue
            _claim(toks, free, used, m.start(), m.end())
            if f"kind:{kind}" not in q.unsupported:
                q.unsupported.append(f"kind:{kind}")
        if not any("language" in f.name for f in self.index.spec.facets):
            for m in g.LANGUAGE_WISH.finditer(s):
                if not any(used[m.start() : m.end()]):
                    _claim(toks, free, used, m.start(), m.end())
                    if "language" not in q.unsupported:
                        q.unsupported.append("language")
        has_country = any(w in f.name for f in self.index.spec.facets for w in ("country", "origin"))
        wished = any(not any(used[m.start() : m.end()]) for m in g.COUNTRY_WISH.finditer(s))
        if wished and not has_country and "country" not in q.unsupported:
            q.unsupported.append("country")  # the word stays free: it still searches the texts
        for m in g.LENGTH.finditer(s):
            if any(used[m.start() : m.end()]):
                continue
            _claim(toks, free, used, m.start(), m.end())
            if "length" not in q.unsupported:
                q.unsupported.append("length")

    def _toned_down(self, s: str, toks: list[Token], free: list[bool], used: bytearray, q: Query) -> None:
        """'not too scary', 'isn't overly silly': less of a quality, not none of it. Where the word leads to
        values of one mood ('scary': Horror, a darker one) the wish is the other mood (lighter), and a horror
        film stays a horror film; otherwise the words are left to the other extractors. 'too crude', 'too
        scary': the word is avoided, or the other mood is asked for."""
        for m in g.TONED_DOWN.finditer(s) if self.index.moods else ():
            if any(used[m.start() : m.end()]):
                continue
            mood = self._mood_of(m.group(1))
            if mood is None:
                continue
            q.critique = "lighter" if mood == "darker" else "darker"  # less of the word's mood
            _claim(toks, free, used, m.start(), m.end())
        for m in g.TOO_MUCH.finditer(s):  # "too crude": the word is left out; "too scary": the other mood
            word = m.group(1)
            if any(used[m.start() : m.end()]) or word in g.STOPWORDS:
                continue
            mood = self._mood_of(word, named=True)  # a learnt synonym ('crude': Comedy) is no mood word
            if mood is not None:
                q.critique = "lighter" if mood == "darker" else "darker"
            else:
                q.avoid = ", ".join(filter(None, [q.avoid, self.index.linker.repair(word)]))
            _claim(toks, free, used, m.start(), m.end())

    def _other_values(
        self, s: str, toks: list[Token], free: list[bool], used: bytearray, ctx: PlanContext, q: Query
    ) -> None:
        """'a different brand', 'other brands': none of the values the items just shown have, on a facet
        with one value per item (a brand; not genres, which every list shares)."""
        shown = ctx.shown or ctx.suggested
        if not shown:
            return
        for name, facet in self.index.categories.items():
            if facet.matrix[shown].sum(axis=1).max(initial=0) > 1:
                continue
            noun = re.escape(fold(name))
            for m in re.finditer(rf"\b(?:a |an )?(?:different|other|another|new)\s+{noun}s?\b", s):
                if any(used[m.start() : m.end()]):
                    continue
                cols = np.flatnonzero(facet.matrix[shown].any(axis=0))
                for c in cols:
                    value = facet.values[c]
                    q.constraints.append(
                        Constraint(facet=name, op="is_not", value=value, said=f"not {value}")
                    )
                _claim(toks, free, used, m.start(), m.end())

    def _asks_darker(self, q: Query) -> bool:
        """Whether the message asks for a value of the darker mood ("scary movie but not about ghosts": the
        ghosts are left out, the film stays scary)."""
        darker = self.index.moods.get("darker", {})
        return any(c.op in ASKED_OPS and darker.get((c.facet, c.value), 0.0) > 0 for c in q.constraints)

    def _comparatives(self, toks: list[Token], free: list[bool], ctx: PlanContext) -> tuple[list[str], bool]:
        """'a stronger glue', 'a louder one': more of a quality. The adjective ('strong') is a search word,
        the comparative is none (no text says 'stronger glue'). Returns the adjectives, and whether the
        message refines what was shown ('a louder one' after a list: the same search, louder)."""
        out: list[str] = []
        refines = False
        for i, t in enumerate(toks):
            root = g.COMPARATIVES.get(t.text)
            if not free[i] or root is None:
                continue
            out.append(root)
            free[i] = False
            one = i + 1 < len(toks) and toks[i + 1].text in g.ONE_AFTER
            refines = refines or (one and bool(ctx.shown or ctx.suggested))
        return out, refines

    def _mood_of(self, word: str, named: bool = False) -> str | None:
        """The mood ('lighter' / 'darker') that the values a word leads to lean to ('violent': Thriller);
        ``named``: only through the vocabulary's own words ('scary'), not learnt synonyms."""
        least = 1.0 if named else 1e-9
        values = [(f, v) for f, v, w in self.index.phrases.get(fold(word), []) if w >= least]
        if not values or not self.index.moods:
            return None
        lean = {
            mood: sum(self.index.moods.get(mood, {}).get(fv, 0.0) for fv in values)
            for mood in ("lighter", "darker")
        }
        mood = max(lean, key=lambda k: lean[k])
        return mood if lean[mood] > 0 else None

    def _critiques(self, s: str, toks: list[Token], free: list[bool], used: bytearray, q: Query) -> None:
        for pattern, critique in g.CRITIQUES:
            for m in pattern.finditer(s):
                if any(used[m.start() : m.end()]):
                    continue
                if critique in ("newer", "older") and (
                    self._year_facet is None or g.describes_not_wishes(s, m.start(), m.end())
                ):
                    continue
                if critique in ("lighter", "darker") and critique not in self.index.moods:
                    continue
                q.critique = critique  # type: ignore[assignment]
                _claim(toks, free, used, m.start(), m.end())

    def _free_text(self, toks: list[Token], free: list[bool], negated: list[bool], q: Query) -> None:
        soft: list[str] = []
        avoid: list[list[str]] = []  # phrases: "not about ghosts or demons" avoids each word on its own
        last_avoided = -1
        for i, t in enumerate(toks):
            w = t.text
            if not free[i] or not w[0].isalpha() or w in g.STOPWORDS or w in g.NEGATION_CUES:
                continue
            if i + 1 < len(toks) and (w, toks[i + 1].text) in g.NEGATION_BIGRAMS:
                continue  # "tired" of "tired of Marvel" is the negation, not a wish
            if i > 0 and (toks[i - 1].text, w) in g.NEGATION_BIGRAMS:
                continue  # ... and so is "stand" of "can't stand"
            if i + 1 < len(toks) and toks[i + 1].text in ("fan", "fans"):
                continue  # "a big fan of Nolan": how much, not what
            if w in self._facet_names:
                continue  # "a lesser known brand of pipettes": a facet's name is none of its values
            if w in self._nouns or w in g.REQUEST_CUES or w in g.GREETINGS or w in g.WHEN_WORDS:
                continue
            if w in g.RELATIONS and i > 0 and toks[i - 1].text in g.POSSESSIVES:
                continue  # "my wife loves Jane Austen": who it is for, not what to search
            if not self._number_facets and w.startswith(g.MONEY_WORDS):
                if "prices" not in q.unsupported:  # "nothing too expensive" where nothing has a price
                    q.unsupported.append("prices")
                continue
            if w.startswith(g.RATING_WORDS) and not self._rating_facet:
                if "ratings" not in q.unsupported:  # "just the ones with good ratings": said, not searched
                    q.unsupported.append("ratings")
                continue
            w = self.index.linker.repair(w)
            if not negated[i]:
                soft.append(w)
            elif not avoid or (
                any(x.text in _LIST_JOINS for x in toks[last_avoided + 1 : i])
                and (toks[last_avoided].text, w) not in g.BINOMIALS
            ):
                avoid.append([w])
            else:
                avoid[-1].append(w)
            last_avoided = i if negated[i] else last_avoided
            darker = negated[i] and q.critique is None and self._mood_of(w) == "darker"
            if darker and not self._asks_darker(q):
                q.critique = "lighter"  # "I don't like violent movies": lighter ones, besides the word
        q.soft = " ".join(soft)
        q.avoid = ", ".join(filter(None, [q.avoid, *(" ".join(p) for p in avoid)]))  # after the franchises

    def _unresolved_after_cues(
        self, message: str, toks: list[Token], free: list[bool], avoiding: list[bool], q: Query
    ) -> None:
        """'like Knives Out' where Knives Out is not in the catalogue -> an unresolved title; not where the
        name is left out ("nothing with Tom Cruise", "I've seen every Adam Sandler movie": avoided text)."""
        free = [f and not a for f, a in zip(free, avoiding, strict=True)]
        for i, t in enumerate(toks[:-1]):
            person = t.text in _PERSON_CUES  # "directed by Wes Anderson", "anything with Tom Cruise"
            asks_for = t.text in ("have", "got", "carry", "sell") and toks[max(0, i - 1)].text == "you"
            if not person and not asks_for and t.text not in ("like", "liked", "love", "loved", "enjoy",
                                                              "enjoyed", "seen", "saw", "watched", "called",
                                                              "titled"):  # fmt: skip
                continue  # ("do you have Oppenheimer?": a title asked for by name)
            run = []
            for j in range(i + 1, len(toks)):
                if not free[j] or not toks[j].capitalised or not toks[j].text[0].isalnum():
                    break
                run.append(j)
            if person and len(run) < 2:
                continue  # a name has two words at least; "by Friday", "with Mom" are not names
            if run and not all(toks[j].text in g.STOPWORDS for j in run):  # "Something Like That"
                q.unresolved_titles.append(" ".join(message[toks[j].start : toks[j].end] for j in run))
                for j in run:
                    free[j] = False
        # any other capitalised name of two words or more ("any Studio Ghibli films?", "set in New York"): a
        # name is looked for whole, not word by word; a sentence's first word is capitalised anyway
        i = 0
        while i < len(toks):
            j = i
            while j < len(toks) and free[j] and toks[j].capitalised and toks[j].text[0].isalpha():
                j += 1
            run = list(range(i, j))
            if run and (run[0] == 0 or toks[run[0] - 1].text in (".", "!", "?")):
                run = run[1:]
            if len(run) >= 2 and not all(toks[p].text in g.STOPWORDS for p in run):
                q.unresolved_titles.append(" ".join(message[toks[p].start : toks[p].end] for p in run))
            i = max(j, i + 1)

    def _intent(
        self, q: Query, toks: list[Token], words: list[str], s: str, ctx: PlanContext, links: Sequence,
    ) -> Intent:  # fmt: skip
        if q.intent == "reset":
            return "reset" if q.empty else "recommend"
        if words and not any(is_known_word(w) or self.index.lexical.has(w) for w in words):
            return "not_understood"
        if any(r.stance == "asked_about" for r in q.refs):
            return "ask_about"
        if not (q.refs or links or q.constraints or q.critique) and g.asks_about_it(s):
            return "ask_about"  # about an item this engine cannot tell ("Who's in it?" after several or none)
        if q.critique or (q.refs and all(r.stance in ("rejected", "seen") for r in q.refs) and not q.soft):
            return "refine"
        if q.avoid and not any(self.index.lexical.has(w) for w in q.soft.split()):
            return "refine"  # "not Disney please", "not latex, I'm allergic": leave something out
        if q.unsupported and not (q.soft or q.constraints or q.refs):
            return "refine"  # "shorter ones": about the list shown, though this catalogue cannot follow it
        if q.constraints or q.refs or q.unresolved_titles:
            return "recommend"
        cues = set(words) & (g.REQUEST_CUES | self._nouns | g.PREFERENCE_VERBS)
        soft = q.soft.split()
        grounded = [w for w in soft if self.index.lexical.has(w)]
        if cues or g.PICK_QUESTION.search(s):
            return "recommend"
        if g.CHIT_CHAT.match(s) and len(soft) <= 2:
            return "chit_chat"
        if not soft:
            return "chit_chat"
        if ctx.assistant_asked and grounded and "?" not in s:
            return "recommend"  # an answer to our question ("horror, something that challenges me")
        if "?" in s or g.REQUEST_FORM.match(s):
            return "off_topic" if len(grounded) < max(1, len(soft) // 2 + 1) or "?" in s else "recommend"
        remark = g.REMARK.search(g.RELATIVE_THAT.sub(" ", s))
        if grounded and self.index.spec.titles_describe_items and not remark:
            return "recommend"  # "safety goggles" in a shop without goggles: a search that finds little
        if len(grounded) < max(1, len(soft) // 2 + 1):
            # a remark about oneself or what was said ("I will check that out", "That's very true") is
            # conversation; bare words the catalogue does not know ("qwerty asdf") are not
            return "chit_chat" if remark else "off_topic"
        return "recommend"


def _row_op(weight: float, op: str) -> str | None:
    """What a phrase asks of one value, given how the phrase was said (``op``; "none": asks nothing): a
    value's own phrase takes the op, an exclusion ("for adults": Children) rules the value out when asked
    for, a lean ("date night": Romance) boosts it when asked for or described."""
    if weight == EXCLUDES:
        return "is_not" if op == "is" else None
    if weight == PREFERS:
        return "prefer" if op in ("is", "prefer") else None
    return None if op == "none" else op


_COORDINATION = frozenset({"and", "or", "nor", ",", "&", '"', "'", "“", "”", "as", "well", "both"})


def _coordinated(toks: list[Token], last: int, first: int) -> bool:
    """Whether only coordination ("and", "or", commas, quotes) stands between two titles."""
    between = [t.text for t in toks[last + 1 : first]]
    return (
        bool(between)
        and all(w in _COORDINATION for w in between)
        and any(w in ("and", "or", "nor", ",", "&") for w in between)
    )


def _says_own(toks: list[Token], last: int) -> bool:
    """Whether the words after a title, to the end of its clause, say something of their own about it
    ("..., and Heat was amazing")."""
    tail = []
    for t in toks[last + 1 :]:
        if t.text in (".", "!", "?", ";", ",", "but"):
            break
        tail.append(t.text)
    cues = g.LIKE_CUES | g.DISLIKE_CUES | g.SEEN_CUES
    return bool(set(tail) & cues) or abs(sentiment(" ".join(tail))) >= 0.3


_FULL_NAME = re.compile(r"\b([A-Z][a-z]+) ([A-Z][a-z]{2,})\b")


def surnames(index: CatalogueIndex, min_items: int = 2) -> frozenset[str]:
    """Uncommon words that end a two-word capitalised name ("Alfred Hitchcock", "Stanley Kubrick") in the
    texts of at least ``min_items`` items, where titles are names (films, books; in a shop "Gorilla Glue" is
    a brand and its product)."""
    if index.spec.titles_describe_items:
        return frozenset()
    counts: dict[str, int] = {}
    for text, title in zip(index.texts, index.titles, strict=True):
        rest = text[len(title) :] if text.startswith(title) else text  # the title is no name of a person
        names = {fold(last) for first, last in _FULL_NAME.findall(rest) if fold(first) not in g.STOPWORDS}
        for word in names:
            counts[word] = counts.get(word, 0) + 1
    return frozenset(w for w, n in counts.items() if n >= min_items and informativeness(w) >= 0.6)


def audience_constraints(index: CatalogueIndex) -> dict[str, Constraint]:
    """The constraint each reception wish stands for on this catalogue (``grammar.RECEPTION``): popular is the
    top ``POPULAR_SHARE`` of the popularity facet, less known the rest; well rated a mean rating (shrunk, see
    ``index.audience_facets``) among the top ``WELL_RATED_SHARE`` of the items rated by at least
    ``RATING_SHRINK`` people."""
    out: dict[str, Constraint] = {}
    if POPULARITY in index.numbers:
        edge = 100.0 * (1.0 - POPULAR_SHARE)
        out[g.POPULAR] = Constraint(facet=POPULARITY, op="at_least", low=edge)
        out[g.LITTLE_KNOWN] = Constraint(facet=POPULARITY, op="at_most", high=edge)
    rating = index.numbers.get(RATING)
    if rating is not None and rating.spec.kind == "audience":
        count = index.numbers[RATINGS].values if RATINGS in index.numbers else np.ones(len(index))
        known = rating.values[np.isfinite(rating.values) & (count >= RATING_SHRINK)]
        known = known if known.size else rating.values[np.isfinite(rating.values)]
        low = round(float(np.quantile(known, 1.0 - WELL_RATED_SHARE)), 2)
        out[g.WELL_RATED] = Constraint(facet=RATING, op="at_least", low=low)
    return out


def _claim(toks: list[Token], free: list[bool], used: bytearray, a: int, b: int) -> None:
    used[a:b] = b"\x01" * (b - a)
    for i, t in enumerate(toks):
        if t.start < b and t.end > a:
            free[i] = False


def _agree(q: Query, asked: Query) -> None:
    """ "yes but a bit more recent" after "Do you want something romantic again?": the category values,
    ranges and words the question offered join what the answer asks (not its titles: "Have you seen
    Coco?" "yes" is no wish for Coco)."""
    facets = {c.facet for c in q.constraints}
    q.constraints += [c for c in asked.constraints if c.op in ASKED_OPS and c.facet not in facets]
    q.soft = " ".join(dict.fromkeys([*q.soft.split(), *asked.soft.split()]))


def _decline(q: Query, asked: Query) -> None:
    """ "no" to "Do you like ones with romance as well?": the category values the question offered are
    ruled out, unless the answer asks for one of them itself."""
    facets = {c.facet for c in q.constraints}
    q.constraints += [
        c.model_copy(update={"op": "is_not", "said": f"no {c.said or c.value}"})
        for c in asked.constraints
        if c.op == "is" and c.facet not in facets
    ]


def _both(s: str, q: Query) -> None:
    """ "something that has both comedy and romance": the values joined after 'both' must all hold, as the
    values one phrase names do (one ``said`` for them all); without 'both', "comedy and romance" offers
    either."""
    m = re.search(r"\bboth\s+((?:[\w'-]+\s+){0,2}?[\w'-]+\s+and\s+[\w'-]+(?:\s+[\w'-]+)?)", s)
    if not m:
        return
    span = f" {m.group(1)} "
    inside = [c for c in q.constraints if c.op == "is" and c.said and f" {c.said} " in span]
    for facet in {c.facet for c in inside}:
        group = [c for c in inside if c.facet == facet]
        if len(group) < 2:
            continue
        said = " and ".join(c.said or "" for c in group)
        q.constraints = [c.model_copy(update={"said": said}) if c in group else c for c in q.constraints]


def _settle_conflicts(q: Query) -> None:
    """One message that asks for a category value and rules it out too: "something scary but not gory" (both
    words lead to Horror) wants Horror without gore, so a negated word that only goes with the value is
    avoided text, not an exclusion of the whole category; "scary, but not horror" names the value itself,
    so that exclusion holds and the other word stays a taste (free text)."""
    asked = {(c.facet, c.value): c for c in q.constraints if c.op == "is"}
    dropped: set[int] = set()
    soft, avoid = [q.soft] if q.soft else [], [q.avoid] if q.avoid else []
    for c in q.constraints:
        wish = asked.get((c.facet, c.value)) if c.op == "is_not" else None
        if wish is None or id(wish) in dropped:
            continue
        if names_value(c) and not names_value(wish):
            dropped.add(id(wish))
            soft.append(fold(wish.said))
        elif not names_value(c):
            dropped.add(id(c))
            avoid.append(fold(c.said))
    if dropped:
        q.constraints = [c for c in q.constraints if id(c) not in dropped]
        q.soft, q.avoid = " ".join(soft), ", ".join(avoid)


def _series_after(toks: list[Token], last: int) -> bool:
    """Whether a plural kind noun follows a title or franchise ("the Batman films", "Star Wars ones")."""
    return last + 1 < len(toks) and toks[last + 1].text in ("ones", "movies", "films", "series")


def _seen_series(toks: list[Token], first: int, last: int) -> bool:
    """ "I've seen all the Batman films": the whole series is seen (leave it out, do not search for it)."""
    seen = {t.text for t in toks[max(0, first - 4) : first]} & {"seen", "watched", "saw"}
    return bool(seen) and _series_after(toks, last)


def _seen_all_mask(toks: list[Token]) -> list[bool]:
    """True for the words after "seen everything / all / every" up to the clause's end: "I have seen
    everything by Nolan" leaves Nolan's films out instead of searching for them (the seen titles of "I've
    seen all the Batman films" are left out by ``_seen_series``)."""
    mask = [False] * len(toks)
    for i in range(1, len(toks)):
        if toks[i].text in ("all", "everything", "every") and toks[i - 1].text in ("seen", "watched", "saw"):
            j = i + 1
            while j < len(toks) and toks[j].text not in g.CLAUSE_BOUNDARIES:
                mask[j] = True
                j += 1
    return mask


# words after which a capitalised name of two words or more names a person (cast, director, author, brand)
_PERSON_CUES = frozenset({"by", "with", "starring", "featuring", "director", "actor", "actress", "author"})

# a negation reaches across "with" right after it: "nothing with Tom Cruise", "no films with gore"
_NEGATED_WITH_AFTER = g.words(
    "films film movies movie ones one items products shows books anything something"
)


_DEGREES = frozenset({"too", "so", "overly", "very", "that", "really"})
_FONDNESS = g.PREFERENCE_VERBS | {"big", "keen", "fond", "crazy", "much", "a"}  # "not really a fan of"


def _negation_mask(toks: list[Token]) -> list[bool]:
    """True for tokens inside the scope of a negation cue (to the clause boundary; "or"/"nor" keep it)."""
    mask = [False] * len(toks)
    for i, t in enumerate(toks):
        cue = t.text in g.NEGATION_CUES or (i > 0 and (toks[i - 1].text, t.text) in g.NEGATION_BIGRAMS)
        if not cue or (i + 1 < len(toks) and toks[i + 1].text in g.NOT_NEGATING_AFTER):
            continue
        end = min(len(toks), i + 1 + g.NEGATION_WINDOW)
        j = i + 1
        if i + 2 < len(toks) and toks[i + 1].text in _DEGREES:
            if toks[i + 2].text in _FONDNESS:
                j = i + 2  # "not too into slashers", "not so keen on horror": a negated liking
            else:
                end = min(len(toks), i + 3)  # "isn't too bloody for a teenager": the degree's word only
        listing = t.text in ("except", "excluding", "exclude", "besides", "minus")  # "except X and Y": both
        while j < end:
            if listing and toks[j].text == "and":
                end = min(len(toks), max(end, j + 4))
                j += 1
                continue
            if toks[j].text == "with" and all(toks[x].text in _NEGATED_WITH_AFTER for x in range(i + 1, j)):
                end = min(len(toks), max(end, j + 1 + g.NEGATION_WINDOW))
                mask[j] = True
                j += 1
                continue
            if toks[j].text == "and" and mask[j - 1] and _last_item_after(toks, j):
                end = min(len(toks), max(end, j + 3))  # "just not black and white", "no blood and gore"
            elif toks[j].text in g.CLAUSE_BOUNDARIES and toks[j].text not in (",",):
                break
            if toks[j].text == "," and j + 1 < len(toks) and toks[j + 1].text not in ("or", "nor"):
                if not _enumeration_after(toks, j):
                    break
                end = min(len(toks), max(end, j + 5))  # "nothing with zombies, vampires or aliens": all
            mask[j] = True
            j += 1
            if j < len(toks) and toks[j].text in ("or", "nor"):
                end = min(len(toks), max(end, j + 4))  # "not a fan of sci fi or action films": both
    return mask


_TRAILING_POLITE = frozenset({"please", "pls", "plz", "thanks", "thx", "though", "tho", "either", "lol"})


def _last_item_after(toks: list[Token], conj: int) -> bool:
    """Whether one or two content words end the message (or sentence) after "and": the last item of the
    negated list ("not black and white"), not a new wish ("no horror and something funny")."""
    rest = []
    for t in toks[conj + 1 :]:
        if t.text in (".", "!", "?", ";"):
            break
        rest.append(t)
    while rest and rest[-1].text in _TRAILING_POLITE:
        rest.pop()
    return 1 <= len(rest) <= 2 and all(t.text[0].isalpha() and t.text not in g.STOPWORDS for t in rest)


def _enumeration_after(toks: list[Token], comma: int) -> bool:
    """Whether a comma continues a list of one- or two-word items that "or"/"and"/"nor" or another comma
    goes on with ("zombies, vampires or aliens"), rather than starting a new clause ("no horror, something
    funny")."""
    for k in range(comma + 2, min(len(toks), comma + 4)):
        if toks[k].text in ("or", "nor", "and", ","):
            items = toks[comma + 1 : k]
            return all(t.text[0].isalpha() and t.text not in g.STOPWORDS for t in items)
    return False


_LIKING = {"i", "we", "you", "they", "he", "she", "really", "also", "do", "did", "would", "just", "totally",
           "kinda", "definitely", "i'd", "we'd", "always", "still", "so", "too"}  # fmt: skip
_SIMILAR_AFTER = re.compile(
    r"\b(?:more|something|anything|others?|ones?)(?: else)? like (?:that|this|it|those|these|them)\b"
    r"|\bsimilar\b|\bsame (?:kind|sort|vibe|style)\b|\balong (?:those|the same|these) lines\b"
    r"|\bin (?:that|the same) vein\b"
)


def _asks_similar(toks: list[Token], first: int, last: int) -> bool:
    """Whether the user asks for items like this one ("films like Heat", "something similar to Saw",
    "I loved Saw, more like that") rather than saying they like it ("I like Heat")."""
    before = [t.text for t in toks[max(0, first - 3) : first]]
    if any(w in ("similar", "vein", "reminiscent", "style", "lines") for w in before):
        return True
    if "like" in before:
        j = len(before) - 1 - before[::-1].index("like")
        at = first - len(before) + j  # the token index of "like"
        subject = toks[at - 1].text if at > 0 else ""
        if subject not in _LIKING and subject not in ("", "dont", "don't", "didn't", "didnt", "not"):
            return True
    return bool(_SIMILAR_AFTER.search(_clause_text(toks, first, last)))


def _asks_about(toks: list[Token], first: int, last: int, clause: str) -> bool:
    """A question about the item at toks[first..last]: "what is Inception about?", "tell me more about
    the second one", "who's in it?"."""
    before = [t.text for t in toks[max(0, first - 4) : first]]
    question = any(t.text == "?" for t in toks[last + 1 :])
    asking = any(w in ("about", "what's", "whats") for w in before) or re.search(
        r"\b(?:what(?:'s| is)|tell me (?:more )?about|tell me more|who(?:'s| is) in|is it|"
        r"who (?:directed|made|wrote|stars|starred|plays|played|is in)|when (?:was|did|is)|what year|"
        r"how (?:long|old) is|do you (?:have|carry|sell|stock)|have you got)\b",
        clause,
    )
    # "is The Shining scary?", "is the first one a comedy?", "does Heat have a sequel?": a yes/no question
    # that begins with the item
    j = first - 1 if first > 0 and toks[first - 1].text not in ("the", "a", "an") else first - 2
    opens = j >= 0 and toks[j].text in ("is", "was", "does", "did", "has", "are")
    opens = opens and (j == 0 or toks[j - 1].text in (".", "!", "?", ",", "so", "and", "ok", "but", "hmm"))
    return bool((asking or opens) and (question or "tell me" in clause))


_CLAUSE_JOINS = frozenset({"and", "so", "then", "while", "because"})
_SUBJECTS = frozenset({"i", "i'm", "i've", "he", "she", "we", "they", "my", "his", "her", "our", "their"})
_BACK_POINTERS = frozenset({"it", "it's", "its", "that", "this", "them", "those", "one"})


def _clause_text(
    toks: list[Token], first: int, last: int, back: int = 8, ahead: int = 8, skip: Collection[int] = ()
) -> str:
    """The words around a span within its clause (stops at sentence punctuation, 'but', and 'and' that
    joins a clause with a subject of its own: "I watched Alien and she cried the whole time"), without the
    tokens at ``skip`` (titles: "Raging Bull" says nothing about liking it)."""
    stops = {".", ";", "!", "?", "but", "though", "although", "however"}

    def joins_clause(j: int) -> bool:
        """toks[j] is "and"/"so"/"then", a subject follows, and nothing after points back ("and I hated it"
        is still about the title)."""
        if not (toks[j].text in _CLAUSE_JOINS and j + 1 < len(toks) and toks[j + 1].text in _SUBJECTS):
            return False
        k = j + 1
        while k < len(toks) and toks[k].text not in stops:
            if toks[k].text in _BACK_POINTERS:
                return False
            k += 1
        return True

    a = first
    while a > 0 and first - a < back and toks[a - 1].text not in stops and not joins_clause(a - 1):
        a -= 1
    b = last
    while b + 1 < len(toks) and b - last < ahead and toks[b + 1].text not in stops:
        if joins_clause(b + 1):
            break
        b += 1
    return " ".join(toks[i].text for i in range(a, b + 1) if i not in skip)
