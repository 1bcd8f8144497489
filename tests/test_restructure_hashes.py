"""Regression pin for the restructuring (issue 11): the same seed and data give the same
factors, bitwise, as the code before it.

The hashes were recorded on the commit before the restructuring (``python
tests/test_restructure_hashes.py --record``). The four CG entries were recorded again after
the fix that made CG fits reproducible across processes and thread counts (recording them
twice on the old code gave different bits; see test_reliability), and again when the CG
passes took four ratings at a time (issue 17: another summation order). The BayesianALS entry
was recorded again when the objective's dot product was reassociated (the noise precision's
draw reads the sum of squared residuals). The four Cholesky entries, the Dask entry and the two
BayesianALS entries were recorded again when the factorization went to 2 x 2 register blocks
(issue 17: another summation order; the factors moved by at most 6.2e-7 relative in float32,
3.3e-15 in float64). The BayesianALS entries were first missed: its kernel ran the old,
cached Cholesky (see test_stale_cache_after_a_helper_changes_in_another_kernel_file).
The float64 BayesianALS entry was recorded again when the objective took four ratings at a
time (issue 17: another summation order of the residuals it draws the noise from; the
factors moved by 4.4e-16 relative).
All entries were recorded again on a new machine (another CPU signature; the old one is gone),
first on the code as it stood, then once more when the Cholesky's back substitution went
column by column (issue 17: another summation order; Cholesky factors moved by at most 6.9e-7
relative in float32, 2.7e-15 in float64, BayesianALS 2.5e-7 / 7.8e-16; CG unchanged).
All entries were recorded again on the AMD EPYC machine of 2026-12-04 (OpenBLAS choosing its
SkylakeX kernels, no forcing) when the last CG step took only the curvature p^T A p (issue 17:
the CG entries moved; on the code before, every entry but BayesianALS-float64, which differs
between the two CPUs, matched the previous record). That record was made with
OPENBLAS_CORETYPE unset, so the pins skipped in the environment the tests run in. They were
recorded again in that environment (OPENBLAS_CORETYPE=Haswell, as this machine's shell sets
it; a Zen 5 VM, another CPU signature), on the commit before the Gram product's pointer change
(issue 17): every entry matched the previous record except BayesianALS-float64, which depends
on the BLAS kernel (it is back to the value recorded under Haswell before). The code after the
change passes them unchanged.
The file keeps one record per signature (``--record`` replaces only this environment's).
The Zen 5 VM's record was kept, and a second one was added on 2026-12-04 (late) on an
AVX2-only Zen 3 VM (OpenBLAS choosing Haswell, nothing forced), on the code as it stood. That
is the first record from one of the AVX2 machines this project's CI runs on. Between the two
CPUs (512-bit against 256-bit vectors), five entries have the same bits: Cholesky joint
float64, Cholesky sequential float32 and float64, and both BayesianALS entries. The others
differ: Cholesky joint float32, the four CG entries and the Dask fit. Their reductions are
vectorized at the CPU's width.
A third record was added on 2026-12-05 on a 2-core AMD EPYC VM of family 25, model 17 (Zen 4,
numba's znver4, AVX-512; OpenBLAS choosing SkylakeX, nothing forced), on the code before the
objective moved into the item half-step (issue 17); the code after it passes them unchanged
(the objective is computed beside the factors, never fed back into them).
On 2026-12-05 (later) the CG passes went to explicit SIMD vectors read in place (issue 17:
another summation order; CG factors moved by at most 1.7e-6 relative in float32, 2.8e-15 in
float64, after 4 iterations of the pins' fit). Their entries were recorded again on the Zen 4
VM; the Zen 5 and Zen 3 records lost their four CG entries, since neither machine was there to
record them again (the test compares the entries a record has). They were recorded again when
the pass and the CG row were inlined into their callers: LLVM then fuses multiply-adds across
what had been calls (CG factors moved by at most 8.7e-7 relative in float32, 1.9e-15 in
float64), and when the pass reduced eight ratings' dot products at a time with AVX-512.
On 2026-12-05 (the next stop) every Cholesky system went to new kernels (issue 17): rows solved
eight at a time, one per vector lane, and a right-looking factorization for a row solved alone
(the Gibbs draw and the distributed item step included). Another summation order: the Cholesky,
BayesianALS and Dask entries were recorded again on the Zen 4 VM (Cholesky factors moved by at
most 5.7e-7 relative in float32, 1.8e-15 in float64; BayesianALS 2.5e-7 / 6.2e-16; the Dask
fit 2.4e-15; CG unchanged). The Zen 5 and Zen 3 records were left with no entry and were
removed: on those machines the test skips until they are recorded again.
On 2026-12-06 a fourth record was added on a 2-core Intel Xeon VM (AVX-512 and AMX; numba's
target rocketlake; OpenBLAS choosing SkylakeX), on the code after the Cholesky gather went to
L1-sized pieces (issue 17), which on this machine gave solve_rows the same bits as the code
before it in 96 cases (K = 10 to 130, both dtypes, rows longer than the gather scratch).
On 2026-12-06 (later) the half-steps went to rows in storage order, each task taking a run
of them (issue 17). The ALS, CG and Dask entries kept their bits. BayesianALS draws
``noise[q]`` for the ``q``-th listed row, so its rows met other draws: both of its entries
were recorded again on the Intel Xeon VM and removed from the Zen 4 VM's record (no such
machine was there to record them).
The signature is that of the test environment as it stands (OpenBLAS kernel included): a pin
recorded with OPENBLAS_CORETYPE unset would skip wherever it is set, as on this project's CI.
Bitwise results depend on the BLAS kernel and the instruction set, so they are compared only
on a machine with the recorded signature; elsewhere the test skips and says why.
"""

import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RECORD = HERE / "restructure_hashes.json"


def _signature() -> dict:
    import numba
    import scipy.linalg  # noqa: F401 -- loads scipy's BLAS: run alone, the test saw one BLAS
    from threadpoolctl import threadpool_info

    blas = [(i.get("internal_api"), i.get("version"), i.get("architecture"))
            for i in threadpool_info() if i.get("user_api") == "blas"]
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("model name", "flags")):
                cpu += line.split(":", 1)[1].strip() + "|"
    except OSError:
        cpu = platform.processor()
    return {"numba": numba.__version__, "numpy": np.__version__, "blas": sorted(map(str, blas)),
            "cpu": hashlib.sha256(cpu.encode()).hexdigest()[:16], "machine": platform.machine()}


def _digest(model) -> str:
    h = hashlib.sha256()
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        h.update(np.ascontiguousarray(getattr(model, name)).tobytes())
    return h.hexdigest()


def _cases():
    from conftest import awkward_ratings

    from fastmf import BayesianALS, BiasedALS

    data = awkward_ratings(seed=3, n_users=60, n_items=40, n=700)
    out = {}
    for solver in ("cholesky", "cg"):
        for bias_update in ("joint", "sequential"):
            for dtype in ("float32", "float64"):
                m = BiasedALS(4, n_iter=4, solver=solver, bias_update=bias_update, dtype=dtype,
                              random_state=0).fit(data)
                out[f"BiasedALS-{solver}-{bias_update}-{dtype}"] = m
    for dtype in ("float32", "float64"):
        m = BayesianALS(3, n_samples=4, burn_in=2, dtype=dtype, random_state=0).fit(data)
        out[f"BayesianALS-{dtype}"] = m
    return data, out


def _dask_case(data):
    import pandas as pd
    from dask import distributed

    from fastmf import BiasedALS
    from fastmf import distributed as fdist

    frame = pd.DataFrame({"user": data.user_ids[data.user_index],
                          "item": data.item_ids[data.item_index], "rating": data.values})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            frame.to_parquet(Path(tmp) / "r.parquet")
            return fdist.fit(client, str(Path(tmp) / "r.parquet"),
                             BiasedALS(4, n_iter=3, dtype="float64", random_state=0),
                             checkpoint_dir=Path(tmp) / "ck")


def _records() -> list[dict]:
    """The recorded pins, one ``{"signature", "hashes"}`` record per test environment."""
    return json.loads(RECORD.read_text())["records"]


def _record() -> None:
    """Record this environment's pins, replacing its earlier record and keeping the others."""
    data, models = _cases()
    hashes = {k: _digest(m) for k, m in models.items()}
    hashes["dask-BiasedALS-float64"] = _digest(_dask_case(data))
    sig = _signature()
    records = [r for r in _records() if r["signature"] != sig]
    records.append({"signature": sig, "hashes": hashes})
    RECORD.write_text(json.dumps({"records": records}, indent=1) + "\n")


def _recorded():
    sig = _signature()
    for rec in _records():
        if rec["signature"] == sig:
            return rec["hashes"]
    pytest.skip("bitwise pins were recorded on other numba/numpy/BLAS/CPU combinations: "
                f"{[r['signature'] for r in _records()]}; this one is {sig}")


def test_estimators_give_the_same_bits_as_before_the_restructuring():
    want = _recorded()
    _, models = _cases()
    got = {k: _digest(m) for k, m in models.items()}
    # a record may lack entries that could not be recorded again on its machine (see above)
    pinned = sorted(k for k in got if k in want)
    assert pinned, "this environment's record pins none of these estimators"
    assert {k: got[k] for k in pinned} == {k: want[k] for k in pinned}


def test_dask_fit_gives_the_same_bits_as_before_the_restructuring():
    pytest.importorskip("dask.distributed")
    pytest.importorskip("pyarrow")
    want = _recorded()
    if "dask-BiasedALS-float64" not in want:
        pytest.skip("this environment's record has no Dask entry")
    data, _ = _cases()
    assert _digest(_dask_case(data)) == want["dask-BiasedALS-float64"]


if __name__ == "__main__" and "--record" in sys.argv:
    _record()
