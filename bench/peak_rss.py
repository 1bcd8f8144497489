"""Peak memory of a fit on ML-10M-shaped data (10M ratings), for the reliability report.

    python bench/peak_rss.py [--variant 10m] [--factors 32] [--input ratings dataframe scipy]

Generates the synthetic set in a first process and saves the triples; for each input kind a
fresh process loads them into that kind (a ``Ratings``, a pandas DataFrame of user, item,
rating, or a scipy CSR matrix), notes its resident set size, fits 3 iterations and reports
the peak RSS (``VmHWM``, reset after loading) against the size of what the fit must hold:
CSR + CSC arrays plus the factors and biases. The conversion of a DataFrame or matrix into
the fit's arrays happens inside ``fit`` and counts.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) so that it measures from here (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(path: str, K: int, kind: str) -> None:
    import numpy as np

    import fastmf

    with np.load(path) as z:
        if kind == "ratings":
            data = fastmf.Ratings._from_indices(z["u"], z["i"], z["r"],
                                                np.arange(int(z["M"])), np.arange(int(z["N"])))
        elif kind == "dataframe":
            import pandas as pd

            data = pd.DataFrame({"user": z["u"].astype(np.int64),
                                 "item": z["i"].astype(np.int64), "rating": z["r"]})
        else:
            import scipy.sparse as sp

            data = sp.csr_array((z["r"], (z["u"], z["i"])),
                                shape=(int(z["M"]), int(z["N"])))
    fastmf.BiasedALS(2, n_iter=1).fit(fastmf.make_ratings(50, 20, 200)[0])  # compile first
    before = rss_mb()
    peak_before = _status_mb("VmHWM")  # loading and ingestion
    reset_peak()
    model = fastmf.BiasedALS(K, n_iter=3, random_state=0).fit(data)
    peak = _status_mb("VmHWM")
    nnz, (M, N) = len(model._rated_indices), (len(model.user_ids_), len(model.item_ids_))
    need = (2 * (nnz * (4 + 4)) + 8 * (M + 1 + N + 1) + 4 * (M + N) * (K + 1)) / 2**20
    print(json.dumps({
        "input": kind, "nnz": nnz, "K": K, "rss_before_fit_mb": round(before, 1),
        "peak_rss_during_fit_mb": round(peak, 1),
        "peak_rss_of_loading_mb": round(peak_before, 1),
        "fit_increment_mb": round(peak - before, 1),
        "csr_csc_factors_mb": round(need, 1),
        "increment_over_arrays": round((peak - before) / need, 2),
        "loss": float(model.loss_curve_[-1]),
    }))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="10m")
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--input", nargs="+", default=["ratings", "dataframe", "scipy"],
                    choices=["ratings", "dataframe", "scipy"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.factors, args.input[0])
        return
    import numpy as np

    from fastmf.datasets import make_movielens_like

    r, _ = make_movielens_like(args.variant, random_state=0)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "triples.npz")
        np.savez(path, u=r.user_index, i=r.item_index, r=r.values, M=r.n_users, N=r.n_items)
        del r
        for kind in args.input:
            subprocess.run([sys.executable, __file__, "--child", path, "--factors",
                            str(args.factors), "--input", kind], check=True)


if __name__ == "__main__":
    main()
