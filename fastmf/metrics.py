"""Accuracy and ranking metrics, vectorized over users (no Python loop per user).

Ranking metrics take ``recommended``, an ``(n_users, >= k)`` integer array of item *indices*
(best first, -1 for padding), and ``relevant``, a scipy.sparse matrix ``(n_users, n_items)``
whose stored non-zero entries mark the relevant items of each row's user. Users with no
relevant item are left out of the mean (their metrics are undefined). :func:`ranking_report`
does the id mapping from a fitted model and held-out ratings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastmf.ratings import as_ratings, lookup


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def _pair(y_true, y_pred):
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} != {p.size}")
    if t.size == 0:
        raise ValueError("cannot score an empty set of predictions")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("y_true and y_pred must be finite")
    return t, p


def _hits(recommended: np.ndarray, relevant: Any, k: int):
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be 2-D (users x ranks), got shape {rec.shape}")
    if k < 1 or k > rec.shape[1]:
        raise ValueError(f"k must be in 1..{rec.shape[1]}, got {k}")
    rel = sp.csr_array(relevant)
    if rel.shape[0] != rec.shape[0]:
        raise ValueError(
            f"recommended has {rec.shape[0]} rows but relevant has {rel.shape[0]}"
        )
    rel.eliminate_zeros()
    rec = rec[:, :k].astype(np.int64)
    n_items = rel.shape[1]
    rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    rel_keys = rows * n_items + rel.indices
    rec_keys = np.arange(rec.shape[0], dtype=np.int64)[:, None] * n_items + rec
    hits = np.isin(rec_keys, rel_keys) & (rec >= 0)
    n_rel = np.diff(rel.indptr)
    return hits, n_rel


def precision_at_k(recommended: np.ndarray, relevant: Any, k: int = 10) -> float:
    """Mean over users of (relevant items among the top k) / k."""
    hits, n_rel = _hits(recommended, relevant, k)
    return _mean(hits.sum(axis=1) / k, n_rel)


def recall_at_k(recommended: np.ndarray, relevant: Any, k: int = 10) -> float:
    """Mean over users of (relevant items among the top k) / (number of relevant items)."""
    hits, n_rel = _hits(recommended, relevant, k)
    return _mean(hits.sum(axis=1) / np.maximum(n_rel, 1), n_rel)


def ndcg_at_k(recommended: np.ndarray, relevant: Any, k: int = 10) -> float:
    """Mean normalized discounted cumulative gain with binary relevance, ``log2(rank + 1)``."""
    hits, n_rel = _hits(recommended, relevant, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discount
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n_rel, k)]
    return _mean(dcg / np.where(ideal > 0, ideal, 1.0), n_rel)


def map_at_k(recommended: np.ndarray, relevant: Any, k: int = 10) -> float:
    """Mean average precision: ``sum_r hit_r * precision@r / min(n_relevant, k)``."""
    hits, n_rel = _hits(recommended, relevant, k)
    prec_at_r = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (prec_at_r * hits).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
    return _mean(ap, n_rel)


def _mean(per_user: np.ndarray, n_rel: np.ndarray) -> float:
    defined = n_rel > 0
    if not defined.any():
        raise ValueError("no user has a relevant item: ranking metrics are undefined")
    return float(np.mean(per_user[defined]))


def ranking_report(
    model: Any, test: Any, k: int = 10, *, threshold: float | None = None,
    exclude_rated: bool = True,
) -> dict[str, float]:
    """precision@k, recall@k, NDCG@k and MAP@k of a fitted model on held-out ratings, with
    the catalogue coverage and the long-tail share of its recommendations.

    The relevant items of a user are their held-out ratings (those ``>= threshold`` when one
    is given). Every test user the model knows with at least one relevant item is scored, all
    items ranked, the training items excluded from their recommendations. ``coverage@k`` is
    the share of the model's items that appear in some scored user's top k;
    ``long_tail@k`` the share of the recommendations that are long-tail items -- outside the
    most-interacted items that together hold 80 % of the training interactions -- so a
    list that only repeats the popular items scores near 0.
    """
    t = as_ratings(test)
    keep = np.ones(t.nnz, dtype=bool) if threshold is None else t.values >= threshold
    ui = lookup(model.user_ids_, t.user_ids, "user")[t.user_index[keep]]
    ii = lookup(model.item_ids_, t.item_ids, "item")[t.item_index[keep]]
    ok = (ui >= 0) & (ii >= 0)
    users = np.unique(ui[ok])
    row_of = np.full(len(model.user_ids_), -1)
    row_of[users] = np.arange(len(users))
    relevant = sp.csr_array(
        (np.ones(int(ok.sum())), (row_of[ui[ok]], ii[ok])),
        shape=(len(users), len(model.item_ids_)),
    )
    rec_ids, _ = model.recommend_batch(model.user_ids_[users], n=k, exclude_rated=exclude_rated)
    recommended = np.full(rec_ids.shape, -1, dtype=np.int64)
    present = np.not_equal(rec_ids, None)
    recommended[present] = lookup(model.item_ids_, rec_ids[present].astype(model.item_ids_.dtype))
    counts = np.asarray(model.item_counts_, dtype=np.float64)
    by_popularity = np.argsort(-counts, kind="stable")
    head_size = int(np.searchsorted(np.cumsum(counts[by_popularity]), 0.8 * counts.sum()) + 1)
    tail = np.ones(len(counts), dtype=bool)
    tail[by_popularity[:head_size]] = False
    shown = recommended[:, :k][recommended[:, :k] >= 0]
    return {
        f"precision@{k}": precision_at_k(recommended, relevant, k),
        f"recall@{k}": recall_at_k(recommended, relevant, k),
        f"ndcg@{k}": ndcg_at_k(recommended, relevant, k),
        f"map@{k}": map_at_k(recommended, relevant, k),
        f"coverage@{k}": float(len(np.unique(shown)) / len(counts)),
        f"long_tail@{k}": float(tail[shown].mean()) if shown.size else 0.0,
    }
