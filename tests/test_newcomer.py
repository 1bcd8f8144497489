"""Issue 13: a newcomer's first hour. Each test is named after the defect it pins; CLI cases
run through a subprocess or ``fastmf.cli.main``."""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import awkward_ratings

import fastmf
from fastmf import BiasedALS, Ratings
from fastmf.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, ok=True, env=None):
    proc = subprocess.run([sys.executable, "-m", "fastmf.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_readme_commands_compose_non_editable_then_editable_in_one_venv(tmp_path):
    # numba's cache used to land in site-packages/fastmf/kernels/__pycache__; pip uninstall
    # left it, and the editable install then imported that folder as an empty namespace
    # package: `fastmf --version` failed with "no attribute '__version__'".
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", "build", ".pytest_cache", ".benchmarks"))
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # the dependencies come from this environment; only fastmf is installed into the venv
    import numpy

    (site / "_deps.pth").write_text(str(Path(numpy.__file__).parents[1]) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*pip, str(repo)], check=True, capture_output=True)
    # one small cached kernel is enough to write a cache (the fit's kernels took a minute to
    # compile here, most of this test's time)
    code = "from fastmf.kernels.topn import log_ndtr; assert log_ndtr(0.0) < 0"
    subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, cwd=tmp_path)
    assert not list((site / "fastmf").rglob("*.nbi")), "kernel cache written into the package"
    subprocess.run([*pip, "-e", str(repo)], check=True, capture_output=True)
    out = subprocess.run([str(venv / "bin" / "fastmf"), "--version"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("fastmf "), out.stderr


def test_version_and_help_import_no_numba():
    code = ("import sys\nfrom fastmf.cli import main\nfor a in (['--version'], ['--help']):\n"
            "    try:\n        main(a)\n    except SystemExit:\n        pass\n"
            "print('numba' in sys.modules, 'fastmf.model' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_unknown_header_names_in_another_order_are_an_error_not_a_guess(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("ts,thing,who,title_len,grade\n1700000000,7,1,12,4\n1700000001,8,2,9,5\n")
    bad = cli("fit", path, "-o", tmp_path / "m.npz", ok=False)
    assert bad.returncode == 1 and "cannot tell which column holds the user" in bad.stderr
    assert "--columns" in bad.stderr
    ok = cli("fit", path, "-o", tmp_path / "m.npz", "--columns", "who,thing,grade",
             "--iters", 1, "--factors", 1, "--json", "-q")
    assert json.loads(ok.stdout)["users"] == 2


def test_known_names_in_any_order_are_read_by_name(tmp_path):
    # issue 13's file: timestamps first; customer, product and stars named
    path = tmp_path / "r.csv"
    path.write_text("ts,product_id,customer_id,title_len,stars\n"
                    "1700000000,7,1,12,4\n1700000001,8,2,9,5\n1700000002,7,2,9,3\n")
    r = fastmf.read_ratings(path)
    assert sorted(r.user_ids) == [1, 2] and sorted(r.item_ids) == [7, 8]
    assert sorted(r.values) == [3.0, 4.0, 5.0]


def test_fit_dataframe_with_movielens_column_names_and_columns_argument():
    df = pd.DataFrame({"userId": [1, 1, 2], "movieId": [10, 20, 10], "rating": [4.0, 3, 5]})
    model = BiasedALS(2, n_iter=2, random_state=0).fit(df)
    assert list(model.user_ids_) == [1, 2]
    other = pd.DataFrame({"a": [1, 1, 2], "b": [10, 20, 10], "c": [4.0, 3, 5]})
    with pytest.raises(ValueError, match="cannot tell which column"):
        BiasedALS(2, n_iter=2).fit(other)
    same = BiasedALS(2, n_iter=2, random_state=0).fit(other, columns=("a", "b", "c"))
    np.testing.assert_array_equal(same.user_factors_, model.user_factors_)


def test_an_id_of_another_type_raises_instead_of_predicting_like_a_stranger():
    model = BiasedALS(2, n_iter=2, random_state=0).fit(awkward_ratings(seed=1))
    with pytest.raises(TypeError, match=r"user id '1' is text, but the model's user ids are"):
        model.predict("1", 1)
    with pytest.raises(TypeError, match="item id '1' is text"):
        model.predict(1, "1")
    with pytest.raises(TypeError, match="user id '1' is text"):
        model.recommend("1")


def test_dense_array_with_zeros_as_missing_warns():
    dense = np.zeros((4, 5))
    dense[0, 1], dense[2, 3] = 4.0, 5.0
    with pytest.warns(UserWarning, match="18 of its 20 cells are 0"):
        fastmf.Ratings.from_matrix(dense)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastmf.Ratings.from_matrix(np.where(dense == 0, np.nan, dense))  # NaN: no warning


def test_constant_ratings_warn_for_rating_models_only():
    r = Ratings([1, 1, 2, 3], [1, 2, 2, 3], [1.0, 1.0, 1.0, 1.0])
    with pytest.warns(UserWarning, match="all 4 ratings equal 1.0.*ImplicitALS"):
        BiasedALS(2, n_iter=1).fit(r)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastmf.ImplicitALS(2, n_iter=1).fit(r)


def test_compile_notice_when_no_kernel_is_cached(monkeypatch, capsys):
    import argparse

    from fastmf import cli as cli_module
    from fastmf.kernels import _cache

    monkeypatch.setattr(_cache, "cache_is_warm", lambda: False)
    cli_module._compile_notice(argparse.Namespace(quiet=False))
    assert "compiling kernels (first run only" in capsys.readouterr().err
    monkeypatch.setattr(_cache, "cache_is_warm", lambda: True)
    cli_module._compile_notice(argparse.Namespace(quiet=False))
    assert capsys.readouterr().err == ""


def test_cache_is_outside_the_package_and_detected(tmp_path, monkeypatch):
    from fastmf.kernels import _cache

    assert _cache._CHOSEN or os.environ.get("NUMBA_CACHE_DIR")
    if _cache._CHOSEN:
        assert Path(fastmf.__file__).parent not in _cache._CHOSEN[0].parents
    monkeypatch.setattr(_cache, "_CHOSEN", [tmp_path])
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert not _cache.cache_is_warm()
    (tmp_path / "k" ).mkdir()
    (tmp_path / "k" / "als.f-1.py311.nbi").write_bytes(b"")
    assert _cache.cache_is_warm()


def test_stale_cache_after_a_helper_changes_in_another_kernel_file(tmp_path):
    """numba checks a cached kernel against its own file only: after the ALS Cholesky
    changed, the Gibbs kernel that inlines it kept the old code until gibbs.py changed too.
    The cache folder is keyed by every kernel file, so editing any one moves it."""
    from fastmf.kernels import _cache

    kernels = Path(_cache.__file__).parent
    copy = tmp_path / "kernels"
    copy.mkdir()
    for path in kernels.glob("*.py"):
        (copy / path.name).write_bytes(path.read_bytes())
    key = _cache.source_key(copy)
    assert key == _cache.source_key(kernels)
    if _cache._CHOSEN:
        assert _cache._CHOSEN[0].name == key
    als = copy / "als.py"
    als.write_bytes(als.read_bytes() + b"\n# a helper changed\n")
    assert _cache.source_key(copy) != key


class _Dummy:
    """An estimator whose RMSE falls as ``reg`` grows: the best is the grid's last value."""

    def __init__(self, reg=1.0):
        self.reg = reg

    def get_params(self, deep=True):
        return {"reg": self.reg}

    def fit(self, X):
        return self

    def predict(self, users, items):
        return np.full(len(users), 3.0 + 1.0 / self.reg)


def test_search_warns_when_the_best_value_is_on_the_grids_edge():
    from fastmf.model_selection import search

    r = Ratings([1, 2, 3, 4], [1, 2, 3, 4], [3.0, 3.0, 3.0, 3.0])
    with pytest.warns(UserWarning, match=r"best reg=100.0 is at the edge of its candidates"):
        res = search(_Dummy(), r, {"reg": [1.0, 10.0, 100.0]}, cv=[(r, r)])
    assert res.best_params == {"reg": 100.0}


def test_tune_shows_progress_warns_at_the_edge_and_samples_with_n_candidates(tmp_path):
    r, _ = fastmf.make_ratings(60, 40, 900, random_state=0, rating_scale=(1, 5))
    path = tmp_path / "r.csv"
    r.to_dataframe().to_csv(path, index=False)
    out = cli("tune", path, "--factors", "1,2,3", "--reg", "0.1", "--iters", 2, "--folds", 2,
              "--n-candidates", 2, "--json")
    res = json.loads(out.stdout)
    assert len(res["results"]) == 2  # two of the three combinations
    assert "search" in out.stderr and "fit/s" in out.stderr or "it/s" in out.stderr


def test_ctrl_c_in_fit_saves_the_last_complete_iteration(tmp_path, monkeypatch):
    from fastmf._solver import ALSProblem

    r = awkward_ratings(seed=4)
    path = tmp_path / "r.csv"
    r.to_dataframe().to_csv(path, index=False)
    calls = {"n": 0}
    original = ALSProblem.half_step

    def half_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # the user half-step of iteration 3
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ALSProblem, "half_step", half_step)
    assert main(["fit", str(path), "-o", str(tmp_path / "m.npz"), "--factors", "2", "-q"]) == 130
    model = fastmf.load(tmp_path / "m.npz")
    assert model.n_iter_ == 2
    want = BiasedALS(2, n_iter=2, random_state=0).fit(fastmf.read_ratings(path))
    np.testing.assert_array_equal(model.user_factors_, want.user_factors_)


def test_cli_checkpoint_and_resume_equal_an_uninterrupted_fit(tmp_path):
    r = awkward_ratings(seed=4)
    path = tmp_path / "r.csv"
    r.to_dataframe().to_csv(path, index=False)
    ck = tmp_path / "fit.ckpt"
    base = ["fit", str(path), "--factors", "2", "-q", "--checkpoint", str(ck)]
    assert main([*base, "-o", str(tmp_path / "a.npz"), "--iters", "2",
                 "--checkpoint-every", "1"]) == 0
    assert main([*base, "-o", str(tmp_path / "b.npz"), "--iters", "4", "--resume"]) == 0
    got = fastmf.load(tmp_path / "b.npz")
    want = BiasedALS(2, n_iter=4, random_state=0).fit(fastmf.read_ratings(path))
    np.testing.assert_array_equal(got.user_factors_, want.user_factors_)
    with pytest.raises(SystemExit):
        main(["fit", str(path), "-o", str(tmp_path / "c.npz"), "--resume", "--bogus"])
    assert main(["fit", str(path), "-o", str(tmp_path / "c.npz"), "--resume", "-q"]) == 1


def test_bad_output_path_is_refused_before_fitting(tmp_path):
    bad = cli("fit", tmp_path / "missing.csv", "-o", tmp_path / "no" / "such" / "m.npz",
              ok=False)
    assert bad.returncode == 1 and "cannot write to" in bad.stderr


def test_titles_from_another_data_set_are_flagged(tmp_path):
    r = Ratings(np.repeat([1, 2, 3], 3), np.tile([101, 102, 103], 3), np.arange(9) % 5 + 1.0)
    model = BiasedALS(2, n_iter=2, random_state=0).fit(r)
    model.save(tmp_path / "m.npz")
    (tmp_path / "movies").mkdir()
    (tmp_path / "movies" / "movies.dat").write_text("1::Toy Story (1995)::Animation\n"
                                                    "2::Jumanji (1995)::Adventure\n")
    out = cli("recommend", tmp_path / "m.npz", "--user", 1, "--include-rated", "--titles",
              tmp_path / "movies")
    assert "titles for only 0 of the model's 3 items" in out.stderr


def test_metrics_model_selection_datasets_are_attributes_and_score_works_with_sklearn():
    for name in ("metrics", "model_selection", "datasets"):
        assert getattr(fastmf, name).__name__ == f"fastmf.{name}"
    r, _ = fastmf.make_ratings(80, 50, 2000, random_state=0, rating_scale=(1, 5))
    df = r.to_dataframe()
    assert list(df.columns) == ["user", "item", "rating"] and len(df) == r.nnz
    model = BiasedALS(3, n_iter=3, random_state=0).fit(df)
    s = model.score(df)
    pred = model.predict(df["user"], df["item"])
    assert s == pytest.approx(-np.sqrt(np.mean((pred - df["rating"]) ** 2)))
    ms = pytest.importorskip("sklearn.model_selection")
    grid = ms.GridSearchCV(BiasedALS(n_iter=3, random_state=0), {"n_factors": [1, 3]}, cv=2)
    grid.fit(df)
    assert grid.best_params_["n_factors"] in (1, 3) and grid.best_score_ < 0


def test_demo_detects_the_movielens_variant_from_the_folder(tmp_path):
    from fastmf.datasets import detect_movielens_variant

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,0\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "u.data").write_text("1\t1\t4\t0\n")
    assert detect_movielens_variant(tmp_path / "a") == "latest-small"
    assert detect_movielens_variant(tmp_path / "b") == "100k"
    with pytest.raises(ValueError, match="pass the variant"):
        detect_movielens_variant(tmp_path)


def test_cli_errors_speak_cli(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("user,item,rating\n1,2,3\n1,2,4\n")
    bad = cli("fit", path, "-o", tmp_path / "m.npz", ok=False)
    assert "--duplicates mean" in bad.stderr and "duplicates='mean'" not in bad.stderr
    model = BiasedALS(2, n_iter=1).fit(awkward_ratings())
    model.save(tmp_path / "m.npz")
    bad = cli("recommend", tmp_path / "m.npz", "--user", 12345, ok=False)
    assert "unknown user id 12345" in bad.stderr and "position" not in bad.stderr
    assert "log details" in cli("recommend", "--help").stdout


def test_plot_labels_do_not_pile_up_or_leave_the_frame():
    from fastmf.plot import label_positions

    xy = np.array([[0.5, 0.5], [0.5, 0.5], [0.51, 0.5], [0.5, 0.9], [5.0, 5.0]])
    counts = np.array([10.0, 9, 8, 7, 6])
    chosen = label_positions(xy, counts, ["a long title"] * 5, np.zeros(2), np.ones(2), 25)
    assert chosen == [0, 3]  # 1 and 2 would sit on 0's label; 4 is outside the frame


def test_recommend_on_a_saved_model_imports_no_scipy_stats(tmp_path):
    # `fastmf recommend` on a saved model took 5-7 s; scipy.stats alone costs ~0.5 s
    BiasedALS(2, n_iter=1).fit(awkward_ratings()).save(tmp_path / "m.npz")
    code = (f"import sys, fastmf; m = fastmf.load({str(tmp_path / 'm.npz')!r}); "
            "m.recommend(0, n=3); print('scipy.stats' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False False", out.stderr
