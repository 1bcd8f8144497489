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
    _cholesky_solve,
    _failures,
    _gather_gram,
    _gram_chunk,
    _write_row,
)


@njit(cache=True, fastmath=_FASTMATH)
def _sample_from_gram(G, alpha, prior_prec, prior_shift, z, w, x):
    """Draw ``[u; b]`` from the row's conditional given its statistics ``G`` (overwritten).

    ``x[:D]`` receives ``mean + L^-T z`` with ``D = K + 1``; ``w`` is ``(D,)`` scratch.
    Returns False when ``P`` is not numerically positive definite.
    """
    D = G.shape[0] - 1
    for a in range(D):
        for c in range(a + 1):  # the Cholesky reads the lower triangle only
            G[a, c] = alpha * G[a, c] + prior_prec[a, c]
        G[D, a] = alpha * G[D, a] + prior_shift[a]
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
    indptr, indices, data, other, other_bias, mu, alpha, prior_prec, prior_shift, order,
    n_tasks, noise, factors, bias,
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
        X = np.empty((chunk, K + 2), dtype=dt)
        G = np.empty((K + 2, K + 2), dtype=dt)
        T = np.empty((K + 2, K + 2), dtype=dt)
        w = np.empty(K + 1, dtype=dt)
        x = np.empty(K + 1, dtype=dt)
        for q in range(task, order.shape[0], n_tasks):
            row = order[q]
            _gather_gram(indptr, indices, data, other, other_bias, mu, row, X, G, T)
            ok = _sample_from_gram(G, alpha, prior_prec, prior_shift, noise[q], w, x)
            _write_row(ok, x[K], x, row, factors, bias)
            if not ok:
                failed[task] += 1
    return _failures(failed)
