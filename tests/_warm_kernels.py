"""Compile the kernels into the cache, from a second process, while the tests run.

A clean clone's test run is mostly first compiles (about five of its eight minutes on the
2-core Zen 3 VM), and numba compiles on one core. ``conftest.py`` starts this script in the
background at the start of the session. It fits every model in each dtype, roughly in the
order the tests first need them (see ``JOBS``). Whatever it has cached when a test gets
there is loaded instead of compiled; whatever it has not, the test compiles as before. It
changes no result: cached and freshly compiled kernels are the same code.

Measured on that VM, a run with an empty kernel cache (``FASTMF_CACHE_DIR`` a new folder,
MovieLens present): 395 s without it; 323 s with ``JOBS`` in about the reverse order and
320 s in this one.

Run by hand: ``python tests/_warm_kernels.py -v`` (``-v`` prints when each model is done).
"""

import sys
import time
import warnings

import numpy as np

import fastmf

# (estimator, parameters), roughly in the order in which the test files first need them.
# test_bad_input.py starts with BiasedALS's Cholesky kernels in float32 (the default dtype),
# which the tests compile themselves while this compiles the Gibbs sampler that
# test_bayes.py needs next. Both processes compile at about the same speed, so a kernel
# needed soon after another may be compiled by both (test_bayes.py compiles the float64
# Cholesky kernels itself): the order was tuned by timing whole runs, not derived.
JOBS = [
    (fastmf.BayesianALS, dict(n_factors=2, n_samples=2, burn_in=1, dtype=np.float64)),
    (fastmf.BayesianALS, dict(n_factors=2, n_samples=2, burn_in=1, dtype=np.float32)),
    (fastmf.BayesianALS, dict(n_factors=2, n_samples=2, burn_in=1, implicit="both",
                              dtype=np.float64)),
    (fastmf.BayesianALS, dict(n_factors=2, n_samples=2, burn_in=1, implicit="both",
                              dtype=np.float32)),
    (fastmf.BiasedALS, dict(n_factors=3, n_iter=2, solver="cholesky", dtype=np.float32)),
    (fastmf.ImplicitALS, dict(n_factors=3, n_iter=2, solver="cholesky", dtype=np.float64)),
    (fastmf.ImplicitALS, dict(n_factors=3, n_iter=2, solver="cholesky", dtype=np.float32)),
    (fastmf.BiasedSGD, dict(n_factors=3, n_epochs=2, n_blocks=2, dtype=np.float64)),
    (fastmf.BiasedSGD, dict(n_factors=3, n_epochs=2, n_blocks=2, dtype=np.float32)),
    (fastmf.ImplicitALS, dict(n_factors=3, n_iter=2, solver="cg", dtype=np.float64)),
    (fastmf.ImplicitALS, dict(n_factors=3, n_iter=2, solver="cg", dtype=np.float32)),
    (fastmf.BiasedALS, dict(n_factors=3, n_iter=2, solver="cg", dtype=np.float64)),
    (fastmf.BiasedALS, dict(n_factors=3, n_iter=2, solver="cg", dtype=np.float32)),
    (fastmf.BiasedALS, dict(n_factors=3, n_iter=2, solver="cholesky", dtype=np.float64)),
]


def main() -> None:
    data, _ = fastmf.make_ratings(60, 40, 800, n_factors=3, random_state=0,
                                  rating_scale=(1, 5))
    user, item = data.user_ids[0], data.item_ids[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        for cls, params in JOBS:
            model = cls(random_state=0, verbose=False, **params).fit(data)
            model.predict([user], [item])
            model.recommend(user, n=3)
            model.similar_items(item, n=3)
            if "-v" in sys.argv:
                print(f"{time.perf_counter() - start:6.1f} s  {cls.__name__} {params}",
                      flush=True)


if __name__ == "__main__":
    main()
