"""Kernels against their slow twins (tests/reference.py) and against the mathematics."""

import numba
import numpy as np
import pytest
import reference as ref
from conftest import CONFIGS, awkward_ratings
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf import Ratings
from fastmf._solver import row_order
from fastmf.kernels import objective, predict_pairs, solve_rows, solve_rows_cg, transpose_csr
from fastmf.kernels._cholesky import LANE_VECTOR_BYTES, pack_lanes, solve_lanes
from fastmf.kernels._gram import _ROWS, VECTOR_BYTES, gram_lower, gram_lower_range, padded
from fastmf.kernels._pass import gather_stats, residual_sse, rows_pass, sums_first_block
from fastmf.kernels.als import (
    _ROW_WEIGHT,
    _cholesky_solve,
    _gather_gram,
    _gram_chunk,
    _gram_scratch,
    system_scratch,
    task_spans,
)

RTOL = {np.float32: 2e-3, np.float64: 1e-9}
NO_SSE = np.empty(0)


def _setup(ratings, K, dtype, seed=0):
    rng = np.random.default_rng(seed)
    M, N = ratings.shape
    csr = ratings.to_csr(dtype)
    csc = ratings.to_csc(dtype)
    U = (rng.standard_normal((M, K)) / K).astype(dtype)
    V = (rng.standard_normal((N, K)) / K).astype(dtype)
    b = (0.1 * rng.standard_normal(M)).astype(dtype)
    c = (0.1 * rng.standard_normal(N)).astype(dtype)
    mu = float(ratings.values.mean())
    return csr, csc, U, V, b, c, mu


def _args(config, reg, reg_bias):
    bias_update, scaling, bias_scaling = config
    count_bias = (bias_scaling or scaling) == "count"
    return reg, reg_bias, scaling == "count", count_bias, bias_update == "joint"


def _step(csr, other, other_bias, mu, reg, reg_bias, cr, cb, joint, F, bias, n_tasks=2,
          sse=NO_SSE):
    dt = F.dtype.type
    return solve_rows(
        *csr, other, other_bias, dt(mu), dt(reg), dt(reg_bias), cr, cb, joint,
        row_order(np.diff(csr[0])), n_tasks, F, bias, sse,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("K", [1, 5, 17])
def test_half_step_matches_reference(small, config, dtype, K):
    csr, csc, U, V, b, c, mu = _setup(small, K, dtype)
    reg, reg_bias, cr, cb, joint = _args(config, 0.3, 0.2)
    want_U, want_b = ref.half_step(
        small.user_index, small.item_index, small.values, small.n_users, U, b, V, c, mu,
        reg, reg_bias, cr, cb, joint,
    )
    failed = _step(csr, V, c, mu, reg, reg_bias, cr, cb, joint, U, b)
    assert failed == 0
    np.testing.assert_allclose(U, want_U, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2)
    np.testing.assert_allclose(b, want_b, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2)
    # and the item side over CSC, with the same kernel
    want_V, want_c = ref.half_step(
        small.item_index, small.user_index, small.values, small.n_items, V, c, U, b, mu,
        reg, reg_bias, cr, cb, joint,
    )
    _step(csc, U, b, mu, reg, reg_bias, cr, cb, joint, V, c)
    np.testing.assert_allclose(V, want_V, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2)
    np.testing.assert_allclose(c, want_c, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2)


def _row_sse_oracle(rows, cols, vals, n_rows, F, bias, other, other_bias, mu):
    """Each row's sum of squared residuals, all in float64 (numpy, no kernel)."""
    F, bias = F.astype(np.float64), bias.astype(np.float64)
    other, other_bias = other.astype(np.float64), other_bias.astype(np.float64)
    e = (vals - mu - bias[rows] - other_bias[cols]
         - np.einsum("tk,tk->t", F[rows], other[cols]))
    return np.bincount(rows, weights=e**2, minlength=n_rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver, steps", [("cholesky", None), ("cg", 0), ("cg", 1),
                                           ("cg", 3)])
@pytest.mark.parametrize("config", CONFIGS)
def test_half_step_sse_is_each_rows_residual_sum_of_squares(small, config, solver, steps,
                                                           dtype):
    """The objective's residuals come from the item half-step (issue 17): what it writes to
    ``sse`` must be each updated row's sum of squared residuals at its new factors -- for CG
    the residual it kept and moved step by step, for Cholesky a pass over the gathered block."""
    csr, csc, U, V, b, c, mu = _setup(small, 5, dtype)
    reg, reg_bias, cr, cb, joint = _args(config, 0.3, 0.2)
    sse = np.full(small.n_items, -1.0)
    if solver == "cg":
        _cg_step(csc, U, b, mu, reg, reg_bias, cr, cb, joint, steps, V, c, sse=sse)
    else:
        _step(csc, U, b, mu, reg, reg_bias, cr, cb, joint, V, c, sse=sse)
    want = _row_sse_oracle(small.item_index, small.user_index, small.values, small.n_items,
                           V, c, U, b, mu)
    rated = np.diff(csc[0]) > 0
    np.testing.assert_allclose(sse[rated], want[rated], rtol=1e-5 if dtype == np.float32
                               else 1e-11, atol=1e-6)
    assert (sse[~rated] == -1.0).all()  # rows with no ratings are not listed, not written


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("joint", [True, False])
def test_factors_do_not_depend_on_whether_the_objective_is_computed(dtype, joint):
    """Regression (issue 17): with the objective wanted, rows longer than a batch slot were
    solved one by one instead of in a batch, so the factors' last bits depended on whether
    the fit computed its loss (K = 130, float64, sequential bias update)."""
    rng = np.random.default_rng(5)
    dense = (rng.random((60, 400)) < 0.1) * rng.integers(1, 6, (60, 400))
    dense[:4, :120] = rng.integers(1, 6, (4, 120))  # rows of 120+ ratings: past the old slot
    ratings = Ratings(*np.nonzero(dense), dense[np.nonzero(dense)].astype(float))
    for K in (10, 130):
        csr, csc, U, V, b, c, mu = _setup(ratings, K, dtype)
        got = []
        for sse in (NO_SSE, np.zeros(csr[0].shape[0] - 1)):
            F, bias = U.copy(), b.copy()
            _step(csr, V, c, mu, 0.1, 0.1, False, False, joint, F, bias, n_tasks=1, sse=sse)
            got.append((F, bias))
        np.testing.assert_array_equal(got[0][0], got[1][0])
        np.testing.assert_array_equal(got[0][1], got[1][1])


def test_empty_rows_are_left_untouched(small):
    csr, csc, U, V, b, c, mu = _setup(small, 4, np.float64)
    empty_user = small.n_users - 2
    before = U[empty_user].copy(), b[empty_user]
    _step(csr, V, c, mu, 0.1, 0.1, False, False, True, U, b)
    assert np.array_equal(U[empty_user], before[0]) and b[empty_user] == before[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS)
def test_objective_never_increases(config, dtype):
    ratings = awkward_ratings(seed=3, n_users=60, n_items=45, n=700)
    csr, csc, U, V, b, c, mu = _setup(ratings, 6, dtype, seed=4)
    reg, reg_bias, cr, cb, joint = _args(config, 0.05, 0.1)
    dt = np.dtype(dtype).type

    def J():
        return objective(*csr, csc[0], U, b, V, c, dt(mu), dt(reg), dt(reg_bias), cr, cb)

    history = [J()]
    for _ in range(6):
        _step(csr, V, c, mu, reg, reg_bias, cr, cb, joint, U, b)
        history.append(J())
        _step(csc, U, b, mu, reg, reg_bias, cr, cb, joint, V, c)
        history.append(J())
    steps = np.diff(history)
    slack = 1e-4 if dtype == np.float32 else 1e-10  # rounding of float32 solves
    assert np.all(steps <= slack * np.abs(history[:-1])), history
    assert history[-1] < 0.9 * history[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS)
def test_objective_kernel_matches_naive_sum(small, config, dtype):
    csr, csc, U, V, b, c, mu = _setup(small, 5, dtype)
    reg, reg_bias, cr, cb, _ = _args(config, 0.3, 0.7)
    dt = np.dtype(dtype).type
    got = objective(*csr, csc[0], U, b, V, c, dt(mu), dt(reg), dt(reg_bias), cr, cb)
    want = ref.objective(
        small.user_index, small.item_index, small.values, small.n_users, small.n_items,
        U, b, V, c, float(dt(mu)), float(dt(reg)), float(dt(reg_bias)), cr, cb,
    )
    assert got == pytest.approx(want, rel=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_gradient_vanishes_at_solved_rows(small, config):
    """Finite differences of J around each solved user row are ~0 (float64)."""
    csr, csc, U, V, b, c, mu = _setup(small, 4, np.float64)
    reg, reg_bias, cr, cb, joint = _args(config, 0.2, 0.3)

    def J(U_, b_):
        return ref.objective(small.user_index, small.item_index, small.values, small.n_users,
                             small.n_items, U_, b_, V, c, mu, reg, reg_bias, cr, cb)

    def grad(U_, b_, i, h=1e-6):
        g = []
        for k in range(U_.shape[1] + 1):
            Up, bp, Um, bm = U_.copy(), b_.copy(), U_.copy(), b_.copy()
            if k < U_.shape[1]:
                Up[i, k] += h
                Um[i, k] -= h
            else:
                bp[i] += h
                bm[i] -= h
            g.append((J(Up, bp) - J(Um, bm)) / (2 * h))
        return np.array(g)

    rows = [0, 3, small.n_users - 1]  # the last is the single-rating user
    before = np.concatenate([grad(U, b, i) for i in rows])
    _step(csr, V, c, mu, reg, reg_bias, cr, cb, joint, U, b)
    for i in rows:
        g = grad(U, b, i)
        # joint: the whole (u_i, b_i) block is optimal; sequential: u_i given the new b_i
        solved = g if joint else g[:-1]
        assert np.max(np.abs(solved)) < 1e-6 * max(1.0, np.max(np.abs(before))), (i, g)


def test_result_does_not_depend_on_thread_count(small):
    outs = []
    for n_tasks, n_threads in [(1, 1), (2, 2), (7, 2)]:
        csr, csc, U, V, b, c, mu = _setup(small, 9, np.float32)
        numba.set_num_threads(n_threads)
        try:
            _step(csr, V, c, mu, 0.1, 0.1, True, True, True, U, b, n_tasks=n_tasks)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        outs.append((U, b))
    for U, b in outs[1:]:
        assert np.array_equal(U, outs[0][0]) and np.array_equal(b, outs[0][1])


@pytest.mark.parametrize("n_tasks", [1, 2, 3, 7, 50])
def test_task_spans_split_the_rows_into_runs_of_equal_work(n_tasks):
    """Each listed row goes to one task, in a run of consecutive rows, and no task's work
    (ratings plus the per-row weight) exceeds an equal share by more than one row's."""
    rng = np.random.default_rng(n_tasks)
    counts = rng.integers(0, 300, 40)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    order = row_order(counts)
    spans = task_spans(indptr, order, n_tasks)
    assert spans[0] == 0 and spans[-1] == len(order) and np.all(np.diff(spans) >= 0)
    work = counts[order] + _ROW_WEIGHT
    share = work.sum() / n_tasks
    for t in range(n_tasks):
        assert work[spans[t]:spans[t + 1]].sum() <= share + work.max()


def test_task_spans_of_no_rows():
    assert task_spans(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), 3).tolist() \
        == [0, 0, 0, 0]


def test_long_rows_are_chunked_exactly():
    """A row longer than the gather scratch gives the same solution as a direct solve."""
    rng = np.random.default_rng(5)
    K, n = 40, 8000
    assert n > 2 * _gram_chunk(np.array([0, n]), np.array([0]), K)  # three chunks or more
    other = rng.standard_normal((n, K))
    vals = rng.standard_normal(n)
    indptr = np.array([0, n], dtype=np.int64)
    indices = np.arange(n, dtype=np.int32)
    F = np.zeros((1, K))
    bias = np.zeros(1)
    sse = np.zeros(1)
    solve_rows(indptr, indices, vals, other, np.zeros(n), 0.0, 0.5, 0.5, False, False, True,
               np.array([0]), 1, F, bias, sse)
    Z = np.hstack([other, np.ones((n, 1))])
    want = np.linalg.solve(Z.T @ Z + 0.5 * np.eye(K + 1), Z.T @ vals)
    np.testing.assert_allclose(np.r_[F[0], bias], want, rtol=1e-9, atol=1e-12)
    # a row longer than the scratch: its residuals are summed from the ratings themselves
    assert sse[0] == pytest.approx(np.sum((vals - Z @ np.r_[F[0], bias]) ** 2), rel=1e-12)


def test_not_positive_definite_rows_are_counted_and_nan():
    """reg = 0 on a rank-deficient row: the kernel reports it instead of inventing numbers."""
    K = 3
    other = np.ones((2, K))  # two identical item vectors: rank 1 < K + 1
    F = np.zeros((1, K))
    bias = np.zeros(1)
    failed = solve_rows(np.array([0, 2], dtype=np.int64), np.array([0, 1], dtype=np.int32),
                        np.array([3.0, 4.0]), other, np.zeros(2), 0.0, 0.0, 0.0, False, False,
                        True, np.array([0]), 1, F, bias, sse := np.zeros(1))
    assert failed == 1
    assert np.isnan(F).all() and np.isnan(bias).all() and np.isnan(sse).all()


def test_a_failed_row_leaves_the_rest_of_its_batch_alone():
    """Rows are solved W at a time, one per vector lane: a row whose system is not positive
    definite is NaN and counted, and every other row of its batch is the ridge solution."""
    rng = np.random.default_rng(11)
    K, n_rows = 3, 11  # more than one batch of 8 (float64: 4)
    other = rng.standard_normal((6, K))
    other[5] = other[4]  # row 0 rates items 4 and 5 only: rank 1 < K + 1 with reg = 0
    lists = [[4, 5]] + [sorted(rng.choice(5, size=5, replace=False)) for _ in range(n_rows - 1)]
    indptr = np.cumsum([0] + [len(x) for x in lists]).astype(np.int64)
    indices = np.concatenate(lists).astype(np.int32)
    vals = rng.standard_normal(indices.size)
    F = np.zeros((n_rows, K))
    bias = np.zeros(n_rows)
    sse = np.zeros(n_rows)
    failed = solve_rows(indptr, indices, vals, other, np.zeros(6), 0.0, 0.0, 0.0, False, False,
                        True, np.arange(n_rows), 1, F, bias, sse)
    assert failed == 1 and np.isnan(F[0]).all() and np.isnan(bias[0]) and np.isnan(sse[0])
    for i in range(1, n_rows):
        Z = np.hstack([other[lists[i]], np.ones((len(lists[i]), 1))])
        y = vals[indptr[i]:indptr[i + 1]]
        want = np.linalg.solve(Z.T @ Z, Z.T @ y)
        np.testing.assert_allclose(np.r_[F[i], bias[i]], want, rtol=1e-8, atol=1e-10)
        assert sse[i] == pytest.approx(np.sum((y - Z @ want) ** 2), rel=1e-6, abs=1e-12)


@numba.njit
def _solve_lanes_jit(B, D, tol):
    return solve_lanes(B, D, tol)


@numba.njit
def _pack_lanes_jit(A, D, B):
    pack_lanes(A, D, B)


def _lane_systems(rng, W, D, dtype):
    """``W`` random SPD systems as _cholesky_solve takes them, stacked, and their solutions."""
    A = np.zeros((W, D + 1, padded(D + 1)), dtype)
    want = []
    for lane in range(W):
        Z = rng.standard_normal((D + 3, D))
        S = Z.T @ Z + np.eye(D)
        rhs = rng.standard_normal(D)
        A[lane, :D, :D] = np.tril(S) + 7.0 * np.triu(np.ones((D, D)), 1)  # upper: not read
        A[lane, D, :D] = rhs
        want.append((S, np.linalg.solve(S, rhs)))
    return A, want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [1, 2, 3, 8, 9, 17, 33])
def test_pack_lanes_matches_the_definition(dtype, D):
    W = LANE_VECTOR_BYTES // np.dtype(dtype).itemsize
    A, _ = _lane_systems(np.random.default_rng(D), W, D, dtype)
    E = D * (D + 1) // 2 + D
    B = np.full((E + W, W), 5.0, dtype)
    _pack_lanes_jit(A, D, B)
    want = np.full_like(B, 5.0)
    for lane in range(W):
        want[:E, lane] = np.r_[A[lane, :D, :D][np.tril_indices(D)], A[lane, D, :D]]
    np.testing.assert_array_equal(B[:E], want[:E])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [1, 2, 3, 8, 9, 17, 33])
def test_solve_lanes_matches_numpy_and_isolates_a_failed_lane(dtype, D):
    """One system per lane: each lane's solution is numpy's, its diagonal holds 1 / L_jj, and
    a lane whose matrix is not positive definite (or holds NaN) is reported by its bit
    without disturbing the others."""
    W = LANE_VECTOR_BYTES // np.dtype(dtype).itemsize
    rng = np.random.default_rng(D + 100)
    A, want = _lane_systems(rng, W, D, dtype)
    A[1, D // 2, :] = 0.0
    A[1, :, D // 2] = 0.0  # lane 1: a zero pivot
    A[W - 1, D - 1, 0] = np.nan  # the last lane: NaN in its last row
    E = D * (D + 1) // 2 + D
    B = np.zeros((E + W, W), dtype)
    _pack_lanes_jit(A, D, B)
    tol = np.array([np.finfo(dtype).eps * A[lane].diagonal()[:D].max() for lane in range(W)],
                   dtype)
    bad = _solve_lanes_jit(B, D, tol)
    assert bad == (1 << 1) | (1 << (W - 1))
    rtol = 1e-9 if dtype == np.float64 else 2e-3
    diag = [k * (k + 1) // 2 + k for k in range(D)]
    for lane in range(W):
        if lane in (1, W - 1):
            continue
        S, x = want[lane]
        np.testing.assert_allclose(B[E - D:E, lane], x, rtol=rtol, atol=rtol * np.abs(x).max())
        np.testing.assert_allclose(B[diag, lane], 1 / np.linalg.cholesky(S).diagonal(),
                                   rtol=rtol)


@numba.njit
def _gram_lower_jit(X, m, K, T):
    gram_lower(X, m, K, T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 3, 8, 16, 17, 32, 33, 70])
@pytest.mark.parametrize("m", [0, 1, 5, 300])
def test_gram_lower_matches_the_slow_sum(dtype, K, m):
    """The SIMD X^T X: every lower-triangle entry, for widths that fill, straddle and miss the
    vector and register blocks; nothing written outside the diagonal's vector block."""
    rng = np.random.default_rng(K * 1000 + m)
    Kp = padded(K)
    assert Kp >= K and Kp % 8 == 0
    X = np.zeros((max(m, 1), Kp), dtype)
    X[:m, :K] = rng.standard_normal((m, K))
    T = np.full((K + 2, Kp), 7.0, dtype)
    _gram_lower_jit(X, m, K, T)
    want = ref.gram_lower(X[:m, :K].astype(np.float64))
    low = np.tril_indices(K)
    np.testing.assert_allclose(T[:K, :K][low], want[low], rtol=RTOL[dtype] / 10,
                               atol=(1e-5 if dtype == np.float32 else 1e-12) * max(m, 1))
    assert (T[K:] == 7.0).all()  # the bias and rating rows are the gather's
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    for a in range(K):  # right of the vectors its register block needs: untouched
        last = min(K - 1, (a // _ROWS + 1) * _ROWS - 1)
        assert (T[a, (last // lanes + 1) * lanes:] == 7.0).all()


def _listed_rows(rng, N, K, n, idx_dtype, dtype):
    """``N`` rows of factors (the last NaN and never listed: a masked load must not let it
    in), ``n`` ratings' row indices and values, and the rows' biases."""
    other = rng.standard_normal((N, K)).astype(dtype)
    other[-1] = np.nan
    idx = rng.integers(0, N - 1, size=n).astype(idx_dtype)
    data = rng.standard_normal(n).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    return other, idx, data, bias


@numba.njit
def _rows_pass_jit(other, idx, lo, m, data, bias, offset, v, q, out, vb, residual, curvature):
    return rows_pass(other, idx, lo, m, data, bias, offset, v, q, out, vb, residual, curvature)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 3, 8, 16, 17, 32, 33, 64, 70])
@pytest.mark.parametrize("m", [0, 1, 3, 4, 7, 8, 203])
def test_rows_pass_matches_the_definition(dtype, K, m):
    """The SIMD CG pass (rows read in place) against the rating-by-rating sum, in all three
    modes, for widths that fill, straddle and exceed the vectors and the register path, and
    counts that fill, miss and undershoot its groups of four or eight; the tail of ``q`` and the
    vectors' entries past K are left as they were."""
    rng = np.random.default_rng(K * 100 + m)
    lo = 5
    other, idx, data, bias = _listed_rows(rng, 50, K, lo + m + 3, np.int32, dtype)
    offset, vb = dtype(0.3), dtype(-0.7)
    width = max(padded(K), K + 1)
    v = np.zeros(width, dtype)
    v[:K] = rng.standard_normal(K)
    tol = RTOL[dtype] / 10
    for residual, curvature in [(True, False), (False, False), (False, True), (True, True)]:
        want_q, want_out = ref.rows_pass(other, idx[lo:lo + m], data[lo:lo + m], bias, offset,
                                         v, vb, residual)
        q = np.full(m + 2, 9.0, dtype)
        out = np.zeros(width, dtype)
        out[:K] = 1.0  # the pass adds to out
        got = _rows_pass_jit(other, idx, lo, m, data, bias, offset, v, q, out, vb, residual,
                             curvature)
        np.testing.assert_allclose(q[:m], want_q, rtol=tol, atol=tol * K)
        assert (q[m:] == 9.0).all()
        if curvature:
            assert got == pytest.approx(want_q @ want_q, rel=tol, abs=tol * K)
            assert (out[:K] == 1.0).all() and (out[K:] == 0.0).all()
        else:
            assert got == pytest.approx(want_q.sum(), rel=tol, abs=tol * K * max(m, 1))
            np.testing.assert_allclose(out[:K], 1.0 + want_out, rtol=tol, atol=tol * K * m)
            assert (out[K:] == 0.0).all()


@numba.njit
def _residual_sse_jit(other, idx, lo, data, bias, offset, m, K, x, b):
    return residual_sse(other, idx, lo, data, bias, offset, m, K, x, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 3, 8, 17, 32, 33, 64, 70])
@pytest.mark.parametrize("m", [0, 1, 3, 4, 9, 203])
def test_residual_sse_matches_the_definition(dtype, K, m):
    """The Cholesky objective's residuals (x in registers, groups of four or eight, the other
    side's rows read through the index, ``r_t`` from the ratings and biases) against the
    rating-by-rating float64 sum, for widths that fill, straddle and exceed the vectors and
    the register path. ``other`` has exactly K columns, its last listed row is followed by a
    row of NaN, the ratings after the row's are NaN, and x's entries past K are NaN: nothing
    past them may be read."""
    rng = np.random.default_rng(K * 10 + m)
    S = 50
    other = rng.standard_normal((S + 1, K)).astype(dtype)
    other[S] = np.nan  # what a read past row S - 1's K columns would find
    idx = np.concatenate([[7, 7], rng.integers(0, S, m), [S - 1]]).astype(np.int32)
    lo = 2
    if m:
        idx[lo + m - 1] = S - 1
    data = rng.standard_normal(lo + m + 1).astype(dtype)
    data[lo + m] = np.nan
    bias = rng.standard_normal(S + 1).astype(dtype)
    x = np.full(padded(K) + 8, np.nan, dtype)
    x[:K] = rng.standard_normal(K)
    j = idx[lo:lo + m]
    r = (data[lo:lo + m] - dtype(0.25)) - bias[j]  # in the dtype, as the gather computes it
    want = ref.residual_sse(other[j], r, x[:K], dtype(0.3))
    got = _residual_sse_jit(other, idx, lo, data, bias, dtype(0.25), m, K, x, dtype(0.3))
    tol = RTOL[dtype] / 10
    assert got == pytest.approx(want, rel=tol, abs=tol * K)


@numba.njit
def _gather_stats_jit(other, idx, lo, m, data, bias, offset, X, T, sr, srr, t0=0,
                      resume=False):
    return gather_stats(other, idx, lo, m, data, bias, offset, X, T, sr, srr, t0, resume)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 3, 16, 17, 32, 33, 64, 70])
@pytest.mark.parametrize("m", [0, 1, 5, 203])
def test_gather_stats_matches_the_definition(dtype, K, m):
    """The SIMD gather of the Cholesky half-step: the block (padding zero) and the first
    moments, against a float64 sum; the sums continue the ones passed in."""
    rng = np.random.default_rng(K * 100 + m + 1)
    lo = 3
    other, idx, data, bias = _listed_rows(rng, 40, K, lo + m + 2, np.int64, dtype)
    Kp = padded(K)
    X = np.full((m + 1, Kp), 5.0, dtype)
    X[:, K:] = 0.0  # as _gram_scratch leaves it
    T = np.full((K + 2, Kp), 7.0, dtype)
    T[K:, K:] = 0.0
    sr, srr = _gather_stats_jit(other, idx, lo, m, data, bias, dtype(0.25), X, T,
                                dtype(1.5), dtype(2.0))
    j = idx[lo:lo + m]
    rows = other[j].astype(np.float64)
    want_r = data[lo:lo + m].astype(np.float64) - 0.25 - bias[j]
    tol = RTOL[dtype] / 10
    np.testing.assert_array_equal(X[:m, :K], other[j])
    assert (X[:m, K:] == 0).all() and (X[m:, :K] == 5.0).all()
    np.testing.assert_allclose(T[K, :K], rows.sum(axis=0), rtol=tol, atol=tol * max(m, 1))
    np.testing.assert_allclose(T[K + 1, :K], want_r @ rows, rtol=tol, atol=tol * max(m, 1))
    assert (T[K:, K:] == 0).all() and (T[:K] == 7.0).all()
    assert sr == pytest.approx(1.5 + want_r.sum(), rel=tol, abs=tol * max(m, 1))
    assert srr == pytest.approx(2.0 + want_r @ want_r, rel=tol, abs=tol * max(m, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [3, 32, 33])
def test_gather_stats_in_two_calls_gives_the_bits_of_one(dtype, K):
    """A row gathered in two pieces, the second written at row ``t0`` of X and resuming the
    sums in T: the same block and sums, bit for bit, as one call."""
    rng = np.random.default_rng(K)
    m, cut = 150, 61
    other, idx, data, bias = _listed_rows(rng, 40, K, m, np.int32, dtype)
    Kp = padded(K)
    X1, X2 = np.zeros((m, Kp), dtype), np.zeros((m, Kp), dtype)
    T1, T2 = np.zeros((K + 2, Kp), dtype), np.full((K + 2, Kp), 7.0, dtype)
    one = _gather_stats_jit(other, idx, 0, m, data, bias, dtype(0.5), X1, T1, dtype(1),
                            dtype(2))
    sr, srr = _gather_stats_jit(other, idx, 0, cut, data, bias, dtype(0.5), X2, T2,
                                dtype(1), dtype(2))
    two = _gather_stats_jit(other, idx, cut, m - cut, data, bias, dtype(0.5), X2, T2, sr,
                            srr, cut, True)
    assert one == two
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(T1[K:, :K], T2[K:, :K])  # the first call overwrote the 7s


@numba.njit
def _gather_then_gram(other, idx, m, cut, data, bias, X, T, block0):
    """A row of ``m`` ratings gathered in two pieces (``cut``), each piece's product taken
    after it, from the first register block (gather's ``block0`` False) or the second."""
    K = other.shape[1]
    off = data.dtype.type(0.5)
    sr, srr = gather_stats(other, idx, 0, cut, data, bias, off, X, T, off, off, 0, False,
                           block0)
    gram_lower_range(X, 0, cut, K, T, False, block0)
    sr, srr = gather_stats(other, idx, cut, m - cut, data, bias, off, X, T, sr, srr, 0, True,
                           block0)
    gram_lower_range(X, 0, m - cut, K, T, True, block0)
    return sr, srr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [8, 17, 32, 40, 48, 49, 64])
@pytest.mark.parametrize("m, cut", [(1, 1), (90, 37), (300, 128)])
def test_gather_summing_the_first_gram_block_gives_the_bits_of_the_product(dtype, K, m, cut):
    """Where the gather sums the Gram product's first register block itself (float32 with
    AVX-512, K of two or three vectors: ``sums_first_block``), the statistics are those of
    the gather and the whole product apart, bit for bit, across pieces too; elsewhere it
    declines."""
    block0 = sums_first_block(np.empty((0, 1), dtype), K)
    assert block0 == (VECTOR_BYTES == 64 and dtype == np.float32 and 16 < K <= 48)
    rng = np.random.default_rng(K * 7 + m)
    other, idx, data, bias = _listed_rows(rng, 50, K, m, np.int32, dtype)
    got = []
    for fused in (False, block0):
        Kp = padded(K)
        X = np.zeros((max(cut, m - cut), Kp), dtype)  # each piece goes to X's first rows
        T = np.zeros((K + 2, Kp), dtype)
        sums = _gather_then_gram(other, idx, m, cut, data, bias, X, T, fused)
        got.append((sums, T[:K + 2, :K][np.tril_indices(K + 2, 0, K)].copy()))
    assert got[0][0] == got[1][0]
    np.testing.assert_array_equal(got[0][1], got[1][1])
    want = ref.gram_lower(other[idx[:m]].astype(np.float64))  # and both are the product
    low = np.tril_indices(K)
    np.testing.assert_allclose(T[:K, :K][low], want[low], rtol=RTOL[dtype] / 10,
                               atol=(1e-5 if dtype == np.float32 else 1e-12) * m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [5, 32])
@pytest.mark.parametrize("chunk", [70, 5000])
def test_gather_gram_in_l1_pieces_gives_the_statistics(dtype, K, chunk):
    """The row's pieces all go to the first rows of the scratch (which stays in L1): the
    statistics are the row's, for rows of one piece, several pieces and (chunk 70) several
    chunks."""
    rng = np.random.default_rng(K)
    n = 1500
    other, idx, data, bias = _listed_rows(rng, 60, K, n, np.int32, dtype)
    indptr = np.array([0, 1, 40, 700, n], np.int64)
    X, G, T = _gram_scratch(chunk, K, np.dtype(dtype))
    for row in range(4):
        G[:] = 0
        _gather_gram(indptr, idx, data, other, bias, dtype(0.3), row, X, G, T, chunk)
        lo, hi = indptr[row], indptr[row + 1]
        Z = np.ones((hi - lo, K + 2))
        Z[:, :K] = other[idx[lo:hi]]
        Z[:, K + 1] = (data[lo:hi] - dtype(0.3)) - bias[idx[lo:hi]]
        low = np.tril_indices(K + 2)
        tol = RTOL[dtype] / 10
        np.testing.assert_allclose(G[:K + 2, :K + 2][low], (Z.T @ Z)[low], rtol=tol,
                                   atol=tol * (hi - lo))


@numba.njit
def _gram_lower_range_jit(X, t0, t1, K, T, resume):
    gram_lower_range(X, t0, t1, K, T, resume)


@numba.njit(fastmath={"contract"})
def _sequential_fma_gram(X, m, K):
    """Each ``X^T X`` entry as one fused multiply-add per rating, in the order of ``t``."""
    T = np.zeros((K, K), X.dtype)
    for a in range(K):
        for c in range(a + 1):
            s = X.dtype.type(0.0)
            for t in range(m):
                s += X[t, a] * X[t, c]
            T[a, c] = s
    return T


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [8, 32, 70])
@pytest.mark.parametrize("m", [1, 300, 1000])
def test_gram_lower_in_pieces_gives_the_bits_of_one_pass(dtype, K, m):
    """Long rows are streamed in L1-sized pieces, the sums stored and reloaded in between:
    every entry is still the sequential FMA chain over all ratings, bit for bit."""
    rng = np.random.default_rng(K + m)
    X = np.zeros((m, padded(K)), dtype)
    X[:, :K] = rng.standard_normal((m, K))
    T = np.zeros((K + 2, padded(K)), dtype)
    _gram_lower_jit(X, m, K, T)
    low = np.tril_indices(K)
    want = _sequential_fma_gram(X, m, K)[low]
    np.testing.assert_array_equal(T[:K, :K][low], want)
    # the same in caller-chosen ranges, each resuming the sums the previous one stored
    T[:] = 0
    cuts = [0, m // 3, m // 3 + 1, m]
    for i, (t0, t1) in enumerate(zip(cuts, cuts[1:])):
        _gram_lower_range_jit(X, t0, t1, K, T, i > 0)
    np.testing.assert_array_equal(T[:K, :K][low], want)


@settings(max_examples=60, deadline=None)
@given(D=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), extra=st.integers(0, 30),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_cholesky_solve_matches_numpy(D, seed, extra, dtype):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((D + extra + 1, D))
    S = A.T @ A + 1e-3 * np.eye(D) + np.eye(D) * (dtype == np.float32)
    rhs = rng.standard_normal(D)
    G = system_scratch(D, np.dtype(dtype))
    G[:D, :D] = np.tril(S)
    G[:D, :D][np.triu_indices(D, 1)] = np.nan  # right of the diagonal: never read
    G[D, :D] = rhs
    x = np.zeros(D, dtype)
    assert _cholesky_solve(G, D, x)
    want = np.linalg.solve(S, rhs)
    L = np.tril(G[:D, :D]).astype(np.float64)  # the factor is left in the lower triangle
    if dtype == np.float64:
        np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-8 * np.abs(want).max())
        np.testing.assert_allclose(L @ L.T, S, atol=1e-10 * np.abs(S).max())
    else:
        np.testing.assert_allclose(x, want, rtol=2e-3, atol=1e-4 * np.abs(want).max())
        np.testing.assert_allclose(L @ L.T, S, atol=1e-5 * np.abs(S).max())


@pytest.mark.parametrize("D", [1, 2, 7, 8, 9, 16, 17, 33])
@pytest.mark.parametrize("bad", ["zero", "negative", "nan"])
def test_cholesky_solve_reports_a_system_that_is_not_positive_definite(D, bad):
    rng = np.random.default_rng(D)
    A = rng.standard_normal((D + 3, D))
    S = A.T @ A
    k = D // 2  # an even or odd column, in the first or a later pass
    S[k, :] = S[:, k] = 0.0
    S[k, k] = {"zero": 0.0, "negative": -1.0, "nan": np.nan}[bad]
    G = system_scratch(D, np.dtype(np.float64))
    G[:D, :D] = S
    G[D, :D] = 1.0
    assert not _cholesky_solve(G, D, np.zeros(D))


@pytest.mark.parametrize("n_tasks", [1, 2, 3, 7, 40])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_csr_matches_the_slow_transpose(n_tasks, dtype):
    """Any task count gives the one CSC, rows ascending within each column, also when the
    input's rows are not sorted and rows and columns are empty (more tasks than rows too)."""
    rng = np.random.default_rng(n_tasks)
    M, N = 23, 11
    dense = np.where(rng.random((M, N)) < 0.3, rng.standard_normal((M, N)), 0)
    dense[[0, 5, 22]] = 0  # empty rows, first and last among them
    dense[:, [0, 7]] = 0  # empty columns
    indptr = np.zeros(M + 1, dtype=np.int64)
    indices, data = [], []
    for i in range(M):
        cols = rng.permutation(np.flatnonzero(dense[i]))  # unsorted within the row
        indices += list(cols)
        data += list(dense[i, cols])
        indptr[i + 1] = len(indices)
    indices = np.array(indices, dtype=np.int32)
    data = np.array(data, dtype=dtype)
    out = (np.full(N + 1, -1, dtype=np.int64), np.full(len(data), -1, dtype=np.int32),
           np.full(len(data), np.nan, dtype=dtype))
    transpose_csr(indptr, indices, data, n_tasks, *out)
    want = ref.transpose(indptr, indices, data, N)
    for got, expected in zip(out, want):
        np.testing.assert_array_equal(got, expected)
    assert out[2].dtype == dtype


def test_transpose_csr_of_no_entries():
    out = (np.full(4, -1, dtype=np.int64), np.empty(0, np.int32), np.empty(0))
    transpose_csr(np.zeros(6, dtype=np.int64), np.empty(0, np.int32), np.empty(0), 2, *out)
    np.testing.assert_array_equal(out[0], [0, 0, 0, 0])


def test_predict_pairs_matches_numpy():
    rng = np.random.default_rng(0)
    U, V = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    b, c = rng.standard_normal(5), rng.standard_normal(4)
    users = np.array([0, 4, 2, 2], dtype=np.int64)
    items = np.array([3, 0, 1, 1], dtype=np.int64)
    out = np.empty(4)
    predict_pairs(users, items, U, b, V, c, 3.5, out)
    np.testing.assert_allclose(out, 3.5 + b[users] + c[items] + np.sum(U[users] * V[items], 1))


def _cg_step(csr, other, other_bias, mu, reg, reg_bias, cr, cb, joint, steps, F, bias,
             sse=NO_SSE):
    dt = F.dtype.type
    return solve_rows_cg(
        *csr, other, other_bias, dt(mu), dt(reg), dt(reg_bias), cr, cb, joint,
        row_order(np.diff(csr[0])), 2, steps, F, bias, sse,
    )


@pytest.mark.parametrize("steps", [1, 2, 3])
@pytest.mark.parametrize("config", CONFIGS)
def test_cg_steps_match_textbook_cg(small, config, steps):
    """A few steps, short of convergence, equal textbook CG that forms ``A p`` on every step:
    pins the last step, which the kernel takes from the curvature ``p^T A p`` alone."""
    K = 6
    csr, csc, U, V, b, c, mu = _setup(small, K, np.float64)
    reg, reg_bias, cr, cb, joint = _args(config, 0.3, 0.2)
    want_U, want_b = ref.half_step(
        small.user_index, small.item_index, small.values, small.n_users, U, b, V, c, mu,
        reg, reg_bias, cr, cb, joint, steps,
    )
    assert _cg_step(csr, V, c, mu, reg, reg_bias, cr, cb, joint, steps, U, b) == 0
    np.testing.assert_allclose(U, want_U, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(b, want_b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("config", CONFIGS)
def test_cg_with_enough_steps_is_the_exact_solve(small, config):
    """CG terminates in at most D steps on a D-dimensional SPD system (float64)."""
    K = 5
    csr, csc, U, V, b, c, mu = _setup(small, K, np.float64)
    reg, reg_bias, cr, cb, joint = _args(config, 0.3, 0.2)
    U_cg, b_cg = U.copy(), b.copy()
    _step(csr, V, c, mu, reg, reg_bias, cr, cb, joint, U, b)
    assert _cg_step(csr, V, c, mu, reg, reg_bias, cr, cb, joint, 3 * (K + 1), U_cg, b_cg) == 0
    np.testing.assert_allclose(U_cg, U, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b_cg, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cg_half_steps_never_increase_the_objective(dtype):
    ratings = awkward_ratings(seed=3, n_users=60, n_items=45, n=700)
    csr, csc, U, V, b, c, mu = _setup(ratings, 6, dtype, seed=4)
    dt = np.dtype(dtype).type
    args = (0.05, 0.1, True, True, True)

    def J():
        return objective(*csr, csc[0], U, b, V, c, dt(mu), dt(0.05), dt(0.1), True, True)

    history = [J()]
    for _ in range(8):
        _cg_step(csr, V, c, mu, *args, 2, U, b)
        history.append(J())
        _cg_step(csc, U, b, mu, *args, 2, V, c)
        history.append(J())
    slack = 1e-4 if dtype == np.float32 else 1e-10
    assert np.all(np.diff(history) <= slack * np.abs(history[:-1])), history


def test_cg_on_a_row_longer_than_its_resident_scratch():
    """Rows past _CG_RESIDENT ratings are passed over chunk by chunk on every pass."""
    from fastmf.kernels.als import _CG_RESIDENT

    rng = np.random.default_rng(9)
    K, n = 3, _CG_RESIDENT + 5000
    other = rng.standard_normal((n, K))
    vals = rng.standard_normal(n)
    indptr = np.array([0, n], dtype=np.int64)
    indices = np.arange(n, dtype=np.int32)
    F, bias, sse = np.zeros((1, K)), np.zeros(1), np.zeros(1)
    assert solve_rows_cg(indptr, indices, vals, other, np.zeros(n), 0.0, 0.5, 0.5, False, False,
                         True, np.array([0]), 1, 3 * (K + 1), F, bias, sse) == 0
    Z = np.hstack([other, np.ones((n, 1))])
    want = np.linalg.solve(Z.T @ Z + 0.5 * np.eye(K + 1), Z.T @ vals)
    np.testing.assert_allclose(np.r_[F[0], bias], want, rtol=1e-8, atol=1e-12)
    # not resident: its residuals are summed from the ratings themselves
    assert sse[0] == pytest.approx(np.sum((vals - Z @ np.r_[F[0], bias]) ** 2), rel=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_summed_block_statistics_solve_like_solve_rows(small, config):
    """The distributed item step: statistics of user blocks, summed, then solved."""
    from fastmf.kernels import normal_equations, solve_normal_equations

    csr, csc, U, V, b, c, mu = _setup(small, 4, np.float64)
    reg, reg_bias, cr, cb, joint = _args(config, 0.3, 0.2)
    want_V, want_c = V.copy(), c.copy()
    _step(csc, U, b, mu, reg, reg_bias, cr, cb, joint, want_V, want_c)
    # split the users into two blocks; each block's local CSC covers all items
    stats = np.zeros((small.n_items, 21))  # packed lower triangles of 6 x 6
    for lo, hi in [(0, 17), (17, small.n_users)]:
        sub = small.subset((small.user_index >= lo) & (small.user_index < hi))
        bindptr, bindices, bdata = sub.to_csc(np.float64)
        part = np.empty((small.n_items, 21))
        normal_equations(bindptr, bindices, bdata, U, b, mu, np.arange(small.n_items), 2, part)
        stats += part
    counts = np.diff(csc[0])
    got_V, got_c = V.copy(), c.copy()
    assert solve_normal_equations(stats, counts, reg, reg_bias, cr, cb, joint, 2, got_V,
                                  got_c) == 0
    np.testing.assert_allclose(got_V, want_V, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(got_c, want_c, rtol=1e-10, atol=1e-13)


_HELPER_RETURNS = """
import numba
from fastmf import _registry
from fastmf.datasets import make_movielens_like
from fastmf.kernels._jit import HELPERS

data = make_movielens_like("100k", random_state=0, n_ratings=20000)[0]
for cls in _registry.estimators():
    solvers = ("cholesky", "cg") if "solver" in cls().get_params() else (None,)
    for solver in solvers:
        kw = {"solver": solver} if solver else {}
        cls(**FAST[cls._registry_name], random_state=0, **kw).fit(data)

def arrays_in(ty):
    if isinstance(ty, numba.types.Array):
        return True
    return isinstance(ty, numba.types.BaseTuple) and any(arrays_in(t) for t in ty.types)

compiled = [(f.py_func.__name__, res.signature.return_type)
            for f in HELPERS for res in f.overloads.values()]
names = {name for name, _ in compiled}
assert len(names) >= 15, sorted(names)  # the fits compiled the helpers
bad = [(name, str(ty)) for name, ty in compiled if arrays_in(ty)]
assert bad == [], bad
"""


# Slow: it compiles every kernel from an empty cache in a subprocess, 124 s of an 8-minute
# suite on the Zen 3 VM (issue 17's stop of 2026-12-06), where a fresh clone's whole run took
# 12.5 minutes. Run it with `pytest -m slow` after changing a helper's signature.
@pytest.mark.slow
def test_no_helper_returns_an_array(tmp_path):
    """The per-row helpers run without numba's reference counting (fastmf.kernels._jit). An
    array one of them returned to a counting caller would be released once too often and
    freed while in use (heap corruption, seen with ``_row_system``): after a fit of every
    model, no compiled helper's return type holds an array. In a process with an empty
    kernel cache, so that every helper is compiled (a kernel loaded from the cache brings
    its helpers' code along, and they are then never compiled on their own)."""
    import os
    import subprocess
    import sys

    from test_contract import FAST  # every estimator's small, fast parameters

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    script = f"FAST = {FAST!r}\n" + _HELPER_RETURNS
    out = subprocess.run([sys.executable, "-c", script], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
