"""The Cholesky solves of the rows' systems, with explicit SIMD vectors.

Every Cholesky half-step solves one ``D x D`` system per row (``D = K + 1`` for the joint
update): 9,746 of them per ML-1M-shaped iteration. The left-looking factorization these
kernels replace computed each entry of ``L`` as a dot product of two row prefixes; at ``D =
33`` the prefixes are shorter than LLVM's vector loop (64 floats per turn with AVX-512), so
nearly every product ran in the scalar remainder loop and ended in a reduction: 1.52 us per
system, 14.8 ms of a 50 ms iteration (K = 32, float32, one thread, Zen 4; issue 17).

Two kernels take their place (docs/design.md section 9 has the measurements):

- :func:`solve_lanes` solves ``W`` rows' systems at once, one per vector lane (``W = 8``
  float32 or 4 float64 with the 32-byte vectors used here): every scalar operation of a
  left-looking Cholesky becomes one vector operation, so nothing is short, masked or reduced
  across lanes, and each lane's arithmetic is the same whatever the other lanes hold.
  :func:`pack_lanes` lays the ``W`` systems out for it, a ``W x W`` transposition by
  shuffles at a time. :func:`fastmf.kernels.als.solve_rows` batches the rows it can.
- A row solved alone (a long row, a retry, the Gibbs draw, ImplicitALS, the distributed item
  step) takes the right-looking factorization of
  :func:`fastmf.kernels.als._cholesky_solve`: two columns at a time, their update of every
  later row as whole vectors of that row (:func:`rank2_lower`, no reduction), the
  right-hand side updated as one more row (that is ``L y = rhs``), then ``L^T x = y`` two
  unknowns at a time along rows of ``L`` (:func:`back_lower`).

The vectors are 32 bytes even where AVX-512 is there: on Zen 4, which runs a 512-bit
operation as two 256-bit halves, 512-bit loads and stores made :func:`rank2_lower`'s update
slower, and a batch of 16 systems (with 16 slots of gathered ratings kept for the objective)
made the half-step slower although the factorization alone was faster.

Every entry is computed in an order fixed when the kernel is compiled, one thread per system,
so results do not depend on the thread count or on which rows share a batch. Under
``NUMBA_DISABLE_JIT=1`` the functions are the numpy code below (the same quantities, not the
same bits).
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from fastmf.kernels._pass import _IR

# Bytes per vector of every kernel here (see above for why not 64).
_VECTOR_BYTES = 32
#: Bytes per vector of :func:`solve_lanes`: a batch is this many bytes over the item size.
LANE_VECTOR_BYTES = _VECTOR_BYTES
# Rows of L that solve_lanes computes in one pass over their prefixes, for two columns at a
# time: twelve independent FMA chains. Measured per system at D = 33 (float32, Zen 4, one
# thread): 2 rows 328 ns, 4 rows 305, 6 rows 268, 8 rows 275; compiled for AVX2, 4 rows 262
# and 6 rows 247 (its 16 registers still hold the twelve sums).
_ROWS = 6


def back_lower(G, D, x):
    """Solve ``L^T x = y`` for ``L`` the lower triangle of ``G[:D, :D]`` and ``y = G[D, :D]``
    into ``x[:D]``, from the last unknown up, two at a time: ``x_i``, then ``x_{i-1}`` with
    ``L[i, i-1] x_i`` taken out, then one pass over row ``D`` for both (``y[:i-1] -= x_i
    L[i, :i-1] + x_{i-1} L[i-1, :i-1]``, whole vectors of rows of ``L``). Row ``D`` of ``G``
    is overwritten. ``G`` is C-contiguous with at least ``padded(D)`` columns; entries right
    of the diagonal are read, whatever they hold, but only into entries of row ``D`` whose
    unknowns are solved already."""
    for i in range(D - 1, -1, -1):
        xi = G[D, i] / G[i, i]
        x[i] = xi
        G[D, :i] -= xi * G[i, :i]


def _check(G, c):
    return (isinstance(G, types.Array) and G.ndim == 2 and G.layout == "C"
            and G.dtype in (types.float32, types.float64)
            and isinstance(c, types.Array) and c.ndim == 1 and c.dtype == G.dtype)


def rank2_lower(G, j, D):
    """Columns ``j`` and ``j + 1`` of ``L`` and the update they make, from ``c0 = G[D + 1]``
    and ``c1 = G[D + 2]`` (``L``'s two columns, zero at and above ``j + 1``): for
    ``i = j+2 .. D``, ``G[i, j] = c0[i]``, ``G[i, j+1] = c1[i]`` and ``G[i, j+2:min(i+1, D)]
    -= c0[i] c0[j+2:..] + c1[i] c1[j+2:..]``.

    ``G`` is C-contiguous with at least ``padded(D + 1)`` columns
    (:func:`fastmf.kernels._gram.padded`) and ``D + 3`` rows. The kernel updates whole vectors
    of row ``i``, from the one holding column ``j`` to the one holding column ``i``: the zeros
    of ``c0`` and ``c1`` leave the columns left of ``j + 2`` as they were (lanes ``j``,
    ``j + 1`` then take the two columns), and the entries right of the diagonal (row ``D``'s
    from column ``D``), which nothing reads, take whatever the update gives.
    """
    c0, c1 = G[D + 1], G[D + 2]
    for i in range(j + 2, D + 1):
        G[i, j] = c0[i]
        G[i, j + 1] = c1[i]
        lim = min(i + 1, D)
        G[i, j + 2:lim] -= c0[i] * c0[j + 2:lim]
        G[i, j + 2:lim] -= c1[i] * c1[j + 2:lim]


@intrinsic
def _rank2_lower(typingctx, G, j, D):
    if not (isinstance(G, types.Array) and G.ndim == 2 and G.layout == "C"
            and G.dtype in (types.float32, types.float64)
            and isinstance(j, types.Integer) and isinstance(D, types.Integer)):
        return None
    dt = G.dtype

    def codegen(context, builder, signature, args):
        g_t, j_t, d_t = signature.args
        tk = _IR(context, builder, dt, _VECTOR_BYTES)
        const, W = tk.const, tk.W
        ga, gptr = tk.array(g_t, args[0])
        j_ = context.cast(builder, args[1], j_t, types.intp)
        d_ = context.cast(builder, args[2], d_t, types.intp)
        gstride = builder.udiv(cgutils.unpack_tuple(builder, ga.strides, 2)[0],
                               const(tk.size))
        c0ptr = builder.gep(gptr, [builder.mul(builder.add(d_, const(1)), gstride)])
        c1ptr = builder.gep(c0ptr, [gstride])
        first = builder.add(j_, const(2))
        q0 = builder.udiv(j_, const(W))
        n_blocks = builder.add(builder.sub(builder.udiv(d_, const(W)), q0), const(1))
        rel = ir.VectorType(tk.intp, W)

        def block(q, with_columns):
            col = builder.mul(q, const(W))
            c0q = tk.load_vec(c0ptr, tk.vec, col)
            c1q = tk.load_vec(c1ptr, tk.vec, col)
            top = builder.select(builder.icmp_signed(">", col, first), col, first)
            if with_columns:  # the lanes of columns j and j + 1 take L's entries
                at = builder.add(tk.splat(col, rel), tk.lanes)
                m0 = builder.icmp_signed("==", at, tk.splat(j_, rel))
                m1 = builder.icmp_signed("==", at, tk.splat(builder.add(j_, const(1)), rel))
            with cgutils.for_range(builder, builder.sub(builder.add(d_, const(1)), top)) \
                    as loop:
                i = builder.add(top, loop.index)
                b0 = tk.splat(builder.load(builder.gep(c0ptr, [i])), tk.vec)
                b1 = tk.splat(builder.load(builder.gep(c1ptr, [i])), tk.vec)
                row = builder.gep(gptr, [builder.mul(i, gstride)])
                a = tk.load_vec(row, tk.vec, col)
                new = tk.fma(builder.fneg(b0), c0q, a)
                new = tk.fma(builder.fneg(b1), c1q, new)
                if with_columns:
                    new = builder.select(m1, b1, builder.select(m0, b0, new))
                tk.store_vec(new, row, col)

        # Columns j and j + 1 lie in the first block or the first two.
        n_first = builder.select(builder.icmp_signed(">", n_blocks, const(1)), const(2),
                                 const(1))
        with cgutils.for_range(builder, n_first) as qloop:
            block(builder.add(q0, qloop.index), True)
        with cgutils.for_range(builder, builder.sub(n_blocks, n_first)) as qloop:
            block(builder.add(builder.add(q0, const(2)), qloop.index), False)
        return context.get_dummy_value()

    return types.void(G, j, D), codegen


@overload(rank2_lower, inline="always")
def _rank2_lower_impl(G, j, D):
    def impl(G, j, D):
        _rank2_lower(G, j, D)

    return impl


@intrinsic
def _back_lower(typingctx, G, D, x):
    if not (_check(G, x) and isinstance(D, types.Integer)):
        return None
    dt = G.dtype

    def codegen(context, builder, signature, args):
        g_t, d_t, x_t = signature.args
        tk = _IR(context, builder, dt, _VECTOR_BYTES)
        const, W = tk.const, tk.W
        ga, gptr = tk.array(g_t, args[0])
        _, xptr = tk.array(x_t, args[2])
        d_ = context.cast(builder, args[1], d_t, types.intp)
        gstride = builder.udiv(cgutils.unpack_tuple(builder, ga.strides, 2)[0],
                               const(tk.size))
        y = builder.gep(gptr, [builder.mul(d_, gstride)])

        def unknown(i, below=None):
            """``x_i`` from ``y_i``, less ``L[below, i] x_below`` when a later unknown is
            given as ``(below, x_below)``."""
            row = builder.gep(gptr, [builder.mul(i, gstride)])
            yi = builder.load(builder.gep(y, [i]))
            if below is not None:
                brow, xb = below
                yi = tk.fma(builder.fneg(builder.load(builder.gep(brow, [i]))), xb, yi)
            xi = builder.fdiv(yi, builder.load(builder.gep(row, [i])))
            builder.store(xi, builder.gep(xptr, [i]))
            return row, xi

        def update(terms, n):
            """``y[:n] -= sum x_i L[i, :n]`` over ``terms = [(row i, x_i), ...]``, whole
            vectors (lanes from ``n`` on take garbage: they are solved already)."""
            with cgutils.for_range(builder, builder.udiv(builder.add(n, const(W - 1)),
                                                         const(W))) as vloop:
                col = builder.mul(vloop.index, const(W))
                w = tk.load_vec(y, tk.vec, col)
                for row, xi in terms:
                    w = tk.fma(tk.splat(builder.fneg(xi), tk.vec),
                               tk.load_vec(row, tk.vec, col), w)
                tk.store_vec(w, y, col)

        # An odd D first solves its last unknown alone, then two at a time: x_i, then
        # x_{i-1} with L[i, i-1] x_i taken out, then one pass over the row for both.
        odd = builder.icmp_signed("==", builder.urem(d_, const(2)), const(1))
        with builder.if_then(odd):
            last = builder.sub(d_, const(1))
            update([unknown(last)], last)
        top = builder.sub(d_, builder.add(builder.urem(d_, const(2)), const(1)))
        with cgutils.for_range(builder, builder.udiv(d_, const(2))) as loop:
            i = builder.sub(top, builder.mul(loop.index, const(2)))
            hi = unknown(i)
            lo = unknown(builder.sub(i, const(1)), hi)
            update([hi, lo], builder.sub(i, const(1)))
        return context.get_dummy_value()

    return types.void(G, D, x), codegen


@overload(back_lower, inline="always")
def _back_lower_impl(G, D, x):
    def impl(G, D, x):
        _back_lower(G, D, x)

    return impl


def solve_lanes(B, D, tol):
    """Solve one ``D x D`` SPD system per lane of ``B``; returns the lanes that failed, as bits.

    ``B`` is C-contiguous ``(E, W)`` with ``E >= D (D + 1) / 2 + D``: entry ``e(a, c) =
    a (a + 1) / 2 + c`` (``c <= a``) of lane ``l`` is ``B[e, l]``, rows ``a < D`` the lower
    triangle of the matrix and row ``a = D`` the right-hand side. Left-looking Cholesky, then
    ``L y = rhs`` (with the factorization: row ``D`` is one more row of ``L``) and ``L^T x =
    y``; ``x_c`` is left in ``B[e(D, c)]``, ``1 / L_cc`` in ``B[e(c, c)]``. Bit ``l`` of the
    result is set when a pivot of lane ``l`` is not above ``tol[l]`` (or is NaN): that lane's
    ``x`` is undefined, the others are unaffected.
    """
    failed = 0
    W = B.shape[1]
    base = D * (D + 1) // 2
    for lane in range(W):
        L = np.zeros((D + 1, D), dtype=B.dtype)
        for a in range(D + 1):
            for c in range(min(a + 1, D)):
                L[a, c] = B[a * (a + 1) // 2 + c, lane]
        bad = False
        for j in range(D):
            s = L[j, j] - L[j, :j] @ L[j, :j]
            bad = bad or not s > tol[lane]
            inv = 1.0 / np.sqrt(s) if s > 0 else np.nan
            L[j, j] = inv
            L[j + 1:, j] = (L[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) * inv
        x = np.zeros(D, dtype=B.dtype)
        for i in range(D - 1, -1, -1):
            x[i] = (L[D, i] - L[i + 1:D, i] @ x[i + 1:]) * L[i, i]
        for a in range(D):
            B[a * (a + 1) // 2 + a, lane] = L[a, a]
        B[base:base + D, lane] = x
        failed |= int(bad) << lane
    return failed


@intrinsic
def _solve_lanes(typingctx, B, D, tol):
    if not (isinstance(B, types.Array) and B.ndim == 2 and B.layout == "C"
            and B.dtype in (types.float32, types.float64)
            and isinstance(tol, types.Array) and tol.ndim == 1 and tol.dtype == B.dtype
            and isinstance(D, types.Integer)):
        return None
    dt = B.dtype

    def codegen(context, builder, signature, args):
        b_t, d_t, t_t = signature.args
        tk = _IR(context, builder, dt, _VECTOR_BYTES)
        const, W, vec = tk.const, tk.W, tk.vec
        ba, bptr = tk.array(b_t, args[0])
        _, tptr = tk.array(t_t, args[2])
        d_ = context.cast(builder, args[1], d_t, types.intp)
        stride = builder.udiv(cgutils.unpack_tuple(builder, ba.strides, 2)[0], const(tk.size))
        tolv = tk.load_vec(tptr, vec, const(0))
        sqrt = tk.function(f"llvm.sqrt.{tk._suffix(vec)}", vec, [vec])
        one = ir.Constant(vec, [1.0] * W)
        mask_ty = ir.VectorType(ir.IntType(1), W)
        fail = cgutils.alloca_once_value(builder, ir.Constant(mask_ty, [0] * W))
        slots = [cgutils.alloca_once(builder, vec) for _ in range(_ROWS * 2)]

        def row(a):
            """Offset of entry ``e(a, 0)``: row ``a`` of the packed triangle."""
            return builder.mul(builder.udiv(builder.mul(a, builder.add(a, const(1))),
                                            const(2)), stride)

        def at(base, c):
            return builder.add(base, builder.mul(c, stride))

        def load(off):
            return tk.load_vec(bptr, vec, off)

        def store(v, off):
            tk.store_vec(v, bptr, off)

        def check(s):
            ok = builder.fcmp_ordered(">", s, tolv)  # False for NaN
            builder.store(builder.or_(builder.load(fail), builder.not_(ok)), fail)
            return builder.fdiv(one, builder.call(sqrt, [s]))

        def block_dots(rows, cols, start, n):
            """``start[r][c] - sum_{k < n} B[rows[r] + k] B[cols[c] + k]``: one pass over
            ``k`` for ``len(rows) x len(cols)`` independent FMA chains."""
            acc = [[slots[r * len(cols) + c] for c in range(len(cols))]
                   for r in range(len(rows))]
            for r in range(len(rows)):
                for c in range(len(cols)):
                    builder.store(start[r][c], acc[r][c])
            with cgutils.for_range(builder, n) as loop:
                k = builder.mul(loop.index, stride)
                cv = [load(builder.add(p, k)) for p in cols]
                for r, p in enumerate(rows):
                    rv = builder.fneg(load(builder.add(p, k)))
                    for c in range(len(cols)):
                        builder.store(tk.fma(rv, cv[c], builder.load(acc[r][c])), acc[r][c])
            # Not unrolled: LLVM unrolled it twice, and with AVX2's 16 vector registers the
            # twelve sums of a 6 x 2 block then went through the stack (issue 17, Zen 3: 58
            # instructions with 13 stack references per two turns; now 24 with none per turn).
            tk.no_unroll(loop)
            return [[builder.load(acc[r][c]) for c in range(len(cols))]
                    for r in range(len(rows))]

        # Columns j, j + 1 at a time: their 2 x 2 diagonal block, then the rows below
        # (the right-hand side's row D included) _ROWS at a time, the last group's missing
        # rows repeating its last one (computed again, written once).
        with cgutils.for_range(builder, builder.udiv(d_, const(2))) as jloop:
            j = builder.mul(jloop.index, const(2))
            j1 = builder.add(j, const(1))
            pj, pj1 = row(j), row(j1)
            (s00, _), (s10, s11) = block_dots(
                [pj, pj1], [pj, pj1],
                [[load(at(pj, j)), load(at(pj, j))], [load(at(pj1, j)), load(at(pj1, j1))]], j)
            inv0 = check(s00)
            l10 = builder.fmul(s10, inv0)
            inv1 = check(tk.fma(builder.fneg(l10), l10, s11))
            store(inv0, at(pj, j))
            store(l10, at(pj1, j))
            store(inv1, at(pj1, j1))
            first = builder.add(j, const(2))
            n_rows = builder.sub(builder.add(d_, const(1)), first)
            with cgutils.for_range(builder, builder.udiv(builder.add(n_rows, const(_ROWS - 1)),
                                                         const(_ROWS))) as iloop:
                i0 = builder.add(first, builder.mul(iloop.index, const(_ROWS)))
                idx = [builder.add(i0, const(r)) for r in range(_ROWS)]
                idx = [builder.select(builder.icmp_signed(">", i, d_), d_, i) for i in idx]
                bases = [row(i) for i in idx]
                t = block_dots(bases, [pj, pj1],
                               [[load(at(p, j)), load(at(p, j1))] for p in bases], j)
                # Stored last row first, so a repeated row keeps the values of its first copy
                for r in range(_ROWS - 1, -1, -1):
                    t0 = builder.fmul(t[r][0], inv0)
                    store(builder.fmul(tk.fma(builder.fneg(t0), l10, t[r][1]), inv1),
                          at(bases[r], j1))
                    store(t0, at(bases[r], j))
        # An odd D's last column, and its entry in the right-hand side's row.
        with builder.if_then(builder.icmp_signed("==", builder.urem(d_, const(2)), const(1))):
            j = builder.sub(d_, const(1))
            pj, py = row(j), row(d_)
            (s, y), = block_dots([pj], [pj, py], [[load(at(pj, j)), load(at(py, j))]], j)
            inv = check(s)
            store(inv, at(pj, j))
            store(builder.fmul(y, inv), at(py, j))
        # L^T x = y from the last unknown up, two at a time: x_i = y_i / L_ii, x_{i-1}, then
        # y_k -= L_ik x_i + L_{i-1,k} x_{i-1} for k < i - 1 (rows of L: contiguous).
        py = row(d_)

        def sweep(terms, n):
            with cgutils.for_range(builder, n) as loop:
                k = builder.mul(loop.index, stride)
                y = load(builder.add(py, k))
                for base, xv in terms:
                    y = tk.fma(builder.fneg(load(builder.add(base, k))), xv, y)
                store(y, builder.add(py, k))

        with builder.if_then(builder.icmp_signed("==", builder.urem(d_, const(2)), const(1))):
            i = builder.sub(d_, const(1))
            pi = row(i)
            xi = builder.fmul(load(at(py, i)), load(at(pi, i)))
            store(xi, at(py, i))
            sweep([(pi, xi)], i)
        top = builder.sub(d_, builder.add(builder.urem(d_, const(2)), const(1)))
        with cgutils.for_range(builder, builder.udiv(d_, const(2))) as loop:
            i = builder.sub(top, builder.mul(loop.index, const(2)))
            i1 = builder.sub(i, const(1))
            pi, pi1 = row(i), row(i1)
            xi = builder.fmul(load(at(py, i)), load(at(pi, i)))
            yi1 = tk.fma(builder.fneg(load(at(pi, i1))), xi, load(at(py, i1)))
            xi1 = builder.fmul(yi1, load(at(pi1, i1)))
            store(xi, at(py, i))
            store(xi1, at(py, i1))
            sweep([(pi, xi), (pi1, xi1)], i1)
        bits = builder.bitcast(builder.load(fail), ir.IntType(W))
        return builder.zext(bits, ir.IntType(64))

    return types.int64(B, D, tol), codegen


@overload(solve_lanes, inline="always")
def _solve_lanes_impl(B, D, tol):
    def impl(B, D, tol):
        return _solve_lanes(B, D, tol)

    return impl


def pack_lanes(A, D, B):
    """``B[e(a, c), l] = A[l, a, c]`` for ``c <= a < D`` and ``B[e(D, c), l] = A[l, D, c]``
    (``c < D``): the ``W = B.shape[1]`` systems of ``A`` (one per lane, each as
    :func:`fastmf.kernels.als._cholesky_solve` takes it) packed for :func:`solve_lanes`.

    Done ``W x W`` entries at a time: ``W`` vector loads (one per system, along a row), a
    transposition by shuffles, ``W`` vector stores. ``A`` is C-contiguous with at least
    ``padded(D)`` columns; ``B`` has ``W`` rows more than :func:`solve_lanes` reads (a row's
    last block spills into the next row's entries before they are written, and the last
    row's past them).
    """
    for a in range(D + 1):
        for c in range(min(a + 1, D)):
            B[a * (a + 1) // 2 + c, :] = A[:, a, c]


@intrinsic
def _pack_lanes(typingctx, A, D, B):
    if not (isinstance(A, types.Array) and A.ndim == 3 and A.layout == "C"
            and A.dtype in (types.float32, types.float64)
            and isinstance(B, types.Array) and B.ndim == 2 and B.layout == "C"
            and B.dtype == A.dtype and isinstance(D, types.Integer)):
        return None
    dt = A.dtype

    def codegen(context, builder, signature, args):
        a_t, d_t, b_t = signature.args
        tk = _IR(context, builder, dt, _VECTOR_BYTES)
        const, W, vec, i32 = tk.const, tk.W, tk.vec, tk.i32
        aa, aptr = tk.array(a_t, args[0])
        ba, bptr = tk.array(b_t, args[2])
        d_ = context.cast(builder, args[1], d_t, types.intp)
        sys_stride, row_stride, _ = (builder.udiv(s, const(tk.size))
                                     for s in cgutils.unpack_tuple(builder, aa.strides, 3))
        b_stride = builder.udiv(cgutils.unpack_tuple(builder, ba.strides, 2)[0],
                                const(tk.size))
        h = W // 2
        lo = ir.Constant(ir.VectorType(i32, W), [m for k in range(h) for m in (k, W + k)])
        hi = ir.Constant(ir.VectorType(i32, W), [m for k in range(h, W) for m in (k, W + k)])

        def transpose(vs):
            """``out[k][l] = vs[l][k]``: log2(W) rounds of interleaving pairs."""
            for _ in range(W.bit_length() - 1):
                out = []
                for j in range(h):
                    out += [builder.shuffle_vector(vs[j], vs[j + h], lo),
                            builder.shuffle_vector(vs[j], vs[j + h], hi)]
                vs = out
            return vs

        with cgutils.for_range(builder, builder.add(d_, const(1))) as aloop:
            a = aloop.index
            e0 = builder.udiv(builder.mul(a, builder.add(a, const(1))), const(2))
            n = builder.add(a, const(1))
            n = builder.select(builder.icmp_signed(">", n, d_), d_, n)
            src = builder.gep(aptr, [builder.mul(a, row_stride)])
            with cgutils.for_range(builder, builder.udiv(builder.add(n, const(W - 1)),
                                                         const(W))) as cloop:
                c0 = builder.mul(cloop.index, const(W))
                vs = [tk.load_vec(src, vec, builder.add(builder.mul(const(lane), sys_stride),
                                                        c0)) for lane in range(W)]
                dst = builder.mul(builder.add(e0, c0), b_stride)
                for k, v in enumerate(transpose(vs)):
                    tk.store_vec(v, bptr, builder.add(dst, builder.mul(const(k), b_stride)))
        return context.get_dummy_value()

    return types.void(A, D, B), codegen


@overload(pack_lanes, inline="always")
def _pack_lanes_impl(A, D, B):
    def impl(A, D, B):
        _pack_lanes(A, D, B)

    return impl
