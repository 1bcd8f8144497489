"""Compile the kernels into the cache, from a second process, while the tests run.

A clean clone's test run is mostly first compiles (about five of its eight minutes on the
2-core Zen 3 VM), and numba compiles on one core. ``conftest.py`` starts this script in the
background at the start of the session. It fits every registered model in each dtype, with
each option that selects other kernels (``KERNEL_OPTIONS``). Whatever it has cached when a
test gets there is loaded instead of compiled; whatever it has not, the test compiles as
before. It changes no result: cached and freshly compiled kernels are the same code.

Measured on that VM, a run with an empty kernel cache (``FASTMF_CACHE_DIR`` a new folder,
MovieLens present): 395 s without it; with it 320-341 s, whichever of four job orders (the
order hardly matters: both processes compile at about the same speed, so a kernel the tests
need soon after another is often compiled by both).

Run by hand: ``python tests/_warm_kernels.py -v`` (``-v`` prints when each model is done).
"""

import itertools
import sys
import time
import warnings

import numpy as np
from test_contract import FAST  # every estimator's small, fast parameters

import fastmf
from fastmf import _registry

# Parameters whose values select other kernels, and those values. Every registered estimator
# is fitted with each combination of those it takes, in both dtypes, float64 first: the tests
# compile the float32 kernels of the default fit themselves, first thing.
KERNEL_OPTIONS = {"solver": ("cholesky", "cg"), "implicit": ("none", "both")}


def jobs() -> list[tuple[type, dict]]:
    """(estimator, parameters) for every registered estimator's kernels."""
    out = []
    for dtype in (np.float64, np.float32):
        for cls in _registry.estimators():
            options = {k: v for k, v in KERNEL_OPTIONS.items() if k in cls().get_params()}
            for values in itertools.product(*options.values()):
                out.append((cls, {**FAST[cls._registry_name], **dict(zip(options, values)),
                                  "dtype": dtype}))
    return out


def main() -> None:
    data, _ = fastmf.make_ratings(60, 40, 800, n_factors=3, random_state=0,
                                  rating_scale=(1, 5))
    user, item = data.user_ids[0], data.item_ids[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        for cls, params in jobs():
            model = cls(random_state=0, verbose=False, **params).fit(data)
            model.predict([user], [item])
            model.recommend(user, n=3)
            model.similar_items(item, n=3)
            if "-v" in sys.argv:
                print(f"{time.perf_counter() - start:6.1f} s  {cls.__name__} {params}",
                      flush=True)


if __name__ == "__main__":
    main()
