"""Distributed fit on Dask (``pip install 'fastmf[dask]'``): "stationary users".

Users are split into contiguous blocks. Each block's ratings (a CSR and a local CSC) and its
user factors live on one worker for the whole fit:

* the **user step** is local: the single-machine kernel :func:`~fastmf.kernels.solve_rows`
  runs unchanged on the block's CSR against the broadcast item factors;
* the **item step** has each block compute, for every item it touches, the item's sufficient
  statistics over the block's users (:func:`~fastmf.kernels.normal_equations`, a
  ``(K+2)^2`` matrix per item); these are summed per item block and solved
  (:func:`~fastmf.kernels.solve_normal_equations`), and the new item factors are broadcast.

Per iteration the traffic is ``n_blocks * (items touched) * (K+2)^2`` numbers up and
``n_blocks * n_items * (K+1)`` down: it does not grow with the number of users or ratings.

Ids are encoded against their sorted unique values (gathered on the client, one array per
side) into contiguous indices in sorted id order, the order a single-machine fit uses; each
input partition is cut into its share of every user block, so any partitioning of the input
(a Parquet directory of many files, a multi-partition dask or pandas frame) gives the same
blocks. The default initial factors are drawn per id from a counter-based hash, so the result
does not depend on the number of blocks either. State
is checkpointed every few iterations; the checkpoint also cuts the task graph's lineage, so
it stays bounded however long the fit runs, and a lost worker is recomputed from at most
``checkpoint_every`` iterations of lineage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastmf._driver import Trainer, train
from fastmf._params import positive_int
from fastmf._solver import Config, half_step, row_order
from fastmf._threads import thread_limits
from fastmf.kernels import loss_rows, normal_equations, penalty_rows, solve_normal_equations
from fastmf.model import BiasedALS
from fastmf.persist import write_atomic, write_npz
from fastmf.ratings import Ratings, csr_to_csc

__all__ = ["fit", "seeded_factors"]


# -- initial factors seeded by id ----------------------------------------------------------------

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        z = x
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _id_hash(ids: np.ndarray) -> np.ndarray:
    """A stable 64-bit hash of each id (numbers by value, strings by their UTF-8 bytes)."""
    import pandas as pd

    arr = np.asarray(ids)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64).view(np.uint64)
    return pd.util.hash_array(arr.astype(object), categorize=False)


def seeded_factors(ids: np.ndarray, n_factors: int, seed: int, dtype: Any) -> np.ndarray:
    """``N(0, 1) / K`` factors for each id, a pure function of ``(seed, id)``.

    Whichever block, worker or order an id is processed in, it gets the same initial row.
    """
    K = n_factors
    h = _splitmix64(_id_hash(ids) ^ _splitmix64(np.full(1, seed, dtype=np.uint64)))
    counters = h[:, None] + np.arange(K, dtype=np.uint64)[None, :] * np.uint64(2)
    u1 = (_splitmix64(counters) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    u2 = (_splitmix64(counters + np.uint64(1)) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    normal = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller
    return (normal / K).astype(dtype)


# -- what lives on the workers -------------------------------------------------------------------


@dataclass
class _Block:
    """One block of users: their ratings in both orientations (immutable for the fit)."""

    lo: int
    hi: int
    user_ids: np.ndarray
    csr: tuple
    csc: tuple  # items x local users
    user_order: np.ndarray
    touched: np.ndarray  # item indices with at least one rating in this block


@dataclass
class _Config:
    als: Config
    mu: float
    threads: int

    @property
    def K(self) -> int:
        return self.als.n_factors

    @property
    def dtype(self) -> str:
        return self.als.dtype.name

    def scalars(self):
        mu, reg, reg_bias, _, _, _ = self.als.scalars(self.mu)
        return mu, reg, reg_bias


def _split_partition(part, users: np.ndarray, items: np.ndarray, bounds: np.ndarray) -> list:
    """One input partition, encoded (sorted-id indices) and cut by user block:
    ``[(user index, item index, rating) for each block]``."""
    u = np.searchsorted(users, part["_uid"].to_numpy()).astype(np.int64)
    i = np.searchsorted(items, part["_iid"].to_numpy()).astype(np.int64)
    r = part["_r"].to_numpy(np.float64)
    block = np.searchsorted(bounds, u, side="right") - 1
    return [(u[block == k], i[block == k], r[block == k]) for k in range(len(bounds) - 1)]


def _build_block(pieces: list, lo: int, hi: int, user_ids: np.ndarray, n_items: int,
                 dtype: str) -> _Block:
    """The block's CSR/CSC from its share of every partition."""
    u = np.concatenate([p[0] for p in pieces]) - lo
    i = np.concatenate([p[1] for p in pieces])
    r = np.concatenate([p[2] for p in pieces])
    n_users = hi - lo
    local = Ratings._from_indices(u, i, r, np.arange(n_users), np.arange(n_items))
    csr = local.to_csr(dtype)
    csc = csr_to_csc(csr, n_items)
    touched = np.flatnonzero(np.diff(csc[0]) > 0)
    return _Block(lo, hi, np.asarray(user_ids), csr, csc, row_order(np.diff(csr[0])), touched)


def _init_state(block: _Block, K: int, seed: int, dtype: str, given: np.ndarray | None):
    U = given if given is not None else seeded_factors(block.user_ids, K, seed, dtype)
    return np.ascontiguousarray(U, dtype=dtype), np.zeros(block.hi - block.lo, dtype=dtype)


def _user_step(block: _Block, state, item_side, cfg: _Config):
    """The user half-step on one block: the single-machine kernel, unchanged."""
    V, c = item_side
    U, b = state[0].copy(), state[1].copy()  # never mutate a task's input (lineage replay)
    with thread_limits(cfg.threads) as n:
        failed = half_step(cfg.als, block.csr, block.user_order, V, c, cfg.mu, n, U, b)
    if failed or not (np.isfinite(U).all() and np.isfinite(b).all()):
        raise FloatingPointError(
            f"user block {block.lo}..{block.hi}: {failed} system(s) not positive definite or "
            "non-finite factors; increase reg"
        )
    return U, b


def _packed(K: int) -> int:
    """Numbers per item statistics block: the lower triangle of ``(K+2)^2``, which is
    symmetric -- half the bytes of the full block (issue 17)."""
    return (K + 2) * (K + 3) // 2


def _item_stats(block: _Block, state, lo: int, hi: int, cfg: _Config):
    """Statistics of items ``lo..hi-1`` that this block touches: (item indices, stats)."""
    items = block.touched[(block.touched >= lo) & (block.touched < hi)]
    U, b = state
    mu, _, _ = cfg.scalars()
    out = np.empty((len(items), _packed(cfg.K)), dtype=cfg.dtype)
    with thread_limits(cfg.threads) as n:
        normal_equations(*block.csc, U, b, mu, items.astype(np.int64), n, out)
    return items, out


def _item_solve(parts, lo: int, hi: int, counts, V_old, c_old, cfg: _Config):
    """Sum the blocks' statistics of items ``lo..hi-1`` and solve them."""
    stats = np.zeros((hi - lo, _packed(cfg.K)), dtype=cfg.dtype)
    for items, s in parts:  # in block order: the sum does not depend on arrival order
        stats[items - lo] += s
    V = V_old.copy()
    c = c_old.copy()
    _, reg, reg_bias = cfg.scalars()
    with thread_limits(cfg.threads) as n:
        failed = solve_normal_equations(stats, counts, reg, reg_bias, cfg.als.count_reg,
                                        cfg.als.count_bias, cfg.als.joint, n, V, c)
    if failed or not (np.isfinite(V).all() and np.isfinite(c).all()):
        raise FloatingPointError(f"items {lo}..{hi}: {failed} system(s) not positive definite")
    return V, c


def _concat(parts):
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _block_loss(block: _Block, state, item_side, cfg: _Config, penalty: bool = True) -> float:
    """The block's share of J (with ``penalty=False``: its squared residuals alone)."""
    V, c = item_side
    mu, reg, reg_bias = cfg.scalars()
    if not penalty:
        reg, reg_bias = reg.dtype.type(0), reg_bias.dtype.type(0)
    with thread_limits(cfg.threads):
        return float(loss_rows(*block.csr, state[0], state[1], V, c, mu, reg, reg_bias,
                               cfg.als.count_reg, cfg.als.count_bias))


def _save_state(state, path: str) -> str:
    write_npz(path, U=state[0], b=state[1])
    return path


def _load_state(path: str, iteration: int):
    """Read a block's checkpointed factors (``iteration`` only keys the task)."""
    with np.load(path) as z:
        return z["U"], z["b"]


def _save_block(block: _Block, path: str) -> str:
    write_npz(path, bounds=np.array([block.lo, block.hi]), user_ids=block.user_ids,
              csr0=block.csr[0], csr1=block.csr[1], csr2=block.csr[2], csc0=block.csc[0],
              csc1=block.csc[1], csc2=block.csc[2], user_order=block.user_order,
              touched=block.touched)
    return path


def _load_block(path: str) -> _Block:
    """A block from storage: a task with no lineage behind it, cheap to recompute anywhere."""
    with np.load(path, allow_pickle=False) as z:
        lo, hi = (int(v) for v in z["bounds"])
        return _Block(lo, hi, z["user_ids"], (z["csr0"], z["csr1"], z["csr2"]),
                      (z["csc0"], z["csc1"], z["csc2"]), z["user_order"], z["touched"])


def _load_items(path: str, iteration: int):
    with np.load(path) as z:
        return z["V"], z["c"]


def _identity(x):
    return x


def _setup_worker() -> None:
    """Numba on a worker: a threading layer that tolerates concurrent use.

    The thread count is set per task (``thread_limits``, i.e. ``numba.set_num_threads``):
    ``NUMBA_NUM_THREADS`` cannot change once numba has started its pool, so it belongs in
    the worker's environment at launch, never here.
    """
    import numba

    if numba.config.THREADING_LAYER == "default":
        # workqueue aborts under concurrent use; omp (or tbb) does not
        try:
            from numba.np.ufunc import omppool  # noqa: F401
            numba.config.THREADING_LAYER = "omp"
        except ImportError:
            pass


# -- the driver ----------------------------------------------------------------------------------


def _as_dask_frame(data: Any, user_col: str, item_col: str, rating_col: str, npartitions: int):
    import dask.dataframe as dd
    import pandas as pd

    if isinstance(data, (str, os.PathLike)):
        frame = dd.read_parquet(str(data))  # lazy: the column check below comes first
    elif isinstance(data, Ratings):
        frame = dd.from_pandas(pd.DataFrame({
            user_col: data.user_ids[data.user_index], item_col: data.item_ids[data.item_index],
            rating_col: data.values}), npartitions=npartitions)
    elif isinstance(data, pd.DataFrame):
        frame = dd.from_pandas(data, npartitions=npartitions)
    elif isinstance(data, dd.DataFrame):
        frame = data
    else:
        raise TypeError("data must be a Parquet path, a dask or pandas DataFrame, or Ratings; "
                        f"got {type(data).__name__}")
    missing = [col for col in (user_col, item_col, rating_col) if col not in frame.columns]
    if missing:
        raise ValueError(f"no column(s) {missing}; the columns are {list(frame.columns)}")
    return frame[[user_col, item_col, rating_col]].rename(
        columns={user_col: "_uid", item_col: "_iid", rating_col: "_r"})


def fit(
    client: Any,
    data: Any,
    model: BiasedALS | None = None,
    *,
    n_blocks: int | None = None,
    item_blocks: int = 1,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str = "rating",
    init_user_factors: np.ndarray | None = None,
    init_item_factors: np.ndarray | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 5,
    resume: bool = True,
    threads_per_worker: int | None = None,
    callback: Any = None,
) -> BiasedALS:
    """Fit ``model`` (a :class:`~fastmf.BiasedALS`, default parameters if None) on a cluster.

    Parameters
    ----------
    client : dask.distributed.Client
    data : Parquet path (file or directory), dask or pandas DataFrame, or Ratings
        One row per rating, columns ``user_col``, ``item_col``, ``rating_col``.
    n_blocks : int, optional
        User blocks (default: one per worker).
    item_blocks : int, default=1
        Item blocks: the item step sums and solves each in its own task.
    init_user_factors, init_item_factors : ndarray, optional
        As in ``BiasedALS.fit``: rows in sorted id order. Default: :func:`seeded_factors`
        with ``model.random_state`` (0 if None).
    checkpoint_dir : path-like, optional
        A directory every worker can read and write. The state is saved there every
        ``checkpoint_every`` iterations, which also bounds the lineage. Default: a temporary
        directory, removed when the fit ends (it holds a copy of the data).
    resume : bool, default=True
        Continue from a checkpoint in ``checkpoint_dir`` written for the same data and
        parameters.
    threads_per_worker : int, optional
        numba threads per task (default: the worker's thread count).
    callback : callable, optional
        ``callback(iteration, info)`` after each iteration, ``info`` a dict with the loss.

    Returns
    -------
    BiasedALS
        An ordinary fitted model (predict, recommend, save work as on one machine), with
        ``distributed_info_`` holding per-iteration seconds and bytes moved.
    """
    import dask

    model = BiasedALS() if model is None else model
    if not isinstance(model, BiasedALS):
        raise TypeError(f"distributed.fit fits a BiasedALS, got {type(model).__name__} "
                        "(BayesianALS runs on one machine only)")
    if model.solver != "cholesky":
        raise ValueError("the distributed fit solves items from summed normal equations: "
                         "use solver='cholesky'")
    config = model._config()
    checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
    if n_blocks is not None:
        n_blocks = positive_int(n_blocks, "n_blocks")
    item_blocks = positive_int(item_blocks, "item_blocks")
    K = config.n_factors
    dtype = config.dtype.name
    workers = client.scheduler_info()["workers"]
    n_workers = max(len(workers), 1)
    # a worker restarting (or not yet registered) can leave the list empty for a moment
    threads = threads_per_worker or max(1, min((w.get("nthreads", 1) for w in workers.values()),
                                               default=1))
    n_blocks = n_blocks or n_workers
    client.run(_setup_worker)

    # -- ingest and encode (distributed) --
    frame = _as_dask_frame(data, user_col, item_col, rating_col, npartitions=n_blocks)
    bad = int((~np.isfinite(frame["_r"].astype("float64"))).sum().compute())
    if bad:
        raise ValueError(f"{bad} rating(s) are not finite numbers")
    missing = client.compute([frame["_uid"].isna().sum(), frame["_iid"].isna().sum()])
    for side, count in zip(("user", "item"), client.gather(missing)):
        if int(count):
            raise ValueError(f"{int(count)} rating(s) have a missing {side} id (NaN or None)")
    # Ids are encoded against their sorted unique values, gathered on the client (one array
    # per side, the size of the id space): no distributed sort, so nothing depends on how
    # the input is partitioned -- files, dask partitions or pandas chunks alike.
    items = np.sort(frame["_iid"].unique().compute().to_numpy())
    users = np.sort(frame["_uid"].unique().compute().to_numpy())
    M, N = len(users), len(items)
    if M == 0:
        raise ValueError("cannot fit on an empty rating set (0 ratings)")
    bounds = np.linspace(0, M, min(n_blocks, M) + 1).round().astype(np.int64)
    n_blocks = len(bounds) - 1
    ids_f = client.scatter([users, items], broadcast=True)
    # Each partition is encoded and cut into its share of every user block; each block then
    # gathers its shares: the data moves once, with no shuffle.
    pieces = [dask.delayed(_split_partition)(part, ids_f[0], ids_f[1], bounds)
              for part in frame.to_delayed()]
    built = client.compute([
        dask.delayed(_build_block)([piece[k] for piece in pieces], int(bounds[k]),
                                   int(bounds[k + 1]), users[bounds[k]:bounds[k + 1]], N,
                                   dtype)
        for k in range(n_blocks)
    ])
    totals = client.compute(dask.delayed(lambda *t: t)(
        frame["_r"].sum(), frame["_r"].count(), frame["_r"].min(), frame["_r"].max()))
    rating_sum, nnz, r_min, r_max = totals.result()
    mu = float(rating_sum) / int(nnz)
    ckdir = Path(checkpoint_dir) if checkpoint_dir else Path(tempfile.mkdtemp(prefix="fastmf-"))
    ckdir.mkdir(parents=True, exist_ok=True)
    # The blocks go to storage once and are read back from there: a lost worker then costs a
    # file read, not a replay of the ingestion graph (whose shuffles dask has forgotten).
    block_paths = client.gather([
        client.submit(_save_block, built[k], str(ckdir / f"block-{k:05d}.npz"), pure=False)
        for k in range(n_blocks)])
    del built
    statics = [client.submit(_load_block, p, pure=False) for p in block_paths]
    # item counts: each block's local CSC knows its share (N numbers per block)
    item_counts = np.sum(client.gather([client.submit(lambda b: np.diff(b.csc[0]), s)
                                        for s in statics]), axis=0).astype(np.int64)

    cfg = _Config(als=config, mu=mu, threads=threads)
    seed = model.random_state if isinstance(model.random_state, int) else 0
    fingerprint = hashlib.sha256(json.dumps(
        [int(nnz), float(rating_sum), M, N, items[:1000].tolist() if items.dtype.kind in "iuf"
         else list(map(str, items[:1000]))]).encode()).hexdigest()
    store = _DaskCheckpoint(client, ckdir, fingerprint, model._resume_params(), bounds, resume)

    item_bounds = np.linspace(0, N, min(item_blocks, N) + 1).round().astype(np.int64)
    trainer = _DaskTrainer(client, statics, cfg, item_bounds, item_counts, model.n_iter)
    if not store.exists():
        V = (seeded_factors(items, K, seed + 1, dtype) if init_item_factors is None
             else np.ascontiguousarray(init_item_factors, dtype=dtype))
        if V.shape != (N, K):
            raise ValueError(f"init_item_factors must have shape ({N}, {K}), got {V.shape}")
        V[item_counts == 0] = 0
        states = []
        for k in range(n_blocks):
            given = None
            if init_user_factors is not None:
                F = np.asarray(init_user_factors)
                if F.shape != (M, K):
                    raise ValueError(f"init_user_factors must have shape ({M}, {K}), "
                                     f"got {F.shape}")
                given = F[bounds[k]:bounds[k + 1]]
            states.append(client.submit(_init_state, statics[k], K, seed, dtype, given))
        trainer.set_state(states, V, np.zeros(N, dtype=dtype))

    touched = client.gather([client.submit(lambda b: b.touched, s) for s in statics])
    fitted = BiasedALS(**model.get_params())
    fitted.distributed_info_ = {
        "n_blocks": n_blocks, "item_blocks": len(item_bounds) - 1, "nnz": int(nnz),
        "seconds_per_iteration": trainer.seconds,
        "bytes_up_per_iteration": int(sum(len(t) for t in touched) * _packed(K)
                                      * np.dtype(dtype).itemsize),
        "bytes_down_per_iteration": int(n_blocks * N * (K + 1) * np.dtype(dtype).itemsize),
        "checkpoint_dir": str(ckdir),
    }
    user_callback = None
    if callback is not None:
        def user_callback(it: int, m: BiasedALS) -> Any:
            return callback(it, {"loss": float(m.loss_curve_[-1]),
                                 "seconds": trainer.seconds[-1]})

    train(fitted, trainer, n_jobs=model.n_jobs, verbose=model.verbose, callback=user_callback,
          checkpoint=store, checkpoint_every=checkpoint_every)

    # -- an ordinary model on the client --
    final = client.gather(trainer.states)
    blocks = client.gather(statics)
    user_counts = np.concatenate([np.diff(blk.csr[0]) for blk in blocks])
    fitted._set_fitted(
        user_ids=np.concatenate([blk.user_ids for blk in blocks]), item_ids=items,
        user_factors=np.concatenate([s[0] for s in final]),
        item_factors=trainer.V, user_bias=np.concatenate([s[1] for s in final]),
        item_bias=trainer.c, user_counts=user_counts, item_counts=item_counts,
        rated_indptr=np.concatenate([[0], np.cumsum(user_counts)]).astype(np.int64),
        rated_indices=np.concatenate([blk.csr[1] for blk in blocks]).astype(np.int32),
        global_mean=mu, rating_range=(r_min, r_max),
    )
    sse = client.gather([client.submit(_block_loss, statics[k], trainer.states[k],
                                       trainer.items_f, cfg, False)
                         for k in range(n_blocks)])
    fitted.residual_std_ = float(np.sqrt(sum(sse) / int(nnz)))
    if checkpoint_dir is None:  # ours, and a full copy of the data: do not leave it behind
        import shutil

        shutil.rmtree(ckdir, ignore_errors=True)
        fitted.distributed_info_["checkpoint_dir"] = None
    return fitted


class _DaskTrainer(Trainer):
    """The distributed iteration for the driver: user blocks step locally, items are solved
    from the blocks' summed statistics; the state is the blocks' futures and ``V, c``."""

    curves = ("loss",)

    def __init__(self, client, statics, cfg: _Config, item_bounds, item_counts, total) -> None:
        self.client, self.statics, self.cfg = client, statics, cfg
        self.item_bounds, self.item_counts = item_bounds, item_counts
        self.total = total
        self.seconds: list[float] = []

    def set_state(self, states, V, c, items_f=None) -> None:
        """Swap in a new state at once (a Ctrl-C between kernels leaves the old one)."""
        self.states, self.V, self.c = states, V, c
        # The item side travels as a task result (recomputable), not as scattered data.
        self.items_f = items_f or self.client.submit(_identity, (V, c), pure=False)

    def step(self, it: int, n_threads: int) -> dict[str, float]:
        t0 = time.perf_counter()
        client, cfg, statics = self.client, self.cfg, self.statics
        states = [client.submit(_user_step, statics[k], self.states[k], self.items_f, cfg)
                  for k in range(len(statics))]
        solved = []
        bounds = self.item_bounds
        for a, b_ in zip(bounds[:-1], bounds[1:]):
            parts_ab = [client.submit(_item_stats, statics[k], states[k], int(a), int(b_), cfg)
                        for k in range(len(statics))]
            solved.append(client.submit(
                _item_solve, parts_ab, int(a), int(b_), self.item_counts[a:b_], self.V[a:b_],
                self.c[a:b_], cfg))
        items_f = client.submit(_concat, solved)
        V, c = items_f.result()
        block_losses = client.gather([client.submit(_block_loss, statics[k], states[k], items_f,
                                                    cfg) for k in range(len(statics))])
        _, reg, reg_bias = cfg.scalars()
        loss = float(sum(block_losses)) + float(penalty_rows(
            self.item_counts, V, c, reg, reg_bias, cfg.als.count_reg, cfg.als.count_bias))
        self.set_state(states, V, c, items_f)
        self.seconds.append(time.perf_counter() - t0)
        return {"loss": loss}


class _DaskCheckpoint:
    """The distributed fit's checkpoint: one file per user block and one for the items, each
    named by its iteration, committed by replacing ``state.json`` (the commit point). Files of
    the previous commit are removed only after it, so a crash at any point resumes from a
    complete state. Saving also rebases the state on the files, which bounds the lineage."""

    def __init__(self, client, ckdir: Path, fingerprint: str, params: dict, bounds,
                 resume: bool) -> None:
        self.client, self.ckdir = client, ckdir
        self.meta_path = ckdir / "state.json"
        self.identity = {"fingerprint": fingerprint, "params": params,
                         "bounds": np.asarray(bounds).tolist()}
        self.resume = resume

    def exists(self) -> bool:
        return self.resume and self.meta_path.exists()

    def load(self, trainer: _DaskTrainer) -> dict | None:
        if not self.exists():
            return None
        meta = json.loads(self.meta_path.read_text())
        if any(meta.get(k) != v for k, v in self.identity.items()):
            raise ValueError(f"{self.ckdir} holds a checkpoint of other data, parameters or "
                             "blocks; delete it or pass resume=False")
        it = meta["iteration"]
        names = meta.get("files") or self._names(it, len(trainer.statics), legacy=True)
        V, c = _load_items(str(self.ckdir / names["items"]), it)
        states = [self.client.submit(_load_state, str(self.ckdir / f), it, pure=False)
                  for f in names["users"]]
        trainer.set_state(states, V, c)
        return {"curves": {"loss": list(meta["losses"])}, "validation": [], "best": None}

    def save(self, trainer: _DaskTrainer, history: dict) -> None:
        it = len(history["curves"]["loss"])
        names = self._names(it, len(trainer.statics))
        paths = [self.client.submit(_save_state, trainer.states[k],
                                    str(self.ckdir / names["users"][k]), pure=False)
                 for k in range(len(trainer.statics))]
        paths = self.client.gather(paths)
        write_npz(self.ckdir / names["items"], V=trainer.V, c=trainer.c)
        previous = (json.loads(self.meta_path.read_text()).get("files")
                    if self.meta_path.exists() else None)
        state = json.dumps({"iteration": it, "losses": history["curves"]["loss"],
                            "files": names, **self.identity}).encode()
        write_atomic(self.meta_path, lambda f: f.write(state))  # the commit point
        if previous and previous != names:
            for f in [previous["items"], *previous["users"]]:
                (self.ckdir / f).unlink(missing_ok=True)
        # Rebase: from here on the block states come from the files, not from the chain of
        # every earlier iteration, so the graph (and any recomputation) stays bounded.
        states = [self.client.submit(_load_state, p, it, pure=False) for p in paths]
        items_f = self.client.submit(_load_items, str(self.ckdir / names["items"]), it,
                                     pure=False)
        trainer.set_state(states, trainer.V, trainer.c, items_f)

    @staticmethod
    def _names(it: int, n_blocks: int, legacy: bool = False) -> dict:
        if legacy:  # written before checkpoints named their files by iteration
            return {"items": "items.npz", "users": [f"users-{k:05d}.npz" for k in
                                                    range(n_blocks)]}
        return {"items": f"items-{it:06d}.npz",
                "users": [f"users-{k:05d}-{it:06d}.npz" for k in range(n_blocks)]}
