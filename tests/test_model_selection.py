"""Splits, cross-validation and search."""

import numpy as np
import pytest

from fastmf import BiasedALS, make_ratings
from fastmf.model_selection import KFold, cross_validate, search, train_test_split


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(200, 120, 5000, n_factors=3, noise=0.4, random_state=6)[0]


def _keys(r):
    return set(zip(r.user_index.tolist(), r.item_index.tolist()))


def test_random_split_partitions_the_ratings(ratings):
    train, test = train_test_split(ratings, 0.25, random_state=0)
    assert test.nnz == round(0.25 * ratings.nnz)
    assert _keys(train) | _keys(test) == _keys(ratings) and not _keys(train) & _keys(test)
    assert train.shape == test.shape == ratings.shape  # one id space
    again = train_test_split(ratings, 0.25, random_state=0)[1]
    assert _keys(again) == _keys(test)


def test_per_user_holdout_keeps_every_user_in_training(ratings):
    train, test = train_test_split(ratings, 0.2, by="user", random_state=1)
    n_all = np.bincount(ratings.user_index, minlength=ratings.n_users)
    n_test = np.bincount(test.user_index, minlength=ratings.n_users)
    n_train = np.bincount(train.user_index, minlength=ratings.n_users)
    has = n_all >= 2
    assert np.all(n_train[n_all > 0] >= 1)
    assert np.all(n_test[has] == np.clip(np.round(0.2 * n_all[has]), 1, n_all[has] - 1))


def test_unseen_drop_removes_test_rows_of_users_or_items_without_training_data():
    ratings = make_ratings(300, 400, 1500, random_state=6)[0]
    train, test = train_test_split(ratings, 0.5, random_state=2, unseen="drop")
    seen_u = set(train.user_index.tolist())
    seen_i = set(train.item_index.tolist())
    assert all(u in seen_u for u in test.user_index) and all(i in seen_i for i in test.item_index)
    _, kept = train_test_split(ratings, 0.5, random_state=2)
    assert kept.nnz > test.nnz  # the premise: some were unseen at 50 %


def test_kfold_test_sets_partition_the_ratings(ratings):
    seen = []
    for train, test in KFold(4, random_state=0).split(ratings):
        assert not _keys(train) & _keys(test)
        assert train.nnz + test.nnz == ratings.nnz
        seen.append(_keys(test))
    assert set().union(*seen) == _keys(ratings) and sum(map(len, seen)) == ratings.nnz


def test_cross_validate_reports_each_fold(ratings):
    res = cross_validate(BiasedALS(n_factors=3, n_iter=5, random_state=0), ratings, cv=3)
    assert res["test_rmse"].shape == (3,) and np.all(res["test_rmse"] < 1.0)
    assert np.all(res["test_mae"] < res["test_rmse"])


def test_search_returns_the_best_of_its_own_table(ratings):
    res = search(BiasedALS(n_iter=5, random_state=0), ratings,
                 {"n_factors": [1, 3], "reg": [0.05, 5.0]}, cv=2, refit=True)
    assert len(res.results) == 4
    best_row = res.results.loc[res.results["mean_rmse"].idxmin()]
    assert res.best_score == best_row["mean_rmse"]
    assert res.best_params == {"n_factors": int(best_row["n_factors"]), "reg": best_row["reg"]}
    assert res.best_params["reg"] == 0.05  # reg=5 (count-scaled) shrinks everything to mu
    assert res.best_estimator.n_factors == res.best_params["n_factors"]
    sampled = search(BiasedALS(n_iter=3, random_state=0), ratings,
                     {"n_factors": [1, 2, 3], "reg": [0.1, 0.2]}, cv=2, n_samples=2)
    assert len(sampled.results) == 2
