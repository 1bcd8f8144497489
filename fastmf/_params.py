"""Declarative hyper-parameters: one table per estimator, read by validation, ``get_params``,
the command line and the documentation tests.

An estimator lists its constructor parameters as :class:`Param` rows in ``_params``;
``validate(table, obj)`` checks the values an instance holds (at fit time, as scikit-learn
does) and returns them normalized (ints as ``int``, reals as ``float``, ``dtype`` as a numpy
dtype). The CLI builds each estimator's options from the same rows.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class Param:
    """One constructor parameter.

    Attributes
    ----------
    name : str
        The constructor argument.
    kind : {"int", "real", "choice", "bool", "dtype", "random_state", "n_jobs"}
    default : object
        The constructor's default (the contract tests check they agree).
    doc : str
        One line for ``--help``.
    low, high : float, optional
        Bounds for ``int`` / ``real``; ``low_open`` makes the lower bound strict.
    choices : tuple, optional
        The allowed values of a ``choice``.
    optional : bool
        None is allowed (meaning "derive from another parameter" or "unset").
    cli : str or None
        The command-line option (``"--reg"``); None keeps the parameter off the CLI.
    affects_fit : bool
        False for parameters that cannot change the fitted numbers (threads, progress, the
        iteration budget): a checkpoint may be resumed with other values of them.
    """

    name: str
    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    optional: bool = False
    cli: str | None = None
    affects_fit: bool = True

    def check(self, value: Any) -> Any:
        """The normalized value, or ``ValueError``/``TypeError`` naming the parameter."""
        if value is None and self.optional:
            return None
        name = self.name
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be {self._int_words()}, got {value!r}")
            if not self._in_range(value):
                raise ValueError(f"{name} must be {self._int_words()}, got {value!r}")
            return int(value)
        if self.kind == "real":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {value!r}")
            if not (np.isfinite(value) and self._in_range(value)):
                raise ValueError(f"{name} must be finite{self._bound_words()}, got {value!r}")
            return float(value)
        if self.kind == "choice":
            if not any(value == c and type(value) is type(c) for c in self.choices):
                allowed = (" or ".join(map(repr, self.choices)) if len(self.choices) == 2
                           else f"one of {self.choices}")
                raise ValueError(f"{name} must be {allowed}, got {value!r}")
            return value
        if self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
            return bool(value)
        if self.kind == "dtype":
            try:
                dtype = np.dtype(value)
            except TypeError:
                dtype = None
            if dtype not in _DTYPES:
                raise ValueError(f"{name} must be float32 or float64, got {value!r}")
            return dtype
        if self.kind == "random_state":
            if isinstance(value, np.random.Generator) or value is None:
                return value
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, a numpy Generator or "
                                 f"None, got {value!r}")
            return int(value)
        if self.kind == "n_jobs":
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int or None, got {value!r}")
            if value < -1 or value == 0:
                raise ValueError(f"{name} must be a positive int, -1 or None, got {value}")
            return int(value)
        raise AssertionError(f"unknown parameter kind {self.kind!r}")  # pragma: no cover

    def _in_range(self, value) -> bool:
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        return low_ok and (self.high is None or value <= self.high)

    def _bound_words(self) -> str:
        words = []
        if self.low is not None:
            words.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            words.append(f"<= {self.high:g}")
        return "".join(" and " + w for w in words)

    def _int_words(self) -> str:
        if self.low == 1 and self.high is None and not self.low_open:
            return "a positive int"
        return "an int" + self._bound_words().replace(" and ", " ", 1)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1, or ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def validate(table: Iterable[Param], obj: Any) -> dict[str, Any]:
    """Every parameter of ``table`` as held by ``obj``, checked and normalized."""
    return {p.name: p.check(getattr(obj, p.name)) for p in table}


# The rows most estimators share.
DTYPE = Param("dtype", "dtype", "float32", "precision of the factors and the arithmetic",
              cli="--dtype")
RANDOM_STATE = Param("random_state", "random_state", None, "seed of the start and the draws",
                     cli="--seed")
N_JOBS = Param("n_jobs", "n_jobs", None, "threads (default: all); results do not depend on it",
               cli="--jobs", affects_fit=False)
VERBOSE = Param("verbose", "bool", False, "progress bar during fit", affects_fit=False)
COMMON = (DTYPE, RANDOM_STATE, N_JOBS, VERBOSE)
