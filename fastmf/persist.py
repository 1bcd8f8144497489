"""Saving and loading fitted models: one ``.npz`` file, no pickle, verified on load.

Layout: numpy arrays (factors, biases, counts, id maps, the rated-items structure, curves)
plus ``metadata``, a JSON document stored as a unicode scalar. The metadata holds the format
name and version, the library version, the hyper-parameters, the fitted scalars and a SHA-256
digest over every array, so a truncated, corrupted or edited file is refused with a clear
message. ``np.load(..., allow_pickle=False)`` means loading never executes code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fastmf._registry import by_class_name
from fastmf._version import __version__

FORMAT = "fastmf-model"
FORMAT_VERSION = 2  # 2: the digest covers the metadata too

# Arrays every model file has; each estimator adds its curves (``_CURVES``).
_ARRAYS = (
    "user_factors", "item_factors", "user_bias", "item_bias", "user_counts", "item_counts",
    "user_ids", "item_ids", "rated_indptr", "rated_indices",
)


class ModelFileError(ValueError):
    """A model file that cannot be loaded: not ours, damaged, edited or too new."""


def _portable_ids(ids: np.ndarray, kind: str) -> np.ndarray:
    if ids.dtype.kind in "iuf":
        return ids
    if ids.dtype.kind in "U":
        return ids
    if ids.dtype == object and all(isinstance(v, str) for v in ids):
        return ids.astype(str)
    raise TypeError(
        f"cannot save {kind} ids of type {ids.dtype}: only numbers and strings are portable"
    )


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """``np.savez`` to ``path`` atomically: readers see the old file or the new one, never
    part of one."""
    return write_atomic(path, lambda f: np.savez(f, **arrays))


def write_atomic(path: str | os.PathLike, write: Any) -> Path:
    """Write a file through ``write(binary_file)`` atomically and durably.

    The data goes to a temporary file of a fresh random name in the target's folder, created
    with ``O_EXCL`` (so a planted file or symlink is never followed or overwritten), is
    fsynced, and then renamed over ``path`` -- the commit point -- and the folder is fsynced.
    Concurrent writers each use their own temporary file: the last rename wins, whole. On any
    failure the temporary file is removed and ``path`` is untouched.
    """
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # durability of the rename; not all systems allow it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(model: Any, path: str | os.PathLike) -> Path:
    """Write a fitted model to ``path`` (``.npz`` is appended by numpy if missing)."""
    model._check_fitted()
    arrays = {
        "user_factors": model.user_factors_, "item_factors": model.item_factors_,
        "user_bias": model.user_bias_, "item_bias": model.item_bias_,
        "user_counts": model.user_counts_, "item_counts": model.item_counts_,
        "user_ids": _portable_ids(model.user_ids_, "user"),
        "item_ids": _portable_ids(model.item_ids_, "item"),
        "rated_indptr": model._rated_indptr, "rated_indices": model._rated_indices,
    }
    required, optional = model._CURVES
    for stem in (*required, *optional):
        curve = getattr(model, stem + "_")
        if curve is not None:
            arrays[stem] = curve
    params = model._portable_params()
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fastmf_version": __version__,
        "estimator": type(model).__name__, "params": params,
        "global_mean": model.global_mean_, "n_iter": model.n_iter_,
        "rating_range": getattr(model, "rating_range_", None),
        "residual_std": getattr(model, "residual_std_", None),
        **model._stored_meta(),
    }
    meta["digest"] = model_digest(meta, arrays)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    return write_npz(path, metadata=np.array(json.dumps(meta)), **arrays)


def model_digest(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array and over the metadata (all fields but the digest itself)."""
    body = {k: v for k, v in meta.items() if k != "digest"}
    h = hashlib.sha256(_digest(arrays).encode())
    h.update(json.dumps(body, sort_keys=True).encode())
    return h.hexdigest()


def load(path: str | os.PathLike) -> Any:
    """Read a model written by ``save`` of any registered estimator.

    What a model file can and cannot do: loading never runs code from the file (no pickle)
    and never trusts it. The digest (SHA-256 over the arrays and the metadata) catches damage
    and accidental edits; it is not a signature, so a deliberately edited file with a
    recomputed digest is possible -- and is then validated like any input: every array is
    checked against the metadata (shapes, dtypes, index ranges, sortedness, finiteness)
    before any kernel sees it. Such a file can make a model predict nonsense; it cannot make
    the loading process read or write out of bounds.

    Raises
    ------
    FileNotFoundError
    ModelFileError (a ValueError)
        Not a fastmf model, truncated or corrupted, edited (digest mismatch), inconsistent
        (naming the array and the check), or written by a newer format version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path}")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise ModelFileError(f"{path}: not a fastmf model file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            if "metadata" not in files:
                raise ModelFileError(f"{path}: not a fastmf model file (no metadata)")
            meta = json.loads(str(npz["metadata"][()]))
            arrays = {name: npz[name] for name in files - {"metadata"}}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ModelFileError(f"{path}: not a fastmf model file or truncated ({exc})") from None
    except ValueError as exc:  # includes object arrays refused by allow_pickle=False
        raise ModelFileError(f"{path}: unreadable model file ({exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: corrupted metadata ({exc})") from None
    except zipfile.error as exc:
        raise ModelFileError(f"{path}: corrupted model file ({exc})") from None
    except MemoryError:
        raise ModelFileError(f"{path}: an array's declared size is absurd") from None
    except Exception as exc:  # noqa: BLE001 - any other failure to parse is a bad file
        raise ModelFileError(f"{path}: unreadable model file ({type(exc).__name__}: {exc})"
                             ) from None

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastmf model file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in model format version {version!r} by fastmf "
            f"{meta.get('fastmf_version')}; this fastmf reads up to version {FORMAT_VERSION} "
            "-- upgrade fastmf"
        )
    cls = by_class_name(meta.get("estimator"))
    if cls is None:
        raise ModelFileError(f"{path}: unknown estimator {meta.get('estimator')!r}")
    missing = [n for n in (*_ARRAYS, *cls._CURVES[0]) if n not in arrays]
    if missing:
        raise ModelFileError(f"{path}: damaged model file, missing arrays {missing}")
    want = _digest(arrays) if version < 2 else model_digest(meta, arrays)
    if meta.get("digest") != want:
        raise ModelFileError(f"{path}: the model file was modified or corrupted (digest mismatch)")
    try:
        model = cls(**meta["params"])
        K = model._stored_width(meta)  # also re-validates the stored parameters
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid stored parameters ({exc})") from None
    dtype = np.dtype(model.dtype)
    _validate(path, meta, arrays, K)
    model._set_fitted(
        user_ids=arrays["user_ids"], item_ids=arrays["item_ids"],
        user_factors=arrays["user_factors"].astype(dtype),
        item_factors=arrays["item_factors"].astype(dtype),
        user_bias=arrays["user_bias"].astype(dtype), item_bias=arrays["item_bias"].astype(dtype),
        user_counts=arrays["user_counts"], item_counts=arrays["item_counts"],
        rated_indptr=arrays["rated_indptr"].astype(np.int64),
        rated_indices=arrays["rated_indices"].astype(np.int32),
        global_mean=float(meta["global_mean"]),
        rating_range=meta.get("rating_range"),
    )
    if meta.get("residual_std") is not None:
        model.residual_std_ = float(meta["residual_std"])
    for stem in (*cls._CURVES[0], *cls._CURVES[1]):
        setattr(model, stem + "_", arrays.get(stem))
    model.n_iter_ = int(meta["n_iter"])
    try:
        model._restore_meta(meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid metadata ({exc!r})") from None
    return model


def _validate(path: Path, meta: dict, arrays: dict, K: int) -> None:
    """Check every array against the metadata before any kernel sees it (ModelFileError)."""

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: inconsistent model file, {what}")

    def real(value, name: str, optional: bool = False) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not np.isfinite(value):
            raise bad(f"{name} is {value!r}, not a finite number")

    real(meta.get("global_mean"), "global_mean")
    if not isinstance(meta.get("n_iter"), int) or isinstance(meta.get("n_iter"), bool) or \
            meta["n_iter"] < 0:
        raise bad(f"n_iter is {meta.get('n_iter')!r}")
    real(meta.get("residual_std"), "residual_std", optional=True)
    if meta.get("residual_std") is not None and meta["residual_std"] <= 0:
        raise bad(f"residual_std is {meta['residual_std']!r}")
    rr = meta.get("rating_range")
    if rr is not None:
        if not isinstance(rr, list) or len(rr) != 2:
            raise bad(f"rating_range is {rr!r}")
        real(rr[0], "rating_range[0]")
        real(rr[1], "rating_range[1]")
        if rr[0] > rr[1]:
            raise bad(f"rating_range {rr!r} is reversed")
    ids = {}
    for side in ("user", "item"):
        a = arrays[f"{side}_ids"]
        if a.ndim != 1 or a.dtype.kind not in "iufU":
            raise bad(f"{side}_ids has dtype {a.dtype} and shape {a.shape}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise bad(f"{side}_ids holds NaN or inf")
        if len(a) > 1 and not np.all(a[1:] > a[:-1]):
            raise bad(f"{side}_ids are not sorted and unique")
        ids[side] = len(a)
    M, N = ids["user"], ids["item"]
    expect = {
        "user_factors": ((M, K), "f"), "item_factors": ((N, K), "f"), "user_bias": ((M,), "f"),
        "item_bias": ((N,), "f"), "user_counts": ((M,), "iu"), "item_counts": ((N,), "iu"),
        "rated_indptr": ((M + 1,), "iu"), "rated_indices": (None, "iu"),
    }
    for name, (shape, kinds) in expect.items():
        a = arrays[name]
        if shape is not None and a.shape != shape:
            raise bad(f"{name} has shape {a.shape}, expected {shape}")
        if a.dtype.kind not in kinds:
            raise bad(f"{name} has dtype {a.dtype}")
        if kinds == "f" and not np.isfinite(a).all():
            raise bad(f"{name} holds NaN or inf")
        if kinds == "iu" and a.size and a.min() < 0:
            raise bad(f"{name} holds negative values")
    indptr, indices = arrays["rated_indptr"], arrays["rated_indices"]
    if indices.ndim != 1:
        raise bad(f"rated_indices has shape {indices.shape}")
    if indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
        raise bad("rated_indptr is not a valid row pointer for rated_indices")
    if indices.size and indices.max() >= N:
        raise bad(f"rated_indices refers to item {int(indices.max())} of {N}")
    for stem, a in arrays.items():
        if stem.endswith("curve") and (a.ndim != 1 or a.dtype.kind != "f"):
            raise bad(f"{stem} has dtype {a.dtype} and shape {a.shape}")


# -- checkpoints -------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "fastmf-checkpoint"


class LocalCheckpoint:
    """A fit's state in one file, written atomically every few iterations (for the driver).

    The file holds the trainer's state arrays, the curves, the best iteration so far and a
    fingerprint of the training data and of the parameters that change the result; it is
    resumed only by a fit of the same data and parameters, which then ends with the same
    factors as an uninterrupted one.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str, params: dict,
                 resume: bool = True) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.params = params
        self.resume = resume

    def load(self, trainer) -> dict | None:
        if not (self.resume and self.path.exists()):
            return None
        meta, arrays = _read_checkpoint(self.path)
        if meta.get("fingerprint") != self.fingerprint:
            raise ValueError(f"{self.path} is a checkpoint of different training data; "
                             "delete it or pass resume=False")
        if meta.get("params") != self.params:
            stored = meta.get("params", {})
            diff = sorted(k for k in set(self.params) | set(stored)
                          if self.params.get(k) != stored.get(k))
            raise ValueError(f"{self.path} was written with other hyper-parameters "
                             f"({', '.join(diff)}); delete it or pass resume=False")
        live = trainer.state()
        for name, array in live.items():
            array[...] = arrays[name]
        best = None
        if meta.get("best") is not None:
            best = (meta["best"]["rmse"], meta["best"]["iteration"],
                    {name: arrays["best_" + name] for name in live})
        return {"curves": {c: list(arrays[c + "_curve"]) for c in trainer.curves},
                "validation": list(arrays["validation_curve"]), "best": best}

    def save(self, trainer, history: dict) -> None:
        arrays = dict(trainer.state())
        for name, values in history["curves"].items():
            arrays[name + "_curve"] = np.asarray(values, dtype=np.float64)
        arrays["validation_curve"] = np.asarray(history["validation"], dtype=np.float64)
        meta = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION,
                "fingerprint": self.fingerprint, "params": self.params, "best": None}
        best = history["best"]
        if best is not None:
            meta["best"] = {"rmse": best[0], "iteration": best[1]}
            arrays.update({"best_" + name: a for name, a in best[2].items()})
        meta["digest"] = _digest(arrays)
        write_npz(self.path, metadata=np.array(json.dumps(meta)), **arrays)


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["metadata"][()]))
            arrays = {k: npz[k] for k in npz.files if k != "metadata"}
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable fastmf checkpoint ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a fastmf checkpoint")
    if meta.get("digest") != _digest(arrays):
        raise ModelFileError(f"{path}: the checkpoint was modified or corrupted")
    return meta, arrays
