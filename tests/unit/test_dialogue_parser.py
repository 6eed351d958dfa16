"""Parser: table-driven constraint extraction over a real MovieLens-100K catalogue, plus title matching."""

from __future__ import annotations

import random

import pytest

from components.dialogue.catalogue import TitleIndex, display_title, query_key, title_keys
from components.dialogue.parser import MessageParser, ParsedTurn
from tests.unit.dialogue_fixtures import make_engine

TOY_STORY, ALADDIN, STAR_WARS, JURASSIC, GODFATHER, ALIENS, ALIEN, TERMINATOR, SCREAM = (
    "1", "95", "50", "82", "127", "176", "183", "195", "288",
)  # fmt: skip
SHOWN = ["50", "1", "183"]  # first, second, third (= last)


@pytest.fixture(scope="module")
def parser() -> MessageParser:
    return make_engine().parser


def parse(parser: MessageParser, message: str, shown: list[str] | None = None) -> ParsedTurn:
    cat = parser.catalogue
    dense = [cat.index(s) for s in (shown or [])]
    return parser.parse(message, [d for d in dense if d is not None])


def raw(parser: MessageParser, dense: list[int]) -> list[str]:
    return [parser.catalogue.item_ids[i] for i in dense]


CASES = [
    # message, expected fields (categories/rejected compared as sets, refs as raw ids)
    ("a funny sci-fi film from the 90s", {"categories": {"Comedy", "Sci-Fi"}, "years": (1990, 1999)}),
    ("something scary from the 1980s", {"categories": {"Horror"}, "years": (1980, 1989)}),
    ("science fiction for the kids", {"categories": {"Sci-Fi", "Children's"}}),
    ("a romantic animated movie", {"categories": {"Romance", "Animation"}}),
    ("a rom-com please", {"categories": {"Comedy", "Romance"}}),
    ("a film noir or a western", {"categories": {"Film-Noir", "Western"}}),
    ("war, musical, documentary, mystery", {"categories": {"War", "Musical", "Documentary", "Mystery"}}),
    ("a crime thriller adventure fantasy drama with action",
     {"categories": {"Crime", "Thriller", "Adventure", "Fantasy", "Drama", "Action"}}),
    ("no horror", {"categories": set(), "rejected": {"Horror"}}),
    ("not a comedy, more of a thriller", {"categories": {"Thriller"}, "rejected": {"Comedy"}}),
    ("without romance or drama", {"rejected": {"Romance", "Drama"}, "categories": set()}),
    ("no horror and a comedy", {"rejected": {"Horror"}, "categories": {"Comedy"}}),
    ("anything but westerns", {"rejected": {"Western"}, "categories": set()}),
    ("I don't want anything scary", {"rejected": {"Horror"}, "categories": set()}),
    ("no, I want a comedy", {"categories": {"Comedy"}, "rejected": set()}),
    ("funny but not scary", {"categories": {"Comedy"}, "rejected": {"Horror"}}),
    ("nothing like Alien", {"neg": [ALIEN], "rejected": set()}),
    ("a comedy, nothing like Alien, but funny",
     {"neg": [ALIEN], "categories": {"Comedy"}, "rejected": set()}),
    ("something like The Terminator", {"pos": [TERMINATOR]}),
    ("similar to Toy Story", {"pos": [TOY_STORY]}),
    ("like toy story 1995", {"pos": [TOY_STORY]}),
    ("like Godfather, The", {"pos": [GODFATHER]}),
    ("like the godfather from the 70s", {"pos": [GODFATHER], "years": (1970, 1979)}),
    ("similar to Jurasic Park", {"pos": [JURASSIC]}),
    ("like Toy Story and Aladdin", {"pos": [TOY_STORY, ALADDIN]}),
    ("like Star Wars but darker", {"pos": [STAR_WARS], "tone": -1}),
    ("a funny one, not like Scream", {"neg": [SCREAM], "categories": {"Comedy"}}),
    ("I loved Aliens", {"pos": [ALIENS]}),
    ("I'd like a comedy", {"pos": [], "categories": {"Comedy"}}),
    ("I like comedies", {"pos": [], "categories": {"Comedy"}}),
    ("I'd like something funny", {"pos": [], "categories": {"Comedy"}}),
    ("similar to Blorptastic Zorg", {"pos": [], "unresolved": ["blorptastic zorg"]}),
    ("from 1995", {"years": (1995, 1995)}),
    ("after 2000", {"years": (2001, None)}),
    ("since 1990", {"years": (1990, None)}),
    ("before 1980", {"years": (None, 1979)}),
    ("until 1980", {"years": (None, 1980)}),
    ("between 1990 and 1995", {"years": (1990, 1995)}),
    ("from 1990 to 1995", {"years": (1990, 1995)}),
    ("1990-1995", {"years": (1990, 1995)}),
    ("1995 or later", {"years": (1995, None)}),
    ("in the late 80s", {"years": (1987, 1989)}),
    ("early nineties", {"years": (1990, 1993)}),
    ("a '70s film", {"years": (1970, 1979)}),
    ("a 90's film", {"years": (1990, 1999)}),
    ("older than 1970", {"years": (None, 1969), "critique": None}),
    ("before the 80s", {"years": (None, 1979)}),
    ("more recent", {"critique": "newer"}),
    ("newer please", {"critique": "newer"}),
    ("older", {"critique": "older"}),
    ("something lighter", {"tone": 1}),
    ("not so dark", {"tone": 1}),
    ("darker", {"tone": -1}),
    ("start over", {"reset": True}),
    ("reset, a western", {"reset": True, "categories": {"Western"}}),
    ("a drama instead", {"replace": True, "categories": {"Drama"}}),
    ("a heist film with a twist ending, no horror",
     {"categories": {"Crime"}, "rejected": {"Horror"}, "text_has": ["twist", "ending"],
      "text_lacks": ["horror"]}),
]  # fmt: skip


@pytest.mark.parametrize(("message", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parser_cases(parser: MessageParser, message: str, expected: dict) -> None:
    p = parse(parser, message)
    if "categories" in expected:
        assert set(p.categories) == expected["categories"], p
    if "rejected" in expected:
        assert set(p.rejected_categories) == expected["rejected"], p
    if "years" in expected:
        assert p.year_set and (p.year_min, p.year_max) == expected["years"], p
    if "pos" in expected:
        assert raw(parser, p.positive_refs) == expected["pos"], p
    if "neg" in expected:
        assert raw(parser, p.negative_refs) == expected["neg"], p
    if "tone" in expected:
        assert p.tone == expected["tone"], p
    if "critique" in expected:
        assert p.year_critique == expected["critique"], p
    if "reset" in expected:
        assert p.reset is expected["reset"]
    if "replace" in expected:
        assert p.replace_categories is expected["replace"]
    if "unresolved" in expected:
        assert p.unresolved_titles == expected["unresolved"]
    for word in expected.get("text_has", []):
        assert word in p.text.split(), p.text
    for word in expected.get("text_lacks", []):
        assert word not in p.text.split(), p.text


ORDINAL_CASES = [
    ("another one like the second", {"pos": ["1"]}),
    ("more like the 2nd one", {"pos": ["1"]}),
    ("not the first one", {"rejected": ["50"]}),
    ("I hate the third", {"neg": ["183"], "rejected": ["183"]}),
    ("seen the last one already", {"rejected": ["183"]}),
    ("number 2 looks good", {"pos": ["1"]}),
    ("more like the second, not the first", {"pos": ["1"], "rejected": ["50"]}),
    ("the ninth one", {}),  # out of range: ignored
]


@pytest.mark.parametrize(("message", "expected"), ORDINAL_CASES, ids=[c[0] for c in ORDINAL_CASES])
def test_references_to_the_shown_list(parser: MessageParser, message: str, expected: dict) -> None:
    p = parse(parser, message, SHOWN)
    assert raw(parser, p.positive_refs) == expected.get("pos", [])
    assert raw(parser, p.negative_refs) == expected.get("neg", [])
    assert raw(parser, p.rejected_items) == expected.get("rejected", [])


def test_ordinals_need_a_shown_list(parser: MessageParser) -> None:
    p = parse(parser, "another one like the second")
    assert p.positive_refs == [] and p.rejected_items == []


def test_title_keys_and_lookup() -> None:
    assert title_keys("Matrix, The (1999)") == (["the matrix", "matrix"], 1999)
    assert title_keys("Seven (Se7en) (1995)")[0] == ["seven", "se7en"]
    assert query_key("The Matrix (1999)") == ("the matrix", 1999)
    assert query_key("matrix, the") == ("the matrix", None)
    import numpy as np

    titles = ["Matrix, The (1999)", "Matrix Reloaded, The (2003)", "Heat (1995)", "Heat (1972)"]
    index = TitleIndex.build(
        titles, np.array([1999.0, 2003.0, 1995.0, 1972.0]), np.array([1.0, 0.5, 0.9, 0.1])
    )
    for typed in ("The Matrix", "the matrix", "Matrix", "Matrix, The (1999)", "MATRIX 1999"):
        assert index.exact(typed) == 0, typed
    assert index.exact("heat") == 2  # the more popular of two same-named titles
    assert index.exact("Heat (1972)") == 3  # unless the year says otherwise
    assert index.fuzzy("the matrx reloaded") == (1, pytest.approx(0.97, abs=0.03))
    assert index.fuzzy("zzzz qqqq") is None
    assert display_title("Matrix, The (1999)") == "The Matrix (1999)"


def test_random_messages_never_break_invariants(parser: MessageParser) -> None:
    rng = random.Random(7)
    words = [
        "funny", "no", "not", "horror", "like", "Alien", "the", "second", "90s", "after", "1995", "older",
        "lighter", "without", "romance", "kids", "similar", "to", "Toy", "Story", ",", "and", "or", "drama",
        "between", "1980", "reset", "anything", "but", "western", "sci-fi", "#3", "darker", "recent", "xyzzy",
    ]  # fmt: skip
    names = set(parser.catalogue.category_names)
    for _ in range(400):
        msg = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        p = parse(parser, msg, SHOWN)
        assert set(p.categories) <= names and set(p.rejected_categories) <= names, msg
        assert not set(p.categories) & set(p.rejected_categories), msg
        n = len(parser.catalogue)
        assert all(0 <= i < n for i in p.positive_refs + p.negative_refs + p.rejected_items), msg
        assert parse(parser, msg, SHOWN) == p  # deterministic
