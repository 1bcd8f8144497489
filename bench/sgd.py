"""BiasedSGD next to BiasedALS on MovieLens-1M (random 90/10, ``random_state=0``), as users
ask: accuracy with parameters chosen by the library's own search on the training part, and
the time each takes to reach a validation RMSE -- not only the time per epoch.

    python bench/sgd.py               # reads $FASTMF_DATA_DIR (default ../shared/data)
    python bench/sgd.py --peers-only  # only the per-epoch comparison, ~1 minute

Per-epoch speed and test RMSE next to Surprise's SVD and LIBMF, each when installed
(``pip install scikit-surprise libmf``), on the same training part and K: see ``peers``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

import fastmf
from fastmf.model_selection import score, search, train_test_split

DATA = Path(os.environ.get("FASTMF_DATA_DIR", Path(__file__).resolve().parents[2] / "shared"
                           / "data"))


def curve(model, train, val) -> list[tuple[float, float]]:
    """(seconds since the fit started, validation RMSE) after each iteration."""
    points, t0 = [], time.perf_counter()
    model.fit(train, validation=val,
              callback=lambda it, m: points.append((time.perf_counter() - t0,
                                                    float(m.validation_curve_[-1]))))
    return points


def time_to(points, target: float) -> float | None:
    return next((t for t, r in points if r <= target), None)


def per_epoch(fit, more: int = 2) -> tuple[float, float]:
    """Seconds per epoch, ``(fit(1 + more) - fit(1)) / more``: set-up cancels. Min and median
    of 5 rounds."""
    fit(1)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        fit(1)
        t1 = time.perf_counter()
        fit(1 + more)
        t2 = time.perf_counter()
        runs.append(((t2 - t1) - (t1 - t0)) / more)
    return round(min(runs), 4), round(float(np.median(runs)), 4)


def peers(train, test, K: int = 32, epochs: int = 20) -> dict:
    """Per-epoch time (1 and 2 threads) and test RMSE after ``epochs`` at rank ``K``:
    BiasedSGD at its defaults, Surprise's SVD and LIBMF (``pip install libmf``; no biases,
    L2 ``lambda = 0.05``, its default rate), each when installed, on the same training part.
    BiasedSGD's epoch includes the objective J it evaluates for ``loss_curve_``."""
    out = {}

    def ours(n, jobs=2):
        return fastmf.BiasedSGD(K, n_epochs=n, n_jobs=jobs, random_state=0).fit(train)

    out["BiasedSGD"] = {"epoch_s_1_thread": per_epoch(lambda n: ours(n, 1)),
                        "epoch_s_2_threads": per_epoch(ours),
                        "test_rmse": round(score(ours(epochs), test)["rmse"], 4)}
    try:
        import pandas as pd
        import surprise

        df = pd.DataFrame({"u": train.user_index, "i": train.item_index, "r": train.values})
        trainset = surprise.Dataset.load_from_df(df, surprise.Reader(rating_scale=(1, 5))
                                                 ).build_full_trainset()

        def svd(n):
            return surprise.SVD(n_factors=K, n_epochs=n, random_state=0).fit(trainset)

        out["surprise SVD " + surprise.__version__] = {"epoch_s_1_thread": per_epoch(svd)}
    except ImportError:
        pass
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # it prints its .so path on import
            from libmf import mf

        tri = np.c_[train.user_index, train.item_index, train.values].astype(np.float32)

        def libmf(n, threads=2):
            m = mf.MF(k=K, nr_threads=threads, nr_iters=n, quiet=True, lambda_p2=0.05,
                      lambda_q2=0.05, lambda_p1=0.0, lambda_q1=0.0)
            m.fit(tri)
            return m

        m = libmf(epochs)
        P, Q = m.p_factors(), m.q_factors()
        u = np.searchsorted(train.user_ids, test.user_ids[test.user_index])
        i = np.searchsorted(train.item_ids, test.item_ids[test.item_index])
        pred = np.einsum("nk,nk->n", P[u], Q[i])
        pred[np.isnan(pred)] = m.model.b  # LIBMF's own value for a row it never saw
        pred = np.clip(pred, train.values.min(), train.values.max())
        out["libmf 0.9.2 (no biases)"] = {
            "epoch_s_1_thread": per_epoch(lambda n: libmf(n, 1)),
            "epoch_s_2_threads": per_epoch(libmf),
            "test_rmse": round(float(np.sqrt(np.mean((pred - test.values) ** 2))), 4)}
    except ImportError:
        pass
    return out


def main(peers_only: bool = False) -> dict:
    ratings = fastmf.read_ratings(DATA / "ml-1m" / "ratings_uir.tsv.gz")
    train, test = train_test_split(ratings, 0.1, random_state=0)
    if peers_only:
        return peers(train, test)
    holdout = [train_test_split(train, 0.1, random_state=1)]
    out = {}
    for name, template, grid in [
        ("BiasedSGD", fastmf.BiasedSGD(n_epochs=60, random_state=0),
         {"n_factors": [128, 256], "reg": [0.05, 0.06, 0.07]}),
        ("BiasedALS", fastmf.BiasedALS(n_iter=30, solver="cg", cg_steps=4, random_state=0),
         {"n_factors": [128, 256], "reg": [0.05, 0.06, 0.07]}),
    ]:
        t0 = time.perf_counter()
        res = search(template, train, grid, cv=holdout)
        model = fastmf.BiasedALS if name == "BiasedALS" else fastmf.BiasedSGD
        best = model(**{**template.get_params(), **res.best_params}).fit(train)
        out[name] = {**res.best_params, "test_rmse": round(score(best, test)["rmse"], 4),
                     "search_and_fit_seconds": round(time.perf_counter() - t0, 1)}
    # time to a validation RMSE, same K, the part held out of training as validation
    tr, va = holdout[0]
    k = 64
    sgd = curve(fastmf.BiasedSGD(k, reg=out["BiasedSGD"]["reg"], n_epochs=40,
                                 random_state=0), tr, va)
    als_chol = curve(fastmf.BiasedALS(k, reg=0.06, n_iter=20, random_state=0), tr, va)
    als_cg = curve(fastmf.BiasedALS(k, reg=0.06, n_iter=20, solver="cg", random_state=0),
                   tr, va)
    target = max(min(r for _, r in c) for c in (sgd, als_chol, als_cg)) + 0.002
    out["time_to_validation_rmse"] = {
        "K": k, "target": round(target, 4),
        "BiasedSGD": time_to(sgd, target), "BiasedALS cholesky": time_to(als_chol, target),
        "BiasedALS cg": time_to(als_cg, target),
        "best": {"BiasedSGD": min(r for _, r in sgd),
                 "BiasedALS cholesky": min(r for _, r in als_chol),
                 "BiasedALS cg": min(r for _, r in als_cg)},
    }
    out.update(peers(train, test))
    return out


if __name__ == "__main__":
    import sys

    print(json.dumps(main(peers_only="--peers-only" in sys.argv), indent=1, default=float))
