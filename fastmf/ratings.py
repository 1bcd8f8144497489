"""Rating data: ids mapped to contiguous indices, stored as triples, compressed on demand."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np

Duplicates = Literal["raise", "mean", "last"]
_DUPLICATES = ("raise", "mean", "last")

#: Column names recognised for users, items and ratings (case-insensitive), in files and
#: DataFrames alike, most specific first.
COLUMN_NAMES = {
    "user": ("user", "user_id", "userid", "uid", "u", "customer", "customer_id"),
    "item": ("item", "item_id", "itemid", "iid", "i", "movie", "movie_id", "movieid",
             "product", "product_id"),
    "rating": ("rating", "ratings", "score", "value", "r", "stars"),
}


def pick_columns(names: list, columns: Any, where: str) -> tuple:
    """The (user, item, rating) columns among ``names``: ``columns`` (names or 0-based
    positions) when given, else by :data:`COLUMN_NAMES`; never a guess."""
    if columns is not None:
        if isinstance(columns, str):
            columns = [c.strip() for c in columns.split(",")]
        if len(columns) != 3:
            raise ValueError("columns must name exactly three columns: user, item, rating")
        picked = []
        for c in columns:
            if c in names:
                picked.append(c)
            elif isinstance(c, (int, np.integer)) and 0 <= c < len(names):
                picked.append(names[int(c)])
            elif isinstance(c, str) and c.isdigit() and int(c) < len(names):
                picked.append(names[int(c)])
            else:
                raise ValueError(f"{where}: no column {c!r}; the columns are {names}")
        return tuple(picked)
    lowered = {str(c).lower(): c for c in names}
    picked, missing = [], []
    for role, aliases in COLUMN_NAMES.items():
        hit = next((lowered[a] for a in aliases if a in lowered), None)
        picked.append(hit)
        if hit is None:
            missing.append(role)
    if missing:
        raise ValueError(
            f"{where}: cannot tell which column holds the {' and '.join(missing)} from the "
            f"names {names}; name them with columns=(user, item, rating) (the CLI's --columns "
            "user,item,rating), by name or 0-based position")
    return tuple(picked)


class Ratings:
    """Observed ratings ``(user, item, rating)`` with arbitrary hashable ids.

    Ids are mapped to contiguous indices ``0..n_users-1`` and ``0..n_items-1`` in sorted id
    order (so ids of one kind must be mutually comparable); the maps are kept
    (:attr:`user_ids`, :attr:`item_ids`) so that a model fitted on these ratings answers in the
    caller's id space. The caller's arrays are never modified.

    Parameters
    ----------
    users, items : array-like of shape (n,)
        Ids of the user and the item of each rating: integers, strings or any sortable
        hashables.
    ratings : array-like of shape (n,)
        Numeric, finite rating values. Explicit zeros are ratings like any other.
    duplicates : {"raise", "mean", "last"}, default="raise"
        What to do when a ``(user, item)`` pair occurs more than once: raise a ``ValueError``
        naming the pair, keep the mean of its ratings, or keep the last one given.
    user_ids, item_ids : array-like, optional
        The full id universe (each id once). Ids listed here but absent from ``users`` /
        ``items`` become users / items with no ratings; ids in the data that are not listed
        raise ``ValueError``. Used to give a train and a test split the same index space.

    Attributes
    ----------
    user_index, item_index : ndarray of int32, shape (nnz,)
    values : ndarray of float64, shape (nnz,)
        The triples, sorted by user then item, duplicates resolved.
    user_ids, item_ids : ndarray
        Sorted unique ids; ``user_ids[k]`` is the caller's id of user index ``k``.
    """

    def __init__(
        self,
        users: Sequence[Hashable] | np.ndarray,
        items: Sequence[Hashable] | np.ndarray,
        ratings: Sequence[float] | np.ndarray,
        *,
        duplicates: Duplicates = "raise",
        user_ids: Sequence[Hashable] | np.ndarray | None = None,
        item_ids: Sequence[Hashable] | np.ndarray | None = None,
    ) -> None:
        if duplicates not in _DUPLICATES:
            raise ValueError(f"duplicates must be one of {_DUPLICATES}, got {duplicates!r}")
        users = _as_id_array(users, "user")
        items = _as_id_array(items, "item")
        values = _as_rating_array(ratings)
        if not (len(users) == len(items) == len(values)):
            raise ValueError(
                "users, items and ratings must have the same length, got "
                f"{len(users)}, {len(items)} and {len(values)}"
            )
        self.user_ids, uidx = _encode(users, user_ids, "user")
        self.item_ids, iidx = _encode(items, item_ids, "item")
        self.user_index, self.item_index, self.values = _canonical(
            uidx, iidx, values, duplicates, self.user_ids, self.item_ids
        )

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def _from_indices(cls, uidx, iidx, values, user_ids, item_ids, duplicates="raise") -> Ratings:
        """Build from already-encoded indices (no copy of the id maps, no re-encoding)."""
        self = cls.__new__(cls)
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.user_index, self.item_index, self.values = _canonical(
            _as_index(uidx), _as_index(iidx),
            _as_rating_array(values), duplicates, user_ids, item_ids,
        )
        return self

    @classmethod
    def from_matrix(cls, X: Any, *, duplicates: Duplicates = "raise") -> Ratings:
        """Ratings from a users x items matrix; ids are the row and column numbers.

        A scipy.sparse matrix or array: every *stored* entry is a rating, explicit zeros
        included (duplicate stored entries follow ``duplicates``; scipy itself would sum them).
        A dense array: every entry is a rating except NaN, which marks a missing one.
        """
        import scipy.sparse as sp  # here, not at the top: `fastmf --version` stays fast

        if sp.issparse(X):
            if X.ndim != 2:
                raise ValueError(f"expected a 2-D sparse matrix, got {X.ndim} dimensions")
            coo = X.tocoo(copy=False)
            rows, cols, vals = coo.row, coo.col, coo.data
        else:
            arr = np.asarray(X)
            if arr.ndim != 2:
                raise ValueError(
                    f"expected a 2-D users x items array, got shape {arr.shape}"
                )
            if arr.dtype.kind not in "biuf":
                raise TypeError(
                    f"a rating matrix must be numeric, got dtype {arr.dtype}"
                )
            present = ~np.isnan(arr.astype(np.float64, copy=False))
            zeros = int(np.count_nonzero(arr == 0))
            if present.all() and arr.size > 1 and zeros >= arr.size / 2:
                warnings.warn(
                    f"dense input: every non-NaN cell is a rating, and {zeros:,} of its "
                    f"{arr.size:,} cells are 0. If 0 means 'not rated', pass NaN there, or a "
                    "scipy.sparse matrix of the ratings", UserWarning, stacklevel=4)
            rows, cols = np.nonzero(present)
            vals = arr[rows, cols]
        M, N = X.shape
        return cls._from_indices(rows, cols, vals, np.arange(M), np.arange(N), duplicates)

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        *,
        user_col: str | None = None,
        item_col: str | None = None,
        rating_col: str | None = None,
        columns: Any = None,
        duplicates: Duplicates = "raise",
    ) -> Ratings:
        """Ratings from a pandas DataFrame with one row per rating.

        The columns are ``columns=(user, item, rating)`` (names or positions), or
        ``user_col``/``item_col``/``rating_col``, or else recognised by name
        (:data:`COLUMN_NAMES`: ``user``, ``userId``, ``item``, ``movieId``, ``rating``, ...).
        Unrecognised names are an error naming them, never a guess.
        """
        names = list(df.columns)
        if columns is None and (user_col or item_col or rating_col):
            columns = (user_col or "user", item_col or "item", rating_col or "rating")
            missing = [c for c in columns if c not in names]
            if missing:
                raise ValueError(f"DataFrame has no column(s) {missing}; its columns are "
                                 f"{names}")
        user_col, item_col, rating_col = pick_columns(names, columns, "DataFrame")
        return cls(
            df[user_col].to_numpy(), df[item_col].to_numpy(), df[rating_col].to_numpy(),
            duplicates=duplicates,
        )

    # -- views ------------------------------------------------------------------------------

    @property
    def n_users(self) -> int:
        """Number of users, including any with no ratings."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items, including any with no ratings."""
        return len(self.item_ids)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_users, n_items)``."""
        return (self.n_users, self.n_items)

    @property
    def nnz(self) -> int:
        """Number of ratings."""
        return len(self.values)

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        return f"Ratings({self.nnz} ratings, {self.n_users} users, {self.n_items} items)"

    def subset(self, mask_or_index: np.ndarray) -> Ratings:
        """The ratings selected by a boolean mask or an index array, in the same id space."""
        sel = np.asarray(mask_or_index)
        return Ratings._from_indices(
            self.user_index[sel], self.item_index[sel], self.values[sel],
            self.user_ids, self.item_ids,
        )

    def to_csr(self, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr int64, indices int32, data dtype)`` of the users x items matrix."""
        return _compress(self.user_index, self.item_index, self.values, self.n_users, dtype)

    def to_csc(self, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr int64, indices int32, data dtype)`` of the items x users matrix, users
        ascending within each item (:func:`csr_to_csc` of :meth:`to_csr`)."""
        return csr_to_csc(self.to_csr(dtype), self.n_items)

    def to_dataframe(self) -> Any:
        """The ratings as a pandas DataFrame with ``user``, ``item``, ``rating`` columns, in
        the caller's ids (what ``fit`` and ``Ratings.from_dataframe`` read back)."""
        import pandas as pd

        return pd.DataFrame({"user": self.user_ids[self.user_index],
                             "item": self.item_ids[self.item_index], "rating": self.values})

    def to_scipy(self) -> Any:
        """The ratings as a scipy.sparse CSR array (users x items), float64."""
        import scipy.sparse as sp

        indptr, indices, data = self.to_csr(np.float64)
        return sp.csr_array((data, indices, indptr), shape=self.shape)


def as_ratings(X: Any, columns: Any = None) -> Ratings:
    """Coerce what ``fit`` accepts to :class:`Ratings`: Ratings, DataFrame (``columns`` as in
    :meth:`Ratings.from_dataframe`), sparse matrix or array."""
    if isinstance(X, Ratings):
        return X
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):  # a pandas DataFrame, duck-typed
        return Ratings.from_dataframe(X, columns=columns)
    import scipy.sparse as sp

    if sp.issparse(X) or isinstance(X, np.ndarray):
        return Ratings.from_matrix(X)
    raise TypeError(
        "expected Ratings, a pandas DataFrame with user/item/rating columns, a scipy.sparse "
        f"matrix or a 2-D numpy array; got {type(X).__name__}"
    )


# -- helpers ----------------------------------------------------------------------------------


def show(value) -> str:
    """``repr`` of a value for a message, without numpy's scalar wrapper (2.5, not
    np.float64(2.5))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _as_id_array(ids, kind: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{kind} ids must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{kind} ids must be integers or labels; row {k} has {show(arr[k])}"
            )
        # beyond 2**53 a float no longer holds every integer (and beyond 2**63 the cast to
        # int64 wraps): -1e19 and 1e19 became one user
        big = np.abs(arr) > 2.0**53
        if big.any():
            k = int(np.flatnonzero(big)[0])
            raise ValueError(f"{kind} id {show(arr[k])} at row {k} is a float beyond 2**53, "
                             "which cannot name an integer exactly; pass integer or string ids")
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "mM":
        nat = np.isnat(arr)
        if nat.any():
            k = int(np.flatnonzero(nat)[0])
            raise ValueError(f"{kind} id missing at row {k}: NaT")
    if arr.dtype.kind == "O":
        for k, v in enumerate(arr):
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                raise ValueError(f"{kind} id missing at row {k}: {show(v)}")
    return arr


def _as_rating_array(ratings) -> np.ndarray:
    arr = np.asarray(ratings)
    if arr.ndim != 1:
        raise ValueError(f"ratings must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        raise TypeError("ratings must be numbers, got booleans")
    if arr.dtype.kind not in "biuf":
        try:
            conv = arr.astype(np.float64)
        except (TypeError, ValueError):
            for k, v in enumerate(arr):
                try:
                    float(v)
                except (TypeError, ValueError):
                    raise ValueError(f"ratings must be numeric; row {k} has {show(v)}") from None
            raise
        arr = conv
    values = arr.astype(np.float64)  # always a copy: the caller's array is never touched
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"ratings must be finite; row {k} has {show(arr[k])} "
            f"({int(bad.sum())} bad row(s) in all)"
        )
    return values


def _as_index(idx) -> np.ndarray:
    """Integer indices as given (no widening copy of an int32 array), others as int64."""
    arr = np.asarray(idx)
    return arr if arr.dtype.kind in "iu" else arr.astype(np.int64)


def _dense_integer_encode(ids: np.ndarray):
    """Sorted unique ids and each id's index, by a presence table over the ids' range --
    no sort, and an int32 index: for integer ids whose range is not much larger than their
    count (user and item numbers usually are), what ``np.unique`` does with several
    ``nnz``-sized int64 temporaries. None when the ids are not such integers."""
    if ids.dtype.kind not in "iu" or len(ids) == 0:
        return None
    lo, hi = int(ids.min()), int(ids.max())
    span = hi - lo + 1
    if span > max(4 * len(ids), 1 << 20):
        return None
    present = np.zeros(span, dtype=bool)
    present[ids - lo] = True
    position = np.cumsum(present, dtype=np.int64) - 1
    uniq = (np.flatnonzero(present) + lo).astype(ids.dtype)
    index = position[ids - lo]
    return uniq, index.astype(np.int32 if len(uniq) < 2**31 else np.int64)


def _encode(ids: np.ndarray, universe, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ids and the index of each given id in them."""
    try:
        if universe is None:
            dense = _dense_integer_encode(ids)
            if dense is not None:
                return dense
            uniq, inverse = np.unique(ids, return_inverse=True)
            return uniq, inverse.astype(np.int64).ravel()
        given = np.asarray(universe)
        uniq = np.unique(given)
        if len(uniq) != len(given):
            raise ValueError(f"{kind}_ids lists an id more than once")
        pos = np.searchsorted(uniq, ids)
    except TypeError as exc:
        raise TypeError(
            f"{kind} ids must be mutually comparable (all numbers or all strings): {exc}"
        ) from None
    pos = np.minimum(pos, max(len(uniq) - 1, 0))
    found = (uniq[pos] == ids) if len(uniq) else np.zeros(len(ids), bool)
    if not np.all(found):
        k = int(np.flatnonzero(~found)[0])
        raise ValueError(f"{kind} id {show(ids[k])} at row {k} is not in {kind}_ids")
    return uniq, pos.astype(np.int64)


def _canonical(uidx, iidx, values, duplicates, user_ids, item_ids):
    """Sort by (user, item), resolve duplicate pairs; int32 indices."""
    M, N = len(user_ids), len(item_ids)
    for idx, n, kind in ((uidx, M, "user"), (iidx, N, "item")):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            k = int(np.flatnonzero((idx < 0) | (idx >= n))[0])
            raise ValueError(f"{kind} index {show(idx[k])} at row {k} is outside 0..{n - 1}")
    if max(M, N) > np.iinfo(np.int32).max:
        raise ValueError(f"at most 2**31-1 users and items are supported, got {M} x {N}")
    # int32 before sorting: the permuted copies are half the size
    uidx, iidx = uidx.astype(np.int32, copy=False), iidx.astype(np.int32, copy=False)
    order = np.lexsort((iidx, uidx))
    u, i, v = uidx[order], iidx[order], values[order]
    del order
    dup = (u[1:] == u[:-1]) & (i[1:] == i[:-1])
    if dup.any():
        if duplicates == "raise":
            k = int(np.flatnonzero(dup)[0])
            raise ValueError(
                f"duplicate rating for (user {show(user_ids[u[k]])}, item {show(item_ids[i[k]])}) "
                f"({int(dup.sum())} duplicate(s) in all); pass duplicates='mean' or 'last'"
            )
        first = np.concatenate([[True], ~dup])
        group = np.cumsum(first) - 1
        if duplicates == "mean":
            # sum of v/n rather than (sum of v)/n: two finite ratings near the float64
            # maximum must not average to inf
            n = np.bincount(group)
            v = np.bincount(group, weights=v / n[group])
        else:  # "last": the latest in the caller's order, which the stable sort preserved
            last = np.concatenate([~dup, [True]])
            v = v[last]
        u, i = u[first], i[first]
    return u.astype(np.int32), i.astype(np.int32), np.ascontiguousarray(v, dtype=np.float64)


def csr_to_csc(csr: tuple[np.ndarray, np.ndarray, np.ndarray], n_cols: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSC arrays ``(indptr int64, indices int32, data)`` of the CSR arrays ``csr`` of a
    matrix with ``n_cols`` columns: a counting sort, linear in ``nnz``, run by numba's
    threads (:func:`fastmf.kernels.sparse.transpose_csr`). Row indices ascend within each
    column.

    It replaced scipy's ``tocsc``, which ran on one thread and, with the dtype conversions
    around it, was a third of a one-iteration ML-10M-shaped fit (issue 17)."""
    import numba  # here, not at the top: the CLI's --help and --version import no numba

    from fastmf.kernels import transpose_csr

    indptr, indices, data = csr
    nnz = len(indices)
    out = (np.empty(n_cols + 1, dtype=np.int64), np.empty(nnz, dtype=np.int32),
           np.empty(nnz, dtype=data.dtype))
    # one count per column and task: no more tasks than the entries can fill
    n_tasks = max(1, min(numba.get_num_threads(), nnz // max(4 * n_cols, 1)))
    transpose_csr(indptr, indices, data, n_tasks, *out)
    return out


def _compress(major, minor, values, n_major, dtype):
    counts = np.bincount(major, minlength=n_major)
    indptr = np.zeros(n_major + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return (
        indptr,
        np.ascontiguousarray(minor, dtype=np.int32),
        np.ascontiguousarray(values, dtype=dtype),
    )


def id_kind(ids: np.ndarray) -> str:
    """'number' or 'text' (or the dtype kind for anything else)."""
    if ids.dtype.kind in "iuf":
        return "number"
    if ids.dtype.kind in "US" or (ids.dtype == object and len(ids) and
                                  all(isinstance(v, str) for v in ids)):
        return "text"
    return ids.dtype.kind


def lookup(ids_sorted: np.ndarray, query, what: str = "") -> np.ndarray:
    """Index of each queried id in the sorted unique ``ids_sorted``; -1 where absent.

    Ids of another kind than the model's (text for a model fitted with numbers, or the
    reverse) raise ``TypeError`` instead of silently matching nothing: ``"1"`` is not user
    ``1`` (issue 13).
    """
    q = np.asarray(query)
    if q.ndim == 0:
        q = q.reshape(1)
    if len(ids_sorted) == 0:
        return np.full(q.shape, -1, dtype=np.int64)
    if q.size:
        have, got = id_kind(ids_sorted), id_kind(q.ravel())
        if {have, got} == {"number", "text"}:
            raise TypeError(
                f"{what + ' ' if what else ''}id {show(q.ravel()[0])} is {got}, but the "
                f"model's {what + ' ' if what else ''}ids are {have}s (e.g. "
                f"{show(ids_sorted[0])}); convert the ids to the model's type")
    try:
        pos = np.searchsorted(ids_sorted, q)
    except TypeError:  # ids of another type than the model's (e.g. str vs int): none match
        return np.full(q.shape, -1, dtype=np.int64)
    pos = np.minimum(pos, len(ids_sorted) - 1)
    hit = ids_sorted[pos] == q
    return np.where(hit, pos, -1).astype(np.int64)


def rank_within_groups(groups: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
    """Position of each element among the elements of its group, ordered by ``keys`` (array
    order when None)."""
    order = np.argsort(groups, kind="stable") if keys is None else np.lexsort((keys, groups))
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    sizes = np.diff(np.r_[starts, g.size])
    rank_sorted = np.arange(g.size) - np.repeat(starts, sizes)
    rank = np.empty(g.size, dtype=np.int64)
    rank[order] = rank_sorted
    return rank
