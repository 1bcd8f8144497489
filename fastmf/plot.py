"""Pictures of a fitted model (matplotlib, an optional dependency: ``fastmf[plot]``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def item_map(model: Any) -> np.ndarray:
    """The item factors projected on their first two principal components, ``(n_items, 2)``."""
    F = model.item_factors_.astype(np.float64)
    F = F - F.mean(axis=0)
    # SVD of the centred factors: the right singular vectors are the principal axes
    _, _, vt = np.linalg.svd(F, full_matrices=False)
    return F @ vt[:2].T if vt.shape[0] >= 2 else np.c_[F @ vt[:1].T, np.zeros(len(F))]


def plot_model(model: Any, path: str | os.PathLike, *, titles: dict[Any, str] | None = None,
               n_labels: int = 25) -> Path:
    """Write a PNG with the training curves and a 2-D map of the items.

    Left: the training curve per iteration (``BiasedALS``: the objective ``J``, log scale;
    ``BayesianALS``: each sample's training RMSE) and, when the fit had validation data, the
    validation RMSE. Right: each item as a point at its first two principal
    components of the item factors, sized by its number of ratings; the ``n_labels``
    most-rated items are labelled (with ``titles`` when given), so related items can be
    seen sitting together.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'fastmf[plot]'") from exc
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"the plot is written as PNG: give a .png file name, not {path.name!r}")
    model._check_fitted()
    titles = titles or {}
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(14, 6))
    stem, label, log = model._TRAINING_CURVE
    curve = getattr(model, stem)
    it = np.arange(1, len(curve) + 1)
    ax_loss.plot(it, curve, "o-", color="C0", label=label)
    if log:
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel(label + (" (log scale)" if log else ""))
    ax_loss.set_title("training")
    handles = ax_loss.get_lines()
    if model.validation_curve_ is not None and len(model.validation_curve_):
        ax_val = ax_loss.twinx()
        ax_val.plot(np.arange(1, len(model.validation_curve_) + 1), model.validation_curve_,
                    "s--", color="C1", label="validation RMSE")
        ax_val.set_ylabel("validation RMSE")
        handles += ax_val.get_lines()
    ax_loss.legend(handles=handles, loc="upper right")  # one legend for both axes

    xy = item_map(model)
    counts = model.item_counts_.astype(float)
    seen = counts > 0
    ax_map.scatter(xy[seen, 0], xy[seen, 1], s=4 + 40 * np.sqrt(counts[seen] / counts.max()),
                   alpha=0.35, color="C2", linewidths=0)
    for j in np.argsort(-counts, kind="stable")[: max(n_labels, 0)]:
        key = model.item_ids_[j]
        key = key.item() if isinstance(key, np.generic) else key
        label = titles.get(key, str(key))
        ax_map.annotate(label[:40], xy[j], fontsize=7, alpha=0.9)
    ax_map.set_xlabel("principal component 1 of the item factors")
    ax_map.set_ylabel("principal component 2")
    ax_map.set_title(f"items ({len(counts)}), the {min(n_labels, len(counts))} most rated "
                     "labelled")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
