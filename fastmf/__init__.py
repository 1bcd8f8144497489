"""fastmf: biased matrix factorization by alternating least squares (and its Gibbs-sampling
Bayesian twin), on numba kernels."""

from fastmf._version import __version__
from fastmf.bayes import BayesianALS
from fastmf.datasets import load_movielens, make_ratings
from fastmf.implicit import ImplicitALS
from fastmf.io import read_ratings
from fastmf.model import BiasedALS
from fastmf.persist import ModelFileError, load
from fastmf.ratings import Ratings

__all__ = [
    "BayesianALS",
    "BiasedALS",
    "ImplicitALS",
    "ModelFileError",
    "Ratings",
    "__version__",
    "load",
    "load_movielens",
    "make_ratings",
    "read_ratings",
]
