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

from fastmf.kernels._cholesky import back_lower
from fastmf.kernels._jit import helper
from fastmf.kernels.als import (
    _FASTMATH,
    _FASTMATH_REDUCE,
    _cholesky_solve,
    _failures,
    _gather_gram,
    _gram_chunk,
    _gram_scratch,
    _write_row,
    task_spans,
    task_vector,
)


@helper(fastmath=_FASTMATH)
def _sample_from_gram(G, alpha, prior_prec, prior_shift, row_shift, row, z, w, x):
    """Draw ``[u; b]`` from the row's conditional given its statistics ``G`` (overwritten).

    ``row_shift``: when it has rows, ``row_shift[row]`` is added to the prior's ``Lambda m``
    (a prior mean moved by the row's implicit term, see :func:`sample_implicit`).
    ``x[:D]`` receives ``mean + L^-T z`` with ``D = K + 1``; ``w`` is ``(D,)`` scratch.
    Returns False when ``P`` is not numerically positive definite.
    """
    D = prior_prec.shape[0]  # K + 1
    for a in range(D):
        for c in range(a + 1):  # the Cholesky reads the lower triangle only
            G[a, c] = alpha * G[a, c] + prior_prec[a, c]
        G[D, a] = alpha * G[D, a] + prior_shift[a]
        if row_shift.shape[0]:
            G[D, a] += row_shift[row, a]
    return _draw(G, D, z, w, x)


@helper(fastmath=_FASTMATH)
def _draw(G, D, z, w, x):
    """``x[:D] = P^-1 h + L^-T z`` for ``P = G[:D, :D]`` (lower triangle read) and
    ``h = G[D, :D]``: a draw from ``N(P^-1 h, P^-1)``. ``G`` is overwritten by ``L``."""
    if not _cholesky_solve(G, D, x):
        return False
    # L^T w = z: w ~ N(0, P^-1) because cov(L^-T z) = (L L^T)^-1. The same back substitution
    # as _cholesky_solve's, from z in row D (the right-hand side's row, free once solved).
    for i in range(D):
        G[D, i] = z[i]
    back_lower(G, D, w)
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
        Rows to draw; each task takes a run of them (:func:`fastmf.kernels.als.task_spans`).
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
    spans = task_spans(indptr, order, n_tasks)
    for task in prange(n_tasks):
        X, G, T = _gram_scratch(chunk, K, dt)
        x = task_vector(K + 1, dt)
        w = task_vector(K + 1, dt)
        for q in range(spans[task], spans[task + 1]):
            row = order[q]
            _gather_gram(indptr, indices, data, other, other_bias, mu, row, X, G, T, chunk)
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
def implicit_residuals(indptr, indices, data, other, other_bias, mu, own, own_bias, out):
    """``out[q] = A_ij - mu - b_i - c_j - w_i . v_j`` for every stored rating ``q = (i, j)``
    of the compressed rows, ``w = own``, ``b = own_bias``, ``v = other``, ``c = other_bias``:
    the residuals :func:`sample_implicit` starts from. Races: none -- row ``i`` has one task."""
    K = other.shape[1]
    for i in prange(indptr.shape[0] - 1):
        for q in range(indptr[i], indptr[i + 1]):
            j = indices[q]
            s = data[q] - mu - own_bias[i] - other_bias[j]
            for a in range(K):
                s -= own[i, a] * other[j, a]
            out[q] = s


@njit(parallel=True, cache=True)
def _coordinate_statistics(indptr, indices, resid, scale, col, prev, delta, g, h):
    """For coordinate ``a`` (``col = v[:, a]``): first bring the residuals up to date with
    the last coordinate's moves, ``e_ij -= delta_i prev_j`` (``prev = v[:, a-1]``; empty for
    ``a = 0``), then ``g_i = s_i sum_j e_ij v_ja`` and ``h_i = s_i^2 sum_j v_ja^2`` over row
    ``i``'s ratings, ``s = scale``. Races: none -- row ``i`` and its ratings have one task."""
    for i in prange(indptr.shape[0] - 1):
        d = delta[i]
        gi = g.dtype.type(0.0)
        hi = g.dtype.type(0.0)
        for q in range(indptr[i], indptr[i + 1]):
            j = indices[q]
            if prev.shape[0]:
                resid[q] -= d * prev[j]
            x = col[j]
            gi += resid[q] * x
            hi += x * x
        g[i] = scale[i] * gi
        h[i] = scale[i] * scale[i] * hi


@helper(fastmath=_FASTMATH_REDUCE)
def _dot_except(prior_prec, Y, a, k):
    """``sum_{c != a} prior_prec[a, c] Y[k, c]``, reassociated (it stores nothing)."""
    s = Y.dtype.type(0.0)
    for c in range(a):
        s += prior_prec[a, c] * Y[k, c]
    for c in range(a + 1, Y.shape[1]):
        s += prior_prec[a, c] * Y[k, c]
    return s


@helper(fastmath=_FASTMATH)
def _scan_coordinate(a, inc_ptr, inc_idx, g, h, alpha, prior_prec, prior_shift, noise, Y,
                     moved):
    """Draw ``Y[k, a]`` for ``k = 0, 1, ...`` in turn, each from its exact conditional, and
    keep ``g`` exact for the next draw; ``moved[i]`` sums the moves ``d`` of the rows that
    enter row ``i``. Sequential by construction. Returns the number of failed draws."""
    dt = Y.dtype.type
    failed = 0
    for k in range(Y.shape[0]):
        lo, hi = inc_ptr[k], inc_ptr[k + 1]
        sg = dt(0.0)
        sh = dt(0.0)
        for q in range(lo, hi):
            i = inc_idx[q]
            sg += g[i]
            sh += h[i]
        y = Y[k, a]
        p = prior_prec[a, a] + alpha * sh
        t = prior_shift[a] - _dot_except(prior_prec, Y, a, k) + alpha * (sg + sh * y)
        if not p > 0:
            failed += 1
            Y[k, a] = np.nan
            continue
        x = t / p + noise[k, a] / np.sqrt(p)
        d = x - y
        Y[k, a] = x
        for q in range(lo, hi):  # e_ij -= s_i d v_ja for j in R(i)
            i = inc_idx[q]
            g[i] -= h[i] * d
            moved[i] += d
    return failed


@njit(cache=True)
def sample_implicit(indptr, indices, resid, other, counts, inc_ptr, inc_idx, alpha, prior_prec,
                    prior_shift, noise, Y, eff):
    """Draw the implicit factors ``Y`` one coordinate at a time, each from its exact
    conditional given everything else (docs/design.md, "Implicit terms").

    Row ``k`` of ``Y`` enters the effective vector ``w_i = u_i + s_i sum_{k in N(i)} y_k``,
    ``s_i = n_i^-1/2``, of every row ``i`` listed in ``inc_idx[inc_ptr[k]:inc_ptr[k+1]]``.
    Given the rest, coordinate ``a`` of ``y_k`` is Gaussian with

        p = Lambda_aa + alpha sum_i s_i^2 h_i,       h_i = sum_{j in R(i)} v_ja^2,
        t = (Lambda m)_a - sum_{c != a} Lambda_ac y_kc + alpha sum_i s_i (g_i + s_i h_i y_ka),

    mean ``t / p``, variance ``1 / p``, with ``g_i = sum_j e_ij v_ja`` over the current
    residuals. The scan goes coordinate by coordinate (``a = 0 .. K-1``), and within one
    coordinate over ``k = 0, 1, ...``: a draw moves ``w_ia`` by ``s_i d`` and so ``g_i`` by
    ``-s_i d h_i`` -- scalars, so a sweep costs ``O(nnz K)`` where a whole-row draw of
    ``y_k`` costs ``O(nnz K^2)``. Between coordinates the residuals take the moves, in
    parallel over rows.

    Parameters
    ----------
    indptr, indices : compressed rows of the ratings of the rows that carry ``Y``'s sums
    resid : float (nnz,)
        Their residuals (:func:`implicit_residuals`), overwritten.
    other : float (S, K)
        The other side's (effective) vectors ``v``.
    counts : int (R,)
        ``n_i``; rows with ``n_i = 0`` have no incidences.
    inc_ptr, inc_idx : int64 (rows of Y + 1,), int32
        The rows ``i`` that row ``k`` of ``Y`` enters.
    alpha : noise precision;  prior_prec (K, K), prior_shift (K,): ``Lambda``, ``Lambda m``
    noise : float (rows of Y, K)
        Standard normal draws from the caller (``noise[k, a]`` for ``Y[k, a]``).
    Y : float (rows of Y, K), written in place;  eff : float (R, K), updated in place.

    Returns
    -------
    int
        The number of draws whose precision was not positive (set to NaN).

    Races: none -- the row passes give each row one task; the scans are sequential.
    """
    R = eff.shape[0]
    S, K = other.shape
    dt = Y.dtype
    scale = np.zeros(R, dtype=dt)
    for i in range(R):
        if counts[i]:
            scale[i] = 1.0 / np.sqrt(counts[i])
    g = np.empty(R, dtype=dt)
    h = np.empty(R, dtype=dt)
    delta = np.zeros(R, dtype=dt)
    col = np.empty(S, dtype=dt)
    prev = np.empty(S, dtype=dt)
    failed = 0
    for a in range(K):
        for j in range(S):
            col[j] = other[j, a]
        _coordinate_statistics(indptr, indices, resid, scale, col, prev if a else prev[:0],
                               delta, g, h)
        delta[:] = 0.0
        failed += _scan_coordinate(a, inc_ptr, inc_idx, g, h, alpha, prior_prec, prior_shift,
                                   noise, Y, delta)
        for i in range(R):
            delta[i] *= scale[i]
            eff[i, a] += delta[i]
        col, prev = prev, col  # this column is the next coordinate's prev
    return failed
