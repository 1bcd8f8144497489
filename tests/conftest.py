"""Shared fixtures: small rating sets with the awkward rows real data has."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmf

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FASTMF_DATA_DIR", ROOT.parent / "shared" / "data"))

CONFIGS = [
    # (bias_update, reg_scaling, bias_reg_scaling)
    ("joint", "none", None),
    ("joint", "count", None),
    ("sequential", "none", "count"),  # the tutorial's
    ("sequential", "count", "none"),
]


def movielens_file(*parts: str) -> Path:
    """Path to a MovieLens file under FASTMF_DATA_DIR; skips the test when it is absent."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"MovieLens data not found at {path} (set FASTMF_DATA_DIR)")
    return path


def awkward_ratings(seed: int = 1, n_users: int = 40, n_items: int = 30, n: int = 300):
    """Power-law ratings plus an empty user, an empty item and single-rating rows.

    Users/items ``n_users`` and ``n_items`` (the last ids) have no ratings; user
    ``n_users + 1`` and item ``n_items + 1`` have exactly one.
    """
    base, _ = fastmf.make_ratings(n_users, n_items, n, n_factors=3, random_state=seed,
                                  rating_scale=(1, 5))
    u = base.user_ids[base.user_index]
    i = base.item_ids[base.item_index]
    r = base.values
    u = np.r_[u, n_users + 1, 0]
    i = np.r_[i, 0, n_items + 1]
    r = np.r_[r, 4.0, 2.0]
    return fastmf.Ratings(
        u, i, r, user_ids=np.arange(n_users + 2), item_ids=np.arange(n_items + 2)
    )


@pytest.fixture
def small():
    return awkward_ratings()


# -- the kernel cache, warmed from a second process ------------------------------------------
# See _warm_kernels.py. Only for a run of many tests: a single file or test would spend its
# second core compiling kernels it never calls. FASTMF_TEST_WARMUP=0 turns it off.
_WARM: list[subprocess.Popen] = []


def pytest_collection_finish(session):
    if len(session.items) < 200 or os.environ.get("FASTMF_TEST_WARMUP") == "0":
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    _WARM.append(subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_warm_kernels.py"))],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ))


def pytest_sessionfinish(session, exitstatus):
    for proc in _WARM:  # numba writes each cache file whole (temp file, then rename)
        proc.kill()
        proc.wait()
