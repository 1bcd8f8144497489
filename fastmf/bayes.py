"""Bayesian biased matrix factorization by Gibbs sampling (BPMF with biases)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from fastmf._solver import row_order
from fastmf._threads import thread_limits
from fastmf.kernels import loss_rows, sample_rows
from fastmf.model import (
    _FactorModel,
    _init_rngs,
    _nonnegative,
    _positive_int,
    predict_at,
)
from fastmf.ratings import as_ratings

logger = logging.getLogger("fastmf")


class BayesianALS(_FactorModel):
    r"""Bayesian biased matrix factorization, fitted by Gibbs sampling.

    The model of :class:`BiasedALS`, ``A_ij ~ N(mu + b_i + c_j + u_i . v_j, 1 / alpha)``,
    with the ridge penalties replaced by hierarchical Gaussian priors
    ``[u_i, b_i] ~ N(m_U, Lambda_U^-1)`` and ``[v_j, c_j] ~ N(m_V, Lambda_V^-1)`` whose means
    and precisions get Normal-Wishart hyperpriors, and ``alpha`` a Gamma hyperprior
    (Bayesian PMF, Salakhutdinov & Mnih 2008, with the biases as one more coordinate).
    Each sweep draws every user row from its conditional distribution, then every item row:
    the same per-row normal equations as an ALS half-step (the prior's precision in place of
    the penalty), factored by the same Cholesky kernel, plus a Gaussian draw. The amount of
    regularization is learned from the data, so there is no ``reg`` to tune.

    Predictions are the posterior mean estimated from the kept samples,
    ``mu + mean_s(b_i^s + c_j^s + u_i^s . v_j^s)``. That average is itself a factor model of
    rank ``n_factors * n_samples`` (the samples' factors side by side, scaled by
    ``1/sqrt(n_samples)``), which is what ``user_factors_`` and ``item_factors_`` hold, so
    ``predict``, ``recommend``, ``similar_items`` and ``save`` work as for :class:`BiasedALS`.

    Parameters
    ----------
    n_factors : int, default=10
        Rank ``K`` of each sample's factors.
    n_samples : int, default=100
        Samples kept (after ``burn_in``) and averaged for prediction. Memory of the fitted
        model grows with ``n_factors * n_samples``.
    burn_in : int, default=20
        Sweeps discarded at the start while the chain moves away from the random start.
    thin : int, default=1
        Keep every ``thin``-th sweep after burn-in (``burn_in + n_samples * thin`` sweeps in
        all): less correlated samples for the same memory.
    alpha : float, optional
        Fixed noise precision ``1 / sigma^2`` (in squared rating units). By default it is
        sampled from its posterior under a Gamma(1, 1) hyperprior.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the factors and the per-row arithmetic (hyper-parameters are drawn in
        float64).
    random_state : int, numpy Generator or None
        Seeds the start (``randn / K``, as :class:`BiasedALS`) and every draw. The result does
        not depend on ``n_jobs``.
    n_jobs : int, optional
        Threads for the kernels (None or -1: all available).
    verbose : bool, default=False
        Progress bar (tqdm, on stderr) with the sample's training RMSE, ``sigma`` and the
        validation RMSE.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors * n_samples_)
    item_factors_ : ndarray of shape (n_items, n_factors * n_samples_)
        The kept samples side by side, scaled so that ``U V^T`` is their average.
        ``similar_items`` / ``similar_users`` take cosines of these rows, i.e. of the
        posterior-averaged inner products.
    user_bias_, item_bias_ : ndarray
        Posterior-mean biases.
    global_mean_ : float
    n_samples_ : int
        Samples averaged (fewer than ``n_samples`` after an interrupted fit).
    n_iter_ : int
        Sweeps completed, burn-in included.
    rmse_curve_ : ndarray of float64, shape (n_iter_,)
        Training RMSE of each sweep's sample.
    noise_precision_curve_ : ndarray of float64, shape (n_iter_,)
        ``alpha`` after each sweep (constant when ``alpha`` is given).
    validation_curve_ : ndarray of float64 or None
        With ``fit(validation=...)``: after each sweep, the validation RMSE of the current
        sample until the first kept one, then of the running posterior mean.
    user_ids_, item_ids_, user_counts_, item_counts_ :
        As in :class:`BiasedALS`; rows with no ratings are never drawn and keep zero factors
        and biases, so they predict like unseen ids.

    Notes
    -----
    Hyperpriors: ``m ~ N(0, (2 Lambda)^-1)``, ``Lambda ~ Wishart(I, K + 1)`` for each side,
    ``alpha ~ Gamma(1, 1)``. Sampling the hyper-parameters uses only the rows that have
    ratings. The cost of a sweep is that of a Cholesky ALS iteration plus one triangular
    solve per row.

    Examples
    --------
    >>> import fastmf
    >>> ratings, _ = fastmf.make_ratings(200, 100, 4000, random_state=0)
    >>> model = fastmf.BayesianALS(n_factors=4, n_samples=10, burn_in=5,
    ...                            random_state=0).fit(ratings)
    >>> model.user_factors_.shape
    (200, 40)
    """

    _CURVES = (("rmse_curve", "noise_precision_curve"), ("validation_curve",))
    _TRAINING_CURVE = ("rmse_curve_", "training RMSE of each sample", False)

    def __init__(
        self,
        n_factors: int = 10,
        *,
        n_samples: int = 100,
        burn_in: int = 20,
        thin: int = 1,
        alpha: float | None = None,
        dtype: Any = "float32",
        random_state: int | np.random.Generator | None = None,
        n_jobs: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_factors = n_factors
        self.n_samples = n_samples
        self.burn_in = burn_in
        self.thin = thin
        self.alpha = alpha
        self.dtype = dtype
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def fit(
        self,
        X: Any,
        y: None = None,
        *,
        validation: Any = None,
        callback: Callable[[int, BayesianALS], Any] | None = None,
    ) -> BayesianALS:
        """Run the sampler on observed ratings and keep the posterior-mean predictor.

        Parameters
        ----------
        X : Ratings, pandas DataFrame, scipy.sparse matrix or 2-D array
            The training ratings, as for :meth:`BiasedALS.fit`.
        y : None
            Ignored; present for scikit-learn compatibility.
        validation : same kinds as ``X``, optional
            Held-out ratings in the caller's id space, scored after every sweep into
            ``validation_curve_``.
        callback : callable, optional
            Called as ``callback(sweep, model)`` after each sweep with the curves up to
            date; returning True stops the sampler, keeping the samples so far (the return
            value is ignored until the first sample is kept).

        Notes
        -----
        A ``KeyboardInterrupt`` keeps the samples drawn so far (``n_samples_`` says how
        many) before it propagates; before the first kept sample the model stays unfitted.

        Returns
        -------
        self : BayesianALS
        """
        cfg = self._settings()
        dt, K, S = cfg.dtype, cfg.n_factors, cfg.n_samples
        self.__dict__.pop("user_factors_", None)  # an interrupted refit must not look fitted
        ratings = as_ratings(X)
        if ratings.nnz == 0:
            raise ValueError("cannot fit on an empty rating set (0 ratings)")
        val = None if validation is None else self._validation_pairs(validation, ratings)
        csr, csc = ratings.to_csr(dt), ratings.to_csc(dt)
        user_counts, item_counts = np.diff(csr[0]), np.diff(csc[0])
        user_order, item_order = row_order(user_counts), row_order(item_counts)
        M, N = ratings.shape
        mu = float(np.mean(ratings.values))
        rng_u, rng_v = _init_rngs(self.random_state)
        rng = rng_u  # the chain's own draws follow the start's on the user stream
        U = (rng_u.standard_normal((M, K)) / K).astype(dt)
        V = (rng_v.standard_normal((N, K)) / K).astype(dt)
        U[user_counts == 0] = 0
        V[item_counts == 0] = 0
        b = np.zeros(M, dtype=dt)
        c = np.zeros(N, dtype=dt)
        # Start alpha at its conditional mean given the global-mean-only start (residuals =
        # deviations from mu): about 1 / variance, bounded by the Gamma(1, 1) prior when the
        # ratings are (nearly) constant, where 1 / variance would overflow the systems.
        sse0 = float(np.sum((ratings.values - mu) ** 2))
        alpha = cfg.alpha if cfg.alpha is not None else (1 + ratings.nnz / 2) / (1 + sse0 / 2)

        kept_U = np.zeros((M, S, K), dtype=dt)
        kept_V = np.zeros((N, S, K), dtype=dt)
        sum_b = np.zeros(M)
        sum_c = np.zeros(N)
        val_sum = None if val is None else np.zeros(len(val[2]))
        rmse_curve: list[float] = []
        alpha_curve: list[float] = []
        val_curve: list[float] = []
        kept = 0
        sweeps = cfg.burn_in + S * cfg.thin
        data = (ratings.user_ids, ratings.item_ids, user_counts, item_counts, csr[0], csr[1], mu)

        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=sweeps, desc="BayesianALS", unit="sweep")
        typ = dt.type
        with thread_limits(self.n_jobs) as n_threads:
            try:
                for sweep in range(sweeps):
                    t0 = time.perf_counter()
                    for side, arrays, order, F, bias, other, other_bias in (
                        ("user", csr, user_order, U, b, V, c),
                        ("item", csc, item_order, V, c, U, b),
                    ):
                        prec, shift = sample_prior(F[order], bias[order], rng)
                        noise = rng.standard_normal((len(order), K + 1)).astype(dt)
                        failed = sample_rows(
                            *arrays, other, other_bias, typ(mu), typ(alpha), prec.astype(dt),
                            shift.astype(dt), order, n_threads, noise, F, bias,
                        )
                        _check_draws(failed, F, bias, sweep, side)
                    sse = float(loss_rows(*csr, U, b, V, c, typ(mu), typ(0), typ(0), False,
                                          False))
                    if cfg.alpha is None:
                        alpha = rng.gamma(1.0 + ratings.nnz / 2, 1.0 / (1.0 + sse / 2))
                    rmse_curve.append(math.sqrt(sse / ratings.nnz))
                    alpha_curve.append(float(alpha))
                    keep = sweep >= cfg.burn_in and (sweep - cfg.burn_in + 1) % cfg.thin == 0
                    if keep:
                        kept_U[:, kept] = U
                        kept_V[:, kept] = V
                        sum_b += b
                        sum_c += c
                        kept += 1
                    msg = (f"sweep {sweep + 1}: train RMSE {rmse_curve[-1]:.5f}, "
                           f"sigma {alpha ** -0.5:.4f}")
                    if val is not None:
                        pred = predict_at(val[0], val[1], U, b, V, c, mu)
                        if keep:
                            val_sum += pred
                        if kept:
                            pred = val_sum / kept
                        val_curve.append(float(np.sqrt(np.mean((pred - val[2]) ** 2))))
                        msg += f", validation RMSE {val_curve[-1]:.5f}"
                    logger.info(msg + f" ({time.perf_counter() - t0:.3f} s)")
                    self._set_curves(rmse_curve, alpha_curve, val_curve if val else None)
                    if bar is not None:
                        post = {"rmse": f"{rmse_curve[-1]:.4f}", "sigma": f"{alpha ** -0.5:.3f}"}
                        if val_curve:
                            post["val_rmse"] = f"{val_curve[-1]:.4f}"
                        bar.set_postfix(post, refresh=False)
                        bar.update(1)
                    if callback is not None and callback(sweep + 1, self) and kept:
                        break
            except KeyboardInterrupt:
                if kept:
                    self._keep(kept_U, kept_V, sum_b, sum_c, kept, data)
                logger.warning(f"sampler interrupted after {len(rmse_curve)} sweeps; "
                               f"{kept} sample(s) kept")
                raise
            finally:
                if bar is not None:
                    bar.close()
        self._keep(kept_U, kept_V, sum_b, sum_c, kept, data)
        return self

    # -- helpers ----------------------------------------------------------------------------

    def _set_curves(self, rmse, alpha, val) -> None:
        self.rmse_curve_ = np.asarray(rmse, dtype=np.float64)
        self.noise_precision_curve_ = np.asarray(alpha, dtype=np.float64)
        self.validation_curve_ = None if val is None else np.asarray(val, dtype=np.float64)
        self.n_iter_ = len(rmse)

    def _keep(self, kept_U, kept_V, sum_b, sum_c, kept: int, data: tuple) -> None:
        """Publish the posterior-mean predictor of the first ``kept`` samples."""
        scale = kept_U.dtype.type(1.0 / math.sqrt(kept))
        # (rows, samples, K) -> (rows, samples * K): a view unless the chain stopped early;
        # scaled in place, so the samples are never held twice.
        self.user_factors_ = np.ascontiguousarray(kept_U[:, :kept]).reshape(len(kept_U), -1)
        self.item_factors_ = np.ascontiguousarray(kept_V[:, :kept]).reshape(len(kept_V), -1)
        self.user_factors_ *= scale
        self.item_factors_ *= scale
        dt = kept_U.dtype
        self.user_bias_ = (sum_b / kept).astype(dt)
        self.item_bias_ = (sum_c / kept).astype(dt)
        (self.user_ids_, self.item_ids_, self.user_counts_, self.item_counts_,
         self._rated_indptr, self._rated_indices, self.global_mean_) = data
        self.n_samples_ = kept

    def _settings(self) -> _Settings:
        """Validate the constructor parameters (at fit time, as scikit-learn does)."""
        K = _positive_int(self.n_factors, "n_factors")
        S = _positive_int(self.n_samples, "n_samples")
        thin = _positive_int(self.thin, "thin")
        if isinstance(self.burn_in, bool) or not isinstance(self.burn_in, (int, np.integer)) \
                or self.burn_in < 0:
            raise ValueError(f"burn_in must be an int >= 0, got {self.burn_in!r}")
        alpha = None
        if self.alpha is not None:
            alpha = _nonnegative(self.alpha, "alpha")
            if alpha == 0:
                raise ValueError("alpha (the noise precision) must be > 0, got 0")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        return _Settings(K, S, int(self.burn_in), thin, alpha, dtype)

    def _stored_width(self, meta: dict) -> int:
        return self._settings().n_factors * int(meta.get("n_samples", 0))

    def _stored_meta(self) -> dict:
        return {"n_samples": self.n_samples_}

    def _restore_meta(self, meta: dict) -> None:
        self.n_samples_ = int(meta["n_samples"])


@dataclass(frozen=True)
class _Settings:
    n_factors: int
    n_samples: int
    burn_in: int
    thin: int
    alpha: float | None
    dtype: np.dtype


def sample_prior(
    F: np.ndarray, bias: np.ndarray, rng: np.random.Generator, beta0: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one side's prior ``(Lambda, Lambda m)`` from its Normal-Wishart conditional.

    ``F``/``bias`` are the current rows (those with ratings); the rows ``x = [f, b]`` are
    treated as ``N(m, Lambda^-1)`` draws under the hyperprior ``Lambda ~ Wishart(I, D)``,
    ``m | Lambda ~ N(0, (beta0 Lambda)^-1)``, ``D = K + 1``. Returns float64 arrays.
    """
    x = np.column_stack([F, bias]).astype(np.float64)
    n, D = x.shape
    xbar = x.mean(axis=0) if n else np.zeros(D)
    centred = x - xbar
    beta_n = beta0 + n
    scale_inv = np.eye(D) + centred.T @ centred + (beta0 * n / beta_n) * np.outer(xbar, xbar)
    scale = np.linalg.inv(scale_inv)
    lam = stats.wishart.rvs(df=D + n, scale=(scale + scale.T) / 2, random_state=rng)
    lam = np.atleast_2d(lam)
    # m ~ N(m_n, (beta_n Lambda)^-1): m_n + L^-T z with beta_n Lambda = L L^T
    chol = np.linalg.cholesky(beta_n * lam)
    m = n * xbar / beta_n + np.linalg.solve(chol.T, rng.standard_normal(D))
    return lam, lam @ m


def _check_draws(failed: int, F: np.ndarray, bias: np.ndarray, sweep: int, side: str) -> None:
    """Raise ``FloatingPointError`` naming the sweep if a half-step's draws went wrong."""
    where = f"sweep {sweep + 1}, {side} draws"
    if failed:
        raise FloatingPointError(
            f"{where}: {failed} conditional precision matrices not positive definite in "
            f"{F.dtype.name} (nearly noise-free ratings?); use dtype='float64'")
    if not (np.isfinite(F).all() and np.isfinite(bias).all()):
        raise FloatingPointError(f"{where} produced non-finite factors; check the ratings' "
                                 "scale or use dtype='float64'")
