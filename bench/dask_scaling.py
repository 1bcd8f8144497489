"""Per-iteration time and traffic of the distributed fit on a local 2-worker cluster.

    python bench/dask_scaling.py [--variants 100k 1m] [--factors 32] [--iters 4]

Writes the synthetic set to Parquet, fits with ``fastmf.distributed.fit`` on a
``LocalCluster`` (2 worker processes x 1 thread, as this 2-core machine allows) and prints,
per size: seconds per iteration (after the first), bytes moved per iteration (the item
statistics up, the item factors down), and the single-machine time for comparison.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", default=["100k", "1m"])
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--iters", type=int, default=4)
    args = ap.parse_args()

    from dask.distributed import Client, LocalCluster

    import fastmf
    from fastmf import distributed
    from fastmf.datasets import make_movielens_like

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client, tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            r, _ = make_movielens_like(variant, random_state=0)
            path = Path(tmp) / f"{variant}.parquet"
            pd.DataFrame({"user": r.user_ids[r.user_index], "item": r.item_ids[r.item_index],
                          "rating": r.values}).to_parquet(path)
            model = fastmf.BiasedALS(args.factors, n_iter=args.iters, random_state=0)
            t0 = time.perf_counter()
            fitted = distributed.fit(client, path, model, checkpoint_dir=Path(tmp) / variant,
                                     checkpoint_every=args.iters)
            total = time.perf_counter() - t0
            info = fitted.distributed_info_
            per_iter = info["seconds_per_iteration"][1:] or info["seconds_per_iteration"]
            t1 = time.perf_counter()
            fastmf.BiasedALS(args.factors, n_iter=args.iters, random_state=0).fit(r)
            local = (time.perf_counter() - t1) / args.iters
            print(json.dumps({
                "variant": variant, "nnz": r.nnz, "users": r.n_users, "items": r.n_items,
                "K": args.factors, "blocks": info["n_blocks"],
                "seconds_per_iteration": round(float(np.median(per_iter)), 3),
                "wall_seconds_incl_ingest": round(total, 1),
                "bytes_up_per_iteration": info["bytes_up_per_iteration"],
                "bytes_down_per_iteration": info["bytes_down_per_iteration"],
                "single_machine_seconds_per_iteration": round(local, 3),
            }), flush=True)


if __name__ == "__main__":
    main()
