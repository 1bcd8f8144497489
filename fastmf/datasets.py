"""Data sets: a deterministic synthetic generator with a planted model, and MovieLens."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastmf.ratings import Ratings, rank_within_groups


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
        rank = rank_within_groups(keys // n_items)
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


# -- MovieLens ---------------------------------------------------------------------------------

_ML_BASE = "https://files.grouplens.org/datasets/movielens/"
#: variant -> (archive name, md5 of the archive or None: then GroupLens' published .md5 is
#: fetched and checked, ratings file inside the archive, reader format)
MOVIELENS = {
    "100k": ("ml-100k.zip", "0e33842e24a9c977be4e0107933c0723", "ml-100k/u.data", "ml-100k"),
    "1m": ("ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", "ml-1m/ratings.dat", "ml-dat"),
    "10m": ("ml-10m.zip", "ce571fd55effeba0271552578f2648bd", "ml-10M100K/ratings.dat", "ml-dat"),
    "20m": ("ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3", "ml-20m/ratings.csv", "ml-csv"),
    "25m": ("ml-25m.zip", "6b51fb2759a8657d3bfcbfc42b592ada", "ml-25m/ratings.csv", "ml-csv"),
    "32m": ("ml-32m.zip", None, "ml-32m/ratings.csv", "ml-csv"),
    "latest-small": ("ml-latest-small.zip", None, "ml-latest-small/ratings.csv", "ml-csv"),
}


def default_cache_dir() -> Path:
    """``$FASTMF_CACHE``, else ``$XDG_CACHE_HOME/fastmf``, else ``~/.cache/fastmf``."""
    if os.environ.get("FASTMF_CACHE"):
        return Path(os.environ["FASTMF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fastmf"


def detect_movielens_variant(path: str | os.PathLike) -> str:
    """The MovieLens variant of a folder (or ratings file) from the files in it: ``u.data``
    is 100k, ``ratings.dat`` 1m or 10m (by size), ``ratings.csv`` latest-small or a large
    set (by size). ``ValueError`` when it is none of these."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    names = {f.name for f in folder.iterdir()} if folder.is_dir() else set()
    if "u.data" in names:
        return "100k"
    if "ratings.dat" in names:
        return "1m" if (folder / "ratings.dat").stat().st_size < 100e6 else "10m"
    if "ratings.csv" in names:
        size = (folder / "ratings.csv").stat().st_size
        return "latest-small" if size < 10e6 else ("20m" if size < 600e6 else "25m")
    raise ValueError(f"{folder}: no MovieLens ratings file (u.data, ratings.dat, ratings.csv)"
                     "; pass the variant explicitly")


def load_movielens(
    variant: str = "100k",
    path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Ratings:
    """MovieLens ratings as :class:`~fastmf.Ratings` (ids are the original user/movie ids).

    Parameters
    ----------
    variant : {"100k", "1m", "10m", "20m", "25m", "32m", "latest-small"}
    path : path-like, optional
        The ratings file itself, the folder that holds it (e.g. an extracted ``ml-1m/``), or
        the folder above that. Without it the cache directory is searched.
    download : bool, default=False
        When the data is not found, download the archive from grouplens.org into the cache
        directory, verify its MD5 checksum, and extract it. Never done implicitly.
    cache_dir : path-like, optional
        Default :func:`default_cache_dir`.

    Notes
    -----
    GroupLens licenses the data for research use only and forbids redistribution; cite
    F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and Context",
    ACM TiiS 5(4), 2015.
    """
    from fastmf.io import read_ratings

    if variant not in MOVIELENS:
        raise ValueError(f"variant must be one of {sorted(MOVIELENS)}, got {variant!r}")
    archive, md5, member, fmt = MOVIELENS[variant]
    candidates = []
    if path is not None:
        p = Path(path)
        candidates = [p, p / Path(member).name, p / member]
        if not p.exists():
            raise FileNotFoundError(f"no such file or directory: {p}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    candidates.append(cache / member)
    for c in candidates:
        if c.is_file():
            return read_ratings(c, format=fmt)
        if c.is_dir() and (c / Path(member).name).is_file():
            return read_ratings(c / Path(member).name, format=fmt)
    if path is not None:
        raise FileNotFoundError(
            f"no MovieLens {variant} ratings file ({Path(member).name}) at {path}"
        )
    if not download:
        raise FileNotFoundError(
            f"MovieLens {variant} not found in {cache}; pass path=... or download=True"
        )
    _download(_ML_BASE + archive, cache / archive, md5)
    with zipfile.ZipFile(cache / archive) as zf:
        zf.extract(member, cache)
    return read_ratings(cache / member, format=fmt)


def load_movielens_titles(path: str | os.PathLike) -> dict[Any, str]:
    """Movie titles by movie id, from ``u.item`` (100k), ``movies.dat`` or ``movies.csv``."""
    import pandas as pd

    p = Path(path)
    names = ["u.item", "movies.dat", "movies.csv"]
    files = [p] if p.is_file() else [p / n for n in names if (p / n).is_file()]
    if not files:
        raise FileNotFoundError(f"no MovieLens movie list ({', '.join(names)}) at {p}")
    f = files[0]
    if f.name == "movies.csv" or f.suffix == ".csv":
        frame = pd.read_csv(f)
        return dict(zip(frame["movieId"], frame["title"]))
    sep = "|" if f.name == "u.item" else "::"
    rows = f.read_text(encoding="latin-1").splitlines()
    out = {}
    for line in rows:
        parts = line.split(sep)
        if len(parts) >= 2 and parts[0].strip().isdigit():
            out[int(parts[0])] = parts[1]
    return out


def _download(url: str, dest: Path, md5: str | None) -> None:
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    if md5 is None:  # GroupLens publishes one next to each archive
        with urllib.request.urlopen(url + ".md5", timeout=60) as resp:
            md5 = resp.read().decode().split()[0].strip().lower()
    tmp = dest.with_suffix(dest.suffix + ".part")
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
        while chunk := resp.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != md5:
        tmp.unlink(missing_ok=True)
        raise OSError(f"checksum mismatch for {url}: got md5 {digest.hexdigest()}, want {md5}")
    tmp.replace(dest)
