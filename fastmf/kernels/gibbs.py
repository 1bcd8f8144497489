"""Gibbs-sampling half-step of Bayesian matrix factorization (numba only).

The conditional distribution of one row's ``theta_i = [u_i, b_i]`` given the other side, the
noise precision ``alpha`` and the Gaussian prior ``N(m, Lambda^-1)`` is Gaussian with

    precision  P_i = Lambda + alpha sum_j x_j x_j^T,      x_j = [v_j, 1]
    mean       P_i^-1 (alpha sum_j x_j r'_ij + Lambda m),  r'_ij = A_ij - mu - c_j

(Salakhutdinov & Mnih 2008, with the biases as one more coordinate). These are the ALS
normal equations of :func:`fastmf.kernels.solve_rows` with the prior in place of the ridge
penalty, so the kernel gathers the same ``(K+2)^2`` statistics, factors ``P_i = L L^T`` with
the same Cholesky and draws ``theta_i = mean + L^-T z``.
"""

import numpy as np
from numba import njit, prange

from fastmf.kernels.als import (
    _FASTMATH,
    _FASTMATH_REDUCE,
    _cholesky_solve,
    _failures,
    _gather_gram,
    _gram_chunk,
    _gram_scratch,
    _write_row,
)


@njit(cache=True, fastmath=_FASTMATH)
def _sample_from_gram(G, alpha, prior_prec, prior_shift, row_shift, row, z, w, x):
    """Draw ``[u; b]`` from the row's conditional given its statistics ``G`` (overwritten).

    ``row_shift``: when it has rows, ``row_shift[row]`` is added to the prior's ``Lambda m``
    (a prior mean moved by the row's implicit term, see :func:`sample_implicit`).
    ``x[:D]`` receives ``mean + L^-T z`` with ``D = K + 1``; ``w`` is ``(D,)`` scratch.
    Returns False when ``P`` is not numerically positive definite.
    """
    D = G.shape[0] - 1
    for a in range(D):
        for c in range(a + 1):  # the Cholesky reads the lower triangle only
            G[a, c] = alpha * G[a, c] + prior_prec[a, c]
        G[D, a] = alpha * G[D, a] + prior_shift[a]
        if row_shift.shape[0]:
            G[D, a] += row_shift[row, a]
    return _draw(G, D, z, w, x)


@njit(cache=True, fastmath=_FASTMATH)
def _draw(G, D, z, w, x):
    """``x[:D] = P^-1 h + L^-T z`` for ``P = G[:D, :D]`` (lower triangle read) and
    ``h = G[D, :D]``: a draw from ``N(P^-1 h, P^-1)``. ``G`` is overwritten by ``L``."""
    if not _cholesky_solve(G, D, x):
        return False
    # L^T w = z: w ~ N(0, P^-1) because cov(L^-T z) = (L L^T)^-1.
    for i in range(D - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, D):
            s -= G[k, i] * w[k]
        w[i] = s / G[i, i]
    for i in range(D):
        x[i] += w[i]
    return True


@njit(parallel=True, cache=True)
def sample_rows(
    indptr, indices, data, other, other_bias, mu, alpha, prior_prec, prior_shift, row_shift,
    order, n_tasks, noise, factors, bias,
):
    """One Gibbs half-step: draw every listed row's ``[u_i, b_i]`` from its conditional.

    Parameters
    ----------
    indptr : int64 (R+1,);  indices : int32 (nnz,);  data : float (nnz,)
        Compressed rows (CSR for users, CSC for items) of the rating matrix.
    other : float (S, K), C-contiguous;  other_bias : float (S,)
        The fixed side's current sample.
    mu, alpha : scalars of the factors' dtype
        Global mean (fixed offset) and noise precision ``1 / sigma^2``.
    prior_prec : float (K+1, K+1);  prior_shift : float (K+1,)
        The prior's precision ``Lambda`` and ``Lambda m`` (``m`` its mean).
    row_shift : float (R, K+1) or (0, K+1)
        Per-row additions to ``Lambda m``: ``Lambda [s_i; 0]`` when row ``i``'s prior mean is
        moved by its implicit term ``s_i`` (``BayesianALS(implicit=...)``); no rows: none.
    order : int64 (n_rows,)
        Rows to draw, longest first; task ``t`` takes ``order[t::n_tasks]``.
    n_tasks : int
        Number of parallel tasks; affects the schedule only, never the result.
    noise : float (n_rows, K+1)
        Standard normal draws, ``noise[q]`` for row ``order[q]``. Drawn by the caller, so the
        samples depend on its generator alone, not on the thread count.
    factors : float (R, K), written in place;  bias : float (R,), written in place.

    Returns
    -------
    int
        Number of rows whose precision was not positive definite; those rows are set to NaN.

    Races: none -- each row is written by the one task that owns it.
    """
    K = factors.shape[1]
    dt = factors.dtype
    failed = np.zeros(n_tasks, dtype=np.int64)
    chunk = _gram_chunk(indptr, order, K)
    for task in prange(n_tasks):
        X, G, T = _gram_scratch(chunk, K, dt)
        w = np.empty(K + 1, dtype=dt)
        x = np.empty(K + 1, dtype=dt)
        for q in range(task, order.shape[0], n_tasks):
            row = order[q]
            _gather_gram(indptr, indices, data, other, other_bias, mu, row, X, G, T)
            ok = _sample_from_gram(G, alpha, prior_prec, prior_shift, row_shift, row, noise[q],
                                   w, x)
            _write_row(ok, x[K], x, row, factors, bias)
            if not ok:
                failed[task] += 1
    return _failures(failed)


@njit(parallel=True, cache=True)
def implicit_sums(indptr, indices, Y, out):
    """``out[i] = |N(i)|^-1/2 sum_{k in N(i)} Y[k]``, ``N(i)`` the columns of row ``i``
    (zero for an empty row): the implicit ("who rated what") term of every row.
    Races: none -- ``out[i]`` is written by one task."""
    K = Y.shape[1]
    for i in prange(out.shape[0]):
        for a in range(K):
            out[i, a] = 0.0
        n = indptr[i + 1] - indptr[i]
        if n == 0:
            continue
        for q in range(indptr[i], indptr[i + 1]):
            k = indices[q]
            for a in range(K):
                out[i, a] += Y[k, a]
        s = out.dtype.type(1.0 / np.sqrt(n))
        for a in range(K):
            out[i, a] *= s


@njit(parallel=True, cache=True)
def implicit_statistics(indptr, indices, data, other, other_bias, mu, own, own_bias, order,
                        n_tasks, grams, resid):
    """Per listed row ``i``: ``grams[i] = sum_j v_j v_j^T`` and ``resid[i] = sum_j v_j e_ij``
    over its ratings, ``v = other``, ``e_ij = A_ij - mu - b_i - c_j - w_i . v_j`` with
    ``w = own``, ``b = own_bias``, ``c = other_bias``: what :func:`sample_implicit` needs of
    the side whose vectors carry the implicit terms. Races: none."""
    K = other.shape[1]
    dt = grams.dtype
    chunk = _gram_chunk(indptr, order, K)
    for task in prange(n_tasks):
        X, G, T = _gram_scratch(chunk, K, dt)
        for q in range(task, order.shape[0], n_tasks):
            i = order[q]
            _gather_gram(indptr, indices, data, other, other_bias, mu, i, X, G, T)
            for a in range(K):
                for c in range(K):
                    grams[i, a, c] = G[a, c]
            for a in range(K):  # sum v (A - mu - c) - b sum v - (sum v v^T) w
                s = G[K + 1, a] - own_bias[i] * G[K, a]
                for c in range(K):
                    s -= G[a, c] * own[i, c]
                resid[i, a] = s


@njit(cache=True, fastmath=_FASTMATH_REDUCE)
def _row_dot(grams, i, a, t):
    """``grams[i, a] . t``, reassociated so it vectorizes; it stores nothing, so its order is
    fixed at compile time (docs/design.md section 5)."""
    s = grams.dtype.type(0.0)
    for c in range(t.shape[0]):
        s += grams[i, a, c] * t[c]
    return s


@njit(parallel=True, cache=True)
def implicit_precisions(indptr, indices, counts, grams, out):
    """``out[k] = sum_i n_i^-1 G_i`` over the rows ``i`` listed for ``k``: the likelihood's
    share of ``y_k``'s precision, which no draw changes, so it is summed for every ``k`` at
    once, in parallel. Races: none -- ``out[k]`` has one task."""
    K = grams.shape[1]
    for k in prange(out.shape[0]):
        for a in range(K):
            for c in range(K):
                out[k, a, c] = 0.0
        for q in range(indptr[k], indptr[k + 1]):
            i = indices[q]
            w = out.dtype.type(1.0 / counts[i])
            for a in range(K):
                for c in range(K):  # the full square: fixed trip counts vectorize better
                    out[k, a, c] += w * grams[i, a, c]


@njit(cache=True, fastmath=_FASTMATH)
def sample_implicit(indptr, indices, counts, grams, precisions, resid, alpha, prior_prec,
                    prior_shift, noise, Y, eff):
    """Draw the implicit factors ``Y`` row by row, ``k = 0, 1, ...``, each from its exact
    conditional given everything else (docs/design.md, "Implicit terms").

    Row ``k`` of ``Y`` enters the effective vector ``w_i = u_i + n_i^-1/2 sum_{k in N(i)}
    y_k`` of every row ``i`` listed in ``indices[indptr[k]:indptr[k+1]]``. Given the rest,
    ``y_k ~ N(P^-1 h, P^-1)`` with

        P = Lambda + alpha Q_k,                   Q_k = sum_i n_i^-1 G_i,
        h = Lambda m + alpha (sum_i n_i^-1/2 g_i + Q_k y_k),

    ``G_i = grams[i]``, ``Q_k = precisions[k]`` (:func:`implicit_precisions`) and ``g_i =
    resid[i]`` the current ``sum_j v_j e_ij`` of row ``i``. After the draw, with ``d = y_k' -
    y_k``, ``g_i -= n_i^-1/2 G_i d`` and ``eff[i] += n_i^-1/2 d`` keep the statistics and the
    effective vectors exact for the next row: a Gibbs scan, sequential by construction (one
    thread, a fixed order).

    ``counts[i] = n_i``; ``noise`` (rows of Y, K) standard normal draws from the caller.
    Returns the number of rows whose precision was not positive definite (set to NaN).
    """
    R, K = Y.shape
    dt = Y.dtype.type
    P = np.empty((K + 1, K + 1), dtype=Y.dtype)
    t = np.empty(K, dtype=Y.dtype)
    x = np.empty(K, dtype=Y.dtype)
    w = np.empty(K, dtype=Y.dtype)
    failed = 0
    for k in range(R):
        for a in range(K):
            for c in range(a + 1):
                P[a, c] = prior_prec[a, c] + alpha * precisions[k, a, c]
        for a in range(K):  # h = Lambda m + alpha Q_k y_k (Q_k from its lower triangle) ...
            t[a] = dt(0.0)
        for a in range(K):
            ya = Y[k, a]
            for c in range(a + 1):
                t[c] += precisions[k, a, c] * ya
            for c in range(a):
                t[a] += precisions[k, a, c] * Y[k, c]
        for q in range(indptr[k], indptr[k + 1]):  # ... + alpha sum n_i^-1/2 g_i
            i = indices[q]
            s = dt(1.0 / np.sqrt(counts[i]))
            for a in range(K):
                t[a] += s * resid[i, a]
        for a in range(K):
            P[K, a] = prior_shift[a] + alpha * t[a]
        if not _draw(P, K, noise[k], w, x):
            failed += 1
            for a in range(K):
                Y[k, a] = np.nan
            continue
        for a in range(K):
            t[a] = x[a] - Y[k, a]
            Y[k, a] = x[a]
        for q in range(indptr[k], indptr[k + 1]):
            i = indices[q]
            s = dt(1.0 / np.sqrt(counts[i]))
            for a in range(K):  # g_i -= s G_i d
                resid[i, a] -= s * _row_dot(grams, i, a, t)
            for a in range(K):
                eff[i, a] += s * t[a]
    return failed
