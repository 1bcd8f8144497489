"""The one training loop every estimator runs (docs/design.md, "The training driver").

An estimator supplies a :class:`Trainer` -- its state, its step and its metrics -- and
:func:`train` does the rest, identically for every model and for the Dask fit: thread limits,
the progress bar, logging, the callback, the validation curve, early stopping, checkpoints
and resuming, and Ctrl-C, which leaves the model at its last complete iteration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from fastmf._threads import thread_limits

logger = logging.getLogger("fastmf")


class Trainer:
    """One fit in progress, as the driver sees it. Subclasses override what they need.

    Attributes
    ----------
    total : int
        Iterations the fit runs unless stopped early.
    curves : tuple of str
        Names of the metrics :meth:`step` returns; the driver keeps each as the fitted
        attribute ``<name>_curve_``.
    unit : str
        What one iteration is called in logs ("iteration", "sweep").
    has_validation : bool
        Whether :meth:`validation_rmse` scores held-out data.
    """

    total: int = 0
    curves: tuple[str, ...] = ("loss",)
    unit: str = "iteration"
    has_validation: bool = False

    def state(self) -> dict[str, np.ndarray]:
        """The live arrays that make up the fit's state (written in place by :meth:`step`).

        The driver copies them before each step (Ctrl-C restores the copy), for the best
        iteration under early stopping, and for checkpoints.
        """
        return {}

    def step(self, it: int, n_threads: int) -> dict[str, float]:
        """Run iteration ``it`` (0-based) in place; return its metrics."""
        raise NotImplementedError

    def validation_rmse(self) -> float | None:
        """RMSE on the held-out data after the last step (None without validation)."""
        return None

    def describe(self, it: int, metrics: dict[str, float]) -> str:
        """One log line for iteration ``it`` (1-based)."""
        return f"{self.unit} {it}: " + ", ".join(f"{k} {v:.6g}" for k, v in metrics.items())

    def can_stop(self) -> bool:
        """Whether a callback may end the fit now (e.g. not before a first sample is kept)."""
        return True

    def finish(self) -> None:
        """Publish the fitted model; also called after Ctrl-C, before it propagates."""


class Checkpoint(Protocol):
    """Where a fit's state is saved every few iterations, and resumed from."""

    def load(self, trainer: Trainer) -> dict | None:
        """Set the trainer's state from the checkpoint; return its history, or None."""

    def save(self, trainer: Trainer, history: dict) -> None:
        """Save the trainer's state and the history (curves, best iteration)."""


def restore(trainer: Trainer, saved: dict[str, np.ndarray]) -> None:
    """Copy ``saved`` arrays back into the trainer's live state, in place."""
    live = trainer.state()
    for name, array in saved.items():
        live[name][...] = array


def copy_state(trainer: Trainer) -> dict[str, np.ndarray]:
    return {name: np.array(a, copy=True) for name, a in trainer.state().items()}


def train(
    model: Any,
    trainer: Trainer,
    *,
    n_jobs: int | None = None,
    verbose: bool = False,
    callback: Callable[[int, Any], Any] | None = None,
    early_stopping_rounds: int | None = None,
    checkpoint: Checkpoint | None = None,
    checkpoint_every: int | None = None,
) -> Any:
    """Run ``trainer`` to the end (or an early stop), keeping ``model``'s curves up to date.

    After each iteration ``model`` has ``n_iter_``, ``<curve>_curve_`` for every curve of the
    trainer and ``validation_curve_`` (None without validation data), so a ``callback(it,
    model)`` sees them; a callback returning True stops the fit. With
    ``early_stopping_rounds`` the fit stops once the validation RMSE has not improved for that
    many iterations and the state of the best iteration is kept.
    """
    history: dict[str, Any] = {"curves": {c: [] for c in trainer.curves}, "validation": [],
                               "best": None}  # best: (rmse, iteration, state copy)
    if checkpoint is not None:
        resumed = checkpoint.load(trainer)
        if resumed is not None:
            history = resumed
    it = len(history["curves"][trainer.curves[0]])
    _publish(model, trainer, history, it)
    if it:
        logger.info(f"resumed at {trainer.unit} {it}")

    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=trainer.total, initial=it, desc=type(model).__name__,
                   unit=trainer.unit[:5])
    with thread_limits(n_jobs) as n_threads:
        snapshot = None
        try:
            while it < trainer.total:
                t0 = time.perf_counter()
                # A Ctrl-C lands between kernel calls; keep the last complete iteration.
                snapshot = copy_state(trainer)
                metrics = trainer.step(it, n_threads)
                rmse = trainer.validation_rmse()
                it += 1
                for name, value in metrics.items():
                    history["curves"][name].append(value)
                if rmse is not None:
                    history["validation"].append(rmse)
                _publish(model, trainer, history, it)
                snapshot = None
                msg = trainer.describe(it, metrics)
                stop = False
                if rmse is not None:
                    msg += f", validation RMSE {rmse:.5f}"
                    best = history["best"]
                    if early_stopping_rounds is not None:
                        if best is None or rmse < best[0]:
                            history["best"] = (rmse, it, copy_state(trainer))
                        elif it - best[1] >= early_stopping_rounds:
                            msg += f"; early stop, best {trainer.unit} {best[1]}"
                            stop = True
                logger.info(msg + f" ({time.perf_counter() - t0:.3f} s)")
                if bar is not None:
                    post = {k: f"{v:.5g}" for k, v in metrics.items()}
                    if rmse is not None:
                        post["val_rmse"] = f"{rmse:.4f}"
                    bar.set_postfix(post, refresh=False)
                    bar.update(1)
                if checkpoint is not None and checkpoint_every and it % checkpoint_every == 0:
                    checkpoint.save(trainer, history)
                if stop or (callback is not None and callback(it, model)
                            and trainer.can_stop()):
                    break
        except KeyboardInterrupt:
            if snapshot is not None:
                restore(trainer, snapshot)
            trainer.finish()
            logger.warning(f"fit interrupted; the model holds {trainer.unit} {it}"
                           + (" (checkpointed)" if checkpoint is not None else ""))
            raise
        finally:
            if bar is not None:
                bar.close()
        if checkpoint is not None and not (checkpoint_every and it % checkpoint_every == 0):
            checkpoint.save(trainer, history)

    best = history["best"]
    if best is not None and best[1] != it:
        restore(trainer, best[2])
        model.n_iter_ = best[1]
    trainer.finish()
    return model


def _publish(model: Any, trainer: Trainer, history: dict, it: int) -> None:
    for name, values in history["curves"].items():
        setattr(model, name + "_curve_", np.asarray(values, dtype=np.float64))
    model.validation_curve_ = (np.asarray(history["validation"], dtype=np.float64)
                               if trainer.has_validation else None)
    model.n_iter_ = it
