"""The reply sentence, written from the understood query and the dialogue state (no LLM needed).

Honest by construction: it says what was understood, what was relaxed, which titles were not found, when a
facet does not exist in this catalogue, and when a message was off-topic, unreadable or in another language;
wording follows the catalogue ("films", "products", "items" from the dataset spec).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from components.dialogue import grammar as g
from components.dialogue.index import RATING, RATINGS, CatalogueIndex, plural
from components.dialogue.language import language_name
from components.dialogue.query import Constraint, Query, avoided_phrases, said_words
from components.dialogue.reasons import rating_fact
from components.dialogue.state import DialogueState, range_label
from components.dialogue.text import fold


def join(names: Sequence[str], word: str = "and") -> str:
    names = list(names)
    if not names:
        return ""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {word} " + names[-1]


def constraint_label(c: Constraint, index: CatalogueIndex) -> str:
    """How a constraint reads in a sentence: 'Comedy', 'not Horror', 'the 1990s', 'price $20 or less'."""
    if c.facet == "title":
        return f"no '{c.value}' titles"
    if c.op == "is":
        return str(c.value)
    if c.op == "is_not":
        return f"not {c.value}"
    facet = index.numbers.get(c.facet)
    if facet is not None and facet.spec.kind == "audience":
        return audience_label(c)
    unit = facet.spec.unit if facet is not None else None
    label = range_label(c, unit)
    return label if facet is None or facet.spec.kind == "year" else f"{c.facet} {label}"


def audience_label(c: Constraint) -> str:
    """'highly rated', 'popular', 'less known': what a constraint on an audience facet asks, in words (the
    thresholds are the catalogue's own quantiles, not numbers anyone said)."""
    if c.facet == RATING:
        return "highly rated" if c.low is not None else "rated lower"
    return "popular" if c.low is not None else "less known"


def describe(
    state: DialogueState, index: CatalogueIndex, relaxed: Sequence[Constraint] = (),
    standing: Sequence[Constraint] | None = None, avoided: Sequence[str] = (),
) -> str:  # fmt: skip
    """The standing preferences as a phrase: 'Comedy or Sci-Fi films from the 1990s, like The Matrix (1999),
    not Horror, matching "zombie"'. ``standing``: the constraints as the ranking applied them (an asked
    genre turns into a mere preference after a few turns, and the list is then no longer "Thriller films")."""
    dropped = {c.key() for c in relaxed}
    cons = [
        c for c in (state.typed_constraints() if standing is None else standing) if c.key() not in dropped
    ]
    phrases: dict[str, list[str]] = {}  # values one phrase names together read "A and B" ("rom-com")
    for n, c in enumerate(cons):
        if c.op == "is":
            phrases.setdefault(f"{c.facet}|{c.said}" if c.said else str(n), []).append(str(c.value))
    wanted = [join(values) for values in phrases.values()]
    head = f"{join(wanted, 'or')} {index.nouns}" if wanted else index.nouns
    parts = [head]
    for c in cons:
        if c.op in ("is", "is_not", "prefer") or c.facet == "title":
            continue
        label = constraint_label(c, index)
        parts.append(f"from {label}" if label.startswith("the ") else label)
    leaning = [str(c.value) for c in cons if c.op == "prefer" and c.value is not None and c.facet != "title"]
    leaning = [v for v in dict.fromkeys(leaning) if not any(v in w for w in wanted)]
    if leaning:  # a genre that boosts without filtering (said of a viewing, asked turns ago): no claim
        parts.append("leaning to " + join(leaning, "and"))
    anchors = state.liked[-2:] or state.similar[-2:]  # "I have seen Heat, anything similar?": like Heat
    liked = [index.label(i) for i in (index.index(x) for x in anchors) if i is not None]
    if liked:
        parts.append("like " + join(liked))
    if state.mood:
        parts.append(f"on the {state.mood} side")
    avoid = [constraint_label(c, index) for c in cons if c.op == "is_not" or c.facet == "title"]
    disliked = [index.label(i) for i in (index.index(x) for x in state.disliked[-2:]) if i is not None]
    if disliked:
        avoid.append("nothing like " + join(disliked, "or"))
    named = said_words(cons)
    phrases = [" ".join(w for w in fold(p).split() if w not in named) for p in avoided_phrases(avoided)]
    phrases = [p for p in dict.fromkeys(phrases) if p]
    # where texts say an item is without the word ("Powder Free", "Anti Fog"), those are what is wanted
    free = [f"'{p}'" for p in phrases if index.free_of(p.split()).any()]
    left_out = [f"'{p}'" for p in phrases if f"'{p}'" not in free]
    if left_out:
        avoid.append("leaving out any that mention " + join(left_out, "or"))
    if free:
        avoid.append("preferring those free of " + join(free, "or"))
    text = " ".join(parts[:1]) + (", " + ", ".join(parts[1:]) if parts[1:] else "")
    if avoid:
        text += ", " + ", ".join(avoid)
    if state.soft and not wanted and not liked:
        text += f", matching '{state.soft[-1]}'"
    return text


def compose(
    q: Query,
    state: DialogueState,
    index: CatalogueIndex,
    titles: Sequence[str],
    k: int,
    relaxed: Sequence[Constraint] = (),
    unsupported: Sequence[str] = (),
    about: int | None = None,
    unknown_avoid: Sequence[str] = (),
    weak_match: str | None = None,
    standing: Sequence[Constraint] | None = None,
) -> str:
    """A short reply: what changed this turn, then what the list is."""
    noun, nouns = index.noun, index.nouns
    if q.intent == "other_language":
        return (
            f"I only understand English so far (your message looks like {language_name(q.language)}). "
            f"Could you tell me in English what kind of {nouns} you would like?"
        )
    if q.intent == "not_understood":
        return (
            f"Sorry, I didn't understand that. Tell me what kind of {nouns} you like, "
            "or name one you enjoyed."
        )
    if q.intent == "off_topic":
        refusal = f"I can only help you find {nouns} here, so I can't help with that."
        if titles:
            return f"{refusal} Here is the list for what you asked earlier."
        return f"{refusal} What kind of {noun} are you looking for?"
    lead: list[str] = []
    if q.intent == "reset":
        lead.append("Starting over.")
    said = state.said[-1] if state.said else ""
    if q.intent == "chit_chat" and g.HELP.search(said):
        facets = [f.name for f in index.spec.facets if f.name not in ("title", RATINGS)]
        what = f" ({', '.join(facets)})" if facets else ""
        lead.append(
            f"I recommend {nouns} from this catalogue. Tell me what you are in the mood for, in your own "
            f"words, what it should or should not be{what}, or a {noun} you liked; then say what to change "
            f"('more like the second one', 'not that', 'newer')."
        )
    elif q.intent == "chit_chat" and g.BYE.search(said):
        return "You're welcome! Come back any time." if g.THANKS.search(said) else "Bye! Come back any time."
    elif q.intent == "chit_chat" and g.THANKS.search(said):
        lead.append("You're welcome!")
    elif q.intent == "chit_chat":
        lead.append("Hi!" if not state.shown_before else "Sure.")
    for title in q.unresolved_titles:
        if not index.lexical.mentions_all(title):  # "I love Tom Hanks": no title, but texts name him
            lead.append(f"I couldn't find '{title}' in the catalogue.")
    for what in unsupported:
        if what == "length":
            lead.append(f"This catalogue does not say how long each {noun} is, so I can't go by length.")
        elif what == "language":
            lead.append(f"This catalogue does not say which language each {noun} is in, so I can't go by it.")
        elif what == "country":
            lead.append(
                f"This catalogue does not say which country each {noun} comes from, so I can only look for "
                f"the word in their descriptions."
            )
        elif what == "people":
            lead.append(
                f"This catalogue does not say who made or stars in each {noun}; name the person and I'll "
                f"look for them in the descriptions."
            )
        elif what.startswith("kind:"):
            kind = plural(what[5:])
            lead.append(f"This catalogue has {nouns} only, no {kind}; here are {nouns} instead.")
        else:
            lead.append(f"This catalogue has no {what}, so I can't filter by it.")
    if unknown_avoid:
        what = " or ".join(f"'{w}'" for w in unknown_avoid)
        lead.append(f"Nothing in the catalogue mentions {what}, so I couldn't leave those {nouns} out.")
    seen = [r.title for r in q.refs if r.stance in ("seen", "rejected")]
    if seen:
        lead.append(f"Noted, I'll leave out {join(seen[:3])}{' and others' if len(seen) > 3 else ''}.")
    if relaxed:
        lead.append(
            f"Nothing fits all of that, so I dropped {join([constraint_label(c, index) for c in relaxed])}."
        )
    if about is not None:
        lead.append(describe_item(about, index))
    elif q.intent == "ask_about":
        lead.append(f"I'm not sure which {noun} you mean; name it, or say 'the second one'.")
    n = len(titles)
    desc = describe(state, index, relaxed, standing, [] if unknown_avoid else state.avoid[-1:])
    if n == 0:
        main = f"Nothing in the catalogue fits {desc}; try dropping a constraint."
    elif not state.has_preferences or (unknown_avoid and desc == index.nouns):
        main = f"Here are {n} popular {nouns} to start; tell me what you are in the mood for."
    elif about is not None:
        main = f"Here are {n} {nouns} you may like next."
    elif weak_match:
        main = f"Nothing in the catalogue matches '{weak_match}' closely; here are the {n} nearest {nouns}."
    elif n == 1 and k > 1:
        main = f"Only one fits ({desc}); here it is."
    elif n < k:
        main = f"Only {n} {desc} fit; here they are."
    else:
        main = f"Here are {n} {desc}."
    return " ".join([*lead, main])


def _repeats(part: str, said: set[str]) -> bool:
    """Whether most words of a text part are words of facet values already said (the category path in a
    product's text, a film's genres)."""
    words = fold(part).split()
    return bool(words) and sum(w in said for w in words) >= 0.6 * len(words)


def describe_item(idx: int, index: CatalogueIndex, max_chars: int = 240) -> str:
    """What the catalogue knows about one item, and nothing else: title, year, facet values, its text."""
    facts = [index.label(idx)]
    said: set[str] = set()
    for name, values in index.facet_values(idx).items():
        facts.append(f"{name}: {join(values[:8])}")
        said.update(w for v in values for w in fold(v).split())
    for name, number in index.numbers.items():
        v = number.values[idx]
        if number.spec.kind == "number" and np.isfinite(v):
            facts.append(f"{name}: {number.spec.unit or ''}{v:g}")
    rated = rating_fact(idx, index)
    if rated:
        facts.append(rated)
    text = index.texts[idx]
    title = index.titles[idx]
    rest = text[len(title) :].lstrip(". ") if text.startswith(title) else text
    # the text's parts that only repeat the facet values just listed ("Horror" after "genre: Horror") go
    parts = [p for p in re.split(r"\.\s+", rest.strip().rstrip(".")) if p.strip()]
    rest = ". ".join(p for p in parts if not _repeats(p, said))
    rest = f"{rest}." if rest and not rest.endswith((".", "…")) else rest
    sentence = "; ".join(facts) + "."
    if rest:
        sentence += " " + (rest if len(rest) <= max_chars else rest[: max_chars - 1].rsplit(" ", 1)[0] + "…")
    return sentence
