"""User simulator: leave-one-out cases, grounded openings and critiques, deterministic reports."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from components.simulator import SimCase, SimulatedUser, leave_one_out_cases, simulate, typed_title
from tests.unit.dialogue_fixtures import fixture, make_engine


@pytest.fixture(scope="module")
def engine():
    return make_engine()


@pytest.fixture(scope="module")
def cases():
    return leave_one_out_cases(fixture().interactions, n_users=12, seed=3)


def test_leave_one_out_cases() -> None:
    t = pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-01"], utc=True)
    df = pd.DataFrame({"user_id": ["a"] * 4 + ["b"], "item_id": ["3", "1", "2", "9", "5"], "timestamp": t})
    assert leave_one_out_cases(df, min_history=3) == [SimCase("a", ("3", "1", "2"), "9")]
    assert leave_one_out_cases(df, min_history=4) == []


def test_typed_title() -> None:
    assert typed_title("Matrix, The (1999)") == "The Matrix"
    assert typed_title("Toy Story (1995)") == "Toy Story"


def test_opening_states_true_attributes_of_the_target(engine, cases) -> None:
    cat = engine.catalogue
    for case in cases:
        user = SimulatedUser(case, cat, cold_start=False, seed=0)
        parsed = engine.parser.parse(user.opening())
        t = cat.index(case.target)
        assert set(parsed.categories) <= set(cat.categories[t])
        assert not parsed.rejected_categories
        if parsed.year_set:
            assert parsed.year_min <= cat.years[t] <= parsed.year_max
        assert cat.index(case.target) not in parsed.positive_refs  # the target is never named


def test_critiques_never_exclude_the_target(engine, cases) -> None:
    cat = engine.catalogue
    for case in cases[:6]:
        sid = f"crit-{case.user_id}"
        engine.reset(sid)
        user = SimulatedUser(case, cat, cold_start=True, seed=0)
        msg = user.opening()
        for _ in range(4):
            res = engine.chat(sid, msg, k=10)
            state = res.state
            t = cat.index(case.target)
            assert not set(state["rejected_categories"]) & set(cat.categories[t]), (msg, state)
            if case.target in [i.item_id for i in res.items]:
                break
            msg = user.critique([i.item_id for i in res.items], engine, sid)


def test_simulate_is_deterministic_and_well_formed(engine, cases) -> None:
    warm = simulate(engine, cases, k=10, max_turns=4, cold_start=False, seed=1)
    again = simulate(engine, cases, k=10, max_turns=4, cold_start=False, seed=1)
    assert warm.to_dict() == again.to_dict()
    assert warm.n_users == len(cases) and not warm.cold_start and len(warm.per_turn_success) == 4
    assert all(a <= b for a, b in zip(warm.per_turn_success, warm.per_turn_success[1:], strict=False))
    assert warm.success_at_k == warm.per_turn_success[-1]
    assert 0 <= warm.success_at_k <= 1
    if warm.success_at_k > 0:
        assert 1 <= warm.mean_turns_to_success <= 4
    else:
        assert math.isnan(warm.mean_turns_to_success)
    cold = simulate(engine, cases, k=10, max_turns=4, cold_start=True, seed=1, keep_transcripts=True)
    assert cold.cold_start and len(cold.transcripts) == len(cases)
    assert all(engine.store.get(f"sim-1-cold-{c.user_id}") is None for c in cases)  # sessions cleaned up


def test_unknown_targets_are_skipped(engine) -> None:
    report = simulate(engine, [SimCase("x", ("1",), "not-an-item")], k=5, max_turns=2)
    assert report.skipped == 1 and report.n_users == 0
