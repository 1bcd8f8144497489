"""Do this machine's two threads get two cores' worth of FMA throughput? A check to run
beside any two-thread figure.

    python bench/two_cores.py [--rounds 30]

Times two kinds of work on one thread and then on two (each thread doing the one-thread
amount), alternating, and prints the two-thread throughput gain ``2 t1 / t2`` of every round,
sorted:

- **FMA throughput**: 128 independent multiply-add chains, which keep a core's FMA pipes
  busy, as fastmf's kernels do (the CG pass and the Gram product run near that bound).
- **A latency chain**: one dependent multiply-add chain per thread, which leaves the pipes
  mostly idle.

On two physical cores of their own, both gain about 2×. Where the two threads share one
core's FMA pipes (the host running the two vCPUs as the two hardware threads of one core, or
another guest's work on the same cores), the FMA work gains far less, while the latency chain
still gains about 2×. On the Zen 3 VM of issue 17, in three runs of 30 rounds minutes apart,
the FMA gain read 0.84–1.29× in 14 rounds, 1.25–1.30× in 4 and never under 1.66× in the
third run, and 1.6–2.9× in all other rounds. The latency chain read 1.72–2.11× in every
round (docs/design.md section 9). So on such a VM, fastmf's one-to-two-thread speed-up
depends on where the host places the vCPUs at that moment.
"""

import argparse
import time

import numba
import numpy as np
from numba import njit, prange


@njit(fastmath=True)
def _fma_throughput(n, x):
    acc = np.zeros(128, np.float32)
    for _ in range(n):
        for j in range(128):
            acc[j] = acc[j] * x + np.float32(1.0)
    return acc.sum()


@njit
def _latency_chain(n, x):
    a = 1.0
    for _ in range(n):
        a = a * x + 1.0
    return a


@njit(parallel=True)
def _run(kind, n, n_threads):
    out = np.zeros(n_threads)
    for t in prange(n_threads):
        out[t] = _fma_throughput(n, np.float32(0.999)) if kind == 0 else _latency_chain(n, 0.999)
    return out


def _timed(kind: int, n: int, threads: int) -> float:
    numba.set_num_threads(threads)
    t = time.perf_counter()
    _run(kind, n, threads)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    if numba.config.NUMBA_NUM_THREADS < 2:
        raise SystemExit("two_cores.py: numba sees fewer than two threads")
    kinds = {0: ("FMA throughput", 400_000), 1: ("latency chain", 20_000_000)}
    for kind in kinds:
        _run(kind, 10, 2)  # compile
    gains = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind, (_, n) in kinds.items():
            t1 = _timed(kind, n, 1)
            t2 = _timed(kind, n, 2)
            gains[kind].append(2 * t1 / t2)
    for kind, (name, _) in kinds.items():
        g = np.sort(gains[kind])
        print(f"{name:15s} two-thread gain, {args.rounds} rounds sorted: "
              + " ".join(f"{v:.2f}" for v in g))


if __name__ == "__main__":
    main()
