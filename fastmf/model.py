"""The estimator: biased matrix factorization fitted by alternating least squares."""

from __future__ import annotations

import hashlib
import inspect
import logging
import numbers
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fastmf._solver import SOLVERS, ALSProblem, Config, check_half_step, row_order
from fastmf._threads import thread_limits
from fastmf.kernels import predict_pairs, solve_rows, top_n
from fastmf.persist import load_checkpoint, save_checkpoint
from fastmf.ratings import Ratings, as_ratings, lookup, show

logger = logging.getLogger("fastmf")

Unseen = Literal["bias", "nan", "raise"]
_UNSEEN = ("bias", "nan", "raise")


class _FactorModel:
    """What every fastmf estimator shares once fitted.

    A fitted model predicts ``r_ij = mu + b_i + c_j + u_i . v_j`` from ``user_factors_``,
    ``item_factors_``, ``user_bias_``, ``item_bias_`` and ``global_mean_``; this class turns
    those into predictions, recommendations and similarities in the caller's id space, saves
    them, and holds the scikit-learn parameter conventions. Subclasses provide ``fit``.
    """

    #: Per-iteration curves saved with the model: ``(required, optional)`` attribute stems.
    _CURVES: tuple[tuple[str, ...], tuple[str, ...]] = (("loss_curve",), ("validation_curve",))
    #: The curve that shows training progress, its label, and whether to plot it on a log scale.
    _TRAINING_CURVE: tuple[str, str, bool] = ("loss_curve_", "objective J", True)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as in scikit-learn."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> _FactorModel:
        """Set constructor parameters, as in scikit-learn; returns ``self``."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        default = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if name != "self"
        }
        shown = [
            f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, default[k])
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def predict(self, users: Any, items: Any, *, unseen: Unseen = "bias") -> np.ndarray:
        """Predicted ratings for ``(users[k], items[k])`` pairs, in the caller's id space.

        Parameters
        ----------
        users, items : array-like of ids (or scalars)
        unseen : {"bias", "nan", "raise"}, default="bias"
            For ids the model was not fitted with: ``"bias"`` predicts ``mu`` plus whichever
            bias is known (no interaction term); ``"nan"`` gives NaN; ``"raise"`` raises
            ``KeyError`` naming the first unknown id.

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
        ui = lookup(self.user_ids_, u_arr)
        ii = lookup(self.item_ids_, i_arr)
        if unseen == "raise":
            for kind, idx, ids in (("user", ui, u_arr), ("item", ii, i_arr)):
                if (idx < 0).any():
                    k = int(np.flatnonzero(idx < 0)[0])
                    raise KeyError(f"unknown {kind} id {show(ids[k])} (at position {k})")
        return self._predict_index(ui, ii, unseen)

    def recommend(
        self, user: Any, n: int = 10, *, exclude_rated: bool = True, unseen: Unseen = "bias"
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items with the highest predicted rating for one user.

        Parameters
        ----------
        user : id
        n : int, default=10
        exclude_rated : bool, default=True
            Leave out the items the user rated in the training data.
        unseen : {"bias", "raise"}, default="bias"
            For a user the model does not know: rank by ``mu + c_j`` (the item biases), or
            raise ``KeyError``.

        Returns
        -------
        items : ndarray of item ids, best first
            Shorter than ``n`` when fewer items are left to recommend.
        scores : ndarray of predicted ratings
        """
        items, scores = self.recommend_batch([user], n, exclude_rated=exclude_rated,
                                             unseen=unseen)
        keep = np.isfinite(scores[0])
        return np.asarray(items[0][keep]).astype(self.item_ids_.dtype), scores[0][keep]

    def recommend_batch(
        self, users: Any, n: int = 10, *, exclude_rated: bool = True, unseen: Unseen = "bias"
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
        n = _positive_int(n, "n")
        n = min(n, len(self.item_ids_))
        u_arr = np.atleast_1d(np.asarray(users))
        ui = lookup(self.user_ids_, u_arr)
        if (ui < 0).any() and unseen != "bias":
            if unseen != "raise":
                raise ValueError(f"unseen must be 'bias' or 'raise', got {unseen!r}")
            k = int(np.flatnonzero(ui < 0)[0])
            raise KeyError(f"unknown user id {show(u_arr[k])} (at position {k})")
        dt = self.user_factors_.dtype
        known = ui >= 0
        Q = np.zeros((len(ui), self.user_factors_.shape[1]), dtype=dt)
        Q[known] = self.user_factors_[ui[known]]
        q_offset = np.full(len(ui), self.global_mean_, dtype=dt)
        q_offset[known] += self.user_bias_[ui[known]]
        if exclude_rated:
            excl_indptr, excl_indices = _sub_csr(self._rated_indptr, self._rated_indices, ui)
        else:
            excl_indptr = np.zeros(len(ui) + 1, dtype=np.int64)
            excl_indices = np.zeros(0, dtype=np.int32)
        out_index = np.empty((len(ui), n), dtype=np.int64)
        out_score = np.empty((len(ui), n), dtype=dt)
        top_n(Q, q_offset, self.item_factors_, self.item_bias_, excl_indptr, excl_indices, n,
              out_index, out_score)
        return _ids_at(self.item_ids_, out_index), out_score

    def similar_items(self, item: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items whose factors have the highest cosine similarity to ``item``'s.

        Returns item ids (the item itself excluded) and similarities, most similar first.
        Raises ``KeyError`` for an unknown item.
        """
        self._check_fitted()
        return _similar(self.item_factors_, self.item_ids_, item, n, "item")

    def similar_users(self, user: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` users most similar to ``user`` by cosine similarity of their factors."""
        self._check_fitted()
        return _similar(self.user_factors_, self.user_ids_, user, n, "user")

    def _predict_index(self, ui: np.ndarray, ii: np.ndarray, unseen: Unseen) -> np.ndarray:
        return predict_at(ui, ii, self.user_factors_, self.user_bias_, self.item_factors_,
                          self.item_bias_, self.global_mean_, unseen)

    def _rmse_index(self, ui: np.ndarray, ii: np.ndarray, truth: np.ndarray) -> float:
        pred = self._predict_index(ui, ii, "bias")
        return float(np.sqrt(np.mean((pred.astype(np.float64) - truth) ** 2)))

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted model to one ``.npz`` file (no pickle); see :func:`fastmf.load`.

        Returns the path written (``.npz`` appended when missing).
        """
        from fastmf.persist import save

        return save(self, path)

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

    def _validation_pairs(self, validation, train: Ratings):
        vr = as_ratings(validation)
        ui = lookup(train.user_ids, vr.user_ids)[vr.user_index]
        ii = lookup(train.item_ids, vr.item_ids)[vr.item_index]
        return ui, ii, vr.values


class BiasedALS(_FactorModel):
    r"""Biased matrix factorization by alternating least squares.

    Predicts ``r_ij = mu + b_i + c_j + u_i . v_j`` and fits it to the observed ratings
    ``A_ij, (i, j) in Omega`` by minimizing

    .. math::

        J = \sum_{(i,j) \in \Omega} (A_{ij} - \mu - b_i - c_j - u_i^T v_j)^2
            + \lambda \Big(\sum_i s_i \|u_i\|^2 + \sum_j s_j \|v_j\|^2\Big)
            + \lambda_b \Big(\sum_i w_i b_i^2 + \sum_j w_j c_j^2\Big)

    where ``mu`` is the mean training rating (held fixed), ``s`` and ``w`` are 1 (plain) or the
    row's rating count ``|Omega_i|`` (count-scaled, the weighted-lambda regularization of
    ALS-WR, Zhou et al. 2008). Each half-step minimizes ``J`` exactly over all user rows (then
    all item rows) with the other side fixed, so ``J`` never increases.

    Parameters
    ----------
    n_factors : int, default=32
        Rank ``K`` of the factors.
    reg : float, default=0.1
        ``lambda``, the L2 penalty on the factors.
    reg_bias : float, optional
        ``lambda_b``, the L2 penalty on the biases; defaults to ``reg``.
    n_iter : int, default=15
        Number of ALS iterations (one user and one item half-step each).
    reg_scaling : {"count", "none"}, default="count"
        Scale the penalties by each row's rating count (ALS-WR) or not.
    bias_reg_scaling : {"count", "none"}, optional
        Overrides ``reg_scaling`` for the bias penalty alone (the tutorial's setting).
    bias_update : {"joint", "sequential"}, default="joint"
        ``"joint"`` solves ``(u_i, b_i)`` as one ``(K+1)``-sized system; ``"sequential"`` is
        the classic tutorial's order (all ``b_i``, then all ``u_i``, then ``c_j``, then
        ``v_j``). Both minimize ``J`` exactly over the block they update.
    solver : {"cholesky", "cg"}, default="cholesky"
        ``"cholesky"`` solves each row's system exactly. ``"cg"`` takes ``cg_steps``
        conjugate-gradient steps per row, warm-started from the previous iteration, without
        forming the Gram matrix: cheaper per iteration (``O(nnz K)`` instead of
        ``O(nnz K^2)``), not an exact minimizer, converging to the same solution.
    cg_steps : int, default=3
        Conjugate-gradient steps per row and half-step (``solver="cg"``).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the factors and of the arithmetic.
    random_state : int, numpy Generator or None
        Seeds the initial factors, ``randn(M, K) / K`` and ``randn(N, K) / K``. Never mutated
        when an int.
    n_jobs : int, optional
        Threads for the kernels (None or -1: all available). Results do not depend on it.
    verbose : bool, default=False
        Show a progress bar (tqdm, on stderr) with the iteration, the loss and the validation
        RMSE during ``fit``.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors)
    item_factors_ : ndarray of shape (n_items, n_factors)
    user_bias_ : ndarray of shape (n_users,)
    item_bias_ : ndarray of shape (n_items,)
    global_mean_ : float
    loss_curve_ : ndarray of float64, shape (n_iter_,)
        ``J`` after each iteration.
    validation_curve_ : ndarray of float64 or None
        Validation RMSE after each iteration when ``fit`` was given ``validation``.
    n_iter_ : int
        Iterations completed; with early stopping, the kept (best) iteration.
    user_ids_, item_ids_ : ndarray
        The caller's ids, sorted; row ``k`` of the factors belongs to ``user_ids_[k]``.
    user_counts_, item_counts_ : ndarray of int64
        Training ratings per user / item. Users and items with none keep zero factors and a
        zero bias, so they predict like unseen ones under ``unseen="bias"``.

    Notes
    -----
    :meth:`tutorial` returns the configuration that reproduces the classic tutorial's loop
    exactly. Rows with no training ratings are never updated.

    Examples
    --------
    >>> import fastmf
    >>> ratings, _ = fastmf.make_ratings(200, 100, 4000, random_state=0)
    >>> model = fastmf.BiasedALS(n_factors=8, n_iter=5, random_state=0).fit(ratings)
    >>> model.predict([0, 1], [3, 4]).shape
    (2,)
    """

    def __init__(
        self,
        n_factors: int = 32,
        *,
        reg: float = 0.1,
        reg_bias: float | None = None,
        n_iter: int = 15,
        reg_scaling: Literal["count", "none"] = "count",
        bias_reg_scaling: Literal["count", "none"] | None = None,
        bias_update: Literal["joint", "sequential"] = "joint",
        solver: Literal["cholesky", "cg"] = "cholesky",
        cg_steps: int = 3,
        dtype: Any = "float32",
        random_state: int | np.random.Generator | None = None,
        n_jobs: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_factors = n_factors
        self.reg = reg
        self.reg_bias = reg_bias
        self.n_iter = n_iter
        self.reg_scaling = reg_scaling
        self.bias_reg_scaling = bias_reg_scaling
        self.bias_update = bias_update
        self.solver = solver
        self.cg_steps = cg_steps
        self.dtype = dtype
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    @classmethod
    def tutorial(
        cls, n_factors: int = 32, *, reg: float = 0.1, n_iter: int = 10, **kwargs: Any
    ) -> BiasedALS:
        """The configuration that reproduces the classic tutorial's ALS loop exactly.

        Sequential updates in the order ``b, U, c, V``; plain factor penalty
        ``lambda |u|^2``; the bias update ``b_i = sum(...) / (|Omega_i| (1 + lambda))``,
        which is the exact minimizer of the *count-scaled* bias penalty
        ``lambda |Omega_i| b_i^2`` (DESIGN.md section 1); initial factors ``randn / K``.
        """
        params = dict(
            reg=reg, reg_bias=reg, n_iter=n_iter, reg_scaling="none",
            bias_reg_scaling="count", bias_update="sequential",
        )
        params.update(kwargs)
        return cls(n_factors, **params)

    # -- fitting ----------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: None = None,
        *,
        init_user_factors: np.ndarray | None = None,
        init_item_factors: np.ndarray | None = None,
        validation: Any = None,
        early_stopping_rounds: int | None = None,
        callback: Callable[[int, BiasedALS], Any] | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        resume: bool = True,
    ) -> BiasedALS:
        """Fit the model to observed ratings.

        Parameters
        ----------
        X : Ratings, pandas DataFrame, scipy.sparse matrix or 2-D array
            The training ratings: a :class:`~fastmf.Ratings`; a DataFrame with ``user``,
            ``item`` and ``rating`` columns; or a users x items matrix whose stored entries
            (sparse, explicit zeros included) or non-NaN entries (dense) are the ratings.
        y : None
            Ignored; present for scikit-learn compatibility.
        init_user_factors, init_item_factors : ndarray, optional
            Starting factors of shape ``(n_users, n_factors)`` / ``(n_items, n_factors)``
            instead of the random start (warm starts, reproducing a reference).
        validation : same kinds as ``X``, optional
            Held-out ratings, in the caller's id space; their RMSE is recorded after every
            iteration in ``validation_curve_``.
        early_stopping_rounds : int, optional
            With ``validation``: stop once the validation RMSE has not improved for this many
            iterations, and keep the factors of the best iteration.
        callback : callable, optional
            Called as ``callback(iteration, model)`` after each iteration, with
            ``model.loss_curve_`` up to date; returning True stops the fit.
        checkpoint : path-like, optional
            Save the fit's state (factors, curves, iteration) to this file every
            ``checkpoint_every`` iterations and at the end, atomically.
        checkpoint_every : int, optional
            Iterations between checkpoints (default: only at the end).
        resume : bool, default=True
            If ``checkpoint`` exists, continue from it instead of starting afresh. The
            checkpoint must come from the same data and hyper-parameters (``n_iter`` and
            ``n_jobs``, ``verbose`` may differ); the result is then identical to an
            uninterrupted fit.

        Notes
        -----
        A ``KeyboardInterrupt`` during the fit restores the factors of the last completed
        iteration (``n_iter_`` says which) before it propagates, so the model stays usable.

        Returns
        -------
        self : BiasedALS
        """
        config = self._config()
        dt = config.dtype
        K = config.n_factors
        ratings = as_ratings(X)
        if ratings.nnz == 0:
            raise ValueError("cannot fit on an empty rating set (0 ratings)")
        val = None
        if validation is not None:
            val = self._validation_pairs(validation, ratings)
        elif early_stopping_rounds is not None:
            raise ValueError("early_stopping_rounds needs validation data")
        problem = ALSProblem(ratings, config)
        M, N = ratings.shape

        rng_u, rng_v = _init_rngs(self.random_state)
        U = self._initial_factors(
            init_user_factors, M, K, dt, problem.user_counts, "init_user_factors", rng_u
        )
        V = self._initial_factors(
            init_item_factors, N, K, dt, problem.item_counts, "init_item_factors", rng_v
        )
        b = np.zeros(M, dtype=dt)
        c = np.zeros(N, dtype=dt)

        self.user_ids_ = ratings.user_ids
        self.item_ids_ = ratings.item_ids
        self.user_counts_ = problem.user_counts
        self.item_counts_ = problem.item_counts
        self.global_mean_ = problem.global_mean
        self.user_factors_, self.item_factors_ = U, V
        self.user_bias_, self.item_bias_ = b, c
        self._rated_indptr, self._rated_indices = problem.csr[0], problem.csr[1]
        losses: list[float] = []
        val_curve: list[float] = []
        best = None  # (rmse, iteration, (U, V, b, c)) of the best validation RMSE so far
        self.loss_curve_ = np.zeros(0)
        self.validation_curve_ = None if val is None else np.zeros(0)
        self.n_iter_ = 0
        if checkpoint_every is not None:
            checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every")
        fingerprint = None
        if checkpoint is not None:
            fingerprint = _data_fingerprint(problem, ratings)
            if resume and Path(checkpoint).exists():
                state = load_checkpoint(checkpoint, fingerprint, self._resume_params())
                U[...], V[...], b[...], c[...] = state["factors"]
                losses = list(state["loss_curve"])
                val_curve = list(state["validation_curve"])
                best = state["best"]
                self.n_iter_ = len(losses)
                self.loss_curve_ = np.asarray(losses, dtype=np.float64)
                if val is not None:
                    self.validation_curve_ = np.asarray(val_curve, dtype=np.float64)
                logger.info(f"resumed from {checkpoint} at iteration {self.n_iter_}")

        def save_state() -> None:
            save_checkpoint(checkpoint, fingerprint, self._resume_params(), (U, V, b, c),
                            losses, val_curve, best)

        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.n_iter, initial=self.n_iter_, desc="BiasedALS", unit="it")
        with thread_limits(self.n_jobs) as n_threads:
            it = self.n_iter_
            snapshot = None
            try:
                while it < self.n_iter:
                    t0 = time.perf_counter()
                    # A Ctrl-C lands between kernel calls; keep the last complete iteration.
                    snapshot = (U.copy(), V.copy(), b.copy(), c.copy())
                    problem.step(U, b, V, c, n_threads, it)
                    loss = problem.loss(U, b, V, c)
                    losses.append(loss)
                    self.loss_curve_ = np.asarray(losses, dtype=np.float64)
                    self.n_iter_ = it = it + 1
                    snapshot = None
                    msg = f"iteration {it}: loss {loss:.6g}"
                    stop = False
                    if val is not None:
                        rmse = self._rmse_index(*val)
                        val_curve.append(rmse)
                        self.validation_curve_ = np.asarray(val_curve, dtype=np.float64)
                        msg += f", validation RMSE {rmse:.5f}"
                        if best is None or rmse < best[0]:
                            best = (rmse, it, (U.copy(), V.copy(), b.copy(), c.copy()))
                        elif (
                            early_stopping_rounds is not None
                            and it - best[1] >= early_stopping_rounds
                        ):
                            msg += f"; early stop, best iteration {best[1]}"
                            stop = True
                    logger.info(msg + f" ({time.perf_counter() - t0:.3f} s)")
                    if bar is not None:
                        post = {"loss": f"{loss:.5g}"}
                        if val_curve:
                            post["val_rmse"] = f"{val_curve[-1]:.4f}"
                        bar.set_postfix(post, refresh=False)
                        bar.update(1)
                    if checkpoint is not None and checkpoint_every and it % checkpoint_every == 0:
                        save_state()
                    if stop or (callback is not None and callback(it, self)):
                        break
            except KeyboardInterrupt:
                if snapshot is not None:
                    U[...], V[...], b[...], c[...] = snapshot
                logger.warning(
                    f"fit interrupted; the model holds iteration {self.n_iter_}"
                    + (f", checkpoint in {checkpoint}" if checkpoint is not None else "")
                )
                raise
            finally:
                if bar is not None:
                    bar.close()
        if checkpoint is not None:
            save_state()

        if early_stopping_rounds is not None and best is not None and best[1] != self.n_iter_:
            U[...], V[...], b[...], c[...] = best[2]
            self.n_iter_ = best[1]
        return self

    # -- fitted-model operations ------------------------------------------------------------

    def fold_in(self, X: Any) -> BiasedALS:
        """Fit new or changed users against the fixed item side, without a refit.

        Each user in ``X`` gets the exact row update of a user half-step (whatever
        ``solver`` the model was fitted with) from their ratings in ``X`` alone, which
        replace any training ratings they had. Ratings of items the model does not know are
        ignored (with a warning). Returns ``self``.
        """
        self._check_fitted()
        config = self._config()
        vr = as_ratings(X)
        item_map = lookup(self.item_ids_, vr.item_ids)
        ii = item_map[vr.item_index]
        known = ii >= 0
        if not known.all():
            warnings.warn(
                f"fold_in: ignoring {int((~known).sum())} rating(s) of items the model does "
                "not know", stacklevel=2,
            )
        new = Ratings._from_indices(vr.user_index[known], ii[known], vr.values[known],
                                    vr.user_ids, self.item_ids_)
        if _id_kind(new.user_ids) != _id_kind(self.user_ids_):
            raise TypeError(
                f"fold_in: user ids of dtype {new.user_ids.dtype} do not match the model's "
                f"user ids of dtype {self.user_ids_.dtype}"
            )
        all_ids = np.union1d(self.user_ids_, new.user_ids)
        old_pos = lookup(all_ids, self.user_ids_)
        new_pos = lookup(all_ids, new.user_ids)
        dt = config.dtype
        K = config.n_factors
        U = np.zeros((len(all_ids), K), dtype=dt)
        b = np.zeros(len(all_ids), dtype=dt)
        U[old_pos], b[old_pos] = self.user_factors_, self.user_bias_
        F = np.ascontiguousarray(U[new_pos])
        bias = np.ascontiguousarray(b[new_pos])
        indptr, indices, data = new.to_csr(dt)
        counts = np.diff(indptr)
        with thread_limits(self.n_jobs) as n_threads:
            failed = solve_rows(
                indptr, indices, data, self.item_factors_, self.item_bias_,
                dt.type(self.global_mean_), dt.type(config.reg), dt.type(config.reg_bias),
                config.count_reg, config.count_bias, config.joint, row_order(counts),
                n_threads, F, bias,
            )
        check_half_step(failed, F, bias, self.n_iter_ - 1, "fold-in user")
        U[new_pos], b[new_pos] = F, bias
        user_counts = np.zeros(len(all_ids), dtype=np.int64)
        user_counts[old_pos] = self.user_counts_
        user_counts[new_pos] = counts
        # the rated-items structure: old users' rows, with folded-in users' rows replaced
        old_rows = np.repeat(old_pos, np.diff(self._rated_indptr))
        keep = ~np.isin(old_rows, new_pos)
        rows = np.r_[old_rows[keep], np.repeat(new_pos, counts)]
        cols = np.r_[self._rated_indices[keep], indices]
        order = np.lexsort((cols, rows))
        self._rated_indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=len(all_ids)))]
        self._rated_indices = cols[order].astype(np.int32)
        self.user_ids_, self.user_factors_, self.user_bias_ = all_ids, U, b
        self.user_counts_ = user_counts
        return self

    def objective(self, X: Any) -> float:
        """The objective ``J`` of the fitted model on ratings ``X`` (same id space)."""
        self._check_fitted()
        ratings = as_ratings(X)
        ui = lookup(self.user_ids_, ratings.user_ids)
        ii = lookup(self.item_ids_, ratings.item_ids)
        if (ui < 0).any() or (ii < 0).any():
            raise ValueError("objective() needs ratings whose ids the model was fitted with")
        re = Ratings._from_indices(
            ui[ratings.user_index], ii[ratings.item_index], ratings.values,
            self.user_ids_, self.item_ids_,
        )
        problem = ALSProblem(re, self._config(), global_mean=self.global_mean_)
        return problem.loss(
            self.user_factors_, self.user_bias_, self.item_factors_, self.item_bias_
        )

    # -- helpers ----------------------------------------------------------------------------

    def _config(self) -> Config:
        """Validate the constructor parameters (sklearn: at fit time, not in __init__)."""
        K = _positive_int(self.n_factors, "n_factors")
        _positive_int(self.n_iter, "n_iter")
        reg = _nonnegative(self.reg, "reg")
        reg_bias = reg if self.reg_bias is None else _nonnegative(self.reg_bias, "reg_bias")
        for name in ("reg_scaling", "bias_reg_scaling"):
            value = getattr(self, name)
            allowed = ("count", "none", None) if name == "bias_reg_scaling" else ("count", "none")
            if value not in allowed:
                raise ValueError(f"{name} must be 'count' or 'none', got {value!r}")
        if self.bias_update not in ("joint", "sequential"):
            raise ValueError(
                f"bias_update must be 'joint' or 'sequential', got {self.bias_update!r}"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        cg_steps = _positive_int(self.cg_steps, "cg_steps")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        bias_scaling = self.bias_reg_scaling or self.reg_scaling
        return Config(
            n_factors=K, reg=reg, reg_bias=reg_bias, count_reg=self.reg_scaling == "count",
            count_bias=bias_scaling == "count", joint=self.bias_update == "joint",
            dtype=dtype, solver=self.solver, cg_steps=cg_steps,
        )

    def _stored_width(self, meta: dict[str, Any]) -> int:
        """Columns of the factors in a model file (validates the parameters)."""
        return self._config().n_factors

    def _resume_params(self) -> dict[str, Any]:
        """The parameters a checkpoint must share with the fit that resumes it."""
        p = self._portable_params()
        for name in ("n_iter", "n_jobs", "verbose"):  # they do not change the factors
            del p[name]
        return p

    def _initial_factors(self, given, n, K, dt, counts, name, rng):
        if given is None:
            F = (rng.standard_normal((n, K)) / K).astype(dt)
            F[counts == 0] = 0  # never updated: let them predict like unseen rows
            return F
        F = np.asarray(given)
        if F.shape != (n, K):
            raise ValueError(f"{name} must have shape ({n}, {K}), got {F.shape}")
        if F.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be numeric, got dtype {F.dtype}")
        if not np.all(np.isfinite(F)):
            raise ValueError(f"{name} contains NaN or inf")
        return np.array(F, dtype=dt, order="C", copy=True)  # never write into the caller's

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


def _sub_csr(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray):
    """CSR of the selected rows (-1 selects an empty row), vectorized."""
    safe = np.maximum(rows, 0)
    lengths = np.where(rows >= 0, indptr[safe + 1] - indptr[safe], 0)
    sub_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=sub_indptr[1:])
    starts = np.repeat(indptr[safe] - sub_indptr[:-1], lengths)
    positions = np.arange(sub_indptr[-1]) + starts
    return sub_indptr, np.ascontiguousarray(indices[positions], dtype=np.int32)


def _id_kind(ids: np.ndarray) -> str:
    """'number' or 'text' (or the dtype kind for anything else)."""
    if ids.dtype.kind in "iuf":
        return "number"
    if ids.dtype.kind in "US" or (ids.dtype == object and all(isinstance(v, str) for v in ids)):
        return "text"
    return ids.dtype.kind


def _ids_at(ids: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``ids[index]`` with None where ``index`` is -1 (object dtype only then)."""
    out = ids[np.maximum(index, 0)]
    if (index < 0).any():
        out = out.astype(object)
        out[index < 0] = None
    return out


def _similar(F: np.ndarray, ids: np.ndarray, query: Any, n: int, kind: str):
    n = min(_positive_int(n, "n"), len(ids) - 1)
    q = lookup(ids, [query])[0]
    if q < 0:
        raise KeyError(f"unknown {kind} id {show(query)}")
    norms = np.sqrt(np.einsum("ij,ij->i", F.astype(np.float64), F.astype(np.float64)))
    # zero vectors (rows never fitted) get similarity 0 instead of NaN
    unit = (F / np.where(norms > 0, norms, 1.0)[:, None]).astype(F.dtype)
    out_index = np.empty((1, max(n, 0)), dtype=np.int64)
    out_score = np.empty((1, max(n, 0)), dtype=F.dtype)
    zeros = np.zeros(len(ids), dtype=F.dtype)
    top_n(unit[q : q + 1], zeros[:1], unit, zeros, np.array([0, 1], dtype=np.int64),
          np.array([q], dtype=np.int32), max(n, 0), out_index, out_score)
    return ids[out_index[0]], out_score[0]


def _data_fingerprint(problem: ALSProblem, ratings: Ratings) -> str:
    """SHA-256 of the training data as the kernels see it, ids included."""
    h = hashlib.sha256()
    for a in (*problem.csr,):
        h.update(np.ascontiguousarray(a).tobytes())
    for ids in (ratings.user_ids, ratings.item_ids):
        if ids.dtype == object:
            h.update("\x00".join(map(repr, ids)).encode())
        else:
            h.update(str(ids.dtype).encode() + np.ascontiguousarray(ids).tobytes())
    return h.hexdigest()


def _init_rngs(random_state) -> tuple[np.random.Generator, np.random.Generator]:
    """One generator per side, so neither side's start depends on the other's size."""
    if isinstance(random_state, np.random.Generator):
        return random_state, random_state
    if random_state is not None and (
        isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral)
        or random_state < 0
    ):
        raise ValueError(
            f"random_state must be a non-negative int, a numpy Generator or None, "
            f"got {random_state!r}"
        )
    users, items = np.random.SeedSequence(random_state).spawn(2)
    return np.random.default_rng(users), np.random.default_rng(items)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _nonnegative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def _same(a, b) -> bool:
    try:
        return bool(a == b) if not isinstance(a, np.ndarray) else False
    except Exception:
        return False
