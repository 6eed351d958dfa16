"""Dialogue state: how queries and feedback fold in (replacement per facet, stances, critiques, reset)."""

from __future__ import annotations

import json

from components.dialogue.query import Constraint, ItemRef, Query
from components.dialogue.state import (
    DialogueState,
    apply_query,
    range_label,
    record_feedback,
    record_shown,
)
from tests.unit.dialogue_fixtures import fixture


def c(**kw) -> Constraint:
    return Constraint(**kw)


def test_range_labels() -> None:
    assert range_label(c(facet="year", op="between", low=1990, high=1999)) == "the 1990s"
    assert range_label(c(facet="year", op="between", low=1995, high=1995)) == "1995"
    assert range_label(c(facet="year", op="at_least", low=1990)) == "1990 or later"
    assert range_label(c(facet="price", op="at_most", high=20), "$") == "$20 or less"
    both = c(facet="year", op="any_of_ranges", ranges=((1995, 1995), (2004, 2004)))
    assert range_label(both) == "1995 or 2004"


def test_constraints_replace_per_facet_value_and_range() -> None:
    ix = fixture().index
    s = DialogueState("s")
    apply_query(s, Query(constraints=[c(facet="genre", op="is", value="Horror"),
                                      c(facet="year", op="between", low=1990, high=1999)]), ix)  # fmt: skip
    apply_query(s, Query(constraints=[c(facet="genre", op="is_not", value="Horror"),
                                      c(facet="year", op="at_least", low=2000)]), ix)  # fmt: skip
    got = [(x.facet, x.op, x.value, x.low) for x in s.typed_constraints()]
    assert got == [("genre", "is_not", "Horror", None), ("year", "at_least", None, 2000.0)]


def test_exclusions_hold_together_and_replace_asked_ranges_across_turns() -> None:
    ix = fixture().index
    s = DialogueState("s")
    not80, not90 = (
        c(facet="year", op="not_between", low=1980, high=1989),
        c(facet="year", op="not_between", low=1990, high=1999),
    )
    apply_query(s, Query(constraints=[not80, not90]), ix)  # "nothing from the 80s or 90s"
    assert s.typed_constraints() == [not80, not90]
    nineties = c(facet="year", op="between", low=1990, high=1999)
    apply_query(s, Query(constraints=[nineties]), ix)  # "the 90s are fine now": the exclusions go
    assert s.typed_constraints() == [nineties]
    apply_query(s, Query(constraints=[not90]), ix)  # "not from the 90s after all"
    assert s.typed_constraints() == [not90]
    s = DialogueState("t")
    seventies = c(facet="year", op="between", low=1970, high=1979)
    apply_query(s, Query(constraints=[seventies, not80]), ix)  # "not the 80s, but the 70s": one message
    assert s.typed_constraints() == [seventies, not80]
    apply_query(s, Query(constraints=[c(facet="year", op="prefer", low=1980, high=1989)]), ix)
    assert s.typed_constraints() == [seventies, not80]  # a question never undoes an exclusion


def test_stances_move_items_between_lists() -> None:
    ix = fixture().index
    s = DialogueState("s")
    ref = ItemRef(item_id="100", title="Fargo (1996)", stance="liked")
    apply_query(s, Query(refs=[ref]), ix)
    assert s.liked == ["100"]
    apply_query(s, Query(refs=[ref.model_copy(update={"stance": "disliked"})]), ix)
    assert s.liked == [] and s.disliked == ["100"]


def test_off_topic_and_foreign_messages_change_nothing() -> None:
    ix = fixture().index
    s = DialogueState("s", soft=["zombies"])
    apply_query(s, Query(intent="off_topic", soft="weather paris"), ix)
    apply_query(s, Query(intent="other_language"), ix)
    assert s.soft == ["zombies"] and s.turn == 2


def test_year_critique_moves_past_the_shown_mean() -> None:
    ix = fixture().index
    s = DialogueState("s")
    record_shown(s, ["1", "7", "8"])  # 1995 films
    apply_query(s, Query(critique="newer"), ix)
    [con] = s.typed_constraints()
    assert con.op == "at_least" and con.low == 1996


def test_reset_keeps_what_was_done() -> None:
    ix = fixture().index
    s = DialogueState("s", liked=["1"], history=["2"], soft=["space"])
    apply_query(s, Query(intent="reset"), ix)
    assert s.liked == ["1"] and s.history == ["2"] and s.soft == []


def test_feedback_folds_into_the_state() -> None:
    s = DialogueState("s")
    record_feedback(s, "1", "positive", strong=True)
    record_feedback(s, "2", "positive", strong=False)
    record_feedback(s, "1", "negative", strong=False)
    assert s.liked == [] and s.history == ["2"] and s.disliked == ["1"]


def test_state_json_round_trip() -> None:
    s = DialogueState("s", liked=["1"], mood="lighter", soft=["space opera"])
    s.constraints.append({"facet": "year", "op": "at_least", "low": 1990.0, "turn": 1})
    again = DialogueState.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s


def test_a_word_that_goes_with_a_value_asked_earlier_is_avoided_not_the_value() -> None:
    """'something scary', then 'nothing with zombies either' turned Horror off: zombies lead to Horror, so
    the exclusion replaced the wish. As within one message, the word is avoided text; an exclusion said
    with the value's own name ('no horror after all') still replaces the wish."""
    ix = fixture().index
    s = DialogueState("s")
    apply_query(s, Query(constraints=[c(facet="genre", op="is", value="Horror", said="scary")]), ix)
    apply_query(s, Query(constraints=[c(facet="genre", op="is_not", value="Horror", said="zombies")]), ix)
    assert [(x.op, x.value) for x in s.typed_constraints()] == [("is", "Horror")]
    assert s.avoid == ["zombies"]
    apply_query(s, Query(constraints=[c(facet="genre", op="is_not", value="Horror", said="horror")]), ix)
    assert [(x.op, x.value) for x in s.typed_constraints()] == [("is_not", "Horror")]


def test_an_unanswerable_wish_is_not_searched_for_as_typed() -> None:
    """ "something short, under 90 minutes" on films without lengths put *The Big Short* first: the
    message as typed is also a dense query. The words of a wish the catalogue cannot answer are left out."""
    ix = fixture().index
    s = DialogueState("s")
    apply_query(s, Query(unsupported=["length"]), ix, said="Something SHORT, under 90 minutes please")
    assert s.said == ["Something , please"]
    apply_query(s, Query(unsupported=["language"]), ix, said="a comedy in English")
    assert s.said[-1] == "a comedy"
    apply_query(s, Query(), ix, said="The Big Short")  # nothing unsupported: as typed
    assert s.said[-1] == "The Big Short"


def test_a_word_asked_for_earlier_is_not_avoided_later() -> None:
    """ "a movie about a dog", then "not one where the dog dies" avoided 'dog' and 'dies': the dog films
    asked for were left out. Only 'dies' is avoided (in the query too: the reply names what is left out)."""
    ix = fixture().index
    s = DialogueState("s")
    apply_query(s, Query(soft="dog"), ix)
    q = Query(avoid="dog dies, cats")
    apply_query(s, q, ix)
    assert s.avoid == ["dies, cats"] and q.avoid == "dies, cats"
    q = Query(avoid="dog")
    apply_query(s, q, ix)
    assert q.avoid == "" and s.avoid == ["dies, cats"]
