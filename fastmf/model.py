"""BiasedALS: biased matrix factorization fitted by alternating least squares."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from fastmf._driver import Trainer, train
from fastmf._params import COMMON, Param, positive_int
from fastmf._registry import register
from fastmf._solver import SOLVERS, ALSProblem, Config, check_half_step, half_step, row_order
from fastmf._threads import thread_limits
from fastmf.base import (
    FactorModel,
    data_fingerprint,
    doc_params,
    init_rngs,
    initial_factors,
    keeps_previous_state_on_error,
)
from fastmf.persist import LocalCheckpoint
from fastmf.ratings import Ratings, as_ratings, lookup


@register("als", rank=0)
@doc_params
class BiasedALS(FactorModel):
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

    _params = (
        Param("n_factors", "int", 32, "rank K of the factors", low=1, cli="--factors"),
        Param("reg", "real", 0.1, "lambda, the L2 penalty on the factors", low=0,
              cli="--reg"),
        Param("reg_bias", "real", None, "lambda_b, the penalty on the biases (default: reg)",
              low=0, optional=True, cli="--reg-bias"),
        Param("n_iter", "int", 15, "ALS iterations", low=1, cli="--iters", affects_fit=False),
        Param("reg_scaling", "choice", "count", "scale the penalties by the rating counts",
              choices=("count", "none"), cli="--reg-scaling"),
        Param("bias_reg_scaling", "choice", None, "overrides reg_scaling for the biases",
              choices=("count", "none"), optional=True),
        Param("bias_update", "choice", "joint", "solve (u, b) jointly or b then u",
              choices=("joint", "sequential"), cli="--bias-update"),
        Param("solver", "choice", "cholesky", "per-row solver", choices=tuple(SOLVERS),
              cli="--solver"),
        Param("cg_steps", "int", 3, "conjugate-gradient steps per row (solver='cg')", low=1,
              cli="--cg-steps"),
        *COMMON,
    )

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
        ``lambda |Omega_i| b_i^2`` (docs/design.md section 1); initial factors ``randn / K``.
        """
        params = dict(
            reg=reg, reg_bias=reg, n_iter=n_iter, reg_scaling="none",
            bias_reg_scaling="count", bias_update="sequential",
        )
        params.update(kwargs)
        return cls(n_factors, **params)

    # -- fitting ----------------------------------------------------------------------------

    @keeps_previous_state_on_error
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
        columns: Any = None,
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
        columns : (user, item, rating), optional
            For a DataFrame ``X``: its user, item and rating columns, by name or position
            (default: recognised names such as ``user``/``userId``, ``item``/``movieId``,
            ``rating``; unrecognised names are an error, never a guess).

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
        ratings = as_ratings(X, columns)
        self._check_training(ratings)
        val = None
        if early_stopping_rounds is not None:
            early_stopping_rounds = positive_int(early_stopping_rounds, "early_stopping_rounds")
        if validation is not None:
            val = self._validation_pairs(validation, ratings)
        elif early_stopping_rounds is not None:
            raise ValueError("early_stopping_rounds needs validation data")
        if checkpoint_every is not None:
            checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
        problem = ALSProblem(ratings, config)
        M, N = ratings.shape
        user_ids, item_ids = ratings.user_ids, ratings.item_ids
        rating_range = (ratings.values.min(), ratings.values.max())
        # The triples are not needed once compressed: a DataFrame's or matrix's conversion is
        # freed here (a Ratings the caller passed stays theirs).
        del ratings, X
        rng_u, rng_v = init_rngs(self.random_state)
        U = initial_factors(init_user_factors, M, K, dt, problem.user_counts,
                            "init_user_factors", rng_u)
        V = initial_factors(init_item_factors, N, K, dt, problem.item_counts,
                            "init_item_factors", rng_v)
        b = np.zeros(M, dtype=dt)
        c = np.zeros(N, dtype=dt)
        # The model is fitted from here on: callbacks may predict with it between iterations.
        self._set_fitted(
            user_ids=user_ids, item_ids=item_ids, user_factors=U,
            item_factors=V, user_bias=b, item_bias=c, user_counts=problem.user_counts,
            item_counts=problem.item_counts, rated_indptr=problem.csr[0],
            rated_indices=problem.csr[1], global_mean=problem.global_mean,
            rating_range=rating_range,
        )
        store = None
        if checkpoint is not None:
            store = LocalCheckpoint(checkpoint, data_fingerprint(problem.csr, user_ids,
                                                                 item_ids),
                                    self._resume_params(), resume)
        trainer = _ALSTrainer(self, problem, val)
        train(self, trainer, n_jobs=self.n_jobs, verbose=self.verbose, callback=callback,
              early_stopping_rounds=early_stopping_rounds, checkpoint=store,
              checkpoint_every=checkpoint_every)
        # The last step's residuals are the final model's unless early stopping went back
        # to an earlier iteration (or no step ran: a finished checkpoint). On the ML-10M
        # shape the loss kernel's own pass took 0.1 s, an eighth of a one-iteration fit.
        final = trainer.stepped == self.n_iter_
        self._set_residual_std(problem.csr, problem.sse if final else None)
        return self

    # -- fitted-model operations ------------------------------------------------------------

    def fold_in(self, X: Any) -> BiasedALS:
        """Fit new or changed users against the fixed item side, without a refit.

        Each user in ``X`` gets the exact row update of a user half-step (whatever
        ``solver`` the model was fitted with) from their ratings in ``X`` alone, which
        replace any training ratings they had. Ratings of items the model does not know are
        ignored (with a warning). Returns ``self``.
        """
        config = self._config()

        def solve(new: Ratings, F: np.ndarray, bias: np.ndarray):
            indptr, indices, data = new.to_csr(config.dtype)
            with thread_limits(self.n_jobs) as n_threads:
                # the exact row update, whichever solver the model was fitted with
                failed = half_step(config, (indptr, indices, data), row_order(np.diff(indptr)),
                                   self.item_factors_, self.item_bias_, self.global_mean_,
                                   n_threads, F, bias, solver="cholesky")
            check_half_step(failed, F, bias, self.n_iter_ - 1, "fold-in user")
            return indptr, indices

        return self._fold_in(X, solve)

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
        """The validated parameters in the kernels' form (at fit time, as scikit-learn)."""
        p = self._checked_params()
        reg_bias = p["reg"] if p["reg_bias"] is None else p["reg_bias"]
        for name, value in (("reg", p["reg"]), ("reg_bias", reg_bias)):
            with np.errstate(over="ignore"):
                fits = np.isfinite(np.float64(value).astype(p["dtype"]))
            if not fits:
                raise ValueError(f"{name}={value!r} does not fit in {p['dtype'].name} (it "
                                 "overflows to inf); use dtype='float64' or a smaller value")
        bias_scaling = p["bias_reg_scaling"] or p["reg_scaling"]
        return Config(
            n_factors=p["n_factors"], reg=p["reg"], reg_bias=reg_bias,
            count_reg=p["reg_scaling"] == "count", count_bias=bias_scaling == "count",
            joint=p["bias_update"] == "joint", dtype=p["dtype"], solver=p["solver"],
            cg_steps=p["cg_steps"],
        )


class _ALSTrainer(Trainer):
    """BiasedALS for the driver: state ``U, V, b, c``, one ALS iteration, the objective."""

    curves = ("loss",)

    def __init__(self, model: BiasedALS, problem: ALSProblem, val) -> None:
        self.model, self.problem, self.val = model, problem, val
        self.total = model.n_iter
        self.has_validation = val is not None
        self.stepped: int | None = None  # the iteration count after the last step run

    def state(self) -> dict[str, np.ndarray]:
        m = self.model
        return {"U": m.user_factors_, "V": m.item_factors_, "b": m.user_bias_,
                "c": m.item_bias_}

    def step(self, it: int, n_threads: int) -> dict[str, float]:
        m = self.model
        U, V, b, c = m.user_factors_, m.item_factors_, m.user_bias_, m.item_bias_
        loss = self.problem.step(U, b, V, c, n_threads, it)
        self.stepped = it + 1
        return {"loss": loss}

    def validation_rmse(self) -> float | None:
        return None if self.val is None else self.model._rmse_index(*self.val)
