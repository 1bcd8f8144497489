"""Do this machine's two threads get two cores' worth of FMA throughput and of cache? A check
to run beside any two-thread figure.

    python bench/two_cores.py [--rounds 30]

Times four kinds of work on one thread and then on two (each thread doing the one-thread
amount), alternating, and prints the two-thread throughput gain ``2 t1 / t2`` of every round,
sorted:

- **FMA throughput**: 128 independent multiply-add chains (16 vector registers), which keep a
  core's FMA pipes busy, as fastmf's CG pass and Gram product do. On the Zen 3 VM of issue 17
  one thread ran 1.14 vector FMAs per cycle (3.0 GHz, timed by the latency chain's 6-cycle
  multiply and add), a little over half of the core's two FMA pipes: two threads sharing one
  core would gain at most about 1.75× here.
- **FMA peak**: twelve independent scalar float64 multiply-add chains in registers, no memory
  at all. On the Zen 3 VM one thread ran 1.94–2.04 FMAs per cycle, the core's two FMA pipes
  full (2026-12-08). Two threads on the two hardware threads of one core share those pipes
  and gain about 1×; on two cores, 2×.
- **A latency chain**: one dependent multiply-add chain per thread, which leaves the pipes
  mostly idle.
- **Cache reads**: one dependent chain of loads per thread through a random cycle of 64-byte
  lines, 384 KiB (inside a Zen 3 core's 512 KiB L2) and 2 MiB (beyond L2, inside the L3 the
  CPU reports), each thread its own buffer. It also prints the ns per load at one thread
  (min / median / max over the rounds).

On two physical cores of their own, all of them gain about 2×. Where the two threads share
one core (the host running the two vCPUs as the two hardware threads of one core), the FMA
peak gains about 1× and the L2 reads far less than 2×, while the latency chain still gains
about 2×. Where
another guest's work shares the cores or the L3, the reads slow down from round to round,
at one thread as at two.

What the Zen 3 VM of issue 17 showed (docs/design.md section 9):

- In one session, three runs of 30 rounds: the FMA gain read 0.84–1.30× in 18 rounds and
  1.6–2.9× in the rest; the latency chain 1.72–2.11× in every round.
- In the next session, three runs of 30 rounds with the cache reads:
  - FMA work: 1.61–2.90× in 83 rounds, 0.71–1.32× in 7 (six of them in the last run);
  - latency chain: 1.86–2.38× in every round of the first two runs, 1.00–1.65× in 7 rounds
    of the last (there the host took time from one vCPU, whatever the work);
  - 384 KiB reads: 0.80–2.56× (a run's median 1.32–1.83×), 7.9–22.9 ns per load at one
    thread;
  - 2 MiB reads: 0.36–8.77×, 21–236 ns per load at one thread (from L3 hits to memory).

  In that session fastmf's half-steps gained 1.2–1.7× from the second thread while the FMA
  work gained about 2×, even with all their data in cache. They read their factor rows
  through L2 and L3, and the share of those the host leaves this guest moves from moment to
  moment; the FMA work reads no memory.
- In the session after (2026-12-08), the FMA peak probe's first run gained 0.99–1.04× in 6 of
  10 rounds while the latency chain gained 1.66–2.01× in every round: for those seconds the
  two vCPUs shared one core's FMA pipes, which the FMA throughput probe, at 1.14 FMAs per
  cycle, had not shown. Around the peer runs of that session its medians read 1.85–1.98×.
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


@njit(fastmath=True)
def _fma_peak(n, x):
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = 1.0
    for _ in range(n):  # 12 chains cover the FMA latency (4 cycles) of both pipes
        a0, a1, a2, a3 = a0 * x + 1.0, a1 * x + 1.0, a2 * x + 1.0, a3 * x + 1.0
        a4, a5, a6, a7 = a4 * x + 1.0, a5 * x + 1.0, a6 * x + 1.0, a7 * x + 1.0
        a8, a9, a10, a11 = a8 * x + 1.0, a9 * x + 1.0, a10 * x + 1.0, a11 * x + 1.0
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11


@njit(parallel=True)
def _run(kind, n, n_threads):
    out = np.zeros(n_threads)
    for t in prange(n_threads):
        if kind == 0:
            out[t] = _fma_throughput(n, np.float32(0.999))
        elif kind == 1:
            out[t] = _fma_peak(n, 0.999)
        else:
            out[t] = _latency_chain(n, 0.999)
    return out


@njit
def _chase(nxt, steps):
    i = 0
    for _ in range(steps):
        i = nxt[i]
    return i


@njit(parallel=True)
def _run_chase(bufs, steps, n_threads):
    out = np.zeros(n_threads, np.int64)
    for t in prange(n_threads):
        out[t] = _chase(bufs[t], steps)
    return out


def _cycles(kib: int) -> np.ndarray:
    """Two buffers (one per thread) of ``kib`` KiB, each a random cycle through its 64-byte
    lines: entry ``8 a`` holds ``8 b`` where line ``b`` follows line ``a``."""
    lines = kib * 1024 // 64
    bufs = np.zeros((2, lines * 8), np.int64)
    for t in range(2):
        perm = np.random.default_rng(t).permutation(lines)
        bufs[t, perm * 8] = np.roll(perm, -1) * 8
    return bufs


def _timed(kernel, args: tuple, threads: int) -> float:
    """Seconds for ``kernel(*args, threads)`` on ``threads`` numba threads."""
    numba.set_num_threads(threads)
    t = time.perf_counter()
    kernel(*args, threads)
    return time.perf_counter() - t


FMA_PEAK = 1
KINDS = {0: ("FMA throughput", 400_000), FMA_PEAK: ("FMA peak", 5_000_000),
         2: ("latency chain", 20_000_000)}
CHAINS_KIB = (384, 2048)


def _one_then_two(kernel, args: tuple) -> tuple[float, float]:
    """Seconds for ``kernel(*args, threads)`` on one thread, then on two."""
    return _timed(kernel, args, 1), _timed(kernel, args, 2)


def peak_gain() -> float:
    """One round of the FMA peak: its two-thread gain ``2 t1 / t2``. Needs two numba threads;
    the first call compiles."""
    t1, t2 = _one_then_two(_run, (FMA_PEAK, KINDS[FMA_PEAK][1]))
    return 2 * t1 / t2


def probe(rounds: int) -> tuple[dict, dict]:
    """``rounds`` rounds of every kind of work, one thread then two. Returns ``(gains, ns)``:
    ``gains[name]`` the two-thread gain ``2 t1 / t2`` of each round, ``ns[name]`` the ns per
    load at one thread of each round, for the cache reads. Needs two numba threads."""
    for kind in KINDS:
        _run(kind, 10, 2)  # compile
    chains = {f"reads {kib} KiB": _cycles(kib) for kib in CHAINS_KIB}
    steps = 1_000_000
    _run_chase(_cycles(1), 10, 2)  # compile
    work = {name: (_run, (kind, n)) for kind, (name, n) in KINDS.items()}
    work.update({name: (_run_chase, (bufs, steps)) for name, bufs in chains.items()})
    gains = {name: [] for name in work}
    ns = {name: [] for name in chains}
    previous = numba.get_num_threads()
    try:
        for _ in range(rounds):
            for name, (kernel, args) in work.items():
                t1, t2 = _one_then_two(kernel, args)
                gains[name].append(2 * t1 / t2)
                if name in ns:
                    ns[name].append(t1 / steps * 1e9)
    finally:
        numba.set_num_threads(previous)
    return gains, ns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    if numba.config.NUMBA_NUM_THREADS < 2:
        raise SystemExit("two_cores.py: numba sees fewer than two threads")
    gains, ns = probe(args.rounds)
    for name, values in gains.items():
        print(f"{name:15s} two-thread gain, {args.rounds} rounds sorted: "
              + " ".join(f"{v:.2f}" for v in np.sort(values)))
    for name, t in ns.items():
        print(f"{name}: ns per load at one thread, min / median / max: "
              f"{min(t):.1f} / {np.median(t):.1f} / {max(t):.1f}")


if __name__ == "__main__":
    main()
