"""ConversationEngine: chat, stateless replay with assistant turns, feedback, /recommend, honest replies,
relaxation, and the one load_engine path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.dialogue.config import ConversationConfig
from components.dialogue.engine import ChatItem, ChatResult, assistant_text, load_engine
from tests.unit.dialogue_fixtures import fixture, make_engine


@pytest.fixture(scope="module")
def engine():
    return make_engine()


def ids(res: ChatResult) -> list[str]:
    return [i.item_id for i in res.items]


def years(engine, res: ChatResult) -> list[float]:
    return [engine.index.years[engine.index.index(i)] for i in ids(res)]


def genres(engine, item_id: str) -> set[str]:
    return set(engine.index.facet_values(engine.index.index(item_id)).get("genre", []))


def test_chat_result_shape_and_constraints_hold(engine) -> None:
    res = engine.chat("shape", "a funny sci-fi film from the 90s, nothing like Alien", k=7)
    assert res.reply and len(res.items) == 7 and all(isinstance(i, ChatItem) for i in res.items)
    json.dumps(res.to_dict())
    assert all(1990 <= y <= 1999 for y in years(engine, res))
    assert all(genres(engine, i) & {"Comedy", "Sci-Fi"} for i in ids(res))
    assert "183" not in ids(res)  # Alien itself
    assert res.understood["intent"] == "recommend" and res.reply_source == "template"
    assert "Alien (1979)" in res.reply and "1990s" in res.reply


def test_constraints_carry_over_and_critiques_move_them(engine) -> None:
    engine.reset("carry")
    first = engine.chat("carry", "a comedy from the 90s", k=5)
    newer = engine.chat("carry", "more recent", k=5)
    assert min(years(engine, newer)) > np.mean(years(engine, first)) - 0.5
    assert all("Comedy" in genres(engine, i) for i in ids(newer))


def test_asked_ranges_filter_while_fresh_then_only_boost_and_exclusions_stay(engine) -> None:
    """'a film from the 90s' filters for ``hard_turns`` user turns, then prefers the 90s; 'no horror'
    stays out however long ago it was said."""
    engine.reset("age")
    engine.chat("age", "a film from the 90s, no horror", k=5)
    engine.chat("age", "something lighter", k=5)
    state = engine.store.get("age")
    by_facet = {(c.facet, c.op) for c in engine._constraints(state)}
    assert ("year", "between") in by_facet and ("genre", "is_not") in by_facet
    for n in range(engine.config.hard_turns):
        engine.chat("age", f"tell me more {n}", k=5)
    state = engine.store.get("age")
    by_facet = {(c.facet, c.op) for c in engine._constraints(state)}
    assert ("year", "prefer") in by_facet and ("genre", "is_not") in by_facet
    assert ("year", "between") not in by_facet
    res = engine.chat("age", "what else", k=10)
    assert all("Horror" not in genres(engine, i) for i in ids(res))
    assert sum(1990 <= y <= 1999 for y in years(engine, res)) >= 1  # still preferred


def test_nothing_fits_is_relaxed_and_said(engine) -> None:
    res = engine.chat("relax", "a western from 1931", k=5)
    assert res.items, "a constraint should have been relaxed"
    assert "dropped" in res.reply and res.understood.get("relaxed")


def test_honest_replies_without_confident_lists(engine) -> None:
    for message, word in [("asdkjh qwe", "didn't understand"), ("what's the weather in Paris?", "only help"),
                          ("推荐几部90年代的科幻电影", "only understand English")]:  # fmt: skip
        res = engine.chat(f"honest-{word}", message, k=5)
        assert word in res.reply and res.items == []
        assert "as asked" not in " ".join(i.reason for i in res.items)


def test_off_topic_keeps_the_list_of_a_real_conversation(engine) -> None:
    engine.chat("keep", "a scary movie", k=5)
    res = engine.chat("keep", "what's the weather in Paris?", k=5)
    assert "only help" in res.reply and len(res.items) == 5


def test_what_cannot_be_left_out_is_said(engine) -> None:
    """The catalogue's texts never name a cast: 'nothing with Tom Cruise' cannot be honoured, and the reply
    says so; a word some item's text holds is left out silently, as asked."""
    res = engine.chat("no-cruise", "nothing with Tom Cruise please, I want action", k=5)
    assert "Nothing in the catalogue mentions 'tom cruise'" in res.reply and res.items
    res = engine.chat("no-space", "an action film, nothing about space", k=5)
    assert res.understood["avoid"] == "space" and "mentions" not in res.reply


def test_a_request_nothing_comes_close_to_is_answered_with_the_nearest_and_said(engine) -> None:
    res = engine.chat("origami", "a film about origami", k=5)
    assert "Nothing in the catalogue matches 'origami' closely" in res.reply and len(res.items) == 5
    res = engine.chat("submarines", "movies about submarines", k=5)  # Das Boot, Crimson Tide: close
    assert "closely" not in res.reply
    res = engine.chat("origami-comedy", "a comedy about origami", k=5)  # a genre asked: the list follows it
    assert "closely" not in res.reply


def test_stateless_with_assistant_turns_equals_stateful(engine) -> None:
    turns = ["a funny sci-fi film from the 90s", "no horror", "more recent"]
    engine.reset("sf")
    messages: list[dict[str, str]] = []
    stateful = None
    for t in turns:
        stateful = engine.chat("sf", t, k=6)
        messages.append({"role": "user", "content": t})
        listing = "; ".join(i.title for i in stateful.items)
        messages.append({"role": "assistant", "content": f"{stateful.reply} {listing}"})
    stateless = engine.chat_stateless(messages[:-1], k=6)
    assert ids(stateless) == ids(stateful)


def test_a_history_may_start_with_the_assistant(engine) -> None:
    res = engine.chat_stateless(
        [{"role": "assistant", "content": "What kind of movies do you like?"},
         {"role": "user", "content": "zombies and chainsaws"}], k=5,
    )  # fmt: skip
    assert res.understood["intent"] == "recommend" and len(res.items) == 5
    only_assistant = engine.chat_stateless(
        [{"role": "assistant", "content": "Have you seen Fargo (1996)?"}], k=5
    )
    assert "100" not in ids(only_assistant)  # what the assistant named is not suggested again


def test_consecutive_assistant_messages_are_one_turn(engine) -> None:
    """A person writes one reply in several messages; what the assistant said is read by turns, so the
    first of three messages still counts (only the last two turns are read)."""
    said = ["I know one.", "It's a western.", "Lots of horses.", "You'll see."]
    split = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"},
             {"role": "user", "content": "something for tonight"},
             *({"role": "assistant", "content": t} for t in said)]  # fmt: skip
    state, _, _ = engine.replay(split)
    assert state.assistant == ["Hello!", "I know one. It's a western. Lots of horses. You'll see."]
    joined = [*split[:3], {"role": "assistant", "content": state.assistant[-1]}]
    assert ids(engine.chat_stateless(split, k=5)) == ids(engine.chat_stateless(joined, k=5))


def test_titles_the_assistant_named_that_the_catalogue_lacks_still_find_the_others(engine) -> None:
    messages = [{"role": "user", "content": "something for the kids"},
                {"role": "assistant", "content": "Toy Story 4, think you will see that?"},
                {"role": "user", "content": "maybe, anything else?"}]  # fmt: skip
    state, _, _ = engine.replay(messages)
    assert [t.lower() for t in state.title_words] == ["toy story 4"]
    assert "1" in ids(engine.chat_stateless(messages, k=10))  # Toy Story (1995)


def test_like_an_item_but_lighter_stays_close_to_the_item(engine) -> None:
    """'like Heat but less violent' asks for Heat-like films, the lighter ones first: not for cartoons."""
    res = engine.chat("lighter-than-heat", "something like Heat but less violent", k=10)
    heat = res.understood["refs"][0]["item_id"]
    assert res.understood["critique"] == "lighter" and res.state["similar"] == [heat]
    kids = {"Children", "Children's", "Animation"}
    assert not any(genres(engine, i) & kids for i in ids(res))
    assert sum("Heat" in (i.reason or "") for i in res.items) >= 8  # Heat's neighbours, lighter first


def test_the_titles_the_assistant_named_are_not_its_search_words(engine) -> None:
    """'Fairly similar to Lion' named the film Lion: its title word must not find The Lion King by BM25."""
    messages = [{"role": "user", "content": "something for tonight"},
                {"role": "assistant", "content": "A lot like Fargo (1996), only darker."},
                {"role": "user", "content": "ok"}]  # fmt: skip
    req = engine.request(engine.replay(messages)[0])
    assert "fargo" not in req.assistant_terms and "darker" in req.assistant_terms


def test_items_the_conversation_mentions_inform_the_session_model(engine) -> None:
    messages = [{"role": "user", "content": "I watched Toy Story (1995) yesterday"},
                {"role": "assistant", "content": "Have you seen Fargo (1996)?"},
                {"role": "user", "content": "no, what else?"}]  # fmt: skip
    state, _, _ = engine.replay(messages)
    ix = engine.index
    req = engine.request(state)
    assert {ix.index("1"), ix.index("100")} <= set(req.history)  # Toy Story and Fargo
    plain = make_engine(ConversationConfig(mentions_in_history=False))
    assert not set(plain.request(plain.replay(messages)[0]).history) & {ix.index("1"), ix.index("100")}
    state.rejected.append("100")  # turned down: no longer evidence of taste
    assert ix.index("100") not in engine.request(state).history


def test_seen_items_leave_the_list(engine) -> None:
    engine.reset("seen")
    first = engine.chat("seen", "a thriller", k=5)
    again = engine.chat("seen", "I saw those already", k=5)
    assert not set(ids(first)) & set(ids(again))
    assert "leave out" in again.reply


def test_more_like_a_title_brings_its_neighbours_not_just_popular_items(engine) -> None:
    """'films like Scream' asks for Scream's neighbours; 'I like Scream' only says the user likes it."""
    scream = "288"  # Scream (1996): Horror|Thriller
    assert engine.index.label(engine.index.index(scream)).startswith("Scream")
    engine.reset("like1")
    similar = engine.chat("like1", "films like Scream", k=5)
    assert engine.store.get("like1").similar == [scream]
    assert all(genres(engine, i) & {"Horror", "Thriller"} for i in ids(similar)), similar.items
    later = engine.chat("like1", "from the 90s", k=5)  # the request stands while it is refined
    assert engine.store.get("like1").similar == [scream]
    close = [i for i in ids(later) if genres(engine, i) & {"Horror", "Thriller"}]
    assert len(close) >= 4, later.items  # the session model may still add a co-watched comedy
    engine.reset("like2")
    engine.chat("like2", "I like Scream", k=5)
    assert engine.store.get("like2").similar == []


def test_one_dislike_does_not_collapse_into_the_long_tail(engine) -> None:
    engine.reset("dis")
    before = engine.chat("dis", "an action movie", k=10)
    answer = engine.feedback("dis", before.items[0].item_id, "dislike")
    after = [i["item_id"] for i in answer["items"]]
    prior = engine.index.prior
    assert before.items[0].item_id not in after
    med_before = np.median([prior[engine.index.index(i)] for i in ids(before)])
    med_after = np.median([prior[engine.index.index(i)] for i in after])
    assert med_after >= 0.5 * med_before


def test_feedback_polarity_is_the_shared_rule(engine) -> None:
    assert engine.feedback("pol", "1", "rating", 2.0)["polarity"] == "negative"
    assert engine.feedback("pol", "1", "rating", 3.0)["polarity"] == "neutral"
    assert engine.feedback("pol", "1", "like")["polarity"] == "positive"
    with pytest.raises(ValueError, match="unknown item"):
        engine.feedback("pol", "999999", "like")


def test_recommend_with_a_session_follows_its_constraints(engine) -> None:
    engine.reset("rec")
    engine.chat("rec", "no horror", k=5)
    items = engine.recommend("rec", ["183", "176"], k=10)  # Alien, Aliens as the session's items
    assert items and all("Horror" not in genres(engine, i.item_id) for i in items)
    assert {"183", "176"}.isdisjoint({i.item_id for i in items})


def test_ask_about_an_item_answers_from_its_facts(engine) -> None:
    res = engine.chat("ask", "what is Braveheart about?", k=5)
    assert res.understood["intent"] == "ask_about"
    assert "Braveheart (1995)" in res.reply and "genre:" in res.reply


def test_load_engine_builds_the_same_engine_from_the_bundle() -> None:
    fx = fixture()
    engine = load_engine(fx.bundle_dir, ConversationConfig())
    assert engine.index.item_ids == fx.index.item_ids
    assert engine.index.spec.item_noun == ("film", "films")
    res = engine.chat("load", "a 90s thriller", k=3)
    assert len(res.items) == 3


def _wait_for_replies(engine) -> None:
    with engine._vec_lock:
        preparing = [job.future for job in engine._preparing.values()]
    for future in preparing:
        future.result(timeout=30)


def _spy_encoder(engine, monkeypatch) -> list[list[str]]:
    """The texts this engine sends to the encoder (those not cached), one list per encoder pass."""
    calls: list[list[str]] = []
    real = engine._prefetch

    def prefetch(texts):  # noqa: ANN001, ANN202
        with engine._vec_lock:
            missing = [t.strip() for t in texts if t.strip() and t.strip() not in engine._vectors]
        if missing:
            calls.append(list(dict.fromkeys(missing)))
        return real(texts)

    monkeypatch.setattr(engine, "_prefetch", prefetch)
    return calls


def test_a_reply_is_parsed_and_encoded_while_the_user_reads(monkeypatch) -> None:
    """Once no request is being served, the reply's words are encoded (and its titles linked) in the
    background: the next turn and feedback find them ready and encode only what the user typed."""
    engine = make_engine(ConversationConfig(prepare_reply=True))
    engine.prepare_after_idle_s = 0.0
    answer = engine.chat("prep", "a comedy from the 90s", k=5)
    _wait_for_replies(engine)
    rest, named = engine._parsed[assistant_text(answer)]
    assert rest and rest in engine._vectors
    assert {engine.index.item_ids[i] for i in named} >= set(ids(answer))  # the listed titles were linked
    calls = _spy_encoder(engine, monkeypatch)
    engine.feedback("prep", answer.items[0].item_id, "like")
    assert calls == []  # everything feedback needs was ready
    engine.chat("prep", "more recent", k=5)
    assert calls[0] == ["a comedy from the 90s more recent"]  # the turn's path: only the user's words
    assert all(rest not in c for c in calls)


def test_a_turn_that_comes_first_takes_the_reply_back(monkeypatch) -> None:
    """A turn (or feedback) arriving before the engine was idle encodes the reply with its own words in one
    pass: preparing replies never adds an encoder pass when requests come back to back."""
    engine = make_engine(ConversationConfig(prepare_reply=True))
    engine.prepare_after_idle_s = 3600.0  # never idle long enough
    answer = engine.chat("back", "a comedy from the 90s", k=5)
    job = engine._preparing[assistant_text(answer)]
    calls = _spy_encoder(engine, monkeypatch)
    engine.chat("back", "more recent", k=5)
    rest, _ = engine._parsed[assistant_text(answer)]
    assert calls == [["a comedy from the 90s more recent", rest]]
    assert job.dropped and not job.started
    job.future.result(timeout=10)  # the worker let it go


def test_without_preparing_the_reply_is_encoded_with_the_next_message(monkeypatch) -> None:
    engine = make_engine(ConversationConfig(prepare_reply=False))
    answer = engine.chat("noprep", "a comedy from the 90s", k=5)
    assert not engine._preparing and engine._worker is None
    calls = _spy_encoder(engine, monkeypatch)
    engine.chat("noprep", "more recent", k=5)
    rest, _ = engine._parsed[assistant_text(answer)]
    assert calls == [["a comedy from the 90s more recent", rest]]  # one encoder pass for the turn


def test_preparing_replies_changes_no_answer() -> None:
    turns = ["a funny sci-fi film from the 90s", "no horror", "more recent", "like the second"]
    answers = {}
    for prepare in (True, False):
        engine = make_engine(ConversationConfig(prepare_reply=prepare))
        answers[prepare] = [ids(engine.chat("same", t, k=8)) for t in turns]
    assert answers[True] == answers[False]


def test_a_question_about_the_suggested_item_is_answered_from_its_facts(engine) -> None:
    """Asked "Who stars in it?" after "Have you seen Toy Story?": Toy Story is described from the
    catalogue (its facets, its text once: not the genres twice), not "I can only help you find films
    here"."""
    res = engine.chat_stateless([
        {"role": "user", "content": "I like animated films"},
        {"role": "assistant", "content": "Have you seen Toy Story?"},
        {"role": "user", "content": "Who stars in it?"},
    ])  # fmt: skip
    assert res.understood["intent"] == "ask_about"
    assert res.reply.startswith("Toy Story (1995)") and "can't help" not in res.reply
    described = res.reply.split(" Here are")[0]
    assert described.count("Animation") == 1, described


def test_length_on_a_catalogue_without_running_times_is_said(engine) -> None:
    res = engine.chat("len", "something short and light")
    assert "does not say how long" in res.reply and res.items
    assert not any("short" in i.title.lower().split() for i in res.items)


def test_words_the_planner_does_not_know_but_an_item_matches_closely_are_a_request(engine) -> None:
    """ "safety goggles" in the lab-supply shop (its texts say "protective eyewear") was refused as
    off-topic; here "alien invasion" and "haunted mansions" on ML-100K. Far from every item, or asked as a
    question, it stays off-topic."""
    for message in ("alien invasion", "haunted mansions"):
        res = engine.chat(f"rescue-{message}", message, k=5)
        assert res.understood["intent"] == "recommend" and len(res.items) == 5, message
    for message in ("ear plugs", "weather in Paris", "what's the weather in Paris?"):
        res = engine.chat(f"rescue-{message}", message, k=5)
        assert res.understood["intent"] == "off_topic" and res.items == [], message


def test_the_reply_names_only_what_still_filters(engine) -> None:
    """An asked genre turns into a preference after ``hard_turns`` user turns; the reply kept saying
    "Here are 5 Thriller films" over a list that no longer was."""
    sid = "aged"
    engine.chat(sid, "a thriller", k=5)
    engine.chat(sid, "more recent", k=5)
    engine.chat(sid, "something with a lot of action", k=5)
    res = engine.chat(sid, "something lighter", k=5)
    thrillers = [i for i in res.items if "Thriller" in genres(engine, i.item_id)]
    assert "Thriller films" not in res.reply or len(thrillers) == len(res.items), res.reply
    res = engine.chat("left-out", "an action film, nothing about space", k=5)
    assert "leaving out any that mention 'space'" in res.reply


def test_a_reply_names_what_was_left_out_once(engine) -> None:
    """ "no space films" alone was answered "Here are 5 popular films to start" (leaving-out counted as no
    wish); "a comedy but not a romcom" said both "not Romance" and "Nothing in the catalogue mentions
    'romcom', so I couldn't leave those films out"."""
    res = engine.chat("avoid-only", "no space films please", k=5)
    assert "leaving out any that mention 'space'" in res.reply and "to start" not in res.reply, res.reply
    res = engine.chat("romcom", "a comedy but not a romcom", k=5)
    assert "not Romance" in res.reply, res.reply
    assert "couldn't" not in res.reply and "'romcom'" not in res.reply, res.reply
    # a franchise left out is named once, and the other avoided words on their own
    res = engine.chat("trek", "I'm tired of Star Trek, and nothing about space", k=5)
    assert "no 'star trek' titles" in res.reply and "mention 'space'" in res.reply, res.reply
    assert not any("Star Trek" in i.title for i in res.items), res.items


def test_cheaper_where_nothing_has_a_price_is_said_not_taken_for_off_topic(engine) -> None:
    """ "cheaper ones" after a list, on a catalogue without prices, was answered "I can only help you find
    films here" (off-topic). It is a critique this catalogue cannot follow: said so, and a list comes."""
    engine.chat("cheap", "a comedy", k=5)
    res = engine.chat("cheap", "cheaper ones", k=5)
    assert res.understood["intent"] == "refine", res.understood
    assert "no prices" in res.reply and "can only help" not in res.reply, res.reply
    assert len(res.items) == 5


def test_yes_to_the_assistants_question_takes_its_wishes(engine) -> None:
    """ "Do you want something romantic again?" "yes but a bit more recent" listed action films: the
    answer agreed to romance without naming it. The question's category values and words join the
    answer's; its titles do not ("Have you seen Fargo?" "yes" wants no Fargo)."""
    res = engine.chat_stateless(
        [{"role": "user", "content": "I liked Heat"},
         {"role": "assistant", "content": "Great pick! Do you want something romantic again?"},
         {"role": "user", "content": "yes but a bit more recent"}], k=5,
    )  # fmt: skip
    assert res.understood.get("critique") == "newer"
    assert [c["value"] for c in res.understood["constraints"]] == ["Romance"]
    assert all("Romance" in genres(engine, i) for i in ids(res))
    res = engine.chat_stateless(
        [{"role": "assistant", "content": "Have you seen Fargo (1996)?"},
         {"role": "user", "content": "yes, loved it"}], k=5,
    )  # fmt: skip
    assert "100" not in ids(res) and not res.understood.get("constraints")
    res = engine.chat_stateless(
        [{"role": "assistant", "content": "Do you like ones with romance as well?"},
         {"role": "user", "content": "no, not really"}], k=5,
    )  # fmt: skip
    assert [(c["op"], c["value"]) for c in res.understood["constraints"]] == [("is_not", "Romance")]
    assert not any("Romance" in genres(engine, i) for i in ids(res))


def test_how_many_items_the_message_asks_for(engine) -> None:
    """ "give me 3 thrillers" listed the default number; a caller's own ``k`` still wins."""
    assert len(engine.chat("count-1", "give me 3 thrillers").items) == 3
    assert len(engine.chat("count-2", "a couple of comedies from the 90s").items) == 2
    assert len(engine.chat("count-3", "give me 3 thrillers", k=7).items) == 7
    stateless = engine.chat_stateless([{"role": "user", "content": "recommend two comedies"}])
    assert len(stateless.items) == 2 and stateless.understood.get("intent") == "recommend"
    assert engine.chat("count-4", "I watched it a couple of times").understood.get("soft", "") == ""


def test_thanks_bye_help_other_kinds_and_do_you_have(engine) -> None:
    """Hand-typed: "that's all, bye" listed popular films; "what can you do?" answered "Sure."; "recommend
    me a Netflix series" searched 'netflix' among films without a word; "do you have Fargo?" mentioned
    Fargo and left it out of the list."""
    assert engine.chat("bye", "that's all, bye").reply == "Bye! Come back any time."
    assert engine.chat("thanks", "thanks!").reply.startswith("You're welcome!")
    assert engine.chat("help", "what can you do?").reply.startswith("I recommend films")
    res = engine.chat("kind", "recommend me a Netflix series")
    assert "films only, no series" in res.reply and res.items
    res = engine.chat("have", "do you have Fargo?")
    assert res.understood["intent"] == "ask_about" and res.reply.startswith("Fargo (1996)")
    res = engine.chat("have-not", "do you have Oppenheimer?")
    assert "couldn't find 'Oppenheimer'" in res.reply


def test_highly_rated_and_lesser_known_lists_follow_the_ratings_log() -> None:
    """On MovieLens-100K's own ratings: every film shown for "highly rated comedies" has a mean rating above
    the catalogue's, and its reason states that mean and how many rated it, as the log has them; "lesser
    known" comedies are rated by fewer people than plain comedies, none by as many as the 5% most rated."""
    fx = fixture()
    ratings = fx.interactions[fx.interactions["event"] == "rating"]
    stats = ratings.groupby(ratings["item_id"].astype(str))["value"].agg(["mean", "count"])
    eng = make_engine()
    best = eng.chat("rated", "highly rated comedies", k=8)
    assert best.items and not best.understood.get("unsupported")
    for it in best.items:
        mean, n = stats.loc[it.item_id]
        assert mean > ratings["value"].mean(), it.title
        assert f"rated {mean:.1f} on average by {int(n)} people" in it.reason, it.reason
    plain = eng.chat("plain", "comedies", k=8)
    known = eng.chat("known", "lesser known comedies", k=8)
    assert "less known" in known.reply
    counts = [stats.loc[i.item_id, "count"] for i in known.items]
    assert np.median(counts) < np.median([stats.loc[i.item_id, "count"] for i in plain.items])
    top = stats["count"].sort_values(ascending=False).iloc[len(stats) // 20]  # the 5% most rated
    assert known.items and max(counts) < top


def test_a_preference_is_named_as_a_leaning_and_never_as_asked(engine) -> None:
    """A genre that boosts without filtering (named while describing a viewing, or asked for turns ago)
    is named as a leaning in the reply, and the reasons say the user mentioned it where the item has it;
    before, neither said anything and the list's horror films read "A popular pick"."""
    res = engine.chat("viewing", "The last horror movie I saw was Get Out. What else could I watch?", k=5)
    assert res.understood["intent"] == "recommend" and len(res.items) == 5
    assert "leaning to Horror" in res.reply and "Horror films" not in res.reply, res.reply
    assert any("Horror" in genres(engine, i.item_id) for i in res.items)
    for item in res.items:
        assert "as asked" not in item.reason, item
        if "Horror" in genres(engine, item.item_id):
            assert "Horror, which you mentioned" in item.reason, item
        else:
            assert "Horror" not in item.reason, item
    sid = "aged-lean"
    for message in ("a thriller", "more recent", "something with a lot of action"):
        engine.chat(sid, message, k=5)
    res = engine.chat(sid, "something lighter", k=5)
    assert "leaning to Thriller" in res.reply and "Thriller films" not in res.reply, res.reply
