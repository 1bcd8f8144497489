"""fastmf's one-to-two-thread gain, round by round, beside what the machine gave each round.

    python bench/two_threads_paired.py [--shape 10m] [--solver cg|cholesky] [--rounds 40]
                                       [--floor 1.85]

On a VM whose host sometimes runs the two vCPUs on one core's FMA pipes, a two-thread figure
mixes rounds with two cores and rounds with one. Each round here times, in this order: the
FMA peak probe of ``two_cores.py`` (one thread against two), one ALS iteration of fastmf's
kernels at one thread (the user and the item half-step, the item step with its objective, as
a fit runs them), the probe again, the same iteration at two threads, and the probe once
more. Rounds where all three probes gained at least ``--floor`` had two cores' pipes
throughout; the script prints fastmf's gain over those rounds and over the others apart.

The half-steps are what a fit's marginal iteration costs to within a few percent (docs/
design.md section 9); the arrays are ``ab_halfstep.py``'s (K = 32, float32, CG with 3 steps),
on the synthetic ML-10M shape by default. On the Zen 3 VM of issue 17 (2026-12-08), CG, two
runs of 40 rounds (the first by a throwaway script doing the same):

- the 31 and 17 rounds with every probe at 1.85× or more: fastmf's gain 1.40–2.26× (median
  1.90×) and 1.33–2.18× (median 1.78×);
- the 9 and 23 other rounds: 1.26–1.93× (median 1.76×) and 1.16–2.10× (median 1.57×).

Cholesky, two runs of 30 rounds (the first by the throwaway script): 1.37–2.52× (median
1.77×) and 1.47–4.11× (median 1.75×) where every probe read 1.85× or more, in 10 and 20
rounds; 1.33–2.24× (median 1.85×) and 1.11–2.04× (median 1.64×) in the 20 and 10 others.
A probe takes 20 ms and an iteration 300–900 ms, so a round's probes sample the host's state
and do not pin it down.
"""

import argparse

import numba
import numpy as np
import two_cores
from ab_halfstep import halfstep_arrays, timed_halfstep


def _iteration(sides, mu, solver, threads):
    """Seconds for one user and one item half-step on ``threads`` threads."""
    from fastmf.kernels import als

    numba.set_num_threads(threads)
    return sum(timed_halfstep(als, solver, side, mu, order, threads) for side, order in sides)


def main() -> None:
    from fastmf._solver import row_order

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="10m")
    ap.add_argument("--solver", choices=["cg", "cholesky"], default="cg")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--floor", type=float, default=1.85)
    args = ap.parse_args()
    if numba.config.NUMBA_NUM_THREADS < 2:
        raise SystemExit("two_threads_paired.py: numba sees fewer than two threads")

    arrays, mu = halfstep_arrays(args.shape)
    sides = [(side, row_order(np.diff(side[0]))) for side in arrays.values()]

    two_cores.peak_gain()  # compile
    for threads in (2, 1):
        _iteration(sides, mu, args.solver, threads)
    probes, t1, t2 = [], [], []
    previous = numba.get_num_threads()
    try:
        for _ in range(args.rounds):
            p0 = two_cores.peak_gain()
            t1.append(_iteration(sides, mu, args.solver, 1))
            p1 = two_cores.peak_gain()
            t2.append(_iteration(sides, mu, args.solver, 2))
            probes.append(min(p0, p1, two_cores.peak_gain()))
    finally:
        numba.set_num_threads(previous)
    probes, t1, t2 = np.array(probes), np.array(t1), np.array(t2)
    gain = t1 / t2
    K = arrays["user"][5].shape[1]
    print(f"{args.solver}, {args.shape}-shaped, K = {K}, float32, {args.rounds} rounds: one "
          f"iteration {1e3 * t1.min():.1f} / {1e3 * np.median(t1):.1f} ms at one thread, "
          f"{1e3 * t2.min():.1f} / {1e3 * np.median(t2):.1f} ms at two (min / median)")
    for label, sel in ((f"every probe >= {args.floor}", probes >= args.floor),
                       (f"some probe < {args.floor}", probes < args.floor)):
        if sel.any():
            g = gain[sel]
            print(f"  {label}: {sel.sum()} rounds, gain min / median / max "
                  f"{g.min():.2f} / {np.median(g):.2f} / {g.max():.2f}")
    print("  (lowest probe gain, fastmf gain) per round, sorted: "
          + " ".join(f"({p:.2f}, {g:.2f})" for p, g in sorted(zip(probes, gain))))


if __name__ == "__main__":
    main()
