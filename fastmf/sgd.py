"""BiasedSGD: the BiasedALS model and objective, fitted by parallel stochastic gradient
descent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from fastmf._driver import Trainer, train
from fastmf._params import COMMON, Param
from fastmf._registry import register
from fastmf.base import (
    FactorModel,
    aligned_empty,
    doc_params,
    init_rngs,
    keeps_previous_state_on_error,
)
from fastmf.kernels import objective, sgd_epoch
from fastmf.ratings import as_ratings


@register("sgd", rank=3)
@doc_params
class BiasedSGD(FactorModel):
    r"""Biased matrix factorization by parallel stochastic gradient descent.

    The model of :class:`BiasedALS`, ``r_ij = mu + b_i + c_j + u_i . v_j``, fitted to

    .. math::

        J = \sum_{(i,j) \in \Omega} \Big[(A_{ij} - \mu - b_i - c_j - u_i^T v_j)^2
            + \lambda (\|u_i\|^2 + \|v_j\|^2) + \lambda_b (b_i^2 + c_j^2)\Big]

    -- per-rating penalties, which sum to the count-scaled (ALS-WR) objective of
    ``BiasedALS(reg_scaling="count")``: ``loss_curve_`` is the same ``J``. Each rating's step
    is ``u_i += eta (e v_j - lambda u_i)`` (and alike for ``v_j``, ``b_i``, ``c_j``), with ``e``
    its current error: half the gradient of its term. The ratings are cut into a fixed
    ``n_blocks x n_blocks`` grid; blocks that share no user or item run in parallel (DSGD),
    each in an order drawn from ``random_state``, so the result does not depend on the number
    of threads.

    Parameters
    ----------
    n_factors : int, default=32
        Rank ``K``.
    reg : float, default=0.04
        ``lambda``, per rating, on the factors.
    reg_bias : float, optional
        ``lambda_b``, per rating, on the biases; defaults to ``reg``.
    n_epochs : int, default=30
        Passes over the ratings.
    learning_rate : float, default=0.05
        ``eta``; with ``schedule="adagrad"`` the base rate of every row's step.
    schedule : {"adagrad", "decay"}, default="adagrad"
        ``"adagrad"``: per-row rates ``eta / sqrt(sum of mean squared gradients so far)``
        for each factor row and each bias, as LIBMF uses; ``"decay"``:
        ``eta / (1 + decay * epoch)`` for every coordinate.
    decay : float, default=0.02
        The decay of ``schedule="decay"``.
    n_blocks : int, default=8
        Grid size; fixed, so results do not depend on the thread count. Use at least the
        number of threads.
    dtype : {"float32", "float64"}, default="float32"
    random_state : int, numpy Generator or None
        Seeds the initial factors (``N(0, 0.1^2)``) and every epoch's visiting order.
    n_jobs : int, optional
        Threads (None or -1: all). Results do not depend on it.
    verbose : bool, default=False
        Progress bar during ``fit``.

    Attributes
    ----------
    user_factors_, item_factors_, user_bias_, item_bias_, global_mean_ :
        As in :class:`BiasedALS`.
    loss_curve_ : ndarray of float64
        ``J`` after each epoch.
    validation_curve_ : ndarray of float64 or None
    n_iter_ : int
        Epochs completed (with early stopping, the kept one).
    """

    _params = (
        Param("n_factors", "int", 32, "rank K of the factors", low=1, cli="--factors"),
        Param("reg", "real", 0.04, "lambda, per-rating L2 penalty on the factors", low=0,
              cli="--reg"),
        Param("reg_bias", "real", None, "per-rating penalty on the biases (default: reg)",
              low=0, optional=True, cli="--reg-bias"),
        Param("n_epochs", "int", 30, "passes over the ratings", low=1, cli="--epochs",
              affects_fit=False),
        Param("learning_rate", "real", 0.05, "step size eta", low=0, low_open=True,
              cli="--learning-rate"),
        Param("schedule", "choice", "adagrad", "learning-rate schedule",
              choices=("adagrad", "decay"), cli="--schedule"),
        Param("decay", "real", 0.02, "decay of schedule='decay'", low=0, cli="--decay"),
        Param("n_blocks", "int", 8, "grid of blocks per side (fixed: thread-invariant)", low=1,
              cli="--blocks"),
        *COMMON,
    )

    def __init__(
        self,
        n_factors: int = 32,
        *,
        reg: float = 0.04,
        reg_bias: float | None = None,
        n_epochs: int = 30,
        learning_rate: float = 0.05,
        schedule: Literal["adagrad", "decay"] = "adagrad",
        decay: float = 0.02,
        n_blocks: int = 8,
        dtype: Any = "float32",
        random_state: int | np.random.Generator | None = None,
        n_jobs: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_factors = n_factors
        self.reg = reg
        self.reg_bias = reg_bias
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.decay = decay
        self.n_blocks = n_blocks
        self.dtype = dtype
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    _unit = "epoch"

    def _planned_iterations(self) -> int:
        return int(self.n_epochs)

    @keeps_previous_state_on_error
    def fit(
        self,
        X: Any,
        y: None = None,
        *,
        validation: Any = None,
        early_stopping_rounds: int | None = None,
        callback: Callable[[int, BiasedSGD], Any] | None = None,
        columns: Any = None,
    ) -> BiasedSGD:
        """Fit by SGD.

        Parameters
        ----------
        X : Ratings, pandas DataFrame, scipy.sparse matrix or 2-D array
            As for :meth:`BiasedALS.fit`.
        y : None
            Ignored; present for scikit-learn compatibility.
        validation : same kinds as ``X``, optional
            Held-out ratings scored after every epoch into ``validation_curve_``.
        early_stopping_rounds : int, optional
            With ``validation``: stop once it has not improved for this many epochs, keeping
            the best epoch's factors.
        callback : callable, optional
            ``callback(epoch, model)`` after each epoch; returning True stops.
        columns : (user, item, rating), optional
            For a DataFrame ``X``, as in :meth:`BiasedALS.fit`.

        Returns
        -------
        self : BiasedSGD
        """
        from fastmf._params import positive_int

        p = self._checked_params()
        dt, K, P = p["dtype"], p["n_factors"], p["n_blocks"]
        ratings = as_ratings(X, columns)
        self._check_training(ratings)
        if early_stopping_rounds is not None:
            early_stopping_rounds = positive_int(early_stopping_rounds, "early_stopping_rounds")
            if validation is None:
                raise ValueError("early_stopping_rounds needs validation data")
        val = None if validation is None else self._validation_pairs(validation, ratings)
        M, N = ratings.shape
        csr = ratings.to_csr(dt)
        item_counts = np.bincount(ratings.item_index, minlength=N).astype(np.int64)
        mu = float(np.mean(ratings.values))
        rng_u, rng_v = init_rngs(p["random_state"])
        U = aligned_empty((M, K), dt)
        U[...] = rng_u.standard_normal((M, K)) * 0.1
        V = aligned_empty((N, K), dt)
        V[...] = rng_v.standard_normal((N, K)) * 0.1
        seed = int(rng_u.integers(2**31 - 1))
        self._set_fitted(
            user_ids=ratings.user_ids, item_ids=ratings.item_ids, user_factors=U,
            item_factors=V, user_bias=np.zeros(M, dtype=dt), item_bias=np.zeros(N, dtype=dt),
            user_counts=np.diff(csr[0]), item_counts=item_counts, rated_indptr=csr[0],
            rated_indices=csr[1], global_mean=mu,
            rating_range=(ratings.values.min(), ratings.values.max()),
        )
        trainer = _SGDTrainer(self, p, blocked(ratings, P, dt), csr, item_counts, seed, val)
        train(self, trainer, n_jobs=self.n_jobs, verbose=self.verbose, callback=callback,
              early_stopping_rounds=early_stopping_rounds)
        self._set_residual_std(csr)
        return self


def blocked(ratings, P: int, dtype) -> tuple:
    """``(block_ptr, users, items, data)``: the ratings grouped by their ``P x P`` block
    ``(u % P) * P + i % P``, in (user, item) order within a block."""
    u, i = ratings.user_index, ratings.item_index
    block = (u.astype(np.int64) % P) * P + (i % P)
    order = np.argsort(block, kind="stable")
    ptr = np.zeros(P * P + 1, dtype=np.int64)
    np.cumsum(np.bincount(block, minlength=P * P), out=ptr[1:])
    return (ptr, np.ascontiguousarray(u[order], dtype=np.int32),
            np.ascontiguousarray(i[order], dtype=np.int32),
            np.ascontiguousarray(ratings.values[order], dtype=dtype))


class _SGDTrainer(Trainer):
    """BiasedSGD for the driver: state ``U, V, b, c`` and AdaGrad's sums; one epoch; J."""

    curves = ("loss",)
    unit = "epoch"

    def __init__(self, model: BiasedSGD, p: dict, blocks: tuple, csr: tuple, item_counts,
                 seed: int, val) -> None:
        self.model, self.p, self.blocks, self.csr = model, p, blocks, csr
        self.item_indptr = np.r_[0, np.cumsum(item_counts)].astype(np.int64)
        self.total = p["n_epochs"]
        self.seed = seed
        self.val = val
        self.has_validation = val is not None
        dt = p["dtype"]
        m = model
        self.GU = np.zeros(len(m.user_factors_), dtype=dt)
        self.GV = np.zeros(len(m.item_factors_), dtype=dt)
        self.Gb = np.zeros(len(m.user_bias_), dtype=dt)
        self.Gc = np.zeros(len(m.item_bias_), dtype=dt)

    def state(self) -> dict[str, np.ndarray]:
        m = self.model
        return {"U": m.user_factors_, "V": m.item_factors_, "b": m.user_bias_,
                "c": m.item_bias_, "GU": self.GU, "GV": self.GV, "Gb": self.Gb, "Gc": self.Gc}

    def step(self, it: int, n_threads: int) -> dict[str, float]:
        p, m = self.p, self.model
        t = p["dtype"].type
        reg = p["reg"]
        reg_bias = reg if p["reg_bias"] is None else p["reg_bias"]
        adagrad = p["schedule"] == "adagrad"
        lr = p["learning_rate"] if adagrad else p["learning_rate"] / (1 + p["decay"] * it)
        ptr, users, items, data = self.blocks
        sgd_epoch(ptr, users, items, data, p["n_blocks"], t(m.global_mean_), t(lr), t(reg),
                  t(reg_bias), adagrad, np.int64(self.seed + it), m.user_factors_,
                  m.user_bias_, m.item_factors_, m.item_bias_, self.GU, self.Gb, self.GV,
                  self.Gc)
        for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
            if not np.isfinite(getattr(m, name)).all():
                raise FloatingPointError(f"epoch {it + 1}: non-finite factors; lower "
                                         "learning_rate")
        loss = objective(*self.csr, self.item_indptr, m.user_factors_, m.user_bias_,
                         m.item_factors_, m.item_bias_, t(m.global_mean_), t(reg),
                         t(reg_bias), True, True)
        return {"loss": float(loss)}

    def validation_rmse(self) -> float | None:
        return None if self.val is None else self.model._rmse_index(*self.val)
