"""Wall time of ``import fastmf`` plus a first fit on MovieLens-100K in a new process.

    python bench/cold_start.py [path/to/ml-100k/u.data]

Run it twice: the first run may compile the kernels into numba's on-disk cache; the second
is the warm-process figure (a new interpreter with the JIT cache on disk).
"""

import os
import subprocess
import sys
from pathlib import Path

CODE = """
import time
t0 = time.perf_counter()
import fastmf
t1 = time.perf_counter()
ratings = fastmf.read_ratings({path!r})
t2 = time.perf_counter()
model = fastmf.BiasedALS(random_state=0).fit(ratings)
t3 = time.perf_counter()
print(f"import {{t1 - t0:.2f}} s, read {{t2 - t1:.2f}} s, fit {{t3 - t2:.2f}} s, "
      f"total {{t3 - t0:.2f}} s")
"""


def main() -> None:
    default = Path(os.environ.get("FASTMF_DATA_DIR", Path(__file__).resolve().parents[2]
                                  / "shared" / "data")) / "ml-100k" / "u.data"
    path = sys.argv[1] if len(sys.argv) > 1 else str(default)
    for run in ("first", "second"):
        out = subprocess.run([sys.executable, "-c", CODE.format(path=path)], check=True,
                             capture_output=True, text=True).stdout.strip()
        print(f"{run} process: {out}")


if __name__ == "__main__":
    main()
