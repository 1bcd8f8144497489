"""Interleaved A/B of one ALS half-step: this checkout's kernels against a git revision's.

    python bench/ab_halfstep.py REV [--solver cholesky|cg] [--threads N] [--rounds R]
                                    [--shape 1m|100k|10m]

Whole fits of two versions run minutes apart differ by more than most kernel changes on a
shared VM, so this times both versions in one process, alternating, on the same arrays:
``solve_rows`` (or ``solve_rows_cg`` with 3 steps) for the user step and for the item step
(objective wanted), each version over its own row list (``_solver.row_order``), K = 32,
float32, the synthetic ML-1M shape by default. REV's ``fastmf`` package is exported from
git into a temporary folder under another name, so both import side by side; its kernels
compile on the first round, which is not counted. Prints min and median in ms per half-step.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _export(rev: str, where: Path) -> None:
    """REV's ``fastmf`` as the package ``fastmf_ab`` under ``where``."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "fastmf"], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=tar, check=True)
    (where / "fastmf").rename(where / "fastmf_ab")
    for path in (where / "fastmf_ab").rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bfastmf\.", "fastmf_ab.", text)
        text = re.sub(r"\bfrom fastmf import\b", "from fastmf_ab import", text)
        text = re.sub(r"^import fastmf$", "import fastmf_ab", text, flags=re.M)
        path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev")
    ap.add_argument("--solver", choices=["cholesky", "cg"], default="cholesky")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--shape", default="1m")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fastmf-ab-") as tmp:
        _export(args.rev, Path(tmp))
        sys.path.insert(0, tmp)
        _run(args)


def halfstep_arrays(shape: str, K: int = 32):
    """The arrays the half-steps run on: ``({"user": side, "item": side}, mu)`` with ``side =
    (indptr, indices, data, other, other_bias, factors, bias, want_sse)``: the synthetic
    ``shape`` set in float32 as CSR and CSC (int64 ``indptr``, int32 ``indices``), random
    factors of rank ``K`` and zero biases."""
    from fastmf.base import aligned_empty
    from fastmf.datasets import make_movielens_like

    csr = make_movielens_like(shape, random_state=0)[0].to_scipy().tocsr()
    csr = csr.astype(np.float32)
    csc = csr.tocsc()
    f32 = np.float32
    rng = np.random.default_rng(0)
    # On a 64-byte boundary, as the estimators allocate them (fastmf.base.aligned_empty): a
    # 128-byte row that starts elsewhere spans three cache lines, and CG half-steps over such
    # a matrix took 20-28 % longer (ML-1M shape, one thread, Intel Xeon VM).
    U = aligned_empty((csr.shape[0], K), f32)
    V = aligned_empty((csr.shape[1], K), f32)
    U[...] = rng.standard_normal(U.shape) * 0.1
    V[...] = rng.standard_normal(V.shape) * 0.1
    bu, bv = np.zeros(csr.shape[0], f32), np.zeros(csr.shape[1], f32)
    mu = f32(csr.data.mean())

    def side(m, other, other_bias, factors, bias, want):
        return (m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data, other,
                other_bias, factors, bias, want)

    return {"user": side(csr, V, bv, U, bu, False), "item": side(csc, U, bu, V, bv, True)}, mu


def timed_halfstep(als, solver: str, side: tuple, mu, order, threads: int) -> float:
    """Seconds for one half-step of ``als`` (a ``fastmf.kernels.als`` module) over ``side``
    (from :func:`halfstep_arrays`), on a copy of its factors and biases: ``solve_rows_cg``
    with 3 steps or ``solve_rows``, reg 0.1, joint bias, the objective where ``side`` wants it."""
    from fastmf.base import aligned_empty

    indptr, indices, data, other, other_bias, factors, bias, want = side
    f, b = aligned_empty(factors.shape, factors.dtype), bias.copy()
    f[...] = factors
    sse = np.zeros(factors.shape[0]) if want else np.zeros(0)
    reg = factors.dtype.type(0.1)
    common = (indptr, indices, data, other, other_bias, mu, reg, reg, False, False, True, order,
              threads)
    t = time.perf_counter()
    if solver == "cg":
        als.solve_rows_cg(*common, 3, f, b, sse)
    else:
        als.solve_rows(*common, f, b, sse)
    return time.perf_counter() - t


def _run(args: argparse.Namespace) -> None:
    import fastmf_ab.kernels.als as there
    from fastmf_ab._solver import row_order as there_order

    import fastmf.kernels.als as here
    from fastmf._solver import row_order as here_order

    numba.set_num_threads(args.threads)
    sides, mu = halfstep_arrays(args.shape)
    times = {}
    for _ in range(args.rounds + 1):  # the first round compiles
        for name, side in sides.items():
            n = np.diff(side[0])
            for label, mod, order_of in ((args.rev, there, there_order),
                                         ("this checkout", here, here_order)):
                order = order_of(n)  # each version's own schedule
                times.setdefault((name, label), []).append(
                    timed_halfstep(mod, args.solver, side, mu, order, args.threads))
    K = sides["user"][5].shape[1]
    print(f"{args.solver}, {args.shape}-shaped, K = {K}, float32, {args.threads} thread(s), "
          f"min / median of {args.rounds}, ms per half-step")
    for (name, label), ts in times.items():
        ts = np.array(ts[1:]) * 1e3
        print(f"  {name:5s} {label:14s} {ts.min():7.2f} / {np.median(ts):7.2f}")


if __name__ == "__main__":
    main()
