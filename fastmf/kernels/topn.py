"""Top-n selection kernels (numba only): recommendations and nearest neighbours."""

import math

import numpy as np
from numba import njit, prange

_LOG_HALF = math.log(0.5)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=True)
def log_ndtr(z):
    """``log Phi(z)``, the log of the standard normal CDF, accurate in both tails."""
    if z > -20.0:
        return _LOG_HALF + math.log(math.erfc(-z / math.sqrt(2.0)))
    # Mills-ratio asymptotics where erfc underflows (relative error < 1e-3 at z = -20).
    return -0.5 * z * z - math.log(-z) - _HALF_LOG_2PI + math.log1p(-1.0 / (z * z))


@njit(parallel=True, cache=True)
def top_n(Q, q_offset, C, c_offset, log_prior, theta, inv_sigma, liked, excl_indptr,
          excl_indices, n, out_index, out_score):
    """The ``n`` best candidates for each query row, best first.

    ``s[r, j] = Q[r] . C[j] + q_offset[r] + c_offset[j]`` is ranked as it is, or, with
    ``liked``, as ``log_prior[j] + log Phi((s - theta) * inv_sigma)``: the log-probability
    that the user interacts with ``j`` and rates it above ``theta`` under a Gaussian
    predictive with standard deviation ``1 / inv_sigma`` (docs/design.md, "Ranking the
    explicit models"). Candidates listed in ``excl_indices[excl_indptr[r]:excl_indptr[r+1]]``
    are skipped. Ties go to the lower candidate index. Rows with fewer than ``n`` candidates
    are padded with index -1 and score -inf. ``out_score`` receives the ranking score.

    Parameters
    ----------
    Q : float (R, K);  q_offset : float (R,)
    C : float (S, K);  c_offset : float (S,);  log_prior : float64 (S,)
    theta, inv_sigma : float;  liked : bool
    excl_indptr : int64 (R+1,);  excl_indices : int32 (nnz,)
    n : int
    out_index : int64 (R, n), written;  out_score : float64 (R, n), written

    Races: none -- query row ``r`` writes only ``out_*[r]``; its scratch mask is per row.
    """
    R = Q.shape[0]
    S = C.shape[0]
    K = Q.shape[1]
    for r in prange(R):
        excluded = np.zeros(S, dtype=np.bool_)
        for p in range(excl_indptr[r], excl_indptr[r + 1]):
            excluded[excl_indices[p]] = True
        idx = out_index[r]
        sc = out_score[r]
        for t in range(n):
            idx[t] = -1
            sc[t] = -np.inf
        filled = 0
        for j in range(S):
            if excluded[j]:
                continue
            s = q_offset[r] + c_offset[j]
            for k in range(K):
                s += Q[r, k] * C[j, k]
            v = np.float64(s)
            if liked:
                v = log_prior[j] + log_ndtr((v - theta) * inv_sigma)
            if filled == n and not v > sc[n - 1]:
                continue  # also drops NaN scores
            # insertion into the sorted prefix; strict '>' keeps the earlier (lower) index first
            pos = filled if filled < n else n - 1
            while pos > 0 and v > sc[pos - 1]:
                sc[pos] = sc[pos - 1]
                idx[pos] = idx[pos - 1]
                pos -= 1
            sc[pos] = v
            idx[pos] = j
            if filled < n:
                filled += 1
