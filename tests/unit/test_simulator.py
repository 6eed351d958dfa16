"""User simulator: leave-one-out cases, the target's own words (never the planner's), deterministic
reports."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from components.simulator import SimCase, SimulatedUser, careless, leave_one_out_cases, own_words, simulate
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


def test_careless_titles_and_own_words(engine) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    forms = {"the matrix", "matrix"}

    def one_swap_from(t: str) -> bool:
        return any(
            t == f[:i] + f[i + 1] + f[i] + f[i + 2 :]
            for f in forms
            for i in range(len(f) - 1)
            if len(t) == len(f)
        )

    typed = [careless("Matrix, The (1999)", rng) for _ in range(30)]
    assert all(t in forms or one_swap_from(t) for t in typed)
    assert any(t not in forms for t in typed) and any(t in forms for t in typed)
    ix = engine.index
    words = own_words(ix, ix.index("1"))  # Toy Story: no tags in ML-100K, so nothing beyond title/genres
    assert all(w not in ("toy", "story", "animation", "comedy") for w in words)


def test_the_simulator_does_not_speak_the_planner_vocabulary(engine, cases) -> None:
    vocabulary = {p for p, rows in engine.index.phrases.items() if any(w >= 1.0 for _, _, w in rows)}
    values = {v.lower() for f in engine.index.categories.values() for v in f.values}
    for case in cases:
        user = SimulatedUser(case, engine.index, cold_start=False, seed=0)
        opening = user.opening().lower()
        spoken = {p for p in vocabulary if f" {p} " in f" {opening} "} - values
        assert not spoken, (opening, spoken)  # only the catalogue's own value names, never our synonyms
        assert engine.index.titles[engine.index.index(case.target)].lower() not in opening


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
