"""One CG pass over a row's ratings, ``q = r - Z v`` and ``Z^T q``, read in place, with SIMD.

Each conjugate-gradient step of the explicit ALS half-step makes one pass over the row's
ratings: for every rating ``t`` (other side's row ``j = idx[t]``) a dot product ``d_t =
other[j] . v``, then ``q_t`` from it, then ``out += q_t other[j]``. Before issue 17's rewrite,
the half-step first copied the rows ``other[j]`` into a contiguous block and ran numba loops
over it. Two costs, measured on the ML-1M shape, K = 32, float32, one thread, on a Zen 4 core
(AVX-512):

- LLVM vectorized the numba dot product over ``K`` with a width and unroll chosen for long
  loops: at ``K = 32`` its main vector loop (64 floats per turn) never ran, the 8-wide
  remainder loop did, and ``out`` went through memory with run-time alias checks every four
  ratings: 3.3-3.6 ns per rating and pass, about 12 cycles.
- The copy itself took 5.5 ms of a 17-19 ms half-step: 13-20 cycles per rating.

:func:`rows_pass` reads ``other[idx[t]]`` in place (with a prefetch hint :data:`PREFETCH`
ratings ahead, for a matrix larger than the cache) and is written as LLVM IR with explicit
vectors, as :mod:`fastmf.kernels._gram` writes the Gram product:

- ``v`` and ``out`` are held in registers for the whole row (``ceil(K / W)`` vectors each,
  ``W`` the lanes per vector) when that is at most :data:`_MAX_REGISTER_VECTORS`; wider rows
  run the same loop with ``out`` in memory. The last vector of a row is a masked load when
  ``W`` does not divide ``K``.
- Four or eight ratings at a time (:func:`_group`): their dot products as vectors, reduced
  together by one tree of shuffles to a vector of one lane per rating (instead of separate
  horizontal sums), then ``q`` for the group as one short vector.
- ``out`` takes the group's ``q_t other[j]`` in two register sets (the first and the second
  half of each group), added at the end, so consecutive fused multiply-adds do not wait for
  each other.
- With AVX-512, each ``q_t`` is broadcast for those multiply-adds by reading it back from
  ``q``, where the group was just stored, not by a lane shuffle of the register: the
  shuffles and the fused multiply-adds share two execution ports, and the dot products'
  reduction tree already takes about two shuffles per rating; a broadcast from memory runs
  on a load port (folded into the multiply-add). CG half-steps, one thread, Intel Xeon VM
  (issue 17): 5-10 % faster. The AVX2 code keeps the shuffle: on a Zen 3 core the load
  waits for the group's store to be forwarded, and the half-steps took 12 % longer that way
  (ML-1M shape, one thread: 16.1 against 18.3 ms per user step); compiled for AVX2 on the
  Xeon, the two measured the same. Either way the same value, the same bits.

The Cholesky half-step gathers the same rows into a block for its Gram product
(:func:`fastmf.kernels._gram.gram_lower`), summing the bias and rating columns on the way.
:func:`gather_stats` is that loop with the same vectors: each row is two loads and two stores
at K = 32 (AVX-512), the sums stay in registers, and every sum runs over the ratings in the
order the scalar loop used, so the statistics are the same bit for bit. The gather and Gram
of a half-step (ML-1M shape, K = 32, one thread, Zen 4) went from 23.0 to 18.7 ms, of which
the Gram product is 13.4 ms.

The order of every sum is fixed when the kernel is compiled and each row is computed by one
thread, so results do not depend on the thread count. Under ``NUMBA_DISABLE_JIT=1`` both
functions are the numpy code below, which computes the same quantities (not the same bits).
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from fastmf.kernels._gram import VECTOR_BYTES
from fastmf.kernels._prefetch import DISTANCE, FAR_DISTANCE

# Ratings ahead of the one being read whose row is hinted into the cache.
PREFETCH = DISTANCE
# Ratings ahead of the one being read whose row is hinted into L2, where a row is read from
# memory: the first pass of a CG row and the Cholesky gather (_prefetch.FAR_DISTANCE).
FAR = FAR_DISTANCE
#: Rows (and columns) of the Gram product's first register block, which the Cholesky gather
#: can sum while it copies the rows (float32 with AVX-512: gram_lower's 16-row blocks, one
#: vector wide); the product then starts at its second block.
FIRST_BLOCK_ROWS = 16 if VECTOR_BYTES == 64 else 0
# Row widths (in vectors) for which the gather sums that block: the row's vectors, its two
# sums and the block's 16 sums in registers.
_FUSED_WIDTHS = (2, 3)
# Widest row (in vectors) whose v and out stay in registers; wider ones keep out in memory.
_MAX_REGISTER_VECTORS = 4
# Vector registers of the target (16 with AVX2, 32 with AVX-512).
_REGISTERS = 32 if VECTOR_BYTES == 64 else 16
# How each q_t reaches the fused multiply-adds of Z^T q: read back from where its group was
# just stored (AVX-512), or shuffled out of the register (AVX2). Module docstring: why.
_BROADCAST_FROM_MEMORY = VECTOR_BYTES == 64


def _group(n_vec):
    """Ratings per group, whose dot products are reduced together: eight when their rows
    (``8 n_vec`` vectors) fill at most half the registers, else four. With AVX-512 at K = 32
    (float32) eight made a CG iteration about 5 % faster (ML-1M shape, one thread, Zen 4:
    23.7-24.1 -> 22.4-23.3 ms); compiled for AVX2, eight spilled and were not faster."""
    return 8 if n_vec is not None and 8 * n_vec <= _REGISTERS // 2 else 4


class _IR:
    """LLVM IR helpers for a kernel body over one float dtype: the vector type of the width the
    kernels are written for (:data:`fastmf.kernels._gram.VECTOR_BYTES`, or ``vector_bytes``),
    loads and stores of vectors at element offsets, masked loads, fused multiply-adds and
    prefetch hints."""

    def __init__(self, context, builder, dt, vector_bytes=VECTOR_BYTES):
        self.context, self.builder = context, builder
        self.fty = context.get_value_type(dt)
        self.size = dt.bitwidth // 8
        self.W = vector_bytes // self.size
        self.vec = ir.VectorType(self.fty, self.W)
        self.intp = context.get_value_type(types.intp)
        self.i32 = ir.IntType(32)
        self.i8p = ir.IntType(8).as_pointer()
        self.opaque = getattr(self.i8p, "is_opaque", False)  # typed pointers today
        self.lanes = ir.Constant(ir.VectorType(self.intp, self.W), list(range(self.W)))

    def const(self, c):
        return ir.Constant(self.intp, c)

    def function(self, name, ret, params):
        return cgutils.get_or_insert_function(self.builder.module,
                                              ir.FunctionType(ret, params), name)

    def _suffix(self, ty):
        """LLVM's intrinsic suffix for ``ty`` (``f32``, ``v8f32``, ``v4f64``, ...)."""
        element = ty.element if isinstance(ty, ir.VectorType) else ty
        base = "f64" if isinstance(element, ir.DoubleType) else "f32"
        return f"v{ty.count}{base}" if isinstance(ty, ir.VectorType) else base

    def fma(self, a, b, c):
        """``a * b + c``, one rounding (scalars or vectors)."""
        fn = self.function(f"llvm.fma.{self._suffix(a.type)}", a.type, [a.type] * 3)
        return self.builder.call(fn, [a, b, c])

    def array(self, aty, val):
        """``(array struct, pointer to its first element)``."""
        a = self.context.make_array(aty)(self.context, self.builder, val)
        return a, self.builder.bitcast(a.data, self.fty.as_pointer())

    def splat(self, s, ty):
        b = self.builder
        s = b.insert_element(ir.Constant(ty, ir.Undefined), s, self.i32(0))
        return b.shuffle_vector(s, s, ir.Constant(ir.VectorType(self.i32, ty.count),
                                                  [0] * ty.count))

    def load_vec(self, ptr, ty, offset):
        p = self.builder.gep(ptr, [offset])
        return self.builder.load(self.builder.bitcast(p, ty.as_pointer()), align=self.size)

    def store_vec(self, value, ptr, offset):
        p = self.builder.gep(ptr, [offset])
        self.builder.store(value, self.builder.bitcast(p, value.type.as_pointer()),
                           align=self.size)

    def mask_below(self, col, k):
        """Lanes ``col .. col + W - 1`` that are below ``k`` (the row's factors)."""
        vty = ir.VectorType(self.intp, self.W)
        return self.builder.icmp_signed("<", self.builder.add(self.splat(col, vty), self.lanes),
                                        self.splat(k, vty))

    def load_row(self, ptr, col, mask):
        """``W`` entries from ``ptr + col``, zero where ``mask`` is not set (past the row's
        end: another row, or past the array); ``mask`` None: a plain load."""
        b = self.builder
        p = b.bitcast(b.gep(ptr, [col]), self.vec.as_pointer())
        if mask is None:
            return b.load(p, align=self.size)
        sfx = self._suffix(self.vec)
        fn = self.function(f"llvm.masked.load.{sfx}." + ("p0" if self.opaque else f"p0{sfx}"),
                           self.vec, [self.vec.as_pointer(), self.i32,
                                      ir.VectorType(ir.IntType(1), self.W), self.vec])
        return b.call(fn, [p, self.i32(self.size), mask, ir.Constant(self.vec, None)])

    def fold(self, a, b, lo, hi):
        """``shuffle(a, b, lo) + shuffle(a, b, hi)``."""
        b_ = self.builder
        i32 = self.i32
        sl = b_.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, len(lo)), lo))
        sh = b_.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, len(hi)), hi))
        return b_.fadd(sl, sh)

    def reduce_group(self, vs):
        """The horizontal sums of the vectors ``vs`` (W lanes each, a power of two of them)
        as one vector, a lane per input, by a fixed tree: pairs of vectors folded half onto
        half (each then holds twice the inputs, in half the lanes each) until one vector is
        left, then halves within each input's lanes until one lane each."""
        W, fold = self.W, self.fold
        vs, per, w = list(vs), 1, W  # each vector: `per` inputs of `w` lanes
        while len(vs) > 1 and w > 1:
            h = w // 2
            lo = [i * w + k for i in range(per) for k in range(h)]
            hi = [i * w + h + k for i in range(per) for k in range(h)]
            vs = [fold(vs[i], vs[i + 1], lo + [W + c for c in lo], hi + [W + c for c in hi])
                  for i in range(0, len(vs), 2)]
            per, w = 2 * per, h
        while len(vs) > 1:  # one lane per input already (fewer lanes than inputs)
            n = per * w
            vs = [self.builder.shuffle_vector(vs[i], vs[i + 1], ir.Constant(
                ir.VectorType(self.i32, 2 * n), list(range(2 * n))))
                  for i in range(0, len(vs), 2)]
            per *= 2
        c = vs[0]
        while w > 1:
            h = w // 2
            c = fold(c, c, [i * w + k for i in range(per) for k in range(h)],
                     [i * w + h + k for i in range(per) for k in range(h)])
            w = h
        return c

    def pair_sum(self, a):
        """A short vector's lanes summed by adjacent pairs: ``((a0 + a1) + (a2 + a3))`` for
        four."""
        vals = [self.builder.extract_element(a, self.i32(i)) for i in range(a.type.count)]
        while len(vals) > 1:
            vals = [self.builder.fadd(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]
        return vals[0]

    def hsum(self, a):
        """One vector's horizontal sum, by the same kind of fixed tree."""
        n = a.type.count
        while n > 1:
            n //= 2
            a = self.fold(a, a, list(range(n)), list(range(n, 2 * n)))
        return self.builder.extract_element(a, self.i32(0))

    def by_width(self, nv, k, body, done):
        """Branch once on a row's width ``nv`` vectors (``k`` entries): ``body(n_vec,
        masked)`` emits the loop for ``n_vec`` = 1 .. :data:`_MAX_REGISTER_VECTORS` vectors
        held in registers, unmasked where ``W`` divides ``k`` (K = 32, 64, ...), and
        ``body(None, True)`` any other width; each then branches to ``done``."""
        b = self.builder
        whole = b.icmp_signed("==", b.urem(k, self.const(self.W)), self.const(0))
        any_width = b.append_basic_block()
        switch = b.switch(nv, any_width)
        for n_vec in range(1, _MAX_REGISTER_VECTORS + 1):
            case = b.append_basic_block()
            switch.add_case(self.const(n_vec), case)
            b.position_at_end(case)
            plain, masked = b.append_basic_block(), b.append_basic_block()
            b.cbranch(whole, plain, masked)
            for block, flag in ((plain, False), (masked, True)):
                b.position_at_end(block)
                body(n_vec, flag)
                b.branch(done)
        b.position_at_end(any_width)
        body(None, True)
        b.branch(done)

    def no_unroll(self, loop):
        """Mark the :func:`cgutils.for_range` loop ``loop`` (after its body is emitted) not
        to be unrolled by LLVM."""
        module = self.builder.module
        latch = loop.index.incomings[-1][1]
        flag = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
        node = module.add_metadata([flag, ir.MetaDataString(module, f"fastmf.{id(latch)}")])
        node.operands = (node, flag)  # a loop ID refers to itself, and is unique
        latch.terminator.set_metadata("llvm.loop", node)

    def prefetch(self, ptr, locality=3):
        """Hint: ``ptr``'s line will be read soon (a data read; ``locality`` 3 into L1, 2 into
        L2 only)."""
        fn = self.function("llvm.prefetch.p0" if self.opaque else "llvm.prefetch.p0i8",
                           ir.VoidType(), [self.i8p, self.i32, self.i32, self.i32])
        i32 = self.i32
        self.builder.call(fn, [self.builder.bitcast(ptr, self.i8p), i32(0), i32(locality),
                               i32(1)])

    def prefetch_row(self, ptr, n_vec, locality=3):
        """Hint a factor row of ``n_vec`` vectors at ``ptr`` (``None``: its first line).

        One hint per 64-byte line, from the row's start. At K = 32 in float32 a row is two
        lines (the estimators' factor matrices start on a 64-byte boundary), and a hint for
        the first only left the second to a demand miss. Issue 17, Zen 3 VM, one thread,
        ``bench/ab_halfstep.py``, min / median: ML-10M-shaped Cholesky half-steps, item
        412 / 450 -> 363 / 380 ms and user 268 / 335 -> 252 / 269 ms; ML-1M-shaped, 0.5-5 %
        less in three runs. The hints 16 ratings ahead name both lines in the gather only:
        in CG's passes, which read each row several times, the second made them no faster
        (slower in one run). The hints into L2 further ahead (``locality=2``,
        :data:`FAR`) name both lines wherever they are given.
        """
        self.prefetch(ptr, locality)
        for line in range(1, -(-(n_vec or 0) * self.W * self.size // 64)):
            self.prefetch(self.builder.gep(ptr, [self.const(line * 64 // self.size)]),
                          locality)

    def prefetch_group(self, idx, idx_dtype, at, G, row_ptr, n_vec=None, far=False,
                       far_vec=None):
        """Hint the rows ``row_ptr(idx[at + PREFETCH + i])``, ``i < G``, for a group of
        ``G`` ratings from position ``at`` of the index array ``idx`` (a numba array struct),
        bounded once for the group, not per rating: the first at most ``len(idx) - G`` (a
        group loop runs only over whole groups, so that is not negative). Each row as
        :meth:`prefetch_row` with ``n_vec``. With ``far``, the rows :data:`FAR` ratings
        ahead are also hinted into L2, each with ``far_vec``."""
        builder, const = self.builder, self.const
        top = builder.sub(cgutils.unpack_tuple(builder, idx.shape, 1)[0], const(G))
        hints = [(PREFETCH, n_vec, 3)] + ([(FAR, far_vec, 2)] if far else [])
        for dist, nv, locality in hints:
            at_ = builder.add(at, const(dist))
            at_ = builder.select(builder.icmp_signed("<", at_, top), at_, top)
            for i in range(G):
                j = self.context.cast(builder, builder.load(builder.gep(idx.data, [
                    builder.add(at_, const(i))])), idx_dtype, types.intp)
                self.prefetch_row(row_ptr(j), nv, locality)


def rows_pass(other, idx, lo, m, data, bias, offset, v, q, out, vb, residual, curvature):
    """One pass over the ratings ``lo .. lo + m - 1``; returns ``sum q`` (or ``sum q^2``).

    For each rating ``t`` with ``j = idx[lo + t]``: ``d_t = other[j, :K] . v[:K]`` and
    ``q_t = (r_t - d_t) - vb`` with ``r_t = (data[lo + t] - offset) - bias[j]`` if
    ``residual``, else ``q_t = d_t + vb``; ``q[:m]`` receives ``q_t``. Unless ``curvature``,
    ``out[:K] += sum_t q_t other[j]`` and the return value is ``sum_t q_t``; with
    ``curvature``, ``out`` is not touched and the return value is ``sum_t q_t^2``.

    ``other`` is C-contiguous. ``v`` and ``out`` have at least ``padded(K)``
    (:func:`fastmf.kernels._gram.padded`) entries, all finite: the vectors past ``K`` are
    read and written whole (``out``'s entries from ``K`` on receive ``+ 0``).
    """
    K = other.shape[1]
    rows = other[idx[lo:lo + m]]
    d = rows @ v[:K]
    if residual:
        qt = ((data[lo:lo + m] - offset) - bias[idx[lo:lo + m]] - d) - vb
    else:
        qt = d + vb
    q[:m] = qt
    if curvature:
        return qt @ qt
    out[:K] += qt @ rows
    return qt.sum()


@intrinsic
def _rows_pass(typingctx, other, idx, lo, m, data, bias, offset, v, q, out, vb, residual,
               curvature):
    if not (isinstance(other, types.Array) and other.ndim == 2 and other.layout == "C"
            and other.dtype in (types.float32, types.float64)
            and all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == other.dtype
                    for a in (data, bias, v, q, out))
            and isinstance(idx, types.Array) and idx.ndim == 1
            and isinstance(idx.dtype, types.Integer)
            and isinstance(lo, types.Integer) and isinstance(m, types.Integer)
            and isinstance(residual, types.Boolean) and isinstance(curvature, types.Boolean)):
        return None
    dt = other.dtype
    sig = dt(other, idx, lo, m, data, bias, offset, v, q, out, vb, residual, curvature)

    def codegen(context, builder, signature, args):
        (oth_t, idx_t, lo_t, m_t, data_t, bias_t, off_t, v_t, q_t, out_t, vb_t) = \
            signature.args[:11]
        tk = _IR(context, builder, dt)
        fty, size, W, vec, intp, i32 = tk.fty, tk.size, tk.W, tk.vec, tk.intp, tk.i32
        const, splat, load_vec, store_vec = tk.const, tk.splat, tk.load_vec, tk.store_vec
        array = tk.array

        oa, obase = array(oth_t, args[0])
        ia = context.make_array(idx_t)(context, builder, args[1])
        lo_ = context.cast(builder, args[2], lo_t, types.intp)
        m_ = context.cast(builder, args[3], m_t, types.intp)
        _, dptr = array(data_t, args[4])
        _, bptr = array(bias_t, args[5])
        offset_ = context.cast(builder, args[6], off_t, dt)
        _, vptr = array(v_t, args[7])
        _, qptr = array(q_t, args[8])
        _, optr = array(out_t, args[9])
        vb_ = context.cast(builder, args[10], vb_t, dt)
        residual_, curvature_ = args[11], args[12]
        k_ = cgutils.unpack_tuple(builder, oa.shape, 2)[1]
        ostride = builder.udiv(cgutils.unpack_tuple(builder, oa.strides, 2)[0], const(size))
        nv = builder.udiv(builder.add(k_, const(W - 1)), const(W))
        zero_w = ir.Constant(vec, None)
        fzero = ir.Constant(fty, 0.0)

        def mask_at(col):
            return tk.mask_below(col, k_)

        load_row = tk.load_row

        reduce_group, hsum = tk.reduce_group, tk.hsum

        def index(t):
            """``idx[lo + t]`` as intp."""
            j = builder.load(builder.gep(ia.data, [builder.add(lo_, t)]))
            return context.cast(builder, j, idx_t.dtype, types.intp)

        def row_ptr(j):
            return builder.gep(obase, [builder.mul(j, ostride)])

        def r_of(t, j):
            """``(data[lo + t] - offset) - bias[j]``."""
            d = builder.load(builder.gep(dptr, [builder.add(lo_, t)]))
            return builder.fsub(builder.fsub(d, offset_), builder.load(builder.gep(bptr, [j])))

        def emit(n_vec, residual, curvature, masked=True):
            """The pass, for rows of ``n_vec`` vectors with ``v`` and ``out`` in registers
            (``None``: any width, ``out`` in memory), the last vector of a row masked if
            ``masked``. Returns the value to return."""
            last_mask = mask_at(const((n_vec - 1) * W)) if n_vec and masked else None
            vv = [load_vec(vptr, vec, const(k * W)) for k in range(n_vec or 0)]

            def row_vectors(ptr):
                return [load_row(ptr, const(k * W), last_mask if k == n_vec - 1 else None)
                        for k in range(n_vec)]

            def dot(xs, ptr):
                """The row's ``. v`` as a vector of partial sums (``xs``: its vectors)."""
                if n_vec is not None:
                    acc = builder.fmul(xs[0], vv[0])
                    for k in range(1, n_vec):
                        acc = tk.fma(xs[k], vv[k], acc)
                    return acc
                acc_slot = cgutils.alloca_once_value(builder, zero_w)
                with cgutils.for_range(builder, nv) as loop:
                    col = builder.mul(loop.index, const(W))
                    builder.store(tk.fma(load_row(ptr, col, mask_at(col)),
                                         load_vec(vptr, vec, col), builder.load(acc_slot)),
                                  acc_slot)
                return builder.load(acc_slot)

            def axpy_memory(ptrs, bqs):
                """``out += sum_i bq_i row_i`` over the row's vectors, ``out`` in memory."""
                with cgutils.for_range(builder, nv) as loop:
                    col = builder.mul(loop.index, const(W))
                    mask = mask_at(col)
                    # two chains: the first half of the rows onto out, the second from zero
                    half = (len(ptrs) + 1) // 2
                    a = load_vec(optr, vec, col)
                    b = None
                    for i in range(len(ptrs)):
                        xv = load_row(ptrs[i], col, mask)
                        if i < half:
                            a = tk.fma(xv, bqs[i], a)
                        else:
                            b = builder.fmul(xv, bqs[i]) if b is None else tk.fma(xv, bqs[i], b)
                    if b is not None:
                        a = builder.fadd(a, b)
                    store_vec(a, optr, col)

            update = not curvature
            # q's address hidden from LLVM (an empty asm), so that it reads q_t back from
            # memory rather than forwarding the stored vector's lane
            q_far = builder.asm(ir.FunctionType(qptr.type, [qptr.type]), "", "=r,0", [qptr],
                                False)
            # acc[s][k]: register set s (first or second half of each group), vector k
            if update and n_vec is not None:
                acc = [[cgutils.alloca_once_value(builder, zero_w) for _ in range(n_vec)]
                       for _ in range(2)]
            G = _group(n_vec)
            vecg = ir.VectorType(fty, G)
            total = cgutils.alloca_once_value(builder, ir.Constant(vecg, None))
            n_groups = builder.udiv(m_, const(G))
            with cgutils.for_range(builder, n_groups) as group:
                t = builder.mul(group.index, const(G))
                ts = [builder.add(t, const(i)) for i in range(G)]
                js = [index(ti) for ti in ts]
                ptrs = [row_ptr(j) for j in js]
                tk.prefetch_group(ia, idx_t.dtype, builder.add(lo_, t), G, row_ptr,
                                  far=residual, far_vec=n_vec)
                xs = [row_vectors(p) if n_vec else None for p in ptrs]
                d = reduce_group([dot(x, p) for x, p in zip(xs, ptrs)])
                if residual:
                    # the group's ratings as one load, its biases lane by lane
                    dg = builder.load(builder.bitcast(builder.gep(dptr, [builder.add(lo_, t)]),
                                                      vecg.as_pointer()), align=size)
                    bg = ir.Constant(vecg, ir.Undefined)
                    for i, j in enumerate(js):
                        bg = builder.insert_element(bg, builder.load(builder.gep(bptr, [j])),
                                                    i32(i))
                    rg = builder.fsub(builder.fsub(dg, splat(offset_, vecg)), bg)
                    qv = builder.fsub(builder.fsub(rg, d), splat(vb_, vecg))
                else:
                    qv = builder.fadd(d, splat(vb_, vecg))
                builder.store(qv, builder.bitcast(builder.gep(qptr, [t]), vecg.as_pointer()),
                              align=size)
                if curvature:
                    builder.store(tk.fma(qv, qv, builder.load(total)), total)
                else:
                    builder.store(builder.fadd(builder.load(total), qv), total)
                    if _BROADCAST_FROM_MEMORY:  # a load, folded into the FMA
                        bqs = [splat(builder.load(builder.gep(q_far, [
                            builder.add(t, const(i))]), align=size), vec) for i in range(G)]
                    else:  # a lane shuffle of the register
                        bqs = [splat(builder.extract_element(qv, i32(i)), vec)
                               for i in range(G)]
                    if n_vec is None:
                        axpy_memory(ptrs, bqs)
                    else:
                        for i in range(G):
                            s = acc[2 * i // G]
                            for k in range(n_vec):
                                builder.store(tk.fma(xs[i][k], bqs[i], builder.load(s[k])),
                                              s[k])
            # the last m % 4 ratings, one at a time
            tail = cgutils.alloca_once_value(builder, fzero)
            with cgutils.for_range(builder, builder.urem(m_, const(G))) as rest:
                ti = builder.add(builder.mul(n_groups, const(G)), rest.index)
                j = index(ti)
                ptr = row_ptr(j)
                x = row_vectors(ptr) if n_vec else None
                dv = hsum(dot(x, ptr))
                if residual:
                    qt = builder.fsub(builder.fsub(r_of(ti, j), dv), vb_)
                else:
                    qt = builder.fadd(dv, vb_)
                builder.store(qt, builder.gep(qptr, [ti]))
                if curvature:
                    builder.store(tk.fma(qt, qt, builder.load(tail)), tail)
                else:
                    builder.store(builder.fadd(builder.load(tail), qt), tail)
                    bq = splat(qt, vec)
                    if n_vec is None:
                        axpy_memory([ptr], [bq])
                    else:
                        for k in range(n_vec):
                            builder.store(tk.fma(x[k], bq, builder.load(acc[0][k])),
                                          acc[0][k])
            if update and n_vec is not None:
                for k in range(n_vec):
                    col = const(k * W)
                    both = builder.fadd(builder.load(acc[0][k]), builder.load(acc[1][k]))
                    store_vec(builder.fadd(load_vec(optr, vec, col), both), optr, col)
            return builder.fadd(tk.pair_sum(builder.load(total)), builder.load(tail))

        # One loop per mode and register width, chosen once per call.
        result = cgutils.alloca_once_value(builder, fzero)
        done = builder.append_basic_block("rows_pass.done")
        flags = [builder.zext(flag, intp) for flag in (residual_, curvature_)]
        mode = builder.add(flags[0], builder.mul(flags[1], const(2)))
        by_mode = builder.switch(mode, done)
        for res_flag in (False, True):
            for curv_flag in (False, True):
                block = builder.append_basic_block()
                by_mode.add_case(const(res_flag + 2 * curv_flag), block)
                builder.position_at_end(block)
                tk.by_width(nv, k_, lambda n_vec, masked, r=res_flag, c=curv_flag:
                            builder.store(emit(n_vec, r, c, masked), result), done)
        builder.position_at_end(done)
        return builder.load(result)

    return sig, codegen


@overload(rows_pass, inline="always")
def _rows_pass_impl(other, idx, lo, m, data, bias, offset, v, q, out, vb, residual,
                    curvature):
    def impl(other, idx, lo, m, data, bias, offset, v, q, out, vb, residual, curvature):
        return _rows_pass(other, idx, lo, m, data, bias, offset, v, q, out, vb, residual,
                          curvature)

    return impl


@njit(cache=True)
def sums_first_block(X, K):
    """Whether :func:`gather_stats` sums the Gram product's first register block for rows of
    ``K`` factors gathered into ``X`` (``block0``): float32 with AVX-512, ``K`` of two or
    three vectors. :func:`fastmf.kernels._gram.gram_lower_range` then starts at block 1."""
    n_vec = -(-K // max(FIRST_BLOCK_ROWS, 1))
    return FIRST_BLOCK_ROWS > 0 and X.itemsize == 4 and n_vec in _FUSED_WIDTHS


def gather_stats(other, idx, lo, m, data, bias, offset, X, T, sr, srr, t0, resume,
                 block0=False):
    """Gather ratings ``lo .. lo + m - 1`` for a Gram product, with their first moments.

    For each rating ``t`` with ``j = idx[lo + t]`` and ``r_t = (data[lo + t] - offset) -
    bias[j]``: ``X[t0 + t, :K] = other[j]`` (``X[t0 + t, K:]`` zero). Then ``T[K, :K] =
    sum_t X[t0 + t]``, ``T[K + 1, :K] = sum_t r_t X[t0 + t]`` (``T[K:K+2, K:]`` zero), and
    the return value is ``(sr + sum_t r_t, srr + sum_t r_t^2)``. Every sum runs over ``t``
    in order, one fused multiply-add or add per rating, as the scalar loop it replaces did.
    With ``resume`` the two rows of ``T`` are continued from what they hold (a previous
    call's sums) instead of starting at zero, so a row gathered in pieces has the sums of
    one call, bit for bit.

    With ``block0`` (only where :func:`sums_first_block` says so), the loop also sums the
    Gram product's first register block, ``T[a, c] = sum_t X[t0 + t, a] X[t0 + t, c]`` for
    ``c <= a < 16`` (with some entries right of the diagonal, as
    :func:`fastmf.kernels._gram.gram_lower` writes them), each entry the FMA chain that
    function computes, and continued from ``T`` with ``resume``. The block's FMAs (12
    full-width per rating at K = 32) then run while the rows come in from the cache, instead
    of in a pass of their own over the copied rows.

    The ratings' ``r_t`` are not kept (:func:`residual_sse` computes them again): issue 17,
    Zen 4, ML-1M shape, K = 32, one thread, the store of each cost the gather with the
    first block about 0.5 ms per half-step (5.46 -> 4.84 ms apart).

    ``X`` and ``T`` are C-contiguous with ``padded(K)`` columns.
    """
    K = other.shape[1]
    j = idx[lo:lo + m]
    rows = other[j]
    X[t0:t0 + m, :K] = rows
    X[t0:t0 + m, K:] = 0
    rt = (data[lo:lo + m] - offset) - bias[j]
    if not resume:
        T[K:K + 2] = 0
    T[K, :K] += rows.sum(axis=0)
    T[K + 1, :K] += rt @ rows
    if block0:
        B = FIRST_BLOCK_ROWS
        if resume:
            T[:B, :B] += rows[:, :B].T @ rows[:, :B]
        else:
            T[:B, :B] = rows[:, :B].T @ rows[:, :B]
    return sr + rt.sum(), srr + rt @ rt


@intrinsic
def _gather_stats(typingctx, other, idx, lo, m, data, bias, offset, X, T, sr, srr, t0,
                  resume, block0):
    if not (isinstance(other, types.Array) and other.ndim == 2 and other.layout == "C"
            and other.dtype in (types.float32, types.float64)
            and all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == other.dtype
                    for a in (data, bias))
            and all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
                    and a.dtype == other.dtype for a in (X, T))
            and isinstance(idx, types.Array) and idx.ndim == 1
            and isinstance(idx.dtype, types.Integer)
            and isinstance(lo, types.Integer) and isinstance(m, types.Integer)
            and isinstance(t0, types.Integer) and isinstance(resume, types.Boolean)
            and isinstance(block0, types.Boolean)):
        return None
    dt = other.dtype
    sig = types.UniTuple(dt, 2)(other, idx, lo, m, data, bias, offset, X, T, sr, srr, t0,
                                resume, block0)

    def codegen(context, builder, signature, args):
        (oth_t, idx_t, lo_t, m_t, data_t, bias_t, off_t, x_t, t_t, sr_t, srr_t, t0_t,
         _, _) = signature.args
        tk = _IR(context, builder, dt)
        const, W, size = tk.const, tk.W, tk.size
        oa, obase = tk.array(oth_t, args[0])
        ia = context.make_array(idx_t)(context, builder, args[1])
        lo_ = context.cast(builder, args[2], lo_t, types.intp)
        m_ = context.cast(builder, args[3], m_t, types.intp)
        _, dptr = tk.array(data_t, args[4])
        _, bptr = tk.array(bias_t, args[5])
        offset_ = context.cast(builder, args[6], off_t, dt)
        xa, xptr = tk.array(x_t, args[7])
        ta, tptr = tk.array(t_t, args[8])
        t0_ = context.cast(builder, args[11], t0_t, types.intp)
        resume = args[12]
        block0 = args[13]
        k_ = cgutils.unpack_tuple(builder, oa.shape, 2)[1]
        ostride = builder.udiv(cgutils.unpack_tuple(builder, oa.strides, 2)[0], const(size))
        xstride = builder.udiv(cgutils.unpack_tuple(builder, xa.strides, 2)[0], const(size))
        tstride = builder.udiv(cgutils.unpack_tuple(builder, ta.strides, 2)[0], const(size))
        ilast = builder.sub(cgutils.unpack_tuple(builder, ia.shape, 1)[0], const(1))
        nv = builder.udiv(builder.add(k_, const(W - 1)), const(W))
        zero_w = ir.Constant(tk.vec, None)
        t_sum = builder.gep(tptr, [builder.mul(k_, tstride)])  # T[K]
        t_rsum = builder.gep(t_sum, [tstride])  # T[K + 1]
        xptr = builder.gep(xptr, [builder.mul(t0_, xstride)])  # X[t0]
        sr_slot = cgutils.alloca_once_value(builder, context.cast(builder, args[9], sr_t, dt))
        srr_slot = cgutils.alloca_once_value(builder, context.cast(builder, args[10], srr_t, dt))

        def index(at):
            j = builder.load(builder.gep(ia.data, [at]))
            return context.cast(builder, j, idx_t.dtype, types.intp)

        fusable = W == FIRST_BLOCK_ROWS  # float32 with AVX-512: see FIRST_BLOCK_ROWS
        B = FIRST_BLOCK_ROWS
        half = ir.VectorType(tk.fty, W // 2)
        low = ir.Constant(ir.VectorType(tk.i32, W // 2), list(range(W // 2)))

        def emit(n_vec, masked):
            """The loop with the sums of ``n_vec`` vectors in registers (``None``: any
            width, sums in T); where ``block0`` asks and the width allows, with the Gram
            product's first register block too."""
            if fusable and n_vec in _FUSED_WIDTHS:
                with builder.if_else(block0) as (yes, no):
                    with yes:
                        emit_loop(n_vec, masked, True)
                    with no:
                        emit_loop(n_vec, masked, False)
            else:
                emit_loop(n_vec, masked, False)

        def emit_loop(n_vec, masked, fused):
            # The Gram block's rows a < B/2 need only columns c < B/2: half-width sums
            # (as gram_lower's diagonal block).
            if fused:
                gty = [half if a < B // 2 else tk.vec for a in range(B)]
                gacc = [cgutils.alloca_once(builder, ty) for ty in gty]
                with builder.if_else(resume) as (yes, no):
                    with yes:
                        for a in range(B):
                            row = builder.gep(tptr, [builder.mul(const(a), tstride)])
                            builder.store(tk.load_vec(row, gty[a], const(0)), gacc[a])
                    with no:
                        for a in range(B):
                            builder.store(ir.Constant(gty[a], None), gacc[a])
            if n_vec is not None:
                acc = [[cgutils.alloca_once_value(builder, zero_w) for _ in range(n_vec)]
                       for _ in range(2)]
                last = tk.mask_below(const((n_vec - 1) * W), k_) if masked else None
                with builder.if_then(resume):
                    for k in range(n_vec):
                        builder.store(tk.load_vec(t_sum, tk.vec, const(k * W)), acc[0][k])
                        builder.store(tk.load_vec(t_rsum, tk.vec, const(k * W)), acc[1][k])
            else:
                with builder.if_then(builder.not_(resume)):
                    with cgutils.for_range(builder, nv) as loop:
                        col = builder.mul(loop.index, const(W))
                        tk.store_vec(zero_w, t_sum, col)
                        tk.store_vec(zero_w, t_rsum, col)
            with cgutils.for_range(builder, m_) as loop:
                t = loop.index
                at = builder.add(lo_, t)
                for dist, locality in ((PREFETCH, 3), (FAR, 2)):  # into L1; into L2
                    ahead = builder.add(at, const(dist))
                    ahead = builder.select(builder.icmp_signed("<", ahead, ilast), ahead, ilast)
                    tk.prefetch_row(builder.gep(obase, [builder.mul(index(ahead), ostride)]),
                                    n_vec, locality)
                j = index(at)
                src = builder.gep(obase, [builder.mul(j, ostride)])
                dst = builder.gep(xptr, [builder.mul(t, xstride)])
                rt = builder.fsub(builder.fsub(builder.load(builder.gep(dptr, [at])), offset_),
                                  builder.load(builder.gep(bptr, [j])))
                builder.store(builder.fadd(builder.load(sr_slot), rt), sr_slot)
                builder.store(tk.fma(rt, rt, builder.load(srr_slot)), srr_slot)
                brt = tk.splat(rt, tk.vec)
                if n_vec is not None:
                    for k in range(n_vec):
                        col = const(k * W)
                        xv = tk.load_row(src, col, last if k == n_vec - 1 else None)
                        tk.store_vec(xv, dst, col)
                        builder.store(builder.fadd(builder.load(acc[0][k]), xv), acc[0][k])
                        builder.store(tk.fma(brt, xv, builder.load(acc[1][k])), acc[1][k])
                        if fused and k == 0:
                            xlow = builder.shuffle_vector(xv, xv, low)
                            for a in range(B):
                                s_a = tk.splat(builder.load(builder.gep(src, [const(a)])),
                                               gty[a])
                                builder.store(tk.fma(s_a, xlow if a < B // 2 else xv,
                                                     builder.load(gacc[a])), gacc[a])
                else:
                    with cgutils.for_range(builder, nv) as vloop:
                        col = builder.mul(vloop.index, const(W))
                        xv = tk.load_row(src, col, tk.mask_below(col, k_))
                        tk.store_vec(xv, dst, col)
                        tk.store_vec(builder.fadd(tk.load_vec(t_sum, tk.vec, col), xv),
                                     t_sum, col)
                        tk.store_vec(tk.fma(brt, xv, tk.load_vec(t_rsum, tk.vec, col)),
                                     t_rsum, col)
            # LLVM unrolled this loop twice, and the second copy's row vectors pushed the
            # sums of the first to the stack: a store and a reload (forwarded, about 7
            # cycles) on every add of their chains. One turn per rating keeps the eight sums
            # in registers.
            tk.no_unroll(loop)
            if n_vec is not None:
                for k in range(n_vec):
                    tk.store_vec(builder.load(acc[0][k]), t_sum, const(k * W))
                    tk.store_vec(builder.load(acc[1][k]), t_rsum, const(k * W))
            if fused:
                for a in range(B):
                    row = builder.gep(tptr, [builder.mul(const(a), tstride)])
                    tk.store_vec(builder.load(gacc[a]), row, const(0))

        done = builder.append_basic_block("gather_stats.done")
        tk.by_width(nv, k_, emit, done)
        builder.position_at_end(done)
        return context.make_tuple(builder, signature.return_type,
                                  [builder.load(sr_slot), builder.load(srr_slot)])

    return sig, codegen


@overload(gather_stats, inline="always")
def _gather_stats_impl(other, idx, lo, m, data, bias, offset, X, T, sr, srr, t0, resume,
                       block0=False):
    def impl(other, idx, lo, m, data, bias, offset, X, T, sr, srr, t0, resume,
             block0=False):
        return _gather_stats(other, idx, lo, m, data, bias, offset, X, T, sr, srr, t0,
                             resume, block0)

    return impl


def residual_sse(other, idx, lo, data, bias, offset, m, K, x, b):
    """``sum_t (r_t - b - other[j, :K] . x[:K])^2`` over ``t < m``, with ``j = idx[lo + t]``
    and ``r_t = (data[lo + t] - offset) - bias[j]``.

    A row's share of the objective once its Cholesky update ``(x, b)`` is known, from its
    ratings ``lo .. lo + m - 1``. ``r_t`` is computed as :func:`gather_stats` computes it,
    so it has the same bits. Each residual is computed in the factors' dtype, as
    ``predict`` computes a rating; only its square is summed, in float64.

    Issue 17: ``r_t`` was once kept by the gather for this pass; storing it cost the gather
    about 0.5 ms per ML-1M-shaped half-step (Zen 4, K = 32, one thread), more than reading
    the ratings and biases again here.

    Issue 17: the rows were once read from the block the half-step had gathered for the Gram
    product. Keeping a whole row's block for this pass meant gathering it past L1 (a long
    row's block is hundreds of KiB) instead of piece by piece into the same L1-resident rows:
    1.2-1.4 ms more per item half-step (Zen 3, ML-1M shape, K = 32, one thread).

    The dot products are taken a group of ratings at a time (:func:`_group`), ``x`` held in
    registers, and reduced together by one tree of shuffles, as :func:`rows_pass` does; the
    squares go to a float64 vector, one lane per rating of the group, summed at the end in a
    fixed order. Issue 17: the numba loop it replaces took 4.4 ms of a 27 ms item half-step
    (ML-1M shape, K = 32, one thread, Zen 3): LLVM vectorized it across the four ratings of a
    group with scalar inserts and kept numba's negative-index checks. The order of every sum
    is fixed when the kernel is compiled, so the value does not depend on the thread count.

    The rows ``PREFETCH`` ratings ahead are hinted, as in :func:`gather_stats` (item
    half-step of the ML-10M shape, one thread: 346 / 377 -> 334 / 360 ms, min / median of 7).

    ``other`` is C-contiguous with at least ``K`` columns, ``x`` has at least ``K`` entries;
    nothing past them is read.
    """
    j = idx[lo:lo + m]
    e = (((data[lo:lo + m] - offset) - bias[j]) - b) - other[j, :K] @ x[:K]
    e = e.astype(np.float64)
    return float(e @ e)


@intrinsic
def _residual_sse(typingctx, X, idx, lo, data, bias, offset, m, K, x, b):
    if not (isinstance(X, types.Array) and X.ndim == 2 and X.layout == "C"
            and X.dtype in (types.float32, types.float64)
            and isinstance(idx, types.Array) and idx.ndim == 1
            and isinstance(idx.dtype, types.Integer) and isinstance(lo, types.Integer)
            and all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == X.dtype
                    for a in (data, bias, x))
            and isinstance(m, types.Integer) and isinstance(K, types.Integer)):
        return None
    dt = X.dtype
    sig = types.float64(X, idx, lo, data, bias, offset, m, K, x, b)

    def codegen(context, builder, signature, args):
        x_t, i_t, lo_t, d_t, bias_t, off_t, m_t, k_t, v_t, b_t = signature.args
        ia = context.make_array(i_t)(context, builder, args[1])
        lo_ = context.cast(builder, args[2], lo_t, types.intp)
        tk = _IR(context, builder, dt)
        W, vec, const = tk.W, tk.vec, tk.const
        xa, xbase = tk.array(x_t, args[0])
        _, dptr = tk.array(d_t, args[3])
        _, bptr = tk.array(bias_t, args[4])
        offset_ = context.cast(builder, args[5], off_t, dt)
        m_ = context.cast(builder, args[6], m_t, types.intp)
        k_ = context.cast(builder, args[7], k_t, types.intp)
        _, vptr = tk.array(v_t, args[8])
        b_ = context.cast(builder, args[9], b_t, dt)
        xstride = builder.udiv(cgutils.unpack_tuple(builder, xa.strides, 2)[0],
                               const(tk.size))
        nv = builder.udiv(builder.add(k_, const(W - 1)), const(W))
        f64 = ir.DoubleType()
        result = cgutils.alloca_once_value(builder, ir.Constant(f64, 0.0))

        def widen(value):
            return value if tk.size == 8 else builder.fpext(value, (
                ir.VectorType(f64, value.type.count) if isinstance(value.type, ir.VectorType)
                else f64))

        def emit(n_vec, masked):
            """The loop with ``x`` in ``n_vec`` registers (``None``: any width, ``x`` read
            from memory), its last vector masked past ``K`` if ``masked``."""
            if n_vec is not None:
                last = tk.mask_below(const((n_vec - 1) * W), k_) if masked else None
                xv = [tk.load_row(vptr, const(k * W), last if k == n_vec - 1 else None)
                      for k in range(n_vec)]

            def dot(t):
                """The vector whose lanes sum to ``other[j] . x``, and ``bias[j]``."""
                j = context.cast(builder, builder.load(builder.gep(
                    ia.data, [builder.add(lo_, t)])), i_t.dtype, types.intp)
                bj = builder.load(builder.gep(bptr, [j]))
                row = builder.gep(xbase, [builder.mul(j, xstride)])
                if n_vec is not None:  # the row's last vector masked as x's (K columns)
                    xr = [tk.load_row(row, const(k * W), last if k == n_vec - 1 else None)
                          for k in range(n_vec)]
                    acc = builder.fmul(xr[0], xv[0])
                    for k in range(1, n_vec):
                        acc = tk.fma(xr[k], xv[k], acc)
                    return acc, bj
                slot = cgutils.alloca_once_value(builder, ir.Constant(vec, None))
                with cgutils.for_range(builder, nv) as loop:
                    col = builder.mul(loop.index, const(W))
                    mask = tk.mask_below(col, k_)
                    builder.store(tk.fma(tk.load_row(row, col, mask),
                                         tk.load_row(vptr, col, mask), builder.load(slot)),
                                  slot)
                return builder.load(slot), bj

            G = _group(n_vec)
            vecg = ir.VectorType(tk.fty, G)
            vec64 = ir.VectorType(f64, G)
            total = cgutils.alloca_once_value(builder, ir.Constant(vec64, None))
            n_groups = builder.udiv(m_, const(G))
            with cgutils.for_range(builder, n_groups) as group:
                t = builder.mul(group.index, const(G))
                tk.prefetch_group(ia, i_t.dtype, builder.add(lo_, t), G,
                                  lambda j: builder.gep(xbase, [builder.mul(j, xstride)]), n_vec)
                dots = [dot(builder.add(t, const(i))) for i in range(G)]
                d = tk.reduce_group([acc for acc, _ in dots])
                bg = ir.Constant(vecg, ir.Undefined)
                for i, (_, bj) in enumerate(dots):
                    bg = builder.insert_element(bg, bj, tk.i32(i))
                # r_t as gather_stats computes it, (data - offset) - bias[j], lane by lane
                dg = builder.load(builder.bitcast(builder.gep(dptr, [builder.add(lo_, t)]),
                                                  vecg.as_pointer()), align=tk.size)
                rg = builder.fsub(builder.fsub(dg, tk.splat(offset_, vecg)), bg)
                e = widen(builder.fsub(builder.fsub(rg, tk.splat(b_, vecg)), d))
                builder.store(tk.fma(e, e, builder.load(total)), total)
            tail = cgutils.alloca_once_value(builder, ir.Constant(f64, 0.0))
            with cgutils.for_range(builder, builder.urem(m_, const(G))) as rest:
                t = builder.add(builder.mul(n_groups, const(G)), rest.index)
                acc, bj = dot(t)
                rt = builder.fsub(builder.fsub(builder.load(builder.gep(
                    dptr, [builder.add(lo_, t)])), offset_), bj)
                e = widen(builder.fsub(builder.fsub(rt, b_), tk.hsum(acc)))
                builder.store(tk.fma(e, e, builder.load(tail)), tail)
            builder.store(builder.fadd(tk.pair_sum(builder.load(total)), builder.load(tail)),
                          result)

        done = builder.append_basic_block("residual_sse.done")
        tk.by_width(nv, k_, emit, done)
        builder.position_at_end(done)
        return builder.load(result)

    return sig, codegen


@overload(residual_sse, inline="always")
def _residual_sse_impl(other, idx, lo, data, bias, offset, m, K, x, b):
    def impl(other, idx, lo, data, bias, offset, m, K, x, b):
        return _residual_sse(other, idx, lo, data, bias, offset, m, K, x, b)

    return impl
