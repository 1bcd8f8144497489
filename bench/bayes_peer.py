"""BayesianALS(implicit=...) next to myFM, the Bayesian factorization machine, on ML-100K u1.

    python bench/bayes_peer.py              # fastmf; myFM too when it is importable

The same model and protocol for both: biases, rank K, Gibbs sampling with hierarchical priors,
120 sweeps of which the last 100 are averaged, u1.base to fit, u1.test to score (clipped to
1..5). ``implicit="both"`` is myFM with one relation block per side holding the one-hot id and
the other side's ids normalized by ``1/sqrt(n)`` (who rated what, Rendle's "flipped" form);
``"none"`` is the one-hots alone (BPMF-like). myFM imports ``pkg_resources``: install it in a
separate environment with ``pip install 'setuptools<70' myfm`` and run this file there too
(``--lib myfm``). Prints one JSON line per fit: test RMSE and wall seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("FASTMF_DATA_DIR", Path(__file__).resolve().parents[2] / "shared"
                           / "data")) / "ml-100k"
SWEEPS, KEPT = 120, 100


def _read(name):
    a = np.loadtxt(DATA / name, dtype=np.int64)
    return a[:, 0], a[:, 1], a[:, 2].astype(np.float64)


def fastmf_run(mode: str, K: int) -> dict:
    import fastmf
    from fastmf.model_selection import score

    train = fastmf.read_ratings(DATA / "u1.base")
    test = fastmf.read_ratings(DATA / "u1.test")
    t0 = time.perf_counter()
    model = fastmf.BayesianALS(K, n_samples=KEPT, burn_in=SWEEPS - KEPT, implicit=mode,
                               random_state=0).fit(train)
    seconds = time.perf_counter() - t0
    return {"lib": f"fastmf {fastmf.__version__}", "implicit": mode, "K": K,
            "test_rmse": round(score(model, test)["rmse"], 4), "seconds": round(seconds, 1)}


def myfm_run(mode: str, K: int) -> dict:
    import myfm
    import scipy.sparse as sps
    from myfm import RelationBlock

    u, i, r = _read("u1.base")
    tu, ti, tr = _read("u1.test")
    M, N = 943, 1682
    u, i, tu, ti = u - 1, i - 1, tu - 1, ti - 1

    def normalized(rows, cols, n_rows, n_cols):
        A = sps.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_rows, n_cols))
        n = np.asarray(A.sum(1)).ravel()
        return sps.diags(1 / np.sqrt(np.maximum(n, 1))) @ A

    user = [sps.identity(M, format="csr")]
    item = [sps.identity(N, format="csr")]
    if mode in ("users", "both"):
        user.append(normalized(u, i, M, N))
    if mode == "both":
        item.append(normalized(i, u, N, M))
    UB, IB = sps.hstack(user).tocsr(), sps.hstack(item).tocsr()
    fm = myfm.MyFMRegressor(rank=K, random_seed=0)
    t0 = time.perf_counter()
    fm.fit(None, r, X_rel=[RelationBlock(u, UB), RelationBlock(i, IB)], n_iter=SWEEPS,
           n_kept_samples=KEPT)
    seconds = time.perf_counter() - t0
    pred = np.clip(fm.predict(None, X_rel=[RelationBlock(tu, UB), RelationBlock(ti, IB)]), 1, 5)
    return {"lib": f"myfm {myfm.__version__}", "implicit": mode, "K": K,
            "test_rmse": round(float(np.sqrt(np.mean((pred - tr) ** 2))), 4),
            "seconds": round(seconds, 1)}


if __name__ == "__main__":
    libs = [sys.argv[sys.argv.index("--lib") + 1]] if "--lib" in sys.argv else ["fastmf",
                                                                              "myfm"]
    for lib in libs:
        run = {"fastmf": fastmf_run, "myfm": myfm_run}[lib]
        try:
            for mode in ("none", "both"):
                for K in (10, 32):
                    print(json.dumps(run(mode, K)), flush=True)
        except ImportError as e:
            print(json.dumps({"lib": lib, "skipped": str(e)}))
