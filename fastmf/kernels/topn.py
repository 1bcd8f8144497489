"""Top-n selection kernels (numba only): recommendations and nearest neighbours."""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def top_n(Q, q_offset, C, c_offset, excl_indptr, excl_indices, n, out_index, out_score):
    """The ``n`` best candidates for each query row, best first.

    ``score[r, j] = Q[r] . C[j] + q_offset[r] + c_offset[j]``; candidates listed in
    ``excl_indices[excl_indptr[r]:excl_indptr[r + 1]]`` are skipped. Ties go to the lower
    candidate index. Rows with fewer than ``n`` candidates are padded with index -1 and score
    -inf.

    Parameters
    ----------
    Q : float (R, K);  q_offset : float (R,)
    C : float (S, K);  c_offset : float (S,)
    excl_indptr : int64 (R+1,);  excl_indices : int32 (nnz,)
    n : int
    out_index : int64 (R, n), written;  out_score : float (R, n), written

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
            if filled == n and not s > sc[n - 1]:
                continue  # also drops NaN scores
            # insertion into the sorted prefix; strict '>' keeps the earlier (lower) index first
            pos = filled if filled < n else n - 1
            while pos > 0 and s > sc[pos - 1]:
                sc[pos] = sc[pos - 1]
                idx[pos] = idx[pos - 1]
                pos -= 1
            sc[pos] = s
            idx[pos] = j
            if filled < n:
                filled += 1
