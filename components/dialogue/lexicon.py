"""Words the parser knows: category synonyms, tone, negation cues, clause boundaries, stopwords.

Category synonyms are keyed by *canonical* names and matched to a catalogue's own category names by folded
spelling (``"Sci-Fi"``, ``"Science Fiction"`` and ``"scifi"`` are one canonical entry), so a catalogue whose
genres are spelled differently still gets the synonyms; categories without an entry are still recognised by
their own name and plural.
"""

from __future__ import annotations

import re

from components.dialogue.catalogue import fold

# canonical category -> (spellings a catalogue may use, phrases people say)
CATEGORY_SYNONYMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Comedy": (
        ("comedy", "comedies"),
        (
            "funny",
            "comedy",
            "comedies",
            "comedic",
            "hilarious",
            "humorous",
            "humour",
            "humor",
            "laughs",
            "laugh",
        ),
    ),
    "Horror": (
        ("horror",),
        (
            "scary",
            "horror",
            "horrors",
            "frightening",
            "terrifying",
            "creepy",
            "spooky",
            "slasher",
            "gory",
            "zombie",
            "zombies",
            "scare me",
        ),
    ),
    "Sci-Fi": (
        ("sci fi", "science fiction", "scifi", "sf"),
        ("sci-fi", "sci fi", "scifi", "science fiction", "science-fiction", "futuristic", "space opera"),
    ),
    "Children's": (
        ("children s", "children", "kids", "family", "childrens"),
        (
            "kids",
            "kid",
            "children",
            "children's",
            "childrens",
            "family",
            "family-friendly",
            "for my son",
            "for my daughter",
        ),
    ),
    "Romance": (
        ("romance",),
        ("romantic", "romance", "romances", "love story", "love stories"),
    ),
    "Animation": (
        ("animation", "animated"),
        ("animated", "animation", "cartoon", "cartoons", "anime"),
    ),
    "War": (("war",), ("war", "wartime", "war film", "war movie", "military")),
    "Western": (("western", "westerns"), ("western", "westerns", "cowboy", "cowboys")),
    "Musical": (("musical", "musicals", "music"), ("musical", "musicals", "song and dance")),
    "Documentary": (("documentary", "documentaries"), ("documentary", "documentaries", "docu")),
    "Mystery": (("mystery",), ("mystery", "mysteries", "whodunit", "whodunnit", "detective")),
    "Thriller": (("thriller", "thrillers"), ("thriller", "thrillers", "suspense", "suspenseful")),
    "Crime": (("crime",), ("crime", "crimes", "gangster", "gangsters", "mafia", "mob", "heist", "heists")),
    "Adventure": (("adventure", "adventures"), ("adventure", "adventures", "adventurous")),
    "Fantasy": (
        ("fantasy",),
        ("fantasy", "fantasies", "magical", "magic", "fairy tale", "fairy tales", "fairytale"),
    ),
    "Film-Noir": (("film noir", "noir"), ("film-noir", "film noir", "noir")),
    "Drama": (("drama", "dramas"), ("drama", "dramas", "dramatic")),
    "Action": (("action",), ("action", "action-packed", "explosions", "martial arts", "shootouts")),
}
# phrases naming several categories at once
MULTI_CATEGORY: dict[str, tuple[str, ...]] = {
    "rom-com": ("Comedy", "Romance"),
    "romcom": ("Comedy", "Romance"),
    "romantic comedy": ("Comedy", "Romance"),
    "romantic comedies": ("Comedy", "Romance"),
}

# tone critiques: canonical category -> weight (+ preferred, - avoided)
LIGHT_TONE: dict[str, float] = {
    "Comedy": 1.0, "Children's": 1.0, "Animation": 1.0, "Musical": 0.5, "Romance": 0.3,
    "Horror": -1.0, "War": -1.0, "Thriller": -1.0, "Film-Noir": -0.5, "Crime": -0.5, "Drama": -0.5,
}  # fmt: skip
DARK_TONE: dict[str, float] = {
    "Horror": 1.0, "Thriller": 1.0, "Crime": 1.0, "Film-Noir": 1.0, "War": 0.5, "Mystery": 0.5, "Drama": 0.5,
    "Children's": -1.0, "Animation": -1.0, "Musical": -1.0, "Comedy": -0.5,
}  # fmt: skip

LIGHTER = re.compile(
    r"\b(?:lighter|light[- ]?hearted|something light|light|less (?:dark|serious|heavy|intense|grim|violent)|"
    r"not (?:so |too |as |that )?(?:dark|serious|heavy|grim|depressing|intense|sad|violent)|feel[- ]?good|"
    r"happier|happy|cheerful|upbeat|uplifting|fun)\b"
)
DARKER = re.compile(
    r"\b(?:darker|dark|grim|grimmer|bleak|gritty|grittier|more serious|serious|heavier|heavy|disturbing|"
    r"edgier|edgy|twisted|intense|depressing|violent)\b"
)
NEWER = re.compile(
    r"\b(?:more recent|most recent|newer|newest|recent|latest|modern|more modern|less old|new ones?|"
    r"not (?:so |too |as |that )?old)\b"
)
OLDER = re.compile(
    r"\b(?:older|oldest|(?<!year )(?<!years )old|classics?|vintage|less recent|old[- ]school|retro|"
    r"not (?:so |too |as |that )?recent|earlier ones?)\b"
)
RESET = re.compile(
    r"\b(?:start(?:ing)? (?:over|again|afresh)|reset|restart|from scratch|new search|"
    r"forget (?:it|everything|that)|clear (?:everything|all)|scratch that)\b"
)
INSTEAD = re.compile(r"\b(?:instead|rather|switch to|change (?:it )?to|make it)\b")

NEGATION_CUES: frozenset[str] = frozenset(
    {
        "no", "not", "nothing", "without", "never", "avoid", "except", "excluding", "hate", "dislike",
        "don't", "dont", "doesn't", "doesnt", "isn't", "isnt", "aren't", "won't", "none", "neither", "nor",
        "less", "fewer", "skip", "nope", "minus", "w/o", "didn't", "didnt",
    }
)  # fmt: skip
NEGATION_BIGRAMS: frozenset[tuple[str, str]] = frozenset({("anything", "but"), ("other", "than")})
# tokens that end a negation's scope ("or"/"nor" keep it: "no horror or war")
CLAUSE_BOUNDARIES: frozenset[str] = frozenset(
    {",", ".", ";", ":", "!", "?", "(", ")", "but", "and", "though", "although", "however", "instead",
     "rather", "yet", "just", "only", "so", "then", "plus", "also"}
)  # fmt: skip
NEGATION_WINDOW = 5

# title references: trigger phrase -> polarity (+1 like it, -1 unlike it)
REFERENCE_TRIGGERS: dict[str, int] = {
    "similar to": 1, "like": 1, "such as": 1, "in the vein of": 1, "reminiscent of": 1, "in the style of": 1,
    "along the lines of": 1, "loved": 1, "love": 1, "enjoyed": 1, "liked": 1, "fan of": 1, "a la": 1,
    "unlike": -1, "different from": -1, "hated": -1, "hate": -1, "disliked": -1, "can't stand": -1,
    "anything but": -1,
}  # fmt: skip
STRONG_TRIGGERS: frozenset[str] = frozenset(
    {"similar to", "in the vein of", "reminiscent of", "in the style of", "along the lines of", "unlike",
     "different from"}
)  # fmt: skip
# a reference phrase starting with one of these is not a title ("I'd like something funny")
REFERENCE_FILLERS: frozenset[str] = frozenset(
    {"something", "anything", "stuff", "that", "this", "it", "those", "these", "them", "more", "one", "ones",
     "movie", "movies", "film", "films", "to", "some", "any", "watching", "watch", "you", "i", "me",
     "what", "how", "when", "if"}
)  # fmt: skip
# fuzzy title matching stops at these ("like Matrx from the 90s" -> "Matrx")
SOFT_BOUNDARIES: frozenset[str] = frozenset(
    {",", "from", "with", "and", "or", "that", "which", "please", "released", "made", "but", "without", "set",
     "for", "in", "not", "no", "only", "though", "except"}
)  # fmt: skip

ORDINALS: dict[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7, "8th": 8,
    "9th": 9, "10th": 10, "last": -1,
}  # fmt: skip
ORDINAL_REJECT_CUES: frozenset[str] = frozenset(
    {"not", "no", "don't", "dont", "remove", "drop", "without", "except", "skip", "seen", "watched",
     "already", "nope", "exclude", "lose", "hide", "nah"}
)  # fmt: skip
ORDINAL_DISLIKE_CUES: frozenset[str] = frozenset(
    {"hate", "hated", "dislike", "disliked", "awful", "bad", "boring", "terrible", "unlike", "meh", "worst"}
)  # fmt: skip

_STOPWORD_TEXT = """
a an the and or but of to in on at for from with by about as into than then so too very really just
i i'm i'd i've me my we us our you your it it's its this that these those there here what which who how
is are was were be been being am do does did can could would should will shall may might must
want wanted wanna need like likes liked love something anything some any one ones another other more most
movie movies film films flick flicks show shows watch watching watched see seen please give find recommend
suggest suggestion suggestions looking look get got let let's maybe perhaps also again kind sort type bit
good great nice tonight today now thing things stuff lot lots ok okay yes yeah well make made
similar same different new old year years era decade time times released release around
hi hello hey thanks thank cheers sure yep hmm ah oh pick picks option options recommendation recommendations
tell what's whats got gotta try trying idea ideas mood feel feeling evening night weekend
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())

NUMBER_WORDS: dict[str, int] = {
    "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70,
    "eighties": 80, "nineties": 90,
}  # fmt: skip


def phrase_pattern(phrase: str) -> str:
    """Regex for a phrase whose words may be joined by spaces, hyphens or apostrophes (or nothing)."""
    words = [re.escape(w) for w in fold(phrase).split()]
    return r"[\s'’-]*".join(words)


def plural(word: str) -> str:
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy")):
        return word[:-1] + "ies"
    return word if word.endswith("s") else word + "s"


def canonical_for(category: str) -> str | None:
    """The canonical synonym entry a catalogue category name belongs to, if any."""
    key = fold(category)
    for canon, (spellings, _) in CATEGORY_SYNONYMS.items():
        if (
            key == fold(canon)
            or key in spellings
            or key.replace(" ", "") in {s.replace(" ", "") for s in spellings}
        ):
            return canon
    return None


def reserved_words() -> frozenset[str]:
    """Words that alone never make a title reference (synonyms, stopwords, cues)."""
    words: set[str] = set(STOPWORDS) | set(NEGATION_CUES) | set(ORDINALS)
    for _, phrases in CATEGORY_SYNONYMS.values():
        for p in phrases:
            words.update(fold(p).split())
            words.update(plural(w) for w in fold(p).split())
    return frozenset(words)
