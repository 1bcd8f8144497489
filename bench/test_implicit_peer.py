"""ImplicitALS against implicit 0.7.3 (``pip install implicit``): seconds per iteration in
the same run, and the ratio.

    pytest bench/test_implicit_peer.py --peers
    FASTMF_BENCH_LARGE=1 pytest bench/test_implicit_peer.py --peers -k 10m

The same model on the same data: the ratings of ML-1M (when ``$FASTMF_DATA_DIR`` has them,
else the ML-1M-shaped synthetic set; opt-in a 10M-interaction synthetic power-law set) as
interaction strengths ``r``, confidence ``c = 1 + r`` (ImplicitALS ``alpha=1``; implicit is
given the matrix ``1 + r``, which it reads as confidences), preference 1, K = 64,
lambda = 0.05, the same threads, BLAS pinned to one thread for both. Timed by
``conftest.compare``: seconds per iteration ``(fit(6 iterations) - fit(1 iteration)) / 5``,
so set-up and conversion cancel, interleaved, 5 rounds each; ``extra_info`` has the min and
median of each and the ratios (peer / fastmf: above 1 means fastmf is faster), with the CPU
model and instruction set, and ``--peers`` prints them as a table at the end.
"""

import os
from pathlib import Path

import numba
import numpy as np
import pytest
from conftest import compare, dataset

import fastmf

K = 64
DATA = Path(os.environ.get("FASTMF_DATA_DIR", Path(__file__).resolve().parents[2] / "shared"
                           / "data"))


def _interactions(variant):
    if variant == "1m" and (DATA / "ml-1m" / "ratings_uir.tsv.gz").exists():
        return fastmf.read_ratings(DATA / "ml-1m" / "ratings_uir.tsv.gz"), "ml-1m ratings"
    return dataset(variant), f"ml-{variant}-shaped synthetic"


@pytest.mark.peers
@pytest.mark.parametrize("variant", ["1m", "10m"])
@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_implicit_als_vs_implicit(benchmark, machine, solver, variant):
    implicit = pytest.importorskip("implicit")
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    ratings, name = _interactions(variant)
    X = ratings.to_scipy().astype(np.float32)
    X.data += 1.0  # implicit reads the values as confidences: c = 1 + r
    X = sp.csr_matrix(X)
    threads = numba.get_num_threads()

    def peer(n):
        AlternatingLeastSquares(factors=K, regularization=0.05, iterations=n,
                                use_cg=solver == "cg", num_threads=threads,
                                random_state=0).fit(X, show_progress=False)

    def ours(n):
        fastmf.ImplicitALS(K, reg=0.05, alpha=1.0, n_iter=n, solver=solver, n_jobs=threads,
                           random_state=0).fit(ratings)

    compare(benchmark, machine, f"ImplicitALS {solver} vs implicit, {name}, {threads} thr",
            ours, peer, data=name, nnz=ratings.nnz, K=K, solver=solver,
            peer=f"implicit {implicit.__version__}")
