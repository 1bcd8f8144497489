"""fastmf: biased matrix factorization by alternating least squares (and its Gibbs-sampling
Bayesian twin), on numba kernels."""

from fastmf.bayes import BayesianALS
from fastmf.datasets import load_movielens, make_ratings
from fastmf.io import read_ratings
from fastmf.model import BiasedALS
from fastmf.persist import ModelFileError, load
from fastmf.ratings import Ratings

__version__ = "0.1.0"

__all__ = [
    "BayesianALS",
    "BiasedALS",
    "ModelFileError",
    "Ratings",
    "__version__",
    "load",
    "load_movielens",
    "make_ratings",
    "read_ratings",
]
