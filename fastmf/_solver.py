"""The explicit model's fit arrays, its solver registry and its iteration step, shared by
``BiasedALS`` (fit and fold-in), the Dask fit and the benchmarks.

Adding a solver is its kernel, one entry in :data:`SOLVERS` and its slow twin in
``tests/reference.py`` (docs/design.md, "Adding a solver").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastmf.kernels import objective, penalty_rows, solve_rows, solve_rows_cg
from fastmf.ratings import Ratings, csr_to_csc


@dataclass(frozen=True)
class Config:
    """Validated hyper-parameters in the form the kernels take."""

    n_factors: int
    reg: float
    reg_bias: float
    count_reg: bool
    count_bias: bool
    joint: bool
    dtype: np.dtype
    solver: str = "cholesky"
    cg_steps: int = 3

    def scalars(self, mu: float) -> tuple:
        """``(mu, reg, reg_bias, count_reg, count_bias, joint)`` as every half-step kernel
        takes them: reals cast to the factors' dtype (a Python float would promote float32
        arithmetic to float64 inside numba)."""
        t = self.dtype.type
        return (t(mu), t(self.reg), t(self.reg_bias), self.count_reg, self.count_bias,
                self.joint)


# A solver runs one half-step over compressed rows ``arrays = (indptr, indices, data)``:
# solver(arrays, other, other_bias, scalars, order, n_threads, config, F, bias, sse)
# -> failed rows; ``sse`` (float64, empty or one entry per row) receives each updated row's
# sum of squared residuals (see solve_rows).
Solver = Callable[..., int]

_NO_SSE = np.empty(0)


def _cholesky(arrays, other, other_bias, scalars, order, n_threads, config, F, bias,
              sse) -> int:
    return solve_rows(*arrays, other, other_bias, *scalars, order, n_threads, F, bias, sse)


def _cg(arrays, other, other_bias, scalars, order, n_threads, config, F, bias, sse) -> int:
    return solve_rows_cg(*arrays, other, other_bias, *scalars, order, n_threads,
                         config.cg_steps, F, bias, sse)


#: name -> half-step; ``BiasedALS(solver=...)`` and the CLI's ``--solver`` choose from it.
SOLVERS: dict[str, Solver] = {"cholesky": _cholesky, "cg": _cg}


def half_step(config: Config, arrays, order, other, other_bias, mu, n_threads, F, bias,
              solver: str | None = None, sse: np.ndarray | None = None) -> int:
    """One half-step with ``config``'s solver (or ``solver``); returns the failed rows.
    With ``sse`` (float64, one entry per row), each updated row's sum of squared residuals
    after its update is written there."""
    run = SOLVERS[solver or config.solver]
    return run(arrays, other, other_bias, config.scalars(mu), order, n_threads, config, F, bias,
               _NO_SSE if sse is None else sse)


class ALSProblem:
    """The compressed ratings of one fit, in both orientations, with their row schedules.

    ``step(U, b, V, c, n_threads)`` runs one ALS iteration in place: the user half-step over
    the CSR arrays, then the item half-step over the CSC arrays, with the same kernel, and
    returns the objective after it.
    """

    def __init__(self, ratings: Ratings, config: Config, global_mean: float | None = None) -> None:
        dt = config.dtype
        self.config = config
        self.shape = ratings.shape
        self.nnz = ratings.nnz
        self.csr = ratings.to_csr(dt)
        self.csc = csr_to_csc(self.csr, ratings.n_items)
        self.user_counts = np.diff(self.csr[0])
        self.item_counts = np.diff(self.csc[0])
        self.global_mean = float(np.mean(ratings.values) if global_mean is None else global_mean)
        # Rated rows in storage order; each task takes a run of them with an equal share of
        # the ratings (kernels.als.task_spans): balanced threads on power-law data without
        # dynamic scheduling, and each thread reads its ratings front to back.
        self.user_order = row_order(self.user_counts)
        self.item_order = row_order(self.item_counts)
        # Each item's sum of squared residuals after the item half-step (items without
        # ratings stay 0): with the penalties, the objective of the iteration.
        self._item_sse = np.zeros(self.shape[1])
        #: Sum of squared residuals at the factors the last :meth:`step` left (None before
        #: the first): the fit's training RMSE without a pass of its own.
        self.sse: float | None = None

    def half_step(self, side: str, F, bias, other, other_bias, n_threads: int,
                  sse: np.ndarray | None = None) -> int:
        """Update ``F, bias`` (users if ``side == "user"``) in place; returns failed rows."""
        arrays, order = (
            (self.csr, self.user_order) if side == "user" else (self.csc, self.item_order)
        )
        return half_step(self.config, arrays, order, other, other_bias, self.global_mean,
                         n_threads, F, bias, sse=sse)

    def step(self, U, b, V, c, n_threads: int, iteration: int = 0) -> float:
        """One iteration (users, then items), checking each half-step's output; returns the
        objective ``J`` after it (float64).

        The residuals come from the item half-step, which has each item's ratings gathered
        when it writes the item's update (``solve_rows``' ``sse``), so ``J`` costs no pass
        of its own over the ratings (issue 17); each residual is computed in the factors'
        dtype, where :meth:`loss` computes it in float64 (in float32 they agreed to 6e-10
        relative on the ML-1M shape; the tests hold them to 1e-6).
        """
        failed = self.half_step("user", U, b, V, c, n_threads)
        check_half_step(failed, U, b, iteration, "user")
        failed = self.half_step("item", V, c, U, b, n_threads, sse=self._item_sse)
        check_half_step(failed, V, c, iteration, "item")
        _, reg, reg_bias, count_reg, count_bias, _ = self.config.scalars(self.global_mean)
        penalties = (penalty_rows(self.user_counts, U, b, reg, reg_bias, count_reg, count_bias)
                     + penalty_rows(self.item_counts, V, c, reg, reg_bias, count_reg,
                                    count_bias))
        self.sse = float(self._item_sse.sum())
        return self.sse + float(penalties)

    def loss(self, U, b, V, c) -> float:
        """The objective J at the given factors (float64)."""
        mu, reg, reg_bias, count_reg, count_bias, _ = self.config.scalars(self.global_mean)
        return float(objective(
            *self.csr, self.csc[0], U, b, V, c, mu, reg, reg_bias, count_reg, count_bias,
        ))

    def flops_per_iteration(self) -> float:
        """Floating-point operations of one iteration, two per multiply-add.

        Cholesky, by the docs/design.md cost model: Gram ``2 nnz K(K+1)/2``, right-hand sides
        ``2 nnz K``, factorization and solves ``(M + N)(K^3/6 + K^2)`` multiply-adds. CG: per
        rating and pass a dot product and an axpy of length ``D = K + 1``, with one pass for
        the initial residual and one per step except the last, which takes the dot products
        only (it needs just the curvature ``p^T A p``), on both sides.
        """
        K = self.config.n_factors
        M, N = self.shape
        if self.config.solver == "cg":
            madds = 2 * self.nnz * (K + 1) * (2 * self.config.cg_steps + 1)
        else:
            madds = self.nnz * K * (K + 1) + 2 * self.nnz * K + (M + N) * (K**3 / 6 + K**2)
        return 2.0 * madds


def row_order(counts: np.ndarray) -> np.ndarray:
    """Non-empty rows in storage order, as int64: the list a half-step's tasks split into runs
    (:func:`fastmf.kernels.als.task_spans`)."""
    return np.flatnonzero(counts > 0).astype(np.int64)


def check_half_step(failed: int, F: np.ndarray, bias: np.ndarray, it: int, side: str) -> None:
    """Raise ``FloatingPointError`` naming the iteration if a half-step went wrong."""
    if failed:
        raise FloatingPointError(
            f"iteration {it + 1}, {side} half-step: {failed} {side} system(s) not positive "
            "definite, even Jacobi-scaled (reg=0 with fewer ratings than factors?); increase "
            "reg"
        )
    if not (np.isfinite(F).all() and np.isfinite(bias).all()):
        raise FloatingPointError(
            f"iteration {it + 1}, {side} half-step produced non-finite factors; "
            "check the ratings' scale or increase reg"
        )
