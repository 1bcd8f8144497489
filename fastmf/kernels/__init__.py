"""Compiled kernels: ``@njit`` functions over arrays and scalars only (docs/design.md section 5).

No classes, no scipy objects, no I/O. Outputs are preallocated arrays written in place; the
return value is at most a scalar diagnostic.
"""

from fastmf.kernels._cache import kernel_cache

with kernel_cache():  # the @njit(cache=True) functions below cache outside the package
    from fastmf.kernels.als import (
        normal_equations,
        solve_normal_equations,
        solve_rows,
        solve_rows_cg,
    )
    from fastmf.kernels.gibbs import (
        implicit_residuals,
        implicit_sums,
        sample_implicit,
        sample_rows,
    )
    from fastmf.kernels.implicit import implicit_loss, implicit_rows, implicit_rows_cg
    from fastmf.kernels.objective import loss_rows, objective, penalty_rows, predict_pairs
    from fastmf.kernels.sgd import sgd_epoch, sgd_visit_order
    from fastmf.kernels.sparse import transpose_csr
    from fastmf.kernels.topn import top_n

__all__ = [
    "implicit_loss",
    "implicit_rows",
    "implicit_rows_cg",
    "implicit_residuals",
    "implicit_sums",
    "loss_rows",
    "normal_equations",
    "objective",
    "penalty_rows",
    "predict_pairs",
    "sample_implicit",
    "sample_rows",
    "sgd_epoch",
    "sgd_visit_order",
    "solve_normal_equations",
    "solve_rows",
    "solve_rows_cg",
    "top_n",
    "transpose_csr",
]
