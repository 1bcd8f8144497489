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
    lo, hi = model.rating_range_
    for u in range(ratings.n_users):
        items, scores = model.recommend(u, n=7, rank_by="rating")
        rated = set(ratings.item_index[ratings.user_index == u])
        assert not rated & set(items)
        s = _all_scores(model, u).astype(np.float64)
        s[list(rated)] = -np.inf
        want = np.argsort(-s, kind="stable")[:7]
        np.testing.assert_array_equal(items, model.item_ids_[want])
        np.testing.assert_allclose(scores, np.clip(s[want], lo, hi), rtol=1e-5)
        np.testing.assert_allclose(scores, model.predict(np.full(7, u), items), rtol=1e-5)


def test_default_ranking_is_the_brute_force_probability_of_a_liked_item(fitted):
    from scipy.special import log_ndtr

    model, ratings = fitted
    counts = np.bincount(ratings.item_index, minlength=ratings.n_items)
    for u in range(ratings.n_users):
        items, scores = model.recommend(u, n=7)
        rated = list(ratings.item_index[ratings.user_index == u])
        s = _all_scores(model, u).astype(np.float64)
        liked = np.log1p(counts) + log_ndtr((s - model.global_mean_) / model.residual_std_)
        liked[rated] = -np.inf
        want = np.argsort(-liked, kind="stable")[:7]
        np.testing.assert_array_equal(items, model.item_ids_[want])
        np.testing.assert_allclose(scores, model.predict(np.full(7, u), items), rtol=1e-5)


def test_residual_std_is_the_training_rmse(fitted):
    model, ratings = fitted
    pred = model.predict(ratings.user_ids[ratings.user_index],
                         ratings.item_ids[ratings.item_index], clip=False)
    assert model.residual_std_ == pytest.approx(np.sqrt(np.mean((pred - ratings.values) ** 2)),
                                                rel=1e-5)


def test_predictions_are_clipped_to_the_training_range_unless_asked():
    # issue 12: 5.44 predicted on a 1-5 scale, 6.95 after a fold_in
    r = awkward_ratings(seed=3)
    model = BiasedALS(n_factors=6, reg=0.001, n_iter=20, random_state=0).fit(r)
    users, items = np.meshgrid(model.user_ids_, model.item_ids_)
    raw = model.predict(users.ravel(), items.ravel(), clip=False)
    lo, hi = model.rating_range_
    assert (lo, hi) == (r.values.min(), r.values.max())
    assert raw.max() > hi and raw.min() < lo  # the case the clip is for
    clipped = model.predict(users.ravel(), items.ravel())
    np.testing.assert_array_equal(clipped, np.clip(raw, lo, hi))
    model.fold_in(fastmf.Ratings([999] * 3, [0, 1, 2], [5.0, 5.0, 5.0]))
    assert model.predict(np.full(len(model.item_ids_), 999), model.item_ids_).max() <= hi


def test_recommend_batch_equals_one_by_one(fitted):
    model, ratings = fitted
    users = [3, 0, 17, 3, 41]
    items, scores = model.recommend_batch(users, n=5, rank_by="rating")
    for row, u in enumerate(users):
        one_items, one_scores = model.recommend(u, n=5, rank_by="rating")
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
    items, scores = model.recommend(123_456, n=3, rank_by="rating")
    want = np.argsort(-(model.global_mean_ + model.item_bias_), kind="stable")[:3]
    np.testing.assert_array_equal(items, model.item_ids_[want])
    with pytest.raises(KeyError, match="unknown user id 123456"):
        model.recommend(123_456, unseen="raise")


@pytest.mark.parametrize("shrink", [0.0, 10.0])
def test_similar_items_by_shrunk_cosine(fitted, shrink):
    model, _ = fitted
    F = model.item_factors_.astype(np.float64)
    norms = np.linalg.norm(F, axis=1)
    unit = F / np.where(norms > 0, norms, 1)[:, None]
    n = model.item_counts_
    sims = (unit @ unit[5]) * (n / (n + shrink) if shrink else 1.0)
    sims[5] = -np.inf
    want = np.argsort(-sims, kind="stable")[:4]
    items, got = model.similar_items(5, n=4, shrink=shrink)
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
