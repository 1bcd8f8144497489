"""BayesianALS: the Gibbs kernel against its slow twin and the mathematics, the chain against
a spelled-out sampler, and the estimator's behaviour."""

import numpy as np
import pytest
import reference as ref
from conftest import awkward_ratings

import fastmf
from fastmf._solver import row_order
from fastmf.bayes import sample_prior
from fastmf.kernels import sample_rows, solve_rows
from fastmf.model_selection import search, train_test_split


def _spd(D, rng, scale=1.0):
    A = rng.standard_normal((D, D))
    return scale * (A @ A.T / D + np.eye(D))


def _draw(ratings, K, dtype, F, bias, other, other_bias, mu, alpha, prec, shift, noise,
          n_tasks=2):
    csr = ratings.to_csr(dtype)
    order = row_order(np.diff(csr[0]))
    dt = np.dtype(dtype).type
    F, bias = F.astype(dtype), bias.astype(dtype)
    failed = sample_rows(*csr, other.astype(dtype), other_bias.astype(dtype), dt(mu), dt(alpha),
                         prec.astype(dtype), shift.astype(dtype), np.zeros((0, K + 1), dtype),
                         order, n_tasks,
                         noise[: len(order)].astype(dtype), F, bias)
    return failed, F, bias, order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 6])
def test_gibbs_kernel_matches_reference(dtype, K):
    ratings = awkward_ratings()
    M, N = ratings.shape
    rng = np.random.default_rng(K)
    F, V = rng.standard_normal((M, K)) / K, rng.standard_normal((N, K)) / K
    bias, c = 0.1 * rng.standard_normal(M), 0.1 * rng.standard_normal(N)
    prec, shift = _spd(K + 1, rng, 3.0), rng.standard_normal(K + 1)
    noise = rng.standard_normal((M, K + 1))
    mu, alpha = float(ratings.values.mean()), 1.7
    failed, got_F, got_b, order = _draw(ratings, K, dtype, F, bias, V, c, mu, alpha, prec,
                                        shift, noise)
    want_F, want_b = ref.gibbs_draw(ratings.user_index, ratings.item_index, ratings.values, M,
                                    F, bias, V, c, mu, alpha, prec, shift, order, noise)
    assert failed == 0
    tol = 2e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got_F, want_F, rtol=tol, atol=tol)
    np.testing.assert_allclose(got_b, want_b, rtol=tol, atol=tol)
    empty = np.diff(ratings.to_csr(dtype)[0]) == 0
    np.testing.assert_array_equal(got_F[empty], F[empty].astype(dtype))  # never drawn


def test_gibbs_kernel_chunks_long_rows_exactly():
    # K = 150: the gather scratch holds 41 ratings, so 120-rating rows go in chunks.
    rng = np.random.default_rng(3)
    K, M, N = 150, 3, 120
    users = np.repeat(np.arange(M), N)
    items = np.tile(np.arange(N), M)
    ratings = fastmf.Ratings(users, items, rng.integers(1, 6, M * N).astype(float))
    F, V = rng.standard_normal((M, K)) / K, rng.standard_normal((N, K)) / K
    bias, c = np.zeros(M), 0.1 * rng.standard_normal(N)
    prec, shift, noise = _spd(K + 1, rng), rng.standard_normal(K + 1), rng.standard_normal(
        (M, K + 1))
    _, got_F, got_b, order = _draw(ratings, K, np.float64, F, bias, V, c, 3.0, 2.0, prec, shift,
                                   noise)
    want_F, want_b = ref.gibbs_draw(ratings.user_index, ratings.item_index, ratings.values, M,
                                    F, bias, V, c, 3.0, 2.0, prec, shift, order, noise)
    np.testing.assert_allclose(got_F, want_F, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(got_b, want_b, rtol=1e-9, atol=1e-10)


def test_gibbs_mean_is_the_ridge_solution():
    # With no noise, alpha = 1, prior precision reg I and prior mean 0, a draw is the
    # posterior mode: exactly the ALS row update with a plain (not count-scaled) penalty.
    ratings = awkward_ratings()
    M, N = ratings.shape
    K, reg = 5, 0.3
    rng = np.random.default_rng(0)
    V, c = rng.standard_normal((N, K)) / K, 0.1 * rng.standard_normal(N)
    mu = float(ratings.values.mean())
    _, got_F, got_b, _ = _draw(ratings, K, np.float64, np.zeros((M, K)), np.zeros(M), V, c, mu,
                               1.0, reg * np.eye(K + 1), np.zeros(K + 1),
                               np.zeros((M, K + 1)))
    csr = ratings.to_csr(np.float64)
    F, b = np.zeros((M, K)), np.zeros(M)
    solve_rows(*csr, V, c, mu, reg, reg, False, False, True, row_order(np.diff(csr[0])), 2, F,
               b, np.empty(0))
    np.testing.assert_allclose(got_F, F, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_b, b, rtol=1e-10, atol=1e-12)


def test_gibbs_draws_have_the_conditional_covariance():
    # 20,000 users with identical ratings share one conditional N(m, P^-1): their draws'
    # mean and covariance must match it (a transposed L would get the covariance wrong).
    rng = np.random.default_rng(5)
    K, R, n_items = 3, 20_000, 6
    V, c = rng.standard_normal((n_items, K)), 0.2 * rng.standard_normal(n_items)
    vals = rng.integers(1, 6, n_items).astype(float)
    ratings = fastmf.Ratings(np.repeat(np.arange(R), n_items), np.tile(np.arange(n_items), R),
                             np.tile(vals, R))
    prec, shift = _spd(K + 1, rng), rng.standard_normal(K + 1)
    mu, alpha = 3.0, 0.8
    _, F, b, _ = _draw(ratings, K, np.float64, np.zeros((R, K)), np.zeros(R), V, c, mu, alpha,
                       prec, shift, rng.standard_normal((R, K + 1)))
    draws = np.column_stack([F, b])
    Z = np.column_stack([V, np.ones(n_items)])
    P = prec + alpha * Z.T @ Z
    mean = np.linalg.solve(P, alpha * Z.T @ (vals - mu - c) + shift)
    cov = np.linalg.inv(P)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(draws.mean(0), mean, atol=5 * sd.max() / np.sqrt(R))
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05 * np.abs(cov).max())


def test_sample_prior_has_the_normal_wishart_moments():
    rng = np.random.default_rng(2)
    n, K = 50, 2
    F, bias = rng.standard_normal((n, K)) + 1.0, 0.5 * rng.standard_normal(n)
    x = np.column_stack([F, bias])
    D, xbar, beta_n = K + 1, x.mean(0), 2.0 + n
    W = np.linalg.inv(np.eye(D) + (x - xbar).T @ (x - xbar)
                      + 2.0 * n / beta_n * np.outer(xbar, xbar))
    draws = [sample_prior(F, bias, rng) for _ in range(4000)]
    lam = np.mean([d[0] for d in draws], axis=0)
    mean = np.mean([np.linalg.solve(d[0], d[1]) for d in draws], axis=0)
    np.testing.assert_allclose(lam, (D + n) * W, rtol=0.05, atol=0.01 * np.abs(W).max() * n)
    np.testing.assert_allclose(mean, n * xbar / beta_n, atol=0.02)


def test_chain_matches_spelled_out_sampler():
    ratings = awkward_ratings(n_users=25, n_items=20, n=160)
    M, N = ratings.shape
    model = fastmf.BayesianALS(3, n_samples=4, burn_in=2, dtype="float64",
                               random_state=7).fit(ratings)
    predict = ref.gibbs_sampler(ratings.user_index, ratings.item_index, ratings.values, M, N,
                                3, 4, 2, 7, sample_prior)
    u, i = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    got = model.predict(ratings.user_ids[u.ravel()], ratings.item_ids[i.ravel()])
    np.testing.assert_allclose(got, predict(u.ravel(), i.ravel()), rtol=1e-8)
    assert model.n_samples_ == 4 and model.n_iter_ == 6
    assert model.user_factors_.shape == (M, 12)


def test_result_does_not_depend_on_thread_count():
    ratings, _ = fastmf.make_ratings(150, 80, 3000, random_state=1)
    fits = [fastmf.BayesianALS(4, n_samples=5, burn_in=3, random_state=0, n_jobs=n).fit(ratings)
            for n in (1, 2)]
    np.testing.assert_array_equal(fits[0].user_factors_, fits[1].user_factors_)
    np.testing.assert_array_equal(fits[0].item_bias_, fits[1].item_bias_)


def test_beats_map_estimate_on_planted_data():
    # Few ratings per user: the MAP fit overfits where the posterior mean averages it out.
    ratings, _ = fastmf.make_ratings(400, 200, 8000, n_factors=5, noise=0.5, random_state=3)
    train, test = train_test_split(ratings, 0.2, random_state=0)
    truth = test.values
    pairs = (test.user_ids[test.user_index], test.item_ids[test.item_index])
    bayes = fastmf.BayesianALS(5, n_samples=60, burn_in=20, random_state=0).fit(train)
    als = fastmf.BiasedALS(5, random_state=0).fit(train)
    rmse = {name: np.sqrt(np.mean((m.predict(*pairs) - truth) ** 2))
            for name, m in (("bayes", bayes), ("als", als))}
    assert rmse["bayes"] < rmse["als"], rmse
    # the learned noise level is close to the planted one
    assert abs(bayes.noise_precision_curve_[-1] ** -0.5 - 0.5) < 0.1


def test_validation_curve_scores_the_running_posterior_mean():
    ratings, _ = fastmf.make_ratings(150, 80, 3000, random_state=1)
    train, val = train_test_split(ratings, 0.2, random_state=0)
    model = fastmf.BayesianALS(4, n_samples=6, burn_in=3, random_state=0).fit(
        train, validation=val)
    assert model.validation_curve_.shape == (9,) == model.rmse_curve_.shape
    pred = model.predict(val.user_ids[val.user_index], val.item_ids[val.item_index])
    final = np.sqrt(np.mean((pred.astype(np.float64) - val.values) ** 2))
    assert model.validation_curve_[-1] == pytest.approx(final, rel=1e-5)


def test_fixed_alpha_is_kept():
    ratings, _ = fastmf.make_ratings(100, 50, 1500, random_state=1)
    model = fastmf.BayesianALS(3, n_samples=3, burn_in=1, alpha=4.0, random_state=0).fit(ratings)
    np.testing.assert_array_equal(model.noise_precision_curve_, 4.0)


def test_callback_stop_and_interrupt_keep_the_samples_so_far():
    ratings, _ = fastmf.make_ratings(100, 50, 1500, random_state=1)
    stop_after = fastmf.BayesianALS(3, n_samples=10, burn_in=2, random_state=0).fit(
        ratings, callback=lambda sweep, m: sweep >= 5)
    assert stop_after.n_samples_ == 3 and stop_after.user_factors_.shape[1] == 9
    # the first 3 samples of the full chain are the same samples
    full = fastmf.BayesianALS(3, n_samples=3, burn_in=2, random_state=0).fit(ratings)
    np.testing.assert_array_equal(stop_after.user_factors_, full.user_factors_)

    def interrupt(sweep, model):
        if sweep == 4:
            raise KeyboardInterrupt

    model = fastmf.BayesianALS(3, n_samples=10, burn_in=2, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(ratings, callback=interrupt)
    assert model.n_samples_ == 2
    assert np.isfinite(model.predict([0], [0])).all()
    early = fastmf.BayesianALS(3, n_samples=10, burn_in=5, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        early.fit(ratings, callback=interrupt)
    with pytest.raises(AttributeError, match="not fitted"):
        early.predict([0], [0])


def test_save_load_round_trip(tmp_path):
    ratings, _ = fastmf.make_ratings(100, 50, 1500, random_state=1)
    model = fastmf.BayesianALS(3, n_samples=4, burn_in=1, random_state=0).fit(ratings)
    loaded = fastmf.load(model.save(tmp_path / "bayes"))
    assert isinstance(loaded, fastmf.BayesianALS) and loaded.n_samples_ == 4
    np.testing.assert_array_equal(loaded.predict([1, 2], [3, 4]), model.predict([1, 2], [3, 4]))
    np.testing.assert_array_equal(loaded.rmse_curve_, model.rmse_curve_)
    assert loaded.get_params() == model.get_params()


def test_search_chooses_n_factors():
    ratings, _ = fastmf.make_ratings(200, 100, 4000, random_state=2)
    res = search(fastmf.BayesianALS(n_samples=5, burn_in=3, random_state=0), ratings,
                 {"n_factors": [2, 4]}, cv=2)
    assert res.best_params["n_factors"] in (2, 4)
    assert len(res.results) == 2


@pytest.mark.parametrize("params, error, match", [
    ({"n_factors": 0}, ValueError, "n_factors must be a positive int"),
    ({"n_samples": 0}, ValueError, "n_samples must be a positive int"),
    ({"burn_in": -1}, ValueError, "burn_in must be an int >= 0"),
    ({"burn_in": 2.5}, ValueError, "burn_in must be an int >= 0"),
    ({"alpha": 0.0}, ValueError, "alpha must be finite and > 0"),
    ({"alpha": float("nan")}, ValueError, "alpha must be finite"),
    ({"alpha": "1"}, TypeError, "alpha must be a real number"),
    ({"dtype": "int32"}, ValueError, "dtype must be float32 or float64"),
])
def test_bad_parameters_are_named(params, error, match):
    ratings, _ = fastmf.make_ratings(30, 20, 200, random_state=0)
    with pytest.raises(error, match=match):
        fastmf.BayesianALS(**params).fit(ratings)


def test_near_noise_free_float32_failure_names_the_remedy():
    # alpha = 1e9 against a prior of order 1: the rank-1 system of a one-rating user is
    # singular to float32 working precision, which must be reported, not drawn as garbage.
    ratings = fastmf.Ratings([0, 1, 1], [0, 0, 1], [3.0, 4.0, 5.0])
    with pytest.raises(FloatingPointError, match=r"sweep 1, user draws: .*dtype='float64'"):
        fastmf.BayesianALS(2, alpha=1e9, dtype="float32", random_state=0).fit(ratings)
    model = fastmf.BayesianALS(2, alpha=1e9, dtype="float64", n_samples=3, burn_in=0,
                               random_state=0).fit(ratings)
    assert np.isfinite(model.user_factors_).all()


def test_interrupted_refit_does_not_keep_the_old_model():
    ratings, _ = fastmf.make_ratings(100, 50, 1500, random_state=1)
    model = fastmf.BayesianALS(3, n_samples=3, burn_in=1, random_state=0).fit(ratings)

    def interrupt(sweep, m):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.set_params(burn_in=5).fit(ratings, callback=interrupt)
    with pytest.raises(AttributeError, match="not fitted"):
        model.predict([0], [0])


def test_thin_keeps_every_nth_sweep_of_the_same_chain():
    ratings, _ = fastmf.make_ratings(100, 50, 1500, random_state=1)
    seen = {}

    def record(sweep, model):  # the running mean after each sweep, as validation sees it
        seen[sweep] = model.validation_curve_[-1]

    thinned = fastmf.BayesianALS(3, n_samples=2, burn_in=1, thin=3, random_state=0).fit(
        ratings, validation=ratings, callback=record)
    assert thinned.n_iter_ == 7 and thinned.n_samples_ == 2
    # the chain is the same as an unthinned one; the kept sweeps are 4 and 7
    full = fastmf.BayesianALS(3, n_samples=6, burn_in=1, random_state=0).fit(ratings)
    np.testing.assert_array_equal(thinned.rmse_curve_, full.rmse_curve_)
    K = 3
    np.testing.assert_allclose(thinned.user_factors_[:, :K] * np.sqrt(2),  # undo the scaling
                               full.user_factors_[:, 2 * K:3 * K] * np.sqrt(6), rtol=1e-6)
    # between kept sweeps the validation curve holds the running mean
    assert seen[5] == seen[6] == seen[4]


# -- implicit ("who rated what") terms, issue 15 ------------------------------------------------


@pytest.mark.parametrize("implicit", ["users", "both"])
def test_implicit_chain_matches_spelled_out_sampler(implicit):
    ratings = awkward_ratings(n_users=14, n_items=11, n=70)
    M, N = ratings.shape
    model = fastmf.BayesianALS(3, n_samples=3, burn_in=2, dtype="float64", implicit=implicit,
                               random_state=5).fit(ratings)
    predict = ref.gibbs_sampler(ratings.user_index, ratings.item_index, ratings.values, M, N,
                                3, 3, 2, 5, sample_prior, implicit=implicit)
    u, i = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    got = model.predict(ratings.user_ids[u.ravel()], ratings.item_ids[i.ravel()], clip=False)
    np.testing.assert_allclose(got, predict(u.ravel(), i.ravel()), rtol=1e-7)


def test_zero_row_shift_draws_the_same_bits_as_none():
    """The implicit path's per-row prior shift, at zero, is today's sampler bit for bit."""
    ratings, _ = fastmf.make_ratings(40, 30, 600, random_state=2)
    K = 4
    rng = np.random.default_rng(0)
    other, other_bias = rng.standard_normal((30, K)) / K, rng.standard_normal(30) * 0.1
    prec, shift = np.eye(K + 1) * 2.0, rng.standard_normal(K + 1)
    noise = rng.standard_normal((40, K + 1))
    csr = ratings.to_csr(np.float32)
    order = row_order(np.diff(csr[0]))
    outs = []
    for row_shift in (np.zeros((0, K + 1), np.float32), np.zeros((40, K + 1), np.float32)):
        F, bias = np.zeros((40, K), np.float32), np.zeros(40, np.float32)
        sample_rows(*csr, other.astype(np.float32), other_bias.astype(np.float32),
                    np.float32(3.5), np.float32(2.0), prec.astype(np.float32),
                    shift.astype(np.float32), row_shift, order, 2,
                    noise[: len(order)].astype(np.float32), F, bias)
        outs.append((F, bias))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_implicit_draws_have_the_conditional_moments():
    """Each coordinate of y_k is drawn from the Gaussian written out from the likelihood,
    given the coordinates drawn before it and those still to come: standardized by that
    conditional's mean and variance, 3000 draws of every coordinate are N(0, 1)."""
    from fastmf.kernels import implicit_residuals, sample_implicit

    ratings = awkward_ratings(n_users=12, n_items=9, n=60)
    M, N = ratings.shape
    K, alpha, mu = 3, 2.0, float(np.mean(ratings.values))
    rng = np.random.default_rng(1)
    base, b = rng.standard_normal((M, K)) * 0.5, rng.standard_normal(M) * 0.1
    V, c = rng.standard_normal((N, K)) * 0.5, rng.standard_normal(N) * 0.1
    Y0 = rng.standard_normal((N, K))
    prec = np.array([[2.0, 0.9, 0.4], [0.9, 1.5, 0.6], [0.4, 0.6, 1.0]])
    shift = np.array([0.2, -0.1, 0.3])
    users, items, vals = ratings.user_index, ratings.item_index, ratings.values
    k = int(np.bincount(items).argmax())  # the item with the most raters
    n = np.bincount(users, minlength=M)
    raters = np.unique(users[items == k])

    def conditional(y, a):
        """Mean and variance of y_ka given y_k's other coordinates ``y``, spelled out."""
        Y = Y0.copy()
        Y[k] = y
        eff = base + ref.implicit_term(users, items, M, Y)
        others = [c_ for c_ in range(K) if c_ != a]
        p, h = prec[a, a], shift[a] - prec[a, others] @ y[others]
        for i in raters:
            for j, r in zip(items[users == i], vals[users == i]):
                x = V[j, a] / np.sqrt(n[i])
                target = r - mu - b[i] - c[j] - (eff[i] @ V[j] - y[a] * x)
                p += alpha * x * x
                h += alpha * x * target
        return h / p, 1 / p

    # the kernel: rows of Y other than k have no incidences, so only y_k moves
    csr = ratings.to_csr(np.float64)
    eff = base + ref.implicit_term(users, items, M, Y0)
    inc_ptr = np.zeros(N + 1, dtype=np.int64)
    inc_ptr[k + 1:] = len(raters)
    inc_idx = raters.astype(np.int32)
    z = []
    for _ in range(3000):
        resid, W, Y = np.empty(len(csr[1])), eff.copy(), Y0.copy()
        implicit_residuals(*csr, V, c, mu, W, b, resid)
        assert sample_implicit(*csr[:2], resid, V, n, inc_ptr, inc_idx, alpha, prec, shift,
                               rng.standard_normal((N, K)), Y, W) == 0
        # the effective vectors moved by exactly n_i^-1/2 (y_k' - y_k)
        np.testing.assert_allclose(W[raters], eff[raters] + (Y[k] - Y0[k])
                                   / np.sqrt(n[raters])[:, None], atol=1e-12)
        # coordinate a was drawn after the new 0..a-1 and before the new a+1..
        row = []
        for a in range(K):
            given = np.r_[Y[k, :a], Y0[k, a:]]
            mean, var = conditional(given, a)
            row.append((Y[k, a] - mean) / np.sqrt(var))
        z.append(row)
    z = np.array(z)
    assert np.all(np.abs(z.mean(0)) < 5 / np.sqrt(len(z)))
    np.testing.assert_allclose(z.var(0), 1, atol=0.1)


def test_implicit_result_does_not_depend_on_thread_count():
    ratings, _ = fastmf.make_ratings(150, 80, 3000, random_state=1)
    fits = [fastmf.BayesianALS(4, n_samples=3, burn_in=2, implicit="both", random_state=0,
                               n_jobs=n).fit(ratings) for n in (1, 2)]
    np.testing.assert_array_equal(fits[0].user_factors_, fits[1].user_factors_)
    np.testing.assert_array_equal(fits[0].item_factors_, fits[1].item_factors_)
    np.testing.assert_array_equal(fits[0].item_bias_, fits[1].item_bias_)


def test_implicit_pairs_enter_who_rated_what_as_the_spelled_out_sampler():
    ratings = awkward_ratings(n_users=14, n_items=11, n=70)
    M, N = ratings.shape
    rng = np.random.default_rng(3)
    extra_u, extra_i = rng.integers(0, M, 25), rng.integers(0, N, 25)
    model = fastmf.BayesianALS(3, n_samples=3, burn_in=2, dtype="float64", implicit="both",
                               random_state=5)
    model.fit(ratings, implicit_pairs=(ratings.user_ids[extra_u], ratings.item_ids[extra_i]))
    predict = ref.gibbs_sampler(ratings.user_index, ratings.item_index, ratings.values, M, N,
                                3, 3, 2, 5, sample_prior, implicit="both",
                                pairs=(extra_u, extra_i))
    u, i = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    got = model.predict(ratings.user_ids[u.ravel()], ratings.item_ids[i.ravel()], clip=False)
    np.testing.assert_allclose(got, predict(u.ravel(), i.ravel()), rtol=1e-7)


def test_implicit_pairs_that_repeat_training_pairs_change_nothing():
    ratings, _ = fastmf.make_ratings(60, 40, 800, random_state=4)
    pairs = np.c_[ratings.user_ids[ratings.user_index], ratings.item_ids[ratings.item_index]]
    fits = [fastmf.BayesianALS(3, n_samples=2, burn_in=1, implicit="users", random_state=0)
            .fit(ratings, implicit_pairs=p) for p in (None, pairs[:100])]
    np.testing.assert_array_equal(fits[0].user_factors_, fits[1].user_factors_)


def test_implicit_pairs_bad_input_is_refused_by_name():
    ratings, _ = fastmf.make_ratings(30, 20, 300, random_state=4)
    with pytest.raises(ValueError, match="implicit='users' or 'both'"):
        fastmf.BayesianALS(2, n_samples=1, burn_in=0).fit(ratings, implicit_pairs=[(0, 0)])
    with pytest.raises(ValueError, match="not in the training ratings"):
        fastmf.BayesianALS(2, n_samples=1, burn_in=0, implicit="users").fit(
            ratings, implicit_pairs=[(0, 0), (10**6, 0)])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        fastmf.BayesianALS(2, n_samples=1, burn_in=0, implicit="users").fit(
            ratings, implicit_pairs=np.zeros((3, 3)))
