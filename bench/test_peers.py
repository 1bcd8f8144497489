"""fastmf against the fastest explicit-feedback ALS peer we measured, cmfrec, in the same run.

    CFLAGS=-march=haswell pip install --no-binary cmfrec --no-cache-dir cmfrec
    pytest bench/test_peers.py --peers -k 1m                      # ML-1M-shaped, ~3 minutes
    FASTMF_BENCH_LARGE=1 pytest bench/test_peers.py --peers -k 10m   # ML-10M-shaped, ~35 minutes

cmfrec compiles from source with ``-march=native`` unless ``CFLAGS`` names an architecture,
and its speed depends on that build far more than on the BLAS: on a Zen 5 VM its Cholesky
iteration took 0.67 s built ``-march=native``, 0.22 s built ``-march=haswell`` and 1.98 s
built for generic x86-64 (``DONT_SET_MARCH=1``), its CG 0.14, 0.12 and 0.12 s (ML-1M shape,
one thread; bench/README.md). Compare against the fastest build you can make of the peer;
the command above is the fastest we found.

The same model and data for both: biases and factors, K = 32, float32, L2 penalty, CG with 3
steps or the exact Cholesky solve, the same thread count, BLAS pinned to one thread. Both
libraries are timed the same way, interleaved (``conftest.compare``): seconds per iteration
as ``(fit(1 + m) - fit(1)) / m`` of a whole fit, so fastmf's time includes the objective it
evaluates every iteration (``loss_curve_``). ``extra_info`` has min and median of 5 rounds,
the ratios (cmfrec / fastmf) and the CPU model and instruction set; ``--peers`` prints them
as a table at the end.
"""

from importlib.metadata import version

import numba
import numpy as np
import pytest
import two_cores
from conftest import compare, dataset

import fastmf

K = 32


def _fastmf_fit(ratings, solver, threads):
    """``fit(n)``: a BiasedALS fit of ``n`` iterations, the configuration every test here times."""

    def fit(n):
        fastmf.BiasedALS(K, reg=0.1, n_iter=n, solver=solver, cg_steps=3, dtype="float32",
                         n_jobs=threads, random_state=0).fit(ratings)

    return fit


def _cmfrec_fit(cmfrec, ratings, solver, threads):
    """``fit(n)``: cmfrec's fit of the same model, ``n`` iterations."""
    X = ratings.to_scipy().tocoo()

    def fit(n):
        cmfrec.CMF(k=K, lambda_=0.1, method="als", use_cg=solver == "cg", max_cg_steps=3,
                   user_bias=True, item_bias=True, niter=n, use_float=True, nthreads=threads,
                   finalize_chol=False, verbose=False).fit(X)

    return fit


@pytest.mark.peers
@pytest.mark.parametrize("variant", ["1m", "10m"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_biased_als_vs_cmfrec(benchmark, machine, solver, threads, variant):
    cmfrec = pytest.importorskip("cmfrec")
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("not enough threads")
    ratings = dataset(variant)
    ours = _fastmf_fit(ratings, solver, threads)
    peer = _cmfrec_fit(cmfrec, ratings, solver, threads)
    peer_name = f"cmfrec {version('cmfrec')}"
    compare(benchmark, machine, f"BiasedALS {solver} vs {peer_name}, "
            f"ml-{variant}-shaped, {threads} thr", ours, peer,
            more=5, data=f"ml-{variant}-shaped", nnz=ratings.nnz,
            K=K, solver=solver, threads=threads, peer=peer_name)


@pytest.mark.peers
@pytest.mark.parametrize("variant", ["1m", "10m"])
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("library", ["fastmf", "cmfrec"])
def test_two_threads_against_one(benchmark, machine, library, solver, variant):
    """A library's own 1 -> 2 thread speed-up, both thread counts timed in the same rounds.

    Taken from the 1- and 2-thread rows of the peer table above, the speed-up compared fits
    run minutes apart, while a shared VM's vCPU speed moves by up to 1.5x within a second
    (docs/design.md section 9). Interleaved, both sides of the ratio see the same machine.
    The table's "peer" column is the one-thread fit, so its ratio is the speed-up; in
    cmfrec's rows its "fastmf" column holds cmfrec's two-thread fit.

    fastmf's figure is issue 17's target (1.8x on the ML-10M shape). cmfrec's, from the same
    run, is the control: what the same machine gave another library's two threads on the
    same model and data. ``bench/two_cores.py``'s probe runs before and after each, and the
    summary prints its medians under the row: on a VM, whether two threads got two cores'
    FMA pipes and caches while the figure was read (``extra_info["two_cores"]`` has every
    round)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("not enough threads")
    ratings = dataset(variant)
    if library == "fastmf":
        one, two = (_fastmf_fit(ratings, solver, t) for t in (1, 2))
        name = "BiasedALS"
    else:
        cmfrec = pytest.importorskip("cmfrec")
        one, two = (_cmfrec_fit(cmfrec, ratings, solver, t) for t in (1, 2))
        name = f"cmfrec {version('cmfrec')}"
    gains, ns = two_cores.probe(10)
    row = compare(benchmark, machine, f"{name} {solver}, ml-{variant}-shaped, 2 thr vs 1 thr",
                  two, one, more=5, data=f"ml-{variant}-shaped", nnz=ratings.nnz, K=K,
                  solver=solver, threads=2, peer=f"{name}, 1 thread")
    gains_after, ns_after = two_cores.probe(10)
    for key in gains:
        gains[key] += gains_after[key]
    for key in ns:
        ns[key] += ns_after[key]
    benchmark.extra_info["two_cores"] = {"gain": gains, "ns_per_load": ns}
    row["host"] = "bench/two_cores.py, 10 rounds before and 10 after, median: " + ", ".join(
        [f"{key} gain {np.median(v):.2f}x" for key, v in gains.items()]
        + [f"{key} {np.median(v):.1f} ns" for key, v in ns.items()])


@pytest.mark.peers
@pytest.mark.parametrize("variant", ["1m", "10m"])
def test_cholesky_against_cg(benchmark, machine, variant):
    """The exact Cholesky solve's cost against CG's (3 steps), one thread, timed in the same rounds.

    Issue 17 asks for Cholesky within 1.5x of CG at K = 32 on one thread. Read off two rows of
    the peer table above, that ratio compared fits minutes apart on a VM whose speed moves
    between them (CG's minimum there fell 30 % below its median while Cholesky's did not).
    Interleaved, both sides see the same machine. The table's "peer" column is the Cholesky
    fit, so its ratio is Cholesky s/it over CG s/it: the target is 1.5 or less."""
    ratings = dataset(variant)
    compare(benchmark, machine, f"BiasedALS cg vs cholesky, ml-{variant}-shaped, 1 thr",
            _fastmf_fit(ratings, "cg", 1), _fastmf_fit(ratings, "cholesky", 1), more=5,
            data=f"ml-{variant}-shaped", nnz=ratings.nnz, K=K,
            solver="cg", threads=1, peer="fastmf cholesky")
