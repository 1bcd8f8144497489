"""Half-step kernels of alternating least squares (numba only).

One kernel, :func:`solve_rows`, serves both half-steps: the user step runs it over the CSR
arrays (users x items) with the item factors as "the other side", the item step runs the same
kernel over the CSC arrays with the user factors. See docs/design.md sections 1 and 9.

Per row, the other side's factors are gathered into a contiguous per-task block ``X[t] = v_j``
and one ``X^T X`` product (:func:`fastmf.kernels._gram.gram_lower`, explicit SIMD) yields the
Gram matrix; the bias cross terms, the rating count and the right-hand side (with ``r_t = A_ij -
mu - c_j``) are summed while gathering: together, the row's sufficient statistics. A hand-written
Cholesky on the same scratch solves the ``K+1`` (joint) or ``K`` (sequential) system. The
statistics are additive over ratings, which is what the distributed item step sums across
user blocks (:func:`normal_equations`, :func:`solve_normal_equations`). docs/design.md section 9
has the cost model.
"""

import numpy as np
from numba import njit, prange

from fastmf.kernels._cholesky import (
    LANE_VECTOR_BYTES,
    back_lower,
    pack_lanes,
    rank2_lower,
    solve_lanes,
)
from fastmf.kernels._gram import gram_lower_range, padded, piece_rows
from fastmf.kernels._jit import helper
from fastmf.kernels._pass import gather_stats, residual_sse, rows_pass, sums_first_block
from fastmf.kernels.objective import _row_sse

# Fused multiply-add only. Reassociation is left off on purpose: it would let results depend
# on how LLVM splits loops, and the tests demand bitwise-equal factors for any thread count.
_FASTMATH = {"contract"}
# The Cholesky's dot products need reassociation to vectorize. It is safe there: the order is
# fixed at compile time and each row is solved by one thread, so results still do not depend
# on the thread count; only the last bits differ from a strictly sequential sum.
_FASTMATH_REDUCE = {"contract", "reassoc"}

# Bytes of gathered factors per X^T X product: longer rows are cut into chunks of this size
# (bounded scratch that stays in L2; 1,024 to 4,096 ratings at K = 32 measured alike).
_GRAM_BYTES = 1 << 19
# CG keeps a row's per-rating vectors (its residual and Z p, which the objective reuses) when
# it has at most this many ratings; longer rows' passes fill them chunk by chunk (bounded
# scratch), and their objective is summed from the ratings. ImplicitALS keeps a row's gathered
# block resident across its passes under the same bound.
_CG_RESIDENT = 1 << 15


@helper(fastmath=_FASTMATH)
def _cholesky_solve(G, D, x, tol_factor=1.0):
    """Solve the SPD system ``G[:D, :D] x = G[D, :D]`` in place (lower triangle read).

    Right-looking Cholesky ``A = L L^T`` written over the lower triangle, two columns at a
    time: their pivots and columns of ``L`` here (into rows ``D + 1`` and ``D + 2`` of ``G``),
    then every later row's update by both as whole vectors
    (:func:`fastmf.kernels._cholesky.rank2_lower`). The right-hand side, row ``D``, is
    updated with the others (``L y = rhs``); then ``L^T x = y``
    (:func:`fastmf.kernels._cholesky.back_lower`), which overwrites row ``D``. Entries right
    of the diagonal are not read; some are overwritten.

    ``G`` comes from :func:`system_scratch` ``(D)`` or is at least as large: ``D + 4`` rows,
    ``padded(D + 1)`` columns (:func:`fastmf.kernels._gram.padded`). ``x[:D]`` receives the
    solution.

    Returns False (``x`` undefined) when a pivot is not above ``eps`` times the largest
    diagonal entry, i.e. the system is not numerically positive definite.
    """
    if G.shape[0] < D + 4 or G.shape[1] < padded(D + 1) or x.shape[0] < D:
        raise ValueError("_cholesky_solve: G smaller than system_scratch(D), or x than D")
    one = G.dtype.type(1.0)
    # A pivot below eps * (largest diagonal entry) means the matrix is singular to working
    # precision: whether rounding leaves such a pivot at +1e-16 or -1e-16 must not decide
    # between a failure report and garbage factors.
    biggest = G.dtype.type(0.0)
    for j in range(D):
        biggest = max(biggest, G[j, j])
    tol = np.finfo(G.dtype).eps * biggest * tol_factor
    c0 = G[D + 1]  # columns j and j + 1 of L, zero at and above row j + 1
    c1 = G[D + 2]
    c0[:] = 0.0
    c1[:] = 0.0
    j = 0
    while j + 1 < D:
        s = G[j, j]
        if not s > tol:  # also catches NaN
            return False
        l00 = np.sqrt(s)
        inv0 = one / l00
        l10 = G[j + 1, j] * inv0
        s = G[j + 1, j + 1] - l10 * l10
        if not s > tol:
            return False
        l11 = np.sqrt(s)
        inv1 = one / l11
        G[j, j] = l00
        G[j + 1, j] = l10
        G[j + 1, j + 1] = l11
        c0[j] = 0.0
        c1[j] = 0.0
        c0[j + 1] = 0.0
        c1[j + 1] = 0.0
        for i in range(j + 2, D + 1):
            a0 = G[i, j] * inv0
            c0[i] = a0
            c1[i] = (G[i, j + 1] - a0 * l10) * inv1
        rank2_lower(G, j, D)  # also writes the two columns into rows j + 2 .. D
        j += 2
    if j < D:  # the last column of an odd D
        s = G[j, j]
        if not s > tol:
            return False
        G[j, j] = np.sqrt(s)
        G[D, j] = G[D, j] / G[j, j]
    back_lower(G, D, x)
    return True


# Entries kept free on each side of a task's scratch vector (128 bytes or more).
_GUARD = 32


@njit(cache=True)
def task_vector(n, dt):
    """``n`` zeros of ``dt`` for one task's scratch, with no other allocation on their cache
    lines.

    The tasks of a parallel loop allocate their scratch at the same moment, from the same
    heap, so one task's small vectors (a CG row's ``x``, ``res``, ``p``, ``Ap``: 33 to 40
    floats at K = 32) used to lie next to another's, on shared cache lines. Both tasks
    write theirs on every step, and each write took the line from the other core: the CG
    half-steps of the ML-10M shape ran 1.3x faster on two threads than on one (Zen 3 VM,
    issue 17), while two one-thread processes side by side lost at most 13 %. The
    vector is a view into a larger allocation, :data:`_GUARD` entries in from either end.
    """
    return np.zeros(n + 2 * _GUARD, dtype=dt)[_GUARD:_GUARD + n]


@njit(cache=True)
def cg_scratch(n, chunk, K, dt):
    """One task's conjugate-gradient vectors, each a :func:`task_vector`: ``x``, the
    residual, ``p`` and ``A p`` (``n`` entries each), two per-rating vectors (``chunk``
    each) and a float64 ``K``-vector."""
    return (task_vector(n, dt), task_vector(n, dt), task_vector(n, dt), task_vector(n, dt),
            task_vector(chunk, dt), task_vector(chunk, dt), task_vector(K, np.float64))


@njit(cache=True)
def system_scratch(D, dt):
    """Zeroed scratch for one ``D x D`` system and what :func:`_cholesky_solve` and
    :func:`_cholesky_solve_scaled` keep beside it: ``(D + 4, padded(D + 1))``. Rows ``:D``
    hold the matrix (lower triangle), row ``D`` the right-hand side."""
    return np.zeros((D + 4, padded(D + 1)), dtype=dt)


@helper(fastmath=_FASTMATH)
def _cholesky_solve_scaled(G, D, x):
    """:func:`_cholesky_solve` of the Jacobi-scaled system ``(S G S) y = S rhs``, ``x = S y``
    with ``S = diag(G)^-1/2``: every diagonal entry becomes 1, so coordinates of very
    different magnitude (factors of ratings in the 1e5 range next to a bias coordinate of
    order n) no longer make a pivot fall under the precision of the largest one. Used as a
    retry when the plain factorization fails (float32 on large rating scales, issue 14).
    """
    one = G.dtype.type(1.0)
    scale = G[D + 3]  # the row system_scratch keeps for it
    for j in range(D):
        if not G[j, j] > 0.0:  # also catches NaN
            return False
        scale[j] = one / np.sqrt(G[j, j])
    for i in range(D):
        si = scale[i]
        for j in range(i):
            G[i, j] *= si * scale[j]
        G[i, i] = one
        G[D, i] *= si
    # After scaling, a singular system's pivots come out as rounding noise of a few D * eps
    # rather than 0: demand more than that.
    ok = _cholesky_solve(G, D, x, 10.0 * D)
    if ok:
        for j in range(D):
            x[j] *= scale[j]
    return ok


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _gather_chunk(other, indices, lo, m, data, other_bias, offset, X, T, sr, srr):
    """Gather ratings ``lo .. lo + m - 1`` and sum their statistics into ``T``, as one
    :func:`gather_stats` and one :func:`gram_lower` would.

    The chunk goes :func:`fastmf.kernels._gram.piece_rows` ratings at a time to the first
    rows of ``X``, each piece's Gram product taken while the piece is in L1, the sums resumed
    from ``T``: ``X`` never leaves L1. Where :func:`fastmf.kernels._pass.sums_first_block`
    says so (float32 with AVX-512), the gather sums the product's first register block
    itself and the product starts at the second. The sums run over the ratings in the same
    order either way, bit for bit.
    Returns ``(sr, srr)`` continued."""
    K = other.shape[1]
    P = piece_rows(X)
    block0 = sums_first_block(X, K)
    first = min(P, m)  # the first piece starts the sums (m = 0 included: zeros)
    sr, srr = gather_stats(other, indices, lo, first, data, other_bias, offset, X, T, sr, srr,
                           0, False, block0)
    gram_lower_range(X, 0, first, K, T, False, block0)
    for p0 in range(first, m, P):  # the next pieces go where the first was, and continue
        p1 = min(p0 + P, m)
        sr, srr = gather_stats(other, indices, lo + p0, p1 - p0, data, other_bias, offset, X,
                               T, sr, srr, 0, True, block0)
        gram_lower_range(X, 0, p1 - p0, K, T, True, block0)
    return sr, srr


@helper(fastmath=_FASTMATH)
def _gather_gram(indptr, indices, data, other, other_bias, offset, row, X, G, T, chunk):
    """The row's statistics in the lower triangle of ``G[:K+2, :K+2]``, with
    ``r' = A_ij - offset - c_j`` for each rating: ``G[:K, :K] = sum v v^T``, ``G[K, :K] =
    sum v``, ``G[K, K] = n``, ``G[K+1, :K] = sum r' v``, ``G[K+1, K] = sum r'``,
    ``G[K+1, K+1] = sum r'^2``. Only the lower triangle is meaningful: some entries right of
    the diagonal are written too, and the columns past ``K + 2``.

    The ratings are taken ``chunk`` at a time (:func:`_gather_chunk`): the lower triangle of
    the factors' ``X^T X`` summed piece by piece, the bias and rating columns summed while
    gathering. A row that fits one chunk writes ``G`` directly; a longer one sums its
    chunks' statistics from ``T``. ``X``, ``G`` and ``T`` come from :func:`_gram_scratch`
    (columns padded to the vector width, ``X``'s padding zero).
    """
    K = other.shape[1]
    start = indptr[row]
    n = indptr[row + 1] - start
    zero = G.dtype.type(0.0)
    sr = zero
    srr = zero
    if n <= chunk:  # one chunk: the statistics go straight into G (no copy from T)
        sr, srr = _gather_chunk(other, indices, start, n, data, other_bias, offset, X, G,
                                sr, srr)
        G[K, K] = n
        G[K + 1, K] = sr
        G[K + 1, K + 1] = srr
        return
    for lo in range(start, start + n, chunk):
        m = min(chunk, start + n - lo)
        sr, srr = _gather_chunk(other, indices, lo, m, data, other_bias, offset, X, T, sr,
                                srr)
        first = lo == start  # rows longer than the scratch: accumulate chunk by chunk
        for a in range(K):
            for c in range(a + 1):
                G[a, c] = T[a, c] if first else G[a, c] + T[a, c]
        for a in range(K, K + 2):
            for c in range(K):
                G[a, c] = T[a, c] if first else G[a, c] + T[a, c]
    G[K, K] = n
    G[K + 1, K] = sr
    G[K + 1, K + 1] = srr


# Inlined: it returns one of its arrays, which a helper (no reference counting) must not.
@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _row_system(G, n, reg, reg_bias, count_reg, count_bias, joint, current, S):
    """The row's normal equations from its ``(K+2)^2`` statistics ``G`` (see _gather_gram).

    ``joint``: ``(u, b)`` from ``(G[:K+1, :K+1] + diag(lam, .., lam, lam_b)) [u; b] =
    G[K+1, :K+1]``, the system left in ``G`` itself (``D = K + 1``). Sequential (the
    tutorial's order): first ``b = (sum r' - current . sum v) / (n + lam_b)`` with the row's
    ``current`` factors, then ``(sum v v^T + lam I) u = sum r' v - b sum v``, written into
    ``S`` (:func:`system_scratch` ``(K)``, ``D = K``).

    Returns ``(A, D, b)``: the system's array (lower triangle, right-hand side in row ``D``),
    its size and the sequential update's bias (the joint one's is the solution's last entry).
    """
    K = current.shape[0]
    dt = G.dtype.type
    lam = reg * dt(n) if count_reg else reg
    lam_b = reg_bias * dt(n) if count_bias else reg_bias
    if joint:
        for k in range(K):
            G[k, k] += lam
        G[K, K] += lam_b
        return G, K + 1, dt(0.0)
    s = G[K + 1, K]
    for k in range(K):
        s -= current[k] * G[K, k]
    b = s / (dt(n) + lam_b)
    for a in range(K):
        for c in range(a + 1):
            S[a, c] = G[a, c]
        S[a, a] += lam
        S[K, a] = G[K + 1, a] - b * G[K, a]
    return S, K, b


@helper(fastmath=_FASTMATH)
def _solve_from_gram(G, n, reg, reg_bias, count_reg, count_bias, joint, current, S, x,
                     scaled=False):
    """Exact block update of one row from its statistics ``G``: :func:`_row_system`, then
    :func:`_cholesky_solve` (or, ``scaled``, :func:`_cholesky_solve_scaled`). ``G`` is
    overwritten.

    Returns ``(ok, b)``; the factors are in ``x[:K]``. ``ok`` is False when the system is not
    positive definite.
    """
    A, D, b = _row_system(G, n, reg, reg_bias, count_reg, count_bias, joint, current, S)
    ok = _cholesky_solve_scaled(A, D, x) if scaled else _cholesky_solve(A, D, x)
    return ok, (x[D - 1] if joint else b)


@njit(cache=True)
def _gram_scratch(chunk, K, dt):
    """One task's scratch for :func:`_gather_gram`: ``X (P, Kp)`` (one piece,
    :func:`fastmf.kernels._gram.piece_rows`, or ``chunk`` rows if fewer), ``G`` (the
    :func:`system_scratch` of the joint ``K + 1`` system) and ``T (K+2, Kp)`` with ``Kp =
    padded(K)``, allocated once per task, never per row. The padding columns of ``X`` stay
    zero (:func:`fastmf.kernels._gram.gram_lower` reads them); ``G`` is wide enough for the
    product and :func:`gather_stats` to write it directly, and for :func:`_cholesky_solve`
    to solve it in place."""
    Kp = padded(K)
    P = min(chunk, piece_rows(np.empty((0, Kp), dtype=dt)))
    return (np.zeros((P, Kp), dtype=dt), system_scratch(K + 1, dt),
            np.zeros((K + 2, Kp), dtype=dt))


@helper(fastmath=_FASTMATH_REDUCE)
def _moved_sse(e, w, m, alpha):
    """``sum_t (e_t - alpha w_t)^2`` in float64 (each difference in ``e``'s dtype): the sum
    of squares of a residual ``e`` that CG kept, moved by its last step ``alpha Z p``."""
    s = 0.0
    for t in range(m):
        d = np.float64(e[t] - alpha * w[t])
        s += d * d
    return s


# A row's fixed cost (scratch set-up, solve, writes) in ratings' worth, when tasks share the
# work: about 300 ns against about 10 ns per rating for a CG row at K = 32 (issue 17).
_ROW_WEIGHT = 32


@njit(cache=True)
def task_spans(indptr, order, n_tasks):
    """``spans`` (int64, ``n_tasks + 1``): task ``t`` takes the rows ``order[spans[t]:
    spans[t + 1]]``, consecutive runs of the list with about equal work (each row's ratings
    plus :data:`_ROW_WEIGHT`).

    Runs rather than every ``n_tasks``-th row: the callers list rows in storage order
    (:func:`fastmf._solver.row_order`), so a task reads its rows' ratings and factors front
    to back, where the hardware prefetcher streams them. Before issue 17's change the rows
    were listed longest first and dealt round-robin, and every row started at an unrelated
    place in arrays of tens of megabytes: the CG user step of the ML-10M shape took 137 ms
    that way against 115 ms in storage order (one thread, Intel Xeon VM). A software hint for
    the next row's first lines recovered part of it (155 -> 136 ms) and brought nothing once
    the rows were in storage order, so it was removed. The schedule never changes a result:
    each row is solved by one task alone."""
    n = order.shape[0]
    total = 0
    for q in range(n):
        total += indptr[order[q] + 1] - indptr[order[q]] + _ROW_WEIGHT
    spans = np.full(n_tasks + 1, n, dtype=np.int64)
    spans[0] = 0
    done = 0
    t = 1
    for q in range(n):
        done += indptr[order[q] + 1] - indptr[order[q]] + _ROW_WEIGHT
        while t < n_tasks and done * n_tasks >= t * total:
            spans[t] = q + 1
            t += 1
    return spans


@njit(cache=True)
def _longest_row(indptr, rows):
    """Ratings of the longest listed row, at least 1 (the rows of a task's scratch)."""
    longest = 1
    for q in range(rows.shape[0]):
        longest = max(longest, indptr[rows[q] + 1] - indptr[rows[q]])
    return longest


@njit(cache=True)
def _gram_chunk(indptr, rows, K):
    """Gather-scratch rows: the longest listed row, capped at :data:`_GRAM_BYTES`."""
    return min(_longest_row(indptr, rows), max(64, _GRAM_BYTES // (4 * padded(K))))


@njit(cache=True)
def _cg_chunk(indptr, rows):
    """CG scratch rows: the longest listed row, capped at :data:`_CG_RESIDENT`."""
    return min(_longest_row(indptr, rows), _CG_RESIDENT)


@njit(cache=True)
def _failures(failed):
    """Total of the per-task counts of failed rows (integers: exact in any order)."""
    return failed.sum()


@helper()
def _write_row(ok, b, x, row, factors, bias):
    """Store a solved row, or NaN when its system was not positive definite."""
    K = factors.shape[1]
    if ok:
        for k in range(K):
            factors[row, k] = x[k]
        bias[row] = b
    else:
        for k in range(K):
            factors[row, k] = np.nan
        bias[row] = np.nan


# Bytes per vector of the batched factorization (fastmf.kernels._cholesky.solve_lanes): a
# batch is this many rows' systems, one per lane.
LANE_BYTES = LANE_VECTOR_BYTES


@njit(cache=True)
def _lanes_scratch(D, W, K, dt):
    """A task's batch of ``W`` systems of size ``D`` (see :func:`_lane_add`): ``(B, tol, Gs,
    Ss, rows, b, count)``: the packed systems and their pivot tolerances; each slot's
    statistics and sequential system; the slots' rows and sequential biases; the number of
    rows added."""
    return (np.zeros((D * (D + 1) // 2 + D + W, W), dtype=dt), np.zeros(W, dtype=dt),
            np.zeros((W, K + 5, padded(K + 2)), dtype=dt),
            np.zeros((W, K + 4, padded(K + 1)), dtype=dt),
            np.empty(W, dtype=np.int64), np.empty(W, dtype=dt), np.zeros(1, dtype=np.int64))


@helper(fastmath=_FASTMATH)
def _lane_add(lanes, indptr, indices, data, other, other_bias, mu, reg, reg_bias, count_reg,
              count_bias, joint, row, factors, X, T, chunk):
    """Gather ``row`` and form its system (:func:`_row_system`) in the next slot, with its
    pivot tolerance as :func:`_cholesky_solve` sets it. True when the batch is full."""
    B, tol, Gs, Ss, rows, bs, count = lanes
    lane = count[0]
    n = indptr[row + 1] - indptr[row]
    _gather_gram(indptr, indices, data, other, other_bias, mu, row, X, Gs[lane], T, chunk)
    A, D, b = _row_system(Gs[lane], n, reg, reg_bias, count_reg, count_bias, joint,
                          factors[row], Ss[lane])
    biggest = A.dtype.type(0.0)
    for a in range(D):
        biggest = max(biggest, A[a, a])
    tol[lane] = np.finfo(A.dtype).eps * biggest
    rows[lane] = row
    bs[lane] = b
    count[0] = lane + 1
    return lane + 1 == B.shape[1]


@helper(fastmath=_FASTMATH)
def _lanes_solve(lanes, indptr, indices, data, other, other_bias, mu, reg, reg_bias,
                 count_reg, count_bias, joint, factors, bias, sse, X, G, T, chunk, S, x):
    """Solve the batch's systems (:func:`fastmf.kernels._cholesky.solve_lanes`) and write
    each row (and its share of the objective) as :func:`solve_rows` does; a lane whose
    system failed is gathered again and retried alone, Jacobi-scaled. Empties the batch;
    returns the number of rows that failed."""
    B, tol, Gs, Ss, rows, bs, count = lanes
    m = count[0]
    if m == 0:
        return 0
    K = factors.shape[1]
    D = K + 1 if joint else K
    pack_lanes(Gs if joint else Ss, D, B)  # lanes past m: earlier rows' systems, or zeros
    bad = solve_lanes(B, D, tol)
    top = D * (D + 1) // 2
    n_failed = 0
    for lane in range(m):
        row = rows[lane]
        n = indptr[row + 1] - indptr[row]
        if (bad >> lane) & 1:
            _gather_gram(indptr, indices, data, other, other_bias, mu, row, X, G, T, chunk)
            ok, b = _solve_from_gram(G, n, reg, reg_bias, count_reg, count_bias, joint,
                                     factors[row], S, x, True)
        else:
            ok = True
            for k in range(D):
                x[k] = B[top + k, lane]
            b = x[K] if joint else bs[lane]
        _write_row(ok, b, x, row, factors, bias)
        if sse.shape[0] == 0:
            pass
        elif not ok:
            sse[row] = np.nan
        else:
            sse[row] = residual_sse(other, indices, indptr[row], data, other_bias, mu, n, K,
                                    x, b)
        if not ok:
            n_failed += 1
    count[0] = 0
    return n_failed


@njit(parallel=True, cache=True)
def solve_rows(
    indptr, indices, data, other, other_bias, mu, reg, reg_bias, count_reg, count_bias,
    joint, order, n_tasks, factors, bias, sse,
):
    """One ALS half-step: exact update of every listed row's factors and bias.

    For row ``i`` with ratings ``A_ij`` (``j`` in ``indices[indptr[i]:indptr[i+1]]``) and the
    other side's factors ``V = other`` and biases ``c = other_bias``, this minimizes

        sum_j (A_ij - mu - b_i - c_j - u_i.v_j)^2 + lam_i |u_i|^2 + lam_b_i b_i^2

    with ``lam_i = reg * n_i`` if ``count_reg`` else ``reg`` and likewise ``lam_b_i``.
    ``joint=True`` solves ``(u_i, b_i)`` as one ``(K+1)`` system; ``joint=False`` is the
    tutorial's order: ``b_i`` from the current ``u_i``, then ``u_i`` given that ``b_i``. Both are
    exact block minimizers, so the objective never increases.

    Parameters
    ----------
    indptr : int64 (R+1,);  indices : int32 (nnz,);  data : float (nnz,)
        Compressed rows (CSR for users, CSC for items) of the rating matrix.
    other : float (S, K), C-contiguous;  other_bias : float (S,)
        The fixed side's factors and biases.
    mu, reg, reg_bias : scalars of the factors' dtype.
    count_reg, count_bias : bool
        Scale the factor / bias penalty by the row's rating count (ALS-WR).
    joint : bool
    order : int64 (n_rows,)
        Rows to update (the estimators list them in storage order); each task takes a run of
        them (:func:`task_spans`). Rows with no ratings must not be listed (they keep their
        factors and bias).
    n_tasks : int
        Number of parallel tasks; affects the schedule only, never the result.
    factors : float (R, K), written in place;  bias : float (R,), written in place.
    sse : float64 (R,) or (0,), written in place
        If not empty, ``sse[i]`` receives row ``i``'s sum of squared residuals after its
        update (in float64; each residual in the factors' dtype): after the item half-step,
        their sum plus the penalties is the objective ``J`` of the whole iteration, with no
        second pass over the ratings. Unlisted rows are not written; failed rows get NaN.

    Returns
    -------
    int
        Number of rows whose system was not positive definite; those rows are set to NaN.

    Races: none -- each row is written by the one task that owns it.
    """
    K = factors.shape[1]
    dt = factors.dtype
    failed = np.zeros(n_tasks, dtype=np.int64)
    chunk = _gram_chunk(indptr, order, K)
    W = LANE_BYTES // factors.itemsize
    D = K + 1 if joint else K
    spans = task_spans(indptr, order, n_tasks)
    for task in prange(n_tasks):
        X, G, T = _gram_scratch(chunk, K, dt)
        S = system_scratch(K, dt)
        x = task_vector(K + 1, dt)
        u64 = task_vector(K, np.float64)
        lanes = _lanes_scratch(D, W, K, dt)
        for q in range(spans[task], spans[task + 1]):
            row = order[q]
            n = indptr[row + 1] - indptr[row]
            if n <= chunk:  # solved with W - 1 other rows, one per vector lane
                if _lane_add(lanes, indptr, indices, data, other, other_bias, mu, reg,
                             reg_bias, count_reg, count_bias, joint, row, factors, X, T,
                             chunk):
                    failed[task] += _lanes_solve(lanes, indptr, indices, data, other,
                                                 other_bias, mu, reg, reg_bias, count_reg,
                                                 count_bias, joint, factors, bias, sse, X, G,
                                                 T, chunk, S, x)
                continue
            # A row longer than a chunk: solved alone, its objective from _row_sse
            _gather_gram(indptr, indices, data, other, other_bias, mu, row, X, G, T, chunk)
            ok, b = _solve_from_gram(G, n, reg, reg_bias, count_reg, count_bias, joint,
                                     factors[row], S, x)
            if not ok:  # retry Jacobi-scaled (the plain pass keeps the common case's bits)
                _gather_gram(indptr, indices, data, other, other_bias, mu, row, X, G, T,
                             chunk)
                ok, b = _solve_from_gram(G, n, reg, reg_bias, count_reg, count_bias, joint,
                                         factors[row], S, x, True)
            _write_row(ok, b, x, row, factors, bias)
            if sse.shape[0] == 0:
                pass
            elif not ok:
                sse[row] = np.nan
            else:
                sse[row] = _row_sse(indptr, indices, data, factors, bias, other, other_bias,
                                    mu, row, u64)
            if not ok:
                failed[task] += 1
        failed[task] += _lanes_solve(lanes, indptr, indices, data, other, other_bias, mu,
                                     reg, reg_bias, count_reg, count_bias, joint, factors,
                                     bias, sse, X, G, T, chunk, S, x)
    return _failures(failed)


@njit(parallel=True, cache=True)
def normal_equations(indptr, indices, data, other, other_bias, mu, rows, n_tasks, out):
    """``out[q]`` = the statistics of row ``rows[q]`` (see ``_gather_gram``), packed.

    The ``(K+2)^2`` block is symmetric, so ``out`` has ``(K+2)(K+3)/2`` columns: its lower
    triangle row by row (:func:`_pack_lower`) -- half the bytes the distributed item step
    sends (issue 17). That step computes these per user block and sums them per item: the sum
    over blocks is the item's full statistics, which :func:`solve_normal_equations` solves.
    Rows with no ratings get zeros. Races: none -- ``out[q]`` is written by one task.
    """
    K = other.shape[1]
    dt = out.dtype
    chunk = _gram_chunk(indptr, rows, K)
    for task in prange(n_tasks):
        X, G, T = _gram_scratch(chunk, K, dt)
        for q in range(task, rows.shape[0], n_tasks):
            row = rows[q]
            if indptr[row + 1] == indptr[row]:
                out[q] = 0.0
                continue
            _gather_gram(indptr, indices, data, other, other_bias, mu, row, X, G, T, chunk)
            _pack_lower(G, K + 2, out[q])


@helper()
def _pack_lower(G, n, packed):
    """``packed`` = the lower triangle of ``G[:n, :n]``, diagonal included, row by row."""
    p = 0
    for a in range(n):
        for c in range(a + 1):
            packed[p] = G[a, c]
            p += 1


@helper()
def _unpack_lower(packed, n, G):
    """The symmetric ``G[:n, :n]`` from its packed lower triangle (inverse of
    :func:`_pack_lower`)."""
    p = 0
    for a in range(n):
        for c in range(a + 1):
            G[a, c] = packed[p]
            G[c, a] = packed[p]
            p += 1


@njit(parallel=True, cache=True)
def solve_normal_equations(
    stats, counts, reg, reg_bias, count_reg, count_bias, joint, n_tasks, factors, bias,
):
    """Solve each row from summed statistics ``stats[r]`` (packed as :func:`normal_equations`
    writes them) with ``counts[r]`` ratings, as :func:`solve_rows` would from the ratings
    themselves. Rows with no ratings keep their factors. ``factors``/``bias`` hold the
    current values (used by the sequential update) and receive the new ones. Returns the
    number of failed rows (set to NaN).

    Races: none -- row ``r`` is written by the one task that owns it.
    """
    K = factors.shape[1]
    dt = factors.dtype
    R = factors.shape[0]
    failed = np.zeros(n_tasks, dtype=np.int64)
    for task in prange(n_tasks):
        G = system_scratch(K + 1, dt)
        S = system_scratch(K, dt)
        x = task_vector(K + 1, dt)
        for r in range(task, R, n_tasks):
            if counts[r] == 0:
                continue
            _unpack_lower(stats[r], K + 2, G)
            ok, b = _solve_from_gram(G, counts[r], reg, reg_bias, count_reg, count_bias, joint,
                                     factors[r], S, x)
            if not ok:  # retry Jacobi-scaled, as solve_rows does
                _unpack_lower(stats[r], K + 2, G)
                ok, b = _solve_from_gram(G, counts[r], reg, reg_bias, count_reg, count_bias,
                                         joint, factors[r], S, x, True)
            _write_row(ok, b, x, r, factors, bias)
            if not ok:
                failed[task] += 1
    return _failures(failed)


# Inlined (numba IR): a call passes each of its eight arrays as its fields on the stack, and
# the pass is called three to four times per row. Inlining it and _cg_one_row made a CG
# iteration about 10 % faster (ML-1M shape, K = 32, one thread, Zen 4, min of 25 in three
# interleaved rounds: 26.6-28.4 -> 23.4-25.3 ms; issue 17).
@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _normal_pass(indptr, indices, data, other, other_bias, offset, joint, row, v, residual,
                 curvature, out, q):
    """One pass over the row's ratings: ``out = Z^T (r - Z v)`` if ``residual`` else
    ``out = Z^T Z v``, with ``Z = [v_j, (1)]`` and ``r = A_ij - offset - c_j``, keeping the
    per-rating vector ``q = r - Z v`` (or ``Z v``) of the current chunk of ``q.shape[0]``
    ratings (for a row that fits, the whole vector, which the objective reuses). The pass is
    :func:`fastmf.kernels._pass.rows_pass`: it reads the other side's rows ``v_j`` in place,
    with explicit SIMD vectors, in an order fixed at compile time (not BLAS's, which depended
    on the process and the thread count); short rows pay no per-call overhead.

    With ``curvature`` it returns ``|Z v|^2`` instead and leaves ``out`` alone: the dot
    products without the axpys. The last CG step needs only ``p^T A p = |Z p|^2 +
    p^T Lambda p``, not ``A p`` (the residual it would update is discarded), so that step costs
    half a pass. Otherwise it returns 0.

    ``v`` and ``out`` have at least :func:`padded` ``(K)`` entries, finite.
    """
    K = other.shape[1]
    start = indptr[row]
    n = indptr[row + 1] - start
    CH = q.shape[0]
    zero = out.dtype.type(0.0)
    if not curvature:
        for a in range(out.shape[0]):
            out[a] = zero
    vb = v[K] if joint else zero
    total = zero
    for lo in range(start, start + n, CH):
        total += rows_pass(other, indices, lo, min(CH, start + n - lo), data, other_bias,
                           offset, v, q, out, vb, residual, curvature)
    if curvature:
        return total
    out[K] += total  # the bias column's sum (out[K:] got + 0 from the vectors' padding)
    return zero


@helper(fastmath=_FASTMATH)
def _dot(a, b, D):
    """``sum_{k < D} a[k] b[k]`` as four interleaved partial sums, in a fixed order.

    The CG kernels' O(K) reductions may not be reassociated (see the note above
    :func:`_cg_one_row`), and one sequential sum waits a full add latency per entry: two of them
    per CG step cost about 70 ns per row at K = 32. Four independent sums wait a quarter of
    that, in an order that is the same on every run."""
    zero = a.dtype.type(0.0)
    s0 = zero
    s1 = zero
    s2 = zero
    s3 = zero
    k = 0
    while k + 4 <= D:
        s0 += a[k] * b[k]
        s1 += a[k + 1] * b[k + 1]
        s2 += a[k + 2] * b[k + 2]
        s3 += a[k + 3] * b[k + 3]
        k += 4
    while k < D:
        s0 += a[k] * b[k]
        k += 1
    return (s0 + s1) + (s2 + s3)


@helper(fastmath=_FASTMATH)
def _cg_update(x, res, p, Ap, D, rs_old):
    """One conjugate-gradient step given ``Ap = A p`` (first ``D`` entries): ``x += alpha p``,
    ``res -= alpha Ap``, ``p = res + beta p``. Returns ``(ok, |res|^2, alpha)``; ``ok`` is
    False when the curvature ``p.Ap`` is not positive. Shared by the explicit and implicit
    CG kernels. No reassociation (see the note below)."""
    zero = x.dtype.type(0.0)
    pAp = _dot(p, Ap, D)
    if not pAp > zero:
        return False, rs_old, zero
    alpha = rs_old / pAp
    for a in range(D):
        x[a] += alpha * p[a]
        res[a] -= alpha * Ap[a]
    rs_new = _dot(res, res, D)
    beta = rs_new / rs_old
    for a in range(D):
        p[a] = res[a] + beta * p[a]
    return True, rs_new, alpha


@helper(fastmath=_FASTMATH)
def _cg_last_step(x, p, pAp, D, rs_old):
    """The last CG step given only the curvature ``pAp = p^T A p``: ``x += alpha p``. Its
    residual and next direction would be discarded, so ``A p`` is never formed. Returns
    False when the curvature is not positive. Shared by the explicit and implicit kernels."""
    if not pAp > x.dtype.type(0.0):
        return False
    alpha = rs_old / pAp
    for a in range(D):
        x[a] += alpha * p[a]
    return True


# Inlined into solve_rows_cg, as _normal_pass is into it.
# No reassociation here: these O(K) loops store into the scratch vectors they reduce over, so
# LLVM guards their vectorized form with a run-time alias check and falls back to a scalar
# loop, which with reassociation sums in another order -- the result then depended on where
# the allocator put each task's scratch (the thread count and the run, not just the data).
@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _cg_one_row(
    indptr, indices, data, other, other_bias, mu, reg, reg_bias, count_reg, count_bias,
    joint, cg_steps, row, factors, bias, x, res, p, Ap, e, w, want_sse, u64,
):
    """A few conjugate-gradient steps on one row's normal equations, warm-started.

    Returns ``(ok, sse)``: False when a curvature was not positive; with ``want_sse``, the
    row's sum of squared residuals after the update (else 0). A resident row keeps its
    residual ``e = r - Z x`` from the first pass and moves it by each step's ``alpha Z p``
    (``w``, kept by the pass that computed it): O(n) per step instead of an objective pass of
    O(n K) (issue 17)."""
    K = factors.shape[1]
    start = indptr[row]
    n = indptr[row + 1] - start
    dt = factors.dtype.type
    zero = dt(0.0)
    lam = reg * dt(n) if count_reg else reg
    lam_b = reg_bias * dt(n) if count_bias else reg_bias
    D = K + 1 if joint else K

    if not joint:  # the bias exactly, as in the Cholesky path, then CG on u alone
        s = zero
        for q_ in range(start, start + n):
            j = indices[q_]
            dot = zero
            for k in range(K):
                dot += factors[row, k] * other[j, k]
            s += data[q_] - mu - other_bias[j] - dot
        b_row = s / (dt(n) + lam_b)
        bias[row] = b_row
    else:
        b_row = zero
    offset = mu + b_row
    resident = n <= e.shape[0]  # e and w hold the whole row's residual and Z p

    for k in range(K):
        x[k] = factors[row, k]
    x[K] = bias[row] if joint else zero
    _normal_pass(indptr, indices, data, other, other_bias, offset, joint, row, x, True, False,
                 res, e)
    track = want_sse and resident
    alpha = zero
    for k in range(K):
        res[k] -= lam * x[k]
    if joint:
        res[K] -= lam_b * x[K]

    for a in range(D):
        p[a] = res[a]
    rs_old = _dot(res, res, D)
    if not joint:
        p[K] = zero
    for step in range(cg_steps):
        if not rs_old > 0.0:  # converged exactly (or NaN, which the caller's guard reports)
            break
        if step == cg_steps - 1:  # the last step: only p^T A p, then x += alpha p
            pAp = _normal_pass(indptr, indices, data, other, other_bias, offset, joint, row,
                               p, False, True, Ap, w)
            pAp += lam * _dot(p, p, K)
            if joint:
                pAp += lam_b * p[K] * p[K]
            if not _cg_last_step(x, p, pAp, D, rs_old):
                return False, 0.0
            alpha = rs_old / pAp  # the step _cg_last_step took; w holds its Z p
            break
        _normal_pass(indptr, indices, data, other, other_bias, offset, joint, row, p, False,
                     False, Ap, w)
        for k in range(K):
            Ap[k] += lam * p[k]
        if joint:
            Ap[K] += lam_b * p[K]
        ok, rs_old, step_alpha = _cg_update(x, res, p, Ap, D, rs_old)
        if not ok:
            return False, 0.0
        if track:
            for t in range(n):
                e[t] -= step_alpha * w[t]
    for k in range(K):
        factors[row, k] = x[k]
    if joint:
        bias[row] = x[K]
    if not want_sse:
        return True, 0.0
    if track:  # alpha is the last step's; 0 if CG stopped before it (w is then stale)
        return True, _moved_sse(e, w, n, alpha) if alpha != zero else _moved_sse(e, e, n, zero)
    return True, _row_sse(indptr, indices, data, factors, bias, other, other_bias, mu, row, u64)


@njit(parallel=True, cache=True)
def solve_rows_cg(
    indptr, indices, data, other, other_bias, mu, reg, reg_bias, count_reg, count_bias,
    joint, order, n_tasks, cg_steps, factors, bias, sse,
):
    """One ALS half-step by conjugate gradient: ``cg_steps`` steps per row, warm-started.

    Same arguments, objective and outputs (``sse`` included) as :func:`solve_rows`, plus
    ``cg_steps``. The row's
    factors are gathered once into contiguous scratch and ``(Z^T Z + Lambda) p`` is computed
    as ``Z^T (Z p)`` in one fused pass over the gathered rows, never forming the Gram
    matrix: each step costs ``O(n_i K)`` instead of ``O(n_i K^2)``. It is not an
    exact block minimizer: a step never increases ``J`` for that row (CG decreases the
    quadratic monotonically), but a few steps stop short of the minimum, which the next
    iteration continues from.

    Returns the number of rows where the curvature ``p^T A p`` was not positive (set to NaN).

    Races: none -- each row is written by the one task that owns it.
    """
    K = factors.shape[1]
    dt = factors.dtype
    failed = np.zeros(n_tasks, dtype=np.int64)
    chunk = _cg_chunk(indptr, order)
    want_sse = sse.shape[0] > 0
    Kp = padded(K)
    V = max(K + 1, Kp)
    spans = task_spans(indptr, order, n_tasks)
    for task in prange(n_tasks):
        # rows_pass reads and writes whole vectors: the entries past K + 1 stay zero
        x, res, p, Ap, e, w, u64 = cg_scratch(V, chunk, K, dt)
        for q in range(spans[task], spans[task + 1]):
            row = order[q]
            ok, row_sse = _cg_one_row(
                indptr, indices, data, other, other_bias, mu, reg, reg_bias, count_reg,
                count_bias, joint, cg_steps, row, factors, bias, x, res, p, Ap, e, w,
                want_sse, u64,
            )
            if not ok:
                failed[task] += 1
                for k in range(K):
                    factors[row, k] = np.nan
                bias[row] = np.nan
                row_sse = np.nan
            if want_sse:
                sse[row] = row_sse
    return _failures(failed)
