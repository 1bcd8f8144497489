"""Parallel stochastic gradient descent on the biased-MF objective (numba only).

The ratings are cut into a fixed ``P x P`` grid of blocks (user block ``u % P``, item block
``i % P``). The blocks ``(p, (p + d) % P)``, ``p = 0..P-1``, of one "diagonal" ``d`` share no
user and no item, so they are updated in parallel without races (DSGD, Gemulla et al. 2011);
the diagonals run one after another. Within a block the ratings are visited in an order
drawn from a generator seeded by ``(seed, epoch, block)`` alone, so the result does not
depend on the number of threads (P is fixed, not the thread count). See docs/design.md.
"""

import numpy as np
from numba import njit, prange

from fastmf.kernels._jit import helper
from fastmf.kernels.als import _FASTMATH, _FASTMATH_REDUCE


@helper(fastmath=_FASTMATH_REDUCE)
def _dot(U, i, V, j):
    """``U[i] . V[j]``, reassociated so it vectorizes (a serial chain of K adds cost more than
    the rest of an update); the order is fixed at compile time and nothing is stored."""
    s = U.dtype.type(0.0)
    for k in range(U.shape[1]):
        s += U[i, k] * V[j, k]
    return s


@helper(fastmath=_FASTMATH_REDUCE)
def _gradient_norms(e, U, i, V, j, reg):
    """``(|g_u|^2, |g_v|^2)`` of this step's factor gradients ``e v - reg u``, ``e u - reg v``."""
    su = U.dtype.type(0.0)
    sv = U.dtype.type(0.0)
    for k in range(U.shape[1]):
        gu = e * V[j, k] - reg * U[i, k]
        gv = e * U[i, k] - reg * V[j, k]
        su += gu * gu
        sv += gv * gv
    return su, sv


@helper(fastmath=_FASTMATH)
def _sgd_rating(r, mu, i, j, U, b, V, c, lr, reg, reg_bias, adagrad, GU, Gb, GV, Gc, eps):
    """One update on rating ``r`` of ``(i, j)``: a step against the gradient of
    ``(r - mu - b_i - c_j - u_i.v_j)^2 + reg (|u_i|^2 + |v_j|^2) + reg_bias (b_i^2 + c_j^2)``
    (halved: ``u_i += lr (e v_j - reg u_i)``), or AdaGrad's per-coordinate step."""
    K = U.shape[1]
    e = r - mu - b[i] - c[j] - _dot(U, i, V, j)
    gb = e - reg_bias * b[i]
    gc = e - reg_bias * c[j]
    if adagrad:  # LIBMF's row-wise AdaGrad: one accumulator per factor row, one per bias
        Gb[i] += gb * gb
        Gc[j] += gc * gc
        b[i] += lr * gb / np.sqrt(Gb[i] + eps)
        c[j] += lr * gc / np.sqrt(Gc[j] + eps)
        su, sv = _gradient_norms(e, U, i, V, j, reg)  # the rate includes this step's
        GU[i] += su / K
        GV[j] += sv / K
        rate_u = lr / np.sqrt(GU[i] + eps)
        rate_v = lr / np.sqrt(GV[j] + eps)
        for k in range(K):
            u = U[i, k]
            v = V[j, k]
            U[i, k] = u + rate_u * (e * v - reg * u)
            V[j, k] = v + rate_v * (e * u - reg * v)
    else:
        b[i] += lr * gb
        c[j] += lr * gc
        for k in range(K):
            u = U[i, k]
            v = V[j, k]
            U[i, k] = u + lr * (e * v - reg * u)
            V[j, k] = v + lr * (e * u - reg * v)
    return e * e


@njit(cache=True)
def _diagonal_block(block_ptr, P, d, p):
    """Block ``(p, (p + d) % P)`` of diagonal ``d``: its number, first position and size.
    The epoch and its sequential twin (:func:`sgd_visit_order`) both walk blocks by it."""
    blk = p * P + (p + d) % P
    lo = block_ptr[blk]
    return blk, lo, block_ptr[blk + 1] - lo


@njit(cache=True)
def _block_order(n, seed, blk):
    """The visiting order of a block's ``n`` ratings: a Fisher-Yates shuffle from the calling
    thread's generator seeded by ``(seed, blk)`` alone."""
    np.random.seed(seed * 1000003 + blk)
    order = np.arange(n)
    for t in range(n - 1, 0, -1):
        s = np.random.randint(0, t + 1)
        order[t], order[s] = order[s], order[t]
    return order


@njit(cache=True)
def sgd_visit_order(block_ptr, n_blocks, seed):
    """The positions (into the blocked arrays) in the order one epoch visits them, diagonal
    by diagonal and block by block -- the sequence a sequential twin must follow."""
    P = n_blocks
    out = np.empty(block_ptr[-1], dtype=np.int64)
    k = 0
    for d in range(P):
        for p in range(P):
            blk, lo, n = _diagonal_block(block_ptr, P, d, p)
            if n == 0:
                continue
            order = _block_order(n, seed, blk)
            for t in range(n):
                out[k] = lo + order[t]
                k += 1
    return out


@njit(parallel=True, cache=True)
def sgd_epoch(block_ptr, users, items, data, n_blocks, mu, lr, reg, reg_bias, adagrad, seed,
              U, b, V, c, GU, Gb, GV, Gc):
    """One epoch: every rating once, the ``P x P`` blocks diagonal by diagonal.

    Parameters
    ----------
    block_ptr : int64 (P*P + 1,)
        Ratings of block ``(p, q)`` are ``block_ptr[p*P + q] : block_ptr[p*P + q + 1]`` of
        ``users`` (int32), ``items`` (int32) and ``data`` (float).
    n_blocks : int
        ``P``.
    mu, lr, reg, reg_bias : scalars of the factors' dtype;  adagrad : bool
    seed : int64
        Seeds each block's visiting order (with the block's number).
    U, b, V, c : factors and biases, updated in place
    GU (R,), Gb, GV (S,), Gc : AdaGrad's sums of squared gradients (per factor row: the mean
        over its coordinates; per bias), updated in place (unused if not ``adagrad``)

    Returns
    -------
    float
        The sum of squared errors seen during the epoch (before each update), in float64.

    Races: none -- the blocks updated at once share no user and no item.
    """
    P = n_blocks
    eps = U.dtype.type(1e-8)
    sse = np.zeros(P)
    for d in range(P):
        for p in prange(P):
            blk, lo, n = _diagonal_block(block_ptr, P, d, p)
            if n == 0:
                continue
            order = _block_order(n, seed, blk)
            acc = 0.0
            for t in range(n):
                q = lo + order[t]
                acc += _sgd_rating(data[q], mu, users[q], items[q], U, b, V, c, lr, reg,
                                   reg_bias, adagrad, GU, Gb, GV, Gc, eps)
            sse[p] += acc
    total = 0.0
    for p in range(P):
        total += sse[p]
    return total
