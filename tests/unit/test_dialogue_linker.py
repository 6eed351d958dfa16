"""Title linking: exact keys, typo repair, evidence rules against coincidental single-word matches,
sequels."""

from __future__ import annotations

import numpy as np
import pytest

from components.dialogue.linker import TitleLinker, display_title, title_keys
from components.dialogue.text import tokenize

TITLES = [
    "Saw (2004)", "Date Night (2010)", "Paris, Texas (1984)", "Paris (2008)", "Toy Story (1995)",
    "Toy Story 3 (2010)", "Heat (1995)", "Collateral (2004)", "Inception (2010)", "Insidious (2010)",
    "Matrix, The (1999)", "Get Out (2017)", "Click (2006)", "It (1990)", "Blade Runner 2049 (2017)",
    "Inglourious Basterds (2009)", "Once (2006)", "Mirrors (2008)", "Alien (1979)", "Keanu (2016)",
]  # fmt: skip


@pytest.fixture(scope="module")
def linker() -> TitleLinker:
    years = np.array([float(t[-5:-1]) for t in TITLES])
    return TitleLinker.build(TITLES, years, np.linspace(1, 0, len(TITLES)))


def finder(titles: list[str]):  # noqa: ANN201 - a function of a message
    """A linker over ``titles`` (years from the titles, equal popularity) and what it links in a message."""
    lk = TitleLinker.build(titles, np.array([float(t[-5:-1]) for t in titles]), np.ones(len(titles)))

    def found(message: str) -> list[str]:
        toks = tokenize(message)
        return [titles[x.item] for x in lk.link(toks, [True] * len(toks))[0]]

    return found


def linked(linker: TitleLinker, message: str) -> list[str]:
    toks = tokenize(message)
    links, _ = linker.link(toks, [True] * len(toks))
    return [TITLES[lk.item] for lk in links]


def test_title_keys_and_display() -> None:
    assert title_keys("Matrix, The (1999)") == (["the matrix", "matrix"], 1999)
    assert display_title("Matrix, The (1999)") == "The Matrix (1999)"
    assert "se7en" in title_keys("Seven (Se7en) (1995)")[0]


@pytest.mark.parametrize(
    "message",
    [
        "Saw it last night, it was good",
        "a good movie for a date night",
        "what's the weather in Paris?",
        "it is about a robot",
        "click on the link",
        "get out of here",
        "How do you feel about Keanu Reeves?",
    ],
)
def test_coincidental_words_are_not_titles(linker, message) -> None:
    assert linked(linker, message) == []


@pytest.mark.parametrize(
    ("message", "titles"),
    [
        ("I loved Heat and Collateral", ["Heat (1995)", "Collateral (2004)"]),
        ("i believe inception and Mirrors", ["Inception (2010)", "Mirrors (2008)"]),
        ("I have also watched incidious really likes that one", ["Insidious (2010)"]),
        ("have you seen Saw?", ["Saw (2004)"]),
        ("Click (2006) and Get Out (2017)", ["Click (2006)", "Get Out (2017)"]),
        ("something like the matrix", ["Matrix, The (1999)"]),
        ("Blade Runner 2049 was great", ["Blade Runner 2049 (2017)"]),
        ("Inglorious Basterds is my favourite", ["Inglourious Basterds (2009)"]),
        ("nothing like Alien", ["Alien (1979)"]),
    ],
)
def test_titles_people_name(linker, message, titles) -> None:
    assert linked(linker, message) == titles


def test_a_sequel_not_in_the_catalogue_is_unresolved(linker) -> None:
    toks = tokenize("my kids loved Toy Story 4")
    links, unresolved = linker.link(toks, [True] * len(toks))
    assert links == [] and [u.text for u in unresolved] == ["toy story 4"]
    assert linked(linker, "we watched Toy Story 3 again") == ["Toy Story 3 (2010)"]


def test_lookup_and_fuzzy(linker) -> None:
    assert TITLES[linker.lookup("The Matrix")] == "Matrix, The (1999)"
    assert TITLES[linker.lookup("toy story 1995")] == "Toy Story (1995)"
    assert TITLES[linker.fuzzy("Inceptoin")] == "Inception (2010)"
    assert linker.fuzzy("A Film That Does Not Exist") is None


def test_titles_written_without_their_spaces_or_apostrophes_link() -> None:
    """People type "spiderman", "castaway", "schindlers list" (INSPIRED: "Castaway is one of my all time
    favorites"): the folded keys are "spider man", "cast away", "schindler s list"."""
    found = finder(
        ["Spider-Man (2002)", "Cast Away (2000)", "Schindler's List (1993)", "Any Given Sunday (1999)"]
    )

    assert found("I loved spiderman") == ["Spider-Man (2002)"]
    assert found("ooo yes Castaway is one of my all time favorites!") == ["Cast Away (2000)"]
    assert found("schindlers list was great") == ["Schindler's List (1993)"]
    assert found("any given day is fine") == []


def test_a_common_noun_phrase_after_an_article_is_not_a_title() -> None:
    """ "a scary movie that isn't too bloody" liked the film Scary Movie (2000); "something, but not a
    superhero movie" turned down the film Superhero Movie (2008)."""
    found = finder(["Scary Movie (2000)", "Big Night (1996)", "Superhero Movie (2008)"])

    assert found("a scary movie that isn't too bloody for a teenager") == []
    assert found("I loved scary movie") == ["Scary Movie (2000)"]
    assert found("we saw Big Night yesterday") == ["Big Night (1996)"]
    assert found("something, but not a superhero movie") == []
    assert found("I loved superhero movie") == ["Superhero Movie (2008)"]
    assert found("not a Superhero Movie fan") == ["Superhero Movie (2008)"]
    # without an article too, unless a cue says it is a title ("I loved scary movie" above)
    assert found("scary movie but not about ghosts or demons") == []
    assert found("superhero movie please") == []


def test_a_place_after_set_in_is_no_title() -> None:
    """ "something that takes place in Tokyo" liked the film Tokyo! (2008)."""
    found = finder(["Tokyo! (2008)", "Paris, Texas (1984)"])

    assert found("something that takes place in Tokyo") == []
    assert found("I loved Tokyo") == ["Tokyo! (2008)"]


def test_a_lower_case_word_before_a_kind_noun_is_no_title() -> None:
    """ "Any good heist movies?" liked the film Heist (2001) instead of asking for heist films."""
    found = finder(["Heist (2001)", "Alien (1979)"])

    assert found("Any good heist movies?") == []
    assert found("heist movie from the 60s") == []  # singular too (it linked Heist, and 'heist' was lost)
    assert found("I loved Heist") == ["Heist (2001)"]
    assert found("I love the Alien films") == ["Alien (1979)"]
    assert found("I love the Alien film") == ["Alien (1979)"]


def test_a_time_typed_in_lower_case_is_no_title() -> None:
    """ "What did you watch last night?" was read as having seen Last Night (1998)."""
    found = finder(["Last Night (1998)", "Tomorrow (1972)"])

    assert found("What did you watch last night?") == []
    assert found("I watched Last Night and loved it") == ["Last Night (1998)"]


def test_a_lowercase_title_with_a_typo_links_around_a_rare_title_word() -> None:
    """ "I lovd forest gump and shawshank" linked nothing: lower case, a typo, and a title's distinctive
    first word alone. A span around a rare title word that matches a title up to typos links; the same
    words typed right are left to the exact linker's evidence rules."""
    titles = ["Forrest Gump (1994)", "Shawshank Redemption, The (1994)", "Forest Warrior (1996)"]
    found = finder(titles)

    assert sorted(found("I lovd forest gump and shawshank")) == [titles[0], titles[1]]
    assert found("the forest was dark and scary") == []
