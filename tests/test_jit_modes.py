"""A subset of the kernel tests again with NUMBA_BOUNDSCHECK=1 (out-of-bounds reads raise
instead of returning garbage) and with NUMBA_DISABLE_JIT=1 (the kernel bodies run as Python:
coverage sees them and numpy bounds-checks every index)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ("test_half_step_matches_reference and (float64 and (K1 or K5)) or "
          "cg_with_enough or objective_kernel or predict_pairs or not_positive_definite or "
          "long_rows_are_chunked or (gibbs_kernel_matches_reference and float64) or "
          "gibbs_kernel_chunks or gibbs_mean_is_the_ridge or failed_row_leaves or "
          "(solve_lanes and (D1 or D9)) or (pack_lanes and D9) or "
          "(cholesky_solve_reports and (zero or nan))")


# The bounds-checked build compiles every kernel in the subset again from an empty cache
# (about 100 s on a 2-core VM): marked slow to keep the default run under ten minutes.
@pytest.mark.parametrize("mode", [pytest.param("NUMBA_BOUNDSCHECK", marks=pytest.mark.slow),
                                  "NUMBA_DISABLE_JIT"])
def test_kernel_subset_under(mode, tmp_path):
    env = dict(os.environ, **{mode: "1"})
    # bounds-checked code is compiled separately: keep it out of the normal kernel cache
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(ROOT / "tests" / "test_kernels.py"), str(ROOT / "tests" / "test_bayes.py"),
         "-k", SUBSET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    tail = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
