"""Issue 14: model files that cannot hurt, atomic saves, failed refits, parameter checks.
Each test is named after the defect it pins."""

import json
import os
import threading

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
