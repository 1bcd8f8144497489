"""A biases-only baseline, ``r_ij = mu + b_i + c_j``: the yardstick for the factor model."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastmf.ratings import as_ratings, lookup


class BiasOnly:
    """Regularized user and item biases fitted by alternating exact updates.

    Minimizes ``sum (A_ij - mu - b_i - c_j)^2 + reg (sum b_i^2 + sum c_j^2)``; each update
    ``b_i = sum_j (A_ij - mu - c_j) / (n_i + reg)`` is vectorized over all users at once.

    Parameters
    ----------
    reg : float, default=10.0
    n_iter : int, default=10
    """

    def __init__(self, *, reg: float = 10.0, n_iter: int = 10) -> None:
        self.reg = reg
        self.n_iter = n_iter

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"reg": self.reg, "n_iter": self.n_iter}

    def fit(self, X: Any, y: None = None) -> BiasOnly:
        """Fit on ratings (anything :class:`~fastmf.BiasedALS` accepts); returns ``self``."""
        if not (np.isfinite(self.reg) and self.reg >= 0):
            raise ValueError(f"reg must be finite and >= 0, got {self.reg!r}")
        r = as_ratings(X)
        if r.nnz == 0:
            raise ValueError("cannot fit on an empty rating set (0 ratings)")
        u, i, v = r.user_index, r.item_index, r.values
        mu = float(v.mean())
        nu = np.bincount(u, minlength=r.n_users)
        ni = np.bincount(i, minlength=r.n_items)
        b = np.zeros(r.n_users)
        c = np.zeros(r.n_items)
        for _ in range(self.n_iter):
            b = np.bincount(u, weights=v - mu - c[i], minlength=r.n_users) / (nu + self.reg)
            c = np.bincount(i, weights=v - mu - b[u], minlength=r.n_items) / (ni + self.reg)
        self.global_mean_, self.user_bias_, self.item_bias_ = mu, b, c
        self.user_ids_, self.item_ids_ = r.user_ids, r.item_ids
        return self

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """``mu + b_i + c_j``; an unknown user or item contributes a zero bias."""
        ui = lookup(self.user_ids_, np.atleast_1d(users))
        ii = lookup(self.item_ids_, np.atleast_1d(items))
        return (self.global_mean_ + np.where(ui >= 0, self.user_bias_[np.maximum(ui, 0)], 0.0)
                + np.where(ii >= 0, self.item_bias_[np.maximum(ii, 0)], 0.0))
