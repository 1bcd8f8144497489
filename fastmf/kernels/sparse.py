"""Compressed-matrix conversions (numba only)."""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def transpose_csr(indptr, indices, data, n_tasks, out_indptr, out_indices, out_data):
    """The transpose of a CSR matrix (equivalently its CSC form), by a parallel counting sort.

    Parameters
    ----------
    indptr : int64 (M+1,);  indices : int32 (nnz,), each in ``[0, N)``;  data : (nnz,)
        The CSR matrix, ``M x N``.
    n_tasks : int
        Runs of consecutive rows, each with about ``nnz / n_tasks`` entries, that count and
        place their entries in parallel. Each task keeps one count per column (``n_tasks x
        N`` int64 scratch). The result does not depend on it.
    out_indptr : int64 (N+1,);  out_indices : int32 (nnz,);  out_data : (nnz,)
        Written: the ``N x M`` CSR of the transpose. Within each of its rows the column
        indices ascend (the order a sort would give, and scipy's ``tocsc``), whatever the
        order within the input's rows.

    Task ``t`` counts its rows' entries per column, then, after a serial prefix sum that
    gives it the first free slot of each output row behind the tasks before it, writes them
    there: slots are disjoint, so there are no races, and rows stay ascending.
    """
    M = indptr.shape[0] - 1
    N = out_indptr.shape[0] - 1
    nnz = indptr[M]
    bounds = np.empty(n_tasks + 1, dtype=np.int64)
    for t in range(n_tasks):  # the first row starting at or after t / n_tasks of the entries
        bounds[t] = min(np.searchsorted(indptr, nnz * t // n_tasks), M)
    bounds[0] = 0
    bounds[n_tasks] = M
    slot = np.zeros((n_tasks, N), dtype=np.int64)
    for t in prange(n_tasks):
        for p in range(indptr[bounds[t]], indptr[bounds[t + 1]]):
            slot[t, indices[p]] += 1
    out_indptr[0] = 0
    for j in range(N):
        s = out_indptr[j]
        for t in range(n_tasks):
            count = slot[t, j]
            slot[t, j] = s
            s += count
        out_indptr[j + 1] = s
    for t in prange(n_tasks):
        for i in range(bounds[t], bounds[t + 1]):
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                d = slot[t, j]
                out_indices[d] = i
                out_data[d] = data[p]
                slot[t, j] = d + 1
