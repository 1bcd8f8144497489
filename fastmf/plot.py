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
    # The frame holds the bulk of the items (a few outliers may fall outside), and labels
    # are placed most-rated first, skipping any that would sit on one already placed.
    lo = np.percentile(xy[seen], 1, axis=0) if seen.any() else np.zeros(2)
    hi = np.percentile(xy[seen], 99, axis=0) if seen.any() else np.ones(2)
    span = np.where(hi > lo, hi - lo, 1.0)
    ax_map.set_xlim(lo[0] - 0.05 * span[0], hi[0] + 0.25 * span[0])  # room for the text
    ax_map.set_ylim(lo[1] - 0.05 * span[1], hi[1] + 0.05 * span[1])
    labels = [_title(model.item_ids_[j], titles) for j in range(len(counts))]
    chosen = label_positions(xy, counts, labels, lo, span, n_labels)
    for j in chosen:
        ax_map.annotate(labels[j], xy[j], fontsize=7, alpha=0.9, annotation_clip=True)
    ax_map.set_xlabel("principal component 1 of the item factors")
    ax_map.set_ylabel("principal component 2")
    ax_map.set_title(f"items ({len(counts)}); {len(chosen)} of the most rated labelled "
                     "where they do not overlap")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _title(key: Any, titles: dict[Any, str]) -> str:
    key = key.item() if isinstance(key, np.generic) else key
    return titles.get(key, str(key))[:30]


def label_positions(xy: np.ndarray, counts: np.ndarray, labels: list[str], lo: np.ndarray,
                    span: np.ndarray, n_labels: int) -> list[int]:
    """Items to label: the most rated first, skipping any whose text box would overlap one
    already chosen or that falls outside the frame ``lo .. lo + span``."""
    placed: list[tuple[float, float, float]] = []  # (x, y, width) in units of the span
    chosen = []
    for j in np.argsort(-counts, kind="stable"):
        if len(chosen) >= max(n_labels, 0) or counts[j] <= 0:
            break
        where = (xy[j] - lo) / span
        if np.any(where < -0.02) or np.any(where > 1.02):
            continue  # outside the frame
        width = 0.011 * len(labels[j])  # 7-point text on a 14 x 6 inch figure
        if any(where[0] < x + w and x < where[0] + width and abs(where[1] - y) < 0.05
               for x, y, w in placed):
            continue  # would overlap a label already there
        placed.append((where[0], where[1], width))
        chosen.append(int(j))
    return chosen
