"""Half-step kernels of implicit-feedback ALS (Hu, Koren & Volinsky 2008), numba only.

For row ``u`` with observed items ``i`` and confidences ``c_ui = 1 + alpha r_ui`` (the
caller computes them), the exact update is

    x_u = (Y^T Y + sum_i (c_ui - 1) y_i y_i^T + reg I)^-1  sum_i c_ui p_ui y_i

with ``p_ui = 1[r_ui > 0]``. ``Y^T Y`` (all items, the unobserved pairs' share) is computed
once per half-step by the caller, so a row costs ``O(n_u K^2)`` (Cholesky) or ``O(n_u K)`` per
conjugate-gradient step. See docs/design.md section 3.
"""

import numpy as np
from numba import njit, prange

from fastmf.kernels._gram import gram_lower, padded
from fastmf.kernels._jit import helper
from fastmf.kernels._prefetch import DISTANCE, prefetch_row
from fastmf.kernels.als import (
    _FASTMATH,
    _FASTMATH_REDUCE,
    _cg_chunk,
    _cg_last_step,
    _cg_update,
    _cholesky_solve,
    _failures,
    cg_scratch,
    system_scratch,
    task_spans,
    task_vector,
)

# Ratings per X^T X product (gram_lower): bounded scratch for long rows.
_CHUNK = 256
# Tasks of the objective; the count fixes the schedule only (as objective._TASKS).
_LOSS_TASKS = 64


@helper(fastmath=_FASTMATH)
def _implicit_system(indptr, indices, conf, pref, other, YtY, reg, row, X, T, G):
    """``G[:K, :K] = Y^T Y + reg I + sum (c - 1) y y^T`` (lower triangle) and ``G[K, :K] =
    sum c p y``. ``X (CH, Kp)`` and ``T (K, Kp)`` are scratch with ``Kp = padded(K)`` columns,
    ``X``'s padding zero."""
    K = other.shape[1]
    one = G.dtype.type(1.0)
    start = indptr[row]
    n = indptr[row + 1] - start
    for a in range(K):
        for b in range(a + 1):  # _cholesky_solve reads the lower triangle only
            G[a, b] = YtY[a, b]
        G[a, a] += reg
        G[K, a] = 0.0
    CH = X.shape[0]
    for lo in range(start, start + n, CH):
        m = min(CH, start + n - lo)
        for t in range(m):
            if lo + t + DISTANCE < indices.shape[0]:
                prefetch_row(other, indices[lo + t + DISTANCE])
            j = indices[lo + t]
            c = conf[lo + t]
            w = np.sqrt(c - one)
            cp = c * pref[lo + t]
            for k in range(K):
                X[t, k] = w * other[j, k]
                G[K, k] += cp * other[j, k]
        gram_lower(X, m, K, T)
        for a in range(K):
            for b in range(a + 1):
                G[a, b] += T[a, b]


@njit(parallel=True, cache=True)
def implicit_rows(indptr, indices, conf, pref, other, YtY, reg, order, n_tasks, factors, obs):
    """One implicit-ALS half-step by Cholesky: the exact update of every listed row.

    Parameters
    ----------
    indptr : int64 (R+1,);  indices : int32 (nnz,)
        Compressed rows (CSR for users, CSC for items) of the interaction matrix.
    conf : float (nnz,)
        Confidence ``c >= 1`` of each observed pair.
    pref : float (nnz,)
        Preference ``p`` of each observed pair (1 where ``r > 0``, else 0).
    other : float (S, K);  YtY : float (K, K)
        The fixed side's factors and their Gram matrix ``other^T other``.
    reg : scalar of the factors' dtype
    order : int64 (n_rows,)
        Rows to update; each task takes a run of them (:func:`fastmf.kernels.als.task_spans`).
    n_tasks : int
    factors : float (R, K), written in place
    obs : float64 (R,) or (0,), written in place
        If not empty, ``obs[i]`` receives row ``i``'s share of the observed pairs' term of the
        objective after its update, ``sum [c (p - s)^2 - s^2]`` (:func:`_row_loss`): after
        the item half-step, their sum plus the Gram matrices' terms is the objective of the
        iteration (issue 17). Failed rows get NaN.

    Returns
    -------
    int
        Rows whose system was not positive definite (set to NaN).

    Races: none -- each row is written by the one task that owns it.
    """
    K = factors.shape[1]
    dt = factors.dtype
    failed = np.zeros(n_tasks, dtype=np.int64)
    spans = task_spans(indptr, order, n_tasks)
    for task in prange(n_tasks):
        X = np.zeros((_CHUNK, padded(K)), dtype=dt)
        T = np.zeros((K, padded(K)), dtype=dt)
        G = system_scratch(K, dt)
        x = task_vector(K + 1, dt)
        x64 = task_vector(K, np.float64)
        for q in range(spans[task], spans[task + 1]):
            row = order[q]
            _implicit_system(indptr, indices, conf, pref, other, YtY, reg, row, X, T, G)
            if _cholesky_solve(G, K, x):
                for k in range(K):
                    factors[row, k] = x[k]
                if obs.shape[0] > 0:  # X holds weighted rows: read the factors again
                    obs[row] = _row_loss(indptr, indices, conf, pref, factors, other, row, x64)
            else:
                failed[task] += 1
                for k in range(K):
                    factors[row, k] = np.nan
                if obs.shape[0] > 0:
                    obs[row] = np.nan
    return _failures(failed)


@helper(fastmath=_FASTMATH_REDUCE)
def _apply(indptr, indices, conf, pref, other, gathered, YtY, reg, row, v, residual,
           curvature, out, q):
    """``out = A v`` with ``A = Y^T Y + reg I + sum (c - 1) y y^T``, without forming the
    sum; with ``residual``, ``out = b - A v`` with ``b = sum c p y`` in the same single pass
    over the row's items (per item one dot product and one axpy). With ``curvature`` it
    returns ``v^T A v`` (the items' dot products without their axpys: all the last CG step
    needs, as in ``als._normal_pass``), ``out`` then only scratch; otherwise it returns 0.

    ``gathered``: ``other`` is the row's own block (``other[t]`` = the factors of its t-th
    item, gathered once for all the CG passes: contiguous reads instead of a random access
    per item and pass), and ``q[t] = y_t . v`` is kept (the objective tracks the scores
    with it); else ``other`` is the whole side, indexed through ``indices``.
    Reduces into registers only (no store inside a reduction loop), so the order is fixed
    at compile time (docs/design.md section 5).
    """
    K = other.shape[1]
    dt = out.dtype.type  # keep float32 arithmetic in float32 (a 0.0 literal would promote)
    one = dt(1.0)
    total = dt(0.0)
    # (Y^T Y + reg I) v as a sum of columns (Y^T Y is symmetric: column b is row b), so no
    # dot product, and no horizontal sum, per entry. With the four-item loop below: ML-1M
    # shape, K = 64, one thread, CG iteration 90-94 -> 86-89 ms (issue 17).
    for a in range(K):
        out[a] = reg * v[a]
    for b in range(K):
        vb = v[b]
        for a in range(K):
            out[a] += YtY[b, a] * vb
    if curvature:
        for a in range(K):
            total += v[a] * out[a]
    elif residual:
        for a in range(K):
            out[a] = -out[a]
    start = indptr[row]
    end = indptr[row + 1]
    p = start
    # Four items at a time, as als._normal_pass: four independent dot products, and out[]
    # loaded and stored once per four items instead of once per item.
    while p + 4 <= end:
        j0 = p - start if gathered else indices[p]
        j1 = p + 1 - start if gathered else indices[p + 1]
        j2 = p + 2 - start if gathered else indices[p + 2]
        j3 = p + 3 - start if gathered else indices[p + 3]
        d0 = dt(0.0)
        d1 = dt(0.0)
        d2 = dt(0.0)
        d3 = dt(0.0)
        for k in range(K):
            vk = v[k]
            d0 += other[j0, k] * vk
            d1 += other[j1, k] * vk
            d2 += other[j2, k] * vk
            d3 += other[j3, k] * vk
        if gathered:
            q[p - start] = d0
            q[p + 1 - start] = d1
            q[p + 2 - start] = d2
            q[p + 3 - start] = d3
        c0 = conf[p] - one
        c1 = conf[p + 1] - one
        c2 = conf[p + 2] - one
        c3 = conf[p + 3] - one
        if curvature:
            total += c0 * d0 * d0 + c1 * d1 * d1 + c2 * d2 * d2 + c3 * d3 * d3
        else:
            w0 = c0 * d0
            w1 = c1 * d1
            w2 = c2 * d2
            w3 = c3 * d3
            if residual:
                w0 = conf[p] * pref[p] - w0
                w1 = conf[p + 1] * pref[p + 1] - w1
                w2 = conf[p + 2] * pref[p + 2] - w2
                w3 = conf[p + 3] * pref[p + 3] - w3
            for k in range(K):
                out[k] += (w0 * other[j0, k] + w1 * other[j1, k] + w2 * other[j2, k]
                           + w3 * other[j3, k])
        p += 4
    while p < end:
        j = p - start if gathered else indices[p]
        d = dt(0.0)
        for k in range(K):
            d += other[j, k] * v[k]
        if gathered:
            q[p - start] = d
        c = conf[p]
        if curvature:
            total += (c - one) * d * d
        else:
            w = c * pref[p] - (c - one) * d if residual else (c - one) * d
            for k in range(K):
                out[k] += w * other[j, k]
        p += 1
    return total


@helper(fastmath=_FASTMATH)
def _cg_row(indptr, indices, conf, pref, other, YtY, reg, cg_steps, row, factors, X, x, r,
            p, Ap, s, w, want_obs, x64):
    """``cg_steps`` conjugate-gradient steps on one row's system, warm-started. A row that
    fits the scratch ``X`` is gathered into it once and read from there by every pass.

    Returns ``(ok, obs)``: with ``want_obs``, the row's observed-pairs term after the update
    (else 0). A gathered row keeps its scores ``s = Y x`` from the first pass and moves them
    by each step's ``alpha Y p`` (``w``, kept by the pass that computed it): O(n) per step
    instead of an objective pass of O(n K) (issue 17, as the explicit CG kernel)."""
    K = factors.shape[1]
    dt = factors.dtype.type
    zero = dt(0.0)
    start = indptr[row]
    n = indptr[row + 1] - start
    gathered = n <= X.shape[0]
    Z = X if gathered else other
    if gathered:
        for t in range(n):
            if start + t + DISTANCE < indices.shape[0]:
                prefetch_row(other, indices[start + t + DISTANCE])
            j = indices[start + t]
            for k in range(K):
                X[t, k] = other[j, k]
    for k in range(K):
        x[k] = factors[row, k]
    _apply(indptr, indices, conf, pref, Z, gathered, YtY, reg, row, x, True, False, r, s)
    track = want_obs and gathered
    alpha = zero
    rs_old = zero
    for k in range(K):
        p[k] = r[k]
        rs_old += r[k] * r[k]
    for step in range(cg_steps):
        if not rs_old > zero:
            break
        if step == cg_steps - 1:  # the last step needs only p^T A p
            pAp = _apply(indptr, indices, conf, pref, Z, gathered, YtY, reg, row, p, False, True,
                         Ap, w)
            if not _cg_last_step(x, p, pAp, K, rs_old):
                return False, 0.0
            alpha = rs_old / pAp  # the step _cg_last_step took; w holds its Y p
            break
        _apply(indptr, indices, conf, pref, Z, gathered, YtY, reg, row, p, False, False, Ap,
               w)
        ok, rs_old, step_alpha = _cg_update(x, r, p, Ap, K, rs_old)
        if not ok:
            return False, 0.0
        if track:
            for t in range(n):
                s[t] += step_alpha * w[t]
    for k in range(K):
        factors[row, k] = x[k]
    if not want_obs:
        return True, 0.0
    if track:  # alpha is the last step's; 0 if CG stopped before it (w is then stale)
        return True, _moved_obs(conf, pref, start, s, w if alpha != zero else s, n, alpha)
    return True, _row_loss(indptr, indices, conf, pref, factors, other, row, x64)


@helper(fastmath=_FASTMATH_REDUCE)
def _moved_obs(conf, pref, start, s, w, n, alpha):
    """``sum_t [c (p - s'_t)^2 - s'_t^2]`` in float64 with ``s' = s + alpha w`` (each in
    ``s``'s dtype): the observed-pairs term of a row whose scores CG kept, moved by its last
    step. Reads only (reassociation is safe: fixed order)."""
    acc = 0.0
    for t in range(n):
        st = np.float64(s[t] + alpha * w[t])
        e = np.float64(pref[start + t]) - st
        acc += np.float64(conf[start + t]) * e * e - st * st
    return acc


@njit(parallel=True, cache=True)
def implicit_rows_cg(indptr, indices, conf, pref, other, YtY, reg, order, n_tasks, cg_steps,
                     factors, obs):
    """One implicit-ALS half-step by ``cg_steps`` warm-started conjugate-gradient steps per
    row (Takacs et al. 2011): the same arguments and outputs as :func:`implicit_rows`
    (``obs`` included) plus ``cg_steps``; each step costs ``O(n_u K + K^2)``. Not an exact
    minimizer: a step never increases the row's quadratic, and the next half-step continues
    from it.

    Races: none -- each row is written by the one task that owns it.
    """
    K = factors.shape[1]
    dt = factors.dtype
    failed = np.zeros(n_tasks, dtype=np.int64)
    chunk = _cg_chunk(indptr, order)
    want_obs = obs.shape[0] > 0
    spans = task_spans(indptr, order, n_tasks)
    for task in prange(n_tasks):
        X = np.empty((chunk, K), dtype=dt)
        x, r, p, Ap, s, w, x64 = cg_scratch(K, chunk, K, dt)
        for q in range(spans[task], spans[task + 1]):
            row = order[q]
            ok, row_obs = _cg_row(indptr, indices, conf, pref, other, YtY, reg, cg_steps, row,
                                  factors, X, x, r, p, Ap, s, w, want_obs, x64)
            if not ok:
                failed[task] += 1
                for k in range(K):
                    factors[row, k] = np.nan
                row_obs = np.nan
            if want_obs:
                obs[row] = row_obs
    return _failures(failed)


@helper(fastmath=_FASTMATH_REDUCE)
def _row_loss(indptr, indices, conf, pref, U, V, u, x):
    """Row ``u``'s share ``sum_i [c (p - s)^2 - s^2]``, ``s = x_u . y_i``, in float64; ``x``
    is float64 ``(K,)`` scratch for ``x_u``, converted once. Four items at a time: four
    independent dot products hide the latency of their horizontal sums, as the explicit
    objective's ``_row_sse`` does. Reads only, so reassociation is safe (fixed order)."""
    K = U.shape[1]
    for k in range(K):
        x[k] = np.float64(U[u, k])
    acc = 0.0
    q = indptr[u]
    end = indptr[u + 1]
    while q + 4 <= end:
        j0 = indices[q]
        j1 = indices[q + 1]
        j2 = indices[q + 2]
        j3 = indices[q + 3]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for k in range(K):
            xk = x[k]
            s0 += xk * np.float64(V[j0, k])
            s1 += xk * np.float64(V[j1, k])
            s2 += xk * np.float64(V[j2, k])
            s3 += xk * np.float64(V[j3, k])
        e0 = np.float64(pref[q]) - s0
        e1 = np.float64(pref[q + 1]) - s1
        e2 = np.float64(pref[q + 2]) - s2
        e3 = np.float64(pref[q + 3]) - s3
        acc += (np.float64(conf[q]) * e0 * e0 - s0 * s0
                + np.float64(conf[q + 1]) * e1 * e1 - s1 * s1
                + np.float64(conf[q + 2]) * e2 * e2 - s2 * s2
                + np.float64(conf[q + 3]) * e3 * e3 - s3 * s3)
        q += 4
    while q < end:
        j = indices[q]
        s = 0.0
        for k in range(K):
            s += x[k] * np.float64(V[j, k])
        e = np.float64(pref[q]) - s
        acc += np.float64(conf[q]) * e * e - s * s
        q += 1
    return acc


@njit(parallel=True, cache=True)
def implicit_loss(indptr, indices, conf, pref, U, V):
    """The observed pairs' share of the implicit objective, in float64:
    ``sum_obs [c (p - s)^2 - s^2]`` with ``s = x_u . y_i``.

    The whole objective adds ``tr(X^T X Y^T Y) + reg (|X|^2 + |Y|^2)`` (the caller has both
    Gram matrices): the quadratic form counts ``s^2`` for every pair, the unobserved pairs'
    share (confidence 1, preference 0), and the observed ones take it back here.

    Races: none -- per-row partial sums (:func:`_row_loss`), rows dealt round-robin to a
    fixed number of tasks, added in a fixed order afterwards.
    """
    M = U.shape[0]
    part = np.zeros(M)
    for t in prange(_LOSS_TASKS):
        x = np.empty(U.shape[1])
        for u in range(t, M, _LOSS_TASKS):
            part[u] = _row_loss(indptr, indices, conf, pref, U, V, u, x)
    total = 0.0
    for u in range(M):
        total += part[u]
    return total
