"""BiasedALS: the estimator against the tutorial's loop, the mathematics and its contract."""

import numpy as np
import pytest
import reference as ref
import scipy.sparse as sp
from conftest import CONFIGS, awkward_ratings

import fastmf
from fastmf import BiasedALS, Ratings


def _fit(ratings, **kw):
    params = dict(n_factors=4, n_iter=5, random_state=0)
    params.update(kw)
    return BiasedALS(**params).fit(ratings)


def test_tutorial_configuration_reproduces_the_tutorial_loop():
    ratings = awkward_ratings(seed=7, n_users=30, n_items=25, n=250)
    M, N = ratings.shape
    K, lam = 3, 0.1
    rng = np.random.default_rng(11)
    U0 = rng.standard_normal((M, K)) / K
    V0 = rng.standard_normal((K, N)) / K  # the tutorial's layout: K x N
    u = ratings.user_index
    i = ratings.item_index
    U, V, b, c = ref.tutorial_als(u, i, ratings.values, M, N, K, lam, 3, U0, V0)

    model = BiasedALS.tutorial(K, reg=lam, n_iter=3, dtype="float64")
    model.fit(ratings, init_user_factors=U0, init_item_factors=V0.T)
    for got, want in [(model.user_factors_, U), (model.item_factors_, V.T),
                      (model.user_bias_, b), (model.item_bias_, c)]:
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_loss_curve_is_the_objective_and_never_increases(small, config):
    bias_update, scaling, bias_scaling = config
    model = _fit(small, bias_update=bias_update, reg_scaling=scaling,
                 bias_reg_scaling=bias_scaling, dtype="float64", n_iter=8)
    assert model.loss_curve_.dtype == np.float64 and len(model.loss_curve_) == 8 == model.n_iter_
    assert np.all(np.diff(model.loss_curve_) <= 1e-10 * model.loss_curve_[:-1])
    assert model.objective(small) == pytest.approx(model.loss_curve_[-1], rel=1e-12)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
@pytest.mark.parametrize("dtype, rel", [("float32", 1e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("bias_update", ["joint", "sequential"])
def test_loss_curve_is_the_float64_objective_for_every_solver_and_dtype(small, solver, dtype,
                                                                      rel, bias_update):
    """loss_curve_ comes from the item half-step's residuals (issue 17), each computed in
    the factors' dtype; it must still be J as the all-float64 objective() evaluates it."""
    model = _fit(small, solver=solver, dtype=dtype, bias_update=bias_update, n_iter=6)
    assert model.objective(small) == pytest.approx(model.loss_curve_[-1], rel=rel)
    # the first iteration too: the curve is not a copy of one final value
    first = _fit(small, solver=solver, dtype=dtype, bias_update=bias_update, n_iter=1)
    assert first.objective(small) == pytest.approx(model.loss_curve_[0], rel=rel)


def test_float32_and_float64_agree(small):
    m32 = _fit(small, dtype="float32", n_iter=10)
    m64 = _fit(small, dtype="float64", n_iter=10)
    assert m32.user_factors_.dtype == np.float32 and m64.user_factors_.dtype == np.float64
    users, items = small.user_ids[small.user_index], small.item_ids[small.item_index]
    p32 = m32.predict(users, items)
    p64 = m64.predict(users, items)
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, atol=2e-3)


def test_n_jobs_does_not_change_a_single_bit(small):
    a = _fit(small, n_jobs=1, n_iter=4)
    b = _fit(small, n_jobs=2, n_iter=4)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_", "loss_curve_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_same_random_state_same_model_and_different_state_differs(small):
    a, b, c = _fit(small), _fit(small), _fit(small, random_state=1)
    assert np.array_equal(a.user_factors_, b.user_factors_)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


def test_planted_model_is_recovered_to_the_noise_floor():
    noise = 0.2
    ratings, truth = fastmf.make_ratings(400, 300, 30_000, n_factors=3, noise=noise,
                                         random_state=5)
    rng = np.random.default_rng(0)
    test = rng.random(ratings.nnz) < 0.1
    train, held = ratings.subset(~test), ratings.subset(test)
    model = BiasedALS(n_factors=3, reg=0.02, n_iter=25, random_state=0).fit(train)
    pred = model.predict(held.user_ids[held.user_index], held.item_ids[held.item_index])
    rmse = np.sqrt(np.mean((pred - held.values) ** 2))
    # the noise floor is `noise`; a model of the right rank gets within 15 % of it
    assert rmse < 1.15 * noise, rmse
    clean = truth.predict_index(held.user_index, held.item_index)
    assert np.sqrt(np.mean((pred - clean) ** 2)) < 0.6 * noise


def test_sparse_dense_dataframe_and_ratings_inputs_give_the_same_model(small):
    pd = pytest.importorskip("pandas")
    X = small.to_scipy()
    dense = np.full(small.shape, np.nan)
    dense[small.user_index, small.item_index] = small.values
    df = pd.DataFrame({"user": small.user_ids[small.user_index],
                       "item": small.item_ids[small.item_index], "rating": small.values})
    models = [_fit(x, dtype="float64") for x in (small, X, sp.coo_matrix(X), dense)]
    for m in models[1:]:
        np.testing.assert_array_equal(m.user_factors_, models[0].user_factors_)
        np.testing.assert_array_equal(m.item_bias_, models[0].item_bias_)
    # a DataFrame knows only the ids that have ratings: it equals triples without a universe
    m_df = _fit(df, dtype="float64")
    m_triples = _fit(Ratings(df["user"], df["item"], df["rating"]), dtype="float64")
    np.testing.assert_array_equal(m_df.user_factors_, m_triples.user_factors_)
    assert len(m_df.user_ids_) == small.n_users - 1  # the empty user is not in the frame


def test_fit_returns_self_and_leaves_inputs_and_params_alone(small):
    X = small.to_scipy()
    X_before = X.copy()
    U0 = np.ones((small.n_users, 4))
    U0_before = U0.copy()
    model = BiasedALS(n_factors=4, n_iter=2, random_state=3)
    params = model.get_params()
    assert model.fit(X, init_user_factors=U0) is model
    assert (X != X_before).nnz == 0 and np.array_equal(U0, U0_before)
    assert model.get_params() == params
    assert not hasattr(BiasedALS(), "user_factors_")


def test_empty_rows_predict_like_unseen_ids(small):
    model = _fit(small)
    empty_user = small.n_users - 2  # no ratings in `small`
    assert np.all(model.user_factors_[empty_user] == 0) and model.user_bias_[empty_user] == 0
    p_empty = model.predict([empty_user], [3])[0]
    p_unknown = model.predict([10_000], [3])[0]
    assert p_empty == pytest.approx(p_unknown, rel=1e-6)
    assert p_unknown == pytest.approx(model.global_mean_ + model.item_bias_[3], rel=1e-6)


def test_unseen_policies(small):
    model = _fit(small)
    assert np.isnan(model.predict([10_000], [3], unseen="nan")[0])
    with pytest.raises(KeyError, match="unknown item id 999"):
        model.predict([1], [999], unseen="raise")
    with pytest.raises(ValueError, match="unseen must be one of"):
        model.predict([1], [1], unseen="zero")
    both = model.predict([10_000], [99_999])[0]
    assert both == pytest.approx(model.global_mean_)
    with pytest.raises(TypeError, match="item id 'nope' is text"):  # not a silent stranger
        model.predict([10_000], ["nope"])


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(AttributeError, match="not fitted yet"):
        BiasedALS().predict([1], [1])


def test_string_ids_round_trip():
    r = Ratings(["ann", "bob", "ann", "cy"], ["x", "y", "y", "x"], [5, 3, 4, 1])
    model = BiasedALS(n_factors=2, n_iter=3, random_state=0).fit(r)
    assert list(model.user_ids_) == ["ann", "bob", "cy"]
    assert model.predict(["ann"], ["x"]).shape == (1,)


def test_early_stopping_keeps_the_best_iteration():
    ratings, _ = fastmf.make_ratings(300, 200, 8000, n_factors=3, noise=0.8, random_state=8)
    rng = np.random.default_rng(1)
    test = rng.random(ratings.nnz) < 0.2
    train, val = ratings.subset(~test), ratings.subset(test)
    # weak regularization and many factors overfit, so validation RMSE turns up
    full = BiasedALS(n_factors=10, reg=0.02, n_iter=15, random_state=0).fit(train, validation=val)
    curve = full.validation_curve_
    best = int(np.argmin(curve)) + 1
    assert best < 15, curve  # the premise: it does overfit
    early = BiasedALS(n_factors=10, reg=0.02, n_iter=15, random_state=0).fit(
        train, validation=val, early_stopping_rounds=2)
    assert early.n_iter_ == best
    np.testing.assert_allclose(early._rmse_index(*early._validation_pairs(val, train)),
                               curve[best - 1], rtol=1e-6)
    assert len(early.validation_curve_) == best + 2


def _training_rmse(model, ratings):
    pred = model.predict(ratings.user_ids[ratings.user_index],
                         ratings.item_ids[ratings.item_index], clip=False)
    return np.sqrt(np.mean((pred - ratings.values) ** 2))


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_residual_std_is_the_training_rmse_of_the_kept_iteration(solver):
    """``residual_std_`` comes from the last step's residuals, which belong to another
    iteration than the one early stopping keeps: it must be recomputed then."""
    ratings, _ = fastmf.make_ratings(300, 200, 8000, n_factors=3, noise=0.8, random_state=8)
    test = np.random.default_rng(1).random(ratings.nnz) < 0.2
    train, val = ratings.subset(~test), ratings.subset(test)
    p = dict(n_factors=10, reg=0.02, n_iter=15, solver=solver, random_state=0)
    last = BiasedALS(**p).fit(train)
    early = BiasedALS(**p).fit(train, validation=val, early_stopping_rounds=2)
    assert early.n_iter_ < len(early.loss_curve_)  # the premise: an earlier iteration kept
    for model in (last, early):
        assert model.residual_std_ == pytest.approx(_training_rmse(model, train), rel=1e-5)
    assert early.residual_std_ != pytest.approx(last.residual_std_, rel=1e-3)


def test_callback_sees_each_iteration_and_can_stop(small):
    seen = []
    model = BiasedALS(n_factors=3, n_iter=10, random_state=0).fit(
        small, callback=lambda it, m: seen.append((it, len(m.loss_curve_))) or it == 3)
    assert seen == [(1, 1), (2, 2), (3, 3)] and model.n_iter_ == 3


def test_cg_solver_converges_to_the_cholesky_solution():
    ratings, _ = fastmf.make_ratings(300, 200, 8000, n_factors=3, random_state=4)
    common = dict(n_factors=3, reg=0.1, random_state=0, dtype="float64")
    exact = BiasedALS(n_iter=60, **common).fit(ratings)
    cg = BiasedALS(n_iter=60, solver="cg", cg_steps=3, **common).fit(ratings)
    # the same objective value at convergence, reached from the same start
    assert cg.loss_curve_[-1] == pytest.approx(exact.loss_curve_[-1], rel=1e-6)
    users, items = ratings.user_ids[ratings.user_index], ratings.item_ids[ratings.item_index]
    np.testing.assert_allclose(cg.predict(users, items), exact.predict(users, items), atol=1e-3)


def test_verbose_fit_shows_a_progress_bar(small, capsys):
    BiasedALS(n_factors=2, n_iter=3, random_state=0, verbose=True).fit(small)
    err = capsys.readouterr().err
    assert "BiasedALS" in err and "3/3" in err and "loss=" in err


@pytest.mark.parametrize("make", [
    lambda: fastmf.BiasedALS(5, n_iter=1, solver="cg"),
    lambda: fastmf.BiasedALS(5, n_iter=1, dtype="float32"),
    lambda: fastmf.ImplicitALS(5, n_iter=1),
    lambda: fastmf.BiasedSGD(5, n_epochs=1),
])
def test_fitted_factors_start_on_a_cache_line(small, make):
    """The kernels read factor rows with 64-byte vector loads; numpy's own arrays start 16 to
    48 bytes into a line, which split every load (issue 17). The fits allocate the factor
    matrices they write on a 64-byte boundary, given initial factors included. (BayesianALS's
    chain state is allocated the same way; what it publishes are the samples' means.)"""
    m = make().fit(small)
    for F in (m.user_factors_, m.item_factors_):
        assert F.ctypes.data % 64 == 0 and F.flags.c_contiguous and F.flags.writeable
    if isinstance(m, fastmf.BiasedALS):
        given = np.asarray(m.user_factors_, dtype=np.float64)[:, ::-1]  # not contiguous
        before = given.copy()
        again = type(m)(**m.get_params()).fit(small, init_user_factors=given)
        assert again.user_factors_.ctypes.data % 64 == 0
        np.testing.assert_array_equal(given, before)  # the caller's array is not written


def test_aligned_empty_is_an_ordinary_array():
    from fastmf.base import aligned_empty

    for shape, dtype in [((0, 3), np.float32), ((7, 5), np.float64), ((3,), np.int64)]:
        a = aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype
        assert a.size == 0 or a.ctypes.data % 64 == 0
        assert a.flags.c_contiguous and a.flags.writeable
        a[...] = 1
        assert np.array_equal(a, np.ones(shape, dtype))
