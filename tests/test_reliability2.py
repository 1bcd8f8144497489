"""Issue 14: model files that cannot hurt, atomic saves, failed refits, parameter checks.
Each test is named after the defect it pins."""

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import awkward_ratings

import fastmf
from fastmf import BiasedALS, ModelFileError, Ratings
from fastmf.persist import model_digest, write_npz


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.npz"
    model = BiasedALS(3, n_iter=3, random_state=0).fit(awkward_ratings(seed=6))
    model.save(path)
    with np.load(path) as z:
        meta = json.loads(str(z["metadata"][()]))
        arrays = {k: z[k] for k in z.files if k != "metadata"}
    return path, meta, arrays


def _write(path, meta, arrays, recompute=True):
    meta = dict(meta)
    if recompute:
        meta["digest"] = model_digest(meta, arrays)
    write_npz(path, metadata=np.array(json.dumps(meta)), **arrays)


def _use(model):
    """What a user does with a loaded model; must not crash the process."""
    u, i = model.user_ids_[:3], model.item_ids_[:3]
    model.predict(u, i)
    model.recommend_batch(model.user_ids_[:4], n=3)
    model.similar_items(model.item_ids_[0], n=2)


def test_editing_the_metadata_is_caught_by_the_digest(saved, tmp_path):
    # the digest used to cover the arrays only: global_mean 3.2 -> 99.8 loaded silently
    path, meta, arrays = saved
    _write(tmp_path / "m.npz", {**meta, "global_mean": 99.76}, arrays, recompute=False)
    with pytest.raises(ModelFileError, match="digest mismatch"):
        fastmf.load(tmp_path / "m.npz")


@pytest.mark.parametrize("edit, match", [
    (lambda a: a["rated_indices"].__setitem__(0, 10**6), "rated_indices refers to item"),
    (lambda a: a["rated_indptr"].__setitem__(-1, 10**12), "not a valid row pointer"),
    (lambda a: a["user_factors"].__setitem__((0, 0), np.nan), "user_factors holds NaN"),
    (lambda a: a["item_ids"].__setitem__(slice(0, 2), a["item_ids"][1::-1]), "not sorted"),
    (lambda a: a["item_counts"].__setitem__(0, -5), "item_counts holds negative"),
], ids=["index-out-of-range", "huge-indptr", "nan-factors", "unsorted-ids", "negative-count"])
def test_crafted_arrays_with_a_recomputed_digest_are_refused(saved, tmp_path, edit, match):
    # out-of-range rated_indices made recommend write out of bounds (SIGSEGV)
    path, meta, arrays = saved
    arrays = {k: v.copy() for k, v in arrays.items()}
    edit(arrays)
    _write(tmp_path / "m.npz", meta, arrays)
    with pytest.raises(ModelFileError, match=match):
        fastmf.load(tmp_path / "m.npz")


def test_fuzzed_model_files_load_cleanly_or_raise_model_file_error(saved, tmp_path):
    path, meta, arrays = saved
    raw = path.read_bytes()
    rng = np.random.default_rng(0)
    target = tmp_path / "f.npz"
    outcomes = {"refused": 0, "loaded": 0}
    specials = [np.nan, np.inf, -1, 0, 2**31, -(2**40), 1e30, 7]
    for trial in range(1000):
        kind = trial % 3
        if kind == 0:  # random bytes
            data = bytearray(raw)
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
                data[pos] = int(rng.integers(0, 256))
            target.write_bytes(bytes(data))
        elif kind == 1:  # array values, digest recomputed
            mutated = {k: v.copy() for k, v in arrays.items()}
            name = sorted(mutated)[int(rng.integers(len(mutated)))]
            a = mutated[name]
            if a.size and a.dtype.kind in "iuf":
                flat = a.reshape(-1)
                value = specials[int(rng.integers(len(specials)))]
                if a.dtype.kind in "iu":  # what fits the integer type
                    info = np.iinfo(a.dtype)
                    value = max(info.min, min(info.max, int(value))) if np.isfinite(value) \
                        else -1
                with np.errstate(all="ignore"):
                    flat[int(rng.integers(flat.size))] = value
            _write(target, meta, mutated)
        else:  # metadata fields, digest recomputed
            field = ["global_mean", "n_iter", "rating_range", "residual_std", "params",
                     "estimator", "format_version"][int(rng.integers(7))]
            value = [None, "x", -1, 1e308, [1, 2, 3], {"n_factors": 0}, float("nan"),
                     "BayesianALS", 99][int(rng.integers(9))]
            _write(target, {**meta, field: value}, arrays)
        try:
            model = fastmf.load(target)
        except ModelFileError:
            outcomes["refused"] += 1
            continue
        _use(model)
        outcomes["loaded"] += 1
    assert outcomes["refused"] > 300 and sum(outcomes.values()) == 1000


def test_save_never_follows_a_planted_symlink(tmp_path):
    # the temporary name used to be a fixed <out>.tmp, followed if it was a symlink
    model = BiasedALS(2, n_iter=1, random_state=0).fit(awkward_ratings())
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "m.npz.tmp").symlink_to(victim)
    model.save(tmp_path / "m.npz")
    assert victim.read_text() == "precious"
    assert fastmf.load(tmp_path / "m.npz").n_iter_ == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.npz")]


def test_concurrent_savers_and_a_reader_see_whole_files_only(tmp_path):
    # two processes saving to one path: FileNotFoundError and "Bad CRC" loads before
    models = [BiasedALS(2, n_iter=n, random_state=0).fit(awkward_ratings()) for n in (1, 2)]
    path = tmp_path / "m.npz"
    models[0].save(path)
    errors = []

    def writer(model):
        try:
            for _ in range(40):
                model.save(path)
        except Exception as exc:  # noqa: BLE001 - the test collects them
            errors.append(exc)

    def reader():
        for _ in range(60):
            try:
                assert fastmf.load(path).n_iter_ in (1, 2)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(m,)) for m in models]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_a_failed_refit_keeps_the_previous_model():
    # m.fit(A); m.reg = 0; m.fit(B) raised, then m.predict gave NaN with B's ids
    a = awkward_ratings(seed=1)
    model = BiasedALS(4, n_iter=2, random_state=0).fit(a)
    before = model.predict(a.user_ids[:5], a.item_ids[:5])
    ids = model.user_ids_.copy()
    b = Ratings(["x", "y", "z"], ["p", "q", "p"], [1.0, 2.0, 3.0])
    model.reg = 0.0
    with pytest.raises(FloatingPointError):
        model.fit(b)
    np.testing.assert_array_equal(model.user_ids_, ids)
    np.testing.assert_array_equal(model.predict(a.user_ids[:5], a.item_ids[:5]), before)


def test_a_failed_first_fit_leaves_the_model_unfitted():
    model = BiasedALS(4, reg=0.0, n_iter=2)
    with pytest.raises(FloatingPointError):
        model.fit(Ratings([1, 2], [1, 1], [1.0, 2.0]))
    with pytest.raises(AttributeError, match="not fitted"):
        model.predict([1], [1])


@pytest.mark.parametrize("rounds", [0, -1, 1.5, "3"])
def test_bad_early_stopping_rounds_fail_before_any_iteration(rounds):
    r = awkward_ratings()
    calls = []
    with pytest.raises(ValueError, match="early_stopping_rounds must be a positive int"):
        BiasedALS(2, n_iter=3).fit(r, validation=r, early_stopping_rounds=rounds,
                                   callback=lambda it, m: calls.append(it))
    assert calls == []


def test_an_empty_validation_set_is_an_error_not_a_nan_curve():
    r = awkward_ratings()
    with pytest.raises(ValueError, match="validation set is empty"):
        BiasedALS(2, n_iter=2).fit(r, validation=r.subset(np.zeros(r.nnz, bool)))


def test_temporary_names_of_checkpoints_are_unique_per_write(tmp_path):
    r = awkward_ratings()
    ck = tmp_path / "fit.ckpt"
    BiasedALS(2, n_iter=3, random_state=0).fit(r, checkpoint=ck, checkpoint_every=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.ckpt"]
    assert os.path.getsize(ck) > 0


def test_float_ids_beyond_2_to_53_are_refused_not_merged():
    # -1e19 and 1e19 both became int64-min: two users merged, only a RuntimeWarning
    with pytest.raises(ValueError, match="beyond 2\\*\\*53"):
        Ratings(np.array([-1e19, 1e19]), [1, 2], [3.0, 4.0])


def test_nat_ids_are_refused():
    users = np.array(["2024-01-01", "NaT"], dtype="datetime64[D]")
    with pytest.raises(ValueError, match="user id missing at row 1: NaT"):
        Ratings(users, [1, 2], [3.0, 4.0])


def test_text_ids_that_differ_as_text_stay_apart(tmp_path):
    # a CSV with user ids 007 and 7 merged them into one user
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n007,1,4\n7,1,5\n")
    r = fastmf.read_ratings(path)
    assert sorted(r.user_ids) == ["007", "7"] and r.nnz == 2
    path.write_text("user,item,rating\n7,1,4\n8,1,5\n")
    assert fastmf.read_ratings(path).user_ids.dtype == np.int64


def test_cli_on_a_read_only_folder_is_one_error_line_and_leaves_nothing(tmp_path):
    import subprocess
    import sys

    if os.geteuid() == 0:
        pytest.skip("root writes through read-only permissions")
    r = awkward_ratings()
    data = tmp_path / "r.csv"
    r.to_dataframe().to_csv(data, index=False)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    proc = subprocess.run([sys.executable, "-m", "fastmf.cli", "fit", str(data), "-o",
                           str(out / "m.npz")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []


def test_cli_save_failure_is_one_error_line(tmp_path):
    # a full or read-only disk printed a traceback; /proc takes no files, even from root
    import subprocess
    import sys

    r = awkward_ratings()
    data = tmp_path / "r.csv"
    r.to_dataframe().to_csv(data, index=False)
    proc = subprocess.run([sys.executable, "-m", "fastmf.cli", "fit", str(data), "-o",
                           "/proc/fastmf-cannot-write-here.npz", "--iters", "1", "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("fastmf: error:") and "Traceback" not in proc.stderr


def test_a_save_that_fails_midway_leaves_no_temporary_file(tmp_path, monkeypatch):
    # a full disk: the write raises OSError; the .tmp file used to stay behind
    model = BiasedALS(2, n_iter=1, random_state=0).fit(awkward_ratings())

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match="No space left"):
        model.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_fits_in_threads_restore_blas_threads():
    # 3 of 5 runs left OpenBLAS at one thread for the whole process
    from threadpoolctl import threadpool_info

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    r = awkward_ratings()
    BiasedALS(2, n_iter=1).fit(r)  # loads scipy's BLAS too: run alone, the test saw it appear
    before = blas()
    for _ in range(5):
        threads = [threading.Thread(target=lambda: BiasedALS(2, n_iter=3).fit(r))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert blas() == before


def test_import_and_a_cached_kernel_work_when_home_and_the_package_are_not_writable(tmp_path):
    # "cannot cache function '_cholesky_solve'" for a user who cannot write either. Importing
    # fastmf decorates every kernel (where numba raised that); one small kernel then compiles
    # and writes its cache through the same locator as a fit's. A fit here compiled all of
    # its kernels afresh in the subprocess: about 60 s of a cold CI run for no more coverage.
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR",
                                                            "FASTMF_CACHE_DIR")}
    env.update(HOME=str(tmp_path / "nonexistent" / "home"), XDG_CACHE_HOME="/proc/nope",
               TMPDIR=str(tmp_path))
    code = ("import fastmf; from fastmf.kernels.topn import log_ndtr; assert log_ndtr(0.0) < 0;"
            " from fastmf.kernels import _cache; print(_cache._CHOSEN[0])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    chosen = Path(proc.stdout.strip())
    assert tmp_path in chosen.parents  # fell back to the temporary directory
    assert any(chosen.rglob("*log_ndtr*.nbi"))  # and the kernel's cache was written there


@pytest.mark.parametrize("scale", [1e4, 1e5, 1e6])
def test_float32_joint_solves_work_at_large_rating_scales(scale):
    # prices, seconds, counts: "not positive definite ... increase reg" with reg = 0.1
    base, _ = fastmf.make_ratings(300, 200, 8000, random_state=0, rating_scale=(1, 5))
    big = Ratings(base.user_ids[base.user_index], base.item_ids[base.item_index],
                  base.values * scale)
    m32 = BiasedALS(6, n_iter=6, random_state=0).fit(big)
    m64 = BiasedALS(6, n_iter=6, dtype="float64", random_state=0).fit(big)
    assert m32.loss_curve_[-1] == pytest.approx(m64.loss_curve_[-1], rel=1e-3)


def test_a_reg_that_overflows_float32_is_named_as_such():
    with pytest.raises(ValueError, match="reg=1e\\+39 does not fit in float32"):
        BiasedALS(2, reg=1e39).fit(awkward_ratings())


@pytest.mark.parametrize("factor", [0.001, 1000.0])
def test_bayesian_als_does_not_depend_on_the_rating_scale(factor):
    # ratings x 0.001: BayesianALS did worse than biases only (0.667 vs 0.566)
    from fastmf.baseline import BiasOnly
    from fastmf.model_selection import train_test_split

    r, _ = fastmf.make_ratings(300, 200, 12000, n_factors=3, noise=0.3, random_state=2,
                               rating_scale=(1, 5))
    scaled = Ratings(r.user_ids[r.user_index], r.item_ids[r.item_index], r.values * factor)

    def rmse(model, data):
        train, test = train_test_split(data, 0.2, random_state=0)
        pred = model.fit(train).predict(test.user_ids[test.user_index],
                                        test.item_ids[test.item_index])
        return float(np.sqrt(np.mean((pred - test.values) ** 2)))

    bayes = fastmf.BayesianALS(3, n_samples=20, burn_in=10, dtype="float64", random_state=0)
    plain = rmse(bayes, r)
    assert rmse(bayes, scaled) / factor == pytest.approx(plain, rel=0.02)
    assert rmse(bayes, scaled) < rmse(BiasOnly(), scaled)
