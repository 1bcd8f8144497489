"""Saving and loading fitted models: one ``.npz`` file, no pickle, verified on load.

Layout: numpy arrays (factors, biases, counts, id maps, the rated-items structure, curves)
plus ``metadata``, a JSON document stored as a unicode scalar. The metadata holds the format
name and version, the library version, the hyper-parameters, the fitted scalars and a SHA-256
digest over every array, so a truncated, corrupted or edited file is refused with a clear
message. ``np.load(..., allow_pickle=False)`` means loading never executes code.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "fastmf-model"
FORMAT_VERSION = 1

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
    """``np.savez`` to a temporary name, then rename: readers never see a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
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
    from fastmf import __version__

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
        **model._stored_meta(), "digest": _digest(arrays),
    }
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    return write_npz(path, metadata=np.array(json.dumps(meta)), **arrays)


def load(path: str | os.PathLike) -> Any:
    """Read a model written by ``save`` of :class:`BiasedALS` or :class:`BayesianALS`.

    Raises
    ------
    FileNotFoundError
    ModelFileError (a ValueError)
        Not a fastmf model, truncated or corrupted, edited (digest mismatch), or written by a
        newer format version.
    """
    from fastmf.bayes import BayesianALS
    from fastmf.model import BiasedALS

    estimators = {cls.__name__: cls for cls in (BiasedALS, BayesianALS)}
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

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastmf model file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in model format version {version!r} by fastmf "
            f"{meta.get('fastmf_version')}; this fastmf reads up to version {FORMAT_VERSION} "
            "-- upgrade fastmf"
        )
    cls = estimators.get(meta.get("estimator"))
    if cls is None:
        raise ModelFileError(f"{path}: unknown estimator {meta.get('estimator')!r}")
    missing = [n for n in (*_ARRAYS, *cls._CURVES[0]) if n not in arrays]
    if missing:
        raise ModelFileError(f"{path}: damaged model file, missing arrays {missing}")
    if meta.get("digest") != _digest(arrays):
        raise ModelFileError(f"{path}: the model file was modified or corrupted (digest mismatch)")

    model = cls(**meta["params"])
    K = model._stored_width(meta)  # also re-validates the stored parameters
    dtype = np.dtype(model.dtype)
    M, N = len(arrays["user_ids"]), len(arrays["item_ids"])
    expect = {
        "user_factors": (M, K), "item_factors": (N, K), "user_bias": (M,), "item_bias": (N,),
        "user_counts": (M,), "item_counts": (N,), "rated_indptr": (M + 1,),
    }
    for name, shape in expect.items():
        if arrays[name].shape != shape:
            raise ModelFileError(
                f"{path}: inconsistent model file, {name} has shape {arrays[name].shape}, "
                f"expected {shape}"
            )
    model.user_factors_ = arrays["user_factors"].astype(dtype)
    model.item_factors_ = arrays["item_factors"].astype(dtype)
    model.user_bias_ = arrays["user_bias"].astype(dtype)
    model.item_bias_ = arrays["item_bias"].astype(dtype)
    model.user_counts_ = arrays["user_counts"]
    model.item_counts_ = arrays["item_counts"]
    model.user_ids_ = arrays["user_ids"]
    model.item_ids_ = arrays["item_ids"]
    model._rated_indptr = arrays["rated_indptr"].astype(np.int64)
    model._rated_indices = arrays["rated_indices"].astype(np.int32)
    for stem in (*cls._CURVES[0], *cls._CURVES[1]):
        setattr(model, stem + "_", arrays.get(stem))
    model.global_mean_ = float(meta["global_mean"])
    model.n_iter_ = int(meta["n_iter"])
    model._restore_meta(meta)
    return model


# -- checkpoints -------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "fastmf-checkpoint"


def save_checkpoint(path, fingerprint: str, params: dict, factors, losses, val_curve,
                    best) -> None:
    """Write a fit's state atomically (temporary file, then rename)."""
    U, V, b, c = factors
    arrays = {"U": U, "V": V, "b": b, "c": c,
              "loss_curve": np.asarray(losses, dtype=np.float64),
              "validation_curve": np.asarray(val_curve, dtype=np.float64)}
    meta = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION,
            "fingerprint": fingerprint, "params": params, "best": None}
    if best is not None:
        meta["best"] = {"rmse": best[0], "iteration": best[1]}
        arrays.update(best_U=best[2][0], best_V=best[2][1], best_b=best[2][2],
                      best_c=best[2][3])
    meta["digest"] = _digest(arrays)
    write_npz(path, metadata=np.array(json.dumps(meta)), **arrays)


def load_checkpoint(path, fingerprint: str, params: dict) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` for the same data and parameters."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["metadata"][()]))
            arrays = {k: npz[k] for k in npz.files if k != "metadata"}
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable fastmf checkpoint ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a fastmf checkpoint")
    if meta.get("digest") != _digest(arrays):
        raise ModelFileError(f"{path}: the checkpoint was modified or corrupted")
    if meta.get("fingerprint") != fingerprint:
        raise ValueError(f"{path} is a checkpoint of different training data; "
                         "delete it or pass resume=False")
    if meta.get("params") != params:
        diff = sorted(k for k in set(params) | set(meta.get("params", {}))
                      if params.get(k) != meta.get("params", {}).get(k))
        raise ValueError(f"{path} was written with other hyper-parameters ({', '.join(diff)}); "
                         "delete it or pass resume=False")
    best = None
    if meta.get("best") is not None:
        best = (meta["best"]["rmse"], meta["best"]["iteration"],
                (arrays["best_U"], arrays["best_V"], arrays["best_b"], arrays["best_c"]))
    return {"factors": (arrays["U"], arrays["V"], arrays["b"], arrays["c"]),
            "loss_curve": arrays["loss_curve"], "validation_curve": arrays["validation_curve"],
            "best": best}
