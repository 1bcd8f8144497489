"""The contract every registered estimator keeps (docs/design.md, "Adding an estimator").

Each test runs over ``fastmf._registry.estimators()``; a new estimator gets the whole battery
by adding its small, fast parameters to ``FAST`` below.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import awkward_ratings

import fastmf
from fastmf import _registry as registry

FAST = {
    "als": dict(n_factors=3, n_iter=4),
    "bayes": dict(n_factors=2, n_samples=3, burn_in=2),
    "implicit": dict(n_factors=3, n_iter=4),
    "sgd": dict(n_factors=3, n_epochs=4, n_blocks=3),
}

ESTIMATORS = registry.estimators()


def test_every_registered_estimator_has_contract_parameters():
    assert sorted(FAST) == sorted(registry.names())


def make(cls, **kw):
    return cls(**{**FAST[cls._registry_name], "random_state": 0, **kw})


@pytest.fixture(scope="module")
def ratings():
    return awkward_ratings(seed=9, n_users=30, n_items=20, n=250)


def _pairs(r):
    return r.user_ids[r.user_index], r.item_ids[r.item_index]


@pytest.fixture(params=ESTIMATORS, ids=lambda c: c.__name__)
def cls(request):
    return request.param


def test_parameter_table_is_the_signature_and_get_params(cls):
    params = cls().get_params()
    assert list(params) == [p.name for p in cls._params]
    assert params == {p.name: p.default for p in cls._params}


def test_sklearn_clone_and_set_params(cls):
    base = pytest.importorskip("sklearn.base")
    model = make(cls)
    twin = base.clone(model)
    assert twin.get_params() == model.get_params() and twin is not model
    assert model.set_params(n_factors=5) is model and model.n_factors == 5
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(nonsense=1)
    assert "n_factors=5" in repr(model)


@pytest.mark.parametrize("kind", ["ratings", "dataframe", "sparse", "dense"])
def test_every_input_kind_gives_the_same_model(cls, kind):
    dense = np.array([[5.0, np.nan, 3.0, 1.0], [4.0, 2.0, np.nan, 1.0], [np.nan, 1.0, 5.0, 4.0],
                      [2.0, np.nan, 4.0, np.nan], [1.0, 5.0, np.nan, 2.0]])
    rows, cols = np.nonzero(~np.isnan(dense))
    X = {"ratings": fastmf.Ratings(rows, cols, dense[rows, cols]),
         "dataframe": pd.DataFrame({"user": rows, "item": cols, "rating": dense[rows, cols]}),
         "sparse": sp.csr_array((dense[rows, cols], (rows, cols)), shape=dense.shape),
         "dense": dense}[kind]
    want = make(cls).fit(fastmf.Ratings(rows, cols, dense[rows, cols]))
    got = make(cls).fit(X)
    np.testing.assert_array_equal(got.predict(rows, cols), want.predict(rows, cols))


def test_predictions_are_in_the_callers_id_space(cls, ratings):
    users, items = _pairs(ratings)
    names = np.array([f"u{u:03d}" for u in users])
    titles = np.array([f"item {i:03d}" for i in items])
    by_name = make(cls).fit(fastmf.Ratings(names, titles, ratings.values))
    by_index = make(cls).fit(fastmf.Ratings(users, items, ratings.values))
    np.testing.assert_array_equal(by_name.predict(names[:20], titles[:20]),
                                  by_index.predict(users[:20], items[:20]))
    rec, _ = by_name.recommend(names[0], n=3)
    assert all(isinstance(r, str) and r.startswith("item ") for r in rec)


def test_unseen_id_policies(cls, ratings):
    model = make(cls).fit(ratings)
    u, i = _pairs(ratings)
    bias = model.predict([999], [i[0]])
    assert bias[0] == pytest.approx(model.global_mean_ + model.item_bias_[
        list(model.item_ids_).index(i[0])], rel=1e-5)
    assert np.isnan(model.predict([999], [i[0]], unseen="nan")[0])
    with pytest.raises(KeyError, match="unknown user id 999"):
        model.predict([999], [i[0]], unseen="raise")


def test_recommend_batch_equals_recommend_one_by_one(cls, ratings):
    model = make(cls).fit(ratings)
    users = model.user_ids_[:6]
    items, scores = model.recommend_batch(users, n=4)
    for k, user in enumerate(users):
        one, s = model.recommend(user, n=4)
        np.testing.assert_array_equal(one, items[k][: len(one)])
        np.testing.assert_array_equal(s, scores[k][: len(one)])
        rated = set(ratings.item_ids[ratings.item_index[ratings.user_index == k]])
        assert not rated & set(one)


def test_similar_items_and_users(cls, ratings):
    model = make(cls).fit(ratings)
    item = model.item_ids_[0]
    ids, sims = model.similar_items(item, n=3)
    assert len(ids) == 3 and item not in ids and np.all(np.diff(sims) <= 1e-6)
    ids, sims = model.similar_users(model.user_ids_[0], n=3)
    assert len(ids) == 3 and np.all(sims <= 1 + 1e-5)


def test_save_load_round_trip(cls, ratings, tmp_path):
    model = make(cls).fit(ratings)
    back = fastmf.load(model.save(tmp_path / "m"))
    assert type(back) is cls and back.get_params() == model.get_params()
    u, i = _pairs(ratings)
    np.testing.assert_array_equal(back.predict(u, i), model.predict(u, i))
    np.testing.assert_array_equal(back.recommend_batch(u[:5], 3)[0],
                                  model.recommend_batch(u[:5], 3)[0])


def test_same_seed_same_factors_and_thread_count_changes_nothing(cls, ratings):
    a = make(cls, n_jobs=1).fit(ratings)
    b = make(cls, n_jobs=2).fit(ratings)
    c = make(cls, random_state=1).fit(ratings)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.user_factors_, c.user_factors_)


def test_float32_in_float32_out_and_float64_agrees(cls, ratings):
    u, i = _pairs(ratings)
    p32 = make(cls, dtype="float32").fit(ratings).predict(u, i)
    p64 = make(cls, dtype="float64").fit(ratings).predict(u, i)
    assert p32.dtype == np.float32 and p64.dtype == np.float64
    np.testing.assert_allclose(p32, p64, atol=0.05)


def test_interrupted_fit_keeps_a_usable_model(cls, ratings):
    model = make(cls)

    def interrupt(it, m):
        if it == m.get_params().get("burn_in", 0) + 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(ratings, callback=interrupt)
    u, i = _pairs(ratings)
    assert np.isfinite(model.predict(u, i)).all()
    assert model.n_iter_ >= 1


@pytest.mark.parametrize("bad, error, match", [
    (lambda cls: cls().fit(sp.csr_array((3, 3))), ValueError, "cannot fit on an empty"),
    (lambda cls: cls().fit([(1, 2, 3.0)]), TypeError, "expected Ratings"),
    (lambda cls: cls(n_factors=0).fit(fastmf.Ratings([1], [2], [3.0])), ValueError,
     "n_factors must be a positive int"),
    (lambda cls: cls(dtype="int8").fit(fastmf.Ratings([1], [2], [3.0])), ValueError,
     "dtype must be float32 or float64"),
    (lambda cls: cls().predict([1], [2]), AttributeError, "not fitted yet"),
], ids=["empty", "wrong-type", "n_factors", "dtype", "unfitted"])
def test_bad_input_is_a_clear_error(cls, bad, error, match):
    with pytest.raises(error, match=match):
        bad(cls)
