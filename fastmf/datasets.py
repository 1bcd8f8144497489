"""Data sets: a deterministic synthetic generator with a planted model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastmf.ratings import Ratings


@dataclass(frozen=True)
class PlantedModel:
    """The model a synthetic data set was drawn from: ``mu + b_i + c_j + u_i.v_j + noise``."""

    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    noise: float

    def predict_index(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Noise-free ratings of the planted model for user/item *indices*."""
        return (
            self.global_mean + self.user_bias[users] + self.item_bias[items]
            + np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])
        )


def make_ratings(
    n_users: int = 1000,
    n_items: int = 500,
    n_ratings: int = 20_000,
    *,
    n_factors: int = 8,
    noise: float = 0.5,
    factor_scale: float = 0.5,
    bias_scale: float = 0.4,
    global_mean: float = 3.5,
    user_exponent: float = 1.0,
    item_exponent: float = 1.0,
    min_user_ratings: int = 1,
    rating_scale: tuple[float, float] | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[Ratings, PlantedModel]:
    """Draw a synthetic rating set from a planted low-rank + bias model.

    User activity and item popularity follow power laws (Zipf weights ``rank**-exponent``,
    ranks shuffled), as in real rating data: a few users and items have very many ratings and
    most have few. Each ``(user, item)`` pair occurs at most once.

    Parameters
    ----------
    n_users, n_items, n_ratings : int
        Size of the set. ``n_ratings`` is a target: it is met exactly unless the pairs run out.
    n_factors : int
        Rank of the planted model.
    noise : float
        Standard deviation of the Gaussian noise added to each rating.
    factor_scale, bias_scale, global_mean : float
        Planted ``u, v ~ N(0, factor_scale**2 / sqrt(n_factors))`` per coordinate (so the
        interaction term has standard deviation ``factor_scale**2``), biases
        ``~ N(0, bias_scale**2)``.
    user_exponent, item_exponent : float
        Zipf exponents of activity and popularity.
    min_user_ratings : int
        Every user gets at least this many ratings (ML-1M has 20).
    rating_scale : (low, high), optional
        Round to integers and clip to this range, like star ratings. Off by default, so that
        the noise is exactly Gaussian.
    random_state : int, Generator or None

    Returns
    -------
    ratings : Ratings
        Ids are the integers ``0..n_users-1`` and ``0..n_items-1``; users or items that drew no
        rating are kept as empty rows.
    truth : PlantedModel
    """
    rng = np.random.default_rng(random_state)
    if n_ratings > n_users * n_items:
        raise ValueError(
            f"n_ratings={n_ratings} exceeds the {n_users * n_items} possible (user, item) pairs"
        )
    K = n_factors
    s = factor_scale / K**0.25
    truth = PlantedModel(
        global_mean=float(global_mean),
        user_bias=rng.normal(0.0, bias_scale, n_users),
        item_bias=rng.normal(0.0, bias_scale, n_items),
        user_factors=rng.normal(0.0, s, (n_users, K)),
        item_factors=rng.normal(0.0, s, (n_items, K)),
        noise=float(noise),
    )
    p_user = _zipf_weights(n_users, user_exponent, rng)
    p_item = _zipf_weights(n_items, item_exponent, rng)

    # Activity per user: a floor plus a power-law share of the rest, capped by n_items.
    floor = min(min_user_ratings, n_items)
    extra = max(n_ratings - floor * n_users, 0)
    # No user rates more than half the catalogue (ML-1M's most active user: 2,314 of 3,706).
    cap = max(floor, n_items // 2)
    want = np.minimum(floor + np.floor(p_user * extra).astype(np.int64), cap)
    keys = np.empty(0, dtype=np.int64)
    for _ in range(20):  # draw with replacement, de-duplicate, top up what collisions removed
        have = np.bincount(keys // n_items, minlength=n_users)
        short = np.maximum(want - have, 0)
        if short.sum() <= n_ratings // 1000:
            break
        users = np.repeat(np.arange(n_users), short + (short > 0) * (short // 4 + 1))
        items = rng.choice(n_items, size=users.size, p=p_item)
        keys = np.unique(np.concatenate([keys, users * n_items + items]))
        # drop surplus per user, at random
        keys = keys[rng.permutation(keys.size)]
        rank = _rank_within(keys // n_items)
        keys = np.sort(keys[rank < want[keys // n_items]])
    deficit = n_ratings - keys.size
    if deficit > 0:  # pairs a power law rarely draws: fill uniformly from the unused ones
        extra_keys = rng.choice(n_users * n_items, size=min(4 * deficit + 64, n_users * n_items))
        extra_keys = np.setdiff1d(np.unique(extra_keys), keys)
        keys = np.sort(np.concatenate([keys, rng.permutation(extra_keys)[:deficit]]))
    elif deficit < 0:
        keys = np.sort(rng.choice(keys, size=n_ratings, replace=False))
    u = keys // n_items
    i = keys % n_items
    r = truth.predict_index(u, i) + rng.normal(0.0, noise, u.size)
    if rating_scale is not None:
        r = np.clip(np.round(r), rating_scale[0], rating_scale[1])
    ratings = Ratings._from_indices(u, i, r, np.arange(n_users), np.arange(n_items))
    return ratings, truth


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    w = rng.permutation(w)
    return w / w.sum()


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """Position of each element among the elements of its group, in array order."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank_sorted = np.arange(g.size) - np.repeat(start, np.diff(np.r_[start, g.size]))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return rank


#: Shapes of the MovieLens sets, for synthetic stand-ins of the same size.
MOVIELENS_SHAPES = {
    "100k": dict(n_users=943, n_items=1682, n_ratings=100_000, min_user_ratings=20),
    "1m": dict(n_users=6040, n_items=3706, n_ratings=1_000_209, min_user_ratings=20),
    "10m": dict(n_users=69_878, n_items=10_677, n_ratings=10_000_054, min_user_ratings=20),
}


def make_movielens_like(
    variant: str = "1m", *, random_state: int = 0, **kwargs
) -> tuple[Ratings, PlantedModel]:
    """A synthetic power-law set shaped like MovieLens ``variant`` ("100k", "1m", "10m")."""
    if variant not in MOVIELENS_SHAPES:
        raise ValueError(f"variant must be one of {sorted(MOVIELENS_SHAPES)}, got {variant!r}")
    params = dict(MOVIELENS_SHAPES[variant], n_factors=16, noise=0.9, rating_scale=(1, 5),
                  user_exponent=1.1, item_exponent=0.6)
    params.update(kwargs)
    return make_ratings(random_state=random_state, **params)
