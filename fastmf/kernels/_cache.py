"""Where numba writes its compiled-kernel cache: outside the installed package.

numba's default is a ``__pycache__`` beside each source file. Inside ``site-packages`` that
folder outlives ``pip uninstall``; a later editable install of the same project then finds a
``fastmf/kernels`` folder without ``__init__.py`` there and imports it as an empty namespace
package (issue 13: the README's two commands, run in order, broke ``fastmf --version``). It
also fails for a user who cannot write the package directory. The cache goes to the first
writable of ``$NUMBA_CACHE_DIR`` (the user's choice, left alone), ``$FASTMF_CACHE_DIR``,
``$XDG_CACHE_HOME/fastmf/numba`` or ``~/.cache/fastmf/numba``, and a per-user folder in the
system's temporary directory.

Inside that folder, each version of the kernels' source gets its own subfolder, named by a
hash of every ``fastmf/kernels/*.py``. numba checks a cached function against its own file's
time stamp only: a kernel that inlines a helper from another file (the Gibbs draw calls the
ALS Cholesky) kept running the old helper after that file changed, until its own file did.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _candidates() -> list[Path]:
    out = []
    if os.environ.get("FASTMF_CACHE_DIR"):
        out.append(Path(os.environ["FASTMF_CACHE_DIR"]))
    xdg = os.environ.get("XDG_CACHE_HOME")
    out.append(Path(xdg) / "fastmf" / "numba" if xdg else
               Path.home() / ".cache" / "fastmf" / "numba")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    out.append(Path(tempfile.gettempdir()) / f"fastmf-numba-{uid}")
    return out


def source_key(folder: Path) -> str:
    """A short hash of the ``*.py`` files in ``folder`` (names and contents): it changes
    whenever any kernel's source does."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except (OSError, RuntimeError):
        return False


_CHOSEN: list[Path] = []


@contextlib.contextmanager
def kernel_cache() -> Iterator[Path | None]:
    """Decorate fastmf's kernels inside this block: their cache goes to a writable folder
    outside the package (None when the user set ``NUMBA_CACHE_DIR``, or when nothing is
    writable and caching is left to numba). numba fixes a function's cache folder when it is
    decorated, so its global setting is restored afterwards: the user's own functions are
    not affected."""
    import numba

    if os.environ.get("NUMBA_CACHE_DIR"):
        yield None
        return
    key = source_key(Path(__file__).parent)
    path = next((p / key for p in _candidates() if _writable(p / key)), None)
    previous = numba.config.CACHE_DIR
    if path is not None:
        numba.config.CACHE_DIR = str(path)
        _CHOSEN.append(path)
    try:
        yield path
    finally:
        numba.config.CACHE_DIR = previous


def cache_is_warm() -> bool:
    """Whether compiled kernels from an earlier run are there (index files exist)."""
    root = Path(os.environ.get("NUMBA_CACHE_DIR") or (_CHOSEN[0] if _CHOSEN else
                                                      Path(__file__).parent / "__pycache__"))
    try:
        return any(root.rglob("*.nbi"))
    except OSError:
        return False
