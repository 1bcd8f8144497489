"""Recommendations, similarity and fold-in, against brute-force numpy."""

import numpy as np
import pytest
import reference as ref
from conftest import awkward_ratings

import fastmf
from fastmf import BiasedALS


@pytest.fixture(scope="module")
def fitted():
    ratings = awkward_ratings(seed=2)
    return BiasedALS(n_factors=4, n_iter=5, random_state=0).fit(ratings), ratings


def _all_scores(model, user_index):
    return (model.global_mean_ + model.user_bias_[user_index] + model.item_bias_
            + model.item_factors_ @ model.user_factors_[user_index])


def test_recommend_is_the_brute_force_top_n_and_never_returns_rated_items(fitted):
    model, ratings = fitted
    for u in range(ratings.n_users):
        items, scores = model.recommend(u, n=7)
        rated = set(ratings.item_index[ratings.user_index == u])
        assert not rated & set(items)
        s = _all_scores(model, u).astype(np.float64)
        s[list(rated)] = -np.inf
        want = np.argsort(-s, kind="stable")[:7]
        np.testing.assert_array_equal(items, model.item_ids_[want])
        np.testing.assert_allclose(scores, s[want], rtol=1e-5)
        np.testing.assert_allclose(scores, model.predict(np.full(7, u), items), rtol=1e-5)


def test_recommend_batch_equals_one_by_one(fitted):
    model, ratings = fitted
    users = [3, 0, 17, 3, 41]
    items, scores = model.recommend_batch(users, n=5)
    for row, u in enumerate(users):
        one_items, one_scores = model.recommend(u, n=5)
        np.testing.assert_array_equal(items[row], one_items)
        np.testing.assert_array_equal(scores[row], one_scores)


def test_recommend_including_rated_items(fitted):
    model, _ = fitted
    items, _ = model.recommend(0, n=model.item_ids_.size, exclude_rated=False)
    assert sorted(items) == sorted(model.item_ids_)


def test_recommend_pads_when_a_user_rated_almost_everything():
    r = fastmf.Ratings([1, 1, 1, 2], ["a", "b", "c", "a"], [5.0, 4.0, 3.0, 1.0])
    model = BiasedALS(n_factors=2, n_iter=2, random_state=0).fit(r)
    items, scores = model.recommend(1, n=3)
    assert len(items) == 0 and len(scores) == 0
    batch_items, batch_scores = model.recommend_batch([1, 2], n=2)
    assert batch_items[0, 0] is None and np.isneginf(batch_scores[0]).all()
    assert set(batch_items[1]) == {"b", "c"}


def test_recommend_for_an_unknown_user(fitted):
    model, _ = fitted
    items, scores = model.recommend("stranger", n=3)
    want = np.argsort(-(model.global_mean_ + model.item_bias_), kind="stable")[:3]
    np.testing.assert_array_equal(items, model.item_ids_[want])
    with pytest.raises(KeyError, match="unknown user id 'stranger'"):
        model.recommend("stranger", unseen="raise")


def test_similar_items_by_cosine(fitted):
    model, _ = fitted
    F = model.item_factors_.astype(np.float64)
    norms = np.linalg.norm(F, axis=1)
    unit = F / np.where(norms > 0, norms, 1)[:, None]
    sims = unit @ unit[5]
    sims[5] = -np.inf
    want = np.argsort(-sims, kind="stable")[:4]
    items, got = model.similar_items(5, n=4)
    np.testing.assert_array_equal(items, model.item_ids_[want])
    np.testing.assert_allclose(got, sims[want], rtol=1e-5)
    users, _ = model.similar_users(0, n=3)
    assert 0 not in users and len(users) == 3
    with pytest.raises(KeyError, match="unknown item id 999"):
        model.similar_items(999)


def test_fold_in_equals_the_exact_row_update_against_the_fixed_items(fitted):
    model, ratings = fitted
    model = BiasedALS(**model.get_params()).fit(ratings)
    with pytest.raises(TypeError, match="user ids of dtype"):
        model.fold_in(fastmf.Ratings(["newbie"], [0], [5.0]))
    new_user = fastmf.Ratings([1000] * 4, [0, 3, 5, 8], [5.0, 1.0, 4.0, 2.0])
    model.fold_in(new_user)
    k = list(model.user_ids_).index(1000)
    cfg = model._config()
    want_U, want_b = ref.half_step(
        np.zeros(4, dtype=int), np.array([0, 3, 5, 8]), np.array([5.0, 1.0, 4.0, 2.0]), 1,
        np.zeros((1, 4)), np.zeros(1), model.item_factors_, model.item_bias_,
        model.global_mean_, cfg.reg, cfg.reg_bias, cfg.count_reg, cfg.count_bias, cfg.joint,
    )
    np.testing.assert_allclose(model.user_factors_[k], want_U[0], rtol=2e-3, atol=1e-5)
    assert model.user_bias_[k] == pytest.approx(want_b[0], rel=2e-3, abs=1e-5)
    # the folded-in user's rated items are excluded from their recommendations
    items, _ = model.recommend(1000, n=5)
    assert not {0, 3, 5, 8} & set(items)
    # and the other users are untouched
    assert model.predict([0], [1])[0] == pytest.approx(fitted[0].predict([0], [1])[0])


def test_fold_in_an_existing_user_replaces_their_row(fitted):
    model, ratings = fitted
    model = BiasedALS(**model.get_params()).fit(ratings)
    before = model.user_factors_.copy()
    with pytest.warns(UserWarning, match="ignoring 1 rating"):
        model.fold_in(fastmf.Ratings([2, 2, 2], [1, 2, 12345], [1.0, 1.0, 5.0]))
    assert model.user_factors_.shape == before.shape
    assert not np.allclose(model.user_factors_[2], before[2])
    np.testing.assert_array_equal(np.delete(model.user_factors_, 2, 0), np.delete(before, 2, 0))
    assert model.user_counts_[2] == 2
