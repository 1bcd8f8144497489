"""Slow, obviously-correct twins of the kernels, for the tests only.

Nothing here is fast or clever on purpose: dictionaries of ratings, ``np.outer``,
``np.linalg.solve`` / ``np.linalg.lstsq`` one row at a time, float64 throughout.
"""

from collections import defaultdict

import numpy as np


def tutorial_als(users, items, ratings, M, N, K, lam, n_iter, U0, V0):
    """A line-by-line transcription of the classic tutorial's ALS loop.

    ``U0`` is ``M x K``; ``V0`` is ``K x N`` as in the tutorial (one *column* per item).
    Per iteration: all b_i, then all u_i, then all c_j, then all v_j.
    """
    ratings_by_i = defaultdict(list)
    ratings_by_j = defaultdict(list)
    for i, j, r in zip(users, items, ratings):
        ratings_by_i[i].append((j, r))
        ratings_by_j[j].append((i, r))
    mu = np.mean(ratings)
    U = np.array(U0, dtype=np.float64)
    V = np.array(V0, dtype=np.float64)
    b = np.zeros(M)
    c = np.zeros(N)
    for _ in range(n_iter):
        for i, r_i in ratings_by_i.items():
            b[i] = 1 / (1 + lam) * 1 / len(r_i) * sum(
                r - U[i] @ V[:, j] - c[j] - mu for j, r in r_i)
        for i, r_i in ratings_by_i.items():
            matrix = np.zeros((K, K)) + lam * np.eye(K)
            vector = np.zeros(K)
            for j, r in r_i:
                matrix += np.outer(V[:, j], V[:, j])
                vector += (r - b[i] - c[j] - mu) * V[:, j]
            U[i] = np.linalg.solve(matrix, vector)
        for j, r_j in ratings_by_j.items():
            c[j] = 1 / (1 + lam) * 1 / len(r_j) * sum(
                r - U[i] @ V[:, j] - b[i] - mu for i, r in r_j)
        for j, r_j in ratings_by_j.items():
            matrix = np.zeros((K, K)) + lam * np.eye(K)
            vector = np.zeros(K)
            for i, r in r_j:
                matrix += np.outer(U[i], U[i])
                vector += (r - b[i] - c[j] - mu) * U[i]
            V[:, j] = np.linalg.solve(matrix, vector)
    return U, V, b, c


def residual_sse(X, r, x, b):
    """A row's sum of squared residuals by the definition, rating by rating in float64:
    ``sum_t (r_t - b - X[t] . x)^2``."""
    total = 0.0
    for t in range(len(r)):
        d = sum(float(X[t, k]) * float(x[k]) for k in range(len(x)))
        e = float(r[t]) - float(b) - d
        total += e * e
    return total


def rows_pass(other, idx, data, bias, offset, v, vb, residual):
    """One CG pass by the definition, rating by rating in float64: ``q_t`` and ``sum_t q_t
    other[j_t]`` with ``q_t = data_t - offset - bias[j_t] - other[j_t] . v - vb`` (residual)
    or ``other[j_t] . v + vb``."""
    K = other.shape[1]
    q = np.zeros(len(idx))
    out = np.zeros(K)
    for t, j in enumerate(idx):
        d = sum(float(other[j, k]) * float(v[k]) for k in range(K))
        if residual:
            q[t] = float(data[t]) - float(offset) - float(bias[j]) - d - float(vb)
        else:
            q[t] = d + float(vb)
        for k in range(K):
            out[k] += q[t] * float(other[j, k])
    return q, out


def gram_lower(X):
    """``X^T X`` by the definition, one entry at a time (lower triangle; the rest zero)."""
    m, K = X.shape
    out = np.zeros((K, K))
    for a in range(K):
        for c in range(a + 1):
            for t in range(m):
                out[a, c] += X[t, a] * X[t, c]
    return out


def _row_problems(rows, cols, vals, n_rows, other, other_bias, mu, reg, reg_bias, count_reg,
                  count_bias):
    """Per non-empty row ``i``: ``(i, n, V_i, r, lam, lam_b)`` with ``r = A_i - mu - c`` the
    ratings less the other side's biases and the penalties for ``n`` ratings (float64)."""
    other = np.asarray(other, dtype=np.float64)
    other_bias = np.asarray(other_bias, dtype=np.float64)
    for i in range(n_rows):
        sel = rows == i
        n = int(sel.sum())
        if n == 0:
            continue
        lam = reg * n if count_reg else reg
        lam_b = reg_bias * n if count_bias else reg_bias
        yield i, n, other[cols[sel]], vals[sel] - mu - other_bias[cols[sel]], lam, lam_b


def half_step(rows, cols, vals, n_rows, F, bias, other, other_bias, mu, reg, reg_bias,
              count_reg, count_bias, joint, steps=None):
    """One half-step for every non-empty row, as ridge regressions solved by ``lstsq``, or
    with ``steps``, by that many warm-started CG steps (:func:`cg_steps`) on each row's
    normal equations (``joint=False`` still sets the bias exactly first, as the kernel does).

    ``rows/cols/vals`` are triples with ``rows`` indexing the side being solved. Returns new
    ``(F, bias)``; the inputs are not modified.
    """
    F = np.array(F, dtype=np.float64)
    bias = np.array(bias, dtype=np.float64)
    K = F.shape[1]
    for i, n, Vi, r, lam, lam_b in _row_problems(rows, cols, vals, n_rows, other, other_bias,
                                                 mu, reg, reg_bias, count_reg, count_bias):
        if joint:
            # minimize |[V 1] x - r|^2 + lam |x[:K]|^2 + lam_b x[K]^2
            Z = np.hstack([Vi, np.ones((n, 1))])
            penalty = np.r_[np.full(K, lam), lam_b]
            if steps is None:
                x = np.linalg.lstsq(np.vstack([Z, np.diag(np.sqrt(penalty))]),
                                    np.r_[r, np.zeros(K + 1)], rcond=None)[0]
            else:
                x = cg_steps(Z.T @ Z + np.diag(penalty), Z.T @ r, np.r_[F[i], bias[i]], steps)
            F[i], bias[i] = x[:K], x[K]
        else:
            bias[i] = np.sum(r - Vi @ F[i]) / (n + lam_b)
            if steps is None:
                A = np.vstack([Vi, np.sqrt(lam) * np.eye(K)])
                F[i] = np.linalg.lstsq(A, np.r_[r - bias[i], np.zeros(K)], rcond=None)[0]
            else:
                F[i] = cg_steps(Vi.T @ Vi + lam * np.eye(K), Vi.T @ (r - bias[i]), F[i], steps)
    return F, bias


def cg_steps(A, rhs, x, steps):
    """``steps`` textbook conjugate-gradient steps on ``A x = rhs`` from ``x`` (float64), each
    forming ``A p`` in full; stops early when the residual is exactly zero."""
    x = np.array(x, dtype=np.float64)
    res = rhs - A @ x
    p = res.copy()
    rs = res @ res
    for _ in range(steps):
        if not rs > 0:
            break
        Ap = A @ p
        alpha = rs / (p @ Ap)
        x += alpha * p
        res -= alpha * Ap
        rs, rs_old = res @ res, rs
        p = res + (rs / rs_old) * p
    return x


def objective(users, items, vals, M, N, U, b, V, c, mu, reg, reg_bias, count_reg, count_bias):
    """The objective J of docs/design.md section 1, summed naively in float64."""
    U, b, V, c = (np.asarray(a, dtype=np.float64) for a in (U, b, V, c))
    pred = mu + b[users] + c[items] + np.einsum("ij,ij->i", U[users], V[items])
    nu = np.bincount(users, minlength=M).astype(float)
    ni = np.bincount(items, minlength=N).astype(float)
    su = nu if count_reg else np.ones(M)
    si = ni if count_reg else np.ones(N)
    wu = nu if count_bias else np.ones(M)
    wi = ni if count_bias else np.ones(N)
    return (
        np.sum((vals - pred) ** 2)
        + reg * (np.sum(su * np.sum(U**2, axis=1)) + np.sum(si * np.sum(V**2, axis=1)))
        + reg_bias * (np.sum(wu * b**2) + np.sum(wi * c**2))
    )


def gibbs_draw(rows, cols, vals, n_rows, F, bias, other, other_bias, mu, alpha, prec, shift,
               order, noise, row_shift=None):
    """One Gibbs half-step, row by row: ``theta_i = P^-1 (alpha Z^T r + shift) + L^-T z``.

    ``Z = [V_i, 1]``, ``P = prec + alpha Z^T Z = L L^T`` (``np.linalg.cholesky``), ``z`` the
    row's line of ``noise`` (``noise[q]`` belongs to ``order[q]``). With ``row_shift``, row
    ``i``'s ``shift`` is ``shift + row_shift[i]``. Returns new ``(F, bias)``.
    """
    F = np.array(F, dtype=np.float64)
    bias = np.array(bias, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    other_bias = np.asarray(other_bias, dtype=np.float64)
    K = F.shape[1]
    for q, i in enumerate(order):
        sel = rows == i
        Z = np.hstack([other[cols[sel]], np.ones((int(sel.sum()), 1))])
        r = vals[sel] - mu - other_bias[cols[sel]]
        P = prec + alpha * Z.T @ Z
        h = shift if row_shift is None else shift + row_shift[i]
        mean = np.linalg.solve(P, alpha * Z.T @ r + h)
        L = np.linalg.cholesky(P)
        x = mean + np.linalg.solve(L.T, np.asarray(noise[q], dtype=np.float64))
        F[i], bias[i] = x[:K], x[K]
    return F, bias


def implicit_term(rows, cols, n_rows, Y):
    """``S[i] = n_i^-1/2 sum_{k rated by i} Y[k]`` by a loop over the ratings."""
    S = np.zeros((n_rows, Y.shape[1]))
    n = np.bincount(rows, minlength=n_rows)
    for i, k in zip(rows, cols):
        S[i] += Y[k] / np.sqrt(n[i])
    return S


def implicit_draw(rows, cols, vals, n_rows, base, bias, Y, other, other_bias, mu, alpha, prec,
                  shift, noise, pairs=None):
    """Draw ``Y`` one coordinate at a time -- coordinate ``a = 0, 1, ...`` of every row ``k =
    0, 1, ...`` in turn -- each from its conditional written out from the likelihood: the
    effective vector of row ``i`` is ``base[i] + n_i^-1/2 sum Y[k]`` over the ``k`` it rated;
    rating ``(i, j)`` then reads ``Y[k, a]`` with the coefficient ``n_i^-1/2 other[j, a]`` and
    the target ``A_ij - mu - bias_i - c_j - (the rest of the effective vector) . other[j]``;
    the prior ``N(prec^-1 shift, prec^-1)`` of ``y_k`` given its other coordinates adds
    ``prec[a, a]`` and ``shift[a] - sum_{c != a} prec[a, c] Y[k, c]``. ``pairs = (rows,
    cols)``: who rated what, if not the rated pairs themselves. Returns the new ``Y``."""
    Y = np.array(Y, dtype=np.float64)
    pr, pc = (rows, cols) if pairs is None else pairs
    n = np.bincount(pr, minlength=n_rows)
    for a in range(Y.shape[1]):
        for k in range(len(Y)):
            others = [c for c in range(Y.shape[1]) if c != a]
            p = prec[a, a]
            h = shift[a] - prec[a, others] @ Y[k, others]
            eff = base + implicit_term(pr, pc, n_rows, Y)
            for i in np.unique(pr[pc == k]):
                for j, r in zip(cols[rows == i], vals[rows == i]):
                    x = other[j, a] / np.sqrt(n[i])
                    rest = eff[i] @ other[j] - Y[k, a] * x
                    target = r - mu - bias[i] - other_bias[j] - rest
                    p += alpha * x * x
                    h += alpha * x * target
            Y[k, a] = h / p + noise[k, a] / np.sqrt(p)
    return Y


def gibbs_sampler(users, items, vals, M, N, K, n_samples, burn_in, seed, sample_prior,
                  implicit="none", pairs=None):
    """The BayesianALS chain, spelled out: the same generator calls in the same order.

    The draws of the hyper-parameters come from ``sample_prior`` (the library's, tested on
    its own); everything else -- starts, row order, per-row draws via :func:`gibbs_draw`,
    the noise precision and the posterior-mean predictions -- is written out here. Returns
    the function ``predict(users, items)`` of the average over the kept samples.
    """
    users_seq, items_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(users_seq)
    rng_v = np.random.default_rng(items_seq)
    U = rng.standard_normal((M, K)) / K
    V = rng_v.standard_normal((N, K)) / K
    nu = np.bincount(users, minlength=M)
    ni = np.bincount(items, minlength=N)
    U[nu == 0] = 0
    V[ni == 0] = 0
    b, c = np.zeros(M), np.zeros(N)
    mu = np.mean(vals)
    alpha = (1 + len(vals) / 2) / (1 + np.sum((vals - mu) ** 2) / 2)
    order_u = [i for i in range(M) if nu[i] > 0]  # rated rows in storage order: the
    order_v = [j for j in range(N) if ni[j] > 0]  # q-th one takes the q-th noise draw
    samples = []
    Y, Z = np.zeros((N, K)), np.zeros((M, K))
    # who rated what: the rated pairs, plus any extra ones, each pair once
    pu, pi = (users, items) if pairs is None else np.unique(
        np.c_[np.r_[users, pairs[0]], np.r_[items, pairs[1]]], axis=0).T
    nu_pairs, ni_pairs = np.bincount(pu, minlength=M), np.bincount(pi, minlength=N)
    for sweep in range(burn_in + n_samples):
        if implicit == "none":
            prec, shift = sample_prior(U[order_u], b[order_u], rng)
            noise = rng.standard_normal((len(order_u), K + 1))
            U, b = gibbs_draw(users, items, vals, M, U, b, V, c, mu, alpha, prec, shift,
                              order_u, noise)
            prec, shift = sample_prior(V[order_v], c[order_v], rng)
            noise = rng.standard_normal((len(order_v), K + 1))
            V, c = gibbs_draw(items, users, vals, N, V, c, U, b, mu, alpha, prec, shift,
                              order_v, noise)
        else:  # effective vectors: users U + S(Y), items V + T(Z)
            S = implicit_term(pu, pi, M, Y)
            T = implicit_term(pi, pu, N, Z)
            Vp = V + T
            prec, shift = sample_prior(U[order_u], b[order_u], rng)
            noise = rng.standard_normal((len(order_u), K + 1))
            W, b = gibbs_draw(users, items, vals, M, U + S, b, Vp, c, mu, alpha, prec, shift,
                              order_u, noise, row_shift=S @ prec[:, :K].T)
            U = W - S
            prior_y = sample_prior(Y[ni_pairs > 0], None, rng)
            noise = rng.standard_normal((N, K))
            Y = implicit_draw(users, items, vals, M, U, b, Y, Vp, c, mu, alpha, *prior_y,
                              noise, pairs=(pu, pi))
            W = U + implicit_term(pu, pi, M, Y)
            prec, shift = sample_prior(V[order_v], c[order_v], rng)
            noise = rng.standard_normal((len(order_v), K + 1))
            Vp, c = gibbs_draw(items, users, vals, N, Vp, c, W, b, mu, alpha, prec, shift,
                               order_v, noise, row_shift=T @ prec[:, :K].T)
            V = Vp - T
            if implicit == "both":
                prec, shift = sample_prior(Z[nu_pairs > 0], None, rng)
                noise = rng.standard_normal((M, K))
                Z = implicit_draw(items, users, vals, N, V, c, Z, W, b, mu, alpha, prec,
                                  shift, noise, pairs=(pi, pu))
            U_, V_ = U, V
            U, V = W, V + implicit_term(pi, pu, N, Z)  # effective, for J and keeping
        sse = np.sum((vals - mu - b[users] - c[items] - np.sum(U[users] * V[items], 1)) ** 2)
        alpha = rng.gamma(1 + len(vals) / 2, 1 / (1 + sse / 2))
        if sweep >= burn_in:
            samples.append((U.copy(), b.copy(), V.copy(), c.copy()))
        if implicit != "none":
            U, V = U_, V_

    def predict(u, i):
        return np.mean([mu + bs[u] + cs[i] + np.sum(Us[u] * Vs[i], 1)
                        for Us, bs, Vs, cs in samples], axis=0)

    return predict


def implicit_dense(users, items, strengths, M, N, alpha):
    """The full ``M x N`` confidence and preference matrices of Hu, Koren & Volinsky."""
    C = np.ones((M, N))
    P = np.zeros((M, N))
    C[users, items] = 1 + alpha * np.asarray(strengths, dtype=np.float64)
    P[users, items] = (np.asarray(strengths) > 0).astype(float)
    return C, P


def implicit_half_step(C, P, Y, reg, rows, X=None, steps=None):
    """``x_u = (Y^T C_u Y + reg I)^-1 Y^T C_u p_u`` for each listed row, over all columns,
    with the dense matrices: no Y^T Y trick, ``np.linalg.solve`` per row. With ``steps``,
    that many warm-started CG steps (:func:`cg_steps`) from ``X`` instead."""
    Y = np.asarray(Y, dtype=np.float64)
    K = Y.shape[1]
    X = np.zeros((C.shape[0], K)) if X is None else np.array(X, dtype=np.float64)
    for u in rows:
        A = Y.T @ (C[u][:, None] * Y) + reg * np.eye(K)
        rhs = Y.T @ (C[u] * P[u])
        X[u] = np.linalg.solve(A, rhs) if steps is None else cg_steps(A, rhs, X[u], steps)
    return X


def implicit_objective(C, P, X, Y, reg):
    """``sum_all c (p - x.y)^2 + reg (|X|^2 + |Y|^2)``, summed naively over every pair."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    return float(np.sum(C * (P - X @ Y.T) ** 2) + reg * (np.sum(X**2) + np.sum(Y**2)))


def sgd_epoch(order, users, items, data, mu, lr, reg, reg_bias, U, b, V, c):
    """One SGD epoch, rating by rating in ``order``: ``u += lr (e v - reg u)`` and alike,
    float64, plain Python loops. Returns new ``(U, b, V, c)``."""
    U, V = np.array(U, dtype=np.float64), np.array(V, dtype=np.float64)
    b, c = np.array(b, dtype=np.float64), np.array(c, dtype=np.float64)
    for q in order:
        i, j, r = users[q], items[q], data[q]
        e = r - mu - b[i] - c[j] - U[i] @ V[j]
        b[i], c[j] = b[i] + lr * (e - reg_bias * b[i]), c[j] + lr * (e - reg_bias * c[j])
        U[i], V[j] = U[i] + lr * (e * V[j] - reg * U[i]), V[j] + lr * (e * U[i] - reg * V[j])
    return U, b, V, c


def transpose(indptr, indices, data, n_cols):
    """CSC arrays of a CSR matrix from a dictionary of columns, rows ascending in each."""
    columns = defaultdict(list)
    for i in range(len(indptr) - 1):
        for p in range(indptr[i], indptr[i + 1]):
            columns[indices[p]].append((i, data[p]))
    out_indptr, out_indices, out_data = [0], [], []
    for j in range(n_cols):
        for i, v in sorted(columns[j], key=lambda e: e[0]):
            out_indices.append(i)
            out_data.append(v)
        out_indptr.append(len(out_indices))
    return np.array(out_indptr), np.array(out_indices), np.array(out_data)
