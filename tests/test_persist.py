"""Saving and loading: exact round trips, and refusal of anything damaged."""

import json
import zipfile

import numpy as np
import pytest
from conftest import awkward_ratings

import fastmf
from fastmf import BiasedALS, ModelFileError


@pytest.fixture(scope="module")
def model():
    return BiasedALS(n_factors=3, n_iter=4, random_state=0).fit(awkward_ratings())


def test_round_trip_gives_identical_predictions(model, tmp_path):
    path = model.save(tmp_path / "m")
    assert path.name == "m.npz"
    loaded = fastmf.load(path)
    users = np.r_[model.user_ids_, 99999]
    items = np.resize(model.item_ids_, len(users))
    np.testing.assert_array_equal(loaded.predict(users, items), model.predict(users, items))
    np.testing.assert_array_equal(loaded.recommend_batch([0, 5], 4)[0],
                                  model.recommend_batch([0, 5], 4)[0])
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.loss_curve_, model.loss_curve_)
    assert loaded.n_iter_ == model.n_iter_ and loaded.global_mean_ == model.global_mean_


def test_string_ids_round_trip(tmp_path):
    r = fastmf.Ratings(["ann", "bob", "cy"], ["x", "y", "x"], [5.0, 3.0, 1.0])
    m = BiasedALS(n_factors=2, n_iter=2, random_state=0).fit(r)
    loaded = fastmf.load(m.save(tmp_path / "s.npz"))
    assert loaded.predict(["ann"], ["y"])[0] == m.predict(["ann"], ["y"])[0]


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = edit(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item, data)


def test_truncated_file(model, tmp_path):
    path = model.save(tmp_path / "m.npz")
    data = path.read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated|not a fastmf model"):
        fastmf.load(tmp_path / "t.npz")


def test_not_a_model_file(tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(ModelFileError, match="not a fastmf model"):
        fastmf.load(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", a=np.arange(3))
    with pytest.raises(ModelFileError, match="no metadata"):
        fastmf.load(tmp_path / "y.npz")
    with pytest.raises(FileNotFoundError):
        fastmf.load(tmp_path / "absent.npz")


def test_tampered_factors_are_detected(model, tmp_path):
    path = model.save(tmp_path / "m.npz")

    def edit(name, data):
        if name == "user_factors.npy":
            return data[:-4] + b"\x00\x00\x80\x3f"  # change the last float to 1.0
        return data

    _rewrite(path, tmp_path / "e.npz", edit)
    with pytest.raises(ModelFileError, match="modified or corrupted"):
        fastmf.load(tmp_path / "e.npz")


def test_future_format_version_is_refused(model, tmp_path):
    path = model.save(tmp_path / "m.npz")

    def edit(name, data):
        if name == "metadata.npy":
            with np.load(path) as npz:
                meta = json.loads(str(npz["metadata"][()]))
            meta["format_version"] = 99
            import io
            buf = io.BytesIO()
            np.save(buf, np.array(json.dumps(meta)))
            return buf.getvalue()
        return data

    _rewrite(path, tmp_path / "f.npz", edit)
    with pytest.raises(ModelFileError, match="format version 99.*upgrade fastmf"):
        fastmf.load(tmp_path / "f.npz")


def test_pickled_payload_is_never_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pwned')",))

    arr = np.empty(1, dtype=object)
    arr[0] = Boom()
    np.savez(tmp_path / "evil.npz", metadata=np.array("{}"), user_factors=arr)
    with pytest.raises(ModelFileError):
        fastmf.load(tmp_path / "evil.npz")


def test_saving_an_unfitted_model_fails(tmp_path):
    with pytest.raises(AttributeError, match="not fitted"):
        BiasedALS().save(tmp_path / "m.npz")
