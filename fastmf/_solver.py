"""The explicit model's fit arrays, its solver registry and its iteration step, shared by
``BiasedALS`` (fit and fold-in), the Dask fit and the benchmarks.

Adding a solver is its kernel, one entry in :data:`SOLVERS` and its slow twin in
``tests/reference.py`` (docs/design.md, "Adding a solver").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastmf.kernels import objective, solve_rows, solve_rows_cg
from fastmf.ratings import Ratings


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
# solver(arrays, other, other_bias, scalars, order, n_threads, config, F, bias) -> failed rows.
Solver = Callable[..., int]


def _cholesky(arrays, other, other_bias, scalars, order, n_threads, config, F, bias) -> int:
    return solve_rows(*arrays, other, other_bias, *scalars, order, n_threads, F, bias)


def _cg(arrays, other, other_bias, scalars, order, n_threads, config, F, bias) -> int:
    return solve_rows_cg(*arrays, other, other_bias, *scalars, order, n_threads,
                         config.cg_steps, F, bias)


#: name -> half-step; ``BiasedALS(solver=...)`` and the CLI's ``--solver`` choose from it.
SOLVERS: dict[str, Solver] = {"cholesky": _cholesky, "cg": _cg}


def half_step(config: Config, arrays, order, other, other_bias, mu, n_threads, F, bias,
              solver: str | None = None) -> int:
    """One half-step with ``config``'s solver (or ``solver``); returns the failed rows."""
    run = SOLVERS[solver or config.solver]
    return run(arrays, other, other_bias, config.scalars(mu), order, n_threads, config, F, bias)


class ALSProblem:
    """The compressed ratings of one fit, in both orientations, with their row schedules.

    ``step(U, b, V, c, n_threads)`` runs one ALS iteration in place: the user half-step over
    the CSR arrays, then the item half-step over the CSC arrays, with the same kernel.
    """

    def __init__(self, ratings: Ratings, config: Config, global_mean: float | None = None) -> None:
        dt = config.dtype
        self.config = config
        self.shape = ratings.shape
        self.nnz = ratings.nnz
        self.csr = ratings.to_csr(dt)
        self.csc = ratings.to_csc(dt)
        self.user_counts = np.diff(self.csr[0])
        self.item_counts = np.diff(self.csc[0])
        self.global_mean = float(np.mean(ratings.values) if global_mean is None else global_mean)
        # Longest rows first, dealt round-robin to the tasks: the threads stay balanced on
        # power-law data without any dynamic scheduling.
        self.user_order = row_order(self.user_counts)
        self.item_order = row_order(self.item_counts)

    def half_step(self, side: str, F, bias, other, other_bias, n_threads: int) -> int:
        """Update ``F, bias`` (users if ``side == "user"``) in place; returns failed rows."""
        arrays, order = (
            (self.csr, self.user_order) if side == "user" else (self.csc, self.item_order)
        )
        return half_step(self.config, arrays, order, other, other_bias, self.global_mean,
                         n_threads, F, bias)

    def step(self, U, b, V, c, n_threads: int, iteration: int = 0) -> None:
        """One iteration (users, then items), checking each half-step's output."""
        failed = self.half_step("user", U, b, V, c, n_threads)
        check_half_step(failed, U, b, iteration, "user")
        failed = self.half_step("item", V, c, U, b, n_threads)
        check_half_step(failed, V, c, iteration, "item")

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
    """Non-empty rows, longest first (ties by index), as int64."""
    order = np.argsort(-counts, kind="stable")
    return np.ascontiguousarray(order[counts[order] > 0], dtype=np.int64)


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
