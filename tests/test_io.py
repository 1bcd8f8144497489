"""File ingestion and the MovieLens loaders, on small files the tests write themselves."""

import gzip

import numpy as np
import pandas as pd
import pytest
from conftest import movielens_file

from fastmf.datasets import load_movielens, load_movielens_titles
from fastmf.io import read_ratings


def _triples(r):
    return sorted(zip(r.user_ids[r.user_index].tolist(), r.item_ids[r.item_index].tolist(),
                      r.values.tolist()))


WANT = [(1, 10, 4.0), (1, 20, 3.0), (2, 10, 5.0)]


@pytest.mark.parametrize("text,kw", [
    ("user,item,rating\n1,10,4\n1,20,3\n2,10,5\n", {}),
    ("1,10,4\n1,20,3\n2,10,5\n", {}),
    ("1\t10\t4\n1\t20\t3\n2\t10\t5\n", {}),
    ("userId,movieId,rating,timestamp\n1,10,4.0,9\n1,20,3.0,9\n2,10,5.0,9\n", {}),
    ("ts;rating;item;user\n9;4;10;1\n9;3;20;1\n9;5;10;2\n", {}),  # named columns, any order
    ("a|b|c\n1|10|4\n1|20|3\n2|10|5\n", {"columns": ("a", "b", "c")}),
    ("x 1 10 4\nx 1 20 3\nx 2 10 5\n", {"sep": " ", "columns": (1, 2, 3)}),
])
def test_text_dialects(tmp_path, text, kw):
    f = tmp_path / "r.txt"
    f.write_text(text)
    assert _triples(read_ratings(f, **kw)) == WANT


def test_movielens_formats(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t4\t881250949\n1\t20\t3\t1\n2\t10\t5\t1\n")
    dat = tmp_path / "ratings.dat"
    dat.write_bytes("1::10::4::978300760\n1::20::3::1\n2::10::5::1\n".encode("latin-1"))
    gz = tmp_path / "ratings.dat.gz"
    gz.write_bytes(gzip.compress(dat.read_bytes()))
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,3.0,1\n2,10,5.0,1\n")
    for name in ("u.data", "ratings.dat", "ratings.dat.gz", "ratings.csv"):
        assert _triples(read_ratings(tmp_path / name)) == WANT, name
    assert _triples(load_movielens("1m", tmp_path)) == WANT
    assert _triples(load_movielens("100k", tmp_path / "u.data")) == WANT


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    f = tmp_path / "r.parquet"
    pd.DataFrame({"user": ["a", "a", "b"], "item": [10, 20, 10], "rating": [4.0, 3, 5]}
                 ).to_parquet(f)
    r = read_ratings(f)
    assert list(r.user_ids) == ["a", "b"] and r.nnz == 3


def test_titles(tmp_path):
    (tmp_path / "u.item").write_bytes("1|Toy Story (1995)|01-Jan-1995||x|0\n2|GoldenEye (1995)|"
                                      "\n".encode("latin-1"))
    assert load_movielens_titles(tmp_path) == {1: "Toy Story (1995)",
                                                       2: "GoldenEye (1995)"}


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"user,item,rating\n", "no ratings"),
    (b"1,10,4\n1,20\n2,10,5,7,8\n", "malformed line"),
    (b"1;10;4\n1;20;3\n", None),  # a sniffed separator: fine
    (b"1 10 4\n", None),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a text rating file"),
    (b"1,10,4\n1,20,abc\n", "line 2: rating 'abc' is not a finite number"),
    (b"user,item,rating\n1,10,4\n1,20,nan\n", "line 3: rating"),
    (b"1,10,4\n1,10,5\n", "duplicate rating"),
    (b"1|10|4\n", None),
    (b"onlyonecolumn\n1\n2\n", "wrong separator"),
])
def test_bad_files_fail_clearly(tmp_path, content, match):
    f = tmp_path / "bad.csv"
    f.write_bytes(content)
    if match is None:
        assert read_ratings(f).nnz >= 1
        return
    with pytest.raises(ValueError, match=match):
        read_ratings(f)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_ratings(tmp_path / "nope.csv")
    (tmp_path / "r.csv").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="format must be one of"):
        read_ratings(tmp_path / "r.csv", format="xml")
    with pytest.raises(ValueError, match="is a directory"):
        read_ratings(tmp_path)


def test_load_movielens_without_data_or_download_says_how(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_movielens("100k", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="variant must be one of"):
        load_movielens("7k")


def test_real_movielens_100k():
    path = movielens_file("ml-100k", "u.data")
    r = load_movielens("100k", path.parent)
    assert (r.nnz, r.n_users, r.n_items) == (100_000, 943, 1682)
    assert np.bincount(r.values.astype(int))[1:].tolist() == [6110, 11370, 27145, 34174, 21201]
    titles = load_movielens_titles(path.parent)
    assert titles[1] == "Toy Story (1995)"


def test_real_movielens_1m_official_format_subset():
    path = movielens_file("ml-1m", "ratings_users1-2999.dat.gz")
    r = read_ratings(path)  # the official UserID::MovieID::Rating::Timestamp lines
    assert r.nnz == 487_650 and r.user_ids.min() == 1 and r.user_ids.max() == 2999


def test_real_movielens_1m_triples():
    path = movielens_file("ml-1m", "ratings_uir.tsv.gz")
    r = read_ratings(path)
    assert (r.nnz, r.n_users, r.n_items) == (1_000_209, 6040, 3706)
    assert r.values.mean() == pytest.approx(3.581564, abs=1e-6)

