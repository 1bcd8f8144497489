"""Splits, cross-validation and a one-call hyper-parameter search.

Every split keeps the full id space of the input (``Ratings.subset``), so a test user or item
with no training rating is an empty row of the fitted model and is predicted by the
cold-start policy (``mu`` plus the known bias) -- unless ``unseen="drop"`` removes such test
ratings at split time.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fastmf.metrics import mae, ranking_report, rmse
from fastmf.ratings import Ratings, as_ratings, rank_within_groups

logger = logging.getLogger("fastmf")


def _drop_unseen(train: Ratings, test: Ratings) -> Ratings:
    seen_u = np.bincount(train.user_index, minlength=train.n_users) > 0
    seen_i = np.bincount(train.item_index, minlength=train.n_items) > 0
    return test.subset(seen_u[test.user_index] & seen_i[test.item_index])


def train_test_split(
    X: Any,
    test_size: float = 0.2,
    *,
    by: Literal["random", "user"] = "random",
    random_state: int | None = None,
    unseen: Literal["keep", "drop"] = "keep",
) -> tuple[Ratings, Ratings]:
    """Split ratings into a training and a test set.

    Parameters
    ----------
    X : Ratings or anything ``fit`` accepts
    test_size : float in (0, 1)
        Fraction of the ratings (``by="random"``) or of each user's ratings (``by="user"``)
        that go to the test set.
    by : {"random", "user"}
        ``"random"``: ratings drawn uniformly. ``"user"``: per-user holdout -- each user with
        at least two ratings keeps at least one in training and gives
        ``round(test_size * n_i)`` (at least one) to the test set.
    random_state : int, optional
    unseen : {"keep", "drop"}
        What to do with test ratings whose user or item has no training rating: keep them
        (the model predicts them by its cold-start policy) or drop them.
    """
    ratings = as_ratings(X)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if unseen not in ("keep", "drop"):
        raise ValueError(f"unseen must be 'keep' or 'drop', got {unseen!r}")
    rng = np.random.default_rng(random_state)
    if by == "random":
        n_test = int(round(test_size * ratings.nnz))
        test_mask = np.zeros(ratings.nnz, dtype=bool)
        test_mask[rng.permutation(ratings.nnz)[:n_test]] = True
    elif by == "user":
        counts = np.bincount(ratings.user_index, minlength=ratings.n_users)
        n = counts[ratings.user_index]
        want = np.where(n >= 2, np.clip(np.round(test_size * n), 1, n - 1), 0)
        rank = rank_within_groups(ratings.user_index, rng.random(ratings.nnz))
        test_mask = rank < want
    else:
        raise ValueError(f"by must be 'random' or 'user', got {by!r}")
    train, test = ratings.subset(~test_mask), ratings.subset(test_mask)
    if unseen == "drop":
        test = _drop_unseen(train, test)
    return train, test


class KFold:
    """K-fold cross-validation over ratings (each rating in exactly one test fold).

    Parameters
    ----------
    n_splits : int, default=5
    shuffle : bool, default=True
        Shuffle before cutting into folds; otherwise folds are consecutive blocks of the
        ratings in their (user, item) order.
    random_state : int, optional
    """

    def __init__(self, n_splits: int = 5, *, shuffle: bool = True,
                 random_state: int | None = None) -> None:
        if n_splits < 2:
            raise ValueError(f"n_splits must be at least 2, got {n_splits}")
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X: Any) -> Iterator[tuple[Ratings, Ratings]]:
        """Yield ``(train, test)`` pairs of :class:`Ratings` in the input's id space."""
        ratings = as_ratings(X)
        if ratings.nnz < self.n_splits:
            raise ValueError(f"cannot make {self.n_splits} folds of {ratings.nnz} ratings")
        order = np.arange(ratings.nnz)
        if self.shuffle:
            order = np.random.default_rng(self.random_state).permutation(ratings.nnz)
        fold = np.empty(ratings.nnz, dtype=np.int64)
        fold[order] = np.arange(ratings.nnz) * self.n_splits // ratings.nnz
        for k in range(self.n_splits):
            yield ratings.subset(fold != k), ratings.subset(fold == k)


def _clone(estimator: Any, **params: Any) -> Any:
    p = estimator.get_params()
    p.update(params)
    return type(estimator)(**p)


def score(model: Any, test: Ratings) -> dict[str, float]:
    """RMSE and MAE of a fitted model on held-out ratings (same id space or any ids)."""
    pred = model.predict(test.user_ids[test.user_index], test.item_ids[test.item_index])
    return {"rmse": rmse(test.values, pred), "mae": mae(test.values, pred)}


_RANKING = ("precision", "recall", "ndcg", "map")


def _default_scoring(estimator: Any) -> str:
    return "rmse" if getattr(estimator, "_predicts_ratings", True) else "ndcg@10"


def _scores(model: Any, test: Ratings, scoring: str, threshold: float | None) -> dict:
    """``{"test_<scoring>": value, ...}``: RMSE and MAE, or one ranking metric at k."""
    if scoring in ("rmse", "mae"):
        return {f"test_{k}": v for k, v in score(model, test).items()}
    name, _, k = scoring.partition("@")
    if name not in _RANKING or not k.isdigit():
        raise ValueError(f"scoring must be 'rmse', 'mae' or one of {_RANKING} at k, e.g. "
                         f"'ndcg@10'; got {scoring!r}")
    return {f"test_{scoring}": ranking_report(model, test, k=int(k), threshold=threshold)[
        scoring]}


def cross_validate(
    estimator: Any, X: Any, cv: int | KFold | Sequence[tuple[Ratings, Ratings]] = 5, *,
    random_state: int | None = 0, scoring: str | None = None, threshold: float | None = None,
    callback: Any = None,
) -> dict[str, np.ndarray]:
    """Fit a fresh copy of ``estimator`` on each training fold and score its test fold.

    ``cv`` is a number of folds, a :class:`KFold`, or explicit ``(train, test)`` pairs
    (e.g. the MovieLens u1..u5 files). ``scoring`` is ``"rmse"`` (the default for rating
    models: ``test_rmse`` and ``test_mae``) or a ranking metric at k such as ``"ndcg@10"`` or
    ``"precision@10"`` (the default for ImplicitALS: ``test_ndcg@10``), with the test fold's
    ratings ``>= threshold`` as the relevant items and the training items excluded. Returns
    arrays, one entry per fold, and ``fit_time`` (seconds). ``callback(fold, scores)`` is
    called after each fold.
    """
    scoring = scoring or _default_scoring(estimator)
    folds = _folds(X, cv, random_state)
    out: dict[str, list[float]] = {"fit_time": []}
    for train, test in folds:
        model = _clone(estimator)
        t0 = time.perf_counter()
        model.fit(train)
        out["fit_time"].append(time.perf_counter() - t0)
        scores = _scores(model, test, scoring, threshold)
        for key, value in scores.items():
            out.setdefault(key, []).append(value)
        if callback is not None:
            callback(len(out["fit_time"]) - 1, scores)
    return {k: np.asarray(v) for k, v in out.items()}


def _folds(X, cv, random_state):
    if isinstance(cv, int):
        return list(KFold(cv, random_state=random_state).split(X))
    if isinstance(cv, KFold):
        return list(cv.split(X))
    return list(cv)


@dataclass
class SearchResult:
    """Outcome of :func:`search`.

    Attributes
    ----------
    best_params : dict
        The parameter combination with the best mean validation score.
    best_score : float
        Its mean validation score (RMSE, or the ranking metric searched).
    results : pandas.DataFrame
        One row per combination: the parameters, ``mean_rmse``, ``std_rmse``, ``mean_mae``,
        ``mean_fit_time``, ``rank`` (1 = best).
    """

    best_params: dict[str, Any]
    best_score: float
    results: Any


def search(
    estimator: Any,
    X: Any,
    params: Mapping[str, Sequence[Any]],
    *,
    cv: int | KFold | Sequence[tuple[Ratings, Ratings]] = 3,
    n_samples: int | None = None,
    random_state: int | None = 0,
    refit: bool = False,
    scoring: str | None = None,
    threshold: float | None = None,
    progress: bool = False,
) -> SearchResult:
    """Choose hyper-parameters (e.g. ``n_factors`` and ``reg``) by cross-validated RMSE.

    Parameters
    ----------
    estimator : BiasedALS
        Template; its other parameters are kept.
    X : ratings to search on (only these: keep the final test set out of it).
    params : mapping of parameter name to candidate values
        The grid. With ``n_samples``, that many distinct combinations are drawn from it at
        random instead of trying all.
    cv : folds, as in :func:`cross_validate`
    refit : bool
        Also fit the best configuration on all of ``X`` and return it as
        ``result.best_estimator``.
    scoring, threshold : as in :func:`cross_validate`
        RMSE is minimized; a ranking metric is maximized.
    progress : bool
        A progress bar (tqdm, stderr) over the combinations x folds; each fit is also
        logged (``logging.getLogger("fastmf")``, INFO) with its parameters and fold.

    Warns
    -----
    UserWarning
        When the best value of a parameter with three or more numeric candidates is the
        smallest or the largest of them: the optimum may lie outside the grid.
    """
    import pandas as pd

    names = list(params)
    grid = list(itertools.product(*(list(params[n]) for n in names)))
    if not grid:
        raise ValueError("params must give at least one candidate value per parameter")
    if n_samples is not None and n_samples < len(grid):
        rng = np.random.default_rng(random_state)
        grid = [grid[i] for i in sorted(rng.choice(len(grid), n_samples, replace=False))]
    scoring = scoring or _default_scoring(estimator)
    metric = "rmse" if scoring in ("rmse", "mae") else scoring
    folds = _folds(X, cv, random_state)
    rows = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(grid) * len(folds), desc="search", unit="fit")
    for values in grid:
        combo = dict(zip(names, values))
        label = ", ".join(f"{k}={_plain(v)}" for k, v in combo.items())

        def report(fold: int, scores: dict, label=label) -> None:
            text = ", ".join(f"{k[5:]} {v:.4f}" for k, v in scores.items())
            logger.info(f"search: {label}, fold {fold + 1}/{len(folds)}: {text}")
            if bar is not None:
                bar.set_postfix_str(label, refresh=False)
                bar.update(1)

        cvres = cross_validate(_clone(estimator, **combo), X, folds, scoring=scoring,
                               threshold=threshold, callback=report)
        row = {**combo, f"mean_{metric}": cvres[f"test_{metric}"].mean(),
               f"std_{metric}": cvres[f"test_{metric}"].std()}
        if metric == "rmse":
            row["mean_mae"] = cvres["test_mae"].mean()
        rows.append({**row, "mean_fit_time": cvres["fit_time"].mean()})
    table = pd.DataFrame(rows)
    sign = 1.0 if metric == "rmse" else -1.0  # lower RMSE is better, higher ranking metric
    table["rank"] = (sign * table[f"mean_{metric}"]).rank(method="min").astype(int)
    best = int(np.argmin(sign * table[f"mean_{metric}"].to_numpy()))  # first of equals
    if bar is not None:
        bar.close()
    best_params = {n: _plain(v) for n, v in zip(names, grid[best])}
    for name in names:
        candidates = sorted({_plain(v) for v in params[name]
                             if isinstance(_plain(v), (int, float))})
        if len(candidates) >= 3 and best_params[name] in (candidates[0], candidates[-1]):
            warnings.warn(f"search: the best {name}={best_params[name]} is at the edge of "
                          f"its candidates {candidates}; the optimum may lie beyond them",
                          UserWarning, stacklevel=2)
    result = SearchResult(best_params, float(table[f"mean_{metric}"].iloc[best]), table)
    if refit:
        result.best_estimator = _clone(estimator, **best_params).fit(X)
    return result


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
