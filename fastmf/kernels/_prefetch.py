"""A software prefetch hint for the gathers (numba only).

The half-steps gather the other side's factor rows in the order of a row's ratings. On the
item side those are user rows, scattered over a matrix larger than the core's L2 cache
(9 MB at K = 32 on the ML-10M shape), and each read waits for memory. Asking for the row a
few ratings ahead lets those waits overlap: the item-side gather of the ML-10M shape went
from 0.13 to 0.09 s, interleaved A/B, one thread (issue 17). The user side, whose other
matrix fits the cache, neither gained nor lost.

A hint never changes a result. Under ``NUMBA_DISABLE_JIT=1`` :func:`prefetch_row` is the
plain Python no-op below. Each gather writes its own two-line bounds check around the call:
a shared ``@njit`` helper for it measured up to 8 % slower on the ML-10M-shaped Cholesky step.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

#: Ratings ahead of the one being gathered (measured: 4-16 alike, 32 worse).
DISTANCE = 16

#: Ratings ahead of the one being read whose row is also hinted into L2 only (`prefetcht1`),
#: where a row is read from memory: the Cholesky gather and the first pass of a CG row (its
#: later passes find most rows in L2). On a Zen 3 VM with about 3-4 MiB of L3 the ML-10M
#: shape's 9 MB of user factors come from memory (about 150 ns), which 16 ratings (about 60
#: ns) do not cover; 48 ratings into L1 instead was much slower (issue 17, docs/design.md
#: section 9). ``bench/ab_halfstep.py``, ML-10M shape, CG item half-step, min / median of
#: 10: one thread 252 / 368 -> 203 / 303 ms, two threads 156 / 201 -> 150 / 165 ms, the
#: user step unchanged. In every pass of CG it helped one thread and slowed two.
FAR_DISTANCE = 64


def prefetch_row(arr, i):
    """Hint that row ``i`` of the 2-D array ``arr`` will be read soon (no effect in Python)."""


@intrinsic
def _prefetch(typingctx, arr, i):
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary,
                                       [row, context.get_constant(types.intp, 0)],
                                       wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        # typed pointers (llvmlite as numba uses it today) or opaque ones (later llvmlite)
        name = "llvm.prefetch.p0" if getattr(i8p, "is_opaque", False) else "llvm.prefetch.p0i8"
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
        # read, highest temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, i), codegen


@overload(prefetch_row, inline="always")
def _prefetch_row_impl(arr, i):
    def impl(arr, i):
        _prefetch(arr, i)

    return impl
