"""One fit's arrays and its iteration step, shared by the estimator and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastmf.kernels import objective, solve_rows, solve_rows_cg
from fastmf.ratings import Ratings

SOLVERS = ("cholesky", "cg")


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
        t = dt.type
        self._scalars = (
            t(self.global_mean), t(config.reg), t(config.reg_bias), config.count_reg,
            config.count_bias, config.joint,
        )

    def half_step(self, side: str, F, bias, other, other_bias, n_threads: int) -> int:
        """Update ``F, bias`` (users if ``side == "user"``) in place; returns failed rows."""
        arrays, order = (
            (self.csr, self.user_order) if side == "user" else (self.csc, self.item_order)
        )
        if self.config.solver == "cg":
            return solve_rows_cg(
                *arrays, other, other_bias, *self._scalars, order, n_threads,
                self.config.cg_steps, F, bias,
            )
        return solve_rows(*arrays, other, other_bias, *self._scalars, order, n_threads, F, bias)

    def step(self, U, b, V, c, n_threads: int, iteration: int = 0) -> None:
        """One iteration (users, then items), checking each half-step's output."""
        failed = self.half_step("user", U, b, V, c, n_threads)
        check_half_step(failed, U, b, iteration, "user")
        failed = self.half_step("item", V, c, U, b, n_threads)
        check_half_step(failed, V, c, iteration, "item")

    def loss(self, U, b, V, c) -> float:
        """The objective J at the given factors (float64)."""
        mu, reg, reg_bias, count_reg, count_bias, _ = self._scalars
        return float(objective(
            *self.csr, self.csc[0], U, b, V, c, mu, reg, reg_bias, count_reg, count_bias,
        ))

    def flops_per_iteration(self) -> float:
        """Floating-point operations of one iteration, two per multiply-add.

        Cholesky, by the DESIGN.md section 3 count: Gram ``2 nnz K(K+1)/2``, right-hand sides
        ``2 nnz K``, factorization and solves ``(M + N)(K^3/6 + K^2)`` multiply-adds. CG: per
        rating and pass a dot product and an axpy of length ``D = K + 1``, with one pass for
        the initial residual and one per step, on both sides.
        """
        K = self.config.n_factors
        M, N = self.shape
        if self.config.solver == "cg":
            madds = 2 * self.nnz * 2 * (K + 1) * (self.config.cg_steps + 1)
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
            "definite (reg=0 with fewer ratings than factors?); increase reg"
        )
    if not (np.isfinite(F).all() and np.isfinite(bias).all()):
        raise FloatingPointError(
            f"iteration {it + 1}, {side} half-step produced non-finite factors; "
            "check the ratings' scale or increase reg"
        )
