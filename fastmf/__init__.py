"""fastmf: matrix factorization recommenders on numba kernels -- biased ALS, its Gibbs-sampling
Bayesian twin, and implicit-feedback ALS.

The names below are imported on first use (PEP 562), so ``import fastmf`` and ``fastmf
--version`` stay fast; ``fastmf.metrics``, ``fastmf.model_selection``, ``fastmf.datasets``
and the other submodules are attributes of the package as well.
"""

from __future__ import annotations

import importlib
from typing import Any

from fastmf._version import __version__

_NAMES = {
    "BayesianALS": "fastmf.bayes",
    "BiasedALS": "fastmf.model",
    "BiasedSGD": "fastmf.sgd",
    "ImplicitALS": "fastmf.implicit",
    "ModelFileError": "fastmf.persist",
    "Ratings": "fastmf.ratings",
    "load": "fastmf.persist",
    "load_movielens": "fastmf.datasets",
    "make_ratings": "fastmf.datasets",
    "read_ratings": "fastmf.io",
}
_SUBMODULES = ("baseline", "datasets", "distributed", "io", "kernels", "metrics",
               "model_selection", "persist", "plot", "ratings")

__all__ = ["__version__", *sorted(_NAMES), *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"fastmf.{name}")
    else:
        raise AttributeError(f"module 'fastmf' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
