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
from llvmlite import binding
from threadpoolctl import threadpool_info, threadpool_limits

import fastmf
from fastmf.datasets import make_movielens_like
from fastmf.kernels._gram import VECTOR_BYTES

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


def _numba_target():
    """The CPU numba compiles for and the vector width of fastmf's explicit-SIMD kernels.

    ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` retarget the compiled code, e.g. to measure the
    AVX2 code path on an AVX-512 machine; the host CPU's line then no longer says which code ran.
    """
    name = numba.config.CPU_NAME or binding.get_host_cpu_name()
    return f"{name}, {8 * VECTOR_BYTES}-bit vectors"


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


_BLAS_FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


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
        "numba_target": _numba_target(),
        "blas": "; ".join(blas),
        # Set on some machines because old OpenBLAS builds fail on their CPU; they force a
        # kernel (e.g. Haswell on an AVX-512 CPU) and slow fastmf's Cholesky Gram and the
        # peers' BLAS calls alike. Benchmark with both unset in that one command.
        "blas_forced": " ".join(f"{v}={os.environ[v]}" for v in _BLAS_FORCING
                                if v in os.environ),
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


# -- peers: ``pytest bench/ --peers`` ----------------------------------------------------------

_RATIOS = []


def pytest_addoption(parser):
    parser.addoption("--peers", action="store_true",
                     help="run the peer group (other libraries, timed in the same run as "
                          "fastmf) and print the fastmf / peer ratios at the end")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--peers"):
        return
    skip = pytest.mark.skip(reason="peer benchmark: run with --peers")
    for item in items:
        if "peers" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "peers: compares fastmf with another library (--peers)")


def marginal_iteration(fit, more=5):
    """Seconds per iteration as ``(fit(1 + more) - fit(1)) / more``: set-up and data
    conversion cancel, for every library alike."""
    t0 = time.perf_counter()
    fit(1)
    t1 = time.perf_counter()
    fit(1 + more)
    t2 = time.perf_counter()
    return ((t2 - t1) - (t1 - t0)) / more


def compare(benchmark, machine, label, ours, theirs, rounds=None, more=5, **info):
    """Time ``ours(n_iter)`` and the peer's ``theirs(n_iter)`` interleaved, ``rounds`` times
    each, by :func:`marginal_iteration`; record the min and median of each and their ratios (peer /
    fastmf: above 1 means fastmf is faster) in ``extra_info``, with the machine, and keep a
    row for the end-of-run table. pytest-benchmark's own figure is the time of a round.

    ``rounds`` defaults to ``FASTMF_BENCH_ROUNDS`` or 5. On a shared VM a test's median can sit
    a quarter above its minimum; more rounds narrow that, at their cost in time."""
    if rounds is None:
        rounds = int(os.environ.get("FASTMF_BENCH_ROUNDS", "5"))
    times = {"fastmf": [], "peer": []}
    with threadpool_limits(limits=1, user_api="blas"):
        ours(1)
        theirs(1)  # compile and warm caches

        def round_():
            times["fastmf"].append(marginal_iteration(ours, more))
            times["peer"].append(marginal_iteration(theirs, more))

        benchmark.pedantic(round_, rounds=rounds, iterations=1)
    f, p = np.array(times["fastmf"]), np.array(times["peer"])
    row = dict(label=label, **info,
               fastmf_s_min=round(float(f.min()), 4), fastmf_s_median=round(float(np.median(f)), 4),
               peer_s_min=round(float(p.min()), 4), peer_s_median=round(float(np.median(p)), 4),
               ratio_min=round(float(p.min() / f.min()), 2),
               ratio_median=round(float(np.median(p) / np.median(f)), 2), rounds=rounds)
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(row)
    _RATIOS.append((row, machine))
    return row


def pytest_terminal_summary(terminalreporter):
    if not _RATIOS:
        return
    tr = terminalreporter
    machine = _RATIOS[0][1]
    tr.write_sep("=", "fastmf / peer, same run (ratio = peer s/it / fastmf s/it)")
    tr.write_line(f"cpu: {machine['cpu']}; isa: {machine['isa']}; blas: {machine['blas']}; "
                  f"numba {machine['numba']} compiling for {machine['numba_target']}")
    if machine["blas_forced"]:
        tr.write_line(f"warning: {machine['blas_forced']} forces the BLAS kernel; for figures of "
                      "this CPU run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest ...")
    tr.write_line(f"{'comparison':64s} {'fastmf min/med':>16s} {'peer min/med':>16s} "
                  f"{'ratio min/med':>14s}")
    for row, _ in _RATIOS:
        tr.write_line(f"{row['label']:64s}"
                      f" {row['fastmf_s_min']:7.4f}/{row['fastmf_s_median']:<8.4f}"
                      f" {row['peer_s_min']:7.4f}/{row['peer_s_median']:<8.4f}"
                      f" {row['ratio_min']:5.2f}/{row['ratio_median']:<5.2f}")
        if "host" in row:
            tr.write_line(f"    {row['host']}")
