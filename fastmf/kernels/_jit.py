"""``@helper``: ``@njit`` for the per-row and per-rating functions the kernels call.

numba counts references to every array a compiled function receives: at entry it calls
``NRT_incref`` on each array argument (and on each array it takes out of a tuple), and
``NRT_decref`` at exit, each an atomic add behind a function call. It removes such pairs
only where it can prove them redundant, which branches and calls to other functions
defeat. The half-steps call helpers once per row (``_lane_add`` takes 18 arrays), and SGD
once per rating, so these calls were a large part of a short row's cost: a function that
only counted its rows, but held the code of the gather behind a branch, took 187 ns per
call against 1.4 ns once that code was gone (issue 17, Intel Xeon VM).

Helpers allocate nothing: their arrays belong to the caller, which holds them for the whole
call, so counting references inside them is pure overhead. ``helper`` compiles them with
numba's reference counting off (its ``_nrt`` option); a helper that tried to allocate would
fail to compile. The arithmetic is unchanged. numba versions without the option get plain
``@njit``.

A helper must not return an array (or a tuple holding one), nor take one from a function
that does: a caller that counts references takes a returned array as a new reference and
releases it later, and a helper never added it, so the array would be freed while in use
(seen: heap corruption). Such functions are ``inline="always"`` instead (``_row_system``).
``tests/test_kernels.py`` fits every model and checks that no compiled helper returns an
array.
"""

from numba import njit
from numba.core import options as _options

# The option numba reads for "no reference counting in this function".
_NO_NRT = {"_nrt": False} if hasattr(getattr(_options, "DefaultOptions", None), "_nrt") else {}


#: Every function compiled by :func:`helper` (their compiled signatures are checked by a test).
HELPERS = []


def helper(**options):
    """``njit(cache=True, **options)`` without reference counting: for functions that
    allocate nothing, return no array and are called per row or per rating from a kernel."""
    def wrap(func):
        dispatcher = njit(cache=True, **_NO_NRT, **options)(func)
        HELPERS.append(dispatcher)
        return dispatcher

    return wrap
