"""The distributed fit on a 2-worker LocalCluster equals the single-machine fit."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import awkward_ratings

import fastmf
from fastmf import BayesianALS, BiasedALS

distributed = pytest.importorskip("dask.distributed")
pytest.importorskip("pyarrow")
from fastmf import distributed as fdist  # noqa: E402

PARAMS = dict(n_factors=3, reg=0.1, n_iter=6, dtype="float64", random_state=0)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    ratings = awkward_ratings(seed=11, n_users=80, n_items=50, n=900)
    # only ids with ratings: the distributed encode learns ids from the ratings
    frame = pd.DataFrame({"user": ratings.user_ids[ratings.user_index],
                          "item": ratings.item_ids[ratings.item_index],
                          "rating": ratings.values})
    path = tmp_path_factory.mktemp("pq") / "ratings.parquet"
    frame.to_parquet(path)
    local = fastmf.Ratings(frame["user"], frame["item"], frame["rating"])
    return path, local


def _starts(local, K=3):
    rng = np.random.default_rng(3)
    return (rng.standard_normal((local.n_users, K)) / K,
            rng.standard_normal((local.n_items, K)) / K)


def _close(a, b):
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_", "loss_curve_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("bias_update", ["joint", "sequential"])
def test_equals_the_single_machine_fit(client, data, tmp_path, bias_update):
    path, local = data
    U0, V0 = _starts(local)
    model = BiasedALS(bias_update=bias_update, **PARAMS)
    want = BiasedALS(**model.get_params()).fit(local, init_user_factors=U0,
                                                init_item_factors=V0)
    got = fdist.fit(client, path, model, init_user_factors=U0, init_item_factors=V0,
                    checkpoint_dir=tmp_path / "ck", checkpoint_every=2, item_blocks=2)
    np.testing.assert_array_equal(got.user_ids_, want.user_ids_)
    _close(got, want)
    users, items = local.user_ids[local.user_index], local.item_ids[local.item_index]
    np.testing.assert_allclose(got.predict(users, items), want.predict(users, items),
                               rtol=1e-10)
    assert got.recommend(users[0], n=3)[0].tolist() == want.recommend(users[0], n=3)[0].tolist()
    info = got.distributed_info_
    assert info["n_blocks"] == 2 and len(info["seconds_per_iteration"]) == 6
    assert info["bytes_up_per_iteration"] > 0


def test_result_does_not_depend_on_the_number_of_blocks(client, data, tmp_path):
    path, _ = data
    model = BiasedALS(**PARAMS)
    two = fdist.fit(client, path, model, n_blocks=2, checkpoint_dir=tmp_path / "a")
    three = fdist.fit(client, path, model, n_blocks=3, checkpoint_dir=tmp_path / "b")
    _close(two, three)


def test_checkpoint_then_resume_gives_the_same_factors(client, data, tmp_path):
    path, _ = data
    full = fdist.fit(client, path, BiasedALS(**PARAMS), checkpoint_dir=tmp_path / "full")
    ck = tmp_path / "ck"
    first = BiasedALS(**{**PARAMS, "n_iter": 4})
    fdist.fit(client, path, first, checkpoint_dir=ck, checkpoint_every=2)
    resumed = fdist.fit(client, path, BiasedALS(**PARAMS), checkpoint_dir=ck,
                        checkpoint_every=2)
    _close(resumed, full)
    with pytest.raises(ValueError, match="other data, parameters or blocks"):
        fdist.fit(client, path, BiasedALS(**{**PARAMS, "reg": 0.3}), checkpoint_dir=ck)


@pytest.mark.parametrize("files", [1, 3])
def test_a_killed_worker_mid_fit_gives_the_same_result(client, data, tmp_path, files):
    path, _ = data
    if files > 1:  # a Parquet directory, the usual input of a distributed job
        frame = pd.read_parquet(path)
        folder = tmp_path / "pq"
        folder.mkdir()
        cuts = np.linspace(0, len(frame), files + 1).astype(int)
        for k in range(files):
            frame.iloc[cuts[k]:cuts[k + 1]].to_parquet(folder / f"part-{k}.parquet")
        path = str(folder)
    want = fdist.fit(client, path, BiasedALS(**PARAMS), checkpoint_dir=tmp_path / "w")
    victim = sorted(client.scheduler_info()["workers"])[0]

    def kill_after_three(it, info):
        if it == 3:  # SIGKILL the worker process: its blocks and states are gone
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            deadline = time.time() + 30
            while victim in client.scheduler_info()["workers"] and time.time() < deadline:
                time.sleep(0.1)

    got = fdist.fit(client, path, BiasedALS(**PARAMS), checkpoint_dir=tmp_path / "k",
                    checkpoint_every=2, callback=kill_after_three)
    _close(got, want)


def test_no_worker_listed_for_a_moment_is_not_min_of_an_empty_sequence(client, data,
                                                                        monkeypatch):
    """After a worker was killed, the scheduler listed none for a moment and ``fit`` raised
    'min() arg is an empty sequence' before it read the data (seen in a fresh clone's test
    run, issue 17's stop of 2026-12-06). With no worker listed it now goes on to the input's
    own checks."""
    path, _ = data
    info = client.scheduler_info()
    monkeypatch.setattr(client, "scheduler_info", lambda **kw: {**info, "workers": {}})
    with pytest.raises(ValueError, match=r"no column\(s\) \['score'\]"):
        fdist.fit(client, path, rating_col="score")


def test_dask_dataframe_input_and_bad_input(client, data, tmp_path):
    import dask.dataframe as dd

    path, local = data
    frame = dd.read_parquet(str(path))
    got = fdist.fit(client, frame, BiasedALS(**{**PARAMS, "n_iter": 2}),
                    checkpoint_dir=tmp_path / "d")
    assert got.user_factors_.shape == (local.n_users, 3)
    with pytest.raises(ValueError, match="solver='cholesky'"):
        fdist.fit(client, path, BiasedALS(solver="cg"))
    with pytest.raises(TypeError, match="fits a BiasedALS, got BayesianALS"):
        fdist.fit(client, path, BayesianALS())
    with pytest.raises(ValueError, match=r"no column\(s\) \['score'\]"):
        fdist.fit(client, path, rating_col="score")


def test_seeded_factors_are_a_function_of_the_id_alone():
    a = fdist.seeded_factors(np.array([5, 9, 123]), 4, 0, np.float64)
    b = fdist.seeded_factors(np.array([123, 5]), 4, 0, np.float64)
    np.testing.assert_array_equal(a[[2, 0]], b)
    assert abs(a.std() * 4 - 1) < 0.8  # N(0, 1) / K, roughly
    s = fdist.seeded_factors(np.array(["x", "y"], dtype=object), 2, 1, np.float32)
    assert s.dtype == np.float32 and not np.array_equal(s[0], s[1])


@pytest.mark.parametrize("layout", ["parquet-4-files-uneven", "pandas-3-partitions"])
def test_multi_partition_inputs_equal_the_single_machine_fit(client, data, tmp_path, layout):
    # issue 14: a 2-file Parquet directory raised "user index 400 ... is outside 0..399",
    # 3-4 files or a pandas frame hung in the distributed sort
    path, local = data
    frame = pd.read_parquet(path)
    if layout.startswith("parquet"):
        cuts = [0, 37, 400, 420, len(frame)]  # uneven files, users split across them
        folder = tmp_path / "pq"
        folder.mkdir()
        for k in range(4):
            frame.iloc[cuts[k]:cuts[k + 1]].to_parquet(folder / f"part-{k}.parquet")
        source = str(folder)
    else:
        source = frame.sample(frac=1.0, random_state=0)  # rows in no particular order
    U0, V0 = _starts(local)
    model = BiasedALS(**PARAMS)
    want = BiasedALS(**PARAMS).fit(local, init_user_factors=U0, init_item_factors=V0)
    got = fdist.fit(client, source, model, n_blocks=3, init_user_factors=U0,
                    init_item_factors=V0, checkpoint_dir=tmp_path / "ck")
    _close(got, want)


def test_missing_ids_and_bad_block_settings_are_refused(client, data, tmp_path):
    path, _ = data
    frame = pd.read_parquet(path)
    frame.loc[3, "item"] = np.nan
    with pytest.raises(ValueError, match="1 rating\\(s\\) have a missing item id"):
        fdist.fit(client, frame, BiasedALS(**PARAMS), checkpoint_dir=tmp_path / "a")
    for kwargs in ({"checkpoint_every": 0}, {"n_blocks": -1}):
        with pytest.raises(ValueError, match="must be a positive int"):
            fdist.fit(client, path, BiasedALS(**PARAMS), **kwargs)


def test_the_default_checkpoint_folder_is_removed(client, data):
    path, _ = data
    got = fdist.fit(client, path, BiasedALS(**{**PARAMS, "n_iter": 2}))
    assert got.distributed_info_["checkpoint_dir"] is None


def test_a_crash_between_checkpoint_files_and_their_commit_resumes_correctly(client, data,
                                                                             tmp_path,
                                                                             monkeypatch):
    # the factor files used to be overwritten before state.json: a failure between them
    # resumed iteration-4 factors as iteration 2
    path, _ = data
    want = fdist.fit(client, path, BiasedALS(**PARAMS), checkpoint_dir=tmp_path / "w")
    ck = tmp_path / "ck"
    original = fdist.write_atomic

    def crash_at_the_second_commit(target, write):
        if Path(target).name == "state.json" and (ck / "state.json").exists():
            raise OSError("power cut")  # the iteration-4 files are written, not committed
        return original(target, write)

    with monkeypatch.context() as m:
        m.setattr(fdist, "write_atomic", crash_at_the_second_commit)
        with pytest.raises(OSError, match="power cut"):
            fdist.fit(client, path, BiasedALS(**PARAMS), checkpoint_dir=ck,
                      checkpoint_every=2)
    assert json.loads((ck / "state.json").read_text())["iteration"] == 2
    got = fdist.fit(client, path, BiasedALS(**PARAMS), checkpoint_dir=ck, checkpoint_every=2)
    _close(got, want)
