"""The built-in planner: messages -> typed Query (constraints with negation scope and comparatives, titles
with years, stances, shown-list references, critiques, intent, language), on the real MovieLens-100K
catalogue."""

from __future__ import annotations

import pytest

from components.dialogue.planner import BuiltinPlanner, PlanContext
from components.dialogue.query import Constraint, avoided_phrases
from tests.unit.dialogue_fixtures import fixture, tiny_index


@pytest.fixture(scope="module")
def planner() -> BuiltinPlanner:
    return BuiltinPlanner(fixture().index)


def ranges(q, facet="year"):
    return [(c.op, c.low, c.high, c.ranges) for c in q.constraints if c.facet == facet]


def values(q, op="is"):
    return sorted(c.value for c in q.constraints if c.op == op and c.facet == "genre")


def refs(q):
    return {(r.title, r.stance) for r in q.refs}


def test_the_motivating_request(planner) -> None:
    q = planner.plan("a funny sci-fi film from the 90s, nothing like Alien")
    assert values(q) == ["Comedy", "Sci-Fi"]
    assert ranges(q) == [("between", 1990.0, 1999.0, ())]
    assert refs(q) == {("Alien (1979)", "disliked")}
    assert q.intent == "recommend"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("nothing made before 1990", ("at_least", 1990.0, None)),
        ("films before 1990", ("at_most", 1989.0, None)),
        ("after 2000 please", ("at_least", 2001.0, None)),
        ("since 2010", ("at_least", 2010.0, None)),
        ("between 2004 and 1995", ("between", 1995.0, 2004.0)),
        ("not from the 90s", ("not_between", 1990.0, 1999.0)),
        ("the late eighties", ("between", 1987.0, 1989.0)),
        ("1995 or later", ("at_least", 1995.0, None)),
    ],
)
def test_years_with_comparatives_and_negation(planner, message, expected) -> None:
    [(op, low, high, _)] = ranges(planner.plan(message))
    assert op == expected[0]
    assert (low if op != "at_most" else high) == expected[1]
    if expected[2] is not None:
        assert high == expected[2]


def test_a_negation_holds_across_or(planner) -> None:
    assert values(planner.plan("I am not a huge fan of sci fi or action films."), "is_not") == [
        "Action", "Sci-Fi",
    ]  # fmt: skip
    assert ranges(planner.plan("nothing from the 80s or 90s")) == [
        ("not_between", 1980.0, 1989.0, ()), ("not_between", 1990.0, 1999.0, ()),
    ]  # fmt: skip
    q = planner.plan("I don't know what I want, maybe a comedy or a thriller")
    assert values(q) == ["Comedy", "Thriller"] and values(q, "is_not") == []


def test_two_options_are_never_an_empty_range(planner) -> None:
    q = planner.plan("enjoyed Heat, something from 1995 or 2004")
    assert ranges(q) == [("any_of_ranges", None, None, ((1995.0, 1995.0), (2004.0, 2004.0)))]
    assert ("Heat (1995)", "liked") in refs(q)


def test_years_inside_titles_are_titles_not_filters(planner) -> None:
    q = planner.plan("I loved Heat (1995) and Twelve Monkeys")
    assert ranges(q) == []
    assert refs(q) == {("Heat (1995)", "liked"), ("Twelve Monkeys (1995)", "liked")}


def test_negation_scope_stops_at_the_clause(planner) -> None:
    q = planner.plan("no horror or war, but a comedy")
    assert values(q, "is_not") == ["Horror", "War"]
    assert values(q) == ["Comedy"]
    q = planner.plan("a war movie, not about WWII")
    assert values(q) == ["War"] and values(q, "is_not") == []
    assert "wwii" in q.avoid


def test_a_word_that_goes_with_an_asked_category_is_avoided_not_the_category(planner) -> None:
    """'scary but not gory': both words lead to Horror; the wish holds and the gore is avoided text."""
    q = planner.plan("something scary but not gory, from the 80s")
    assert values(q) == ["Horror"] and values(q, "is_not") == []
    assert q.avoid == "gory"
    q = planner.plan("something scary, but not horror")  # the category named itself: the exclusion holds
    assert values(q) == [] and values(q, "is_not") == ["Horror"]
    assert "scary" in q.soft


def test_a_negation_reaches_across_with(planner) -> None:
    q = planner.plan("nothing with Tom Cruise please, I want action")
    assert q.avoid == "tom cruise" and "cruise" not in q.soft and values(q) == ["Action"]
    assert planner.plan("no films with gore").avoid == "gore"
    assert planner.plan("what would you suggest after watching Fargo?").soft == ""  # 'after' asks nothing
    q = planner.plan("no horror, with lots of action")  # "with" after a value still ends the scope
    assert values(q, "is_not") == ["Horror"] and values(q) == ["Action"]


def test_stances_from_cues_and_sentiment(planner) -> None:
    assert refs(planner.plan("I hated Scream")) == {("Scream (1996)", "disliked")}
    assert refs(planner.plan("I watched Fargo last week")) == {("Fargo (1996)", "seen")}
    assert refs(planner.plan("Fargo was brilliant")) == {("Fargo (1996)", "liked")}
    assert refs(planner.plan("something like Babe")) == {("Babe (1995)", "liked")}
    assert refs(planner.plan("what is Braveheart about?")) == {("Braveheart (1995)", "asked_about")}
    q = planner.plan("what is Braveheart about?")
    assert q.intent == "ask_about"


def test_titles_joined_by_and_or_share_one_stance_unless_each_has_its_own(planner) -> None:
    q = planner.plan('Not into movies like "Scream" and "Alien".')
    assert refs(q) == {("Scream (1996)", "disliked"), ("Alien (1979)", "disliked")}
    q = planner.plan("I didn't like Scream, and Fargo was amazing")
    assert refs(q) == {("Scream (1996)", "disliked"), ("Fargo (1996)", "liked")}


def test_names_and_genre_words_say_nothing_about_liking(planner) -> None:
    assert values(planner.plan("My recent favorite is Avengers Infinity War")) == []  # a name, not War
    assert values(planner.plan("I want a War movie")) == ["War"]
    assert ("Scream (1996)", "seen") in refs(planner.plan("I watched Scream, a horror film"))
    assert ("Airplane! (1980)", "rejected") not in refs(planner.plan("I have not seen Airplane! yet"))


def test_small_words_name_no_franchise_and_age_of_people_is_no_critique(planner) -> None:
    q = planner.plan("the scientists are never listened to in the movies")
    assert not [c for c in q.constraints if c.facet == "title"]
    assert planner.plan("I'm actually way older than I look.").critique is None
    assert planner.plan("Isn't it from the 90s?").constraints[0].op == "prefer"


def test_a_comparison_asked_about_the_shown_item_is_no_similarity_request(planner) -> None:
    q = planner.plan("Is the movie a thriller like Fargo?")
    assert refs(q) == {("Fargo (1996)", "mentioned")} and q.critique is None
    q = planner.plan("is there anything like Fargo?")
    assert refs(q) == {("Fargo (1996)", "liked")} and q.critique == "more_like"


def test_common_words_are_not_titles(planner) -> None:
    # "Heat" and "Seven" are titles here, and ordinary words too: no cue, no link
    assert planner.plan("I can't stand the heat in summer, something cool").refs == []
    assert planner.plan("seven of us are watching tonight").refs == []
    assert refs(planner.plan("like Heat")) == {("Heat (1995)", "liked")}


def test_misspelt_titles_are_repaired(planner) -> None:
    assert refs(planner.plan("something like braveheartt")) == {("Braveheart (1995)", "liked")}


def test_shown_list_references(planner) -> None:
    fx = fixture()
    shown = [fx.index.index(i) for i in ("1", "50", "100")]
    ctx = PlanContext(shown=shown)
    q = planner.plan("I saw those already", ctx)
    assert {r.item_id for r in q.refs if r.stance == "seen"} == {"1", "50", "100"}
    q = planner.plan("another one like the second", ctx)
    assert q.critique == "more_like" and q.critique_of == "50"
    q = planner.plan("not the first one", ctx)
    assert {(r.item_id, r.stance) for r in q.refs} == {("1", "rejected")}


@pytest.mark.parametrize(
    ("message", "similar"),
    [
        ("films like Heat", True),
        ("something similar to Heat", True),
        ("I loved Heat, more like that please", True),
        ("anything in the vein of Heat?", True),
        ("I like Heat", False),
        ("I really liked Heat", False),
        ("I saw Heat last week", False),
        ("nothing like Heat", False),
    ],
)
def test_asking_for_more_like_a_title_is_not_just_liking_it(planner, message, similar) -> None:
    q = planner.plan(message)
    heat = next(r for r in q.refs if r.title.startswith("Heat"))
    assert (q.critique == "more_like" and q.critique_of == heat.item_id) is similar, (q.critique, q.refs)


def test_critiques_and_reset(planner) -> None:
    assert planner.plan("something lighter").critique == "lighter"
    assert planner.plan("more recent please").critique == "newer"
    assert planner.plan("start over").intent == "reset"


@pytest.mark.parametrize(
    "message",
    [
        "the latest film we saw was a comedy",
        "My most recent one was a horror flick",
        "the newest movie that I have watched is a thriller",
        "honestly I wouldn't mind something older",
        "I do not mind if they're older",
        "I never watched his newer films",
    ],
)
def test_recency_words_that_describe_a_viewing_or_give_leave_ask_for_nothing(planner, message) -> None:
    q = planner.plan(message)
    assert q.critique is None and not [c for c in q.constraints if c.facet == "year"], (
        q.critique,
        q.constraints,
    )


@pytest.mark.parametrize(
    ("message", "genre", "years"),
    [
        ("The last action movie that I saw was Heat", "Action", None),
        ("animation movie i saw last", "Animation", None),
        ("I just watched a great horror film", "Horror", None),
        ("I'm into action movies and I don't mind comedy as well", "Comedy", None),
        ("Is this a comedy?", "Comedy", None),
        ("Those sound very cool, do they have a lot of action in them?", "Action", None),
        ("Is it from the 90s?", None, (1990.0, 1999.0)),
        ("I used to watch the series back in the early nineteen eighties", None, (1980.0, 1989.0)),
    ],
)
def test_what_people_say_about_themselves_is_a_taste_not_a_filter(planner, message, genre, years) -> None:
    """A value named in a description of a viewing, as leave ("I don't mind comedy") or in a question
    about what was shown boosts (``prefer``) but never filters or excludes."""
    q = planner.plan(message)
    if genre:
        assert genre in values(q, "prefer") and genre not in values(q) + values(q, "is_not"), q.constraints
    if years:
        [(op, low, high, _)] = ranges(q)
        assert (op, low, high) == ("prefer", *years)


def test_a_negation_that_describes_an_item_or_a_viewing_excludes_nothing(planner) -> None:
    q = planner.plan("I thought Heat was pretty intense, it's not quite a thriller but close")
    assert "Thriller" not in values(q, "is_not") + values(q)
    assert "Horror" not in values(q, "is_not") + values(q, "prefer") + values(q)  # no value made up
    assert values(planner.plan("I haven't seen a horror film in years")) == []
    assert values(planner.plan("I haven't seen a horror film in years"), "is_not") == []
    assert values(planner.plan("no horror please"), "is_not") == ["Horror"]


def test_asking_for_what_one_watched_still_filters(planner) -> None:
    assert values(planner.plan("I want to watch a horror movie")) == ["Horror"]
    assert values(planner.plan("Have you seen any good horror movies?")) == ["Horror"]
    assert values(planner.plan("I'm usually into action movies")) == ["Action"]
    assert values(planner.plan("ok, is there any action?")) == ["Action"]


def test_not_too_into_is_a_negation(planner) -> None:
    """ "I'm not too into slasher films" asked for Horror: 'not too' read as a degree ("not too gory")."""
    negated = ["I'm not too into slasher films", "not so keen on horror", "I'm not really a fan of horror",
               "I'm not too big on horror", "not too crazy about horror"]  # fmt: skip
    for message in negated:
        q = planner.plan(message)
        assert values(q, "is_not") == ["Horror"] and values(q) + values(q, "prefer") == [], (message, q)
        assert q.avoid == "" and q.soft == "", (message, q)  # 'keen', 'big' are neither searched nor avoided
    assert values(planner.plan("nothing too scary"), "is_not") == []  # a degree: less of it, not none


@pytest.mark.parametrize(
    "message", ["anything from 2012 to now", "films from 2012-present", "2012 until today"]
)
def test_a_year_to_the_present_is_an_open_range(planner, message) -> None:
    (c,) = [c for c in planner.plan(message).constraints if c.facet == "year"]
    assert (c.op, c.low, c.high) == ("at_least", 2012, None)


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("asdkjh qwe", "not_understood"),
        ("nataka filamu ya kuchekesha", "other_language"),  # Swahili, confidently
        ("what's the weather in Paris?", "off_topic"),
        ("推荐几部90年代的科幻电影", "other_language"),
        ("je voudrais un film drôle des années 90", "other_language"),
        ("hi there", "chit_chat"),
        ("thanks!", "chit_chat"),
        ("hi im good you", "chit_chat"),
        ("recommend me something", "recommend"),
        ("what should I watch tonight", "recommend"),  # a question asking for a pick (was chit-chat)
        ("what's good to watch this weekend", "recommend"),
        ("What did you watch last night?", "chit_chat"),  # conversation, not Last Night (1998)
        ("what should I do about my car", "off_topic"),
    ],
)
def test_intents(planner, message, intent) -> None:
    assert planner.plan(message).intent == intent


def test_keyboard_mashing_is_not_a_foreign_language(planner) -> None:
    """py3langid reads "qwerty asdf" as Kabyle at p=0.20, and no word frequencies can confirm Kabyle."""
    assert planner.plan("qwerty asdf").intent in ("not_understood", "off_topic")


def test_answer_to_a_question_is_on_topic(planner) -> None:
    q = planner.plan("zombies and chainsaws", PlanContext(assistant_asked=True))
    assert q.intent == "recommend"


def test_an_amount_on_a_catalogue_without_prices_is_said_to_be_unsupported(planner) -> None:
    q = planner.plan("a comedy under $20")
    assert q.unsupported == ["prices"] and values(q) == ["Comedy"]
    assert planner.plan("a comedy").unsupported == []


def test_prices_on_a_catalogue_that_has_them() -> None:
    index, _ = tiny_index(
        ["Glue A", "Glue B", "Tape C"],
        attributes=[{"price": 12.5}, {"price": 30}, {"price": 8}],
        facets=[{"name": "price", "kind": "number", "column": "attributes.price", "unit": "$"}],
    )
    q = BuiltinPlanner(index).plan("waterproof glue under $20")
    assert q.constraints == [Constraint(facet="price", op="at_most", high=20.0, said="under $20")]
    q = BuiltinPlanner(index).plan("between $10 and $25")
    assert [(c.op, c.low, c.high) for c in q.constraints] == [("between", 10.0, 25.0)]


def test_brand_negation_on_a_shop_catalogue() -> None:
    index, _ = tiny_index(
        ["Gorilla Glue Original", "Titebond Wood Glue", "Loctite Super Glue"],
        attributes=[{"brand": "Gorilla"}, {"brand": "Titebond"}, {"brand": "Loctite"}],
        facets=[{"name": "brand", "kind": "category", "column": "attributes.brand", "proper_names": True}],
        item_noun=("product", "products"),
    )
    q = BuiltinPlanner(index).plan("a waterproof glue for wood, not Gorilla")
    assert [(c.facet, c.op, c.value) for c in q.constraints] == [("brand", "is_not", "Gorilla")]
    assert "waterproof" in q.soft and "wood" in q.soft
    q = BuiltinPlanner(index).plan("I need some Titebond Glue for my table")  # a brand beside a name
    assert [(c.facet, c.op, c.value) for c in q.constraints] == [("brand", "is", "Titebond")]
    q = BuiltinPlanner(index).plan("the last glue I bought was from Gorilla")  # a purchase: a taste
    assert [(c.facet, c.op, c.value) for c in q.constraints] == [("brand", "prefer", "Gorilla")]
    q = BuiltinPlanner(index).plan("the last glue I bought was from Gorilla and it was bad")
    assert q.constraints == []  # a bad purchase is no taste either
    q = BuiltinPlanner(index).plan("I don't mind Loctite")
    assert [(c.facet, c.op, c.value) for c in q.constraints] == [("brand", "prefer", "Loctite")]
    assert "mind" not in q.soft


@pytest.mark.parametrize(
    "message", ["something short and light for a weeknight", "nothing too long, a light comedy",
                "a film under 90 minutes", "a quick fun watch", "what's the running time?"],
)  # fmt: skip
def test_length_wishes_on_films_are_said_to_be_unsupported_and_search_nothing(planner, message) -> None:
    """Films have no running times here: "short" found The Big Short, and the reply never said why."""
    q = planner.plan(message)
    assert q.unsupported == ["length"]
    assert not {"short", "long", "quick", "minutes", "running"} & set(q.soft.split() + q.avoid.split())


def test_length_words_that_are_not_wishes_stay_words(planner) -> None:
    for message in ("as long as it's funny", "a long time ago", "a quick question", "in short, a comedy"):
        assert planner.plan(message).unsupported == [], message


def test_light_alone_asks_for_the_lighter_side(planner) -> None:
    assert planner.plan("something short and light").critique == "lighter"
    assert planner.plan("a light comedy").critique == "lighter"
    assert planner.plan("the light in her eyes").critique is None


def test_in_a_shop_length_words_describe_products() -> None:
    index, _ = tiny_index(["Nitrile Gloves, 12 Inch Long Cuff", "Latex Gloves, Short Cuff", "Minute Timer"])
    q = BuiltinPlanner(index).plan("some long gloves please")
    assert q.unsupported == [] and "long" in q.soft.split()


def test_a_question_about_it_asks_about_the_one_item_suggested(planner) -> None:
    """INSPIRED seekers ask "Who stars in it?" after the recommender names a film: that was answered
    "I can only help you find films here"."""
    fx = fixture()
    one = PlanContext(shown=[fx.index.index("50")], suggested=[fx.index.index("50")])
    for message in ("Who stars in it?", "That sounds really interesting; what's it about?",
                    "Were the songs good?", "Can you tell me a bit about the story line?"):  # fmt: skip
        q = planner.plan(message, one)
        assert q.intent == "ask_about" and [(r.item_id, r.stance) for r in q.refs] == [("50", "asked_about")]
    q = planner.plan("Are there any others like it?", one)
    assert q.intent != "ask_about"
    q = planner.plan("I loved it", one)
    assert [(r.item_id, r.stance) for r in q.refs] == [("50", "liked")]


def test_a_question_about_a_shown_item_by_its_position(planner) -> None:
    """ "tell me more about the second one" after a list was read as mentioning it, and answered with
    another list."""
    fx = fixture()
    ctx = PlanContext(shown=[fx.index.index(i) for i in ("1", "50", "100")])
    for message, item in (("tell me more about the second one", "50"), ("what is the first one about?", "1")):
        q = planner.plan(message, ctx)
        assert q.intent == "ask_about" and [(r.item_id, r.stance) for r in q.refs] == [(item, "asked_about")]
    assert planner.plan("more like the second one", ctx).critique == "more_like"


def test_please_is_no_liking(planner) -> None:
    """ "I've seen all of those, more please" turned the shown films into liked ones ("please" is positive
    to VADER) and the next list was "like The Hangover and Shrek, which you liked"."""
    fx = fixture()
    ctx = PlanContext(shown=[fx.index.index(i) for i in ("1", "50", "100")])
    q = planner.plan("I've seen all of those, more please", ctx)
    assert sorted((r.item_id, r.stance) for r in q.refs) == [("1", "seen"), ("100", "seen"), ("50", "seen")]
    assert {r.stance for r in planner.plan("I've seen those and loved them", ctx).refs} == {"liked"}


def test_tired_of_something_is_a_negation(planner) -> None:
    """ "no superhero stuff, I'm tired of Marvel" searched for 'tired' and for Marvel titles."""
    q = planner.plan("I'm tired of horror, something else")
    assert values(q, "is_not") == ["Horror"] and "tired" not in q.soft.split()
    q = planner.plan("sick of comedies")
    assert values(q) == [] and values(q, "is_not") == ["Comedy"]
    assert values(planner.plan("a comedy about a guy who is tired")) == ["Comedy"]


def test_a_question_about_it_without_one_item_to_point_at(planner) -> None:
    fx = fixture()
    several = PlanContext(shown=[fx.index.index(i) for i in ("1", "50", "100")])
    q = planner.plan("Who's in it?", several)
    assert q.intent == "ask_about" and q.refs == []
    asked = PlanContext(assistant_asked=True)
    assert planner.plan("what's the weather in Paris?", asked).intent == "off_topic"


def test_asking_for_current_films_is_a_recency_critique(planner) -> None:
    """INSPIRED seekers: "Got anything current?", "any new release?"."""
    assert planner.plan("Got anything current?").critique == "newer"
    assert planner.plan("what about horror movies, any new release?").critique == "newer"
    assert planner.plan("I like things related to current events").critique is None


def test_the_first_two_and_the_last_three_refer_to_several_shown_items(planner) -> None:
    """ "I've seen the first two" left out only the first."""
    fx = fixture()
    ctx = PlanContext(shown=[fx.index.index(i) for i in ("1", "50", "100", "181", "258")])
    q = planner.plan("I've seen the first two", ctx)
    assert {(r.item_id, r.stance) for r in q.refs} == {("1", "seen"), ("50", "seen")}
    q = planner.plan("the last three are boring", ctx)
    assert {r.item_id for r in q.refs if r.stance == "disliked"} == {"100", "181", "258"}
    assert [r.item_id for r in planner.plan("I saw the first one", ctx).refs] == ["1"]


def test_leaving_something_out_is_a_refinement_not_chit_chat(planner) -> None:
    """ "not Disney please" was answered "Sure." as small talk."""
    q = planner.plan("not Disney please")
    assert q.intent == "refine" and q.avoid == "disney"


def test_a_negated_degree_holds_for_its_word_only(planner) -> None:
    """ "isn't too bloody for a teenager" left out 'bloody teenager'."""
    q = planner.plan("a horror film that isn't too bloody for a teenager")
    assert q.avoid == "bloody" and "teenager" in q.soft.split() and values(q) == ["Horror"]


@pytest.mark.parametrize(
    "message", ["I will check that out.", "That's very true.", "I have not seen that one yet", "Perfect!",
                "Fair enough."],
)  # fmt: skip
def test_a_remark_is_conversation_not_off_topic(planner, message) -> None:
    """INSPIRED seekers' remarks were refused ("I can only help you find films here") as off-topic: 315
    of 1,678 dev seeker messages were read off-topic, most of them remarks like these."""
    assert planner.plan(message).intent == "chit_chat"


def test_a_request_elsewhere_stays_off_topic(planner) -> None:
    for message in ("how do I fix my car", "what's the weather in Paris?", "qwerty asdf"):
        assert planner.plan(message).intent in ("off_topic", "not_understood"), message


def test_a_language_wish_on_a_catalogue_without_languages_is_said(planner) -> None:
    """ "anything similar but in English?" was ignored silently."""
    assert planner.plan("I loved Amelie, anything similar but in English?").unsupported == ["language"]
    q = planner.plan("a korean thriller with subtitles")
    assert q.unsupported == ["language", "country"] and values(q) == ["Thriller"]
    assert "korean" in q.soft.split()
    index, _ = tiny_index(["Oscilloscope Manual", "Multimeter"])
    assert BuiltinPlanner(index).plan("a manual in english").unsupported == []


def test_counts_and_times_after_first_last_top_are_not_shown_items(planner) -> None:
    """After a list, "give me the top 5 comedies" liked the first item shown and "films from the last two
    years" mentioned the last one (banning it)."""
    fx = fixture()
    ctx = PlanContext(shown=[fx.index.index(i) for i in ("1", "50", "100", "181", "258")])
    for message in (
        "give me the top 5 comedies",
        "films from the last two years",
        "something from the last year",
    ):
        assert planner.plan(message, ctx).refs == [], message
    assert [(r.item_id, r.stance) for r in planner.plan("I liked the last one", ctx).refs] == [
        ("258", "liked")
    ]


def test_the_last_n_years_are_the_catalogues_newest(planner) -> None:
    """Asked "films from the last two years", it searched the words "last two"; ML-100K ends in 1998."""
    assert ranges(planner.plan("films from the last two years")) == [("at_least", 1997.0, None, ())]
    assert ranges(planner.plan("a comedy from the past 5 years")) == [("at_least", 1994.0, None, ())]
    assert ranges(planner.plan("nothing from the last few years")) == [("at_most", None, 1995.0, ())]


def test_a_place_a_film_is_set_in_is_searched_whole_and_is_no_title() -> None:
    """ "a movie set in New York" searched the titles beginning with New York as a series; "something
    that takes place in Tokyo" linked the film *Tokyo!*; "a movie set in Paris" searched 'set' and left
    *Midnight in Paris* to chance. A place is one phrase searched whole in the texts and titles."""
    from components.dialogue.planner import BuiltinPlanner

    titles = ["New York Stories (1989)", "New York Minute (2004)", "Gangs of New York (2002)",
              "Tokyo! (2008)", "Midnight in Paris (2011)"]  # fmt: skip
    index, _ = tiny_index(titles, years=[1989, 2004, 2002, 2008, 2011])
    p = BuiltinPlanner(index)
    q = p.plan("a movie set in new york")
    assert (q.franchises, q.soft, q.refs) == (["new york"], "new york", [])
    q = p.plan("something that takes place in Tokyo")
    assert (q.franchises, q.soft, q.refs) == (["tokyo"], "tokyo", [])
    q = p.plan("a movie set in Paris please")
    assert (q.franchises, q.soft) == (["paris"], "paris")
    q = p.plan("nothing set in Paris")
    assert (q.franchises, q.avoid) == ([], "paris")
    assert p.plan("a movie set in the 1920s").soft == ""  # a time: "set" is no search word
    assert p.plan("the New York ones").franchises == ["new york"]


def test_a_word_narrower_than_its_facet_value_also_searches_the_texts(planner) -> None:
    """ "Any good heist movies?" asked for Crime only: every crime film ranked alike, heists or not. The word
    that led to the value also searches the item texts; the value's own name does not."""
    q = planner.plan("Any good heist movies?")
    assert values(q) == ["Crime"] and "heist" in q.soft.split()
    q = planner.plan("a horror film please")
    assert values(q) == ["Horror"] and "horror" not in q.soft.split()


def test_a_phrase_can_rule_values_out(planner) -> None:
    """ "animated films for adults" listed kids' animation: the vocabulary's `excludes` say "for adults"
    rules Children's out (data of the film specs, not of the engine)."""
    q = planner.plan("animated films for adults")
    assert values(q) == ["Animation"] and values(q, "is_not") == ["Children's"]
    assert "adults" not in q.soft.split()
    q = planner.plan("a movie for kids, nothing too adult")  # a negated exclusion asks for nothing more
    assert values(q) == ["Children's"] and values(q, "is_not") == []


def test_a_country_wish_without_a_country_facet_is_said_and_still_searched(planner) -> None:
    """ "a french comedy" listed popular comedies and said nothing about 'french'."""
    q = planner.plan("a french comedy")
    assert q.unsupported == ["country"] and values(q) == ["Comedy"] and "french" in q.soft.split()
    assert planner.plan("anything similar but in English?").unsupported == ["language"]
    index, _ = tiny_index(["German Precision Caliper", "Multimeter"])
    assert BuiltinPlanner(index).plan("a german caliper").unsupported == []


def test_a_phrase_can_lean_to_values_without_requiring_them(planner) -> None:
    """ "a good movie for a date night" listed The Dark Knight and Pulp Fiction: the film vocabulary's
    `prefers` lean 'date night' to Romance and Comedy (boosted, never required, never "as asked")."""
    q = planner.plan("a good movie for a date night")
    assert values(q, "prefer") == ["Comedy", "Romance"] and values(q) == []
    q = planner.plan("a horror movie for date night")
    assert values(q) == ["Horror"] and values(q, "prefer") == ["Comedy", "Romance"]


def test_when_something_was_watched_searches_nothing(planner) -> None:
    """ "I watched a funny one last night" searched the texts for 'last'; "yesterday" likewise."""
    assert "last" not in planner.plan("I watched a funny one last night").soft.split()
    assert planner.plan("I saw Alien yesterday and loved it").soft == ""


@pytest.mark.parametrize(
    "message, critique", [("but funnier", "lighter"), ("something sillier", "lighter"), ("scarier", "darker"),
                          ("more scary please", "darker")],
)  # fmt: skip
def test_comparatives_of_moods_are_critiques(planner, message, critique) -> None:
    """ "I want something like Alien" then "but funnier" was refused as off-topic."""
    q = planner.plan(message, PlanContext(shown=[1, 2, 3]))
    assert q.critique == critique and q.intent == "refine"


def test_a_negated_franchise_is_also_avoided_as_its_own_phrase(planner) -> None:
    """'tired of Marvel' means Thor and Iron Man too, whose titles do not say Marvel: the franchise stays
    a title exclusion and is also avoided text, a phrase of its own next to the other avoided words."""
    q = planner.plan("I'm tired of Star Trek, and nothing violent")
    assert [(c.facet, c.op, c.value) for c in q.constraints] == [("title", "is_not", "star trek")]
    assert q.avoid == "star trek, violent"


def test_a_critique_this_catalogue_cannot_follow_is_about_the_list(planner) -> None:
    """ "shorter ones" (no lengths) was chit-chat and "cheaper ones" (no prices) off-topic."""
    q = planner.plan("shorter ones")
    assert q.unsupported == ["length"] and q.intent == "refine"
    q = planner.plan("cheaper ones")
    assert q.critique == "cheaper" and q.intent == "refine"


def test_who_a_wish_is_for_is_not_searched(planner) -> None:
    """ "my wife loves ..." searched for 'wife loves'; a relation after a possessive says who it is for."""
    q = planner.plan("my wife loves romantic films about dancing")
    assert "wife" not in q.soft and "loves" not in q.soft and "dancing" in q.soft
    assert "kids" in planner.plan("a film about kids at a summer camp").soft  # a topic, not a relation


def test_a_name_after_by_or_with_is_looked_for_whole(planner) -> None:
    """ "anything by Wes Anderson" searched 'wes' and 'anderson' apart and listed popular films as if they
    matched: a capitalised name of two words after 'by', 'with', 'starring' is looked for whole (and the
    reply says when no text holds it); one capitalised word there is no name."""
    assert planner.plan("anything by Wes Anderson").unresolved_titles == ["Wes Anderson"]
    assert planner.plan("a comedy starring Jim Carrey").unresolved_titles == ["Jim Carrey"]
    assert planner.plan("something to watch with Mom").unresolved_titles == []


def test_something_else_like_those_asks_for_more_like_them(planner) -> None:
    """ "I've already seen Heat and Casino, something else like those" only liked the two."""
    q = planner.plan("I've already seen Heat and Casino, something else like those")
    assert q.critique == "more_like" and {r.stance for r in q.refs} == {"liked"}


def test_not_too_scary_is_less_of_it_not_none(planner) -> None:
    """ "a horror movie that isn't too scary" avoided the word 'scary' and listed The Shining: it asks for
    lighter horror. The word leads to a darker value (scary: Horror), so the wish is the lighter mood."""
    q = planner.plan("a horror movie that isn't too scary")
    assert values(q) == ["Horror"] and q.critique == "lighter" and not q.avoid


@pytest.mark.parametrize(
    ("message", "kids"),
    [
        ("something my 8 year old would like", True),
        ("a film for a 6-year-old and a toddler", True),
        ("what would a ten year old enjoy", True),
        ("something for my 15 year old", False),
        ("a film about a 40 year old virgin", False),
    ],
)
def test_a_child_age_means_kids(planner, message, kids) -> None:
    """ "something my 8 year old would like" listed The Dark Knight: a child's age (12 or under) reads as
    'kids', which the catalogue's vocabulary maps to its children's value."""
    q = planner.plan(message)
    assert any(c.value == "Children's" for c in q.constraints) == kids, q  # ML-100K's name


@pytest.mark.parametrize(
    ("message", "head"),
    [
        ("I need safety glasses that fit over my prescription glasses", ["safety", "glasses"]),
        ("a soldering iron for a beginner", ["soldering", "iron"]),
        ("nitrile gloves, large, powder free", ["nitrile", "gloves"]),
        ("something to measure the temperature of my pizza oven", ["measure", "temperature"]),
        ("a stronger glue for metal", ["glue"]),  # a comparative names nothing
        ("one with a digital display", None),  # a pronoun: the head of the request before
        ("a louder one", None),
        ("the black ones please", None),  # an adjective on a pronoun: the earlier head, searched for 'black'
        ("which one is the most accurate?", None),
        ("a lesser known brand of pipettes", ["pipettes"]),  # how it was received, then what it counts
        ("a box of nitrile gloves", ["nitrile", "gloves"]),
        ("a popular multimeter", ["multimeter"]),
        ("something more professional", None),  # the product asked before, more professional
        ("anything cheaper", None),
    ],
)
def test_the_head_noun_phrase_of_a_request(message, head) -> None:
    """In a shop, what is asked for is the request's first noun phrase; a shop whose texts never hold its
    two words together answers 'nothing matches closely' (glass bottles are not safety glasses)."""
    from components.dialogue import grammar

    assert grammar.head_words(message) == head


def test_a_lowercase_genre_word_is_the_genre_not_the_film(planner) -> None:
    """ "she likes romance, I like action" liked the film *Romance* and searched for 'she'."""
    facets = [{"name": "genre", "kind": "category", "column": "categories"}]
    index, _ = tiny_index(["Romance", "Heat", "Up"], categories=[["Romance"], ["Action"], ["Action"]],
                          facets=facets)  # fmt: skip
    small = BuiltinPlanner(index)
    q = small.plan("she likes romance, I like action")
    assert values(q) == ["Action", "Romance"] and not q.refs and q.soft == "", q
    assert refs(small.plan('she likes "romance"')) == {("Romance", "liked")}  # quoted: the title
    q = planner.plan("I hated Copycat")  # a stance verb is no search word
    assert q.soft == "" and refs(q) == {("Copycat (1995)", "disliked")}


def test_a_capitalised_name_is_looked_for_whole(planner) -> None:
    """ "films set in New York" searched 'set' and 'york': a capitalised name of two words or more is looked
    for whole (a sentence's first word does not count); function words are no name ("Like That")."""
    assert planner.plan("films starring Tom Hanks").unresolved_titles == ["Tom Hanks"]
    assert planner.plan("Something Like That please").unresolved_titles == []
    assert planner.plan("Space films please").unresolved_titles == []


def test_similar_to_a_title_said_later_and_a_whole_series_seen(planner) -> None:
    """ "something similar to what I watched yesterday: Heat" only mentioned Heat; "I've seen all the Star
    Trek films" mentioned one of them and left the rest in the list."""
    q = planner.plan("something similar to what I watched yesterday: Pulp Fiction")
    assert q.critique == "more_like" and refs(q) == {("Pulp Fiction (1994)", "liked")}
    q = planner.plan("I loved Pulp Fiction, but I've seen all the Star Trek films")
    assert [(c.facet, c.op) for c in q.constraints] == [("title", "is_not")], q.constraints
    assert ("Pulp Fiction (1994)", "liked") in refs(q)
    q = planner.plan("I have seen Pulp Fiction, anything similar?")
    assert q.critique == "more_like" and refs(q) == {("Pulp Fiction (1994)", "seen")}


def test_a_question_about_it_may_start_with_and() -> None:
    """ "and who directed it?" after a suggestion was off-topic."""
    from components.dialogue import grammar

    assert grammar.asks_about_it("and who directed it?") and grammar.asks_about_it("ok, what's it about?")
    assert not grammar.asks_about_it("and who else is good?")


def test_a_dark_leaning_word_turned_down_asks_for_lighter(planner) -> None:
    """ "I don't like violent movies" listed The Dark Knight, Pulp Fiction and Kill Bill: the word was only
    avoided text, which few texts say. A turned-down word leaning to a darker mood also asks for lighter."""
    import copy

    index = copy.copy(fixture().index)  # a lean as the ml-latest-small data learn it (violent: Thriller 0.6)
    index.phrases = {**index.phrases, "violent": [("genre", "Thriller", 0.6)]}
    q = BuiltinPlanner(index).plan("I don't like violent movies")
    assert q.critique == "lighter" and "violent" in q.avoid
    assert planner.plan("I don't like slow movies").critique is None  # no lean: only avoided


def test_which_is_best_is_a_request_and_prices_unknown_are_said_once(planner) -> None:
    """ "what filament is best for a beginner?" was off-topic; "a multimeter, nothing too expensive" on a
    catalogue without prices said both 'no prices' and 'nothing mentions expensive'."""
    assert planner.plan("which comedy is best for a family night?").intent == "recommend"
    assert planner.plan("what kind of comedy is best for kids?").intent == "recommend"
    q = planner.plan("a comedy, nothing too expensive")
    assert q.unsupported == ["prices"] and "expensive" not in q.avoid


def test_a_lowercase_title_after_about_is_a_topic(planner) -> None:
    """ "documentaries about true crime" linked the film *True Crime*: after 'about', a lowercase phrase is
    what the film is about; written as a title it still links."""
    assert planner.plan("a film about true romance").refs == []
    assert refs(planner.plan("a film about True Romance")) == {("True Romance (1993)", "mentioned")}
    assert refs(planner.plan("I loved true romance")) == {("True Romance (1993)", "liked")}


def test_this_year_and_except_a_and_b(planner) -> None:
    """ "a good movie that came out this year" searched 'came out'; "anything except horror and romance"
    asked for Romance."""
    year = planner._max_year
    assert ranges(planner.plan("a good movie that came out this year")) == [("at_least", year, None, ())]
    q = planner.plan("anything except horror and romance")
    assert values(q, "is_not") == ["Horror", "Romance"] and values(q) == []


def test_a_different_brand_rules_out_the_brands_just_shown() -> None:
    """ "a different brand" after a list searched the word 'brand'. On a facet with one value per item, it
    rules out every value the shown items have; genres (several per item) are left alone."""
    facets = [{"name": "brand", "kind": "category", "column": "categories"}]
    titles = ["Acme PLA Filament", "Bolt PLA Filament", "Coil PLA Filament"]
    index, _ = tiny_index(titles, categories=[["Acme"], ["Bolt"], ["Coil"]], facets=facets)
    q = BuiltinPlanner(index).plan("a different brand please", PlanContext(shown=[0, 1]))
    assert sorted((c.op, c.value) for c in q.constraints) == [("is_not", "Acme"), ("is_not", "Bolt")]
    assert "brand" not in q.soft


def test_stop24_length_less_of_a_mood_and_lists_of_avoided_words(planner) -> None:
    """Hand-typed requests read wrongly: "not too long though" avoided the word 'long' (a length wish the
    catalogue cannot answer); "something less gory" asked for Horror; "scary movie but not about ghosts or
    demons" avoided the one phrase 'ghosts demons' (no text holds both) and asked for lighter films; in
    "nothing with zombies, vampires or aliens" the negation stopped at the comma: 'aliens' was wished for."""
    q = planner.plan("something mind-bending, not too long though")
    assert q.unsupported == ["length"] and "long" not in q.avoid and "long" not in q.soft
    q = planner.plan("something less gory")
    assert q.critique == "lighter" and not q.constraints
    q = planner.plan("scary movie but not about ghosts or demons")
    assert [(c.value, c.op) for c in q.constraints] == [("Horror", "is")]
    assert avoided_phrases([q.avoid]) == ["ghosts", "demons"] and q.critique is None
    q = planner.plan("a comedy, nothing with zombies, vampires or aliens")
    assert "aliens" in avoided_phrases([q.avoid]) and "aliens" not in q.soft
    q = planner.plan("no horror, something funny and light")  # a comma that starts a new clause ends it
    assert ("Comedy", "is") in [(c.value, c.op) for c in q.constraints] and "funny" in q.soft


def test_comparatives_are_qualities_and_a_louder_one_refines(planner) -> None:
    """ "a stronger glue" answered 'nothing matches stronger glue closely' (no text says 'stronger');
    "a louder one" after a list was off-topic. The adjective is the search word; "a ... one" after a list
    refines it."""
    q = planner.plan("a stronger comedy")
    assert "strong" in q.soft.split() and "stronger" not in q.soft.split()
    shown = PlanContext(shown=[0, 1, 2])
    q = planner.plan("a louder one", shown)
    assert (q.intent, q.soft) == ("refine", "loud")
    assert planner.plan("a louder one").intent != "refine"  # nothing shown: nothing to refine


def test_stop24_clauses_seen_all_by_a_person_surprise_me_and_both(planner) -> None:
    """ "I watched Alien last week and she cried the whole time" disliked Alien (the sentiment of her
    clause); "I have seen everything by Nolan" searched for Nolan's films; "nothing with Tom Cruise" also
    searched his name as a title; "I'm bored, surprise me" searched 'bored surprise'; "both comedy and
    romance" offered either."""
    assert refs(planner.plan("I watched Alien last week and she cried the whole time")) == {
        ("Alien (1979)", "seen")
    }
    assert refs(planner.plan("I saw Fargo and I hated it")) == {("Fargo (1996)", "disliked")}
    q = planner.plan("recommend me something, I have seen everything by Nolan")
    assert (q.avoid, q.soft, q.unresolved_titles) == ("nolan", "", [])
    q = planner.plan("nothing with Tom Cruise please")
    assert (q.avoid, q.unresolved_titles) == ("tom cruise", [])
    assert planner.plan("films with Tom Hanks").unresolved_titles == ["Tom Hanks"]
    q = planner.plan("I'm bored, surprise me")
    assert (q.intent, q.soft) == ("recommend", "")
    q = planner.plan("maybe something that has both comedy and romance?")
    assert len({c.said for c in q.constraints if c.facet == "genre"}) == 1 and q.soft == ""
    q = planner.plan("comedy and romance")
    assert len({c.said for c in q.constraints if c.facet == "genre"}) == 2  # either


def test_too_much_of_a_quality(planner) -> None:
    """ "I didn't like it much, too crude" searched for crude films; "too scary" asks for lighter ones;
    "me too" and "too much" ask for nothing."""
    q = planner.plan("I didn't like it much, too crude")
    assert (q.avoid, q.soft) == ("crude", "")
    assert planner.plan("it was too scary for me").critique == "lighter"
    assert planner.plan("me too").avoid == "" and planner.plan("I loved it too much").avoid == ""


def test_yes_no_and_who_questions_about_an_item(planner) -> None:
    """ "is The Shining scary?" and "who directed Jaws?" were requests that liked or mentioned the film; "is
    the first one a comedy?" liked the first item shown. They ask about the item."""
    q = planner.plan("is Fargo funny?")
    assert (q.intent, refs(q)) == ("ask_about", {("Fargo (1996)", "asked_about")})
    q = planner.plan("who directed Fargo?")
    assert (q.intent, refs(q)) == ("ask_about", {("Fargo (1996)", "asked_about")})
    q = planner.plan("is the first one a comedy?", PlanContext(shown=[0, 1, 2]))
    assert q.intent == "ask_about" and [r.stance for r in q.refs] == ["asked_about"]
    q = planner.plan("is there anything like Fargo?")
    assert refs(q) == {("Fargo (1996)", "liked")}


def test_an_exclusion_with_a_reason_refines(planner) -> None:
    """ "not latex, I'm allergic" after a list was small talk ("Sure."): the reason's words are not known to
    the catalogue, the exclusion is what the message asks."""
    index, _ = tiny_index(["Latex Exam Gloves", "Nitrile Exam Gloves", "Vinyl Gloves"])
    q = BuiltinPlanner(index).plan("not latex, I'm allergic", PlanContext(shown=[0, 1, 2]))
    assert (q.intent, q.avoid) == ("refine", "latex")


def test_stop24_chat_spellings_cant_stand_moods_and_a_series_liked(planner) -> None:
    """Hand-typed: "somethin scary but not 2 gory" linked a title 'not 2'; "can u recommend a flick like
    Heat" searched 'u flick'; "nothing with Tom Cruise, I can't stand him" was small talk searching
    'can't stand'; "not in the mood for anything heavy" only avoided the word; "I want to cry" searched
    'cry'; "I loved the Star Trek series, what's similar?" listed Star Trek films."""
    q = planner.plan("somethin scary but not 2 gory lol")
    assert (q.critique, q.unresolved_titles, q.soft) == ("lighter", [], "scary")
    q = planner.plan("Can u recommend a flick like Heat??")
    assert q.soft == "" and refs(q) == {("Heat (1995)", "liked")}
    q = planner.plan("nothing with Tom Cruise, I can't stand him")
    assert (q.intent, q.avoid, q.soft) == ("refine", "tom cruise", "")
    assert planner.plan("I can't stand Star Wars").refs[0].stance in ("rejected", "disliked")
    assert planner.plan("not in the mood for anything heavy tonight").critique == "lighter"
    assert {c.value for c in planner.plan("I want to cry").constraints} == {"Drama", "Romance"}
    q = planner.plan("I loved the Star Trek series, what's similar?")
    assert q.critique == "more_like" and ("title", "is_not") in [(c.facet, c.op) for c in q.constraints]
    assert q.refs and all(r.stance == "liked" and r.title.startswith("Star Trek") for r in q.refs)


def test_the_blue_one_is_the_shown_item_that_says_blue() -> None:
    """ "the blue one, is it PLA?" after a list of filaments linked another product by 'PLA' and answered
    about it: "the <word> one" is the one shown item whose text has the word, and a question about it."""
    from components.dialogue.planner import BuiltinPlanner

    titles = ["PLA Filament 1 kg, White", "PLA Filament 1 kg, Blue", "ABS Filament 1 kg, Black"]
    index, _ = tiny_index(titles)
    q = BuiltinPlanner(index).plan("the blue one, is it any good?", PlanContext(shown=[0, 1, 2]))
    assert (q.intent, [(r.title, r.stance) for r in q.refs][:1]) == (
        "ask_about",
        [("PLA Filament 1 kg, Blue", "asked_about")],
    )


def test_stop24_habits_recent_releases_fans_and_along_those_lines(planner) -> None:
    """ "I usually watch comedies but tonight I want something different" asked for comedies; "what's good
    that came out recently?" searched 'haven't while out'; "a big fan of Heat" searched 'big'; "along those
    lines" was searched as words."""
    q = planner.plan("I usually watch comedies but tonight I want something different")
    assert [(c.op, c.value) for c in q.constraints] == [("is_not", "Comedy")] and q.soft == ""
    q = planner.plan("I haven't been to the movies in a while, what's good that came out recently?")
    assert (q.critique, q.soft) == ("newer", "")
    assert planner.plan("I'm a big fan of Heat").soft == ""
    q = planner.plan("I really enjoyed Fargo and Heat, any recommendations along those lines?")
    assert q.critique == "more_like" and q.soft == ""


def test_less_silly_is_a_darker_critique(planner) -> None:
    """ "and less silly" after a list of comedies was off-topic; 'actually' and 'next' were searched."""
    q = planner.plan("and less silly")
    assert (q.intent, q.critique) == ("refine", "darker")
    assert planner.plan("actually, what about the 80s?").soft == ""


def test_ratings_where_the_catalogue_has_none() -> None:
    """ "just the ones with good ratings" was off-topic: where the log holds no ratings (a shop's purchases)
    it is said to be unsupported, and the list shown stays."""
    index, _ = tiny_index(["Gorilla Glue", "Super Glue", "Wood Glue"])
    q = BuiltinPlanner(index).plan("just the ones with good ratings", PlanContext(shown=[0, 1, 2]))
    assert (q.intent, q.unsupported, q.soft) == ("refine", ["ratings"], "")
    q = BuiltinPlanner(index).plan("a lesser known glue")  # popularity every catalogue has; in a shop it
    assert ([(c.facet, c.op, c.high) for c in q.constraints], q.unsupported) == (  # orders what is found
        [("popularity", "prefer", 90.0)],
        [],
    )
    from components.dialogue import grammar

    assert grammar.without_unsupported("a highly rated comedy", ["ratings"]) == "a comedy"


def _reception(q):
    return sorted((c.facet, c.op, c.said) for c in q.constraints if c.facet in ("rating", "popularity"))


def test_reception_wishes_are_constraints_on_what_the_log_says(planner) -> None:
    """ "an underrated gem" was off-topic and "highly rated" said the catalogue had no ratings, though
    MovieLens is a log of ratings: now each wish is a constraint on an audience facet, and its words search
    nothing ("gem", "popular")."""
    q = planner.plan("an underrated gem")
    gem = "underrated gem"
    assert _reception(q) == [("popularity", "at_most", gem), ("rating", "at_least", gem)]
    assert (q.intent, q.soft, q.unsupported) == ("recommend", "", [])
    q = planner.plan("a highly rated comedy from the 90s")
    assert _reception(q) == [("rating", "at_least", "highly rated")]
    assert {c.facet for c in q.constraints} == {"rating", "genre", "year"}
    now = "popular right now"
    assert _reception(planner.plan(f"what's {now}")) == [("popularity", "at_least", now)]
    assert planner.plan("what's popular right now").soft == ""
    assert _reception(planner.plan("a lesser-known thriller")) == [("popularity", "at_most", "lesser-known")]


def test_a_negated_reception_wish_turns_over(planner) -> None:
    """ "nothing too popular" and "I don't want anything mainstream" ask for the less known; "not so popular"
    says so itself and is not turned twice."""
    for text in ("nothing too popular, a sci-fi film", "I don't want anything mainstream", "not so popular"):
        assert [(f, op) for f, op, _ in _reception(planner.plan(text))] == [("popularity", "at_most")], text


def test_the_well_rated_edge_is_the_catalogues_own(planner) -> None:
    """'highly rated' is the best-rated fifth of the items rated often enough, on this catalogue's ratings."""
    import numpy as np

    index = fixture().index
    c = next(c for c in planner.plan("highly rated please").constraints if c.facet == "rating")
    rating, count = index.numbers["rating"].values, index.numbers["ratings"].values
    often = rating[np.isfinite(rating) & (count >= 10)]
    assert 0.18 <= float((often >= c.low).mean()) <= 0.22


def test_a_facets_name_is_no_search_word() -> None:
    """ "a lesser known brand of pipettes" searched 'brand' (Duck Brand tape first): a facet's name names none
    of its values."""
    facets = [{"name": "brand", "kind": "category", "column": "attributes.brand"}]
    brands = [{"brand": "Duck"}, {"brand": "Karter"}]
    index, _ = tiny_index(["Duck Brand Tape", "Pipettes"], attributes=brands, facets=facets)
    small = BuiltinPlanner(index)
    assert (small.plan("a brand of tape").soft, small.plan("which brands of glue?").soft) == ("tape", "glue")


@pytest.mark.parametrize(
    "message", ["when was Heat released?", "when did Heat come out?", "who is in Heat?", "is Heat any good?"]
)
def test_a_question_about_a_title_that_is_a_common_word(planner, message) -> None:
    """ "when was Heat released?" was off-topic: 'heat' is an English word, so *Heat* needed a cue; the
    question around the capitalised title is one."""
    q = planner.plan(message)
    assert (q.intent, [(r.title, r.stance) for r in q.refs]) == (
        "ask_about",
        [("Heat (1995)", "asked_about")],
    )
    assert planner.plan("the heat is unbearable today").refs == []


def test_a_surname_in_the_catalogues_texts_is_the_person_not_the_film() -> None:
    """ "I like old thrillers, Hitchcock especially" liked the film *Hitchcock* (2012): the word ends a
    person's name ("Alfred Hitchcock") in the texts of his films, so it is searched; with its year it is the
    title."""
    titles = ["Hitchcock (2012)", "Vertigo (1958)", "Psycho (1960)", "Rear Window (1954)"]
    texts = ["Hitchcock. Drama", "Vertigo. Thriller. Alfred Hitchcock", "Psycho. Horror. Alfred Hitchcock",
             "Rear Window. Thriller. Alfred Hitchcock, James Stewart"]  # fmt: skip
    index, _ = tiny_index(titles, texts=texts, titles_describe_items=False)
    small = BuiltinPlanner(index)
    q = small.plan("I like old thrillers, Hitchcock especially")
    assert (q.refs, q.soft.split()[-1], q.unresolved_titles) == ([], "hitchcock", ["Hitchcock"])
    assert [r.title for r in small.plan("I loved Hitchcock (2012)").refs] == ["Hitchcock (2012)"]
    assert [r.title for r in small.plan('I loved "Hitchcock"').refs] == ["Hitchcock (2012)"]


def test_isnt_too_old_asks_for_newer_and_short_is_a_length(planner) -> None:
    """ "a western that isn't too old" asked for any age; "something short I can watch in an hour" searched
    'short' (The Big Short first) though lengths are not in the catalogue."""
    assert planner.plan("a western that isn't too old").critique == "newer"
    assert planner.plan("a comedy that is not too new").critique == "older"
    q = planner.plan("something short I can watch in an hour")
    assert (q.soft, q.unsupported) == ("", ["length"])


def test_show_me_is_a_verb_not_a_tv_show(planner) -> None:
    """ "show me some thrillers" answered "This catalogue has films only, no shows"."""
    assert planner.plan("show me some thrillers").unsupported == []
    assert planner.plan("recommend a tv show").unsupported == ["kind:show"]


@pytest.mark.parametrize(
    ("message", "title"),
    [("my favorite movie is Heat", "Heat (1995)"), ("Fargo is my favourite", "Fargo (1996)"),
     ("what I like is Heat", "Heat (1995)")],
)  # fmt: skip
def test_a_favourite_named_after_is_liked(planner, message, title) -> None:
    """ "my favorite movie is Heat" linked nothing ('heat' needs a cue, and "is" stopped the search for one);
    "Fargo is my favourite" only mentioned it."""
    q = planner.plan(message)
    assert [(r.title, r.stance) for r in q.refs] == [(title, "liked")]
    assert [r.stance for r in planner.plan("Fargo is not my favourite").refs] == ["mentioned"]


def test_answers_without_search_words(planner) -> None:
    """ "a bit of both honestly" to "Do you prefer action or drama?" was off-topic; "doesn't matter, just not
    black and white" searched 'white' and avoided 'matter'; "never heard of it, what's it about?" avoided
    'heard'; "no blood and gore" wished for gore."""
    q = planner.plan("a bit of both honestly", PlanContext(question="Do you prefer action or drama?"))
    assert ({c.value for c in q.constraints}, q.intent) == ({"Action", "Drama"}, "recommend")
    q = planner.plan("doesn't matter, just not black and white")
    assert (q.soft, q.avoid) == ("", "black white")
    assert (planner.plan("never heard of it").soft, planner.plan("never heard of it").avoid) == ("", "")
    assert (planner.plan("no blood and gore").avoid, planner.plan("no horror and something funny").soft) == (
        "blood, gore",
        "funny",
    )


@pytest.mark.parametrize(
    "message",
    ["what else did that director make?", "more with the same actor", "anything else he starred in?"],
)
def test_people_not_named_where_no_facet_holds_people(planner, message) -> None:
    """ "what else did that director make?" after a film was off-topic: the catalogue has no people facet, so
    it is said to be unsupported (and the list stays); a person named is searched as before."""
    q = planner.plan(message)
    assert (q.unsupported, q.soft) == (["people"], "")
