"""ImplicitALS: kernels against dense slow twins and the mathematics; fold-in; bad input."""

import numpy as np
import pytest
import reference as ref
from conftest import awkward_ratings

import fastmf
from fastmf import ImplicitALS, Ratings
from fastmf._solver import row_order
from fastmf.implicit import _gram, implicit_objective
from fastmf.kernels import implicit_rows, implicit_rows_cg

NO_OBS = np.empty(0)


def _problem(dtype, alpha=2.0, seed=0):
    r = awkward_ratings(seed=seed, n_users=25, n_items=18, n=160)
    M, N = r.shape
    model = ImplicitALS(3, alpha=alpha, dtype=dtype)
    csr = model._weights(r.to_csr(np.float64))
    C, P = ref.implicit_dense(r.user_index, r.item_index, r.values, M, N, alpha)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((M, 3)).astype(dtype)
    Y = rng.standard_normal((N, 3)).astype(dtype)
    return r, csr, C, P, X, Y


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 2e-4)])
def test_cholesky_half_step_matches_the_dense_twin(dtype, tol):
    r, csr, C, P, X, Y = _problem(dtype)
    order = row_order(np.diff(csr[0]))
    reg = np.dtype(dtype).type(0.3)
    assert implicit_rows(*csr, Y, _gram(Y), reg, order, 2, X, NO_OBS) == 0
    want = ref.implicit_half_step(C, P, Y, 0.3, order)
    np.testing.assert_allclose(X[order], want[order], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, rel", [("float64", 1e-11), ("float32", 1e-4)])
@pytest.mark.parametrize("solver, steps", [("cholesky", 0), ("cg", 0), ("cg", 1), ("cg", 3)])
def test_half_step_obs_is_each_rows_observed_term(dtype, rel, solver, steps):
    """The objective comes from the item half-step (issue 17): ``obs[i]`` must be the row's
    ``sum [c (p - s)^2 - s^2]`` at its new factors -- for CG the scores it kept and moved step
    by step (``steps=0``: the first pass's), for Cholesky a pass over its interactions."""
    r, csr, C, P, X, Y = _problem(dtype)
    order = row_order(np.diff(csr[0]))
    reg = np.dtype(dtype).type(0.3)
    obs = np.full(len(X), -1.0)
    if solver == "cg":
        assert implicit_rows_cg(*csr, Y, _gram(Y), reg, order, 2, steps, X, obs) == 0
    else:
        assert implicit_rows(*csr, Y, _gram(Y), reg, order, 2, X, obs) == 0
    S = X.astype(np.float64) @ Y.astype(np.float64).T
    want = np.sum((C * (P - S) ** 2 - S**2) * (C > 1), axis=1)  # observed pairs: c > 1 here
    np.testing.assert_allclose(obs[order], want[order], rtol=rel, atol=rel)
    assert (obs[np.setdiff1d(np.arange(len(X)), order)] == -1.0).all()


def test_loss_curve_is_the_objective_for_both_solvers_in_float32():
    r = awkward_ratings(seed=4)
    for solver in ("cholesky", "cg"):
        m = ImplicitALS(4, n_iter=5, alpha=3.0, solver=solver, dtype="float32",
                        random_state=0).fit(r)
        C, P = ref.implicit_dense(r.user_index, r.item_index, r.values, *r.shape, 3.0)
        want = ref.implicit_objective(C, P, m.user_factors_.astype(np.float64),
                                      m.item_factors_.astype(np.float64), m.reg)
        assert m.loss_curve_[-1] == pytest.approx(want, rel=1e-5)


def test_cg_obs_of_a_row_longer_than_the_scratch():
    """Not gathered (more interactions than the CG scratch keeps): its observed term is
    summed from the interactions themselves after the update."""
    from fastmf.kernels.als import _CG_RESIDENT

    rng = np.random.default_rng(5)
    n, K = _CG_RESIDENT + 100, 2
    Y = rng.standard_normal((n, K))
    indptr = np.array([0, n], dtype=np.int64)
    indices = np.arange(n, dtype=np.int32)
    conf, pref = 1 + rng.random(n), np.ones(n)
    X, obs = np.zeros((1, K)), np.zeros(1)
    assert implicit_rows_cg(indptr, indices, conf, pref, Y, _gram(Y), 0.3, np.array([0]), 1,
                            3, X, obs) == 0
    s = Y @ X[0]
    assert obs[0] == pytest.approx(np.sum(conf * (1 - s) ** 2 - s**2), rel=1e-12)


def test_loss_kernel_is_the_objective_over_all_pairs():
    r, csr, C, P, X, Y = _problem("float64")
    got = implicit_objective(csr, X, Y, 0.3)
    assert got == pytest.approx(ref.implicit_objective(C, P, X, Y, 0.3), rel=1e-12)


def test_gradient_vanishes_at_a_solved_row():
    r, csr, C, P, X, Y = _problem("float64")
    order = row_order(np.diff(csr[0]))
    implicit_rows(*csr, Y, _gram(Y), 0.3, order, 1, X, NO_OBS)
    u, h = int(order[0]), 1e-5
    for k in range(3):
        up, down = X.copy(), X.copy()
        up[u, k] += h
        down[u, k] -= h
        grad = (ref.implicit_objective(C, P, up, Y, 0.3)
                - ref.implicit_objective(C, P, down, Y, 0.3)) / (2 * h)
        assert abs(grad) < 1e-5


@pytest.mark.parametrize("steps", [1, 2])
def test_cg_steps_match_textbook_cg(steps):
    """Fewer steps than K = 3, so not yet the exact solve: equal to textbook CG, whose last
    step forms ``A p`` (the kernel's takes only ``p^T A p``)."""
    r, csr, C, P, X, Y = _problem("float64")
    order = row_order(np.diff(csr[0]))
    want = ref.implicit_half_step(C, P, Y, 0.3, order, X=X, steps=steps)
    assert implicit_rows_cg(*csr, Y, _gram(Y), 0.3, order, 2, steps, X, NO_OBS) == 0
    np.testing.assert_allclose(X[order], want[order], rtol=1e-9, atol=1e-11)


def test_cg_converges_to_the_cholesky_solution():
    r, csr, C, P, X, Y = _problem("float64")
    order = row_order(np.diff(csr[0]))
    exact = X.copy()
    implicit_rows(*csr, Y, _gram(Y), 0.3, order, 2, exact, NO_OBS)
    cg = X.copy()
    for _ in range(4):  # warm-started: each call continues from the last
        implicit_rows_cg(*csr, Y, _gram(Y), 0.3, order, 2, 3, cg, NO_OBS)
    np.testing.assert_allclose(cg[order], exact[order], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("confidence", ["linear", "log"])
def test_objective_never_increases_with_cholesky(confidence):
    r = awkward_ratings(seed=4)
    m = ImplicitALS(4, n_iter=8, alpha=3.0, confidence=confidence, dtype="float64",
                    random_state=0).fit(r)
    assert np.all(np.diff(m.loss_curve_) <= 1e-10 * m.loss_curve_[:-1])
    C, P = ref.implicit_dense(r.user_index, r.item_index,
                              np.log1p(r.values) if confidence == "log" else r.values,
                              *r.shape, 3.0)
    assert m.loss_curve_[-1] == pytest.approx(
        ref.implicit_objective(C, P, m.user_factors_, m.item_factors_, m.reg), rel=1e-10)


def test_recommends_the_planted_co_occurrence():
    # two groups of users, each interacting with its own half of the items
    users = np.repeat(np.arange(40), 6)
    rng = np.random.default_rng(0)
    items = np.concatenate([rng.choice(np.arange(10) + 10 * (u % 2), 6, replace=False)
                            for u in range(40)])
    model = ImplicitALS(2, reg=0.1, alpha=10.0, n_iter=10, random_state=0).fit(
        Ratings(users, items, np.ones(len(users))))
    for u in range(4):
        rec, _ = model.recommend(u, n=3)
        assert set(rec) <= set(range(10 * (u % 2), 10 * (u % 2) + 10))


def test_fold_in_equals_the_exact_row_update():
    r = awkward_ratings(seed=2)
    model = ImplicitALS(3, n_iter=3, alpha=2.0, dtype="float64", random_state=0).fit(r)
    new = Ratings([1000] * 3, [0, 3, 5], [1.0, 4.0, 2.0])
    model.fold_in(new)
    k = list(model.user_ids_).index(1000)
    Y = model.item_factors_
    C, P = ref.implicit_dense(np.zeros(3, int), np.array([0, 3, 5]), [1.0, 4.0, 2.0], 1,
                              len(Y), 2.0)
    want = ref.implicit_half_step(C, P, Y, model.reg, [0])[0]
    np.testing.assert_allclose(model.user_factors_[k], want, rtol=1e-9, atol=1e-12)
    rec, _ = model.recommend(1000, n=5)
    assert not {0, 3, 5} & set(rec)


def test_negative_strengths_are_refused_by_name():
    with pytest.raises(ValueError, match="interaction strengths must be >= 0"):
        ImplicitALS(2).fit(Ratings([1, 2], [1, 2], [1.0, -1.0]))


def test_cli_fit_model_implicit(tmp_path):
    from fastmf.cli import main

    r, _ = fastmf.make_ratings(60, 40, 600, random_state=0)
    path = tmp_path / "r.csv"
    import pandas as pd

    pd.DataFrame({"user": r.user_ids[r.user_index], "item": r.item_ids[r.item_index],
                  "rating": r.values}).to_csv(path, index=False)
    assert main(["fit", str(path), "-o", str(tmp_path / "m.npz"), "--model", "implicit",
                 "--factors", "4", "--alpha", "2", "--iters", "3", "-q"]) == 0
    model = fastmf.load(tmp_path / "m.npz")
    assert isinstance(model, ImplicitALS) and model.alpha == 2.0 and model.n_iter_ == 3


def test_search_maximizes_a_ranking_metric_for_implicit_models():
    from fastmf.model_selection import search, train_test_split

    r, _ = fastmf.make_ratings(80, 50, 1500, random_state=1, rating_scale=(1, 5))
    res = search(ImplicitALS(3, n_iter=3, random_state=0), r, {"reg": [0.1, 1.0, 10.0]},
                 cv=[train_test_split(r, 0.2, random_state=0)], threshold=3)
    table = res.results
    assert "mean_ndcg@10" in table and res.best_score == table["mean_ndcg@10"].max()
    assert table.loc[table["rank"] == 1, "reg"].iloc[0] == res.best_params["reg"]


def test_ranking_report_has_coverage_and_long_tail_share():
    from fastmf.metrics import ranking_report
    from fastmf.model_selection import train_test_split

    r, _ = fastmf.make_ratings(80, 50, 1500, random_state=1, rating_scale=(1, 5))
    train, test = train_test_split(r, 0.2, random_state=0)
    rep = ranking_report(ImplicitALS(3, n_iter=3, random_state=0).fit(train), test, k=5)
    assert 0 < rep["coverage@5"] <= 1 and 0 <= rep["long_tail@5"] <= 1
