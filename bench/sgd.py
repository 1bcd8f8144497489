"""BiasedSGD next to BiasedALS on MovieLens-1M (random 90/10, ``random_state=0``), as users
ask: accuracy with parameters chosen by the library's own search on the training part, and
the time each takes to reach a validation RMSE -- not only the time per epoch.

    python bench/sgd.py            # reads $FASTMF_DATA_DIR (default ../shared/data)

Per-epoch speed against Surprise's SVD, when scikit-surprise is installed, on the same
training part, K and threads: ``(fit(3 epochs) - fit(1 epoch)) / 2``, min of 3.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

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


def main() -> dict:
    ratings = fastmf.read_ratings(DATA / "ml-1m" / "ratings_uir.tsv.gz")
    train, test = train_test_split(ratings, 0.1, random_state=0)
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
    try:
        import pandas as pd
        import surprise

        df = pd.DataFrame({"u": train.user_index, "i": train.item_index, "r": train.values})
        trainset = surprise.Dataset.load_from_df(df, surprise.Reader(rating_scale=(1, 5))
                                                 ).build_full_trainset()

        def per_epoch(fit):
            fit(1)
            runs = []
            for _ in range(3):
                t = {}
                for n in (1, 3):
                    t0 = time.perf_counter()
                    fit(n)
                    t[n] = time.perf_counter() - t0
                runs.append((t[3] - t[1]) / 2)
            return min(runs)

        ps = per_epoch(lambda n: surprise.SVD(n_factors=32, n_epochs=n, random_state=0)
                       .fit(trainset))
        f1 = per_epoch(lambda n: fastmf.BiasedSGD(32, n_epochs=n, n_jobs=1).fit(train))
        f2 = per_epoch(lambda n: fastmf.BiasedSGD(32, n_epochs=n, n_jobs=2).fit(train))
        out["per_epoch_K32"] = {"surprise SVD": round(ps, 4), "fastmf 1 thread": round(f1, 4),
                                "fastmf 2 threads": round(f2, 4),
                                "surprise / fastmf(2)": round(ps / f2, 2),
                                "1 -> 2 threads": round(f1 / f2, 2),
                                "surprise": surprise.__version__}
    except ImportError:
        pass
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, default=float))
