"""Bayesian biased matrix factorization by Gibbs sampling (BPMF with biases)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from fastmf._driver import Trainer, train
from fastmf._params import COMMON, Param
from fastmf._registry import register
from fastmf._solver import row_order
from fastmf.base import (
    FactorModel,
    doc_params,
    init_rngs,
    initial_factors,
    keeps_previous_state_on_error,
    predict_at,
)
from fastmf.kernels import (
    implicit_residuals,
    implicit_sums,
    loss_rows,
    sample_implicit,
    sample_rows,
)
from fastmf.ratings import as_ratings, csr_to_csc


@register("bayes", aliases=("bayesian",), rank=1)
@doc_params
class BayesianALS(FactorModel):
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
    implicit : {"none", "users", "both"}, default="none"
        Who-rated-what terms (Koren's SVD++; Rendle, Zhang & Koren 2019 for the Bayesian,
        "flipped" form). ``"users"``: the user vector is ``u_i + |N(i)|^-1/2 sum_{k in N(i)}
        y_k`` over the items ``N(i)`` the user rated; ``"both"``: the item vector is also
        ``v_j + |N(j)|^-1/2 sum_{l in N(j)} z_l`` over its raters. ``y`` and ``z`` get
        hierarchical Gaussian priors like the factors and are drawn one coordinate at a
        time from their exact conditionals (docs/design.md, "Implicit terms"); the fitted
        factors are the effective vectors, so prediction and everything after it are
        unchanged.
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
    _unit = "sweep"
    _TRAINING_CURVE = ("rmse_curve_", "training RMSE of each sample", False)
    _params = (
        Param("n_factors", "int", 10, "rank K of each sample's factors", low=1,
              cli="--factors"),
        Param("n_samples", "int", 100, "samples kept and averaged", low=1, cli="--samples"),
        Param("burn_in", "int", 20, "sweeps discarded first", low=0, cli="--burn-in"),
        Param("thin", "int", 1, "keep every n-th sweep after burn-in", low=1, cli="--thin"),
        Param("alpha", "real", None, "fixed noise precision (default: sampled)", low=0,
              low_open=True, optional=True),
        Param("implicit", "choice", "none", "who-rated-what terms: none, users (SVD++) or "
              "both (also items, 'flipped')", choices=("none", "users", "both"),
              cli="--implicit"),
        *COMMON,
    )

    def __init__(
        self,
        n_factors: int = 10,
        *,
        n_samples: int = 100,
        burn_in: int = 20,
        thin: int = 1,
        alpha: float | None = None,
        implicit: str = "none",
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
        self.implicit = implicit
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
        validation: Any = None,
        callback: Callable[[int, BayesianALS], Any] | None = None,
        columns: Any = None,
        implicit_pairs: Any = None,
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
        columns : (user, item, rating), optional
            For a DataFrame ``X``: its user, item and rating columns, by name or position
            (default: recognised names such as ``user``/``userId``, ``item``/``movieId``,
            ``rating``; unrecognised names are an error, never a guess).
        implicit_pairs : (users, items) or array of shape (n, 2), optional
            With ``implicit="users"``/``"both"``: more (user, item) pairs known to be rated,
            without their values (e.g. the pairs to be predicted), added to the training
            pairs in ``N(i)`` and ``N(j)``. Their ids must occur in ``X``.

        Notes
        -----
        A ``KeyboardInterrupt`` keeps the samples drawn so far (``n_samples_`` says how
        many) before it propagates; before the first kept sample the model stays unfitted.

        Returns
        -------
        self : BayesianALS
        """
        cfg = self._checked_params()
        self.__dict__.pop("user_factors_", None)  # an interrupted refit must not look fitted
        ratings = as_ratings(X, columns)
        self._check_training(ratings)
        val = None if validation is None else self._validation_pairs(validation, ratings)
        pairs = _implicit_pairs(implicit_pairs, ratings, cfg["implicit"])
        trainer = _GibbsTrainer(self, ratings, cfg, val, pairs)
        train(self, trainer, n_jobs=self.n_jobs, verbose=self.verbose, callback=callback)
        self._set_residual_std(trainer.csr)
        return self

    # -- helpers ----------------------------------------------------------------------------

    def _planned_iterations(self) -> int:
        return int(self.burn_in + self.n_samples * self.thin)

    def _progress_postfix(self, train) -> dict[str, str]:
        # not fitted until the last sweep: the sample's own RMSE and noise level
        return {"rmse": f"{self.rmse_curve_[-1]:.4f}",
                "sigma": f"{self.noise_precision_curve_[-1] ** -0.5:.4f}"}

    def _stored_width(self, meta: dict) -> int:
        return self._checked_params()["n_factors"] * int(meta.get("n_samples", 0))

    def _stored_meta(self) -> dict:
        return {"n_samples": self.n_samples_}

    def _restore_meta(self, meta: dict) -> None:
        self.n_samples_ = int(meta["n_samples"])


class _GibbsTrainer(Trainer):
    """The Gibbs chain for the driver: one sweep draws every user row, then every item row
    (each side's prior first), then the noise precision; kept sweeps are accumulated and
    published as the posterior-mean predictor."""

    curves = ("rmse", "noise_precision")
    unit = "sweep"

    def __init__(self, model: BayesianALS, ratings, cfg: dict, val, pairs=None) -> None:
        dt, K, S = cfg["dtype"], cfg["n_factors"], cfg["n_samples"]
        self.model, self.cfg, self.val = model, cfg, val
        self.has_validation = val is not None
        self.total = cfg["burn_in"] + S * cfg["thin"]
        # The hyperpriors (Wishart(I), Gamma(1, 1)) have unit scale: ratings of magnitude 1e-3
        # or 1e4 sample badly under them (issue 14: ratings x 0.001 did worse than biases
        # only). The chain runs on ratings / s, s the power of two nearest their standard
        # deviation -- exact in floating point, and s = 1 (bit for bit the same chain) for
        # star ratings; everything reported is scaled back.
        self.s = s = _unit_scale(ratings.values)
        csr = ratings.to_csr(dt)
        self.csr, self.csc = _scaled(csr, s), _scaled(csr_to_csc(csr, ratings.n_items), s)
        user_counts, item_counts = np.diff(self.csr[0]), np.diff(self.csc[0])
        self.user_order, self.item_order = row_order(user_counts), row_order(item_counts)
        M, N = ratings.shape
        self.nnz = ratings.nnz
        mu = float(np.mean(ratings.values))
        self.mu = mu / s  # the chain's offset, in scaled units
        rng_u, rng_v = init_rngs(cfg["random_state"])
        self.rng = rng_u  # the chain's own draws follow the start's on the user stream
        self.U = initial_factors(None, M, K, dt, user_counts, "", rng_u)
        self.V = initial_factors(None, N, K, dt, item_counts, "", rng_v)
        self.b = np.zeros(M, dtype=dt)
        self.c = np.zeros(N, dtype=dt)
        # Start alpha at its conditional mean given the global-mean-only start (residuals =
        # deviations from mu): about 1 / variance, bounded by the Gamma(1, 1) prior when the
        # ratings are (nearly) constant, where 1 / variance would overflow the systems.
        sse0 = float(np.sum(((ratings.values - mu) / s) ** 2))
        self.alpha = (cfg["alpha"] * s * s if cfg["alpha"] is not None
                      else (1 + ratings.nnz / 2) / (1 + sse0 / 2))
        # Implicit terms (docs/design.md, "Implicit terms"): Y (one row per item) enters the
        # users' effective vectors, Z (one row per user) the items'. They start at zero, so
        # the start is today's; the chain keeps U, V and the effective W = U + S(Y),
        # V' = V + T(Z).
        self.mode = cfg["implicit"]
        # Who rated what: N(i) and N(j) as compressed rows (the training pairs, plus any
        # implicit_pairs) and their sizes n_i, n_j.
        if pairs is None:
            self.n_csr, self.n_csc = self.csr[:2], self.csc[:2]
        else:
            self.n_csr, self.n_csc = _incidence(ratings, *pairs)
        self.n_user, self.n_item = np.diff(self.n_csr[0]), np.diff(self.n_csc[0])
        self.Y = np.zeros((N, K), dtype=dt) if self.mode != "none" else None
        self.Z = np.zeros((M, K), dtype=dt) if self.mode == "both" else None
        self.kept_U = np.zeros((M, S, K), dtype=dt)
        self.kept_V = np.zeros((N, S, K), dtype=dt)
        self.sum_b = np.zeros(M)
        self.sum_c = np.zeros(N)
        self.val_sum = None if val is None else np.zeros(len(val[2]))
        self.kept = 0
        self.val_rmse = None
        self.fitted = dict(user_ids=ratings.user_ids, item_ids=ratings.item_ids,
                           user_counts=user_counts, item_counts=item_counts,
                           rated_indptr=self.csr[0], rated_indices=self.csr[1], global_mean=mu,
                           rating_range=(ratings.values.min(), ratings.values.max()))

    def step(self, it: int, n_threads: int) -> dict[str, float]:
        cfg, rng = self.cfg, self.rng
        typ = cfg["dtype"].type
        U, V, b, c = self.U, self.V, self.b, self.c
        if self.mode == "none":
            for side, arrays, order, F, bias, other, other_bias in (
                ("user", self.csr, self.user_order, U, b, V, c),
                ("item", self.csc, self.item_order, V, c, U, b),
            ):
                self._draw_side(side, arrays, order, F, bias, other, other_bias, None, it,
                                n_threads)
            W, Vp = U, V
        else:
            W, Vp = self._implicit_sweep(it, n_threads)
        sse = float(loss_rows(*self.csr, W, b, Vp, c, typ(self.mu), typ(0), typ(0), False,
                              False))
        if cfg["alpha"] is None:
            self.alpha = rng.gamma(1.0 + self.nnz / 2, 1.0 / (1.0 + sse / 2))
        keep = it >= cfg["burn_in"] and (it - cfg["burn_in"] + 1) % cfg["thin"] == 0
        if keep:
            self.kept_U[:, self.kept] = W
            self.kept_V[:, self.kept] = Vp
            self.sum_b += b
            self.sum_c += c
            self.kept += 1
        if self.val is not None:
            ui, ii, truth = self.val
            pred = predict_at(ui, ii, W, b, Vp, c, self.mu) * self.s
            if keep:
                self.val_sum += pred
            if self.kept:
                pred = self.val_sum / self.kept
            self.val_rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
        return {"rmse": math.sqrt(sse / self.nnz) * self.s,
                "noise_precision": float(self.alpha) / (self.s * self.s)}

    def _draw_side(self, side, arrays, order, F, bias, other, other_bias, offset, it,
                   n_threads) -> None:
        """Draw one side's prior, then every row of ``F, bias`` given ``other``. With
        ``offset`` (the rows' implicit terms), ``F`` holds the effective vectors ``f + offset``
        and the prior mean of row ``i`` moves by ``offset[i]``."""
        cfg, rng = self.cfg, self.rng
        dt, K = cfg["dtype"], cfg["n_factors"]
        typ = dt.type
        base = F if offset is None else F - offset
        prec, shift = sample_prior(base[order], bias[order], rng)
        noise = rng.standard_normal((len(order), K + 1)).astype(dt)
        row_shift = (np.zeros((0, K + 1), dtype=dt) if offset is None
                     else (offset @ prec[:, :K].T).astype(dt))
        failed = sample_rows(
            *arrays, other, other_bias, typ(self.mu), typ(self.alpha), prec.astype(dt),
            shift.astype(dt), row_shift, order, n_threads, noise, F, bias,
        )
        _check_draws(failed, F, bias, it, side)

    def _draw_implicit(self, Y, side, arrays, counts, eff, eff_bias, other, other_bias,
                       incidence, it) -> None:
        """Draw the implicit factors ``Y`` whose sums enter ``eff`` (the effective vectors of
        the rows of ``arrays``), updating ``eff`` in place."""
        cfg, rng = self.cfg, self.rng
        dt = cfg["dtype"]
        typ = dt.type
        resid = np.empty(len(arrays[1]), dtype=dt)
        implicit_residuals(*arrays, other, other_bias, typ(self.mu), eff, eff_bias, resid)
        rated = np.diff(incidence[0]) > 0
        prec, shift = sample_prior(Y[rated], None, rng)
        noise = rng.standard_normal(Y.shape).astype(dt)
        failed = sample_implicit(*arrays[:2], resid, other, counts, *incidence,
                                 typ(self.alpha), prec.astype(dt), shift.astype(dt), noise, Y,
                                 eff)
        if failed or not np.isfinite(Y).all():
            raise FloatingPointError(f"sweep {it + 1}, {side} implicit draws: {failed} "
                                     "coordinates with a non-positive precision; use "
                                     "dtype='float64'")

    def _implicit_sweep(self, it: int, n_threads: int):
        """One sweep with implicit terms: users (effective ``W = U + S``), ``Y``, items
        (effective ``V' = V + T``), then ``Z``; returns ``(W, V')``."""
        dt, K = self.cfg["dtype"], self.cfg["n_factors"]
        M, N = len(self.U), len(self.V)
        S = np.empty((M, K), dtype=dt)
        implicit_sums(*self.n_csr, self.Y, S)
        T = np.zeros((N, K), dtype=dt)
        if self.Z is not None:
            implicit_sums(*self.n_csc, self.Z, T)
        W, Vp = self.U + S, self.V + T
        b, c = self.b, self.c
        self._draw_side("user", self.csr, self.user_order, W, b, Vp, c, S, it, n_threads)
        self._draw_implicit(self.Y, "user", self.csr, self.n_user, W, b, Vp, c, self.n_csc,
                            it)
        implicit_sums(*self.n_csr, self.Y, S)
        self.U[...] = W - S
        self._draw_side("item", self.csc, self.item_order, Vp, c, W, b, T, it, n_threads)
        if self.Z is not None:
            self._draw_implicit(self.Z, "item", self.csc, self.n_item, Vp, c, W, b,
                                self.n_csr, it)
            implicit_sums(*self.n_csc, self.Z, T)
        self.V[...] = Vp - T
        return W, Vp

    def validation_rmse(self) -> float | None:
        return self.val_rmse

    def describe(self, it: int, metrics: dict[str, float]) -> str:
        return (f"sweep {it}: train RMSE {metrics['rmse']:.5f}, "
                f"sigma {metrics['noise_precision'] ** -0.5:.4f}")

    def can_stop(self) -> bool:
        return self.kept > 0

    def finish(self) -> None:
        """Publish the posterior-mean predictor of the samples kept so far (none: unfitted)."""
        kept = self.kept
        if not kept:
            return
        model = self.model
        scale = self.kept_U.dtype.type(math.sqrt(self.s) / math.sqrt(kept))
        # (rows, samples, K) -> (rows, samples * K): a view unless the chain stopped early;
        # scaled in place, so the samples are never held twice.
        U = np.ascontiguousarray(self.kept_U[:, :kept]).reshape(len(self.kept_U), -1)
        V = np.ascontiguousarray(self.kept_V[:, :kept]).reshape(len(self.kept_V), -1)
        U *= scale
        V *= scale
        dt = self.kept_U.dtype
        model._set_fitted(user_factors=U, item_factors=V,
                          user_bias=(self.sum_b / kept * self.s).astype(dt),
                          item_bias=(self.sum_c / kept * self.s).astype(dt), **self.fitted)
        model.n_samples_ = kept


def _implicit_pairs(pairs: Any, ratings, mode: str):
    """``implicit_pairs`` as (user rows, item columns) of the training id space, or None."""
    if pairs is None:
        return None
    if mode == "none":
        raise ValueError("implicit_pairs needs implicit='users' or 'both' (implicit='none' "
                         "has no who-rated-what terms)")
    if isinstance(pairs, tuple) and len(pairs) == 2:
        users, items = np.asarray(pairs[0]), np.asarray(pairs[1])
    else:
        arr = np.asarray(pairs)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError("implicit_pairs must be (users, items) or an array of shape "
                             f"(n, 2), got shape {arr.shape}")
        users, items = arr[:, 0], arr[:, 1]
    if users.shape != items.shape or users.ndim != 1:
        raise ValueError(f"implicit_pairs: {users.shape[0] if users.ndim else 1} users but "
                         f"{items.shape[0] if items.ndim else 1} items")
    from fastmf.ratings import lookup

    rows, cols = lookup(ratings.user_ids, users, "user"), lookup(ratings.item_ids, items, "item")
    for what, idx, ids in (("user", rows, users), ("item", cols, items)):
        if (idx < 0).any():
            bad = np.flatnonzero(idx < 0)
            raise ValueError(f"implicit_pairs: {len(bad)} {what} id(s) not in the training "
                             f"ratings (first: {ids[bad[0]]!r} at position {bad[0]}); a "
                             "who-rated-what term needs a row fitted from ratings")
    return rows.astype(np.int64), cols.astype(np.int64)


def _incidence(ratings, rows: np.ndarray, cols: np.ndarray):
    """``N(i)`` and ``N(j)`` as ``(indptr, indices)`` pairs: the training pairs and the given
    ones, each pair once."""
    import scipy.sparse as sp

    M, N = ratings.shape
    r = np.concatenate([ratings.user_index.astype(np.int64), rows])
    c = np.concatenate([ratings.item_index.astype(np.int64), cols])
    A = sp.csr_matrix((np.ones(len(r), dtype=np.int32), (r, c)), shape=(M, N))
    A.sum_duplicates()
    B = A.tocsc()
    return ((A.indptr.astype(np.int64), A.indices.astype(np.int32)),
            (B.indptr.astype(np.int64), B.indices.astype(np.int32)))


def _unit_scale(values: np.ndarray) -> float:
    """The power of two nearest the standard deviation of ``values`` (1.0 if it is 0)."""
    std = float(np.std(values))
    if not (np.isfinite(std) and std > 0):
        return 1.0
    return float(2.0 ** round(math.log2(std)))


def _scaled(arrays: tuple, s: float) -> tuple:
    indptr, indices, data = arrays
    return arrays if s == 1.0 else (indptr, indices, (data / data.dtype.type(s)))


def sample_prior(
    F: np.ndarray, bias: np.ndarray, rng: np.random.Generator, beta0: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one side's prior ``(Lambda, Lambda m)`` from its Normal-Wishart conditional.

    ``F``/``bias`` are the current rows (those with ratings); the rows ``x = [f, b]`` (``f``
    alone when ``bias`` is None) are treated as ``N(m, Lambda^-1)`` draws under the
    hyperprior ``Lambda ~ Wishart(I, D)``, ``m | Lambda ~ N(0, (beta0 Lambda)^-1)``,
    ``D = K + 1`` (``K``). Returns float64 arrays.
    """
    from scipy import stats  # here: importing scipy.stats costs half a second at start-up

    x = (F if bias is None else np.column_stack([F, bias])).astype(np.float64)
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
