"""Objective and prediction kernels (numba only)."""

import numpy as np
from numba import njit, prange

from fastmf.kernels._jit import helper


@helper()
def _penalty(factors, bias, row, n, reg, reg_bias, count_reg, count_bias):
    """``lam |u|^2 + lam_b b^2`` of one row, in float64."""
    sq = 0.0
    for k in range(factors.shape[1]):
        sq += np.float64(factors[row, k]) ** 2
    lam = np.float64(reg) * n if count_reg else np.float64(reg)
    lam_b = np.float64(reg_bias) * n if count_bias else np.float64(reg_bias)
    return lam * sq + lam_b * np.float64(bias[row]) ** 2


# Rows are dealt to this many tasks round-robin (row i to task i % _TASKS): on power-law data
# whose rows are sorted by activity, numba's contiguous static chunks left one thread with
# most of the ratings. The count fixes the schedule only; each row's sum is the same.
_TASKS = 64


@helper(fastmath={"contract", "reassoc"})
def _row_sse(indptr, indices, data, U, b, V, c, mu, i, u):
    """``sum_j (A_ij - mu - b_i - c_j - u_i.v_j)^2`` of row ``i`` in float64; ``u`` is
    float64 ``(K,)`` scratch for ``u_i``.

    The dot products are reassociated so they vectorize (a serial chain of K dependent adds
    had made the objective cost half a CG iteration) and taken four ratings at a time against
    the row's factors converted once: four independent sums hide the latency of the final
    horizontal adds (issue 17: ML-1M 7.3 -> 5.4 ms, ML-10M shape 91 -> 73 ms, one thread).
    The order is fixed at compile time and a row is summed by one thread, so the value does
    not depend on the thread count."""
    K = U.shape[1]
    for k in range(K):
        u[k] = np.float64(U[i, k])
    s = 0.0
    base = np.float64(mu) + np.float64(b[i])
    p = indptr[i]
    end = indptr[i + 1]
    while p + 4 <= end:
        j0 = indices[p]
        j1 = indices[p + 1]
        j2 = indices[p + 2]
        j3 = indices[p + 3]
        d0 = 0.0
        d1 = 0.0
        d2 = 0.0
        d3 = 0.0
        for k in range(K):
            uk = u[k]
            d0 += uk * np.float64(V[j0, k])
            d1 += uk * np.float64(V[j1, k])
            d2 += uk * np.float64(V[j2, k])
            d3 += uk * np.float64(V[j3, k])
        e0 = np.float64(data[p]) - base - np.float64(c[j0]) - d0
        e1 = np.float64(data[p + 1]) - base - np.float64(c[j1]) - d1
        e2 = np.float64(data[p + 2]) - base - np.float64(c[j2]) - d2
        e3 = np.float64(data[p + 3]) - base - np.float64(c[j3]) - d3
        s += e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3
        p += 4
    while p < end:
        j = indices[p]
        dot = 0.0
        for k in range(K):
            dot += u[k] * np.float64(V[j, k])
        e = np.float64(data[p]) - base - np.float64(c[j]) - dot
        s += e * e
        p += 1
    return s


@njit(parallel=True, cache=True)
def loss_rows(indptr, indices, data, U, b, V, c, mu, reg, reg_bias, count_reg, count_bias):
    """``sum_i [sum_j (A_ij - mu - b_i - c_j - u_i.v_j)^2 + pen_i]`` over the CSR's rows.

    The rows' share of ``J``: residuals plus the penalty of each row ``i`` (its count is its
    number of ratings here). Accumulated in float64. Races: none -- per-row partial sums,
    added in a fixed order afterwards.
    """
    M = U.shape[0]
    part = np.zeros(M)
    for t in prange(_TASKS):
        u = np.empty(U.shape[1])
        for i in range(t, M, _TASKS):
            n = np.float64(indptr[i + 1] - indptr[i])
            part[i] = (_row_sse(indptr, indices, data, U, b, V, c, mu, i, u)
                       + _penalty(U, b, i, n, reg, reg_bias, count_reg, count_bias))
    # A plain loop, not .sum(): inside a parallel function numba would turn .sum() into a
    # parallel reduction whose rounding depends on the thread count.
    total = 0.0
    for i in range(M):
        total += part[i]
    return total


@njit(parallel=True, cache=True)
def penalty_rows(counts, F, bias, reg, reg_bias, count_reg, count_bias):
    """``sum_j pen_j``: the penalty of each row of ``F``/``bias`` with ``counts[j]`` ratings."""
    N = F.shape[0]
    part = np.zeros(N)
    for j in prange(N):
        part[j] = _penalty(F, bias, j, np.float64(counts[j]), reg, reg_bias, count_reg,
                           count_bias)
    total = 0.0
    for j in range(N):
        total += part[j]
    return total


@njit(cache=True)
def objective(
    indptr, indices, data, item_indptr, U, b, V, c, mu, reg, reg_bias, count_reg, count_bias,
):
    """The ALS objective ``J`` (docs/design.md section 1), accumulated in float64.

    Parameters
    ----------
    indptr : int64 (M+1,);  indices : int32 (nnz,);  data : float (nnz,)
        CSR of the ratings (users x items).
    item_indptr : int64 (N+1,)
        CSC ``indptr``, for the items' rating counts.
    U : float (M, K);  b : float (M,);  V : float (N, K);  c : float (N,)
    mu, reg, reg_bias : scalars;  count_reg, count_bias : bool

    Returns
    -------
    float
        ``sum (A - mu - b_i - c_j - u_i.v_j)^2 + sum_i pen_i + sum_j pen_j``.
    """
    users = loss_rows(indptr, indices, data, U, b, V, c, mu, reg, reg_bias, count_reg,
                      count_bias)
    item_counts = item_indptr[1:] - item_indptr[:-1]
    return users + penalty_rows(item_counts, V, c, reg, reg_bias, count_reg, count_bias)


@njit(parallel=True, cache=True)
def predict_pairs(users, items, U, b, V, c, mu, out):
    """``out[p] = mu + b[users[p]] + c[items[p]] + U[users[p]].V[items[p]]``.

    ``users``/``items`` are int64 indices already checked to be in range. Races: none.
    """
    K = U.shape[1]
    for p in prange(users.shape[0]):
        i = users[p]
        j = items[p]
        s = mu + b[i] + c[j]
        for k in range(K):
            s += U[i, k] * V[j, k]
        out[p] = s
