"""Metrics against hand-computed cases."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastmf import BiasedALS, make_ratings
from fastmf.metrics import (
    mae,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_report,
    recall_at_k,
    rmse,
)


def test_rmse_and_mae_by_hand():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in length"):
        rmse([1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        mae([], [])


# user 0: relevant {1, 3}, recommended [1, 2, 3] -> hits [1, 0, 1]
# user 1: relevant {0},    recommended [2, 0, -1] -> hits [0, 1, 0]
# user 2: relevant {},     ignored
REC = np.array([[1, 2, 3], [2, 0, -1], [0, 1, 2]])
REL = sp.csr_array((np.ones(3), ([0, 0, 1], [1, 3, 0])), shape=(3, 4))


def test_precision_and_recall_by_hand():
    assert precision_at_k(REC, REL, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert recall_at_k(REC, REL, 3) == pytest.approx((2 / 2 + 1 / 1) / 2)
    assert precision_at_k(REC, REL, 1) == pytest.approx((1 + 0) / 2)
    assert recall_at_k(REC, REL, 1) == pytest.approx((1 / 2 + 0) / 2)


def test_ndcg_by_hand():
    d = 1 / np.log2([2, 3, 4])
    user0 = (d[0] + d[2]) / (d[0] + d[1])
    user1 = d[1] / d[0]
    assert ndcg_at_k(REC, REL, 3) == pytest.approx((user0 + user1) / 2)


def test_map_by_hand():
    user0 = (1 / 1 + 2 / 3) / 2
    user1 = (1 / 2) / 1
    assert map_at_k(REC, REL, 3) == pytest.approx((user0 + user1) / 2)


def test_ranking_metric_errors():
    with pytest.raises(ValueError, match="k must be in 1..3"):
        precision_at_k(REC, REL, 4)
    with pytest.raises(ValueError, match="no user has a relevant item"):
        recall_at_k(REC, sp.csr_array((3, 4)), 2)


def test_ranking_report_on_a_planted_model_beats_random():
    ratings, _ = make_ratings(300, 150, 9000, n_factors=3, noise=0.3, random_state=3)
    rng = np.random.default_rng(0)
    test = rng.random(ratings.nnz) < 0.2
    train, held = ratings.subset(~test), ratings.subset(test)
    model = BiasedALS(n_factors=3, n_iter=10, random_state=0).fit(train)
    report = ranking_report(model, held, k=10, threshold=4.0)
    assert set(report) == {"precision@10", "recall@10", "ndcg@10", "map@10", "coverage@10",
                           "long_tail@10"}
    assert all(0 <= v <= 1 for v in report.values())
    # a random ranking's expected precision is (relevant items per user) / (candidate items)
    rel_per_user = (held.values >= 4.0).sum() / len(np.unique(held.user_index))
    assert report["precision@10"] > 2 * rel_per_user / 150


def test_bias_only_baseline_against_a_pandas_groupby_oracle():
    import pandas as pd

    from fastmf.baseline import BiasOnly

    ratings, _ = make_ratings(50, 30, 600, random_state=2)
    df = pd.DataFrame({"u": ratings.user_index, "i": ratings.item_index, "r": ratings.values})
    mu = df["r"].mean()
    b = (df["r"] - mu).groupby(df["u"]).sum() / (df.groupby("u").size() + 3.0)
    c = (df["r"] - mu - b[df["u"]].to_numpy()).groupby(df["i"]).sum() / (
        df.groupby("i").size() + 3.0)
    model = BiasOnly(reg=3.0, n_iter=1).fit(ratings)
    np.testing.assert_allclose(model.user_bias_[b.index], b.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(model.item_bias_[c.index], c.to_numpy(), rtol=1e-12)
    pred = model.predict([b.index[0]], [c.index[0]])[0]
    assert pred == pytest.approx(mu + b.iloc[0] + c.iloc[0])
