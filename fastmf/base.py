"""What every fastmf estimator shares once fitted: prediction, recommendation, similarity,
saving and the scikit-learn parameter conventions (docs/design.md, "Layers").

A fitted model predicts ``r_ij = mu + b_i + c_j + u_i . v_j`` from ``user_factors_``,
``item_factors_``, ``user_bias_``, ``item_bias_`` and ``global_mean_``. An estimator
subclasses :class:`FactorModel`, lists its constructor parameters in ``_params`` (a
:class:`~fastmf._params.Param` table) and provides ``fit``, which ends by calling
:meth:`FactorModel._set_fitted` -- the one place the common fitted attributes are assigned.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from fastmf._params import Param, positive_int, validate
from fastmf.kernels import loss_rows, predict_pairs, top_n
from fastmf.ratings import Ratings, as_ratings, id_kind, lookup, show

Unseen = Literal["bias", "nan", "raise"]
RankBy = Literal["liked", "rating"]
_UNSEEN = ("bias", "nan", "raise")


class FactorModel:
    """Base class of the estimators (see the module docstring)."""

    #: The constructor's parameters, declaratively (validation, get_params, the CLI).
    _params: ClassVar[tuple[Param, ...]] = ()
    #: Per-iteration curves saved with the model: ``(required, optional)`` attribute stems.
    _CURVES: ClassVar[tuple[tuple[str, ...], tuple[str, ...]]] = (
        ("loss_curve",), ("validation_curve",))
    #: The curve that shows training progress, its label, and whether to plot it on a log scale.
    _TRAINING_CURVE: ClassVar[tuple[str, str, bool]] = ("loss_curve_", "objective J", True)
    #: What one training iteration is called.
    _unit: ClassVar[str] = "iteration"
    #: Whether ``predict`` estimates ratings (so RMSE means something) or only scores.
    _predicts_ratings: ClassVar[bool] = True
    #: Set by ``fastmf._registry.register``: the estimator's short name (``--model``).
    _registry_name: ClassVar[str] = ""

    # -- parameters ---------------------------------------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as in scikit-learn."""
        return {p.name: getattr(self, p.name) for p in self._params}

    def set_params(self, **params: Any) -> FactorModel:
        """Set constructor parameters, as in scikit-learn; returns ``self``."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's default estimator tags (scikit-learn >= 1.6 asks every estimator;
        fastmf does not depend on it, so they are built only when it asks)."""
        from sklearn.base import BaseEstimator

        tags = BaseEstimator.__sklearn_tags__(self)
        tags.target_tags.required = False  # fit(X) takes no y
        return tags

    def _checked_params(self) -> dict[str, Any]:
        """The parameters validated against ``_params`` (at fit time, as scikit-learn does)."""
        return validate(self._params, self)

    def __repr__(self) -> str:
        shown = [f"{p.name}={getattr(self, p.name)!r}" for p in self._params
                 if not _same(getattr(self, p.name), p.default)]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- fitted-model operations -----------------------------------------------------------------

    def predict(self, users: Any, items: Any, *, unseen: Unseen = "bias",
                clip: bool = True) -> np.ndarray:
        """Predicted ratings for ``(users[k], items[k])`` pairs, in the caller's id space.

        Parameters
        ----------
        users, items : array-like of ids (or scalars)
        unseen : {"bias", "nan", "raise"}, default="bias"
            For ids the model was not fitted with: ``"bias"`` predicts ``mu`` plus whichever
            bias is known (no interaction term); ``"nan"`` gives NaN; ``"raise"`` raises
            ``KeyError`` naming the first unknown id.
        clip : bool, default=True
            Clip to the range of the training ratings (``rating_range_``); a prediction of
            5.4 on a 1-5 scale is never closer to the truth than 5. Models that only score
            (ImplicitALS) are never clipped.

        Returns
        -------
        ndarray of the model dtype, shape (n,)
        """
        self._check_fitted()
        if unseen not in _UNSEEN:
            raise ValueError(f"unseen must be one of {_UNSEEN}, got {unseen!r}")
        u_arr = np.atleast_1d(np.asarray(users))
        i_arr = np.atleast_1d(np.asarray(items))
        if u_arr.ndim != 1 or i_arr.ndim != 1 or len(u_arr) != len(i_arr):
            raise ValueError(
                "users and items must be 1-D and of the same length, got shapes "
                f"{u_arr.shape} and {i_arr.shape}"
            )
        ui = lookup(self.user_ids_, u_arr, "user")
        ii = lookup(self.item_ids_, i_arr, "item")
        if unseen == "raise":
            for kind, idx, ids in (("user", ui, u_arr), ("item", ii, i_arr)):
                if (idx < 0).any():
                    k = int(np.flatnonzero(idx < 0)[0])
                    where = f" (at position {k})" if len(ids) > 1 else ""
                    raise KeyError(f"unknown {kind} id {show(ids[k])}{where}")
        pred = self._predict_index(ui, ii, unseen)
        return self._clip(pred) if clip else pred

    def recommend(
        self, user: Any, n: int = 10, *, exclude_rated: bool = True, unseen: Unseen = "bias",
        rank_by: RankBy | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best items for one user.

        Parameters
        ----------
        user : id
        n : int, default=10
        exclude_rated : bool, default=True
            Leave out the items the user rated in the training data.
        unseen : {"bias", "raise"}, default="bias"
            For a user the model does not know: rank as for a user with zero factors and
            bias (by the items' terms alone), or raise ``KeyError``.
        rank_by : {"liked", "rating"}, optional
            Rating models only. ``"liked"`` (the default) ranks by the probability that the
            user rates the item *and* rates it above the mean: ``log(n_j + 1) + log
            Phi((r_hat - mu) / sigma)`` with ``n_j`` the item's training ratings and
            ``sigma`` the training residual (``residual_std_``). ``"rating"`` ranks by the
            predicted rating alone, which puts items with one or two enthusiastic ratings
            first and recommends worse than "most popular" (README, "Which model?").

        Returns
        -------
        items : ndarray of item ids, best first
            Shorter than ``n`` when fewer items are left to recommend.
        scores : ndarray
            Rating models: the predicted (clipped) rating of each item, in ranking order
            (decreasing under ``rank_by="rating"``). ImplicitALS: the score ``x_u . y_i``.
        """
        items, scores = self.recommend_batch([user], n, exclude_rated=exclude_rated,
                                             unseen=unseen, rank_by=rank_by)
        keep = np.isfinite(scores[0])
        return np.asarray(items[0][keep]).astype(self.item_ids_.dtype), scores[0][keep]

    def recommend_batch(
        self, users: Any, n: int = 10, *, exclude_rated: bool = True, unseen: Unseen = "bias",
        rank_by: RankBy | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`recommend` for many users at once (one parallel kernel call).

        Returns
        -------
        items : ndarray of shape (len(users), n)
            Item ids, best first. Where a user has fewer than ``n`` items left, the row is
            padded with None (the array is then of object dtype) and score ``-inf``.
        scores : ndarray of shape (len(users), n), model dtype
        """
        self._check_fitted()
        n = positive_int(n, "n")
        n = min(n, len(self.item_ids_))
        u_arr = np.atleast_1d(np.asarray(users))
        ui = lookup(self.user_ids_, u_arr, "user")
        if (ui < 0).any() and unseen != "bias":
            if unseen != "raise":
                raise ValueError(f"unseen must be 'bias' or 'raise', got {unseen!r}")
            k = int(np.flatnonzero(ui < 0)[0])
            where = f" (at position {k})" if len(u_arr) > 1 else ""
            raise KeyError(f"unknown user id {show(u_arr[k])}{where}")
        dt = self.user_factors_.dtype
        known = ui >= 0
        Q = np.zeros((len(ui), self.user_factors_.shape[1]), dtype=dt)
        Q[known] = self.user_factors_[ui[known]]
        q_offset = np.full(len(ui), self.global_mean_, dtype=dt)
        q_offset[known] += self.user_bias_[ui[known]]
        if exclude_rated:
            excl_indptr, excl_indices = sub_csr(self._rated_indptr, self._rated_indices, ui)
        else:
            excl_indptr = np.zeros(len(ui) + 1, dtype=np.int64)
            excl_indices = np.zeros(0, dtype=np.int32)
        liked = self._rank_by(rank_by) == "liked"
        counts = np.asarray(self.item_counts_, dtype=np.float64)
        sigma = float(getattr(self, "residual_std_", 1.0) or 1.0)
        out_index = np.empty((len(ui), n), dtype=np.int64)
        out_score = np.empty((len(ui), n), dtype=np.float64)
        top_n(Q, q_offset, self.item_factors_, self.item_bias_, np.log1p(counts),
              float(self.global_mean_), 1.0 / sigma, liked, excl_indptr, excl_indices, n,
              out_index, out_score)
        scores = out_score.astype(dt)
        if self._predicts_ratings:  # report the predicted ratings of the chosen items
            found = out_index >= 0
            rows = np.broadcast_to(ui[:, None], out_index.shape)[found]
            pred = self._predict_index(rows, out_index[found], "bias")
            scores[found] = self._clip(pred)
        return ids_at(self.item_ids_, out_index), scores

    def similar_items(self, item: Any, n: int = 10, *,
                      shrink: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most similar to ``item``: the cosine similarity of their factors,
        shrunk by the evidence behind each candidate, ``cos * n_j / (n_j + shrink)`` with
        ``n_j`` its training ratings (Koren 2008's shrunk similarity).

        Without the shrinkage (``shrink=0``) an item rated once or twice, whose factors rest
        on almost nothing, can come first. Returns item ids (the item itself excluded) and
        similarities, most similar first. Raises ``KeyError`` for an unknown item.
        """
        self._check_fitted()
        return _similar(self.item_factors_, self.item_ids_, self.item_counts_, item, n,
                        shrink, "item")

    def similar_users(self, user: Any, n: int = 10, *,
                      shrink: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` users most similar to ``user``, as :meth:`similar_items` for items."""
        self._check_fitted()
        return _similar(self.user_factors_, self.user_ids_, self.user_counts_, user, n,
                        shrink, "user")

    def score(self, X: Any, y: None = None) -> float:
        """How well the fitted model does on held-out data ``X``; higher is better, as
        scikit-learn's model-selection tools (``GridSearchCV``, ``cross_val_score``) expect.

        Rating models: minus the RMSE of the (clipped) predictions on ``X``'s ratings.
        ImplicitALS: NDCG@10 of its lists against ``X``'s pairs (training items excluded).
        ``X`` is anything ``fit`` takes (a DataFrame of held-out rows, for GridSearchCV).
        """
        from fastmf.metrics import ranking_report, rmse

        self._check_fitted()
        test = as_ratings(X)
        if not self._predicts_ratings:
            return float(ranking_report(self, test, k=10)["ndcg@10"])
        pred = self.predict(test.user_ids[test.user_index], test.item_ids[test.item_index])
        return -rmse(test.values, pred)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted model to one ``.npz`` file (no pickle); see :func:`fastmf.load`.

        Returns the path written (``.npz`` appended when missing).
        """
        from fastmf.persist import save

        return save(self, path)

    # -- for subclasses ------------------------------------------------------------------------

    def _rank_by(self, rank_by: RankBy | None) -> str:
        if not self._predicts_ratings:
            if rank_by not in (None, "score"):
                raise ValueError(f"{type(self).__name__} ranks by its score; rank_by must be "
                                 f"None, got {rank_by!r}")
            return "score"
        if rank_by is None:
            return "liked"
        if rank_by not in ("liked", "rating"):
            raise ValueError(f"rank_by must be 'liked' or 'rating', got {rank_by!r}")
        return rank_by

    def _clip(self, pred: np.ndarray) -> np.ndarray:
        lo_hi = getattr(self, "rating_range_", None)
        if lo_hi is None or not self._predicts_ratings:
            return pred
        return np.clip(pred, lo_hi[0], lo_hi[1]).astype(pred.dtype, copy=False)

    def _set_residual_std(self, csr: tuple, sse: float | None = None) -> None:
        """``residual_std_``: the RMSE of the fitted model on its training ratings (the
        ``sigma`` of ``rank_by="liked"``), from their sum of squared residuals ``sse`` where
        the fit has it at the final factors, else from the fit's CSR arrays by the loss
        kernel (no per-rating temporaries)."""
        if sse is None:
            t = self.user_factors_.dtype.type
            sse = loss_rows(*csr, self.user_factors_, self.user_bias_, self.item_factors_,
                            self.item_bias_, t(self.global_mean_), t(0), t(0), False, False)
        self.residual_std_ = float(np.sqrt(sse / max(len(csr[1]), 1)))

    def _check_training(self, ratings: Ratings) -> None:
        """Refuse an empty training set; warn when ratings are all equal, which gives a
        rating model nothing to learn (a 0/1 click matrix given as "ratings")."""
        if ratings.nnz == 0:
            raise ValueError("cannot fit on an empty rating set (0 ratings)")
        values = ratings.values
        if self._predicts_ratings and values.min() == values.max() and ratings.nnz > 1:
            warnings.warn(
                f"all {ratings.nnz} ratings equal {show(values[0])}: a rating model can only "
                "predict that value and its lists carry no preference. For clicks, plays or "
                "purchases use ImplicitALS", UserWarning, stacklevel=3)

    def _planned_iterations(self) -> int:
        """Iterations a fit runs unless stopped early (for progress bars)."""
        return int(self.n_iter)

    def _registry_unit(self, n: int) -> str:
        """``n`` iterations in this estimator's words ("3 iterations", "1 sweep")."""
        return f"{n} {self._unit}" + ("" if n == 1 else "s")

    def _progress_postfix(self, train: Ratings) -> dict[str, str]:
        """What a progress bar shows after an iteration: the objective and training RMSE
        (the model is usable between iterations)."""
        users, items = train.user_ids[train.user_index], train.item_ids[train.item_index]
        rmse = np.sqrt(np.mean((self.predict(users, items).astype(np.float64)
                                - train.values) ** 2))
        return {"loss": f"{self.loss_curve_[-1]:.5g}", "rmse": f"{rmse:.4f}"}

    def _set_fitted(self, *, user_ids, item_ids, user_factors, item_factors, user_bias,
                    item_bias, user_counts, item_counts, rated_indptr, rated_indices,
                    global_mean, rating_range=None) -> None:
        """Publish the fitted state every estimator has (the one place it is assigned).

        ``rating_range`` (min, max of the training ratings) is kept when None is given, so a
        fold-in keeps the fit's."""
        if rating_range is not None:  # a new fit: its residual is set when it ends
            self.rating_range_ = (float(rating_range[0]), float(rating_range[1]))
            self.__dict__.pop("residual_std_", None)
        self.user_ids_, self.item_ids_ = user_ids, item_ids
        self.user_factors_, self.item_factors_ = user_factors, item_factors
        self.user_bias_, self.item_bias_ = user_bias, item_bias
        self.user_counts_, self.item_counts_ = user_counts, item_counts
        self._rated_indptr, self._rated_indices = rated_indptr, rated_indices
        self.global_mean_ = float(global_mean)

    def _fold_in(self, X: Any, solve: Any) -> FactorModel:
        """What every ``fold_in`` shares: map ``X`` onto the model's items (ignoring, with a
        warning, items it does not know), check the id type, let ``solve(new, F, bias)``
        write the new or changed users' rows in place (``new`` their ratings in the model's
        item space; ``F``, ``bias`` start at their current rows, zeros for new users) and
        return ``(indptr, indices)`` of their ratings; then publish the grown model."""
        self._check_fitted()
        vr = as_ratings(X)
        ii = lookup(self.item_ids_, vr.item_ids, "item")[vr.item_index]
        known = ii >= 0
        if not known.all():
            warnings.warn(f"fold_in: ignoring {int((~known).sum())} rating(s) of items the "
                          "model does not know", stacklevel=3)
        new = Ratings._from_indices(vr.user_index[known], ii[known], vr.values[known],
                                    vr.user_ids, self.item_ids_)
        if id_kind(new.user_ids) != id_kind(self.user_ids_):
            raise TypeError(f"fold_in: user ids of dtype {new.user_ids.dtype} do not match the "
                            f"model's user ids of dtype {self.user_ids_.dtype}")
        all_ids = np.union1d(self.user_ids_, new.user_ids)
        old_pos, new_pos = lookup(all_ids, self.user_ids_), lookup(all_ids, new.user_ids)
        dt = self.user_factors_.dtype
        U = np.zeros((len(all_ids), self.user_factors_.shape[1]), dtype=dt)
        b = np.zeros(len(all_ids), dtype=dt)
        U[old_pos], b[old_pos] = self.user_factors_, self.user_bias_
        F, bias = np.ascontiguousarray(U[new_pos]), np.ascontiguousarray(b[new_pos])
        indptr, indices = solve(new, F, bias)
        U[new_pos], b[new_pos] = F, bias
        counts = np.diff(indptr)
        user_counts = np.zeros(len(all_ids), dtype=np.int64)
        user_counts[old_pos] = self.user_counts_
        user_counts[new_pos] = counts
        # the rated-items structure: old users' rows, with folded-in users' rows replaced
        old_rows = np.repeat(old_pos, np.diff(self._rated_indptr))
        keep = ~np.isin(old_rows, new_pos)
        rows = np.r_[old_rows[keep], np.repeat(new_pos, counts)]
        cols = np.r_[self._rated_indices[keep], indices]
        order = np.lexsort((cols, rows))
        self._set_fitted(
            user_ids=all_ids, item_ids=self.item_ids_, user_factors=U,
            item_factors=self.item_factors_, user_bias=b, item_bias=self.item_bias_,
            user_counts=user_counts, item_counts=self.item_counts_,
            rated_indptr=np.r_[0, np.cumsum(np.bincount(rows, minlength=len(all_ids)))],
            rated_indices=cols[order].astype(np.int32), global_mean=self.global_mean_,
        )
        return self

    def _predict_index(self, ui: np.ndarray, ii: np.ndarray, unseen: Unseen) -> np.ndarray:
        return predict_at(ui, ii, self.user_factors_, self.user_bias_, self.item_factors_,
                          self.item_bias_, self.global_mean_, unseen)

    def _rmse_index(self, ui: np.ndarray, ii: np.ndarray, truth: np.ndarray) -> float:
        pred = self._predict_index(ui, ii, "bias")
        return float(np.sqrt(np.mean((pred.astype(np.float64) - truth) ** 2)))

    def _stored_width(self, meta: dict[str, Any]) -> int:
        """Columns of the factors in a model file (validates the parameters)."""
        return self._checked_params()["n_factors"]

    def _stored_meta(self) -> dict[str, Any]:
        """Fitted scalars beyond the common ones that a model file must keep."""
        return {}

    def _restore_meta(self, meta: dict[str, Any]) -> None:
        """Set what :meth:`_stored_meta` saved."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "user_factors_"):
            raise AttributeError(
                f"this {type(self).__name__} is not fitted yet; call fit() first"
            )

    def _portable_params(self) -> dict[str, Any]:
        """``get_params()`` as JSON: plain numbers, the dtype by name, a Generator as None."""
        p = {k: (v.item() if isinstance(v, np.generic) else v)
             for k, v in self.get_params().items()}
        p["dtype"] = np.dtype(p["dtype"]).name
        if not (p["random_state"] is None or isinstance(p["random_state"], int)):
            p["random_state"] = None  # a Generator is not portable; the fit is what counts
        return p

    def _resume_params(self) -> dict[str, Any]:
        """The parameters a checkpoint must share with the fit that resumes it."""
        p = self._portable_params()
        for param in self._params:
            if not param.affects_fit:
                del p[param.name]
        return p

    def _validation_pairs(self, validation, train: Ratings):
        vr = as_ratings(validation)
        if vr.nnz == 0:
            raise ValueError("the validation set is empty (0 ratings): pass None to fit "
                             "without one")
        ui = lookup(train.user_ids, vr.user_ids, "user")[vr.user_index]
        ii = lookup(train.item_ids, vr.item_ids, "item")[vr.item_index]
        return ui, ii, vr.values


def doc_params(cls: type) -> type:
    """Check that every row of ``cls._params`` is documented and matches ``__init__``.

    Applied at class creation, so a parameter added to the table but not to the signature or
    the docstring fails on import, not in a user's hands.
    """
    sig = inspect.signature(cls.__init__).parameters
    names = [n for n in sig if n != "self"]
    table = [p.name for p in cls._params]
    if names != table:
        raise TypeError(f"{cls.__name__}: __init__ parameters {names} != _params {table}")
    for p in cls._params:
        if not _same(sig[p.name].default, p.default):
            raise TypeError(f"{cls.__name__}.{p.name}: default {sig[p.name].default!r} != "
                            f"_params default {p.default!r}")
        if cls.__doc__ and f"\n    {p.name} :" not in cls.__doc__ and \
                f", {p.name} :" not in cls.__doc__ and f"    {p.name}, " not in cls.__doc__:
            raise TypeError(f"{cls.__name__}: parameter {p.name} is not documented")
    return cls


# -- shared helpers -----------------------------------------------------------------------------


def _fitted_state(model: Any) -> dict[str, Any]:
    return {k: v for k, v in model.__dict__.items()
            if k.endswith("_") or k in ("_rated_indptr", "_rated_indices")}


def keeps_previous_state_on_error(fit: Any) -> Any:
    """Decorator for ``fit``: when it raises (bad parameters, a numerical failure), the model
    is left exactly as it was before the call -- the previous fit, or unfitted -- instead of
    half-written new arrays that look fitted (issue 14). Ctrl-C is the exception: it keeps
    the new fit's last complete iteration, as documented."""
    import functools

    @functools.wraps(fit)
    def guarded(self, *args, **kwargs):
        before = _fitted_state(self)
        try:
            return fit(self, *args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException:
            for key in _fitted_state(self):
                del self.__dict__[key]
            self.__dict__.update(before)
            raise

    return guarded



def predict_at(ui: np.ndarray, ii: np.ndarray, U: np.ndarray, b: np.ndarray, V: np.ndarray,
               c: np.ndarray, mu: float, unseen: Unseen = "bias") -> np.ndarray:
    """Predictions at index pairs; an index of -1 (unknown id) follows ``unseen``."""
    dt = U.dtype
    known = (ui >= 0) & (ii >= 0)
    pred = np.empty(int(known.sum()), dtype=dt)
    predict_pairs(ui[known], ii[known], U, b, V, c, dt.type(mu), pred)
    out = np.empty(len(ui), dtype=dt)
    out[known] = pred
    if not known.all():
        if unseen == "nan":
            out[~known] = np.nan
        else:
            ub = np.where(ui >= 0, b[np.maximum(ui, 0)], 0)
            ib = np.where(ii >= 0, c[np.maximum(ii, 0)], 0)
            out[~known] = (mu + ub + ib)[~known]
    return out


def sub_csr(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray):
    """CSR of the selected rows (-1 selects an empty row), vectorized."""
    safe = np.maximum(rows, 0)
    lengths = np.where(rows >= 0, indptr[safe + 1] - indptr[safe], 0)
    sub_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=sub_indptr[1:])
    starts = np.repeat(indptr[safe] - sub_indptr[:-1], lengths)
    positions = np.arange(sub_indptr[-1]) + starts
    return sub_indptr, np.ascontiguousarray(indices[positions], dtype=np.int32)


def ids_at(ids: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``ids[index]`` with None where ``index`` is -1 (object dtype only then)."""
    out = ids[np.maximum(index, 0)]
    if (index < 0).any():
        out = out.astype(object)
        out[index < 0] = None
    return out


def _similar(F: np.ndarray, ids: np.ndarray, counts: np.ndarray, query: Any, n: int,
             shrink: float, kind: str):
    n = min(positive_int(n, "n"), len(ids) - 1)
    if not (np.isfinite(shrink) and shrink >= 0):
        raise ValueError(f"shrink must be finite and >= 0, got {shrink!r}")
    q = lookup(ids, [query], kind)[0]
    if q < 0:
        raise KeyError(f"unknown {kind} id {show(query)}")
    norms = np.sqrt(np.einsum("ij,ij->i", F.astype(np.float64), F.astype(np.float64)))
    # zero vectors (rows never fitted) get similarity 0 instead of NaN
    scale = 1.0 / np.where(norms > 0, norms, 1.0)
    query_unit = (F[q : q + 1] * scale[q]).astype(F.dtype)
    counts = np.asarray(counts, dtype=np.float64)
    if shrink > 0:
        scale = scale * counts / (counts + shrink)
    unit = (F * scale[:, None]).astype(F.dtype)
    out_index = np.empty((1, max(n, 0)), dtype=np.int64)
    out_score = np.empty((1, max(n, 0)), dtype=np.float64)
    zeros = np.zeros(len(ids), dtype=F.dtype)
    top_n(query_unit, zeros[:1], unit, zeros, np.zeros(len(ids)), 0.0, 1.0, False,
          np.array([0, 1], dtype=np.int64), np.array([q], dtype=np.int32), max(n, 0),
          out_index, out_score)
    return ids[out_index[0]], out_score[0].astype(F.dtype)


def data_fingerprint(csr: tuple, user_ids: np.ndarray, item_ids: np.ndarray) -> str:
    """SHA-256 of the training data as the kernels see it, ids included."""
    h = hashlib.sha256()
    for a in csr:
        h.update(np.ascontiguousarray(a).tobytes())
    for ids in (user_ids, item_ids):
        if ids.dtype == object:
            h.update("\x00".join(map(repr, ids)).encode())
        else:
            h.update(str(ids.dtype).encode() + np.ascontiguousarray(ids).tobytes())
    return h.hexdigest()


def init_rngs(random_state) -> tuple[np.random.Generator, np.random.Generator]:
    """One generator per side, so neither side's start depends on the other's size."""
    if isinstance(random_state, np.random.Generator):
        return random_state, random_state
    users, items = np.random.SeedSequence(random_state).spawn(2)
    return np.random.default_rng(users), np.random.default_rng(items)


# Byte boundary of the factor matrices a fit writes: one cache line. numpy starts a large array
# 16 bytes into a line, so a 128-byte factor row (K = 32, float32) spanned three lines and every
# vector load of it was split in two; the CG passes read the other side's rows in place four
# times per half-step. Aligned, a CG iteration went 25.2 -> 21.8 ms and a Cholesky iteration
# 56.1 -> 54.5 ms (ML-1M shape, K = 32, one thread, Zen 4, min of 24; issue 17).
_ALIGN = 64


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose first element starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    start = -buf.ctypes.data % _ALIGN
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def initial_factors(given, n: int, K: int, dt, counts, name: str, rng) -> np.ndarray:
    """``randn(n, K) / K`` (rows without ratings zeroed), or a checked copy of ``given``;
    either way a new array on a 64-byte boundary (:func:`aligned_empty`)."""
    F = aligned_empty((n, K), dt)
    if given is None:
        F[...] = rng.standard_normal((n, K)) / K
        F[counts == 0] = 0  # never updated: let them predict like unseen rows
        return F
    given = np.asarray(given)
    if given.shape != (n, K):
        raise ValueError(f"{name} must have shape ({n}, {K}), got {given.shape}")
    if given.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be numeric, got dtype {given.dtype}")
    if not np.all(np.isfinite(given)):
        raise ValueError(f"{name} contains NaN or inf")
    F[...] = given  # a copy: never write into the caller's
    return F


def _same(a, b) -> bool:
    try:
        return bool(a == b) if not isinstance(a, np.ndarray) else False
    except Exception:
        return False
