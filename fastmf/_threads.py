"""Thread control: numba's pool for the kernels, BLAS pinned to one thread inside them."""

from __future__ import annotations

import contextlib
import numbers
import threading
from collections.abc import Iterator

import numba
from threadpoolctl import threadpool_limits


def resolve_n_jobs(n_jobs: int | None) -> int:
    """Number of numba threads for ``n_jobs`` (None or -1: all; capped at NUMBA_NUM_THREADS)."""
    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None or n_jobs == -1:
        return available
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be an int or None, got {n_jobs!r}")
    if n_jobs < -1 or n_jobs == 0:
        raise ValueError(f"n_jobs must be a positive int, -1 or None, got {n_jobs}")
    return min(int(n_jobs), available)


@contextlib.contextmanager
def thread_limits(n_jobs: int | None) -> Iterator[int]:
    """Run the block with ``n_jobs`` numba threads and single-threaded BLAS.

    numba's threads run the kernels; a BLAS call made meanwhile (ImplicitALS's ``Y^T Y``, the
    caller's own code in another thread) would otherwise start its own threads on the same
    cores. (The kernels called BLAS once per row until issue 17 replaced that product.) Both
    settings are restored on exit, also when the block raises.
    """
    n = resolve_n_jobs(n_jobs)
    previous = numba.get_num_threads()  # thread-local in numba
    numba.set_num_threads(n)
    try:
        with _blas_pinned():
            yield n
    finally:
        numba.set_num_threads(previous)


_LOCK = threading.Lock()
_PINNED = {"depth": 0, "limiter": None}


@contextlib.contextmanager
def _blas_pinned() -> Iterator[None]:
    """BLAS at one thread while any fit runs, restored when the last one ends.

    BLAS's thread count is process-wide: with a limiter per fit, two fits in two threads
    restored each other's settings in the wrong order and left BLAS at one thread for
    good (issue 14). One shared limiter, entered by the first fit and left by the last,
    restores the setting the process had.
    """
    with _LOCK:
        if _PINNED["depth"] == 0:
            _PINNED["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _PINNED["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _PINNED["depth"] -= 1
            if _PINNED["depth"] == 0:
                _PINNED["limiter"].restore_original_limits()
                _PINNED["limiter"] = None
