"""Benchmark fixtures: synthetic MovieLens-shaped data, machine facts, a GEMM peak.

Run with ``pytest bench/`` (pytest-benchmark). The data sets come from the library's own
generator (``fastmf.datasets.make_movielens_like``) so the numbers are reproducible anywhere;
ML-10M-shaped runs are opt-in (``FASTMF_BENCH_LARGE=1``): generating 10M ratings takes a while.
"""

import os
import platform
import time

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastmf
from fastmf.datasets import make_movielens_like

_CACHE = {}


def dataset(variant):
    if variant == "10m" and not os.environ.get("FASTMF_BENCH_LARGE"):
        pytest.skip("ML-10M-shaped benchmarks are opt-in: set FASTMF_BENCH_LARGE=1")
    if variant not in _CACHE:
        _CACHE[variant] = make_movielens_like(variant, random_state=0)[0]
    return _CACHE[variant]


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _instruction_sets():
    """The vector extensions that matter for these kernels, from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return platform.machine()
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512_bf16", "amx_tile")
    return " ".join(w for w in wanted if w in flags) or platform.machine()


@pytest.fixture(scope="session")
def machine():
    """Facts that make a number interpretable, recorded in every benchmark's extra_info."""
    blas = [f"{i['internal_api']} {i['version']} ({i.get('architecture')})"
            for i in threadpool_info() if i["user_api"] == "blas"]
    # run one parallel kernel so numba has picked its threading layer
    fastmf.BiasedALS(n_factors=2, n_iter=1).fit(fastmf.make_ratings(20, 10, 50)[0])
    return {
        "fastmf": fastmf.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "threading_layer": numba.threading_layer(),
        "threads": numba.get_num_threads(),
        "cpu": _cpu_model(),
        "isa": _instruction_sets(),
        "blas": "; ".join(blas),
    }


@pytest.fixture(scope="session")
def gemm_peak(machine):
    """float32 GEMM GFLOP/s on all threads, measured now (best of 5, 2048^3)."""
    n = 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    with threadpool_limits(limits=machine["threads"], user_api="blas"):
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * n**3 / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
