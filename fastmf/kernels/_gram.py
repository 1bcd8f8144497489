"""The Gram product ``X^T X`` of a row's gathered factors, with explicit SIMD vectors.

Every Cholesky half-step forms, per row, ``X^T X`` of the ``m x K`` block of the other side's
factors. A BLAS call per row made the speed depend on the BLAS build and its kernel choice:
with OpenBLAS's Haswell kernels (forced by ``OPENBLAS_CORETYPE`` on some machines, and the
natural choice on AVX2-only CPUs) the per-row calls leave OpenBLAS's small-matrix path and the
ML-1M-shaped Gram phase took 107 ms against 42 ms with its SkylakeX kernels (K = 32, one
thread, issue 17). :func:`gram_lower` is the same product written out: it holds a block of
``R`` rows of the result in vector registers while it streams over the ``m`` ratings, one
vector load of ``X[t]`` and ``R`` scalar broadcasts per fused multiply-add group (with AVX2,
half the rows against two vectors of ``X[t]``: :data:`_PAIRS`), and computes only the column
blocks at or left of the diagonal. Measured on the same shape: 45 ms at
K = 32 and 93 ms at K = 64 (BLAS: 42 / 109 ms SkylakeX, 107 / 238 ms Haswell), before the
broadcasts were addressed from one pointer (below), which made both Cholesky half-steps
10-13 % faster at K = 32 and 17 % at K = 64.

Long rows are streamed in L1-sized pieces (:data:`_PIECE_BYTES`), with the same sums bit for
bit.

numba has no vector type, so the loop is emitted as LLVM IR (as in ``_prefetch``); under
``NUMBA_DISABLE_JIT=1`` :func:`gram_lower` is the numpy product below. The summation order
over ``t`` is fixed, and each row's product is computed by one thread, so results do not
depend on the thread count.
"""

from llvmlite import binding as llb
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic, overload


def _vector_bytes() -> int:
    """Bytes per vector register of the CPU numba compiles for (64 with AVX-512, else 32)."""
    features = config.CPU_FEATURES or llb.get_host_cpu_features().flatten()
    return 64 if "+avx512f" in features else 32


#: Bytes per SIMD vector the kernels are written for.
VECTOR_BYTES = _vector_bytes()
#: float32 lanes per vector; scratch columns are padded to a multiple of it (which is also a
#: multiple of the float64 lanes).
LANES = VECTOR_BYTES // 4
# Rows of the result held in registers at once: half the vector registers (32 with AVX-512,
# 16 with AVX2), the rest for the loaded row and the broadcasts. 16 rows measured 5-10 %
# faster than 8 at K = 32 and 64 with AVX-512; 12 was slower than both.
_ROWS = VECTOR_BYTES // 4
# With AVX2, a block's rows go half at a time against two column vectors: a pass then loads
# 2 vectors and broadcasts 4 scalars per 8 FMAs, against 1 and 8 for all 8 rows against one
# vector. The loads, not the FMAs, bounded the one-vector pass on Zen 3 (90 loads and 80 FMAs
# per rating at K = 32, about 2 loads per cycle). Same passes, same sums, same bits.
_PAIRS = VECTOR_BYTES == 32
# Each register block is one pass over the row's ratings. With AVX2 there are 10 passes at
# K = 32 and 36 at K = 64. A long row's X is therefore taken _PIECE_BYTES at a time, at least
# _PIECE_MIN ratings, so those passes read L1 rather than L2. Each block's sums are stored to T
# after a piece and reloaded for the next, which keeps every sum's order, and so its bits, as
# in one pass. Rows that fit one piece run in one pass, as before.
# Issue 17 measured this on an AVX2 Zen 3 VM, in-process A/B, min:
# - The product alone, K = 64, 1,000 to 4,000 ratings: 91-123 -> 63-67 ns per rating.
# - K = 128: 368-455 -> 256-288 ns. float64 at K = 32, 4,000 ratings: 59-71 -> 36-37 ns.
# - float32 at K = 32 up to 1,000 ratings: unchanged.
# - Both Cholesky half-steps, ML-1M shape, one thread: 275 -> 262 ms at K = 64 and
#   1109 -> 1025 ms at K = 128. At K = 32, within noise.
# - bench/test_als.py's Gram phase (ML-1M shape, two threads): unchanged at K = 32 and 64.
_PIECE_BYTES = 16 << 10
_PIECE_MIN = 64


@njit(cache=True)
def piece_rows(X):
    """Rows of ``X`` per L1-sized piece (:data:`_PIECE_BYTES`, at least :data:`_PIECE_MIN`),
    as :func:`gram_lower` streams a long product."""
    return max(_PIECE_MIN, _PIECE_BYTES // (X.shape[1] * X.itemsize))


@njit(cache=True)
def padded(K):
    """Columns of a gather scratch for ``K`` factors: ``K`` rounded up to :data:`LANES`."""
    return -(-K // LANES) * LANES


def gram_lower(X, m, K, T):
    """``T[a, c] = sum_{t < m} X[t, a] X[t, c]`` for ``c <= a < K``.

    ``X`` and ``T`` are C-contiguous with at least :func:`padded` ``(K)`` columns, ``X``'s
    columns ``K:`` finite (zero). Row ``a`` is computed with the other rows of its register
    block, so some of its entries right of the diagonal are written too (with the same sums),
    up to the end of the vector that holds the block's last diagonal entry; the rest of ``T``
    is left alone.
    """
    Xm = X[:m, :K]
    T[:K, :K] = Xm.T @ Xm


def gram_lower_range(X, t0, t1, K, T, resume, block0=False):
    """:func:`gram_lower` over rows ``t0 .. t1 - 1`` of ``X``: with ``resume``, the sums are
    continued from what ``T`` holds (a previous range's, stored by this function), bit for
    bit as if both ranges were one call; else they start at zero. A row gathered piece by
    piece (:func:`fastmf.kernels._pass.gather_stats`) takes each piece's product while the
    piece is still in L1. With ``block0`` the first register block (``_ROWS`` rows) is left
    alone, for a caller that summed it itself (``gather_stats``' ``block0``)."""
    Xm = X[t0:t1, :K]
    a0 = _ROWS if block0 else 0
    if resume:
        T[a0:K, :K] += Xm[:, a0:].T @ Xm
    else:
        T[a0:K, :K] = Xm[:, a0:].T @ Xm


@intrinsic
def _gram_lower(typingctx, X, t0, t1, K, T, resume, block0):
    if not (isinstance(X, types.Array) and isinstance(T, types.Array) and X.ndim == T.ndim == 2
            and X.layout == T.layout == "C" and X.dtype == T.dtype
            and X.dtype in (types.float32, types.float64)
            and isinstance(t0, types.Integer) and isinstance(t1, types.Integer)
            and isinstance(K, types.Integer) and isinstance(resume, types.Boolean)
            and isinstance(block0, types.Boolean)):
        return None
    dt = X.dtype

    def codegen(context, builder, signature, args):
        xty, t0ty, mty, kty, tty, _, _ = signature.args
        fty = context.get_value_type(dt)
        size = dt.bitwidth // 8
        W = VECTOR_BYTES // size
        vecty = ir.VectorType(fty, W)
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)

        def const(v):
            return ir.Constant(intp, v)

        xa = context.make_array(xty)(context, builder, args[0])
        ta = context.make_array(tty)(context, builder, args[4])
        start = context.cast(builder, args[1], t0ty, types.intp)
        end = context.cast(builder, args[2], mty, types.intp)
        k_ = context.cast(builder, args[3], kty, types.intp)
        first_block = builder.select(args[6], const(1), const(0))
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vecty, [vecty] * 3),
            f"llvm.fma.v{W}{'f32' if size == 4 else 'f64'}")
        xbase = builder.bitcast(xa.data, fty.as_pointer())
        tbase = builder.bitcast(ta.data, fty.as_pointer())
        xstride = builder.udiv(cgutils.unpack_tuple(builder, xa.strides, 2)[0], const(size))
        tstride = builder.udiv(cgutils.unpack_tuple(builder, ta.strides, 2)[0], const(size))
        accs = [cgutils.alloca_once(builder, vecty) for _ in range(_ROWS)]
        n_blocks = builder.udiv(builder.add(k_, const(_ROWS - 1)), const(_ROWS))
        last_row = builder.sub(k_, const(1))
        # Where a register block is one vector wide (float32), its first half of rows need
        # only the low half of the diagonal column vector: with AVX-512 they take 256-bit
        # vectors there. On Zen 4 a 512-bit FMA occupies both 256-bit units, so a 256-bit one
        # costs half: at K = 32, 40 instead of 48 full-width FMAs per rating, and the product
        # alone went 13.4 -> 11.2 ms per ML-1M-shaped half-step (one thread). Compiled for
        # AVX2 (where 128- and 256-bit FMAs cost the same) it was no faster, so it is not used
        # there. On an Intel Xeon VM (AVX-512, 2026-12-06) the product alone was 0-7 % faster
        # with it than with full-width vectors (K = 32 and 64, rows of 50 to 2,000 ratings).
        # Each entry is still the same FMA chain over the ratings, bit for bit.
        n_half = W // 2 if W == _ROWS and VECTOR_BYTES == 64 else 0
        half_ty = ir.VectorType(fty, W // 2)
        fma_half = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(half_ty, [half_ty] * 3),
            f"llvm.fma.v{W // 2}{'f32' if size == 4 else 'f64'}")
        half_accs = [cgutils.alloca_once(builder, half_ty) for _ in range(n_half)]
        low = ir.Constant(ir.VectorType(i32, W // 2), list(range(W // 2)))

        def vector_pass(first, col, t0, t1, resume, n_half, n_rows=_ROWS, n_cols=1):
            """One pass over ratings ``t0 .. t1 - 1`` for the block's ``n_rows`` rows
            ``first ..`` and ``n_cols`` column vectors from ``col``: rows ``first + i`` for
            ``i < n_half`` take the first vector's low half only (half-width vectors), the
            others all of it."""
            slots = [(half_accs[i], half_ty) if i < n_half else (accs[i * n_cols + c], vecty)
                     for i in range(n_rows) for c in range(n_cols)]
            at = [(i, builder.add(col, const(c * W)))
                  for i in range(n_rows) for c in range(n_cols)]
            for (acc, ty), (i, cc) in zip(slots, at, strict=True):
                if resume:  # rows past K were not stored: read row K - 1, discarded
                    a = builder.add(first, const(i))
                    a = builder.select(builder.icmp_signed("<", a, k_), a, last_row)
                    src = builder.gep(tbase, [builder.add(builder.mul(a, tstride), cc)])
                    builder.store(builder.load(builder.bitcast(src, ty.as_pointer()),
                                               align=size), acc)
                else:
                    builder.store(ir.Constant(ty, None), acc)
            with cgutils.for_range(builder, builder.sub(t1, t0)) as t:
                xrow = builder.gep(xbase, [builder.mul(builder.add(t0, t.index), xstride)])
                xvs = [builder.load(builder.bitcast(builder.gep(xrow, [at[c][1]]),
                                                    vecty.as_pointer()), align=size)
                       for c in range(n_cols)]
                xv_low = builder.shuffle_vector(xvs[0], xvs[0], low) if n_half else None
                xblock = builder.gep(xrow, [first])
                for i in range(n_rows):
                    s = builder.load(builder.gep(xblock, [const(i)]))
                    for c in range(n_cols):
                        acc, ty = slots[i * n_cols + c]
                        b = builder.insert_element(ir.Constant(ty, ir.Undefined), s, i32(0))
                        b = builder.shuffle_vector(
                            b, b, ir.Constant(ir.VectorType(i32, ty.count), [0] * ty.count))
                        if ty is half_ty:
                            builder.store(builder.call(fma_half, [b, xv_low, builder.load(acc)]),
                                          acc)
                        else:
                            builder.store(builder.call(fma, [b, xvs[c], builder.load(acc)]),
                                          acc)
            for (acc, ty), (i, cc) in zip(slots, at, strict=True):
                a = builder.add(first, const(i))
                with builder.if_then(builder.icmp_signed("<", a, k_), likely=True):
                    out = builder.gep(tbase, [builder.add(builder.mul(a, tstride), cc)])
                    builder.store(builder.load(acc), builder.bitcast(out, ty.as_pointer()),
                                  align=size)

        def blocks(t0, t1, resume):
            """All register blocks over ratings ``t0 .. t1 - 1``, their sums starting at zero,
            or with ``resume`` from those the previous piece stored in ``T``."""
            with cgutils.for_range(builder, n_blocks, start=first_block) as block:
                first = builder.mul(block.index, const(_ROWS))
                # The block's rows are columns first .. first + _ROWS - 1 of X, all inside
                # its padded width; those past K (padding) are computed but never stored.
                # Their addresses are one pointer plus constant offsets. Row indices clamped
                # to K - 1 instead made LLVM keep one pointer per row; with 16 rows (AVX-512)
                # they were spilled to the stack, a load and a store beside every FMA (issue
                # 17: 10.5 -> 6.7 ns per rating at K = 32, 31 -> 23 at K = 64, the same sums
                # bit for bit; the AVX2 build's 8 pointers fitted its registers and did not
                # change).
                last = builder.add(first, const(_ROWS - 1))
                last = builder.select(builder.icmp_signed("<", last, k_), last, last_row)
                n_vectors = builder.add(builder.udiv(last, const(W)), const(1))
                # Every column vector left of the diagonal one is full width for all rows;
                # in the diagonal one, the block's first n_half rows take its low half.
                if _PAIRS:
                    # Two column vectors and half the rows at a time: per rating, 2 vector
                    # loads and 4 broadcasts per 8 FMAs instead of 1 and 8 (see _PAIRS).
                    half = const(_ROWS // 2)
                    with cgutils.for_range(builder, builder.udiv(n_vectors, const(2))) as pair:
                        col = builder.mul(pair.index, const(2 * W))
                        vector_pass(first, col, t0, t1, resume, 0, _ROWS // 2, 2)
                        vector_pass(builder.add(first, half), col, t0, t1, resume, 0,
                                    _ROWS // 2, 2)
                    odd = builder.icmp_signed("==", builder.urem(n_vectors, const(2)), const(1))
                    with builder.if_then(odd):
                        vector_pass(first, builder.mul(builder.sub(n_vectors, const(1)),
                                                       const(W)), t0, t1, resume, 0)
                else:
                    with cgutils.for_range(builder, builder.sub(n_vectors, const(1))) as vector:
                        vector_pass(first, builder.mul(vector.index, const(W)), t0, t1, resume,
                                    0)
                    vector_pass(first, builder.mul(builder.sub(n_vectors, const(1)), const(W)),
                                t0, t1, resume, n_half)

        # Pieces of ``tb`` ratings: the first starts the sums (a range that fits it, an
        # empty one included, is one pass) unless ``resume``, the others continue them.
        tb = builder.udiv(const(_PIECE_BYTES), builder.mul(xstride, const(size)))
        tb = builder.select(builder.icmp_signed(">", tb, const(_PIECE_MIN)), tb,
                            const(_PIECE_MIN))
        m_ = builder.sub(end, start)
        first_end = builder.add(start, builder.select(builder.icmp_signed("<", m_, tb), m_, tb))
        with builder.if_else(args[5]) as (then, otherwise):
            with then:
                blocks(start, first_end, True)
            with otherwise:
                blocks(start, first_end, False)
        n_pieces = builder.udiv(builder.add(m_, builder.sub(tb, const(1))), tb)
        with cgutils.for_range(builder, n_pieces, start=const(1)) as piece:
            t0 = builder.add(start, builder.mul(piece.index, tb))
            t1 = builder.add(t0, tb)
            blocks(t0, builder.select(builder.icmp_signed("<", t1, end), t1, end), True)
        return context.get_dummy_value()

    return types.void(X, t0, t1, K, T, resume, block0), codegen


@overload(gram_lower, inline="always")
def _gram_lower_impl(X, m, K, T):
    def impl(X, m, K, T):
        _gram_lower(X, 0, m, K, T, False, False)

    return impl


@overload(gram_lower_range, inline="always")
def _gram_lower_range_impl(X, t0, t1, K, T, resume, block0=False):
    def impl(X, t0, t1, K, T, resume, block0=False):
        _gram_lower(X, t0, t1, K, T, resume, block0)

    return impl

