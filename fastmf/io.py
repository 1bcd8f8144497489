"""Reading rating files: CSV/TSV (with or without a header), Parquet and the MovieLens formats.

Parsing is pandas' (pyarrow for Parquet); this module chooses the dialect, picks the columns
and turns every failure into a ``ValueError`` that names the file and, where it can, the line.
"""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from fastmf.ratings import Duplicates, Ratings, pick_columns

FORMATS = ("auto", "csv", "tsv", "parquet", "ml-100k", "ml-dat", "ml-csv")



def read_ratings(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    sep: str | None = None,
    header: bool | None = None,
    columns: tuple[Any, Any, Any] | None = None,
    duplicates: Duplicates = "raise",
) -> Ratings:
    """Read ``(user, item, rating)`` triples from a file.

    Parameters
    ----------
    path : path-like
        A text file (optionally ``.gz``) or a Parquet file.
    format : {"auto", "csv", "tsv", "parquet", "ml-100k", "ml-dat", "ml-csv"}
        ``"ml-100k"``: MovieLens ``u.data`` (tab-separated, no header); ``"ml-dat"``:
        MovieLens 1M/10M ``ratings.dat`` (``::``-separated, latin-1); ``"ml-csv"``: MovieLens
        20M/25M/32M/latest ``ratings.csv``. ``"auto"`` decides from the name and first line.
    sep : str, optional
        Field separator for text files (default: from the format, or sniffed).
    header : bool, optional
        Whether the first line holds column names (default: sniffed).
    columns : (user, item, rating), optional
        Column names (files with a header) or 0-based positions. Default: the recognised
        header names (:data:`fastmf.ratings.COLUMN_NAMES`: ``user``/``userId``/...,
        ``item``/``movieId``/..., ``rating``/...); a file without a header is read as
        user, item, rating in its first three columns. A header whose names are not
        recognised is an error, never a guess: pass ``columns``.
    duplicates : {"raise", "mean", "last"}

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Empty file, not a rating file, ragged lines, missing or non-numeric ratings -- with the
        file and line named.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a rating file")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if format == "auto":
        format = _guess_format(path)

    if format == "parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError as exc:
            raise ImportError(
                "reading Parquet needs pyarrow: pip install 'fastmf[parquet]'"
            ) from exc
        except Exception as exc:
            raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
        first_line = 0
    else:
        frame, first_line = _read_text(path, format, sep, header)

    if frame.shape[0] == 0:
        raise ValueError(f"{path}: no ratings (the file has no data rows)")
    if frame.shape[1] < 3:
        raise ValueError(
            f"{path}: found {frame.shape[1]} column(s) per line, need at least 3 "
            "(user, item, rating); wrong separator? pass sep="
        )
    if columns is None and first_line == 0 and format != "parquet":
        columns = (0, 1, 2)  # no header: the documented positional layout
    ucol, icol, rcol = pick_columns(list(frame.columns), columns, str(path))
    rating = pd.to_numeric(frame[rcol], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(rating)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}, line {k + first_line + 1}: rating {frame[rcol].iloc[k]!r} is not a "
            f"finite number ({int(bad.sum())} bad line(s) in all)"
        )
    users, items = frame[ucol], frame[icol]
    for name, ids in (("user", users), ("item", items)):
        missing = pd.isna(ids.to_numpy())
        if missing.any():
            k = int(np.flatnonzero(missing)[0])
            raise ValueError(f"{path}, line {k + first_line + 1}: missing {name} id")
    users, items = _ids_from_text(users), _ids_from_text(items)
    try:
        return Ratings(users, items, rating, duplicates=duplicates)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _ids_from_text(column) -> np.ndarray:
    """A text column of ids as integers when every value is written as one canonically
    (``7``, ``-3``; not ``007`` or ``7.0``), else as the strings themselves -- so ids that
    differ as text never merge (issue 14: users ``007`` and ``7`` were one user)."""
    if column.dtype.kind in "iu":  # Parquet: already typed
        return column.to_numpy()
    if column.dtype.kind != "O" and str(column.dtype) not in ("string", "str"):
        return column.to_numpy()
    text = column.astype(str).str.strip()
    if text.str.fullmatch(r"-?(0|[1-9][0-9]{0,17})").all():
        return text.astype(np.int64).to_numpy()
    return text.to_numpy(dtype=object)


def _open_text(path: Path, encoding: str):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def _first_line(path: Path, encoding: str = "utf-8") -> str:
    try:
        with _open_text(path, encoding) as f:
            return f.readline()
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not a text rating file ({exc.__class__.__name__})") from None


def _guess_format(path: Path) -> str:
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith((".parquet", ".pq")):
        return "parquet"
    with open(path, "rb") as f:
        if f.read(4) == b"PAR1":
            return "parquet"
    if stem == "u.data" or (stem.startswith("u") and stem.endswith((".base", ".test"))):
        return "ml-100k"
    line = _first_line(path, "latin-1")
    if "::" in line:
        return "ml-dat"
    if stem.endswith(".csv") and line.startswith("userId,movieId,rating"):
        return "ml-csv"
    if stem.endswith((".tsv", ".tab")) or "\t" in line:
        return "tsv"
    return "csv"


def _read_text(path: Path, format: str, sep: str | None, header: bool | None):
    import pandas as pd

    encoding = "latin-1" if format in ("ml-dat", "ml-100k") else "utf-8"
    if format == "ml-100k":
        sep, header = sep or "\t", False if header is None else header
    elif format == "ml-dat":
        sep, header = sep or "::", False if header is None else header
    elif format == "ml-csv":
        sep, header = sep or ",", True if header is None else header
    elif format == "tsv":
        sep = sep or "\t"
    line = _first_line(path, encoding)
    if not line.strip():
        raise ValueError(f"{path}: the file is empty")
    if "\x00" in line:
        raise ValueError(f"{path}: not a text rating file (binary data)")
    if sep is None:
        try:
            sep = csv.Sniffer().sniff(line, delimiters=",;\t| ").delimiter
        except csv.Error:
            sep = ","
    if header is None:
        fields = [f.strip().strip('"') for f in line.rstrip("\r\n").split(sep)]
        header = len(fields) >= 3 and not _is_number(fields[2])  # a rating column is numeric
    try:
        # Every field as text: ids are decided below, so "007" and "7" stay two users
        frame = pd.read_csv(
            path, sep=sep, header=0 if header else None, engine="python" if len(sep) > 1 else "c",
            encoding=encoding, skipinitialspace=True, dtype=str,
            compression="gzip" if path.suffix == ".gz" else None,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: malformed line ({_parser_detail(exc)})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text rating file (undecodable bytes)") from None
    return frame, (1 if header else 0)


def _parser_detail(exc: Exception) -> str:
    msg = str(exc).strip()
    return msg.replace("Error tokenizing data. C error: ", "")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
