"""Exact, hand-computed checks of every ranking metric."""

import math

import numpy as np
import pytest

from components.metrics import (
    catalogue_coverage,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    popularity_bias,
    target_ranks,
)


def test_target_ranks_counts_higher_scores_and_ties_pessimistically():
    scores = np.array(
        [
            [0.9, 0.1, 0.5, 0.3],  # target 2 (0.5): one higher -> rank 1
            [0.2, 0.2, 0.2, 0.2],  # target 0: all tied -> pessimistic rank 3
            [0.1, 0.4, 0.3, 0.8],  # target 3 is the best -> rank 0
        ]
    )
    np.testing.assert_array_equal(target_ranks(scores, np.array([2, 0, 3])), [1, 3, 0])


def test_excluded_target_ranks_last():
    scores = np.array([[0.5, -np.inf, 0.1]])
    assert target_ranks(scores, np.array([1]))[0] == 3


def test_hit_rate_ndcg_mrr_hand_computed():
    ranks = np.array([0, 1, 4, 12])
    assert hit_rate_at_k(ranks, 5) == pytest.approx(3 / 4)
    assert hit_rate_at_k(ranks, 1) == pytest.approx(1 / 4)
    # NDCG@5 = mean(1/log2(2), 1/log2(3), 1/log2(6), 0)
    expected = (1.0 + 1 / math.log2(3) + 1 / math.log2(6) + 0.0) / 4
    assert ndcg_at_k(ranks, 5) == pytest.approx(expected)
    assert ndcg_at_k(ranks, 20) == pytest.approx(
        (1.0 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(14)) / 4
    )
    # MRR@5 = mean(1, 1/2, 1/5, 0)
    assert mrr_at_k(ranks, 5) == pytest.approx((1 + 0.5 + 0.2) / 4)
    assert mrr_at_k(ranks, 2) == pytest.approx((1 + 0.5) / 4)


def test_empty_inputs_are_zero():
    empty = np.array([], dtype=np.int64)
    assert hit_rate_at_k(empty, 10) == 0.0 and ndcg_at_k(empty, 10) == 0.0 and mrr_at_k(empty, 10) == 0.0


def test_coverage_and_popularity_bias():
    top = np.array([[0, 1], [1, 2]])
    assert catalogue_coverage(top, 6) == pytest.approx(3 / 6)
    popularity = np.array([10, 30, 20, 0])  # percentiles: item0 1/3, item1 1, item2 2/3, item3 0
    assert popularity_bias(top, popularity) == pytest.approx((1 / 3 + 1 + 1 + 2 / 3) / 4)
