"""The command line, end to end through subprocesses, on files the tests generate."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastmf

ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def run(*args, ok=True):
    proc = subprocess.run([sys.executable, "-m", "fastmf.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    ratings, _ = fastmf.make_ratings(150, 80, 3000, n_factors=3, rating_scale=(1, 5),
                                     random_state=4)
    rng = np.random.default_rng(0)
    test = rng.random(ratings.nnz) < 0.2
    for name, mask in (("train.csv", ~test), ("test.csv", test)):
        r = ratings.subset(mask)
        with open(d / name, "w") as f:
            f.write("user,item,rating\n")
            for u, i, v in zip(r.user_index, r.item_index, r.values):
                f.write(f"u{u},{i},{v:g}\n")
    return d


def test_fit_evaluate_recommend_similar_plot(files):
    model = files / "m.npz"
    out = run("fit", files / "train.csv", "-o", model, "--factors", 4, "--iters", 5,
              "--validation", files / "test.csv", "--json")
    summary = json.loads(out.stdout)
    assert summary["iterations"] == 5 and summary["model"] == str(model)
    assert "fit" in out.stderr  # the progress bar goes to stderr
    loaded = fastmf.load(model)
    assert loaded.n_factors == 4

    ev = json.loads(run("evaluate", model, files / "test.csv", "--json", "-k", 5).stdout)
    assert ev["rmse"] == pytest.approx(summary["validation_rmse"], rel=1e-5)
    assert 0 <= ev["ndcg@5"] <= 1

    rec = run("recommend", model, "--user", "u3", "-n", 4)
    lines = rec.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("1\t")
    items, _ = loaded.recommend("u3", n=4)
    assert [ln.split("\t")[1] for ln in lines] == [str(i) for i in items]

    sim = json.loads(run("similar", model, "--item", items[0], "-n", 3, "--json").stdout)
    assert len(sim["similar"]) == 3

    png = files / "m.png"
    run("plot", model, "-o", png, "-q")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_bayesian_fit_evaluate_plot(files):
    model = files / "b.npz"
    out = run("fit", files / "train.csv", "-o", model, "--bayesian", "--factors", 3,
              "--samples", 6, "--burn-in", 2, "--validation", files / "test.csv", "--json")
    summary = json.loads(out.stdout)
    assert summary["estimator"] == "BayesianALS"
    assert summary["iterations"] == 8 and summary["samples"] == 6
    assert "sigma=" in out.stderr  # progress: each sample's RMSE and noise level
    loaded = fastmf.load(model)
    assert isinstance(loaded, fastmf.BayesianALS) and loaded.user_factors_.shape[1] == 18
    ev = json.loads(run("evaluate", model, files / "test.csv", "--json").stdout)
    assert ev["rmse"] == pytest.approx(summary["validation_rmse"], rel=1e-5)
    run("plot", model, "-o", files / "b.png", "-q")
    assert (files / "b.png").read_bytes()[:4] == b"\x89PNG"
    # an option of the other estimator is refused, not silently ignored
    bad = run("fit", files / "train.csv", "-o", model, "--bayesian", "--early-stopping", 2,
              "--reg", 0.1, ok=False)
    assert bad.returncode == 1
    assert "--reg, --early-stopping: not an option of --model bayes" in bad.stderr
    bad = run("fit", files / "train.csv", "-o", model, "--samples", 5, ok=False)
    assert bad.returncode == 1 and "--samples: not an option of --model als" in bad.stderr


def test_fit_reads_standard_input(files):
    proc = subprocess.run([sys.executable, "-m", "fastmf.cli", "fit", "-", "-o",
                           str(files / "stdin.npz"), "--iters", "2", "-q", "--json"],
                          input=(files / "train.csv").read_text(), capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ratings"] == fastmf.read_ratings(files / "train.csv").nnz


def test_quiet_fit_prints_no_progress(files):
    out = run("fit", files / "train.csv", "-o", files / "q.npz", "--iters", 2, "--quiet")
    assert out.stderr == "" and "saved" in out.stdout


def test_tune_picks_from_its_grid(files):
    out = json.loads(run("tune", files / "train.csv", "--factors", "2,4", "--reg", "0.1",
                         "--folds", 2, "--iters", 3, "--json", "-o", files / "t.npz").stdout)
    assert out["best_params"]["n_factors"] in (2, 4) and len(out["results"]) == 2
    assert (files / "t.npz").exists()


def test_tune_bayesian_searches_the_factors(files):
    out = json.loads(run("tune", files / "train.csv", "--bayesian", "--factors", "2,3",
                         "--folds", 2, "--json", "-o", files / "tb.npz").stdout)
    assert out["best_params"]["n_factors"] in (2, 3) and len(out["results"]) == 2
    assert isinstance(fastmf.load(files / "tb.npz"), fastmf.BayesianALS)
    bad = run("tune", files / "train.csv", "--bayesian", "--reg", "0.1", ok=False)
    assert bad.returncode == 1 and "--reg: not an option of --model bayes" in bad.stderr


def test_demo_needs_no_files():
    out = run("demo", "--json", "-q", "--iters", 3)
    res = json.loads(out.stdout)
    assert res["rmse"]["test"] < res["rmse"]["baseline_test"]
    assert res["rmse"]["bayesian_test"] < res["rmse"]["baseline_test"]
    assert len(res["recommendations"]) == 5


@pytest.mark.parametrize("args,message", [
    (["fit", "{d}/missing.csv", "-o", "{d}/x.npz"], "no such file"),
    (["fit", "{d}/garbage.bin", "-o", "{d}/x.npz"], "not a text rating file"),
    (["recommend", "{d}/m.npz", "--user", "nobody"], "unknown user id"),
    (["evaluate", "{d}/garbage.bin", "{d}/test.csv"], "not a fastmf model file"),
    (["plot", "{d}/m.npz", "-o", "{d}/plot.jpg"], "give a .png file name"),
])
def test_user_mistakes_are_one_line_errors(files, args, message):
    (files / "garbage.bin").write_bytes(b"\x00\x01\x02\xff" * 100)
    if not (files / "m.npz").exists():
        run("fit", files / "train.csv", "-o", files / "m.npz", "--iters", 2, "-q")
    proc = run(*[a.format(d=files) for a in args], ok=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("fastmf: error:") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_errors_exit_2_and_help_works():
    proc = run("fit", ok=False)
    assert proc.returncode == 2 and "usage:" in proc.stderr
    for cmd in ([], ["fit"], ["demo"], ["tune"], ["plot"], ["recommend"], ["similar"],
                ["evaluate"]):
        assert "usage:" in run(*cmd, "--help").stdout
    assert run("--version").stdout.startswith("fastmf ")
