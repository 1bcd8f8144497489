"""BiasedSGD: an epoch against a spelled-out loop, the step against the gradient, the
objective shared with BiasedALS, thread invariance and accuracy on a planted model."""

import numpy as np
import pytest
import reference as ref
from conftest import awkward_ratings

import fastmf
from fastmf import BiasedALS, BiasedSGD
from fastmf.kernels import sgd_epoch, sgd_visit_order
from fastmf.kernels.sgd import _sgd_rating
from fastmf.sgd import blocked


def test_one_epoch_equals_the_spelled_out_loop_in_the_same_order():
    r = awkward_ratings(seed=3)
    P, K = 3, 4
    ptr, users, items, data = blocked(r, P, np.float64)
    rng = np.random.default_rng(0)
    M, N = r.shape
    U, V = rng.standard_normal((M, K)) * 0.1, rng.standard_normal((N, K)) * 0.1
    b, c = np.zeros(M), np.zeros(N)
    mu, lr, reg, reg_b = float(r.values.mean()), 0.02, 0.05, 0.03
    want = ref.sgd_epoch(sgd_visit_order(ptr, P, 7), users, items, data, mu, lr, reg, reg_b,
                         U, b, V, c)
    got = [a.copy() for a in (U, b, V, c)]
    G = [np.zeros(M), np.zeros(M), np.zeros(N), np.zeros(N)]
    sgd_epoch(ptr, users, items, data, P, mu, lr, reg, reg_b, False, np.int64(7), got[0],
              got[1], got[2], got[3], G[0], G[1], G[2], G[3])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_a_step_is_minus_half_the_gradient_of_the_rating_term():
    rng = np.random.default_rng(1)
    K, lr, reg, reg_b, mu, r = 3, 1e-7, 0.1, 0.2, 3.0, 4.5
    U, V = rng.standard_normal((1, K)), rng.standard_normal((1, K))
    b, c = np.array([0.3]), np.array([-0.2])

    def term(U, b, V, c):
        e = r - mu - b[0] - c[0] - U[0] @ V[0]
        return e * e + reg * (U[0] @ U[0] + V[0] @ V[0]) + reg_b * (b[0] ** 2 + c[0] ** 2)

    before = [a.copy() for a in (U, b, V, c)]
    z = [np.zeros(1) for _ in before]
    _sgd_rating(r, mu, 0, 0, U, b, V, c, lr, reg, reg_b, False, z[0], z[1], z[2], z[3], 1e-8)
    for k, (new, old) in enumerate(zip((U, b, V, c), before)):
        for idx in np.ndindex(old.shape):
            h = 1e-6
            up = [a.copy() for a in before]
            down = [a.copy() for a in before]
            up[k][idx] += h
            down[k][idx] -= h
            grad = (term(*up) - term(*down)) / (2 * h)
            assert (new[idx] - old[idx]) / lr == pytest.approx(-grad / 2, rel=1e-4, abs=1e-6)


def test_loss_curve_is_biasedals_count_scaled_objective_and_falls():
    r = awkward_ratings(seed=5)
    m = BiasedSGD(4, n_epochs=15, learning_rate=0.05, dtype="float64", random_state=0).fit(r)
    als = BiasedALS(4, reg=m.reg, reg_scaling="count", dtype="float64", random_state=0)
    als.fit(r)
    # the same J: evaluate BiasedALS's objective at the SGD factors
    als.user_factors_, als.item_factors_ = m.user_factors_, m.item_factors_
    als.user_bias_, als.item_bias_ = m.user_bias_, m.item_bias_
    assert als.objective(r) == pytest.approx(m.loss_curve_[-1], rel=1e-10)
    assert m.loss_curve_[-1] < 0.7 * m.loss_curve_[0]
    assert np.mean(np.diff(m.loss_curve_) < 0) > 0.8


@pytest.mark.parametrize("schedule", ["adagrad", "decay"])
def test_recovers_a_planted_model_near_als(schedule):
    ratings, _ = fastmf.make_ratings(400, 300, 30_000, n_factors=3, noise=0.2,
                                     random_state=5)
    mask = np.random.default_rng(0).random(ratings.nnz) < 0.1
    train, test = ratings.subset(~mask), ratings.subset(mask)
    u, i = test.user_ids[test.user_index], test.item_ids[test.item_index]

    def rmse(model):
        return float(np.sqrt(np.mean((model.fit(train).predict(u, i) - test.values) ** 2)))

    lr = 0.05 if schedule == "adagrad" else 0.03
    sgd = rmse(BiasedSGD(3, reg=0.02, n_epochs=40, learning_rate=lr, schedule=schedule,
                         random_state=0))
    als = rmse(BiasedALS(3, reg=0.02, n_iter=25, random_state=0))
    assert sgd < 0.3 and sgd < als + 0.03, (sgd, als)


def test_thread_count_and_block_count_semantics():
    r = awkward_ratings(seed=8)
    a = BiasedSGD(3, n_epochs=3, n_blocks=4, n_jobs=1, random_state=0).fit(r)
    b = BiasedSGD(3, n_epochs=3, n_blocks=4, n_jobs=2, random_state=0).fit(r)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    c = BiasedSGD(3, n_epochs=3, n_blocks=5, n_jobs=2, random_state=0).fit(r)
    assert not np.array_equal(a.user_factors_, c.user_factors_)  # the grid is the schedule


def test_cli_fit_model_sgd(tmp_path):
    from fastmf.cli import main

    r = awkward_ratings()
    r.to_dataframe().to_csv(tmp_path / "r.csv", index=False)
    assert main(["fit", str(tmp_path / "r.csv"), "-o", str(tmp_path / "m.npz"), "--model",
                 "sgd", "--epochs", "3", "--learning-rate", "0.02", "-q"]) == 0
    model = fastmf.load(tmp_path / "m.npz")
    assert isinstance(model, BiasedSGD) and model.n_iter_ == 3 and model.learning_rate == 0.02
