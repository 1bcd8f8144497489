"""A software prefetch hint for the gathers (numba only).

The half-steps gather the other side's factor rows in the order of a row's ratings. On the
item side those are user rows, scattered over a matrix larger than the core's L2 cache
(9 MB at K = 32 on the ML-10M shape), and each read waits for memory. Asking for the row a
few ratings ahead lets those waits overlap: the item-side gather of the ML-10M shape went
from 0.13 to 0.09 s, interleaved A/B, one thread (issue 17). The user side, whose other
matrix fits the cache, neither gained nor lost.

The rows themselves are taken longest first (the schedule), not in storage order, so each
row's ratings start at an unrelated place in arrays of tens of megabytes and its first reads
wait for memory too: on the ML-10M shape the CG user step took 87 ms in that order against
53 ms in storage order (residual pass only, one thread, Intel Xeon VM). While one row is
solved, :func:`prefetch_next_row` hints the next row's first :data:`NEXT_ROW_LINES` lines of
``indices`` and ``data`` and its factor row: the CG user step went from 155/160 to
136/140 ms (min/median of 5, interleaved), the Cholesky one from 218/221 to 196/201 ms.
Hinting two rows ahead measured the same.

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


#: Cache lines of each array hinted for the next row (:func:`prefetch_next_row`).
NEXT_ROW_LINES = 16


def prefetch_row(arr, i):
    """Hint that row ``i`` of the 2-D array ``arr`` will be read soon (no effect in Python)."""


def prefetch_next_row(indptr, indices, data, factors, row):
    """Hint the start of row ``row``'s ratings (``indices`` and ``data``, up to
    :data:`NEXT_ROW_LINES` lines each) and its ``factors`` row into the cache (no effect in
    Python)."""


@intrinsic
def _prefetch(typingctx, arr, i, k):
    """Hint the line of ``arr[i, k]`` (2-D) or ``arr[i + k]`` (1-D)."""
    if not (isinstance(arr, types.Array) and arr.ndim in (1, 2)
            and isinstance(i, types.Integer) and isinstance(k, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        col = context.cast(builder, args[2], signature.args[2], types.intp)
        at = [row, col] if aryty.ndim == 2 else [builder.add(row, col)]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, at, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        # typed pointers (llvmlite as numba uses it today) or opaque ones (later llvmlite)
        name = "llvm.prefetch.p0" if getattr(i8p, "is_opaque", False) else "llvm.prefetch.p0i8"
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
        # read, highest temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, i, k), codegen


@overload(prefetch_row, inline="always")
def _prefetch_row_impl(arr, i):
    def impl(arr, i):
        _prefetch(arr, i, 0)

    return impl


@overload(prefetch_next_row, inline="always")
def _prefetch_next_row_impl(indptr, indices, data, factors, row):
    index_step = 512 // indices.dtype.bitwidth  # entries per 64-byte line
    data_step = 512 // data.dtype.bitwidth
    factor_step = 512 // factors.dtype.bitwidth

    def impl(indptr, indices, data, factors, row):
        lo = indptr[row]
        hi = indptr[row + 1]
        for t in range(lo, min(hi, lo + NEXT_ROW_LINES * index_step), index_step):
            _prefetch(indices, t, 0)
        for t in range(lo, min(hi, lo + NEXT_ROW_LINES * data_step), data_step):
            _prefetch(data, t, 0)
        for k in range(0, factors.shape[1], factor_step):
            _prefetch(factors, row, k)

    return impl
