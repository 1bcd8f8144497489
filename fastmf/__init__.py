"""fastmf: biased matrix factorization by alternating least squares, on numba kernels."""

from fastmf.datasets import make_ratings
from fastmf.model import BiasedALS
from fastmf.ratings import Ratings

__version__ = "0.1.0"

__all__ = ["BiasedALS", "Ratings", "__version__", "make_ratings"]
