"""ImplicitALS: weighted ALS for implicit feedback (clicks, plays, purchases) and top-N."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from fastmf._driver import Trainer, train
from fastmf._params import COMMON, Param
from fastmf._registry import register
from fastmf._solver import row_order
from fastmf._threads import thread_limits
from fastmf.base import (
    FactorModel,
    doc_params,
    init_rngs,
    initial_factors,
    keeps_previous_state_on_error,
)
from fastmf.kernels import implicit_loss, implicit_rows, implicit_rows_cg
from fastmf.ratings import Ratings, as_ratings, csr_to_csc

# A solver runs one half-step: solver(arrays, other, YtY, reg, order, n_threads, cg_steps, F,
# obs) -> failed rows; ``obs`` (float64, empty or one entry per row) receives each updated
# row's observed-pairs term of the objective (see implicit_rows).
_NO_OBS = np.empty(0)


def _cholesky(arrays, other, YtY, reg, order, n_threads, cg_steps, F, obs=_NO_OBS) -> int:
    return implicit_rows(*arrays, other, YtY, reg, order, n_threads, F, obs)


def _cg(arrays, other, YtY, reg, order, n_threads, cg_steps, F, obs=_NO_OBS) -> int:
    return implicit_rows_cg(*arrays, other, YtY, reg, order, n_threads, cg_steps, F, obs)


#: name -> half-step (docs/design.md section 8).
SOLVERS = {"cholesky": _cholesky, "cg": _cg}


@register("implicit", rank=2)
@doc_params
class ImplicitALS(FactorModel):
    r"""Implicit-feedback matrix factorization by weighted ALS (Hu, Koren & Volinsky 2008).

    For interaction strengths ``r_ui >= 0`` (counts, plays, clicks -- or ratings, treated as
    such), with preference ``p_ui = 1[r_ui > 0]`` and confidence ``c_ui = 1 + alpha r_ui``
    (``confidence="linear"``) or ``1 + alpha log(1 + r_ui)`` (``"log"``), it minimizes over
    **all** user-item pairs

    .. math::

        J = \sum_{u, i} c_{ui} (p_{ui} - x_u^T y_i)^2
            + \lambda \Big(\sum_u \|x_u\|^2 + \sum_i \|y_i\|^2\Big)

    where a pair never observed has ``c = 1, p = 0`` (a weak negative). Each half-step
    solves every row exactly (``solver="cholesky"``, so ``J`` never increases) or takes a few
    conjugate-gradient steps (``"cg"``); the unobserved pairs enter only through ``Y^T Y``,
    computed once per half-step, so the cost is linear in the observed pairs.

    Recommendations rank items by ``x_u . y_i``; ``predict`` returns that score (the
    predicted preference, not a rating). ``global_mean_`` and the biases are zero.

    Parameters
    ----------
    n_factors : int, default=64
        Rank ``K``.
    reg : float, default=0.05
        ``lambda``, the L2 penalty on the factors.
    alpha : float, default=1.0
        Confidence slope: ``c = 1 + alpha r``.
    confidence : {"linear", "log"}, default="linear"
        How strengths become confidences; ``"log"`` damps heavy counts.
    n_iter : int, default=15
        ALS iterations (a user and an item half-step each).
    solver : {"cholesky", "cg"}, default="cholesky"
    cg_steps : int, default=3
        Conjugate-gradient steps per row and half-step (``solver="cg"``).
    dtype : {"float32", "float64"}, default="float32"
    random_state : int, numpy Generator or None
        Seeds the initial factors ``randn / K``.
    n_jobs : int, optional
        Threads for the kernels (None or -1: all). Results do not depend on it.
    verbose : bool, default=False
        Progress bar during ``fit``.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray
    user_bias_, item_bias_ : ndarray of zeros
    global_mean_ : float (0.0)
    loss_curve_ : ndarray of float64
        ``J`` after each iteration.
    n_iter_ : int
    user_ids_, item_ids_, user_counts_, item_counts_ : as in :class:`BiasedALS`

    Examples
    --------
    >>> import fastmf
    >>> ratings, _ = fastmf.make_ratings(200, 100, 4000, random_state=0)
    >>> model = fastmf.ImplicitALS(n_factors=8, n_iter=5, random_state=0).fit(ratings)
    >>> items, scores = model.recommend(0, n=5)
    """

    _TRAINING_CURVE = ("loss_curve_", "implicit objective J", True)
    _predicts_ratings = False
    _params = (
        Param("n_factors", "int", 64, "rank K of the factors", low=1, cli="--factors"),
        Param("reg", "real", 0.05, "lambda, the L2 penalty on the factors", low=0,
              cli="--reg"),
        Param("alpha", "real", 1.0, "confidence slope: c = 1 + alpha r", low=0,
              cli="--alpha"),
        Param("confidence", "choice", "linear", "confidence from strength",
              choices=("linear", "log"), cli="--confidence"),
        Param("n_iter", "int", 15, "ALS iterations", low=1, cli="--iters", affects_fit=False),
        Param("solver", "choice", "cholesky", "per-row solver", choices=tuple(SOLVERS),
              cli="--solver"),
        Param("cg_steps", "int", 3, "conjugate-gradient steps per row (solver='cg')", low=1,
              cli="--cg-steps"),
        *COMMON,
    )

    def __init__(
        self,
        n_factors: int = 64,
        *,
        reg: float = 0.05,
        alpha: float = 1.0,
        confidence: Literal["linear", "log"] = "linear",
        n_iter: int = 15,
        solver: Literal["cholesky", "cg"] = "cholesky",
        cg_steps: int = 3,
        dtype: Any = "float32",
        random_state: int | np.random.Generator | None = None,
        n_jobs: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_factors = n_factors
        self.reg = reg
        self.alpha = alpha
        self.confidence = confidence
        self.n_iter = n_iter
        self.solver = solver
        self.cg_steps = cg_steps
        self.dtype = dtype
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    @keeps_previous_state_on_error
    def fit(
        self,
        X: Any,
        y: None = None,
        *,
        callback: Callable[[int, ImplicitALS], Any] | None = None,
        columns: Any = None,
    ) -> ImplicitALS:
        """Fit to interactions.

        Parameters
        ----------
        X : Ratings, pandas DataFrame, scipy.sparse matrix or 2-D array
            Interaction strengths ``>= 0``, as :meth:`BiasedALS.fit` takes ratings: for a
            sparse matrix every stored entry is an observed pair (a stored 0 has preference
            0); for a dense array, NaN is missing.
        y : None
            Ignored; present for scikit-learn compatibility.
        callback : callable, optional
            ``callback(iteration, model)`` after each iteration; returning True stops.
        columns : (user, item, rating), optional
            For a DataFrame ``X``: its user, item and rating columns, by name or position
            (default: recognised names such as ``user``/``userId``, ``item``/``movieId``,
            ``rating``; unrecognised names are an error, never a guess).

        Returns
        -------
        self : ImplicitALS
        """
        p = self._checked_params()
        dt, K = p["dtype"], p["n_factors"]
        ratings = as_ratings(X, columns)
        self._check_training(ratings)
        strengths = ratings.to_csr(np.float64)
        csr = self._weights(strengths)
        csc = self._weights(csr_to_csc(strengths, ratings.n_items))
        M, N = ratings.shape
        user_counts, item_counts = np.diff(csr[0]), np.diff(csc[0])
        rng_u, rng_v = init_rngs(p["random_state"])
        self._set_fitted(
            user_ids=ratings.user_ids, item_ids=ratings.item_ids,
            user_factors=initial_factors(None, M, K, dt, user_counts, "", rng_u),
            item_factors=initial_factors(None, N, K, dt, item_counts, "", rng_v),
            user_bias=np.zeros(M, dtype=dt), item_bias=np.zeros(N, dtype=dt),
            user_counts=user_counts, item_counts=item_counts, rated_indptr=csr[0],
            rated_indices=csr[1], global_mean=0.0,
        )
        trainer = _ImplicitTrainer(self, p, csr, csc)
        return train(self, trainer, n_jobs=self.n_jobs, verbose=self.verbose,
                     callback=callback)

    def fold_in(self, X: Any) -> ImplicitALS:
        """Fit new or changed users' rows against the fixed item factors, without a refit.

        Each user in ``X`` gets the exact row update from their interactions in ``X``
        alone, which replace any they had. Items the model does not know are ignored (with a
        warning). Returns ``self``.
        """
        p = self._checked_params()

        def solve(new: Ratings, F: np.ndarray, bias: np.ndarray):
            arrays = self._weights(new.to_csr(np.float64))
            V = self.item_factors_
            with thread_limits(self.n_jobs) as n_threads:
                failed = implicit_rows(*arrays, V, _gram(V), V.dtype.type(p["reg"]),
                                       row_order(np.diff(arrays[0])), n_threads, F, _NO_OBS)
            if failed or not np.isfinite(F).all():
                raise FloatingPointError("fold_in: a system was not positive definite; "
                                         "increase reg")
            return arrays[0], arrays[1]

        return self._fold_in(X, solve)

    # -- helpers ----------------------------------------------------------------------------

    def _weights(self, arrays):
        """``(indptr, indices, confidence, preference)`` in the model dtype from strengths."""
        indptr, indices, r = arrays
        if (r < 0).any():
            k = int(np.flatnonzero(r < 0)[0])
            raise ValueError(f"interaction strengths must be >= 0; found {r[k]!r} (ImplicitALS "
                             "reads a value as how strongly a user engaged with an item)")
        dt = np.dtype(self.dtype)
        strength = np.log1p(r) if self.confidence == "log" else r
        conf = (1.0 + self.alpha * strength).astype(dt)
        return indptr, indices, conf, (r > 0).astype(dt)

    def _progress_postfix(self, train) -> dict[str, str]:
        return {"loss": f"{self.loss_curve_[-1]:.5g}"}


def _gram64(F: np.ndarray) -> np.ndarray:
    F64 = F.astype(np.float64)
    return F64.T @ F64


def _cast(G64: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(G64.astype(dtype))


def _gram(F: np.ndarray) -> np.ndarray:
    """``F^T F`` in ``F``'s dtype, accumulated in float64."""
    return _cast(_gram64(F), F.dtype)


def _quadratic_terms(gu: np.ndarray, gv: np.ndarray, reg: float) -> float:
    """``tr(X^T X Y^T Y) + reg (|X|^2 + |Y|^2)`` from the two float64 Gram matrices."""
    return (float(np.sum(gu * gv))
            + float(reg) * (float(np.trace(gu)) + float(np.trace(gv))))


def implicit_objective(csr, U: np.ndarray, V: np.ndarray, reg: float) -> float:
    """The objective over all pairs: the observed pairs' share (kernel) plus
    ``tr(X^T X Y^T Y) + reg (|X|^2 + |Y|^2)`` from the two Gram matrices (float64)."""
    return float(implicit_loss(*csr, U, V)) + _quadratic_terms(_gram64(U), _gram64(V), reg)


class _ImplicitTrainer(Trainer):
    """ImplicitALS for the driver: state ``U, V``; one iteration; the objective."""

    curves = ("loss",)

    def __init__(self, model: ImplicitALS, p: dict, csr, csc) -> None:
        self.model, self.csr, self.csc = model, csr, csc
        self.total = p["n_iter"]
        self.reg = p["dtype"].type(p["reg"])
        self.cg_steps = p["cg_steps"]
        self.solve = SOLVERS[p["solver"]]
        self.user_order = row_order(np.diff(csr[0]))
        self.item_order = row_order(np.diff(csc[0]))
        # Each item's observed-pairs term after the item half-step (0 for items without
        # interactions): with the Gram matrices' terms, the objective of the iteration.
        self.item_obs = np.zeros(len(csc[0]) - 1)

    def state(self) -> dict[str, np.ndarray]:
        return {"U": self.model.user_factors_, "V": self.model.item_factors_}

    def step(self, it: int, n_threads: int) -> dict[str, float]:
        """One iteration; its objective from the item half-step's observed-pairs terms
        (no pass of its own over the interactions, issue 17) and the two Gram matrices, the
        users' being the one the item half-step used."""
        U, V = self.model.user_factors_, self.model.item_factors_
        grams = {}
        for side, arrays, order, F, other, obs in (
                ("user", self.csr, self.user_order, U, V, _NO_OBS),
                ("item", self.csc, self.item_order, V, U, self.item_obs)):
            grams[side] = _gram64(other)
            failed = self.solve(arrays, other, _cast(grams[side], other.dtype), self.reg,
                                order, n_threads, self.cg_steps, F, obs)
            if failed or not np.isfinite(F).all():
                raise FloatingPointError(
                    f"iteration {it + 1}, {side} half-step: {failed} system(s) not positive "
                    "definite or non-finite factors; increase reg")
        gu, gv = grams["item"], _gram64(V)
        return {"loss": float(self.item_obs.sum()) + _quadratic_terms(gu, gv, self.reg)}
