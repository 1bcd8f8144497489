"""Accuracy on MovieLens with hyper-parameters chosen by the library's own search.

    python bench/accuracy.py ml100k      # u1..u5 base/test, search on each base only
    python bench/accuracy.py ml1m        # random 90/10 split, search on the 90 % only

Reads ``$FASTMF_DATA_DIR`` (default ``../shared/data``). For every outer split the search
(``fastmf.model_selection.search`` on a 90/10 holdout of the training part) picks
``n_factors`` and ``reg``; the chosen model is refit on the whole training part and scored
once on the test part, which the search never saw.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import fastmf
from fastmf.model_selection import score, search, train_test_split

DATA = Path(os.environ.get("FASTMF_DATA_DIR", Path(__file__).resolve().parents[2] / "shared"
                           / "data"))


def ml100k() -> dict:
    grid = {"n_factors": [32, 64, 128], "reg": [0.1, 0.12, 0.14, 0.16]}
    template = fastmf.BiasedALS(n_iter=30, solver="cg", cg_steps=4, random_state=0)
    folds = []
    for i in range(1, 6):
        train = fastmf.read_ratings(DATA / "ml-100k" / f"u{i}.base")
        test = fastmf.read_ratings(DATA / "ml-100k" / f"u{i}.test")
        holdout = [train_test_split(train, 0.1, random_state=i)]
        res = search(template, train, grid, cv=holdout)
        model = fastmf.BiasedALS(**{**template.get_params(), **res.best_params}).fit(train)
        folds.append({"fold": f"u{i}", **res.best_params,
                      "validation_rmse": round(res.best_score, 4),
                      **{k: round(v, 4) for k, v in score(model, test).items()}})
        print(json.dumps(folds[-1]), flush=True)
    return {"protocol": "ML-100K u1..u5, search on a 90/10 holdout of each base",
            "folds": folds,
            "mean_test_rmse": round(float(np.mean([f["rmse"] for f in folds])), 4),
            "mean_test_mae": round(float(np.mean([f["mae"] for f in folds])), 4)}


def ml1m() -> dict:
    ratings = fastmf.read_ratings(DATA / "ml-1m" / "ratings_uir.tsv.gz")
    train, test = train_test_split(ratings, 0.1, random_state=0)
    # Validation: one 90/10 split of the training part. 3-fold CV would train on only two
    # thirds of it and so pick more regularization than the full training part wants.
    holdout = [train_test_split(train, 0.1, random_state=1)]
    grid = {"n_factors": [128, 256], "reg": [0.05, 0.06, 0.07, 0.08]}
    template = fastmf.BiasedALS(n_iter=30, solver="cg", cg_steps=4, random_state=0)
    res = search(template, train, grid, cv=holdout)
    print(res.results.to_string(index=False), flush=True)
    model = fastmf.BiasedALS(**{**template.get_params(), **res.best_params}).fit(train)
    return {"protocol": "ML-1M random 90/10 (random_state=0), search on a 90/10 holdout of "
                        "the 90 % (random_state=1)",
            **res.best_params, "validation_rmse": round(res.best_score, 4),
            **{f"test_{k}": round(v, 4) for k, v in score(model, test).items()}}


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "ml100k"
    t0 = time.perf_counter()
    out = {"ml100k": ml100k, "ml1m": ml1m}[which]()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
