"""Top-N quality on MovieLens-1M, as users experience it (issue 12's protocol).

    python bench/topn.py              # every fastmf model, popularity, and implicit if installed

Protocol (docs/design.md, "Top-N"): random 90/10 split with ``numpy.random.default_rng(0)``
(``rng.random(n) < 0.1`` marks test), test pairs with an unseen user or item dropped;
relevant = a user's test ratings >= 4; the user's training items excluded; all other items
ranked; precision@10 and NDCG@10 averaged over users with at least one relevant item
(:func:`fastmf.metrics.ranking_report`), with catalogue coverage and the long-tail share.
ImplicitALS's ``reg`` and ``alpha`` are chosen by ``fastmf.model_selection.search``
(NDCG@10) on a 90/10 holdout of the training part only; the explicit models run with their
defaults. Reads ``$FASTMF_DATA_DIR`` (default ``../shared/data``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import fastmf
from fastmf.metrics import ndcg_at_k, precision_at_k, ranking_report
from fastmf.model_selection import search, train_test_split

DATA = Path(os.environ.get("FASTMF_DATA_DIR", Path(__file__).resolve().parents[2] / "shared"
                           / "data"))
K = 10
GRID = {"reg": [5.0, 20.0, 50.0, 100.0, 200.0], "alpha": [0.3, 1.0, 3.0]}


def split():
    ratings = fastmf.read_ratings(DATA / "ml-1m" / "ratings_uir.tsv.gz")
    test_mask = np.random.default_rng(0).random(ratings.nnz) < 0.1
    train, test = ratings.subset(~test_mask), ratings.subset(test_mask)
    seen_u = np.bincount(train.user_index, minlength=train.n_users) > 0
    seen_i = np.bincount(train.item_index, minlength=train.n_items) > 0
    return train, test.subset(seen_u[test.user_index] & seen_i[test.item_index])


def relevant_matrix(train, test):
    keep = test.values >= 4
    return sp.csr_array((np.ones(int(keep.sum())), (test.user_index[keep],
                                                     test.item_index[keep])),
                        shape=train.shape)


def popularity(train, test) -> dict:
    """Most-rated training items first, the user's own training items skipped."""
    counts = np.bincount(train.item_index, minlength=train.n_items)
    order = np.argsort(-counts, kind="stable")
    rated = sp.csr_array((np.ones(train.nnz), (train.user_index, train.item_index)),
                         shape=train.shape)
    rec = np.empty((train.n_users, K), dtype=np.int64)
    for u in range(train.n_users):  # a baseline for the table, not library code
        seen = set(rated.indices[rated.indptr[u]:rated.indptr[u + 1]])
        rec[u] = [i for i in order[: K + len(seen)] if i not in seen][:K]
    rel = relevant_matrix(train, test)
    return {f"precision@{K}": precision_at_k(rec, rel, K), f"ndcg@{K}": ndcg_at_k(rec, rel, K),
            f"coverage@{K}": len(np.unique(rec)) / train.n_items}


def peer_implicit(train, test) -> dict | None:
    try:
        import implicit  # noqa: F401
        from implicit.als import AlternatingLeastSquares
    except ImportError:
        return None
    X = sp.csr_matrix((np.ones(train.nnz, dtype=np.float32),
                       (train.user_index, train.item_index)), shape=train.shape)
    model = AlternatingLeastSquares(factors=64, regularization=0.05, iterations=15,
                                    random_state=0)
    model.fit(X, show_progress=False)
    ids, _ = model.recommend(np.arange(train.n_users), X, N=K, filter_already_liked_items=True)
    rel = relevant_matrix(train, test)
    return {f"precision@{K}": precision_at_k(ids, rel, K), f"ndcg@{K}": ndcg_at_k(ids, rel, K),
            "version": implicit.__version__}


def main() -> dict:
    train, test = split()
    out = {"protocol": __doc__.split("Protocol")[1].split("Reads")[0].strip()}
    out["most popular"] = popularity(train, test)
    for name, model in [("BiasedALS()", fastmf.BiasedALS(random_state=0)),
                        ("BayesianALS()", fastmf.BayesianALS(random_state=0))]:
        t0 = time.perf_counter()
        model.fit(train)
        out[name] = {**ranking_report(model, test, K, threshold=4),
                     "fit_seconds": time.perf_counter() - t0}
    holdout = [train_test_split(train, 0.1, random_state=1)]
    t0 = time.perf_counter()
    res = search(fastmf.ImplicitALS(64, random_state=0), train, GRID, cv=holdout,
                 scoring=f"ndcg@{K}", threshold=4)
    model = fastmf.ImplicitALS(64, random_state=0, **res.best_params).fit(train)
    out["ImplicitALS, searched"] = {**res.best_params, **ranking_report(model, test, K,
                                                                        threshold=4),
                                    "search_and_fit_seconds": time.perf_counter() - t0}
    peer = peer_implicit(train, test)
    if peer is not None:
        out["implicit ALS (K=64, reg=0.05, 15 it, binarized)"] = peer
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, default=float))
